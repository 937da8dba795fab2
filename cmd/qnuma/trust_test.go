package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

// TestRunClosedStderrKeepsVM: `qnuma run ... 2>&1 | head -c1`: qnuma's and
// qemu's stderr is a pipe nobody reads any more. The VM runs on until its
// --timeout (124): neither SIGPIPE nor a stopped copy ends it.
func TestRunClosedStderrKeepsVM(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	args := append([]string{"run", "-v", "--state-dir", t.TempDir(), "--vcpus", "1", "--memory", "64M", "--timeout", "2s", "--grace", "1s", "--"}, bareQEMU...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = w // -v writes step lines to it at once
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(guard):
		cmd.Process.Kill()
		t.Fatal("qnuma did not exit")
	}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() || ws.ExitStatus() != 124 {
		t.Errorf("qnuma ended with %v, want exit 124 after the VM ran until --timeout", cmd.ProcessState)
	}
}

// TestPinHelperTrustsNoEnvironment: the hidden helper run by hand with a
// crafted job naming a directory and a pid deletes nothing, signals
// nobody and fails.
func TestPinHelperTrustsNoEnvironment(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	job, _ := json.Marshal(map[string]any{"PID": victim.Process.Pid, "Socket": filepath.Join(dir, "s"), "Dir": dir,
		"VCPUs": []string{"0"}, "Emulator": "0", "QMPTimeout": int64(time.Second)})
	for _, args := range [][]string{{pinHelperArg}, {pinHelperArg, "detach"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "QNUMA_PIN_JOB="+string(job))
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("qnuma %q with a crafted job exited 0, want a failure; output %s", args, out)
		}
		if !strings.Contains(string(out), "started by qnuma --exec only") {
			t.Errorf("qnuma %q said %q, want a refusal", args, out)
		}
	}
	// Handed fds 3-5 of someone else's making (a job, a socketpair of the
	// test's, a pidfd of the victim): the socket's peer is not the victim.
	jr, jw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	jw.Write(job)
	jw.Close()
	defer jr.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock, peer := os.NewFile(uintptr(fds[0]), "sock"), os.NewFile(uintptr(fds[1]), "peer")
	defer sock.Close()
	defer peer.Close()
	pidfd, err := unix.PidfdOpen(victim.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	pf := os.NewFile(uintptr(pidfd), "pidfd")
	defer pf.Close()
	cmd := exec.Command(bin, pinHelperArg)
	cmd.ExtraFiles = []*os.File{jr, sock, pf}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not the same qemu") {
		t.Errorf("helper with crafted fds: %v, %q; want a refusal naming the mismatch", err, out)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the helper deleted %s: %v", keep, err)
	}
	if err := victim.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the victim (pid %d) is gone: %v", victim.Process.Pid, err)
	}
	if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", victim.Process.Pid)); strings.Contains(string(st), ") T ") {
		t.Errorf("the victim was stopped: %s", st)
	}
}

// fakeSMPQEMU is a qemu-system-x86_64 that runs the real one with two
// vCPUs whatever the command line says, so the plan's one vCPU does not
// match and the launch fails after qemu started.
func fakeSMPQEMU(t *testing.T) string {
	t.Helper()
	real, err := exec.LookPath(qemutest.Binary)
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, qemutest.Binary)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec "+real+" \"$@\" -smp 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestNumactlExecFailedLaunchIsNotZero: with --exec, qnuma is qemu; a
// launch that fails in the helper must not end as qemu's 0 after a QMP
// quit: the helper says why and kills qemu.
func TestNumactlExecFailedLaunchIsNotZero(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	fake := fakeSMPQEMU(t)
	args := []string{"--exec", "--membind=0", "--state-dir=" + t.TempDir(), "--", fake}
	p := startQnuma(t, []string{bin}, append(args, bareQEMU[1:]...)...)
	if code := p.wait(t); code == 0 {
		t.Fatalf("qnuma --exec exited 0 after a failed launch; stderr:\n%s", p.stderr)
	}
	if ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("qnuma --exec ended with %v, want killed by SIGKILL (137 to a shell) by the helper", p.cmd.ProcessState)
	}
	p.waitLine(t, `qemu has 2 vcpus, the plan has 1.*killed qemu`)
}

// TestRunKilledQEMUIsReported: qemu killed by SIGKILL (as the OOM killer
// does) ends qnuma with 137 and a line saying so, without -v.
func TestRunKilledQEMUIsReported(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := append([]string{"run", "--state-dir", state, "--vcpus", "1", "--memory", "64M", "--"}, bareQEMU...)
	p := startQnuma(t, []string{bin}, append(args, "-S")...)
	pid := waitQEMUInLedger(t, bin, state)
	syscall.Kill(pid, syscall.SIGKILL)
	if code := p.wait(t); code != 137 {
		t.Errorf("qnuma exited %d, want 137", code)
	}
	want := fmt.Sprintf("qemu (pid %d) was killed by signal 9 (SIGKILL)", pid)
	if s := p.stderr.String(); !strings.Contains(s, want) || !strings.Contains(s, "OOM killer") {
		t.Errorf("stderr %q lacks %q with the OOM hint", s, want)
	}
}

// waitQEMUInLedger polls `qnuma ps --json` until one VM has a qemu pid.
func waitQEMUInLedger(t *testing.T, bin, state string) int {
	t.Helper()
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		vms := psJSON(t, bin, state)
		if len(vms) == 1 && vms[0].PID != 0 {
			return vms[0].PID
		}
		time.Sleep(100 * time.Millisecond) // a poll of another process's state, bounded by guard
	}
	t.Fatal("no qemu pid in the ledger")
	return 0
}

func psJSON(t *testing.T, bin, state string) []psVM {
	t.Helper()
	out, err := exec.Command(bin, "ps", "--json", "--state-dir", state).Output()
	if err != nil {
		t.Fatalf("qnuma ps: %v", err)
	}
	var vms []psVM
	if err := json.Unmarshal(out, &vms); err != nil {
		t.Fatalf("qnuma ps --json: %v: %s", err, out)
	}
	return vms
}

// TestNumactlVMsAreInTheLedger: a VM started with numactl's spelling is
// listed by ps, with its qemu pid (qnuma's own with --exec).
func TestNumactlVMsAreInTheLedger(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	for _, mode := range []string{"launch", "exec"} {
		t.Run(mode, func(t *testing.T) {
			state := t.TempDir()
			args := []string{"--membind=0", "--physcpubind=0", "--state-dir=" + state}
			if mode == "exec" {
				args = append(args, "--exec")
			}
			args = append(append(args, "--"), bareQEMU...)
			p := startQnuma(t, []string{bin}, append(args, "-m", "64", "-S")...)
			pid := waitQEMUInLedger(t, bin, state)
			if mode == "exec" && pid != p.cmd.Process.Pid {
				t.Errorf("ledger's qemu pid %d, want qnuma's own %d (it became qemu)", pid, p.cmd.Process.Pid)
			}
			syscall.Kill(pid, syscall.SIGTERM)
			p.wait(t)
			if vms := psJSON(t, bin, state); len(vms) != 0 {
				t.Errorf("ps lists %+v after qemu exited, want nothing", vms)
			}
		})
	}
}

// TestNumactlVMHoldsItsCPUs: a dedicated VM planned after a numactl-spelled
// VM pinned to CPU 0 does not get CPU 0. (Needs the ledger to record every
// CPU a VM's threads use, not only dedicated ones.)
func TestNumactlVMHoldsItsCPUs(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := append([]string{"--membind=0", "--physcpubind=0", "--state-dir=" + state, "--"}, bareQEMU...)
	p := startQnuma(t, []string{bin}, append(args, "-m", "64", "-S")...)
	pid := waitQEMUInLedger(t, bin, state)
	defer func() { syscall.Kill(pid, syscall.SIGTERM); p.wait(t) }()
	out, err := exec.Command(bin, "plan", "--json", "--state-dir", state, "--cpus-dedicated", "--vcpus", "1", "--memory", "64M").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "does not fit") || strings.Contains(string(out), "no node") {
			return // a 1-CPU host: refusing is right too
		}
		t.Fatalf("qnuma plan: %v: %s", err, out)
	}
	var pl planJSON
	if err := json.Unmarshal(out, &pl); err != nil {
		t.Fatalf("plan --json: %v: %s", err, out)
	}
	for _, v := range pl.VCPUs {
		cpus, err := cpulist.Parse(v.HostCPUs)
		if err != nil {
			t.Fatal(err)
		}
		if cpus.Contains(0) {
			t.Errorf("dedicated vcpu %d got cpus %s, which the numactl VM (pid %d) runs on", v.VCPU, v.HostCPUs, pid)
		}
	}
}

// TestRunUserFD3ReachesQEMU: an fd the user hands down (3) reaches qemu at
// its number; qnuma's QMP monitor takes the next free one.
func TestRunUserFD3ReachesQEMU(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "user-fd"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	args := append([]string{"run", "-v", "--state-dir", t.TempDir(), "--vcpus", "1", "--memory", "64M", "--"}, bareQEMU...)
	cmd := exec.Command(bin, append(args, "-S")...)
	cmd.ExtraFiles = []*os.File{f}
	p := startCmd(t, cmd)
	got := p.readPins(t, 1)
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", got.qemuPID))
	if err != nil || link != f.Name() {
		t.Errorf("qemu's fd 3 is %q (%v), want the user's %s", link, err, f.Name())
	}
	if !strings.Contains(p.stderr.String(), "fd=4,server=off") {
		t.Errorf("qnuma's monitor is not on fd 4; stderr:\n%s", p.stderr)
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	p.wait(t)
}

// TestKilledQnumaLeavesNoRuntimeDir: a qnuma killed mid-run leaves nothing
// in $TMPDIR or $XDG_RUNTIME_DIR: its QMP monitor is a socketpair, with no
// directory to clean up.
func TestKilledQnumaLeavesNoRuntimeDir(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	tmp, xdg, state := t.TempDir(), t.TempDir(), t.TempDir()
	os.Chmod(xdg, 0o700)
	args := append([]string{"run", "--state-dir", state, "--vcpus", "1", "--memory", "64M", "--"}, bareQEMU...)
	p := startQnuma(t, []string{"env", "TMPDIR=" + tmp, "XDG_RUNTIME_DIR=" + xdg, bin}, append(args, "-S")...)
	pid := waitQEMUInLedger(t, bin, state)
	p.cmd.Process.Kill()
	p.wait(t)
	for _, d := range []string{tmp, xdg} {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 0 {
			t.Errorf("a killed qnuma left %v in %s", ents, d)
		}
	}
	// Pdeathsig takes qemu with it; wait for that before leaving.
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNumactlCommandGetsDefaultSIGPIPE: the plain-command path execs the
// command with SIGPIPE as qnuma found it, not ignored.
func TestNumactlCommandGetsDefaultSIGPIPE(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	out, err := exec.Command(bin, "--membind=0", "--", "grep", "^SigIgn:", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("SigIgn line %q", out)
	}
	mask, err := strconv.ParseUint(f[1], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	if mask&(1<<(uint(syscall.SIGPIPE)-1)) != 0 {
		t.Errorf("the command runs with SIGPIPE ignored (SigIgn %s)", f[1])
	}
}

// TestNumactlExecHelperSurvivesClosedStderr: the --exec helper's -v lines
// go to a stderr nobody reads; it must still pin and resume the guest.
func TestNumactlExecHelperSurvivesClosedStderr(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	userSock := filepath.Join(t.TempDir(), "u.sock")
	args := append([]string{"--exec", "--verbose", "--membind=0", "--state-dir=" + t.TempDir(), "--"}, bareQEMU...)
	cmd := exec.Command(bin, append(args, "-m", "64", "-qmp", "unix:"+userSock+",server=on,wait=off")...)
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	mon, err := qmp.DialWhenReady(ctx, userSock, exited)
	if err != nil {
		t.Fatalf("qemu's qmp: %v", err)
	}
	defer mon.Close()
	st, err := mon.QueryStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for !st.Running {
		select {
		case ev := <-mon.Events():
			st.Running = ev.Name == "RESUME"
		case <-ctx.Done():
			t.Fatal("the helper never resumed the vm")
		}
	}
	mon.Quit(ctx)
}

// TestRunNamesTheSocketQEMUWaitsOn: a user -qmp server socket without
// wait=off makes qemu wait for a client before it answers qnuma; the
// launch then fails naming that socket, not only "did not answer"
// (issue 11 item 22). The control, with wait=off, runs.
func TestRunNamesTheSocketQEMUWaitsOn(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	for _, tc := range []struct {
		opt        string
		qmpTimeout string
		wantCode   int
	}{
		// The waiting socket must time out; the control gets the default
		// budget, so a slow start on a loaded machine is not mistaken for it.
		{"server=on", "3s", 1},
		{"server=on,wait=off", "60s", 0},
	} {
		sock := filepath.Join(t.TempDir(), "u.sock")
		qmpOpt := "unix:" + sock + "," + tc.opt
		args := append([]string{"run", "--state-dir", t.TempDir(), "--qmp-timeout", tc.qmpTimeout, "--timeout", "1s", "--grace", "1s",
			"--vcpus", "1", "--memory", "64M", "--"}, bareQEMU...)
		p := startQnuma(t, []string{bin}, append(args, "-qmp", qmpOpt)...)
		code := p.wait(t)
		if tc.wantCode == 0 {
			if code != 124 {
				t.Errorf("-qmp %s: qnuma exited %d, want 124 (ran until --timeout); stderr:\n%s", qmpOpt, code, p.stderr)
			}
			continue
		}
		s := p.stderr.String()
		if code != tc.wantCode || !strings.Contains(s, "-qmp "+qmpOpt) || !strings.Contains(s, "wait=off") {
			t.Errorf("-qmp %s: qnuma exited %d, want %d naming the socket and wait=off; stderr:\n%s", qmpOpt, code, tc.wantCode, s)
		}
	}
}
