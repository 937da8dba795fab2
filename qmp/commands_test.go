package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func intp(i int) *int { return &i }

// Replies below are QEMU 7.2's, captured from qemu-system-x86_64 -smp 4
// -object iothread,id=io0 -object memory-backend-ram,id=m0,size=128M.
const (
	cpusFast7_2 = `[{"thread-id": 9314, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}, {"thread-id": 9315, "props": {"core-id": 1, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[2]", "cpu-index": 1, "target": "x86_64"}]`
	memdev7_2   = `[{"share": false, "reserve": true, "prealloc": false, "host-nodes": [], "size": 134217728, "merge": true, "dump": true, "policy": "default", "id": "m0"}]`
	iothreads   = `[{"poll-shrink": 0, "thread-id": 9320, "poll-grow": 0, "poll-max-ns": 32768, "id": "io0", "aio-max-batch": 0}]`
)

func TestCommands(t *testing.T) {
	tests := []struct {
		name    string
		command string // what the helper must send
		answer  string // the whole message the fake sends back, %ID% replaced
		call    func(context.Context, *Client) (any, error)
		want    any
		wantErr string
	}{
		{
			name: "query-cpus-fast", command: "query-cpus-fast",
			answer: `{"return": ` + cpusFast7_2 + `, "id": %ID%}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.QueryCPUsFast(ctx) },
			want: []CPU{
				{CPUIndex: 0, ThreadID: 9314, QOMPath: "/machine/unattached/device[0]", Target: "x86_64",
					Props: CPUProps{SocketID: intp(0), CoreID: intp(0), ThreadID: intp(0)}},
				{CPUIndex: 1, ThreadID: 9315, QOMPath: "/machine/unattached/device[2]", Target: "x86_64",
					Props: CPUProps{SocketID: intp(0), CoreID: intp(1), ThreadID: intp(0)}},
			},
		},
		{
			name: "query-cpus-fast with node and die", command: "query-cpus-fast",
			answer: `{"return": [{"thread-id": 7, "props": {"node-id": 1, "socket-id": 1, "die-id": 0, "cluster-id": 0, "core-id": 2, "thread-id": 1}, "qom-path": "/machine/peripheral-anon/device[0]", "cpu-index": 5, "target": "x86_64"}], "id": %ID%}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.QueryCPUsFast(ctx) },
			want: []CPU{{CPUIndex: 5, ThreadID: 7, QOMPath: "/machine/peripheral-anon/device[0]", Target: "x86_64",
				Props: CPUProps{NodeID: intp(1), SocketID: intp(1), DieID: intp(0), ClusterID: intp(0), CoreID: intp(2), ThreadID: intp(1)}}},
		},
		{
			name: "query-cpus-fast without thread-id", command: "query-cpus-fast",
			answer:  `{"return": [{"props": {"thread-id": 0}, "cpu-index": 3}], "id": %ID%}`,
			call:    func(ctx context.Context, c *Client) (any, error) { return c.QueryCPUsFast(ctx) },
			wantErr: "cpu 3 has no thread-id",
		},
		{
			name: "query-cpus-fast wrong shape", command: "query-cpus-fast",
			answer:  `{"return": {"cpus": []}, "id": %ID%}`,
			call:    func(ctx context.Context, c *Client) (any, error) { return c.QueryCPUsFast(ctx) },
			wantErr: "query-cpus-fast",
		},
		{
			name: "query-iothreads", command: "query-iothreads",
			answer: `{"return": ` + iothreads + `, "id": %ID%}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.QueryIOThreads(ctx) },
			want:   []IOThread{{ID: "io0", ThreadID: 9320}},
		},
		{
			name: "query-iothreads without thread-id", command: "query-iothreads",
			answer:  `{"return": [{"id": "io1"}], "id": %ID%}`,
			call:    func(ctx context.Context, c *Client) (any, error) { return c.QueryIOThreads(ctx) },
			wantErr: `iothread "io1" has no thread-id`,
		},
		{
			name: "query-memdev", command: "query-memdev",
			answer: `{"return": ` + memdev7_2 + `, "id": %ID%}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.QueryMemdev(ctx) },
			want:   []Memdev{{ID: "m0", Size: 128 << 20, Merge: true, Dump: true, HostNodes: []int{}, Policy: "default"}},
		},
		{
			name: "query-memdev bound", command: "query-memdev",
			answer: `{"return": [{"id": "ram-node1", "size": 2147483648, "merge": false, "dump": false, "prealloc": true, "share": true, "host-nodes": [2, 3], "policy": "bind"}], "id": %ID%}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.QueryMemdev(ctx) },
			want:   []Memdev{{ID: "ram-node1", Size: 2 << 30, Prealloc: true, Share: true, HostNodes: []int{2, 3}, Policy: "bind"}},
		},
		{
			name: "query-status", command: "query-status",
			answer: `{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": %ID%}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return c.QueryStatus(ctx) },
			want:   Status{Status: "prelaunch"},
		},
		{
			name: "query-status wrong shape", command: "query-status",
			answer:  `{"return": [], "id": %ID%}`,
			call:    func(ctx context.Context, c *Client) (any, error) { return c.QueryStatus(ctx) },
			wantErr: "decode reply",
		},
		{
			name: "cont", command: "cont",
			answer: `{"return": {}, "id": %ID%}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.Cont(ctx) },
		},
		{
			name: "cont refused", command: "cont",
			answer:  `{"error": {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"}, "id": %ID%}`,
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Cont(ctx) },
			wantErr: "qmp cont",
		},
		{
			name: "system_powerdown", command: "system_powerdown",
			answer: `{"return": {}, "id": %ID%}`,
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.SystemPowerdown(ctx) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := serve(t, func(p *peer) {
				p.handshake()
				r := p.expect(tt.command)
				if r.Arguments != nil {
					p.t.Errorf("fake: %s sent arguments %s, want none", tt.command, r.Arguments)
				}
				p.send(strings.ReplaceAll(tt.answer, "%ID%", string(r.ID)) + "\n")
				p.drain()
			})
			c := dial(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			got, err := tt.call(ctx, c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if got != nil && !reflect.ValueOf(got).IsZero() {
					t.Errorf("got %+v alongside the error, want no partial result", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(tt.want)
				t.Errorf("got  %s\nwant %s", gj, wj)
			}
		})
	}
}

func TestQuit(t *testing.T) {
	tests := []struct {
		name    string
		script  func(p *peer)
		wantErr error // nil: success
	}{
		{
			name:   "reply then close",
			script: func(p *peer) { p.reply(p.expect("quit"), `{}`) },
		},
		{
			name:   "close before replying",
			script: func(p *peer) { p.expect("quit") },
		},
		{
			name: "refused",
			script: func(p *peer) {
				p.replyErr(p.expect("quit"), "GenericError", "no")
				p.drain()
			},
			wantErr: &Error{Class: "GenericError", Desc: "no"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := serve(t, func(p *peer) {
				p.handshake()
				tt.script(p)
			})
			c := dial(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			err := c.Quit(ctx)
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("Quit: %v, want success", err)
				}
				return
			}
			var qerr *Error
			if !errors.As(err, &qerr) || *qerr != *tt.wantErr.(*Error) {
				t.Errorf("Quit: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestQuitOnClosedConnection: quit that could not be sent is not success.
func TestQuitOnClosedConnection(t *testing.T) {
	path := serve(t, func(p *peer) { p.handshake() })
	c := dial(t, path)
	<-c.Done()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.Quit(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Quit on a connection QEMU had closed: %v, want ErrClosed", err)
	}
}
