package qmp

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// endless writes s, then fill forever, until the client hangs up.
func endless(p *peer, s, fill string) {
	if _, err := io.WriteString(p.conn, s); err != nil {
		return
	}
	chunk := strings.Repeat(fill, 64<<10/len(fill))
	for {
		if _, err := io.WriteString(p.conn, chunk); err != nil {
			return // the client gave up: what the test wants
		}
	}
}

// TestUnterminatedGreetingIsBounded: a peer that never ends its greeting
// (or sends whitespace forever before it) is cut off at the greeting's
// bound, not read until memory runs out or the context ends.
func TestUnterminatedGreetingIsBounded(t *testing.T) {
	tests := []struct{ name, start, fill string }{
		{"greeting string", `{"QMP": {"version": {"package": "`, "a"},
		{"greeting array", `{"QMP": {"capabilities": [`, `"oob",`},
		{"whitespace", ``, " \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := serve(t, func(p *peer) { endless(p, tt.start, tt.fill) })
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			c, err := Dial(ctx, path)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want an error")
			}
			if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrClosed) {
				t.Errorf("Dial error %q does not wrap ErrTooLarge and ErrClosed", err)
			}
		})
	}
}

// TestOversizedReplyIsBounded: after the greeting one message may be up to
// MaxMessage bytes; an endless reply ends the connection with ErrTooLarge.
func TestOversizedReplyIsBounded(t *testing.T) {
	path := serve(t, func(p *peer) {
		p.handshake()
		r := p.expect("query-cpus-fast")
		endless(p, `{"id": `+string(r.ID)+`, "return": [`, `{"cpu-index": 0, "thread-id": 1},`)
	})
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := c.QueryCPUsFast(ctx)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("QueryCPUsFast error %v, want one wrapping ErrTooLarge", err)
	}
}

// TestNewClientOverSocketpair: the client speaks QMP over a connected
// socket it is handed, with no path to dial.
func TestNewClientOverSocketpair(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := fileConn(t, fds[0]), fileConn(t, fds[1])
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer theirs.Close()
		p := &peer{t: t, conn: theirs}
		p.dec = newTestDecoder(theirs)
		p.handshake()
		p.reply(p.expect("query-status"), `{"status": "prelaunch", "singlestep": false, "running": false}`)
		p.drain()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c, err := NewClient(ctx, mine, "qemu pid 1")
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	st, err := c.QueryStatus(ctx)
	if err != nil || st.Status != "prelaunch" {
		t.Errorf("QueryStatus = %+v, %v; want prelaunch", st, err)
	}
	c.Close()
	<-done

	// A peer that hangs up before greeting: the error names the connection.
	fds, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fds[1])
	_, err = NewClient(ctx, fileConn(t, fds[0]), "qemu pid 2")
	if err == nil || !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "qemu pid 2") {
		t.Errorf("NewClient on a closed peer: %v, want ErrClosed naming qemu pid 2", err)
	}
}

func fileConn(t *testing.T, fd int) net.Conn {
	t.Helper()
	f := osNewFile(fd)
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
