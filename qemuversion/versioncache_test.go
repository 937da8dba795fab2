package qemuversion

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeQEMU writes a script that prints version and counts its runs in a
// file beside it.
func fakeQEMU(t *testing.T, dir, version string) (bin string, runs func() int) {
	t.Helper()
	bin = filepath.Join(dir, "qemu-system-x86_64")
	count := filepath.Join(dir, "runs")
	script := "#!/bin/sh\necho run >> " + count + "\necho 'QEMU emulator version " + version + "'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "run")
	}
}

func TestVersionCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bin, runs := fakeQEMU(t, dir, "7.2.5")
	c := VersionCache{Dir: filepath.Join(dir, "cache")}

	for i := 0; i < 3; i++ {
		v, err := c.Probe(ctx, bin)
		if err != nil {
			t.Fatal(err)
		}
		if v.String() != "7.2.5" {
			t.Fatalf("probe %d: version %s, want 7.2.5", i, v)
		}
	}
	if n := runs(); n != 1 {
		t.Errorf("binary ran %d times for 3 probes, want once", n)
	}

	// An upgrade replaces the binary: it is asked again.
	os.Remove(bin)
	bin, _ = fakeQEMU(t, dir, "9.2.0")
	if v, err := c.Probe(ctx, bin); err != nil || v.String() != "9.2.0" {
		t.Errorf("after an upgrade: version %v, %v; want 9.2.0", v, err)
	}
	if n := runs(); n != 2 {
		t.Errorf("binary ran %d times after the upgrade, want 2", n)
	}

	// A damaged cache is passed over.
	files, _ := filepath.Glob(filepath.Join(c.Dir, "qemu-version-*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files %v, want one", files)
	}
	os.WriteFile(files[0], []byte("{not json"), 0o644)
	if v, err := c.Probe(ctx, bin); err != nil || v.String() != "9.2.0" {
		t.Errorf("with a damaged cache: version %v, %v; want 9.2.0", v, err)
	}

	// No cache directory: every probe runs the binary.
	before := runs()
	if _, err := (VersionCache{}).Probe(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if runs() != before+1 {
		t.Error("a disabled cache did not run the binary")
	}

	// A missing binary is an error that names it, cache or not.
	if _, err := c.Probe(ctx, filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing binary: %v, want an error naming it", err)
	}
}

// TestVersionCached: Cached answers from the cache alone: nothing before
// a Probe stored the answer, never for a binary changed since, and it
// never runs the binary.
func TestVersionCached(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bin, runs := fakeQEMU(t, dir, "7.2.5")
	c := VersionCache{Dir: filepath.Join(dir, "cache")}
	if v, ok := c.Cached(bin); ok {
		t.Fatalf("Cached before any probe = %v, true", v)
	}
	if _, err := c.Probe(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Cached(bin); !ok || v.String() != "7.2.5" {
		t.Errorf("Cached after a probe = %v, %v; want 7.2.5, true", v, ok)
	}
	os.Remove(bin)
	bin, _ = fakeQEMU(t, dir, "9.2.0")
	if v, ok := c.Cached(bin); ok {
		t.Errorf("Cached for a replaced binary = %v, true; want not cached", v)
	}
	if _, ok := c.Cached(filepath.Join(dir, "nope")); ok {
		t.Error("Cached for a missing binary: true")
	}
	if _, ok := (VersionCache{}).Cached(bin); ok {
		t.Error("Cached without a cache directory: true")
	}
	if n := runs(); n != 1 {
		t.Errorf("binary ran %d times, want once (the probe's)", n)
	}
}

// TestProbeTimeout: a qemu whose -version hangs is killed, with everything
// it started, once the limit passes, and the error says so.
func TestProbeTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: skipped under -short")
	}
	old := probeTimeout
	probeTimeout = 300 * time.Millisecond
	t.Cleanup(func() { probeTimeout = old })
	dir := t.TempDir()
	bin := filepath.Join(dir, "qemu-system-x86_64")
	pidFile := filepath.Join(dir, "sleep.pid")
	script := "#!/bin/sh\nsleep 300 &\necho $! > " + pidFile + "\nwait\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := VersionCache{Dir: filepath.Join(dir, "cache")}.Probe(context.Background(), bin)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatal("the probe of a hanging qemu -version did not return")
	}
	if err == nil || !strings.Contains(err.Error(), "did not finish within 300ms") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("probe error %v, want the time limit named", err)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// Killed with its group; reaped by init, so wait for it to go.
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("the probe's child (sleep, pid %d) outlived the probe", pid)
}

// probeChildEnv makes the test binary a qnuma that probes the binary the
// variable names and waits: TestProbeDiesWithQnuma kills it mid-probe.
const probeChildEnv = "QNUMA_TEST_PROBE"

func TestMain(m *testing.M) {
	if bin := os.Getenv(probeChildEnv); bin != "" {
		ProbeVersion(context.Background(), bin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestProbeDiesWithQnuma: a qnuma killed while `qemu -version` runs takes
// the probe with it.
func TestProbeDiesWithQnuma(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: skipped under -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "qemu-system-x86_64")
	pidFile := filepath.Join(dir, "probe.pid")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho $$ > "+pidFile+".tmp\nmv "+pidFile+".tmp "+pidFile+"\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	q := exec.Command(self)
	q.Env = append(os.Environ(), probeChildEnv+"="+bin)
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	defer q.Wait()
	var pid int
	for i := 0; i < 600 && pid == 0; i++ { // bounded wait for the probe to start
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if pid == 0 {
		q.Process.Kill()
		t.Fatal("the probe never started")
	}
	q.Process.Kill()
	q.Wait()
	for i := 0; i < 100; i++ {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st), ") Z ") {
			return // gone, or dead and waiting for init to reap it
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("the probe (pid %d) outlived the qnuma that ran it", pid)
}
