package qmp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/qnuma/qnuma/qemutest"
)

// TestStartPipelines: a client made by Start has qmp_capabilities and the
// commands called before Ready on the wire before the peer has even
// greeted, in that order, and each gets its own answer.
func TestStartPipelines(t *testing.T) {
	mine, theirs := socketPair(t)
	c := Start(mine, "fake")
	defer c.Close()

	type result struct {
		st  Status
		err error
	}
	got := make(chan result, 1)
	go func() {
		st, err := c.QueryStatus(context.Background())
		got <- result{st, err}
	}()

	// Not a byte sent yet: the requests must already be there. (The
	// query may still be on its way out; the decoder waits for it.)
	dec := json.NewDecoder(theirs)
	var first, second req
	if err := dec.Decode(&first); err != nil {
		t.Fatalf("fake: read first request: %v", err)
	}
	if err := dec.Decode(&second); err != nil {
		t.Fatalf("fake: read second request: %v", err)
	}
	if first.Execute != "qmp_capabilities" || second.Execute != "query-status" {
		t.Fatalf("requests before the greeting = %q, %q; want qmp_capabilities, then query-status", first.Execute, second.Execute)
	}
	p := &peer{t: t, conn: theirs, dec: dec}
	go func() {
		p.send(greeting)
		p.reply(first, `{}`)
		p.reply(second, `{"status": "prelaunch", "singlestep": false, "running": false}`)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if c.Greeting().Version.Major == 0 {
		t.Errorf("greeting not kept: %+v", c.Greeting())
	}
	r := <-got
	if r.err != nil || r.st.Status != "prelaunch" {
		t.Errorf("query-status sent before Ready = %+v, %v; want prelaunch", r.st, r.err)
	}
}

// socketPair is a connected pair of unix stream sockets, closed at cleanup.
func socketPair(t *testing.T) (mine, theirs net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { conns[1].Close() })
	return conns[0], conns[1]
}

// TestStartRefused: a refused negotiation fails Ready, and the client is
// closed.
func TestStartRefused(t *testing.T) {
	mine, theirs := socketPair(t)
	c := Start(mine, "fake")
	p := &peer{t: t, conn: theirs, dec: json.NewDecoder(theirs)}
	go func() {
		r := p.expect("qmp_capabilities")
		p.send(greeting)
		p.replyErr(r, "GenericError", "no")
		p.drain()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	err := c.Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), "no") {
		t.Fatalf("Ready after a refused qmp_capabilities = %v, want its error", err)
	}
	if _, err := c.QueryStatus(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("a call after a failed Ready = %v, want ErrClosed", err)
	}
}

// TestStartRealQEMU: QEMU takes the commands queued behind
// qmp_capabilities before its greeting and answers each (its monitor runs
// requests in order, negotiation first).
func TestStartRealQEMU(t *testing.T) {
	qemu := qemutest.Require(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "qemu-end")
	mineF := os.NewFile(uintptr(fds[0]), "mine")
	conn, err := net.FileConn(mineF)
	mineF.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(qemu, "-S", "-nodefaults", "-display", "none", "-accel", "tcg", "-smp", "2", "-m", "64M",
		"-chardev", "socket,id=m,fd=3,server=off", "-mon", "chardev=m,mode=control")
	cmd.ExtraFiles = []*os.File{theirs}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", qemu, err)
	}
	theirs.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	c := Start(conn, "qemu")
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), qemuTimeout)
	defer cancel()
	cpus := make(chan []CPU, 1)
	errs := make(chan error, 1)
	go func() {
		got, err := c.QueryCPUsFast(ctx)
		cpus <- got
		errs <- err
	}()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v; qemu: %s", err, stderr.Bytes())
	}
	got := <-cpus
	if err := <-errs; err != nil {
		t.Fatalf("query-cpus-fast sent before the greeting: %v", err)
	}
	if len(got) != 2 || got[0].ThreadID <= 0 {
		t.Errorf("query-cpus-fast sent before the greeting = %+v, want 2 vCPUs with threads", got)
	}
	if st, err := c.QueryStatus(ctx); err != nil || st.Running {
		t.Errorf("query-status after Ready = %+v, %v; want paused", st, err)
	}
}
