package launcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/qemutest"
)

// launchGuarded runs Launch and fails the test if it does not return
// within guard: a hang guard, not a timing assertion.
func launchGuarded(t *testing.T, cfg Config, guard time.Duration) (Result, error) {
	t.Helper()
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := Launch(context.Background(), cfg)
		done <- out{res, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-time.After(guard):
		t.Fatalf("Launch still running after %v", guard)
		return Result{}, nil
	}
}

// TestForeignThreadIsNotPinned: a thread id from QMP that is not one of
// qemu's (here: the test process, qemu's parent) is refused, and that
// process's affinity stays as it was.
func TestForeignThreadIsNotPinned(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	cpus := hostCPUs(t)
	if len(cpus) < 2 {
		t.Skip("needs 2 usable CPUs to see an affinity change")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before, err := affinity.Real{}.SchedGetaffinity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, what string
		bestEffort bool
	}{
		{"vcpu", "vcpu thread id", false},
		{"iothread", "io thread id", false},
		{"vcpu best effort", "vcpu thread id", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testPlan(t, 1)
			p.VCPUs[0].HostCPUs = cpuset.New(cpus[0])
			p.EmulatorCPUs = cpuset.New(cpus[0])
			cfg := baseConfig(t, []string{self}, p)
			cfg.Env = append(os.Environ(), fakeQEMUEnv+"=foreign-tid", "QNUMA_FAKE_TID="+strconv.Itoa(os.Getpid()))
			if tt.name == "iothread" {
				cfg.Env = append(cfg.Env, "QNUMA_FAKE_IOTHREAD=1")
			}
			cfg.Timeout = 200 * time.Millisecond // should the launch wrongly succeed
			cfg.Grace = 200 * time.Millisecond
			cfg.BestEffort = tt.bestEffort
			res, err := launchGuarded(t, cfg, time.Minute)
			want := fmt.Sprintf("%s %d from qmp is not a thread of qemu", tt.what, os.Getpid())
			if tt.bestEffort {
				// The VM runs, unpinned, with a warning naming the tid.
				found := false
				for _, w := range res.Warnings {
					found = found || strings.Contains(w, want) && strings.Contains(w, "--best-effort")
				}
				if err != nil || !found || res.ExitCode != 124 {
					t.Errorf("Launch with best effort = %+v, %v; want a run until the timeout with a warning %q", res, err, want)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Launch error = %v, want one with %q", err, want)
				}
				if res.ExitCode != 1 {
					t.Errorf("exit code %d, want 1", res.ExitCode)
				}
			}
			after, err := affinity.Real{}.SchedGetaffinity(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			if !after.Equals(before) {
				t.Errorf("the test process's affinity changed from %s to %s", before, after)
				affinity.Real{}.SchedSetaffinity(os.Getpid(), before)
			}
			requireGone(t, res.PID)
		})
	}
}

// TestStalledQMPCommandEndsTheLaunch: a qemu that greets but never answers
// query-cpus-fast ends the launch after QMPTimeout, with qemu stopped.
func TestStalledQMPCommandEndsTheLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, []string{self}, testPlan(t, 1))
	cfg.Env = append(os.Environ(), fakeQEMUEnv+"=stall-query")
	// Long enough for the race-built fake to start and greet on a loaded
	// machine: only its unanswered query may run out of time.
	cfg.QMPTimeout = 5 * time.Second
	res, err := launchGuarded(t, cfg, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "did not answer query-cpus-fast within 5s") {
		t.Fatalf("Launch error = %v, want the stalled query-cpus-fast named", err)
	}
	if res.ExitCode != 1 {
		t.Errorf("exit code %d, want 1", res.ExitCode)
	}
	requireGone(t, res.PID)
}

// TestQMPTimeoutNamesWaitingSockets: when the user's own socket makes qemu
// wait for a client, the timeout says which and what to do.
func TestQMPTimeoutNamesWaitingSockets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, []string{self}, testPlan(t, 1))
	cfg.Env = append(os.Environ(), fakeQEMUEnv+"=silent")
	cfg.QMPTimeout = 300 * time.Millisecond
	cfg.WaitingSockets = []string{"-qmp unix:/x.sock,server=on"}
	_, err = launchGuarded(t, cfg, time.Minute)
	for _, w := range []string{"did not answer", "-qmp unix:/x.sock,server=on", "connect one, or add wait=off"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Launch error = %v, want %q in it", err, w)
		}
	}
}

// TestStderrHeldByQEMUChild: a child of qemu that keeps qemu's stderr open
// does not keep the launch alive after qemu has exited.
func TestStderrHeldByQEMUChild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "sleep.pid")
	script := filepath.Join(dir, "qemu")
	// The sleep holds stderr (a pipe to qnuma) but not the QMP fd.
	body := "#!/bin/sh\necho going away >&2\nsleep 300 </dev/null >/dev/null 3>&- 4>&- &\necho $! >" + pidFile + "\nexit 3\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	var stderr strings.Builder
	cfg := baseConfig(t, []string{script}, testPlan(t, 1))
	cfg.Stderr = &lockedWriter{w: &stderr}
	res, err := launchGuarded(t, cfg, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exited with status 3") || !strings.Contains(err.Error(), "going away") {
		t.Errorf("Launch error = %v, want qemu's exit status 3 with its message", err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code %d, want qemu's 3", res.ExitCode)
	}
}

// TestBrokenStderrKeepsQEMU: the user's side of qemu's stderr failing (a
// closed pipe) neither stops the copy nor the VM: a qemu that writes more
// than a pipe holds to its stderr still gets to run until its timeout.
func TestBrokenStderrKeepsQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "qemu")
	body := "#!/bin/sh\nhead -c 300000 /dev/zero | tr '\\0' x >&2\nexec " + self + " \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // every write to w now fails with EPIPE
	defer w.Close()
	cfg := baseConfig(t, []string{script}, testPlan(t, 1))
	cfg.Env = append(os.Environ(), fakeQEMUEnv+"=ok")
	cfg.Stderr = w
	cfg.Timeout = 200 * time.Millisecond
	cfg.Grace = 200 * time.Millisecond
	res, err := launchGuarded(t, cfg, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 124 || !res.TimedOut {
		t.Errorf("result %+v, want the VM run until its timeout (124)", res)
	}
}

// TestKilledQEMUIsReported: qemu killed by a signal nobody in qnuma sent
// ends with 128+signal and a warning that says so.
func TestKilledQEMUIsReported(t *testing.T) {
	qemutest.Require(t)
	cfg := baseConfig(t, qemuArgv(1, "-S"), testPlan(t, 1))
	cfg.UserPaused = true
	cfg.Hooks.OnRunning = func(pid int, _ []int) { syscall.Kill(pid, syscall.SIGKILL) }
	res, err := launchGuarded(t, cfg, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 137 {
		t.Errorf("exit code %d, want 137", res.ExitCode)
	}
	want := fmt.Sprintf("qemu (pid %d) was killed by signal 9 (SIGKILL)", res.PID)
	found := false
	for _, w := range res.Warnings {
		found = found || strings.Contains(w, want) && strings.Contains(w, "dmesg")
	}
	if !found {
		t.Errorf("warnings %q lack %q with the OOM hint", res.Warnings, want)
	}
}

// TestNoKillWarningForOwnStop: a kill qnuma itself did (after
// --timeout's grace) is not reported as an outside kill.
func TestNoKillWarningForOwnStop(t *testing.T) {
	qemutest.Require(t)
	cfg := baseConfig(t, qemuArgv(1), testPlan(t, 1))
	cfg.Timeout = 500 * time.Millisecond
	cfg.Grace = 500 * time.Millisecond
	res, err := launchGuarded(t, cfg, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w, "was killed by signal") {
			t.Errorf("warning %q after qnuma's own kill", w)
		}
	}
}

// lockedWriter lets a strings.Builder take qemu's stderr from the copy
// goroutine while the test reads it.
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
