package launcher

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

// startPaused starts qemu as the numactl --exec path does: ExtraArgs added,
// so it waits paused for the helper, its monitor on a socketpair.
func startPaused(t *testing.T, vcpus int, extra ...string) (*exec.Cmd, Target) {
	t.Helper()
	pair, err := NewQMPPair()
	if err != nil {
		t.Fatal(err)
	}
	defer pair.QEMU.Close()
	argv := append(qemuArgv(vcpus, extra...), ExtraArgs(3, "attach", false, false)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = []*os.File{pair.QEMU}
	cmd.Stderr = &testWriter{t: t}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, Target{PID: cmd.Process.Pid, PIDFD: pidfd, Conn: pair.Conn}
}

func TestAttachPinsAndResumes(t *testing.T) {
	qemutest.Require(t)
	userSock := filepath.Join(shortTempDir(t), "user.sock")
	cmd, target := startPaused(t, 2, "-qmp", "unix:"+userSock+",server=on,wait=off")
	p := testPlan(t, 2)
	cfg := Config{Placement: p.Placement(), QMPTimeout: 20 * time.Second, Grace: 3 * time.Second}
	res, err := Attach(context.Background(), cfg, target)
	if err != nil {
		t.Fatal(err)
	}
	for i, tid := range res.VCPUThreads {
		got, err := affinity.CPUsAllowed("/", target.PID, tid)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equals(p.VCPUs[i].HostCPUs) {
			t.Errorf("vcpu %d Cpus_allowed_list = %s, want %s", i, got, p.VCPUs[i].HostCPUs)
		}
	}
	got, err := affinity.CPUsAllowed("/", target.PID, target.PID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equals(p.EmulatorCPUs) {
		t.Errorf("main thread Cpus_allowed_list = %s, want %s", got, p.EmulatorCPUs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mon, err := qmp.Dial(ctx, userSock)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	st, err := mon.QueryStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running {
		t.Errorf("vm status %q after Attach, want running", st.Status)
	}
	if cmd.ProcessState != nil {
		t.Error("qemu exited after a successful Attach")
	}
}

// TestAttachFailureKillsQEMU: a failed attach ends qemu with SIGKILL, not
// a QMP quit (status 0), so that whoever waits for qemu (the shell that ran
// qnuma --exec) sees the launch failed.
func TestAttachFailureKillsQEMU(t *testing.T) {
	qemutest.Require(t)
	cmd, target := startPaused(t, 1)
	p := testPlan(t, 1)
	p.VCPUs[0].HostCPUs = cpuset.New(4000)
	cfg := Config{Placement: p.Placement(), QMPTimeout: 20 * time.Second, Grace: 3 * time.Second}
	_, err := Attach(context.Background(), cfg, target)
	if err == nil || !strings.Contains(err.Error(), "pin vcpu 0") || !strings.Contains(err.Error(), "killed qemu") {
		t.Fatalf("Attach error = %v, want the refused pin of vcpu 0 and the kill", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("qemu still runs after a failed Attach")
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("qemu ended with %v, want killed by SIGKILL (a non-zero status)", cmd.ProcessState)
	}
}

// TestTargetFromFDsChecksThePeer: a socket whose peer is not the pidfd's
// process (a hand-run helper given a pid to signal) is refused.
func TestTargetFromFDsChecksThePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process: skipped under -short")
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	pidfd, err := unix.PidfdOpen(sleep.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	_, err = TargetFromFDs(fds[0], pidfd, "/")
	if err == nil || !strings.Contains(err.Error(), "not the same qemu") {
		t.Fatalf("TargetFromFDs(socket made by pid %d, pidfd of pid %d) = %v, want a refusal", os.Getpid(), sleep.Process.Pid, err)
	}

	// The peer and the pidfd agree: accepted.
	self, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fds2, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds2[1])
	tg, err := TargetFromFDs(fds2[0], self, "/")
	if err != nil || tg.PID != os.Getpid() {
		t.Fatalf("TargetFromFDs(own socketpair, own pidfd) = %+v, %v; want pid %d", tg, err, os.Getpid())
	}
	tg.Conn.Close()
	unix.Close(tg.PIDFD)
}

func TestPidfdPIDRefusesOtherFDs(t *testing.T) {
	if _, err := pidfdPID("/", 0); err == nil || !strings.Contains(err.Error(), "not a pidfd") {
		t.Fatalf("pidfdPID(stdin) = %v, want 'not a pidfd'", err)
	}
}
