package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/launcher"
	"github.com/qnuma/qnuma/qmp"
)

// stopGrace is how long a measured process has to exit after QMP quit.
const stopGrace = 10 * time.Second

// proc is one measured command (qemu, numactl qemu, qnuma ...) whose QEMU
// has the bench's own QMP socket, so that every variant is watched the
// same way from outside.
type proc struct {
	argv   []string
	sock   string
	cmd    *exec.Cmd
	start  time.Time
	stdout *lineLog
	stderr *lineLog
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
	mon    *qmp.Client
}

// withQMP returns argv with the bench's QMP socket added, in a new array:
// variants built from one another share arrays, and a run must not write
// into its neighbour's.
func withQMP(argv []string, sock string) []string {
	return append(slices.Clip(argv), "-qmp", "unix:"+sock+",server=on,wait=off")
}

// startProc starts argv in its own process group (so that a qemu started
// by qnuma is stopped with it) and dies with the bench.
func startProc(argv []string, sock string) (*proc, error) {
	p := &proc{argv: argv, sock: sock, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = stopGrace
	p.start = time.Now()
	p.stdout, p.stderr = newLineLog(p.start), newLineLog(p.start)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.stdout.close()
		p.stderr.close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// exitError describes the process's early end with the tail of its stderr.
func (p *proc) exitError() error {
	return fmt.Errorf("%s exited (%v): %s", p.argv[0], p.err, lastLines(p.stderr.text(), 5))
}

// dial connects to the bench's QMP socket; it returns once QEMU answers,
// which is after preallocation and machine set-up.
func (p *proc) dial(ctx context.Context) error {
	mon, err := qmp.DialWhenReady(ctx, p.sock, p.exited)
	if p.hasExited() {
		return p.exitError()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p.argv[0], err)
	}
	p.mon = mon
	return nil
}

// waitRunning waits until QEMU reports the guest running and returns the
// time since the start. It asks again at each QMP event (RESUME) and every
// few milliseconds in between.
func (p *proc) waitRunning(ctx context.Context) (time.Duration, error) {
	if p.mon == nil {
		if err := p.dial(ctx); err != nil {
			return 0, err
		}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := p.mon.QueryStatus(ctx)
		if err != nil {
			if p.hasExited() {
				return 0, p.exitError()
			}
			return 0, fmt.Errorf("%s: query status: %w", p.argv[0], err)
		}
		if st.Running {
			return time.Since(p.start), nil
		}
		select {
		case <-p.mon.Events():
		case <-tick.C:
		case <-p.exited:
			return 0, p.exitError()
		case <-ctx.Done():
			return 0, fmt.Errorf("%s: wait for the guest to run: %w", p.argv[0], ctx.Err())
		}
	}
}

// vcpuThreads returns the thread id of each vCPU, in vCPU order.
func (p *proc) vcpuThreads(ctx context.Context, want int) ([]int, error) {
	cpus, err := p.mon.QueryCPUsFast(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: query vcpus: %w", p.argv[0], err)
	}
	return launcher.VCPUThreads(cpus, want)
}

// checkPlaced fails unless every vCPU thread may run exactly on its
// planned CPUs.
func (p *proc) checkPlaced(ctx context.Context, planned []cpuset.CPUSet) error {
	tids, err := p.vcpuThreads(ctx, len(planned))
	if err != nil {
		return err
	}
	for i, tid := range tids {
		got, err := affinity.CPUsAllowed("/", tid, tid)
		if err != nil {
			return err
		}
		if !got.Equals(planned[i]) {
			return fmt.Errorf("%s: vcpu %d (tid %d) may run on cpus %s, planned %s", p.argv[0], i, tid, got, planned[i])
		}
	}
	return nil
}

// stop quits QEMU over QMP (or SIGTERMs the process group when QMP was
// never reached), kills the group if it outlives stopGrace, and reports an
// exit other than a clean one.
func (p *proc) stop() error {
	if p.mon != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		p.mon.Quit(ctx)
		cancel()
		p.mon.Close()
	} else if !p.hasExited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("%s did not exit within %v of quit: killed", p.argv[0], stopGrace)
	}
	if p.err != nil && p.mon != nil {
		return fmt.Errorf("%s after quit: %v: %s", p.argv[0], p.err, lastLines(p.stderr.text(), 5))
	}
	return nil
}

// kill ends the process group at once; for error paths.
func (p *proc) kill() {
	if p.mon != nil {
		p.mon.Close()
	}
	if !p.hasExited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// lineLog keeps a process's output lines with the time each arrived.
type lineLog struct {
	start   time.Time
	mu      sync.Mutex
	partial []byte
	lines   []timedLine
	changed chan struct{} // closed and replaced at each new line
	closed  bool
}

type timedLine struct {
	at   time.Duration // since the process started
	text string
}

func newLineLog(start time.Time) *lineLog {
	return &lineLog{start: start, changed: make(chan struct{})}
}

func (l *lineLog) Write(b []byte) (int, error) {
	now := time.Since(l.start)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, timedLine{now, strings.TrimRight(string(l.partial[:i]), "\r")})
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(b), nil
}

func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.lines = append(l.lines, timedLine{time.Since(l.start), string(l.partial)})
		l.partial = nil
	}
	l.closed = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// snapshot returns the lines so far, whether the output has ended, and a
// channel closed at the next change.
func (l *lineLog) snapshot() ([]timedLine, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]timedLine(nil), l.lines...), l.closed, l.changed
}

func (l *lineLog) text() string {
	lines, _, _ := l.snapshot()
	var b strings.Builder
	for _, x := range lines {
		b.WriteString(x.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// errOutputEnded is returned by waitLine when the output ended without
// the line.
var errOutputEnded = errors.New("output ended")

// waitLine returns the first line for which match is true, waiting for it.
func (l *lineLog) waitLine(ctx context.Context, match func(string) bool) (timedLine, error) {
	for {
		lines, closed, changed := l.snapshot()
		for _, x := range lines {
			if match(x.text) {
				return x, nil
			}
		}
		if closed {
			return timedLine{}, errOutputEnded
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return timedLine{}, ctx.Err()
		}
	}
}

// lastLines returns the last n lines of s, joined by " | ".
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
