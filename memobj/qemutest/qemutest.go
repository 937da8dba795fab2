// Package qemutest starts a real QEMU for tests: paused (-S), without
// default devices, under TCG, with a QMP socket, and talks to it with
// qnuma's qmp client. It proves that rendered arguments are accepted by the
// QEMU on this machine.
package qemutest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/qmp"
)

// Binary is the emulator the tests run.
const Binary = "qemu-system-x86_64"

// startTimeout bounds QEMU's start and each QMP exchange; generous because
// the test machine's CPUs are shared.
const startTimeout = 60 * time.Second

// exitGrace is how long a QEMU whose QMP connection broke has to exit.
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

// VM is a started, paused QEMU.
type VM struct {
	QMP    *qmp.Client
	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited chan struct{}
}

// Start runs QEMU with args after `-S -nodefaults -display none -accel
// tcg` and a QMP socket in a temporary directory, and returns once QMP
// answers. When QEMU exits first, the error holds what it printed. The VM
// is quit and reaped when the test ends.
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
	argv := append([]string{"-S", "-nodefaults", "-display", "none", "-accel", "tcg"}, args...)
	argv = append(argv, "-qmp", "unix:"+strings.ReplaceAll(sock, ",", ",,")+",server=on,wait=off")
	vm := &VM{cmd: exec.Command(bin, argv...), exited: make(chan struct{})}
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
	c, err := qmp.DialWhenReady(ctx, sock, vm.exited)
	if err != nil {
		// QEMU listens before it builds the machine, so a refused
		// configuration can also show as a connection reset: wait for the
		// exit that explains it.
		if !errors.Is(err, qmp.ErrExited) {
			select {
			case <-vm.exited:
			case <-time.After(exitGrace):
				return nil, fmt.Errorf("qemu %s: %w", strings.Join(args, " "), err)
			}
		}
		return nil, fmt.Errorf("qemu %s: exited: %s", strings.Join(args, " "), strings.TrimSpace(vm.stderr.String()))
	}
	vm.QMP = c
	return vm, nil
}

// Memdevs is query-memdev's answer.
func (vm *VM) Memdevs() ([]qmp.Memdev, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return vm.QMP.QueryMemdev(ctx)
}

// stop quits QEMU over QMP and waits for it, killing it if it lingers or
// never answered.
func (vm *VM) stop() {
	if vm.QMP == nil {
		vm.cmd.Process.Kill() // never answered QMP; may be gone already
		<-vm.exited
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	vm.QMP.Quit(ctx)
	cancel()
	vm.QMP.Close()
	select {
	case <-vm.exited:
	case <-time.After(startTimeout):
		vm.cmd.Process.Kill()
		<-vm.exited
	}
}
