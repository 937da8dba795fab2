package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/control"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

func TestPlanVCPUChange(t *testing.T) {
	slots := []ledger.VCPUSlot{
		{ID: 0, GuestNode: 0, HostCPUs: cpuset.New(0), Present: true},
		{ID: 1, GuestNode: 1, HostCPUs: cpuset.New(4), Hotplug: true},
		{ID: 2, GuestNode: 0, HostCPUs: cpuset.New(1), Hotplug: true},
		{ID: 3, GuestNode: 1, HostCPUs: cpuset.New(5), Hotplug: true},
	}
	vm := ledger.Entry{Name: "vm", VCPUSlots: slots}
	twoNodes := ledger.Entry{Name: "two", VCPUSlots: []ledger.VCPUSlot{
		{ID: 0, GuestNode: 0, HostCPUs: cpuset.New(0), Present: true},
		{ID: 2, GuestNode: 1, HostCPUs: cpuset.New(4), Present: true},
		{ID: 1, GuestNode: 0, HostCPUs: cpuset.New(1), Hotplug: true},
		{ID: 3, GuestNode: 1, HostCPUs: cpuset.New(5), Hotplug: true},
	}}
	ok := func(ledger.VCPUSlot) error { return nil }
	ids := func(ss []ledger.VCPUSlot) []int {
		var out []int
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	tests := []struct {
		name       string
		e          ledger.Entry
		want       int
		present    map[int]bool
		others     []ledger.Entry
		usable     func(ledger.VCPUSlot) error
		add, del   []int
		err, usage string
	}{
		{name: "grow by two in slot order", e: vm, want: 3, present: map[int]bool{0: true}, add: []int{1, 2}},
		{name: "shrink last first", e: vm, want: 1, present: map[int]bool{0: true, 1: true, 2: true, 3: true}, del: []int{3, 2, 1}},
		{name: "already there", e: vm, want: 2, present: map[int]bool{0: true, 1: true}},
		{name: "to the most", e: vm, want: 4, present: map[int]bool{0: true, 2: true}, add: []int{1, 3}},
		{name: "beyond max", e: vm, want: 5, present: map[int]bool{0: true}, usage: "at most 4 vCPUs"},
		{name: "below the boot vcpus", e: vm, want: 0, present: map[int]bool{0: true}, usage: "started with 1 vCPUs"},
		{name: "no room", e: ledger.Entry{Name: "bare"}, want: 2, usage: "no vCPU hotplug room"},
		{name: "cpu now dedicated elsewhere", e: vm, want: 2, present: map[int]bool{0: true},
			others: []ledger.Entry{{Name: "hog", DedicatedCPUs: cpuset.New(4, 7)}}, usage: "cpus 4 are now dedicated to vm hog"},
		{name: "dedicated elsewhere but not needed", e: vm, want: 1, present: map[int]bool{0: true, 1: true},
			others: []ledger.Entry{{Name: "hog", DedicatedCPUs: cpuset.New(4)}}, del: []int{1}},
		{name: "cpu no longer usable", e: vm, want: 3, present: map[int]bool{0: true, 1: true},
			usable: func(s ledger.VCPUSlot) error {
				if s.ID == 2 {
					return errors.New("offline")
				}
				return nil
			}, usage: "vCPU 2: offline"},
		{name: "boot vcpu gone", e: vm, want: 2, present: map[int]bool{1: true}, err: "present at start, is gone"},
		// Two guest nodes that start with slots 0 and 2, slots 1 and 3
		// added in plan order (node 0, node 1): growth alternates, and
		// shrinking takes the last added first.
		{name: "two nodes: grow by one", e: twoNodes, want: 3, present: map[int]bool{0: true, 2: true}, add: []int{1}},
		{name: "two nodes: grow to the most", e: twoNodes, want: 4, present: map[int]bool{0: true, 2: true}, add: []int{1, 3}},
		{name: "two nodes: shrink last added first", e: twoNodes, want: 2, present: map[int]bool{0: true, 1: true, 2: true, 3: true}, del: []int{3, 1}},
		{name: "two nodes: the next after one added", e: twoNodes, want: 4, present: map[int]bool{0: true, 1: true, 2: true}, add: []int{3}},
		{name: "two nodes: below the boot vcpus", e: twoNodes, want: 1, present: map[int]bool{0: true, 2: true}, usage: "started with 2 vCPUs"},
		{name: "two nodes: the cold-plugged one gone", e: twoNodes, want: 2, present: map[int]bool{0: true}, err: "vCPU 2, present at start, is gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.usable
			if u == nil {
				u = ok
			}
			ch, err := planVCPUChange(tt.e, tt.want, tt.present, tt.others, u)
			switch {
			case tt.usage != "":
				if !IsUsage(err) || !strings.Contains(err.Error(), tt.usage) {
					t.Fatalf("err = %v; want bad input (exit 2) with %q", err, tt.usage)
				}
				return
			case tt.err != "":
				if err == nil || IsUsage(err) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v; want %q", err, tt.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if g := ids(ch.Add); !equalInts(g, tt.add) {
				t.Errorf("add = %v, want %v", g, tt.add)
			}
			if g := ids(ch.Remove); !equalInts(g, tt.del) {
				t.Errorf("remove = %v, want %v", g, tt.del)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPresentSlots(t *testing.T) {
	e := ledger.Entry{VCPUSlots: []ledger.VCPUSlot{
		{ID: 0, SocketID: 0, CoreID: 0}, {ID: 1, SocketID: 0, CoreID: 1}, {ID: 2, SocketID: 1, CoreID: 0},
	}}
	n := func(i int) *int { return &i }
	cpus := []qmp.CPU{
		{CPUIndex: 0, ThreadID: 10, Props: qmp.CPUProps{SocketID: n(0), CoreID: n(0), ThreadID: n(0)}},
		{CPUIndex: 2, ThreadID: 12, Props: qmp.CPUProps{SocketID: n(1), CoreID: n(0), ThreadID: n(0)}},
	}
	present, tids := presentSlots(e, cpus)
	if !present[0] || present[1] || !present[2] || tids[2] != 12 {
		t.Errorf("present %v tids %v; want slots 0 and 2, slot 2 on tid 12", present, tids)
	}
	// In plan order, slot 2 (guest node 1's first) before slot 1: by id,
	// not by place.
	e.VCPUSlots[1], e.VCPUSlots[2] = e.VCPUSlots[2], e.VCPUSlots[1]
	present, tids = presentSlots(e, cpus)
	if !present[0] || present[1] || !present[2] || tids[2] != 12 || len(present) != 2 {
		t.Errorf("slots in plan order: present %v tids %v; want slots 0 and 2, slot 2 on tid 12", present, tids)
	}
}

// vmQMP asks vm name's qemu over its control socket, as root or its user.
func vmQMP(t *testing.T, state, name string) *qmp.Client {
	t.Helper()
	l, err := ledger.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, ok, err := l.Get(ctx, name)
	if err != nil || !ok {
		t.Fatalf("vm %s in the ledger: %v %v", name, ok, err)
	}
	// qnuma run serves its socket once the guest runs, after its last
	// line; wait for it.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Lstat(control.SocketPath(state, name)); err == nil {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("no control socket for vm %s", name)
		}
	}
	c, err := control.Dial(ctx, state, e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func queryCPUs(t *testing.T, c *qmp.Client) []qmp.CPU {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cpus, err := c.QueryCPUsFast(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return cpus
}

// Issue 15's proof: a guestless dedicated VM with one vCPU and room for
// two grows to two; the new vCPU's thread is allowed on exactly one CPU,
// not vCPU 0's, and the ledger records it. What may not be done is
// refused with nothing changed.
func TestVCPUsLive(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := []string{"run", "-v", "--state-dir", state, "--name", "g", "--cpus-dedicated", "--vcpus", "1", "--max-vcpus", "2", "--memory", "64M", "--"}
	p := startQnuma(t, []string{bin}, append(args, bareQEMU...)...)
	pn := p.readPins(t, 1)
	mon := vmQMP(t, state, "g")
	vcpus := func(args ...string) (int, string) {
		t.Helper()
		out, err := runQnuma(bin, append(append([]string{"vcpus"}, args...), "--state-dir", state)...)
		return exitCodeOf(err), out
	}
	unchanged := func(what string) {
		t.Helper()
		if cpus := queryCPUs(t, mon); len(cpus) != 1 {
			t.Errorf("%s: qemu has %d vCPUs, want 1 still", what, len(cpus))
		}
	}
	// Negative control: one vCPU before.
	unchanged("at start")

	code, out := vcpus("g", "3")
	if code != 2 || !strings.Contains(out, "at most 2 vCPUs") {
		t.Errorf("vcpus g 3: exit %d\n%s\nwant exit 2, at most 2", code, out)
	}
	unchanged("vcpus g 3")

	// Slot 1's CPU dedicated to another VM now: refused.
	hog := plantEntry(t, state, "hog", ledger.Proc{}, cpuset.New(0, 1).Difference(cpuset.New(mustAtoiCPU(t, pn.vcpuCPUs[0]))).String())
	code, out = vcpus("g", "2")
	if code != 2 || !strings.Contains(out, "now dedicated to vm hog") {
		t.Errorf("vcpus g 2 with its cpu taken: exit %d\n%s\nwant exit 2", code, out)
	}
	unchanged("vcpus g 2 refused")
	os.Remove(hog)

	// A VM started without room.
	bare := qemutest.MustStart(t)
	bp, err := ledger.ProcOf(bare.PID())
	if err != nil {
		t.Fatal(err)
	}
	plantEntry(t, state, "bare", bp, "")
	if code, out := vcpus("bare", "2"); code != 2 || !strings.Contains(out, "no vCPU hotplug room") {
		t.Errorf("vcpus bare 2: exit %d\n%s\nwant exit 2, no room", code, out)
	}

	code, out = vcpus("g", "2")
	if code != 0 {
		t.Fatalf("vcpus g 2: exit %d\n%s", code, out)
	}
	cpus := queryCPUs(t, mon)
	if len(cpus) != 2 {
		t.Fatalf("after vcpus g 2: query-cpus-fast lists %d vCPUs, want 2", len(cpus))
	}
	var newTID int
	for _, c := range cpus {
		if c.QOMPath == "/machine/peripheral/qnuma-vcpu1" {
			newTID = c.ThreadID
		}
	}
	if newTID == 0 || newTID == pn.vcpuTID[0] {
		t.Fatalf("no new vCPU thread: %+v", cpus)
	}
	got := cpusAllowed(t, pn.qemuPID, newTID)
	set, err := cpuset.Parse(got)
	if err != nil || set.Size() != 1 || got == pn.vcpuCPUs[0] {
		t.Errorf("new vCPU thread %d allowed on %s; want exactly one CPU, not vCPU 0's %s", newTID, got, pn.vcpuCPUs[0])
	}
	if !strings.Contains(out, "thread "+itoa(newTID)+" pinned to cpus "+got) {
		t.Errorf("output does not name the thread and its cpus:\n%s", out)
	}
	l, _ := ledger.Open(state)
	e, _, err := l.Get(context.Background(), "g")
	if err != nil || len(e.VCPUSlots) != 2 || !e.VCPUSlots[1].Present || len(e.VCPUHomeNodes) != 2 {
		t.Errorf("ledger after the add: %+v %v; want slot 1 present", e.VCPUSlots, err)
	}
	// Again, by qemu's pid: nothing to do.
	if code, out := vcpus(strconv.Itoa(pn.qemuPID), "2"); code != 0 || strings.Contains(out, "added") || !strings.Contains(out, "vm g: 2 vCPUs") {
		t.Errorf("vcpus PID 2 again: exit %d\n%s", code, out)
	}
	if n := len(queryCPUs(t, mon)); n != 2 {
		t.Errorf("after a second vcpus g 2: %d vCPUs", n)
	}
}

// runQnuma runs a qnuma command to its end, stdout and stderr together.
func runQnuma(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func mustAtoiCPU(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("cpu %q: want one cpu", s)
	}
	return n
}
