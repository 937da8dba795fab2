// Package numastattest starts a real, paused QEMU whose pid tests can
// sample: guest RAM from a bound memory backend, vCPU threads named.
package numastattest

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/memobj/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

// readyTimeout bounds QEMU's start; generous because CPUs are shared.
const readyTimeout = 60 * time.Second

// Args is the VM of the stat tests: 2 vCPUs under multi-threaded TCG and
// 64 MiB of guest RAM preallocated and bound to node 0.
var Args = []string{
	"-S", "-accel", "tcg,thread=multi", "-smp", "2", "-m", "64M",
	"-object", "memory-backend-ram,id=m0,size=64M,host-nodes=0,policy=bind,prealloc=on",
	"-machine", "pc,memory-backend=m0", "-display", "none", "-nodefaults",
	"-name", "stat-test,debug-threads=on",
}

// Start runs qemu-system-x86_64 with args and a QMP socket, and returns its
// pid once QMP answers (the machine, its RAM preallocated, exists then).
// It skips as qemutest.Require does; QEMU is killed when the test ends.
func Start(t testing.TB, args ...string) int {
	t.Helper()
	bin := qemutest.Require(t)
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	cmd := exec.Command(bin, append(args, "-qmp", "unix:"+sock+",server=on,wait=off")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	c, err := qmp.DialWhenReady(ctx, sock, exited)
	if err != nil {
		t.Fatalf("qemu %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	c.Close()
	return cmd.Process.Pid
}
