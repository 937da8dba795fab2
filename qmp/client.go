// Package qmp is qnuma's client for QEMU's machine protocol (QMP) over a
// unix socket: one dialled by path, or one end of a socketpair.
//
// One reader goroutine per connection decodes a stream of JSON objects (no
// line-length limit), hands each reply to the caller waiting on its id and
// queues events without ever blocking replies. Every call takes a context.
package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// eventBuffer is how many events wait for a slow consumer before the oldest
// are dropped.
const eventBuffer = 256

// Event is an asynchronous QMP event.
type Event struct {
	Name      string
	Data      json.RawMessage
	Timestamp time.Time
}

// Greeting is what QEMU announces when the connection opens.
type Greeting struct {
	Version      Version
	Capabilities []string
}

// Version is QEMU's version from the greeting.
type Version struct {
	Major, Minor, Micro int
	Package             string
}

// Client is one QMP connection. Its methods are safe for concurrent use.
type Client struct {
	conn net.Conn
	path string // the socket's path, or the name given to NewClient

	nextID atomic.Uint64
	// writeSem serialises writes; a channel so that waiting for it honours
	// the caller's context.
	writeSem chan struct{}

	mu      sync.Mutex
	pending map[uint64]chan reply
	closing error // first reason the connection is being shut down
	err     error // set when the reader has stopped; wraps ErrClosed

	greeted  chan Greeting // the reader's greeting, once
	greeting Greeting
	// negotiated is qmp_capabilities' outcome for a client made by Start;
	// op names it in Ready's errors.
	negotiated chan error
	op         string
	events     chan Event
	dropped    atomic.Uint64
	done       chan struct{}
}

// reply is a command's outcome as the reader hands it over.
type reply struct {
	ret json.RawMessage
	err error
}

// Dial connects to the QMP socket at socketPath, waits for the greeting
// (events sent before it are skipped) and negotiates capabilities. The
// context bounds all of it.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		if cerr := spent(ctx); cerr != nil { // net reports a passed deadline as an i/o timeout
			return nil, fmt.Errorf("qmp dial %s: %w", socketPath, cerr)
		}
		return nil, fmt.Errorf("qmp dial %s: %w", socketPath, err)
	}
	return handshake(ctx, conn, socketPath, "qmp dial "+socketPath)
}

// NewClient speaks QMP over conn, an already connected stream (one end of a
// socketpair whose other end QEMU got as -chardev socket,fd=N,server=off):
// it waits for the greeting and negotiates capabilities, bounded by ctx.
// name identifies the connection in errors ("qemu pid 4121"). The client
// owns conn from then on, also when NewClient fails.
func NewClient(ctx context.Context, conn net.Conn, name string) (*Client, error) {
	return handshake(ctx, conn, name, "qmp "+name)
}

// Start is NewClient that does not wait: it sends qmp_capabilities at once,
// before QEMU's greeting, and returns. Commands called before Ready go out
// behind it, so QEMU, which takes requests in order, runs them as soon as
// it has negotiated: a launch's first queries cost no round trip of their
// own. Ready waits for the greeting and the negotiation. The client owns
// conn from then on.
func Start(conn net.Conn, name string) *Client {
	c := newClient(conn, name)
	c.op = "qmp " + name
	go c.read()
	c.negotiated = make(chan error, 1)
	// Written before Start returns, so that it is first on the wire; a
	// socket's buffer takes it before QEMU reads.
	id, ch, err := c.send(context.Background(), "qmp_capabilities", nil)
	if err != nil {
		c.negotiated <- err
		return c
	}
	go func() {
		// Bounded by the reader: it fails every pending call when the
		// connection ends, and Close ends it.
		_, err := c.await(context.Background(), "qmp_capabilities", id, ch)
		c.negotiated <- err
	}()
	return c
}

// Ready waits, bounded by ctx, for the greeting and the capabilities
// negotiation of a client made by Start; a failure closes the client.
func (c *Client) Ready(ctx context.Context) error {
	select {
	case c.greeting = <-c.greeted:
	case <-c.done:
		return fmt.Errorf("%s: wait for greeting: %w", c.op, c.Err())
	case <-ctx.Done():
		c.Close()
		return fmt.Errorf("%s: wait for greeting: %w", c.op, ctx.Err())
	}
	select {
	case err := <-c.negotiated:
		if err != nil {
			c.Close()
			return fmt.Errorf("%s: %w", c.op, err)
		}
		return nil
	case <-ctx.Done():
		c.Close()
		return fmt.Errorf("%s: qmp_capabilities: %w", c.op, ctx.Err())
	}
}

func handshake(ctx context.Context, conn net.Conn, name, op string) (*Client, error) {
	c := newClient(conn, name)
	go c.read()

	select {
	case c.greeting = <-c.greeted:
	case <-c.done:
		return nil, fmt.Errorf("%s: wait for greeting: %w", op, c.Err())
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("%s: wait for greeting: %w", op, ctx.Err())
	}
	if err := c.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return c, nil
}

func newClient(conn net.Conn, name string) *Client {
	return &Client{
		conn:     conn,
		path:     name,
		writeSem: make(chan struct{}, 1),
		pending:  make(map[uint64]chan reply),
		greeted:  make(chan Greeting, 1),
		events:   make(chan Event, eventBuffer),
		done:     make(chan struct{}),
	}
}

// spent is ctx.Err(), or DeadlineExceeded as soon as the deadline has
// passed, even before ctx's own timer has fired.
func spent(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// Greeting returns what QEMU announced when the connection opened.
func (c *Client) Greeting() Greeting { return c.greeting }

// Execute runs command with args (nil: no "arguments") and decodes QEMU's
// "return" into result (nil: ignored). A QMP error reply comes back as a
// wrapped *Error. When ctx ends first, Execute returns ctx's error at once
// and a late reply is discarded.
func (c *Client) Execute(ctx context.Context, command string, args any, result any) error {
	ret, _, err := c.call(ctx, command, args)
	if err != nil {
		return err
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(ret, result); err != nil {
		return fmt.Errorf("qmp %s (%s): decode reply: %w", command, c.path, err)
	}
	return nil
}

// request is a command on the wire.
type request struct {
	Execute   string `json:"execute"`
	Arguments any    `json:"arguments,omitempty"`
	ID        uint64 `json:"id"`
}

// call sends command and waits for its reply. sent reports whether the whole
// command reached the socket, which Quit needs to tell "QEMU quit" from "QEMU
// was already gone".
func (c *Client) call(ctx context.Context, command string, args any) (ret json.RawMessage, sent bool, err error) {
	id, ch, err := c.send(ctx, command, args)
	if err != nil {
		return nil, false, err
	}
	ret, err = c.await(ctx, command, id, ch)
	return ret, true, err
}

// send writes command and returns where its reply will come.
func (c *Client) send(ctx context.Context, command string, args any) (uint64, chan reply, error) {
	id := c.nextID.Add(1)
	b, err := json.Marshal(request{Execute: command, Arguments: args, ID: id})
	if err != nil {
		return 0, nil, fmt.Errorf("qmp %s (%s): encode arguments: %w", command, c.path, err)
	}
	b = append(b, '\n')

	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil || c.closing != nil {
		c.mu.Unlock()
		return 0, nil, fmt.Errorf("qmp %s (%s): %w", command, c.path, c.closedErr())
	}
	c.pending[id] = ch
	c.mu.Unlock()

	if err := c.write(ctx, b); err != nil {
		c.forget(id)
		return 0, nil, fmt.Errorf("qmp %s (%s): %w", command, c.path, err)
	}
	return id, ch, nil
}

// await waits for the reply to a command sent as id.
func (c *Client) await(ctx context.Context, command string, id uint64, ch chan reply) (json.RawMessage, error) {
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("qmp %s (%s): %w", command, c.path, r.err)
		}
		return r.ret, nil
	case <-ctx.Done():
		c.forget(id)
		return nil, fmt.Errorf("qmp %s (%s): %w", command, c.path, ctx.Err())
	}
}

// forget drops a pending call so that a late reply to it is discarded.
func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// write sends b whole or not at all as far as the stream is concerned: a
// write cut short leaves half a command on the wire, so it ends the
// connection.
func (c *Client) write(ctx context.Context, b []byte) error {
	select {
	case c.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.closedErr()
	}
	defer func() { <-c.writeSem }()
	if err := ctx.Err(); err != nil {
		return err
	}

	// A stalled peer with a full socket buffer would block Write forever;
	// an expired deadline is the only way to interrupt it.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	n, err := c.conn.Write(b)
	if !stop() {
		<-fired
		c.conn.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		return nil
	}
	if n > 0 || ctx.Err() == nil { // half a command on the wire, or a broken socket
		c.shutdown(fmt.Errorf("write: %w", err))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	<-c.done
	return c.closedErr()
}

// Events delivers QMP events in order. It never holds up replies: when the
// consumer falls eventBuffer events behind, the oldest are dropped (see
// Dropped). The channel is closed when the connection is gone.
func (c *Client) Events() <-chan Event { return c.events }

// Dropped is how many events were discarded because nobody read them.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Done is closed when the connection is gone (EOF, error or Close).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil while the connection is up; afterwards it says why it ended,
// wrapping ErrClosed.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return nil
	}
	return fmt.Errorf("qmp %s: %w", c.path, c.err)
}

// Close ends the connection, fails pending calls with ErrClosed and waits
// for the reader to stop. Closing twice is harmless.
func (c *Client) Close() error {
	c.shutdown(ErrClosed)
	<-c.done
	return nil
}

// shutdown records the first reason for ending the connection and closes it;
// the reader then sees its read fail and cleans up.
func (c *Client) shutdown(reason error) {
	c.mu.Lock()
	if c.closing == nil {
		c.closing = reason
	}
	c.mu.Unlock()
	c.conn.Close()
}

// closedErr is the error for a call that finds the connection gone or going.
func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.closing != nil && !errors.Is(c.closing, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, c.closing)
	}
	return ErrClosed
}
