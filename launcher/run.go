package launcher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/qmp"
)

// run is the state of one launch, shared by its steps.
type run struct {
	cfg Config
	sys affinity.Sys
	log *slog.Logger

	qemuPath string
	conn     net.Conn // qnuma's end of the QMP socketpair, until mon owns it
	// cgroupDone gives the result of putting qemu into Config.Cgroup, when
	// that happens after its start (nil: born there, or no cgroup).
	cgroupDone chan error

	cmd    *exec.Cmd   // nil when attached to a qemu qnuma did not start
	proc   *os.Process // qemu
	pid    int
	stderr *ring
	// exited is closed once qemu has been reaped; state is then set.
	exited chan struct{}
	state  *os.ProcessState
	// exitedByItself: qemu ended before qnuma asked it to.
	exitedByItself atomic.Bool
	stopping       atomic.Bool
	cleaned        bool
	// leaveRunning: cleanup does not stop qemu (a successful Attach).
	leaveRunning bool

	// startedHook is closed once Hooks.OnStarted has returned; nil when
	// it was not called.
	startedHook chan struct{}
	startedErr  error // the hook's, once startedHook is closed

	mon         *qmp.Client
	vcpuThreads []int // by vCPU index
	// vcpusAsked and ioThreads are query-cpus-fast's and
	// query-iothreads' answers to come, asked by waitQMP.
	vcpusAsked  <-chan answer[[]qmp.CPU]
	ioThreads   <-chan answer[[]qmp.IOThread]
	interrupted os.Signal

	mu     sync.Mutex // guards result.Warnings
	result Result
}

func newRun(cfg Config) (*run, error) {
	if len(cfg.Placement.VCPUs) == 0 {
		return nil, fmt.Errorf("launch: no placement (no vcpu has cpus)")
	}
	if cfg.QMPTimeout <= 0 {
		cfg.QMPTimeout = DefaultQMPTimeout
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/"
	}
	r := &run{cfg: cfg, sys: cfg.Sys, log: cfg.Log, exited: make(chan struct{})}
	if r.sys == nil {
		r.sys = affinity.Real{}
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r, nil
}

func (r *run) warn(msg string) {
	r.mu.Lock()
	r.result.Warnings = append(r.result.Warnings, msg)
	r.mu.Unlock()
	r.log.Warn(msg)
}

func (r *run) hasExited() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

// cleanup stops qemu if it still runs (a failed launch) and closes the
// QMP connection.
func (r *run) cleanup() {
	if r.cleaned {
		return
	}
	r.cleaned = true
	if r.proc != nil && !r.leaveRunning && !r.hasExited() {
		r.stop(stopGrace)
	}
	if r.mon != nil {
		r.mon.Close()
	} else if r.conn != nil {
		r.conn.Close()
	}
}

// stop asks qemu to quit (over QMP when connected, else SIGTERM), waits up
// to grace, then kills it, and returns once it has been reaped.
func (r *run) stop(grace time.Duration) {
	r.stopping.Store(true)
	asked := false
	if r.mon != nil {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		asked = r.mon.Quit(ctx) == nil
		cancel()
	}
	if !asked {
		r.proc.Signal(syscall.SIGTERM)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.exited:
		return
	case <-t.C:
	}
	r.log.Warn("qemu did not stop in time: killing it", "pid", r.pid, "grace", grace)
	r.proc.Kill()
	<-r.exited
}

// finish fills in the result and runs the exit hook.
func (r *run) finish() Result {
	r.waitStartedHook()
	r.result.PID = r.pid
	r.result.VCPUThreads = r.vcpuThreads
	if r.state != nil {
		if ws, ok := r.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.result.Signal = ws.Signal()
		}
	}
	if r.cfg.Hooks.OnExit != nil && r.pid != 0 {
		r.cfg.Hooks.OnExit(r.result)
	}
	return r.result
}
