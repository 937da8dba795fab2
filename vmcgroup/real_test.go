package vmcgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"k8s.io/utils/cpuset"
)

// requireRealHost returns this machine's host when a VM's cgroup can be
// made on it (root, a v1 cpuset hierarchy or cgroup v2 without systemd),
// and skips with the reason otherwise.
func requireRealHost(t *testing.T) Host {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP: -short: makes cgroups on this machine")
	}
	h, err := Detect("/")
	if err != nil {
		t.Fatal(err)
	}
	switch h.Kind {
	case None:
		t.Skipf("SKIP: %s", h.Why)
	case V2Systemd:
		t.Skip("SKIP: systemd runs here: this test makes plain cgroups only (TestSystemdScope checks the scope's commands)")
	}
	return h
}

// statusList is a field of /proc/PID/status such as Cpus_allowed_list.
func statusList(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("pid %d: no %s", pid, field)
	return ""
}

// On this machine (v1 cpuset hierarchy here; v2 elsewhere): a group is
// made, a process put in it (born there on v2) may run only on its CPUs and
// nodes, Of finds it, SetCPUs changes its affinity, Remove refuses while it
// runs and removes the group after. Negative control: a process outside
// (this test) has none of it, and Of says so.
func TestRealGroup(t *testing.T) {
	h := requireRealHost(t)
	ctx := context.Background()
	cpus, mems, err := h.available()
	if err != nil {
		t.Fatal(err)
	}
	all := cpus.List()
	first, last := cpuset.New(all[0]), cpuset.New(all[len(all)-1])
	node := cpuset.New(mems.List()[0])
	name := fmt.Sprintf("vmcgroup-test-%d", os.Getpid())
	g, err := h.Create(ctx, name, last, node)
	if err != nil {
		t.Fatal(err)
	}
	dir := g.Dir()
	t.Cleanup(func() {
		if err := g.Remove(ctx); err != nil {
			t.Error(err)
		}
	})
	if want := filepath.Join(h.Mount, Dir, name); dir != want {
		t.Errorf("dir %s, want %s", dir, want)
	}
	if h.Kind == V1 {
		if b, _ := os.ReadFile(filepath.Join(dir, "cpuset.memory_migrate")); strings.TrimSpace(string(b)) != "1" {
			t.Errorf("memory_migrate %q", b)
		}
	}

	sleep := exec.Command("sleep", "300")
	fd, born := g.CloneFD()
	if born {
		sleep.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	pid := sleep.Process.Pid
	reaped := false
	stop := func() {
		if !reaped {
			sleep.Process.Kill()
			sleep.Wait()
			reaped = true
		}
	}
	defer stop()
	if !born {
		if err := g.AddProc(ctx, pid); err != nil {
			t.Fatal(err)
		}
	}
	if got := statusList(t, pid, "Cpus_allowed_list"); got != last.String() {
		t.Errorf("pid %d may run on %s, want %s", pid, got, last)
	}
	if got := statusList(t, pid, "Mems_allowed_list"); got != node.String() {
		t.Errorf("pid %d may use nodes %s, want %s", pid, got, node)
	}
	if h.Kind == V1 {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cpuset", pid)); strings.TrimSpace(string(b)) != "/qnuma/"+name {
			t.Errorf("/proc/%d/cpuset: %q", pid, b)
		}
	}
	if pids, err := g.Procs(); err != nil || len(pids) != 1 || pids[0] != pid {
		t.Errorf("Procs: %v, %v", pids, err)
	}
	of, err := Of("/", pid)
	if err != nil {
		t.Fatal(err)
	}
	if of.Name() != name || of.Dir() != dir || !of.CPUs().Equals(last) || !of.Mems().Equals(node) {
		t.Errorf("Of: %s %s cpus %s mems %s", of.Name(), of.Dir(), of.CPUs(), of.Mems())
	}
	of.Close()

	// Negative control: this test runs outside the group.
	if got := statusList(t, os.Getpid(), "Cpus_allowed_list"); got == last.String() && !first.Equals(last) {
		t.Errorf("the test itself is limited to %s", got)
	}
	if _, err := Of("/", os.Getpid()); !errors.Is(err, ErrNotQnuma) {
		t.Errorf("Of(self): %v", err)
	}

	if !first.Equals(last) {
		if err := g.SetCPUs(ctx, first); err != nil {
			t.Fatal(err)
		}
		if got := statusList(t, pid, "Cpus_allowed_list"); got != first.String() {
			t.Errorf("after SetCPUs %s: pid %d may run on %s", first, pid, got)
		}
	}
	if _, err := g.SetMems(ctx, node); err != nil {
		t.Fatal(err)
	}

	if err := g.Remove(ctx); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove while pid %d runs: %v", pid, err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := g.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after Remove: %v", dir, err)
	}
	// A second Create of the name (the group is gone) works again.
	g2, err := h.Create(ctx, name, last, node)
	if err != nil {
		t.Fatal(err)
	}
	g = g2
}

// ReapStale removes an empty cgroup named after a pid that is gone, and
// leaves one named after a live pid and one holding a process.
func TestReapStale(t *testing.T) {
	h := requireRealHost(t)
	ctx := context.Background()
	avail, mems, err := h.available()
	if err != nil {
		t.Fatal(err)
	}
	// A pid that is gone: a child reaped.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	dead := c.Process.Pid
	names := map[string]string{
		"dead":  fmt.Sprintf("reaptest-%d", dead),
		"alive": fmt.Sprintf("reaptest-%d", os.Getpid()),
		"busy":  fmt.Sprintf("reapbusy-%d", dead),
	}
	groups := map[string]*Group{}
	for k, n := range names {
		g, err := h.Create(ctx, n, avail, mems)
		if err != nil {
			t.Fatal(err)
		}
		groups[k] = g
	}
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sleep.Process.Kill()
		sleep.Wait()
		for k, g := range groups {
			if k != "dead" {
				g.Remove(ctx)
			}
		}
	}()
	if err := groups["busy"].AddProc(ctx, sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	removed := h.ReapStale(ctx) // leftovers of other runs may go too
	if !slices.Contains(removed, names["dead"]) || slices.Contains(removed, names["alive"]) || slices.Contains(removed, names["busy"]) {
		t.Errorf("ReapStale removed %v, want %s and not %s or %s", removed, names["dead"], names["alive"], names["busy"])
	}
	for k, g := range groups {
		_, err := os.Stat(g.Dir())
		if gone := errors.Is(err, fs.ErrNotExist); gone != (k == "dead") {
			t.Errorf("cgroup %s (%s): gone %v after ReapStale", g.Dir(), k, gone)
		}
	}
}

// On a v1 host, a child started by a thread that joined the group is born
// in it (its cgroup from its first instruction, no AddProc), the thread is
// back where it was after back, and the rest of the process never moved.
// Negative control: a child started by the thread after back is not in
// the group. On other hosts JoinThread does nothing (ok false).
func TestJoinThread(t *testing.T) {
	h := requireRealHost(t)
	ctx := context.Background()
	cpus, mems, err := h.available()
	if err != nil {
		t.Fatal(err)
	}
	g, err := h.Create(ctx, fmt.Sprintf("vmcgroup-join-%d", os.Getpid()), cpus, cpuset.New(mems.List()[0]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Remove(ctx); err != nil {
			t.Error(err)
		}
	})
	ownBefore := cpusetLine(t, "/proc/self/cgroup")
	done := make(chan struct{})
	var inside, after *exec.Cmd
	var ok bool
	var joinErr, backErr error
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var back func() error
		back, ok, joinErr = g.JoinThread()
		if !ok || joinErr != nil {
			return
		}
		inside = exec.Command("sleep", "30")
		startErr := inside.Start()
		backErr = back()
		if startErr != nil {
			joinErr = startErr
			return
		}
		after = exec.Command("sleep", "30")
		if err := after.Start(); err != nil {
			joinErr = err
		}
	}()
	<-done
	for _, c := range []*exec.Cmd{inside, after} {
		if c != nil && c.Process != nil {
			defer func(c *exec.Cmd) { c.Process.Kill(); c.Wait() }(c)
		}
	}
	if h.Kind != V1 {
		if ok || joinErr != nil {
			t.Fatalf("JoinThread on a %s host = %v, %v; want nothing done", h.Kind, ok, joinErr)
		}
		return
	}
	if !ok && joinErr == nil {
		// openat2 missing (Linux < 5.6), or the test outside the mount.
		t.Skip("SKIP: JoinThread cannot reopen this thread's own cgroup here: qemu is moved in instead")
	}
	if !ok || joinErr != nil || backErr != nil {
		t.Fatalf("JoinThread = %v, %v; back: %v", ok, joinErr, backErr)
	}
	procs, err := g.Procs()
	if err != nil || len(procs) != 1 || procs[0] != inside.Process.Pid {
		t.Errorf("group holds %v (%v), want only the child started inside, %d", procs, err, inside.Process.Pid)
	}
	if got := cpusetLine(t, fmt.Sprintf("/proc/%d/cgroup", after.Process.Pid)); got != ownBefore {
		t.Errorf("the child started after back is in %q, want the test's own %q", got, ownBefore)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		if got := cpusetLine(t, "/proc/self/task/"+task.Name()+"/cgroup"); got != ownBefore {
			t.Errorf("thread %s of the test is in %q, want %q: the starting thread did not go back", task.Name(), got, ownBefore)
		}
	}
}

// cpusetLine is the cpuset hierarchy's line of a /proc cgroup file.
func cpusetLine(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cgroupPath(b, true)
	if err != nil {
		return "(none: " + err.Error() + ")"
	}
	return p
}
