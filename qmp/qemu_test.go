package qmp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/qnuma/qnuma/qemutest"
)

// qemuTimeout bounds the whole real-QEMU test so a wedged QEMU fails it
// instead of hanging; nothing asserts on it.
const qemuTimeout = 60 * time.Second

func TestRealQEMU(t *testing.T) {
	qemu := qemutest.Require(t)
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	cmd := exec.Command(qemu,
		"-S", "-nodefaults", "-display", "none",
		"-accel", "tcg,thread=multi", "-smp", "4", "-m", "128M",
		"-object", "memory-backend-ram,id=m0,size=128M",
		"-machine", "pc,memory-backend=m0",
		"-object", "iothread,id=io0",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", qemu, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	pid := cmd.Process.Pid

	ctx, cancel := context.WithTimeout(context.Background(), qemuTimeout)
	defer cancel()
	c, err := DialWhenReady(ctx, sock, exited)
	if err != nil {
		if errors.Is(err, ErrExited) {
			<-exited
			t.Fatalf("%v; qemu: %v: %s", err, waitErr, stderr.Bytes())
		}
		t.Fatalf("DialWhenReady: %v", err)
	}
	defer c.Close()
	if g := c.Greeting(); g.Version.Major < 2 {
		t.Errorf("greeting version = %+v, want QEMU's", g.Version)
	}

	st, err := c.QueryStatus(ctx)
	if err != nil {
		t.Fatalf("QueryStatus: %v", err)
	}
	if st.Running || (st.Status != "prelaunch" && st.Status != "paused") {
		t.Errorf("QueryStatus of a qemu started with -S = %+v, want not running, prelaunch or paused", st)
	}

	cpus, err := c.QueryCPUsFast(ctx)
	if err != nil {
		t.Fatalf("QueryCPUsFast: %v", err)
	}
	if len(cpus) != 4 {
		t.Fatalf("QueryCPUsFast returned %d vCPUs, want 4: %+v", len(cpus), cpus)
	}
	seen := map[int]bool{}
	for i, cpu := range cpus {
		if cpu.CPUIndex != i {
			t.Errorf("vCPU %d has cpu-index %d", i, cpu.CPUIndex)
		}
		if seen[cpu.ThreadID] || cpu.ThreadID == pid {
			t.Errorf("vCPU %d thread %d is shared or is qemu's main thread (pid %d)", i, cpu.ThreadID, pid)
		}
		seen[cpu.ThreadID] = true
		assertTask(t, pid, cpu.ThreadID, fmt.Sprintf("vCPU %d", i))
	}

	threads, err := c.QueryIOThreads(ctx)
	if err != nil {
		t.Fatalf("QueryIOThreads: %v", err)
	}
	if len(threads) != 1 || threads[0].ID != "io0" || seen[threads[0].ThreadID] {
		t.Errorf("QueryIOThreads = %+v, want io0 on its own thread", threads)
	} else {
		assertTask(t, pid, threads[0].ThreadID, "iothread io0")
	}

	devs, err := c.QueryMemdev(ctx)
	if err != nil {
		t.Fatalf("QueryMemdev: %v", err)
	}
	if len(devs) != 1 || devs[0].ID != "m0" || devs[0].Size != 128<<20 || devs[0].Policy != "default" {
		t.Errorf("QueryMemdev = %+v, want m0 of 128 MiB, policy default", devs)
	}

	var qerr *Error
	if err := c.Execute(ctx, "no-such-command", nil, nil); !errors.As(err, &qerr) || qerr.Class != "CommandNotFound" {
		t.Errorf("unknown command: %v, want a *Error of class CommandNotFound", err)
	}

	if err := c.Cont(ctx); err != nil {
		t.Fatalf("Cont: %v", err)
	}
	if st, err := c.QueryStatus(ctx); err != nil || !st.Running || st.Status != "running" {
		t.Errorf("QueryStatus after cont = %+v, %v; want running", st, err)
	}
	waitEvent(ctx, t, c, "RESUME")

	if err := c.Quit(ctx); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("qemu after quit: %v: %s", waitErr, stderr.Bytes())
		}
	case <-ctx.Done():
		t.Fatal("qemu still running after quit")
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Error("client not done after qemu exited")
	}
}

// assertTask checks that tid is a thread of process pid.
func assertTask(t *testing.T, pid, tid int, what string) {
	t.Helper()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid)); err != nil {
		t.Errorf("%s: thread %d is not a thread of qemu (pid %d): %v", what, tid, pid, err)
	}
}

// waitEvent reads events until one named name arrives.
func waitEvent(ctx context.Context, t *testing.T, c *Client, name string) {
	t.Helper()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("connection closed before event %s: %v", name, c.Err())
			}
			if ev.Name == name {
				if ev.Timestamp.IsZero() {
					t.Errorf("event %s has no timestamp", name)
				}
				return
			}
		case <-ctx.Done():
			t.Fatalf("no %s event: %v", name, ctx.Err())
		}
	}
}
