package launcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Target is a qemu that qnuma did not start as its child: the process
// qnuma replaced by exec (numactl's --exec), started with ExtraArgs.
type Target struct {
	PID    int
	Socket string
	// RuntimeDir holds Socket and is removed when Attach returns ("": none).
	RuntimeDir string
}

// attachSteps pin a running (paused) qemu and let it run.
var attachSteps = []step{
	{name: "wait for qmp", fn: waitQMP},
	{name: "query vcpus", fn: queryVCPUs, pin: true},
	{name: "pin vcpus", fn: pinVCPUs, pin: true},
	{name: "pin emulator and io threads", fn: pinEmulator, pin: true},
	{name: "cont", fn: cont},
}

// Attach pins the threads of a qemu started paused by someone else (the
// process qnuma exec'd into) as cfg's plan says, then lets the guest run,
// and returns; it does not supervise. On failure it stops qemu, unless
// cfg.BestEffort lets the VM run with warnings. cfg.Argv, Env, stdio,
// Timeout and Hooks are not used.
func Attach(ctx context.Context, cfg Config, t Target) (Result, error) {
	r, err := newRun(cfg)
	if err != nil {
		return Result{ExitCode: 1}, err
	}
	r.pid, r.sock, r.dir = t.PID, t.Socket, t.RuntimeDir
	pidfd, err := unix.PidfdOpen(t.PID, 0)
	if err != nil {
		os.RemoveAll(r.dir)
		return Result{ExitCode: 1}, fmt.Errorf("attach to qemu pid %d: %w", t.PID, os.NewSyscallError("pidfd_open", err))
	}
	if r.proc, err = os.FindProcess(t.PID); err != nil {
		unix.Close(pidfd)
		os.RemoveAll(r.dir)
		return Result{ExitCode: 1}, fmt.Errorf("attach to qemu pid %d: %w", t.PID, err)
	}
	stopWatch := watchPidfd(pidfd, r.exited)
	defer stopWatch()
	err = r.do(ctx, attachSteps)
	if err != nil {
		r.result.ExitCode = 1
	}
	r.leaveRunning = err == nil
	r.cleanup()
	r.result.PID = r.pid
	r.result.VCPUThreads = r.vcpuThreads
	return r.result, err
}

// watchPidfd closes exited when the process behind pidfd ends. The poll is
// bounded so that stop can end the watch while the process lives on.
func watchPidfd(pidfd int, exited chan struct{}) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer unix.Close(pidfd)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, int(100*time.Millisecond/time.Millisecond))
			if n > 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
				close(exited)
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	return func() { close(done); <-stopped }
}
