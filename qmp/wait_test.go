package qmp

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDialWhenReadyGivesUp(t *testing.T) {
	// A socket file nobody listens on: connect is refused, as while QEMU
	// has bound but not yet listened.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	exitedNow := make(chan struct{})
	close(exitedNow)
	tests := []struct {
		name    string
		path    string
		exited  <-chan struct{}
		timeout time.Duration
		is      error
		want    string
	}{
		{name: "process exited", path: filepath.Join(t.TempDir(), "absent.sock"), exited: exitedNow, timeout: callTimeout, is: ErrExited, want: "absent.sock"},
		{name: "never listening", path: stale, timeout: time.Second, is: context.DeadlineExceeded, want: "connection refused"},
		{name: "never created", path: filepath.Join(t.TempDir(), "absent.sock"), timeout: time.Second, is: context.DeadlineExceeded, want: "no such file"},
		{name: "not a socket dir", path: "/proc/self/status/qmp.sock", timeout: callTimeout, is: syscall.ENOTDIR, want: "qmp dial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			c, err := DialWhenReady(ctx, tt.path, tt.exited)
			if err == nil {
				c.Close()
				t.Fatal("DialWhenReady succeeded, want an error")
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DialWhenReady: %v, want %v mentioning %q", err, tt.is, tt.want)
			}
		})
	}
}

// TestDialWhenReadySocketAppears: the server may come up before or after
// the first try; either way the dial succeeds.
func TestDialWhenReadySocketAppears(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.sock")
	type result struct {
		c   *Client
		err error
	}
	res := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	go func() {
		c, err := DialWhenReady(ctx, path, nil)
		res <- result{c, err}
	}()
	serveAt(t, path, func(p *peer) {
		p.handshake()
		p.drain()
	})
	r := <-res
	if r.err != nil {
		t.Fatalf("DialWhenReady: %v", r.err)
	}
	r.c.Close()
}
