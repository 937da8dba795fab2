package qemutest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// Memdev is one backend of query-memdev's answer.
type Memdev struct {
	ID        string `json:"id"`
	Size      uint64 `json:"size"`
	Merge     bool   `json:"merge"`
	Dump      bool   `json:"dump"`
	Prealloc  bool   `json:"prealloc"`
	Share     bool   `json:"share"`
	HostNodes []int  `json:"host-nodes"`
	Policy    string `json:"policy"` // default, preferred, bind or interleave
}

// Memdevs is query-memdev's answer: the memory backends QEMU built, with
// their size and NUMA policy.
func (vm *VM) Memdevs() ([]Memdev, error) {
	var devs []Memdev
	if err := vm.Execute("query-memdev", nil, &devs); err != nil {
		return nil, err
	}
	return devs, nil
}

// Execute runs one QMP command (args nil: none) on a connection of its own
// and decodes its return value into out (nil: dropped). A QMP error is
// returned with its class and description.
func (vm *VM) Execute(command string, args, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := dialQMP(ctx, vm.socket)
	if err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	defer c.Close()
	if err := c.greeting(); err != nil {
		return fmt.Errorf("qmp %s: greeting: %w", command, err)
	}
	if err := c.execute("qmp_capabilities", nil, nil); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	if err := c.execute(command, args, out); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	return nil
}

type qmpConn struct {
	net.Conn
	dec *json.Decoder
}

// dialQMP connects to QEMU's QMP socket; every read and write on the
// connection ends by ctx's deadline.
func dialQMP(ctx context.Context, path string) (*qmpConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(startTimeout))
	}
	return &qmpConn{Conn: c, dec: json.NewDecoder(c)}, nil
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

// greeting reads QEMU's first message, which names its version.
func (c *qmpConn) greeting() error {
	var m qmpMessage
	if err := c.dec.Decode(&m); err != nil {
		return err
	}
	if m.QMP == nil {
		return errors.New("first message is not a QMP greeting")
	}
	return nil
}

// execute sends one command and reads its answer, skipping events.
func (c *qmpConn) execute(command string, args, out any) error {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return err
	}
	for {
		var m qmpMessage
		if err := c.dec.Decode(&m); err != nil {
			return err
		}
		switch {
		case m.Event != "":
			continue
		case m.Error != nil:
			return fmt.Errorf("%s: %s", m.Error.Class, m.Error.Desc)
		case m.Return != nil:
			if out == nil {
				return nil
			}
			return json.Unmarshal(m.Return, out)
		default:
			return errors.New("answer is neither a return nor an error")
		}
	}
}
