package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Target is a qemu that qnuma did not start as its child: the process
// qnuma replaced by exec (numactl's --exec), started with ExtraArgs.
// Make one with TargetFromFDs.
type Target struct {
	PID int
	// PIDFD refers to exactly that process (no pid reuse); Attach owns it.
	PIDFD int
	// Conn is connected to qemu's QMP monitor; Attach owns it.
	Conn net.Conn
}

// TargetFromFDs makes a Target from a QMP socket and a pidfd handed down by
// the qnuma that became qemu, trusting neither: the socket's peer (whoever
// made the socketpair, SO_PEERCRED) must be the pidfd's process, so that
// nothing but that qemu is ever signalled. It owns both fds from then on.
func TargetFromFDs(qmpFD, pidFD int, procRoot string) (Target, error) {
	fail := func(err error) (Target, error) {
		unix.Close(qmpFD)
		unix.Close(pidFD)
		return Target{}, err
	}
	cred, err := unix.GetsockoptUcred(qmpFD, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fail(fmt.Errorf("qmp fd %d: not a unix socket: %w", qmpFD, os.NewSyscallError("getsockopt SO_PEERCRED", err)))
	}
	pid, err := pidfdPID(procRoot, pidFD)
	if err != nil {
		return fail(err)
	}
	if pid <= 0 || int(cred.Pid) != pid {
		return fail(fmt.Errorf("qmp fd %d's peer is pid %d, the pidfd's process is pid %d: not the same qemu", qmpFD, cred.Pid, pid))
	}
	f := os.NewFile(uintptr(qmpFD), "qmp")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		unix.Close(pidFD)
		return Target{}, fmt.Errorf("qmp fd %d: %w", qmpFD, err)
	}
	return Target{PID: pid, PIDFD: pidFD, Conn: conn}, nil
}

// pidfdPID reads the pid a pidfd refers to from its fdinfo ("Pid:\t4121";
// -1 once the process has exited and been reaped).
func pidfdPID(procRoot string, fd int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/proc/self/fdinfo/%d", procRoot, fd))
	if err != nil {
		return 0, fmt.Errorf("pidfd %d: %w", fd, err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Pid:")); ok {
			pid, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return 0, fmt.Errorf("pidfd %d: fdinfo Pid %q: %w", fd, v, err)
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("fd %d is not a pidfd (no Pid in its fdinfo)", fd)
}

// attachSteps pin a running (paused) qemu and let it run.
var attachSteps = []step{
	{name: StepWaitQMP, fn: waitQMP},
	{name: StepQueryVCPUs, fn: queryVCPUs, pin: true},
	{name: StepPinVCPUs, fn: pinVCPUs, pin: true},
	{name: StepPinEmulator, fn: pinEmulator, pin: true},
	{name: StepCont, fn: cont},
}

// Attach pins the threads of a qemu started paused by someone else (the
// process qnuma exec'd into) as cfg's plan says, then lets the guest run,
// and returns; it does not supervise. On failure it kills qemu with SIGKILL
// (through the pidfd), unless cfg.BestEffort lets the VM run with warnings:
// qemu's own exit after a QMP quit is 0, and whoever started it must see
// that the launch failed. cfg.Argv, Env, stdio, Timeout and Hooks are not
// used.
func Attach(ctx context.Context, cfg Config, t Target) (Result, error) {
	r, err := newRun(cfg)
	if err != nil {
		t.Conn.Close()
		unix.Close(t.PIDFD)
		return Result{ExitCode: 1}, err
	}
	r.pid, r.conn = t.PID, t.Conn
	stopWatch := watchPidfd(t.PIDFD, r.exited)
	err = r.do(ctx, attachSteps)
	r.leaveRunning = true
	if err != nil {
		r.result.ExitCode = 1
		if !r.hasExited() {
			kerr := unix.PidfdSendSignal(t.PIDFD, unix.SIGKILL, nil, 0)
			switch {
			case kerr == nil:
				err = fmt.Errorf("%w; killed qemu (pid %d) so that its exit status shows the failure", err, r.pid)
			case !errors.Is(kerr, unix.ESRCH):
				err = errors.Join(err, fmt.Errorf("kill qemu (pid %d): %w", r.pid, os.NewSyscallError("pidfd_send_signal", kerr)))
			}
		}
	}
	r.cleanup()
	stopWatch()
	unix.Close(t.PIDFD)
	r.result.PID = r.pid
	r.result.VCPUThreads = r.vcpuThreads
	return r.result, err
}

// watchPidfd closes exited when the process behind pidfd ends. The poll is
// bounded so that stop can end the watch while the process lives on. The
// caller closes pidfd after stop.
func watchPidfd(pidfd int, exited chan struct{}) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
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
