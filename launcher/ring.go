package launcher

import (
	"bytes"
	"strings"
	"sync"
)

// ring keeps the last bytes written to it: the tail of qemu's stderr, for
// the error message when qemu dies during the launch.
type ring struct {
	mu   sync.Mutex
	buf  []byte
	size int
}

func newRing(size int) *ring { return &ring{size: size} }

func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.size; over > 0 {
		r.buf = append(r.buf[:0], r.buf[over:]...)
	}
	return len(p), nil
}

// Tail returns up to n last lines, trimmed.
func (r *ring) Tail(n int) string {
	r.mu.Lock()
	b := bytes.TrimSpace(r.buf)
	r.mu.Unlock()
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
