package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// drainWait bounds how long qnuma copies qemu's stderr after qemu has
// exited: a child of qemu holding the pipe open (a network script, a
// daemon) must not keep qnuma alive.
const drainWait = time.Second

// start makes qnuma's QMP socketpair and starts qemu, paused, from a locked
// OS thread that carries the mempolicy.
func start(ctx context.Context, r *run) error {
	pair, err := NewQMPPair()
	if err != nil {
		return err
	}
	defer pair.QEMU.Close() // qemu holds its own copy once started
	fd, inherited, err := qmpFDFor()
	if err != nil {
		pair.Conn.Close()
		return err
	}
	defer closeAll(inherited)
	r.conn = pair.Conn
	qemuEnd := pair.QEMU
	if int(qemuEnd.Fd()) < fd { // only with stdin, stdout or stderr closed
		dup, err := unix.FcntlInt(qemuEnd.Fd(), unix.F_DUPFD_CLOEXEC, fd)
		if err != nil {
			return fmt.Errorf("qmp fd: %w", os.NewSyscallError("fcntl", err))
		}
		qemuEnd = os.NewFile(uintptr(dup), "qmp-qemu")
		defer qemuEnd.Close()
	}
	argv := r.cfg.Argv[1:len(r.cfg.Argv):len(r.cfg.Argv)]
	argv = append(argv, ExtraArgs(fd, r.cfg.Name, r.cfg.UserPaused, r.cfg.HasName)...)
	cmd := exec.Command(r.qemuPath, argv...)
	// The user's own inherited fds keep their numbers; qemu's end of the
	// pair comes right after them.
	cmd.ExtraFiles = append(inherited, qemuEnd)
	cmd.Args[0] = r.cfg.Argv[0]
	cmd.Env = r.cfg.Env
	cmd.Stdin = r.cfg.Stdin
	cmd.Stdout = r.cfg.Stdout
	r.stderr = newRing(8 << 10)
	cmd.Stderr = &stderrCopy{user: r.cfg.Stderr, ring: r.stderr}
	cmd.WaitDelay = drainWait
	// qemu dies with the thread that started it, so qnuma never leaves a
	// VM behind; it stays in qnuma's process group so the terminal's
	// job control treats the two as one (a -nographic console reads stdin).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if g := r.cfg.Cgroup; g != nil {
		if fd, ok := g.CloneFD(); ok {
			// Born in the VM's cgroup: not one page allocated outside it.
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		}
	}
	r.cmd = cmd
	if err := r.startLocked(); err != nil {
		return err
	}
	r.log.Info("started qemu", "pid", r.pid, "qmp-fd", fd, "argv", cmd.Args)
	if r.cfg.Hooks.OnStarted != nil {
		// The hook (the ledger's record of qemu's pid, a locked write)
		// runs while qemu starts up; cont and the launch's end wait for it.
		done := make(chan struct{})
		r.startedHook = done
		go func() {
			defer close(done)
			r.startedErr = r.cfg.Hooks.OnStarted(r.pid, "")
		}()
	}
	return nil
}

// waitStartedHook returns the OnStarted hook's error once it has returned
// (at once, nil, when there is none).
func (r *run) waitStartedHook() error {
	if r.startedHook == nil {
		return nil
	}
	<-r.startedHook
	return r.startedErr
}

// stderrCopy passes qemu's stderr to the user and keeps its tail. A
// user's side that fails (a closed pipe: `qnuma run ... 2>&1 | head`) is
// given up on, never an error: an error would stop the copy, and qemu would
// block on a full pipe or lose its messages.
type stderrCopy struct {
	user   io.Writer // nil: discard
	broken atomic.Bool
	ring   *ring
}

func (s *stderrCopy) Write(p []byte) (int, error) {
	s.ring.Write(p)
	if s.user != nil && !s.broken.Load() {
		if _, err := s.user.Write(p); err != nil {
			s.broken.Store(true)
		}
	}
	return len(p), nil
}

// ExtraArgs are the arguments qnuma adds to the user's qemu command: a
// private QMP monitor on the connected socket qemu inherits as fd, -S
// unless the user asked for it, and a name with thread names unless the
// user named the VM.
func ExtraArgs(fd int, name string, userPaused, hasName bool) []string {
	return append(qmpFDArgs(fd), holdArgs(name, userPaused, hasName)...)
}

// qmpFDArgs give qemu a QMP monitor on one end of a socketpair, passed as
// fd (QEMU 2.12+, which query-cpus-fast needs anyway). There is no path
// anyone could swap or dial, and nothing to clean up after a killed qnuma.
func qmpFDArgs(fd int) []string {
	return []string{
		"-chardev", fmt.Sprintf("socket,id=qnuma-qmp,fd=%d,server=off", fd),
		"-mon", "chardev=qnuma-qmp,mode=control",
	}
}

// QMPPair is a connected pair of unix sockets: Conn is qnuma's client end,
// QEMU the end qemu inherits (close-on-exec set: pass it as an ExtraFile or
// clear the flag before an exec).
type QMPPair struct {
	Conn net.Conn
	QEMU *os.File
}

// NewQMPPair makes the socketpair for a QMP monitor.
func NewQMPPair() (QMPPair, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return QMPPair{}, fmt.Errorf("make qmp socketpair: %w", os.NewSyscallError("socketpair", err))
	}
	mine := os.NewFile(uintptr(fds[0]), "qmp")
	defer mine.Close() // FileConn dups it
	conn, err := net.FileConn(mine)
	if err != nil {
		unix.Close(fds[1])
		return QMPPair{}, fmt.Errorf("make qmp socketpair: %w", err)
	}
	return QMPPair{Conn: conn, QEMU: os.NewFile(uintptr(fds[1]), "qmp-qemu")}, nil
}

// maxInheritedFD bounds the search for a free fd above the ones qnuma's
// parent handed down.
const maxInheritedFD = 1024

// qmpFDFor is the fd qemu gets its QMP end on: the first from 3 on that
// qnuma's parent did not hand down for qemu. inherited are copies of the
// handed-down fds below it, for exec.Cmd.ExtraFiles, which numbers its
// files from 3; the caller closes them once qemu has started.
func qmpFDFor() (fd int, inherited []*os.File, err error) {
	for fd = 3; inheritedFD(fd); fd++ {
		if fd >= maxInheritedFD {
			closeAll(inherited)
			return 0, nil, fmt.Errorf("qmp fd: fds 3-%d are all handed down to qemu", maxInheritedFD)
		}
		// Numbered above fd: exec moves a file numbered below its place
		// through fds that may be the user's.
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, fd)
		if err != nil {
			closeAll(inherited)
			return 0, nil, fmt.Errorf("qmp fd: keep inherited fd %d: %w", fd, os.NewSyscallError("fcntl", err))
		}
		inherited = append(inherited, os.NewFile(uintptr(dup), fmt.Sprintf("inherited-%d", fd)))
	}
	return fd, inherited, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// inheritedFD reports whether fd is open in qnuma without close-on-exec:
// handed down by qnuma's parent for qemu, so qnuma must not take its place.
func inheritedFD(fd int) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil && flags&unix.FD_CLOEXEC == 0
}

// holdArgs are -S unless the user asked for it, and a name with thread
// names unless the user named the VM.
func holdArgs(name string, userPaused, hasName bool) []string {
	var args []string
	if !userPaused {
		args = append(args, "-S")
	}
	if !hasName {
		n := "qnuma"
		if name != "" {
			n += "-" + name
		}
		args = append(args, "-name", n+",debug-threads=on")
	}
	return args
}

// startLocked starts qemu from a goroutine locked to its OS thread, which
// sets the mempolicy (per-thread state the child inherits) and then waits
// for qemu, so the thread lives exactly as long as qemu: Pdeathsig fires
// when the thread that started the child exits. The thread is never
// unlocked; it dies with the goroutine, taking its policy with it.
func (r *run) startLocked() error {
	mode, err := r.cfg.Placement.Mempolicy.Mode.Mode()
	if r.cfg.Placement.Mempolicy.Mode == "" {
		mode, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("mempolicy: %w", err)
	}
	nodes := r.cfg.Placement.Mempolicy.Nodes
	if r.cfg.Cgroup != nil {
		// The cgroup's cpuset.mems bounds qemu's own memory instead: a
		// task policy could never be changed from outside, and the kernel
		// would remap it by position when cpuset.mems changes.
		mode = 0
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if mode != 0 {
			err := r.sys.SetMempolicy(mode, nodes)
			if fb, ok := r.cfg.Placement.Mempolicy.Fallback(); ok && errors.Is(err, syscall.EINVAL) {
				// A kernel before 5.15 has no MPOL_PREFERRED_MANY: prefer
				// the first node, as the plan says it would.
				if fbMode, ferr := fb.Mode.Mode(); ferr == nil {
					if err = r.sys.SetMempolicy(fbMode, fb.Nodes); err == nil {
						r.warn(fmt.Sprintf("this kernel has no MPOL_PREFERRED_MANY: qemu's own memory prefers node %s only", fb.Nodes))
					}
				}
			}
			if err != nil {
				err = fmt.Errorf("set mempolicy %s nodes %s: %w", r.cfg.Placement.Mempolicy.Mode, nodes, err)
				if !r.cfg.BestEffort {
					started <- err
					return
				}
				r.warn(fmt.Sprintf("%v; starting qemu without it (--best-effort)", err))
			}
		}
		// On cgroup v1 this thread joins the VM's cgroup alone for the
		// fork, so that qemu is born there as CLONE_INTO_CGROUP does on
		// v2, and leaves it again.
		g := r.cfg.Cgroup
		born, joined := false, false
		if g != nil {
			_, born = g.CloneFD()
		}
		var back func() error
		if g != nil && !born {
			var err error
			if back, joined, err = g.JoinThread(); err != nil {
				started <- fmt.Errorf("start qemu in its cgroup: %w", err)
				return
			}
		}
		err := r.cmd.Start()
		if back != nil {
			if berr := back(); berr != nil {
				// This thread stays in the VM's cgroup, which could then
				// never be removed: it ends with this goroutine (locked,
				// so the runtime ends it), and a qemu that started is
				// stopped and reaped first, before its guest ran.
				if err == nil {
					r.cmd.Process.Kill()
					r.cmd.Wait()
					err = fmt.Errorf("%w; qemu (pid %d) stopped", berr, r.cmd.Process.Pid)
				}
				started <- err
				return
			}
		}
		if err != nil {
			started <- fmt.Errorf("start %s: %w", r.qemuPath, err)
			return
		}
		r.proc = r.cmd.Process
		r.pid = r.proc.Pid
		if g != nil && !born && !joined {
			// Moving a process into a systemd scope (or a v1 cpuset whose
			// thread could not join it) takes milliseconds: it runs while
			// qemu starts up, and the launch waits for it before the first
			// pin (the move resets every thread's affinity to the cgroup's
			// CPUs).
			r.cgroupDone = make(chan error, 1)
			pid := r.pid
			go func() { r.cgroupDone <- g.AddProc(context.Background(), pid) }()
		}
		started <- nil
		// Wait returns at most drainWait after qemu's exit, whoever
		// still holds its stderr.
		r.cmd.Wait()
		r.state = r.cmd.ProcessState
		r.exitedByItself.Store(!r.stopping.Load())
		close(r.exited)
	}()
	return <-started
}

// exitedError describes qemu's early exit with the tail of its stderr.
func (r *run) exitedError() error {
	if r.state == nil { // attached: not qnuma's child, its status is not ours to read
		return fmt.Errorf("qemu (pid %d) exited", r.pid)
	}
	var msg string
	if ws, ok := r.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		msg = KilledMessage(r.pid, ws.Signal()) + fmt.Sprintf(" (exit status %d)", exitCode(r.state))
	} else {
		msg = fmt.Sprintf("qemu (pid %d) exited with status %d", r.pid, exitCode(r.state))
	}
	if tail := r.stderr.Tail(10); tail != "" {
		msg += ": " + tail
	}
	return errors.New(msg)
}

// KilledMessage says that a signal killed qemu, with a hint for SIGKILL,
// which nobody sends a VM by accident: most often the kernel's OOM killer.
func KilledMessage(pid int, sig syscall.Signal) string {
	msg := fmt.Sprintf("qemu (pid %d) was killed by signal %d (%s)", pid, int(sig), unix.SignalName(sig))
	if sig == syscall.SIGKILL {
		msg += "; if nobody killed it, the kernel's OOM killer may have (see dmesg)"
	}
	return msg
}
