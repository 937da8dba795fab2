package launcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/vmcgroup"
)

// failingCgroup refuses qemu.
type failingCgroup struct{ added int }

func (*failingCgroup) CloneFD() (int, bool) { return 0, false }
func (*failingCgroup) JoinThread() (func() error, bool, error) {
	return nil, false, nil
}
func (f *failingCgroup) AddProc(_ context.Context, pid int) error {
	f.added = pid
	return errors.New("cgroup.procs: permission denied")
}

// A VM with a cgroup starts in it, without a task mempolicy (the cgroup's
// cpuset.mems bounds qemu's own memory), and its threads are pinned after
// the move into it, which would reset them.
func TestLaunchInCgroup(t *testing.T) {
	qemutest.Require(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a cgroup")
	}
	h, err := vmcgroup.Detect("/")
	if err != nil || h.Kind == vmcgroup.None {
		t.Skipf("no cpuset cgroup here: %v %s", err, h.Why)
	}
	p := testPlan(t, 2)
	all, err := affinity.Real{}.SchedGetaffinity(0)
	if err != nil {
		t.Fatal(err)
	}
	// All of qnuma's CPUs, as qnuma run gives it: the pins place threads.
	g, err := h.Create(context.Background(), fmt.Sprintf("launchtest-%d", os.Getpid()), all, p.Mempolicy.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := g.Remove(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	cfg := baseConfig(t, qemuArgv(2, "-S"), p)
	cfg.UserPaused = true
	rec := &recordingCgroup{Group: g}
	cfg.Cgroup = rec
	sys := &recordingSys{Sys: affinity.Real{}}
	cfg.Sys = sys
	sigs := make(chan os.Signal, 1)
	cfg.Signals = sigs
	checked := false
	cfg.Hooks.OnRunning = func(pid int, tids []int) {
		defer func() { sigs <- syscall.SIGTERM }()
		checked = true
		procs, err := g.Procs()
		if err != nil || len(procs) != 1 || procs[0] != pid {
			t.Errorf("cgroup %s holds %v (%v), want qemu %d", g.Dir(), procs, err, pid)
		}
		for i, tid := range tids {
			got, err := affinity.CPUsAllowed("/", pid, tid)
			if err != nil || !got.Equals(p.VCPUs[i].HostCPUs) {
				t.Errorf("vcpu %d on %s (%v), want %s: pinned before the move into the cgroup?", i, got, err, p.VCPUs[i].HostCPUs)
			}
		}
	}
	if _, err := Launch(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("OnRunning was not called")
	}
	if sys.mempolicies != 0 {
		t.Errorf("%d set_mempolicy calls, want none in a cgroup", sys.mempolicies)
	}
	// Born in it where the kernel lets a child be (v2's clone into the
	// cgroup, v1's starting thread in it for the fork): not moved in. A v1
	// kernel without openat2 says so (JoinThread not ok) and moves it in.
	switch {
	case h.Kind == vmcgroup.V2 && rec.added != 0:
		t.Errorf("on a v2 host qemu was moved into its cgroup after it started (AddProc), not born there")
	case h.Kind == vmcgroup.V1 && rec.joinCalls != 1:
		t.Errorf("on a v1 host JoinThread was called %d times, want once", rec.joinCalls)
	case h.Kind == vmcgroup.V1 && rec.joined == 1 && rec.added != 0:
		t.Errorf("on a v1 host the starting thread joined the cgroup and qemu was moved in as well")
	case h.Kind == vmcgroup.V1 && rec.joined == 0 && rec.added != 1:
		t.Errorf("on a v1 host JoinThread could not join, and qemu was moved in %d times, want once", rec.added)
	}
	// The thread that started qemu went back: none of this process's
	// threads is left in the VM's cgroup (it could not be removed).
	tasks, err := os.ReadFile(g.Dir() + "/tasks")
	if err == nil && strings.TrimSpace(string(tasks)) != "" {
		t.Errorf("the cgroup still holds tasks %q after qemu exited", tasks)
	}
}

// recordingCgroup counts how qemu got into a real cgroup.
type recordingCgroup struct {
	*vmcgroup.Group
	added, joinCalls, joined int
}

func (r *recordingCgroup) AddProc(ctx context.Context, pid int) error {
	r.added++
	return r.Group.AddProc(ctx, pid)
}

func (r *recordingCgroup) JoinThread() (func() error, bool, error) {
	r.joinCalls++
	back, ok, err := r.Group.JoinThread()
	if ok {
		r.joined++
	}
	return back, ok, err
}

// A qemu that cannot join its cgroup is stopped, and the launch says why.
func TestLaunchCgroupRefused(t *testing.T) {
	qemutest.Require(t)
	p := testPlan(t, 1)
	cfg := baseConfig(t, qemuArgv(1, "-S"), p)
	cg := &failingCgroup{}
	cfg.Cgroup = cg
	res, err := Launch(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "put qemu") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Launch = %v, want the cgroup's refusal", err)
	}
	if cg.added == 0 || cg.added != res.PID {
		t.Errorf("AddProc got pid %d, qemu was %d", cg.added, res.PID)
	}
	requireGone(t, res.PID)
}

// recordingSys counts set_mempolicy calls.
type recordingSys struct {
	affinity.Sys
	mempolicies int
}

func (r *recordingSys) SetMempolicy(mode int, nodes cpuset.CPUSet) error {
	r.mempolicies++
	return r.Sys.SetMempolicy(mode, nodes)
}
