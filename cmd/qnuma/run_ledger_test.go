package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// twoCPUHost skips unless this process may use exactly CPUs 0-1, the host
// the real-QEMU ledger tests are written for.
func twoCPUHost(t *testing.T) {
	t.Helper()
	if online := cpusAllowed(t, syscall.Getpid(), syscall.Getpid()); online != "0-1" {
		t.Skipf("needs a host of exactly two allowed CPUs (this process may use %s)", online)
	}
}

// threadCPUs is every thread of pid with its Cpus_allowed_list.
func threadCPUs(t *testing.T, pid int) map[int]string {
	t.Helper()
	des, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, de := range des {
		tid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		out[tid] = cpusAllowed(t, pid, tid)
	}
	return out
}

// A shared VM's vCPUs and emulator threads float over both CPUs: a
// dedicated VM after it is refused, saying CPUs are short, rather than
// given a CPU the shared VM runs on (issue 11, item 7).
func TestRunLedgerSharedThenDedicated(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := []string{"run", "-v", "--state-dir", state, "--name", "shared", "--vcpus", "1", "--memory", "64M", "--"}
	ps := startQnuma(t, []string{bin}, append(append(args, bareQEMU...), "-S")...)
	shared := ps.readPins(t, 1)
	if shared.vcpuCPUs[0] != "0-1" {
		t.Fatalf("shared vcpu on %s, want it floating over 0-1", shared.vcpuCPUs[0])
	}
	ded := exec.Command(bin, append([]string{"run", "--state-dir", state, "--timeout", "5s", "--cpus-dedicated", "--vcpus", "1", "--memory", "64M", "--"}, append(bareQEMU, "-S")...)...)
	out, err := ded.CombinedOutput()
	if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "CPUs are short") {
		t.Errorf("dedicated vm beside a shared vm on both cpus: exit %d, output:\n%s\nwant exit 2 saying CPUs are short", code, out)
	}
	ps.cmd.Process.Signal(syscall.SIGTERM)
	if code := ps.wait(t); code != 0 {
		t.Errorf("qnuma exited %d after SIGTERM; stderr:\n%s", code, ps.stderr)
	}
}

// A dedicated VM's emulator threads stay on its own CPU, so a second
// dedicated VM's vCPU CPU has no thread of the first (issue 11, item 8);
// emulator CPUs moved with --emulator-cpus are recorded and held the same
// way, and emulator CPUs on another VM's dedicated CPU are refused.
func TestRunLedgerDedicatedEmulatorThreads(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	start := func(name string, extra ...string) (*proc, pins) {
		args := append([]string{"run", "-v", "--state-dir", state, "--name", name, "--cpus-dedicated", "--vcpus", "1", "--memory", "64M"}, extra...)
		p := startQnuma(t, []string{bin}, append(append(append(args, "--"), bareQEMU...), "-S")...)
		return p, p.readPins(t, 1)
	}
	pa, a := start("a")
	pb, b := start("b")
	if a.emuCPUs != a.vcpuCPUs[0] {
		t.Errorf("vm a's emulator threads on %s, want its own dedicated cpu %s", a.emuCPUs, a.vcpuCPUs[0])
	}
	for tid, cpus := range threadCPUs(t, a.qemuPID) {
		if strings.Contains(cpus, b.vcpuCPUs[0]) || cpus != a.vcpuCPUs[0] {
			t.Errorf("vm a's thread %d may run on %s, want only a's cpu %s (b's vcpu has %s)", tid, cpus, a.vcpuCPUs[0], b.vcpuCPUs[0])
		}
	}
	for _, p := range []*proc{pa, pb} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t); code != 0 {
			t.Errorf("qnuma exited %d after SIGTERM; stderr:\n%s", code, p.stderr)
		}
	}

	// c's emulator threads moved to the other CPU: that CPU is held too.
	pc, c := start("c", "--emulator-cpus", "1")
	if c.emuCPUs != "1" || c.vcpuCPUs[0] != "0" {
		t.Fatalf("vm c: vcpu on %s, emulator threads on %s; want 0 and 1", c.vcpuCPUs[0], c.emuCPUs)
	}
	d := exec.Command(bin, append([]string{"run", "--state-dir", state, "--timeout", "5s", "--cpus-dedicated", "--vcpus", "1", "--memory", "64M", "--"}, append(bareQEMU, "-S")...)...)
	out, err := d.CombinedOutput()
	if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "does not fit") {
		t.Errorf("dedicated vm while c's emulator threads hold cpu 1: exit %d, output:\n%s\nwant exit 2, does not fit", code, out)
	}
	e := exec.Command(bin, append([]string{"run", "--state-dir", state, "--timeout", "5s", "--vcpus", "1", "--memory", "64M", "--emulator-cpus", "0", "--"}, append(bareQEMU, "-S")...)...)
	out, err = e.CombinedOutput()
	if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "--emulator-cpus 0") || !strings.Contains(string(out), "dedicated to vm c") {
		t.Errorf("emulator threads on c's dedicated cpu: exit %d, output:\n%s\nwant exit 2 naming --emulator-cpus and vm c", code, out)
	}
	pc.cmd.Process.Signal(syscall.SIGTERM)
	if code := pc.wait(t); code != 0 {
		t.Errorf("qnuma exited %d after SIGTERM; stderr:\n%s", code, pc.stderr)
	}
}

// While another process holds the ledger's lock, qnuma run says what it
// waits for, and goes on once the lock is free (issue 11, item 1).
func TestRunSaysWhatItWaitsFor(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	lock := filepath.Join(state, "lock")
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-v", "--state-dir", state, "--vcpus", "1", "--memory", "64M", "--"}
	p := startQnuma(t, []string{bin}, append(append(args, bareQEMU...), "-S")...)
	p.waitLine(t, `^qnuma: waiting for the ledger lock `+regexp.QuoteMeta(lock)+` \(`)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	p.readPins(t, 1)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("qnuma exited %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
}
