package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSocketPath is sun_path's size less its NUL.
const maxSocketPath = 107

// start makes the runtime directory and starts qemu, paused, from a locked
// OS thread that carries the mempolicy.
func start(ctx context.Context, r *run) error {
	dir, err := MakeRuntimeDir(r.cfg.RuntimeParent)
	if err != nil {
		return err
	}
	r.dir = dir
	r.sock = filepath.Join(dir, "qmp.sock")
	if len(r.sock) > maxSocketPath {
		return fmt.Errorf("qmp socket path %s is longer than %d bytes", r.sock, maxSocketPath)
	}
	argv := r.cfg.Argv[1:len(r.cfg.Argv):len(r.cfg.Argv)]
	var qmpFile *os.File
	if inheritedFD(qmpFD) {
		// The user handed qemu an fd 3 of their own (a tap, say): keep it,
		// and let qemu make the socket.
		argv = append(argv, ExtraArgs(r.sock, r.cfg.Name, r.cfg.UserPaused, r.cfg.HasName)...)
	} else {
		if qmpFile, err = listenQMP(r.sock); err != nil {
			return err
		}
		defer qmpFile.Close() // qemu holds its own copy once started
		argv = append(argv, qmpFDArgs(qmpFD)...)
		argv = append(argv, holdArgs(r.cfg.Name, r.cfg.UserPaused, r.cfg.HasName)...)
	}
	cmd := exec.Command(r.qemuPath, argv...)
	if qmpFile != nil {
		cmd.ExtraFiles = []*os.File{qmpFile} // becomes fd 3 (qmpFD)
	}
	cmd.Args[0] = r.cfg.Argv[0]
	cmd.Env = r.cfg.Env
	cmd.Stdin = r.cfg.Stdin
	cmd.Stdout = r.cfg.Stdout
	r.stderr = newRing(8 << 10)
	if r.cfg.Stderr != nil {
		cmd.Stderr = io.MultiWriter(r.cfg.Stderr, r.stderr)
	} else {
		cmd.Stderr = r.stderr
	}
	// qemu dies with the thread that started it, so qnuma never leaves a
	// VM behind; it stays in qnuma's process group so the terminal's
	// job control treats the two as one (a -nographic console reads stdin).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r.cmd = cmd
	if err := r.startLocked(); err != nil {
		return err
	}
	r.log.Info("started qemu", "pid", r.pid, "qmp", r.sock, "argv", cmd.Args)
	if r.cfg.Hooks.OnStarted != nil {
		r.cfg.Hooks.OnStarted(r.pid, r.sock)
	}
	return nil
}

// ExtraArgs are the arguments qnuma adds to the user's qemu command: a
// private QMP monitor, -S unless the user asked for it, and a name with
// thread names unless the user named the VM.
func ExtraArgs(sock, name string, userPaused, hasName bool) []string {
	return append([]string{"-qmp", "unix:" + sock + ",server=on,wait=off"}, holdArgs(name, userPaused, hasName)...)
}

// qmpFD is the fd qemu gets qnuma's listening QMP socket on: the first of
// exec.Cmd's ExtraFiles.
const qmpFD = 3

// qmpFDArgs give qemu a QMP monitor on a listening socket qnuma made and
// passes as fd (QEMU 2.12+, which query-cpus-fast needs anyway): qnuma
// connects at once, with no polling for the socket to appear, and the
// connection fails at once if qemu exits first.
func qmpFDArgs(fd int) []string {
	return []string{
		"-chardev", fmt.Sprintf("socket,id=qnuma-qmp,fd=%d,server=on,wait=off", fd),
		"-mon", "chardev=qnuma-qmp,mode=control",
	}
}

// listenQMP makes the listening unix socket at path and returns its fd as
// a file for qemu to inherit. The socket file stays when qnuma's listener
// closes: qemu listens on it from then on.
func listenQMP(path string) (*os.File, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("make qmp socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	f, err := l.File()
	l.Close()
	if err != nil {
		return nil, fmt.Errorf("make qmp socket %s: %w", path, err)
	}
	return f, nil
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
	mode, err := r.cfg.Plan.Mempolicy.Mode.Mode()
	if r.cfg.Plan.Mempolicy.Mode == "" {
		mode, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("mempolicy: %w", err)
	}
	nodes := r.cfg.Plan.Mempolicy.Nodes
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if mode != 0 {
			if err := r.sys.SetMempolicy(mode, nodes); err != nil {
				err = fmt.Errorf("set mempolicy %s nodes %s: %w", r.cfg.Plan.Mempolicy.Mode, nodes, err)
				if !r.cfg.BestEffort {
					started <- err
					return
				}
				r.warn(fmt.Sprintf("%v; starting qemu without it (--best-effort)", err))
			}
		}
		if err := r.cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", r.qemuPath, err)
			return
		}
		r.proc = r.cmd.Process
		r.pid = r.proc.Pid
		started <- nil
		r.cmd.Wait()
		r.state = r.cmd.ProcessState
		r.exitedByItself.Store(!r.stopping.Load())
		close(r.exited)
	}()
	return <-started
}

// MakeRuntimeDir makes a private (0700) directory for the QMP socket under
// parent, or under $XDG_RUNTIME_DIR (when usable) or os.TempDir() when
// parent is "".
func MakeRuntimeDir(parent string) (string, error) {
	if parent == "" {
		parent = os.TempDir()
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && unix.Access(x, unix.W_OK|unix.X_OK) == nil {
			parent = x
		}
	}
	dir, err := os.MkdirTemp(parent, "qnuma-")
	if err != nil {
		return "", fmt.Errorf("make runtime directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", errors.Join(fmt.Errorf("make runtime directory: %w", err), os.RemoveAll(dir))
	}
	return dir, nil
}

// exitedError describes qemu's early exit with the tail of its stderr.
func (r *run) exitedError() error {
	if r.state == nil { // attached: not qnuma's child, its status is not ours to read
		return fmt.Errorf("qemu (pid %d) exited", r.pid)
	}
	msg := fmt.Sprintf("qemu (pid %d) exited with status %d", r.pid, exitCode(r.state))
	if tail := r.stderr.Tail(10); tail != "" {
		msg += ": " + tail
	}
	return errors.New(msg)
}
