package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// traceEnv, when set to anything but "" or "0", makes qnuma print a line
// per start-up phase to stderr with the host's CLOCK_MONOTONIC time, so
// that a caller that noted the same clock before the exec sees where the
// time between its launch and the guest running goes: Go's start, the
// host's topology, the QEMU version probe, the ledger's lock, the plan,
// and (as with -v) each launch step. A debugging aid, not an interface.
const traceEnv = "QNUMA_TRACE"

// tracer prints trace lines; the zero value (tracing off) prints nothing.
type tracer struct {
	w    io.Writer // nil: off
	mu   sync.Mutex
	prev time.Duration
}

// traceStart is taken as main's package is initialised, the first moment
// qnuma's own code runs.
var traceStart = monotonic()

// trace is qnuma's tracer, on when QNUMA_TRACE is set.
var trace = newTracer(os.Getenv(traceEnv), os.Stderr)

func newTracer(env string, w io.Writer) *tracer {
	t := &tracer{}
	if env != "" && env != "0" {
		t.w = w
		t.mark("init", traceStart)
	}
	return t
}

func (t *tracer) on() bool { return t != nil && t.w != nil }

// Mark prints one phase's end: "qnuma: trace mono=SECONDS +SINCE_PREV phase".
func (t *tracer) Mark(phase string) {
	if t.on() {
		t.mark(phase, monotonic())
	}
}

func (t *tracer) mark(phase string, now time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprint(t.w, t.line(phase, now))
}

// line formats a trace line; t.mu is held.
func (t *tracer) line(phase string, now time.Duration) string {
	since := time.Duration(0)
	if t.prev != 0 {
		since = now - t.prev
	}
	t.prev = now
	return fmt.Sprintf("qnuma: trace mono=%.6f +%.3fms %s\n", now.Seconds(), float64(since.Microseconds())/1000, phase)
}

// monotonic is CLOCK_MONOTONIC, the clock other processes can read too
// (Go's own monotonic readings have an unspecified base).
func monotonic() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
