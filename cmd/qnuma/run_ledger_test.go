package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qnuma/qnuma/qemutest"
)

// TestRunLedgerDedicated proves that `qnuma run` plans around the VMs in
// the ledger: on this host, two dedicated 1-vCPU VMs get different CPUs, a
// third is refused with exit 2 while they run, a name in use is refused,
// and the entry of a qnuma killed with SIGKILL is reclaimed by the next run.
func TestRunLedgerDedicated(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	online := cpusAllowed(t, syscall.Getpid(), syscall.Getpid())
	if online != "0-1" {
		t.Skipf("needs a host of exactly two allowed CPUs (this process may use %s)", online)
	}
	state := t.TempDir()
	start := func(name string) (*proc, pins) {
		args := []string{"run", "-v", "--state-dir", state, "--name", name, "--cpus-dedicated", "--vcpus", "1", "--memory", "64M", "--"}
		p := startQnuma(t, []string{bin}, append(append(args, bareQEMU...), "-S")...)
		return p, p.readPins(t, 1)
	}
	pa, a := start("a")
	pb, b := start("b")
	if a.vcpuCPUs[0] == b.vcpuCPUs[0] {
		t.Fatalf("vms a and b both got dedicated cpu %s", a.vcpuCPUs[0])
	}
	for name, p := range map[string]pins{"a": a, "b": b} {
		if got := cpusAllowed(t, p.qemuPID, p.vcpuTID[0]); got != p.vcpuCPUs[0] {
			t.Errorf("vm %s vcpu 0 Cpus_allowed_list = %s, want its dedicated cpu %s", name, got, p.vcpuCPUs[0])
		}
	}

	third := exec.Command(bin, append([]string{"run", "--state-dir", state, "--cpus-dedicated", "--vcpus", "1", "--memory", "64M", "--"}, append(bareQEMU, "-S")...)...)
	out, err := third.CombinedOutput()
	if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "does not fit") {
		t.Errorf("third dedicated vm on a full host: exit %d, output:\n%s\nwant exit 2 and a does-not-fit table", code, out)
	}
	clash := exec.Command(bin, append([]string{"run", "--state-dir", state, "--name", "a", "--vcpus", "1", "--memory", "64M", "--"}, append(bareQEMU, "-S")...)...)
	out, err = clash.CombinedOutput()
	if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "already in use") {
		t.Errorf("second vm named a: exit %d, output:\n%s\nwant exit 2 naming the clash", code, out)
	}

	psOut, err := exec.Command(bin, "ps", "--json", "--state-dir", state).Output()
	if err != nil {
		t.Fatalf("qnuma ps: %v", err)
	}
	var listed []map[string]any
	if err := json.Unmarshal(psOut, &listed); err != nil {
		t.Fatalf("qnuma ps --json: %v\n%s", err, psOut)
	}
	if len(listed) != 2 {
		t.Errorf("qnuma ps lists %d vms, want a and b:\n%s", len(listed), psOut)
	}

	// SIGKILL leaves a's entry behind; qemu dies with it (Pdeathsig).
	pa.cmd.Process.Kill()
	pa.wait(t)
	waitGone(t, a.qemuPID)
	pc, c := start("c")
	if c.vcpuCPUs[0] != a.vcpuCPUs[0] {
		t.Errorf("vm c got cpu %s, want a's reclaimed cpu %s", c.vcpuCPUs[0], a.vcpuCPUs[0])
	}
	for _, p := range []*proc{pb, pc} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t); code != 0 {
			t.Errorf("qnuma exited %d after SIGTERM; stderr:\n%s", code, p.stderr)
		}
	}
	psOut, err = exec.Command(bin, "ps", "--json", "--state-dir", state).Output()
	if err != nil || strings.Contains(string(psOut), `"name"`) {
		t.Errorf("ledger after every vm ended: %v\n%s\nwant no entries", err, psOut)
	}
}

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// waitGone waits, within guard, until pid has exited (a zombie nobody
// reaps counts as exited).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i:]), ") Z") {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("pid %d still running", pid)
		}
	}
}
