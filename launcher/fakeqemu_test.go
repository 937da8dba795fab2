package launcher

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// The test binary doubles as a misbehaving qemu: run with fakeQEMUEnv set,
// it serves (or fails to serve) the -qmp socket qnuma gives it. A real
// qemu cannot be made to stall or die mid-reply on demand.
const fakeQEMUEnv = "QNUMA_FAKE_QEMU"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeQEMUEnv); mode != "" {
		os.Exit(fakeQEMU(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeListener serves the QMP socket as qemu would: the listening fd qnuma
// passes (-chardev socket,...,fd=3), or a -qmp unix: path it makes.
func fakeListener(args []string) (net.Listener, error) {
	for i, a := range args {
		if i+1 == len(args) {
			break
		}
		v := args[i+1]
		switch {
		case a == "-chardev" && strings.Contains(v, ",fd=3,"):
			return net.FileListener(os.NewFile(3, "qmp"))
		case a == "-qmp" && strings.HasPrefix(v, "unix:"):
			sock, _, _ := strings.Cut(strings.TrimPrefix(v, "unix:"), ",")
			return net.Listen("unix", sock)
		}
	}
	return nil, fmt.Errorf("no qmp socket given")
}

// fakeQEMU modes:
//
//	silent:       accepts QMP connections and never greets; ignores SIGTERM
//	die-mid-reply: greets, then dies (SIGKILL) halfway through the reply
//	              to query-cpus-fast
func fakeQEMU(mode string, args []string) int {
	l, err := fakeListener(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake qemu:", err)
		return 1
	}
	switch mode {
	case "silent":
		signal.Ignore(syscall.SIGTERM)
		for {
			c, err := l.Accept()
			if err != nil {
				return 1
			}
			defer c.Close() // held open, never greeted
		}
	case "die-mid-reply":
		c, err := l.Accept()
		if err != nil {
			return 1
		}
		fmt.Fprintln(c, `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}`)
		in := bufio.NewScanner(c)
		for in.Scan() {
			var req struct {
				Execute string          `json:"execute"`
				ID      json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal(in.Bytes(), &req); err != nil {
				return 1
			}
			if req.Execute == "query-cpus-fast" {
				fmt.Fprintf(c, `{"return": [{"cpu-index": 0, "thread-id": %d, "props": {"core-`, os.Getpid())
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			fmt.Fprintf(c, `{"return": {}, "id": %s}`+"\n", req.ID)
		}
		return 1
	}
	fmt.Fprintln(os.Stderr, "fake qemu: unknown mode", mode)
	return 1
}
