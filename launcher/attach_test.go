package launcher

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

// startPaused starts qemu as the numactl --exec path does: ExtraArgs added,
// so it waits paused for the helper.
func startPaused(t *testing.T, vcpus int, extra ...string) (*exec.Cmd, Target) {
	t.Helper()
	dir, err := os.MkdirTemp(shortTempDir(t), "rt")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "qmp.sock")
	argv := append(qemuArgv(vcpus, extra...), ExtraArgs(sock, "attach", false, false)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = &testWriter{t: t}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, Target{PID: cmd.Process.Pid, Socket: sock, RuntimeDir: dir}
}

func TestAttachPinsAndResumes(t *testing.T) {
	qemutest.Require(t)
	userSock := filepath.Join(shortTempDir(t), "user.sock")
	cmd, target := startPaused(t, 2, "-qmp", "unix:"+userSock+",server=on,wait=off")
	p := testPlan(t, 2)
	cfg := Config{Plan: p, QMPTimeout: 20 * time.Second, Grace: 3 * time.Second}
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
	if _, err := os.Stat(target.RuntimeDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runtime dir %s left behind (stat: %v)", target.RuntimeDir, err)
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

func TestAttachFailureStopsQEMU(t *testing.T) {
	qemutest.Require(t)
	cmd, target := startPaused(t, 1)
	p := testPlan(t, 1)
	p.VCPUs[0].HostCPUs = cpuset.New(4000)
	cfg := Config{Plan: p, QMPTimeout: 20 * time.Second, Grace: 3 * time.Second}
	_, err := Attach(context.Background(), cfg, target)
	if err == nil || !strings.Contains(err.Error(), "pin vcpu 0") {
		t.Fatalf("Attach error = %v, want the refused pin of vcpu 0", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("qemu still runs after a failed Attach")
	}
}

func TestAttachToAMissingProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process: skipped under -short")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true: ", err)
	}
	_, err := Attach(context.Background(), Config{Plan: testPlan(t, 1)}, Target{PID: cmd.Process.Pid, Socket: "/nonexistent"})
	if err == nil || !strings.Contains(err.Error(), "pidfd_open") {
		t.Fatalf("Attach to a reaped pid = %v, want a pidfd_open error", err)
	}
}
