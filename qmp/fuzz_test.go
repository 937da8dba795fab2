package qmp

import (
	"bytes"
	"os"
	"testing"
)

func osNewFile(fd int) *os.File { return os.NewFile(uintptr(fd), "socketpair") }

// seeds are what real QEMU sends (7.2, read off the wire) and its
// misbehaving cousins.
var seeds = []string{
	greeting,
	greeting + `{"return": {}, "id": 1}` + "\r\n",
	greeting + `{"return": [{"thread-id": 13270, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}], "id": 2}` + "\r\n",
	greeting + `{"timestamp": {"seconds": 1796115853, "microseconds": 80224}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}` + "\r\n",
	greeting + `{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "STOP"}` + "\n",
	greeting + `{"error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}, "id": 3}` + "\n",
	greeting + `{"return": [{"id": "io0", "thread-id": 4242, "poll-max-ns": 32768, "poll-grow": 0, "poll-shrink": 0, "aio-max-batch": 0}], "id": 4}`,
	`{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}` + greeting,
	greeting + greeting,
	`{"return": {}, "id": 1}`,
	`{"QMP": {"version": {"package": "`,
	greeting + `{"return": {}, "id": "x"}{"return": {}, "id": 1e400}{}`,
	"[1, 2, 3]",
	"\xff\xfe",
}

// FuzzDecode feeds arbitrary bytes to the client's decoder: it must end
// with an error or at the end of the input, never panic, and never hold
// more than the bounds allow.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newClient(nil, "fuzz")
		c.pending[1] = make(chan reply, 1)
		err := c.decode(bytes.NewReader(b))
		if err == nil {
			t.Fatal("decode returned nil: it must say why the stream ended")
		}
		select {
		case <-c.greeted:
		default:
		}
		if len(c.events) > eventBuffer {
			t.Fatalf("%d events queued, over %d", len(c.events), eventBuffer)
		}
	})
}
