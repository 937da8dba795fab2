// Package launcher starts QEMU under the planned memory policy and paused,
// pins its vCPU, emulator and I/O threads, lets the guest run and
// supervises it until it exits.
//
// A launch is a plain list of named steps, each func(ctx, *run) error, run
// in order and logged by name; the first error stops the list, and the
// deferred cleanup stops qemu.
//
// qemu gets its QMP monitor as one end of a socketpair: no socket path, no
// runtime directory, nothing another user could swap or a killed qnuma
// could leave behind.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qmp"
)

// Defaults for Config's durations left at zero.
const (
	// QEMU answers QMP only after preallocating guest RAM (seconds for a
	// large guest), and a qemu that exits ends the wait at once.
	DefaultQMPTimeout = 60 * time.Second
	DefaultGrace      = 10 * time.Second
	// stopGrace is how long qemu has to quit before SIGKILL when a launch fails.
	stopGrace = 2 * time.Second
)

// Config is one launch.
type Config struct {
	// Argv is the qemu command: the binary (a name looked up in PATH, or a
	// path) and its arguments, with qnuma's rendered arguments already in.
	// The launcher adds its own QMP monitor (-chardev socket,fd=N), -S and
	// -name.
	Argv []string
	// Env for qemu; nil inherits qnuma's.
	Env []string
	// Name is the VM's name, used for -name qnuma-NAME when HasName is false.
	Name string
	// UserPaused: the user gave -S, so the VM is left paused.
	UserPaused bool
	// HasName: the user gave -name, which is kept as it is.
	HasName bool
	// Placement gives the mempolicy, each vCPU's CPUs, the emulator CPUs
	// and the I/O threads' own (plan.Plan.Placement).
	Placement plan.Placement
	// Cgroup, when not nil, is the VM's own cpuset cgroup: qemu starts in
	// it (born there where the kernel can, else added at once) and the
	// cgroup's cpuset.mems bounds qemu's own memory in place of the plan's
	// process mempolicy, so that qnuma move can change it later.
	Cgroup Cgroup
	// Sys is the kernel; nil means affinity.Real.
	Sys affinity.Sys
	// ProcRoot is where /proc is read from; "" means "/".
	ProcRoot string
	// QMPTimeout bounds the wait for qemu's QMP greeting and each QMP
	// command after it (0: DefaultQMPTimeout).
	QMPTimeout time.Duration
	// WaitingSockets are the user's own sockets qemu waits on for a client
	// before it answers QMP (-qmp unix:PATH,server=on without wait=off),
	// as written ("-qmp unix:/x,server=on"); a QMP timeout names them.
	WaitingSockets []string
	// Timeout, when > 0, stops the VM after it has run that long (exit 124).
	Timeout time.Duration
	// Grace is how long a powerdown may take before SIGKILL (0: DefaultGrace).
	Grace time.Duration
	// BestEffort runs the VM even when binding or pinning fails, with warnings.
	BestEffort bool
	// Signals are forwarded to qemu while it runs; before the guest runs
	// one aborts the launch. qnuma's CLI passes signal.Notify's channel.
	Signals <-chan os.Signal
	// Stdin, Stdout, Stderr are qemu's; *os.File values are passed as they
	// are (a -nographic console needs the terminal). Stderr is also kept in
	// a ring buffer for error messages. Nil means /dev/null for Stdin and
	// discard for the others.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Log receives step lines (Info, with timings) and warnings (Warn);
	// nil discards them. Warnings are also in Result.Warnings.
	Log   *slog.Logger
	Hooks Hooks
}

// Cgroup is a cgroup qemu starts in (vmcgroup.Group).
type Cgroup interface {
	// CloneFD is the cgroup's directory fd to start a child in it
	// (CLONE_INTO_CGROUP, cgroup v2); ok false where the kernel cannot.
	CloneFD() (fd int, ok bool)
	// JoinThread moves the calling (locked) OS thread alone into it, so
	// that the child it starts is born there (cgroup v1); back moves the
	// thread back. ok false where the kernel cannot: start, then AddProc.
	JoinThread() (back func() error, ok bool, err error)
	// AddProc moves a process into it.
	AddProc(ctx context.Context, pid int) error
}

// Hooks let a caller (the VM ledger) follow the VM's life.
type Hooks struct {
	// OnStarted runs once qemu has started, paused, under its mempolicy,
	// in its own goroutine while qemu starts up and the launch waits for
	// QMP; the guest runs (cont) only after it has returned, and Launch
	// returns only after it has. An error fails the launch at cont: qemu
	// is stopped before the guest ran (the ledger could not record it).
	// qmpSocket is "": qnuma's monitor is a socketpair, with no path.
	OnStarted func(pid int, qmpSocket string) error
	// OnRunning runs once every thread is pinned and the guest runs (or is
	// left paused as asked).
	OnRunning func(pid int, vcpuThreads []int)
	// OnExit runs after qemu has exited and been reaped.
	OnExit func(Result)
	// OnSupervise runs as supervision begins (after OnRunning) with
	// qnuma's own QMP connection to qemu, which other code may use while
	// qemu runs (qnuma run serves it on the VM's control socket); the stop
	// it returns (nil: none) runs once qemu has exited.
	OnSupervise func(mon *qmp.Client, pid int) (stop func())
}

// Result is how a launch ended.
type Result struct {
	// ExitCode is what qnuma exits with: qemu's status (128+signal when a
	// signal killed it), 124 after Timeout, 1 when the launch failed
	// before qemu could run, or qemu's status when it exited by itself
	// during the launch.
	ExitCode int
	PID      int
	// Signal killed qemu (0: it exited).
	Signal syscall.Signal
	// TimedOut: Timeout stopped the VM.
	TimedOut bool
	// VCPUThreads are the thread ids of vCPU 0, 1, ...
	VCPUThreads []int
	Warnings    []string
}

// step is one named stage of a launch.
type step struct {
	name string
	fn   func(context.Context, *run) error
	// pin marks binding and pinning steps: with BestEffort a failure is a
	// warning, not the end of the launch.
	pin bool
}

// The launch's step names, as the log says them ("step cont: took=..."):
// other code (the bench, tests) refers to these, not to log wording.
const (
	StepFindQEMU    = "find qemu"
	StepStart       = "start"
	StepWaitQMP     = "wait for qmp"
	StepQueryVCPUs  = "query vcpus"
	StepPinVCPUs    = "pin vcpus"
	StepPinEmulator = "pin emulator and io threads"
	StepCont        = "cont"
)

// steps is the launch, in order.
var steps = []step{
	{name: StepFindQEMU, fn: findQEMU},
	{name: StepStart, fn: start},
	{name: StepWaitQMP, fn: waitQMP},
	{name: StepQueryVCPUs, fn: queryVCPUs, pin: true},
	{name: StepPinVCPUs, fn: pinVCPUs, pin: true},
	{name: StepPinEmulator, fn: pinEmulator, pin: true},
	{name: StepCont, fn: cont},
}

// Launch starts qemu as cfg says and supervises it until it exits. The
// error is non-nil when the launch failed before the guest ran; the
// Result's ExitCode is meaningful either way.
func Launch(ctx context.Context, cfg Config) (Result, error) {
	r, err := newRun(cfg)
	if err != nil {
		return Result{ExitCode: 1}, err
	}
	defer r.cleanup() // idempotent; here for panics
	err = r.do(ctx, steps)
	if err == nil {
		r.supervise(ctx)
	}
	r.cleanup()
	if err != nil {
		r.result.ExitCode = r.failureCode()
	}
	return r.finish(), err
}

// do runs steps in order, stopping at the first error; a signal aborts the
// launch (qemu is stopped by the caller's cleanup).
func (r *run) do(ctx context.Context, list []step) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := r.abortOnSignal(cancel)
	defer stopWatch()
	for _, s := range list {
		t0 := time.Now()
		err := s.fn(ctx, r)
		if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = fmt.Errorf("%w (%v)", cause, err)
		}
		if err == nil {
			r.log.Info("step", "name", s.name, "took", time.Since(t0).Round(time.Microsecond))
			continue
		}
		if s.pin && r.cfg.BestEffort && context.Cause(ctx) == nil && !r.hasExited() {
			r.warn(fmt.Sprintf("%s: %v; running anyway (--best-effort)", s.name, err))
			continue
		}
		r.log.Info("step failed", "name", s.name, "took", time.Since(t0).Round(time.Microsecond), "err", err)
		return fmt.Errorf("launch %s: %s: %w", r.vmName(), s.name, err)
	}
	return nil
}

// errInterrupted is the cause of a launch aborted by a signal.
type errInterrupted struct{ sig os.Signal }

func (e errInterrupted) Error() string { return fmt.Sprintf("interrupted by %v", e.sig) }

// abortOnSignal cancels the steps' context when a signal arrives.
func (r *run) abortOnSignal(cancel context.CancelCauseFunc) (stop func()) {
	if r.cfg.Signals == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case sig := <-r.cfg.Signals:
			r.interrupted = sig
			cancel(errInterrupted{sig})
		case <-done:
		}
	}()
	return func() { close(done); <-stopped }
}

func findQEMU(ctx context.Context, r *run) error {
	if len(r.cfg.Argv) == 0 {
		return errors.New("no qemu command given")
	}
	p, err := exec.LookPath(r.cfg.Argv[0])
	if err != nil {
		return fmt.Errorf("find qemu %q: %w", r.cfg.Argv[0], err)
	}
	r.qemuPath = p
	return nil
}

func cont(ctx context.Context, r *run) error {
	// The guest runs only once qemu is on record.
	if err := r.waitStartedHook(); err != nil {
		return fmt.Errorf("qemu (pid %d) started: %w", r.pid, err)
	}
	if r.cfg.UserPaused {
		r.log.Info("left paused: -S was given", "pid", r.pid)
		return nil
	}
	if err := r.qmpCall(ctx, "cont", r.mon.Cont); err != nil {
		return fmt.Errorf("resume vm (pid %d): %w", r.pid, err)
	}
	return nil
}

func (r *run) vmName() string {
	if r.cfg.Name != "" {
		return "vm " + r.cfg.Name
	}
	return "qemu"
}

// failureCode is the exit code of a launch that failed: qemu's own status
// when it exited by itself, 128+signal when a signal interrupted it, else 1.
func (r *run) failureCode() int {
	if r.interrupted != nil {
		if s, ok := r.interrupted.(syscall.Signal); ok {
			return 128 + int(s)
		}
		return 1
	}
	if r.exitedByItself.Load() && r.state != nil {
		if code := exitCode(r.state); code != 0 {
			return code
		}
	}
	return 1
}

// exitCode is a shell's view of a process's end: its status, or 128+signal.
func exitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
