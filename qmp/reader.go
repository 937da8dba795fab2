package qmp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode"
)

// message is any object QEMU sends: greeting, reply or event.
type message struct {
	QMP       *greetingJSON   `json:"QMP"`
	Return    json.RawMessage `json:"return"`
	Error     *Error          `json:"error"`
	ID        json.RawMessage `json:"id"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type greetingJSON struct {
	Version struct {
		QEMU struct {
			Major int `json:"major"`
			Minor int `json:"minor"`
			Micro int `json:"micro"`
		} `json:"qemu"`
		Package string `json:"package"`
	} `json:"version"`
	Capabilities []string `json:"capabilities"`
}

// Bounds on what one peer can make qnuma hold: a message (a 400-vCPU
// query-cpus-fast reply is some 100 KiB) and everything up to and with the
// greeting (QEMU's is under 200 bytes).
const (
	MaxMessage  = 32 << 20
	maxGreeting = 1 << 20
)

// ErrTooLarge is wrapped by the error of a connection whose peer sent a
// message over MaxMessage bytes, or a greeting over a megabyte.
var ErrTooLarge = errors.New("message too large")

// read is the connection's only reader. It runs until the stream ends or
// breaks, then fails every pending call and closes Done and Events.
func (c *Client) read() {
	c.finish(c.decode(c.conn))
}

// decode reads and dispatches messages from r until the stream ends or
// breaks, and says why.
func (c *Client) decode(r io.Reader) error {
	tail := &tailReader{r: r}
	bound := &boundedReader{r: tail, limit: maxGreeting}
	dec := json.NewDecoder(bound)
	greeted := false
	for {
		start := dec.InputOffset()
		if greeted { // before it, the bound counts from the first byte
			bound.start, bound.limit = start, MaxMessage
		}
		var m message
		if err := dec.Decode(&m); err != nil {
			return describeReadErr(err, tail.since(start))
		}
		if err := c.dispatch(&m, &greeted); err != nil {
			return fmt.Errorf("%w (read %s)", err, tail.since(start))
		}
	}
}

// boundedReader fails once more than limit bytes have been read since
// stream offset start: the decoder buffers a whole message, so this bounds
// its memory.
type boundedReader struct {
	r            io.Reader
	read         int64
	start, limit int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	left := b.start + b.limit - b.read
	if left <= 0 {
		return 0, fmt.Errorf("%w: over %d bytes", ErrTooLarge, b.limit)
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// describeReadErr says what was read when the stream stops making sense,
// so a broken peer can be diagnosed from the error alone.
func describeReadErr(err error, read string) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &syntax), errors.As(err, &typ):
		return fmt.Errorf("decode message: %w (read %s)", err, read)
	case errors.Is(err, io.EOF):
		return err
	}
	return fmt.Errorf("read: %w", err)
}

// dispatch routes one decoded message. An error ends the connection.
func (c *Client) dispatch(m *message, greeted *bool) error {
	switch {
	case m.QMP != nil:
		if *greeted {
			return errors.New("unexpected second greeting")
		}
		*greeted = true
		v := m.QMP.Version
		c.greeted <- Greeting{
			Version: Version{
				Major: v.QEMU.Major, Minor: v.QEMU.Minor, Micro: v.QEMU.Micro,
				Package: v.Package,
			},
			Capabilities: m.QMP.Capabilities,
		}
	case m.Event != "":
		if *greeted { // events before the greeting are skipped
			c.deliver(eventOf(m))
		}
	case m.Return != nil || m.Error != nil:
		if !*greeted {
			return errors.New("reply before the greeting")
		}
		var id uint64
		if json.Unmarshal(m.ID, &id) != nil {
			return nil // not one of ours: every command we send has a numeric id
		}
		c.mu.Lock()
		ch, ok := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !ok {
			return nil // its caller gave up
		}
		if m.Error != nil {
			ch <- reply{err: m.Error}
		} else {
			ch <- reply{ret: m.Return}
		}
	default:
		return errors.New("unexpected message: neither greeting, reply nor event")
	}
	return nil
}

func eventOf(m *message) Event {
	ev := Event{Name: m.Event, Data: m.Data}
	if ts := m.Timestamp; ts != nil && ts.Seconds >= 0 { // QEMU sends -1 when it has no clock
		ev.Timestamp = time.Unix(ts.Seconds, ts.Microseconds*int64(time.Microsecond))
	}
	return ev
}

// deliver queues ev without blocking: when the buffer is full the oldest
// event makes room. Only the reader sends, so the retry always succeeds.
func (c *Client) deliver(ev Event) {
	for {
		select {
		case c.events <- ev:
			return
		default:
		}
		select {
		case <-c.events:
			c.dropped.Add(1)
		default:
		}
	}
}

// finish records why the connection ended and releases everyone waiting.
func (c *Client) finish(readErr error) {
	c.mu.Lock()
	reason := c.closing // set by Close or a failed write; readErr then only echoes it
	if reason == nil {
		reason = readErr
	}
	if errors.Is(reason, ErrClosed) {
		c.err = reason
	} else {
		c.err = fmt.Errorf("%w: %w", ErrClosed, reason)
	}
	// Done closes before any pending call learns of the end, so a caller
	// that sees ErrClosed also sees Done closed (the launcher then waits
	// for qemu's exit to say why).
	close(c.done)
	for id, ch := range c.pending {
		ch <- reply{err: c.err}
		delete(c.pending, id)
	}
	c.mu.Unlock()
	c.conn.Close()
	close(c.events)
}

// tailKeep bounds the bytes kept for error messages.
const tailKeep = 4096

// tailReader remembers the last bytes read so that a decode error can show
// them.
type tailReader struct {
	r     io.Reader
	win   []byte
	start int64 // stream offset of win[0]
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.win = append(t.win, p[:n]...)
	if over := len(t.win) - tailKeep; over > 0 {
		copy(t.win, t.win[over:])
		t.win = t.win[:tailKeep]
		t.start += int64(over)
	}
	return n, err
}

// since quotes what was read from stream offset off on, shortened.
func (t *tailReader) since(off int64) string {
	if off < t.start {
		off = t.start
	}
	b := []byte(nil)
	if i := off - t.start; i < int64(len(t.win)) {
		b = t.win[i:]
	}
	s := string(b)
	for len(s) > 0 && unicode.IsSpace(rune(s[0])) {
		s = s[1:]
	}
	if s == "" {
		return "nothing"
	}
	const max = 120
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
