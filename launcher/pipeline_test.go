package launcher

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/qnuma/qnuma/affinity/affinitytest"
)

// TestVCPUAndIOThreadQueriesGoTogether: query-iothreads is sent with
// query-cpus-fast, not after its answer, so that the two cost one round
// trip to qemu. The fake answers query-cpus-fast only once query-iothreads
// has arrived too; a launcher that waited in between would time out.
func TestVCPUAndIOThreadQueriesGoTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := testPlan(t, 1)
	cfg := baseConfig(t, []string{self}, p)
	cfg.Env = append(os.Environ(), fakeQEMUEnv+"=pipelined")
	cfg.QMPTimeout = 30 * time.Second // bounds only a failure
	cfg.Sys = &affinitytest.Fake{}
	cfg.Timeout = 100 * time.Millisecond // the fake runs until stopped
	cfg.Grace = 100 * time.Millisecond
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if !res.TimedOut || len(res.VCPUThreads) != 1 || res.VCPUThreads[0] != res.PID {
		t.Errorf("Launch = %+v, want a VM whose vCPU 0 is the fake's pid %d, stopped by --timeout", res, res.PID)
	}
	requireGone(t, res.PID)
}

// TestFirstQueriesGoBeforeTheGreeting: qmp_capabilities, query-cpus-fast
// and query-iothreads are on the wire before qemu greets (it runs them in
// order once its monitor is up), so that none costs a round trip after
// qemu is ready. The fake greets only once all three have come; a launcher
// that waited for the greeting first would time out.
func TestFirstQueriesGoBeforeTheGreeting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, []string{self}, testPlan(t, 1))
	cfg.Env = append(os.Environ(), fakeQEMUEnv+"=greet-last")
	cfg.QMPTimeout = 30 * time.Second // bounds only a failure
	cfg.Sys = &affinitytest.Fake{}
	cfg.Timeout = 100 * time.Millisecond
	cfg.Grace = 100 * time.Millisecond
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if !res.TimedOut || len(res.VCPUThreads) != 1 || res.VCPUThreads[0] != res.PID {
		t.Errorf("Launch = %+v, want a VM whose vCPU 0 is the fake's pid %d, stopped by --timeout", res, res.PID)
	}
	requireGone(t, res.PID)
}

// TestStartedHookRunsWhileQEMUStarts: Hooks.OnStarted (the ledger's write
// of qemu's pid) runs alongside the wait for QMP and the pins, not before
// them, and cont waits for it. The hook here returns only once the first
// thread has been pinned: run before the pins, it would wait in vain.
func TestStartedHookRunsWhileQEMUStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pinned := make(chan struct{})
	var once sync.Once
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	cfg := baseConfig(t, []string{self}, testPlan(t, 1))
	cfg.Env = append(os.Environ(), fakeQEMUEnv+"=pipelined")
	cfg.Sys = &affinitytest.Fake{Fail: func(c affinitytest.Call) error {
		if c.Op == "sched_setaffinity" {
			once.Do(func() { close(pinned) })
		}
		return nil
	}}
	cfg.UserPaused = true // the launch ends at cont, the VM left paused
	cfg.Timeout = 100 * time.Millisecond
	cfg.Grace = 100 * time.Millisecond
	cfg.Hooks.OnStarted = func(pid int, _ string) error {
		select {
		case <-pinned:
			time.Sleep(50 * time.Millisecond) // cont must wait for this
			note("hook returned")
		case <-time.After(5 * time.Second):
			note("hook saw no pin")
		}
		return nil
	}
	cfg.Hooks.OnRunning = func(int, []int) { note("running") }
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) == 0 || order[0] != "hook returned" {
		t.Errorf("events %q: want the hook to return after the first pin and before the VM was let go", order)
	}
	requireGone(t, res.PID)
}
