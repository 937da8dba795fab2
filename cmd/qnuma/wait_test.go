package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemutest"
)

// waitHost starts vm a holding both CPUs of this two-CPU host dedicated,
// so that a dedicated 1-vCPU VM does not fit while a runs: the qnuma
// binary, the state directory and a's qnuma.
func waitHost(t *testing.T) (bin, state string, a *proc) {
	t.Helper()
	qemutest.Require(t)
	twoCPUHost(t)
	bin, state = buildQnuma(t), t.TempDir()
	a = startQnuma(t, []string{bin}, append([]string{"run", "-v", "--state-dir", state, "--name", "a", "--cpus-dedicated", "--vcpus", "2", "--memory", "64M", "--"}, append(bareQEMU, "-S")...)...)
	a.waitLine(t, `^qnuma: step cont:`)
	return bin, state, a
}

// startWaiting starts vm c (dedicated, 1 vCPU) with --wait d and returns
// once it says it waits.
func startWaiting(t *testing.T, bin, state, d string) *proc {
	t.Helper()
	c := startQnuma(t, []string{bin}, append([]string{"run", "-v", "--state-dir", state, "--name", "c", "--wait", d, "--cpus-dedicated", "--vcpus", "1", "--memory", "64M", "--"}, append(bareQEMU, "-S")...)...)
	c.waitLine(t, `^qnuma: vm c does not fit now: .*; waiting up to `+d)
	return c
}

// psStates is each VM's state in qnuma ps --json.
func psStates(t *testing.T, bin, state string) map[string]string {
	t.Helper()
	out, err := exec.Command(bin, "ps", "--json", "--state-dir", state).Output()
	if err != nil {
		t.Fatalf("qnuma ps: %v", err)
	}
	var vms []psVM
	if err := json.Unmarshal(out, &vms); err != nil {
		t.Fatalf("qnuma ps --json: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, v := range vms {
		got[v.Name] = v.State
	}
	return got
}

// waitingFiles are the waiting entries in state.
func waitingFiles(t *testing.T, state string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(state, "*.waiting"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRunWaitStartsOnceRoomComes: c does not fit while a holds every CPU;
// with --wait it is listed as waiting, has not started its qemu, and
// starts as soon as a stops.
func TestRunWaitStartsOnceRoomComes(t *testing.T) {
	bin, state, a := waitHost(t)
	c := startWaiting(t, bin, state, "2m")
	if got := psStates(t, bin, state); got["a"] != "running" || got["c"] != "waiting" || len(got) != 2 {
		t.Errorf("qnuma ps while c waits: %v, want a running, c waiting", got)
	}
	if strings.Contains(c.stderr.String(), "started qemu") {
		t.Fatalf("c started while a holds every CPU:\n%s", c.stderr)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.wait(t); code != 0 {
		t.Fatalf("vm a exit %d", code)
	}
	c.waitLine(t, `^qnuma: vm c got room after waiting \S+: starting`)
	c.waitLine(t, `^qnuma: step cont:`)
	if got := psStates(t, bin, state); got["c"] != "running" || len(got) != 1 {
		t.Errorf("qnuma ps once c runs: %v, want c running alone", got)
	}
	if w := waitingFiles(t, state); len(w) != 0 {
		t.Errorf("waiting entries left once c started: %v", w)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.wait(t); code != 0 {
		t.Errorf("vm c exit %d:\n%s", code, c.stderr)
	}
}

// TestRunWaitTimesOut: with a still running when --wait runs out, c exits
// 2 saying what was short, and leaves no entry.
func TestRunWaitTimesOut(t *testing.T) {
	bin, state, _ := waitHost(t)
	c := startWaiting(t, bin, state, "1s")
	if code := c.wait(t); code != 2 {
		t.Errorf("exit %d, want 2:\n%s", code, c.stderr)
	}
	if out := c.stderr.String(); !strings.Contains(out, "vm c waited 1s for room and still does not fit; nothing started") || !strings.Contains(out, "does not fit") || strings.Contains(out, "started qemu") {
		t.Errorf("output:\n%s\nwant the wait's end and what was short", out)
	}
	if w := waitingFiles(t, state); len(w) != 0 {
		t.Errorf("waiting entries left: %v", w)
	}
	if got := psStates(t, bin, state); len(got) != 1 || got["a"] != "running" {
		t.Errorf("qnuma ps: %v, want a alone", got)
	}
}

// TestRunWaitSignal: SIGTERM or SIGINT while c waits removes its entry
// and exits 128 + the signal; the control without a signal still waits.
func TestRunWaitSignal(t *testing.T) {
	bin, state, _ := waitHost(t)
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		c := startWaiting(t, bin, state, "2m")
		if w := waitingFiles(t, state); len(w) != 1 {
			t.Fatalf("waiting entries %v, want c's", w)
		}
		c.cmd.Process.Signal(s)
		if code := c.wait(t); code != 128+int(s) {
			t.Errorf("%s: exit %d, want %d:\n%s", s, code, 128+int(s), c.stderr)
		}
		if !strings.Contains(c.stderr.String(), "stopped waiting for room on "+s.String()) {
			t.Errorf("%s: output:\n%s", s, c.stderr)
		}
		if w := waitingFiles(t, state); len(w) != 0 {
			t.Errorf("%s: waiting entries left: %v", s, w)
		}
	}
}

// TestRunWaitNeverFits: a VM no wait can fit (more dedicated vCPUs than
// the host has CPUs) exits 2 at once, recording nothing.
func TestRunWaitNeverFits(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	bin, state := buildQnuma(t), t.TempDir()
	out, err := exec.Command(bin, append([]string{"run", "--state-dir", state, "--wait", "10m", "--cpus-dedicated", "--vcpus", "3", "--memory", "64M", "--"}, append(bareQEMU, "-S")...)...).CombinedOutput()
	if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "would not fit this host even with every node's memory free and no other VM") {
		t.Errorf("exit %d:\n%s\nwant 2 at once, saying no wait helps", code, out)
	}
	if w := waitingFiles(t, state); len(w) != 0 {
		t.Errorf("waiting entries: %v", w)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatal(err)
	}
}

// TestWaitLoop drives the wait with a fake try: a change wakes it (its
// own writes are changes too, and each try waits waitGap after the last
// one), a fit returns the reservation, the wait's end the last refusal
// (exit 2), a signal its exit code; nothing else tries.
func TestWaitLoop(t *testing.T) {
	short := fmt.Errorf("place vm c: %w", &plan.FitError{Reason: "no node has 1 GiB free"})
	var out bytes.Buffer
	changed := make(chan struct{}, 1)
	changed <- struct{}{}
	var at []time.Time
	res, err := waitLoop(context.Background(), &out, "c", time.Hour, short, changed, nil, func() (*ledger.Reservation, error) {
		at = append(at, time.Now())
		if len(at) < 3 {
			changed <- struct{}{} // as this qnuma's own write of what is short
			return nil, short
		}
		return &ledger.Reservation{Entry: ledger.Entry{Name: "c"}}, nil
	})
	if err != nil || res == nil || len(at) != 3 {
		t.Fatalf("res %v, err %v after %d tries", res, err, len(at))
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < waitGap {
			t.Errorf("try %d came %s after the one before, under %s", i, gap, waitGap)
		}
	}
	if got := out.String(); !strings.HasPrefix(got, "qnuma: vm c does not fit now: no node has 1 GiB free; waiting up to 1h0m0s") || !strings.Contains(got, "qnuma: vm c got room after waiting ") {
		t.Errorf("output %q", got)
	}

	// The wait runs out: the last refusal, which is exit 2.
	_, err = waitLoop(context.Background(), io.Discard, "c", 10*time.Millisecond, short, nil, nil, func() (*ledger.Reservation, error) {
		t.Error("tried with no change and before the first tick")
		return nil, short
	})
	if !errors.Is(err, plan.ErrDoesNotFit) || !IsUsage(err) || !strings.Contains(err.Error(), "vm c waited 10ms for room and still does not fit") {
		t.Errorf("wait ran out: %v", err)
	}
	// A signal: 128 + its number.
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	_, err = waitLoop(context.Background(), io.Discard, "c", time.Hour, short, nil, sigs, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 143 || !strings.Contains(err.Error(), "stopped waiting for room on terminated") {
		t.Errorf("sigterm: %v", err)
	}
}

// TestRunWaitNegative: a negative --wait is refused when the flags are
// read, before anything is planned or started.
func TestRunWaitNegative(t *testing.T) {
	for _, tt := range []struct {
		wait string
		bad  bool
	}{{"-1s", true}, {"0s", false}, {"10m", false}} {
		var cli CLI
		_, err, _ := parseOnly(t, &cli, []string{"run", "--wait=" + tt.wait, "--", "qemu-system-x86_64"})
		if got := strings.Contains(err, "--wait -1s: want a duration"); got != tt.bad {
			t.Errorf("--wait %s: error %q", tt.wait, err)
		}
	}
}
