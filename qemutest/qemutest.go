// Package qemutest starts real QEMU for the tests of every package: Require
// skips a test, saying why, when it may not or cannot start QEMU; Start runs
// a paused, guestless VM with a QMP socket and stops it when the test ends.
//
// It imports nothing of qnuma's, so that any package's tests can use it (qmp's
// own tests included), and it is imported by tests only, never by the
// binary. It speaks just enough QMP to wait for QEMU and to ask it one thing
// (Execute), with a peer that is not the code under test.
package qemutest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the emulator the tests run.
const Binary = "qemu-system-x86_64"

// Base comes first on the command line of every VM Start runs: paused,
// without default devices or a display, under TCG with a thread per vCPU.
// Arguments given to Start must not repeat these options.
var Base = []string{"-S", "-nodefaults", "-display", "none", "-accel", "tcg,thread=multi"}

// StatArgs is the VM of the stat tests (numastat, qnuma stat): 2 vCPUs, 64
// MiB of guest RAM preallocated and bound to host node 0, threads named
// ("CPU 0/TCG").
var StatArgs = []string{
	"-smp", "2", "-m", "64M",
	"-object", "memory-backend-ram,id=m0,size=64M,host-nodes=0,policy=bind,prealloc=on",
	"-machine", "pc,memory-backend=m0",
	"-name", "stat-test,debug-threads=on",
}

// startTimeout bounds QEMU's start and each QMP exchange; generous because
// the test machine's CPUs are shared. Nothing asserts on it.
const startTimeout = 60 * time.Second

// exitGrace is how long QEMU has to exit after it broke a connection or
// was sent SIGTERM.
const exitGrace = 10 * time.Second

// Require returns the path of QEMU or skips the test: under -short, since it
// starts a process, or when QEMU is not installed.
func Require(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts qemu: skipped under -short")
	}
	p, err := exec.LookPath(Binary)
	if err != nil {
		t.Skipf("%s not installed (scripts/deps.sh installs it): %v", Binary, err)
	}
	return p
}

// VM is a started QEMU, paused unless a test resumed it.
type VM struct {
	cmd    *exec.Cmd
	socket string
	stderr lockedBuffer
	exited chan struct{}
}

// Start runs QEMU with Base, args and a QMP socket in a temporary directory,
// and returns once QMP greets (QEMU has built the machine then, its RAM
// preallocated if asked). When QEMU exits first, or breaks the connection
// and exits, the error holds what it printed. It skips as Require does.
// QEMU is stopped (SIGTERM, then SIGKILL) and reaped when the test ends.
func Start(t testing.TB, args ...string) (*VM, error) {
	t.Helper()
	bin := Require(t)
	// Not t.TempDir: test names make paths past the 108 bytes a unix
	// socket path may have, and put commas in them.
	dir, err := os.MkdirTemp("", "qemutest")
	if err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "qmp.sock")
	argv := slices.Concat(Base, args, []string{"-qmp", "unix:" + strings.ReplaceAll(sock, ",", ",,") + ",server=on,wait=off"})
	vm := &VM{cmd: exec.Command(bin, argv...), socket: sock, exited: make(chan struct{})}
	vm.cmd.Stderr = &vm.stderr
	if err := vm.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		vm.cmd.Wait()
		close(vm.exited)
	}()
	t.Cleanup(vm.stop)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := vm.waitReady(ctx); err != nil {
		return nil, fmt.Errorf("qemu %s: %w", strings.Join(args, " "), err)
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "debug-threads=on") }) {
		if err := vm.waitVCPUNames(ctx, smpCount(args)); err != nil {
			return nil, fmt.Errorf("qemu %s: %w", strings.Join(args, " "), err)
		}
	}
	return vm, nil
}

// waitVCPUNames waits until n threads carry a vCPU's name ("CPU 0/TCG"):
// QEMU names a thread from inside it once it runs, which under load can
// be after QMP answers, and tests find vCPU threads by their names.
func (vm *VM) waitVCPUNames(ctx context.Context, n int) error {
	task := filepath.Join("/proc", fmt.Sprint(vm.PID()), "task")
	for {
		named := 0
		ents, _ := os.ReadDir(task)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(task, e.Name(), "comm")); err == nil && strings.HasPrefix(string(b), "CPU ") {
				named++
			}
		}
		if named >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d vcpu threads named: %w", named, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// smpCount is the vCPU count of -smp N... in args (1 without -smp).
func smpCount(args []string) int {
	for i, a := range args {
		if a == "-smp" && i+1 < len(args) {
			v, _, _ := strings.Cut(args[i+1], ",")
			v = strings.TrimPrefix(v, "cpus=")
			var n int
			if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
				return n
			}
		}
	}
	return 1
}

// MustStart is Start that fails the test when QEMU does not start.
func MustStart(t testing.TB, args ...string) *VM {
	t.Helper()
	vm, err := Start(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// StartPID is MustStart for tests that look at the process only from
// outside (/proc): it returns QEMU's pid.
func StartPID(t testing.TB, args ...string) int {
	t.Helper()
	return MustStart(t, args...).PID()
}

// PID is QEMU's process id.
func (vm *VM) PID() int { return vm.cmd.Process.Pid }

// Socket is the path of QEMU's QMP socket. QEMU serves one connection at
// a time; Execute uses one while it runs.
func (vm *VM) Socket() string { return vm.socket }

// Exited is closed once QEMU has exited and been reaped.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// Stderr is what QEMU has printed so far.
func (vm *VM) Stderr() string { return vm.stderr.String() }

// waitReady dials the QMP socket until QEMU greets on it, watching QEMU's
// exit and ctx.
func (vm *VM) waitReady(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := dialQMP(ctx, vm.socket)
		if err == nil {
			err = c.greeting()
			c.Close()
			if err == nil {
				return nil
			}
			// QEMU listens before it builds the machine, so a refused
			// configuration can show as a broken connection: wait for
			// the exit that explains it.
			select {
			case <-vm.exited:
				return vm.exitError()
			case <-time.After(exitGrace):
				return fmt.Errorf("qmp greeting: %w", err)
			}
		}
		select {
		case <-vm.exited:
			return vm.exitError()
		case <-ctx.Done():
			return fmt.Errorf("wait for qmp on %s: %w (last: %v)", vm.socket, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (vm *VM) exitError() error {
	return fmt.Errorf("exited (%v): %s", vm.cmd.ProcessState, strings.TrimSpace(vm.stderr.String()))
}

// stop ends QEMU with SIGTERM, or SIGKILL when it lingers, and reaps it.
func (vm *VM) stop() {
	select {
	case <-vm.exited:
		return
	default:
	}
	vm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-vm.exited:
	case <-time.After(exitGrace):
		vm.cmd.Process.Kill()
		<-vm.exited
	}
}

// lockedBuffer is QEMU's stderr, read while exec's copier writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
