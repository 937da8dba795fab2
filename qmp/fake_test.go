package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// greeting is QEMU 7.2's greeting, as read from the real thing.
const greeting = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}` + "\n"

// callTimeout bounds calls that are expected to succeed, so that a bug
// shows as a failure rather than a hung test; nothing asserts on it.
const callTimeout = 10 * time.Second

// peer is the server side of a scripted fake QMP connection.
type peer struct {
	t    *testing.T
	conn net.Conn
	dec  *json.Decoder
}

// req is a command as the fake server received it.
type req struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
}

// serve listens on a unix socket in a temp dir and runs script on the first
// connection; the test waits for the script at cleanup.
func serve(t *testing.T, script func(p *peer)) string {
	t.Helper()
	return serveAt(t, filepath.Join(t.TempDir(), "qmp.sock"), script)
}

// serveAt is serve on a given path.
func serveAt(t *testing.T, path string, script func(p *peer)) string {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("fake: accept: %v", err)
			}
			return
		}
		defer conn.Close()
		script(&peer{t: t, conn: conn, dec: json.NewDecoder(conn)})
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return path
}

// dial connects to a fake and closes the client at cleanup.
func dial(t *testing.T, path string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (p *peer) send(s string) {
	if _, err := io.WriteString(p.conn, s); err != nil {
		p.t.Errorf("fake: write %.40q: %v", s, err)
	}
}

// next reads one command; false when the client has gone.
func (p *peer) next() (req, bool) {
	var r req
	if err := p.dec.Decode(&r); err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			p.t.Errorf("fake: read command: %v", err)
		}
		return req{}, false
	}
	return r, true
}

// expect reads one command and checks its name.
func (p *peer) expect(command string) req {
	r, ok := p.next()
	if !ok {
		p.t.Errorf("fake: client went away, want %q", command)
	} else if r.Execute != command {
		p.t.Errorf("fake: got command %q, want %q", r.Execute, command)
	}
	return r
}

// handshake plays QEMU's side of Dial.
func (p *peer) handshake() {
	p.send(greeting)
	r := p.expect("qmp_capabilities")
	if r.Arguments != nil {
		p.t.Errorf("fake: qmp_capabilities sent arguments %s, want none", r.Arguments)
	}
	p.reply(r, `{}`)
}

func (p *peer) reply(r req, ret string) {
	p.send(fmt.Sprintf(`{"return": %s, "id": %s}`+"\n", ret, r.ID))
}

func (p *peer) replyErr(r req, class, desc string) {
	p.send(fmt.Sprintf(`{"error": {"class": %q, "desc": %q}, "id": %s}`+"\n", class, desc, r.ID))
}

// drain reads until the client closes, answering nothing: a stalled QEMU.
func (p *peer) drain() {
	for {
		if _, ok := p.next(); !ok {
			return
		}
	}
}

func newTestDecoder(r io.Reader) *json.Decoder { return json.NewDecoder(r) }
