package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestDialSkipsEventsBeforeGreeting(t *testing.T) {
	path := serve(t, func(p *peer) {
		p.send(`{"event": "EARLY1", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}` + "\n")
		p.send(`{"event": "EARLY2", "timestamp": {"seconds": 1, "microseconds": 3}}` + "\n")
		p.handshake()
		p.send(`{"event": "AFTER", "data": {"n": 1}, "timestamp": {"seconds": 1700000000, "microseconds": 250}}` + "\n")
		p.drain()
	})
	c := dial(t, path)

	want := Greeting{
		Version:      Version{Major: 7, Minor: 2, Micro: 22, Package: "Debian 1:7.2+dfsg-7+deb12u18+b3"},
		Capabilities: []string{"oob"},
	}
	if got := c.Greeting(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Greeting() = %+v, want %+v", got, want)
	}
	ev := nextEvent(t, c)
	if ev.Name != "AFTER" || string(ev.Data) != `{"n": 1}` {
		t.Errorf("first event = %s %s, want AFTER {\"n\": 1} (events before the greeting are skipped)", ev.Name, ev.Data)
	}
	if want := time.Unix(1700000000, 250000); !ev.Timestamp.Equal(want) {
		t.Errorf("event timestamp = %v, want %v", ev.Timestamp, want)
	}
}

func nextEvent(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("events channel closed: %v", c.Err())
		}
		return ev
	case <-time.After(callTimeout):
		t.Fatal("no event arrived")
	}
	return Event{}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name    string
		script  func(p *peer) // nil: no server at all
		timeout time.Duration
		is      error  // errors.Is target
		want    string // in the message
	}{
		{name: "no socket", is: syscall.ENOENT, want: "qmp dial"},
		{
			name:   "closed before greeting",
			script: func(p *peer) {},
			is:     ErrClosed, want: "EOF",
		},
		{
			name:   "garbage before greeting",
			script: func(p *peer) { p.send("hello there\n"); p.drain() },
			is:     ErrClosed, want: `"hello there`,
		},
		{
			name:   "reply before greeting",
			script: func(p *peer) { p.send(`{"return": {}, "id": 1}` + "\n"); p.drain() },
			is:     ErrClosed, want: "reply before the greeting",
		},
		{
			name:    "no greeting",
			script:  func(p *peer) { p.drain() },
			timeout: 50 * time.Millisecond,
			is:      context.DeadlineExceeded, want: "wait for greeting",
		},
		{
			name: "capabilities never answered",
			script: func(p *peer) {
				p.send(greeting)
				p.drain()
			},
			timeout: time.Second, // the greeting must come in time, under -race on a loaded host
			is:      context.DeadlineExceeded, want: "qmp_capabilities",
		},
		{
			name: "capabilities refused",
			script: func(p *peer) {
				p.send(greeting)
				p.replyErr(p.expect("qmp_capabilities"), "CommandNotFound", "no caps")
				p.drain()
			},
			want: "CommandNotFound: no caps",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.sock")
			if tt.script != nil {
				path = serve(t, tt.script)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = callTimeout
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			c, err := Dial(ctx, path)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Dial error %q does not wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestConcurrentCallsOutOfOrder sends many commands at once and answers them
// in reverse order: each caller must get its own reply.
func TestConcurrentCallsOutOfOrder(t *testing.T) {
	const n = 50
	path := serve(t, func(p *peer) {
		p.handshake()
		var reqs []req
		for range n {
			r, ok := p.next()
			if !ok {
				p.t.Error("fake: client went away")
				return
			}
			reqs = append(reqs, r)
		}
		for i := len(reqs) - 1; i >= 0; i-- {
			r := reqs[i]
			p.reply(r, fmt.Sprintf(`{"command": %q, "args": %s}`, r.Execute, r.Arguments))
		}
		p.drain()
	})
	c := dial(t, path)

	type echo struct {
		Command string         `json:"command"`
		Args    map[string]int `json:"args"`
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			cmd := fmt.Sprintf("cmd-%d", i)
			var got echo
			if err := c.Execute(ctx, cmd, map[string]int{"i": i}, &got); err != nil {
				t.Errorf("Execute(%s): %v", cmd, err)
				return
			}
			if got.Command != cmd || got.Args["i"] != i {
				t.Errorf("Execute(%s) got the reply %+v", cmd, got)
			}
		})
	}
	wg.Wait()
}

func TestErrorReplyKeepsClassAndDesc(t *testing.T) {
	path := serve(t, func(p *peer) {
		p.handshake()
		p.replyErr(p.expect("device_del"), "DeviceNotFound", "Device 'nic9' not found")
		p.reply(p.expect("query-status"), `{"status": "prelaunch", "singlestep": false, "running": false}`)
		p.drain()
	})
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()

	err := c.Execute(ctx, "device_del", map[string]string{"id": "nic9"}, nil)
	var qerr *Error
	if !errors.As(err, &qerr) {
		t.Fatalf("Execute error %v (%T) is not a *Error", err, err)
	}
	if qerr.Class != "DeviceNotFound" || qerr.Desc != "Device 'nic9' not found" {
		t.Errorf("error = %+v, want class DeviceNotFound, desc \"Device 'nic9' not found\"", *qerr)
	}
	for _, want := range []string{"device_del", "DeviceNotFound", "Device 'nic9' not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// An error reply leaves the connection usable.
	if _, err := c.QueryStatus(ctx); err != nil {
		t.Errorf("QueryStatus after an error reply: %v", err)
	}
}

// TestStalledServer: a call whose reply never comes returns at its deadline;
// the reply arriving later is discarded and does not confuse the next call.
func TestStalledServer(t *testing.T) {
	gaveUp := make(chan struct{})
	path := serve(t, func(p *peer) {
		p.handshake()
		first := p.expect("query-status")
		<-gaveUp
		second := p.expect("query-memdev")
		p.reply(first, `{"status": "late", "singlestep": false, "running": true}`)
		p.reply(second, `[{"id": "m0", "size": 1024, "host-nodes": [1], "policy": "bind"}]`)
		p.drain()
	})
	c := dial(t, path)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.QueryStatus(ctx)
	close(gaveUp)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("QueryStatus on a stalled server: %v, want context.DeadlineExceeded", err)
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), callTimeout)
	defer cancel2()
	devs, err := c.QueryMemdev(ctx2)
	if err != nil {
		t.Fatalf("QueryMemdev after a late reply: %v", err)
	}
	if len(devs) != 1 || devs[0].ID != "m0" {
		t.Errorf("QueryMemdev = %+v, want m0 (the late query-status reply must be discarded)", devs)
	}
}

func TestCancelledCall(t *testing.T) {
	received := make(chan struct{})
	path := serve(t, func(p *peer) {
		p.handshake()
		p.expect("query-status")
		close(received)
		p.drain()
	})
	c := dial(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-received
		cancel()
	}()
	if _, err := c.QueryStatus(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("QueryStatus cancelled while waiting: %v, want context.Canceled", err)
	}
	select {
	case <-c.Done():
		t.Errorf("a cancelled call closed the connection: %v", c.Err())
	default:
	}
}

// TestStalledReader: a peer that stops reading fills the socket buffer; a
// big command's write must still end when its context does, and since part
// of it went out, the connection is closed.
func TestStalledReader(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	path := serve(t, func(p *peer) {
		p.handshake()
		// One byte proves the write began; then read no more.
		if _, err := p.conn.Read(make([]byte, 1)); err != nil {
			p.t.Errorf("fake: read: %v", err)
		}
		close(started)
		<-release
	})
	defer close(release)
	c := dial(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	big := map[string]string{"blob": strings.Repeat("x", 16<<20)} // far more than a socket buffer
	if err := c.Execute(ctx, "human-monitor-command", big, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute to a peer that stopped reading: %v, want context.Canceled", err)
	}
	<-c.Done()
	if err := c.Err(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "write") {
		t.Errorf("Err() after a cut-short write = %v, want ErrClosed naming the write", err)
	}
}

func TestCloseMidReply(t *testing.T) {
	path := serve(t, func(p *peer) {
		p.handshake()
		p.next()
		p.next()
		p.send(`{"return": [{"cpu-index": 0, "thread-`)
	})
	c := dial(t, path)

	errs := make(chan error, 2)
	for _, cmd := range []string{"query-cpus-fast", "query-iothreads"} {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			errs <- c.Execute(ctx, cmd, nil, nil)
		}()
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("pending call when the server closed mid-reply: %v, want ErrClosed", err)
		}
	}
	<-c.Done()
	if err := c.Err(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("Err() = %v, want ErrClosed with unexpected EOF", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Error("events channel still open after the connection closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.Cont(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Cont on a closed connection: %v, want ErrClosed", err)
	}
}

func TestGarbageClosesWithWhatWasRead(t *testing.T) {
	tests := []struct {
		name    string
		garbage string
		want    []string
	}{
		{"not json", "this is not json {\n", []string{"decode message", `"this is not json`}},
		{"array", "[1, 2, 3]\n", []string{"decode message", `"[1, 2, 3]`}},
		{"number", "42\n", []string{"decode message", `"42`}},
		{"unknown object", `{"hello": "world"}` + "\n", []string{"unexpected message", `hello`}},
		{"broken after good reply", `{"return": {}, "id": 999}{"return": tru}` + "\n", []string{"decode message", `{\"return\": tru}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := serve(t, func(p *peer) {
				p.handshake()
				p.expect("query-status")
				p.send(tt.garbage)
				p.drain()
			})
			c := dial(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			_, err := c.QueryStatus(ctx)
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("QueryStatus answered with garbage: %v, want ErrClosed", err)
			}
			<-c.Done()
			for _, e := range []error{err, c.Err()} {
				for _, want := range tt.want {
					if !strings.Contains(e.Error(), want) {
						t.Errorf("error %q does not contain %q", e, want)
					}
				}
			}
		})
	}
}

// TestLargeReply: a 500-vCPU query-cpus-fast answer on one line, well over
// the 64 KiB that line scanners choke on.
func TestLargeReply(t *testing.T) {
	const n = 500
	type props struct {
		CoreID   int `json:"core-id"`
		ThreadID int `json:"thread-id"`
		SocketID int `json:"socket-id"`
		NodeID   int `json:"node-id"`
	}
	type entry struct {
		ThreadID int    `json:"thread-id"`
		Props    props  `json:"props"`
		QOMPath  string `json:"qom-path"`
		CPUIndex int    `json:"cpu-index"`
		Target   string `json:"target"`
	}
	var cpus []entry
	for i := range n {
		cpus = append(cpus, entry{
			ThreadID: 100000 + i,
			Props:    props{CoreID: i / 2 % 32, ThreadID: i % 2, SocketID: i / 64, NodeID: i / 125},
			QOMPath:  fmt.Sprintf("/machine/unattached/device[%d]", i+1),
			CPUIndex: i,
			Target:   "x86_64",
		})
	}
	body, err := json.Marshal(cpus)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) <= 64<<10 || strings.Contains(string(body), "\n") {
		t.Fatalf("test reply is %d bytes (newline: %v), want one line over 64 KiB", len(body), strings.Contains(string(body), "\n"))
	}
	path := serve(t, func(p *peer) {
		p.handshake()
		p.reply(p.expect("query-cpus-fast"), string(body))
		p.drain()
	})
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	got, err := c.QueryCPUsFast(ctx)
	if err != nil {
		t.Fatalf("QueryCPUsFast: %v", err)
	}
	if len(got) != n {
		t.Fatalf("QueryCPUsFast returned %d vCPUs, want %d", len(got), n)
	}
	for i, cpu := range got {
		if cpu.CPUIndex != i || cpu.ThreadID != 100000+i || *cpu.Props.ThreadID != i%2 || *cpu.Props.NodeID != i/125 {
			t.Fatalf("vCPU %d = %+v (props thread %d, node %d)", i, cpu, *cpu.Props.ThreadID, *cpu.Props.NodeID)
		}
	}
}

func TestEventsWhileCommandWaits(t *testing.T) {
	path := serve(t, func(p *peer) {
		p.handshake()
		r := p.expect("cont")
		for i := range 3 {
			p.send(fmt.Sprintf(`{"event": "E%d", "data": {"i": %d}, "timestamp": {"seconds": %d, "microseconds": 0}}`+"\n", i, i, 100+i))
		}
		p.reply(r, `{}`)
		p.drain()
	})
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.Cont(ctx); err != nil {
		t.Fatalf("Cont: %v", err)
	}
	for i := range 3 {
		ev := nextEvent(t, c)
		if want := fmt.Sprintf("E%d", i); ev.Name != want || string(ev.Data) != fmt.Sprintf(`{"i": %d}`, i) || ev.Timestamp.Unix() != int64(100+i) {
			t.Errorf("event %d = %+v, want %s", i, ev, want)
		}
	}
}

// TestSlowEventConsumer: nobody reads events, yet the reply behind a flood of
// them arrives; the newest events are kept.
func TestSlowEventConsumer(t *testing.T) {
	const flood = 1000
	path := serve(t, func(p *peer) {
		p.handshake()
		r := p.expect("query-status")
		for i := range flood {
			p.send(fmt.Sprintf(`{"event": "E%d", "timestamp": {"seconds": 1, "microseconds": 0}}`+"\n", i))
		}
		p.reply(r, `{"status": "running", "singlestep": false, "running": true}`)
		p.drain()
	})
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := c.QueryStatus(ctx); err != nil {
		t.Fatalf("QueryStatus behind %d unread events: %v", flood, err)
	}
	if got, want := c.Dropped(), uint64(flood-eventBuffer); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
	for i := flood - eventBuffer; i < flood; i++ {
		if ev := nextEvent(t, c); ev.Name != fmt.Sprintf("E%d", i) {
			t.Fatalf("kept event = %s, want E%d", ev.Name, i)
		}
	}
}

func TestCloseFailsPendingAndLaterCalls(t *testing.T) {
	received := make(chan struct{})
	path := serve(t, func(p *peer) {
		p.handshake()
		p.expect("query-status")
		close(received)
		p.drain()
	})
	c := dial(t, path)
	go func() {
		<-received
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := c.QueryStatus(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("pending QueryStatus when Close is called: %v, want ErrClosed", err)
	}
	<-c.Done()
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Execute(ctx, "cont", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Execute after Close: %v, want ErrClosed", err)
	}
}

// TestClosedCallSeesDone: a call that fails because the connection ended
// finds Done already closed. The launcher relies on it to wait for qemu's
// exit and report that, rather than a bare reset (seen as a flaky launch
// test under load when Done closed after the replies were failed).
func TestClosedCallSeesDone(t *testing.T) {
	for i := range 50 {
		path := serve(t, func(p *peer) {
			p.handshake()
			p.next()
			p.send(`{"return": [{"cpu-index": 0, "thread-`)
		})
		c := dial(t, path)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := c.Execute(ctx, "query-cpus-fast", nil, nil)
		cancel()
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("round %d: %v, want ErrClosed", i, err)
		}
		select {
		case <-c.Done():
		default:
			t.Fatalf("round %d: the call failed with %v but Done is not closed yet", i, err)
		}
	}
}
