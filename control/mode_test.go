package control

import (
	"io/fs"
	"os"
	"sync/atomic"
	"testing"

	"github.com/qnuma/qnuma/qmp"
)

// The control socket is never seen at its path with a mode others may
// use, not even between its bind and its chmod: a qnuma vcpus dialling
// the moment it appears would refuse it as planted (ErrUntrusted), and
// another user could connect to it. A watcher looks at the path as fast as
// it can while the socket is made again and again.
func TestSocketNeverSeenOpen(t *testing.T) {
	dir := privateDir(t)
	path := SocketPath(dir, "vm")
	var stop atomic.Bool
	seen := make(chan fs.FileMode, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				select {
				case seen <- fi.Mode():
				default:
				}
			}
		}
	}()
	for i := 0; i < 300; i++ {
		s, err := Serve(dir, "vm", &fakeMonitor{events: make(chan qmp.Event)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	stop.Store(true)
	<-done
	select {
	case m := <-seen:
		t.Errorf("the control socket was seen with mode %v", m)
	default:
	}
}
