package ledger

import (
	"reflect"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/plan"
)

// A VM with hotplug room keeps where each absent vCPU and each guest
// node's growth go, for qnuma vcpus and qnuma memory.
func TestSlotsSummarizedAndKept(t *testing.T) {
	p := &plan.Plan{
		Spec:      plan.Spec{VCPUs: 1, MemoryBytes: 1 << 30, MaxVCPUs: 4, MaxMemoryBytes: 3 << 30},
		HostNodes: []int{0, 1},
		GuestNodes: []plan.GuestNode{
			{ID: 0, HostNodes: []int{0}, VCPUs: []int{0, 1}, MemoryBytes: 512 << 20},
			{ID: 1, HostNodes: []int{1}, VCPUs: []int{2, 3}, MemoryBytes: 512 << 20},
		},
		Sockets: 2, Cores: 1, Threads: 2,
		VCPUs:         []plan.VCPU{{ID: 0, GuestNode: 0, HostCPUs: cpuset.New(2)}},
		HotplugVCPUs:  []plan.VCPU{{ID: 1, GuestNode: 0, HostCPUs: cpuset.New(3)}, {ID: 2, GuestNode: 1, HostCPUs: cpuset.New(8)}, {ID: 3, GuestNode: 1, HostCPUs: cpuset.New(9)}},
		HotplugMemory: []plan.HotplugMemory{{GuestNode: 0, HostNodes: []int{0}, Bytes: 1 << 30}, {GuestNode: 1, HostNodes: []int{1}, Bytes: 1 << 30}},
	}
	e := summarize(p)
	want := []VCPUSlot{
		{ID: 0, GuestNode: 0, HostCPUs: cpuset.New(2), SocketID: 0, CoreID: 0, ThreadID: 0, Present: true},
		{ID: 1, GuestNode: 0, HostCPUs: cpuset.New(3), SocketID: 0, CoreID: 0, ThreadID: 1, Hotplug: true},
		{ID: 2, GuestNode: 1, HostCPUs: cpuset.New(8), SocketID: 1, CoreID: 0, ThreadID: 0, Hotplug: true},
		{ID: 3, GuestNode: 1, HostCPUs: cpuset.New(9), SocketID: 1, CoreID: 0, ThreadID: 1, Hotplug: true},
	}
	if len(e.VCPUSlots) != len(want) {
		t.Fatalf("vcpu slots = %+v, want %+v", e.VCPUSlots, want)
	}
	for i := range want {
		g, w := e.VCPUSlots[i], want[i]
		if !g.HostCPUs.Equals(w.HostCPUs) || g.ID != w.ID || g.GuestNode != w.GuestNode || g.SocketID != w.SocketID || g.CoreID != w.CoreID || g.ThreadID != w.ThreadID || g.Hotplug != w.Hotplug || g.Present != w.Present {
			t.Errorf("slot %d = %+v, want %+v", i, g, w)
		}
	}
	wantMem := []MemorySlot{
		{GuestNode: 0, Device: "qnuma-vmem0", Memdev: "qnuma-hotmem0", HostNodes: []int{0}, MaxBytes: 1 << 30},
		{GuestNode: 1, Device: "qnuma-vmem1", Memdev: "qnuma-hotmem1", HostNodes: []int{1}, MaxBytes: 1 << 30},
	}
	if !reflect.DeepEqual(e.MemorySlots, wantMem) {
		t.Errorf("memory slots = %+v, want %+v", e.MemorySlots, wantMem)
	}

	e.Name = "grow"
	e.VCPUSlots[1].Present = true
	e.MemorySlots[1].RequestedBytes = 128 << 20
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Entry
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.MemorySlots, e.MemorySlots) || len(back.VCPUSlots) != 4 || !back.VCPUSlots[1].Present || !back.VCPUSlots[3].HostCPUs.Equals(cpuset.New(9)) {
		t.Errorf("round trip: %+v / %+v, want %+v / %+v", back.VCPUSlots, back.MemorySlots, e.VCPUSlots, e.MemorySlots)
	}
	c := clone(e)
	c.MemorySlots[0].HostNodes[0] = 7
	c.VCPUSlots[0].Present = false
	if e.MemorySlots[0].HostNodes[0] != 0 || !e.VCPUSlots[0].Present {
		t.Error("clone shares the slots with the entry")
	}

	// A VM without room has none.
	if e := summarize(onePlan(1, 1<<30, 8)); len(e.VCPUSlots) != 0 || len(e.MemorySlots) != 0 {
		t.Errorf("no room: slots %+v %+v", e.VCPUSlots, e.MemorySlots)
	}

	for _, bad := range []string{
		`{"version":1,"name":"a","vcpu_slots":[{"id":0,"host_cpus":"0-2147483647"}]}`,
		`{"version":1,"name":"a","memory_slots":[{"device":"d","max_bytes":1,"requested_bytes":2}]}`,
		`{"version":1,"name":"a","memory_slots":[{"device":"d","max_bytes":1125899906842625}]}`,
	} {
		var e Entry
		if err := e.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("UnmarshalJSON(%s) = nil error", bad)
		}
	}
}

// A VM over two guest nodes starts with the first slot of each (0 and 2):
// the slots present are those of the plan's vCPUs, by id, whatever their
// place, and each slot's home nodes are kept by its id (cpu-index), as
// qnuma stat reads them from the thread names.
func TestSlotsPresentByID(t *testing.T) {
	p := &plan.Plan{
		Spec:      plan.Spec{VCPUs: 2, MemoryBytes: 1 << 30, MaxVCPUs: 4},
		HostNodes: []int{0, 1},
		GuestNodes: []plan.GuestNode{
			{ID: 0, HostNodes: []int{0}, VCPUs: []int{0, 1}, MemoryBytes: 512 << 20},
			{ID: 1, HostNodes: []int{1}, VCPUs: []int{2, 3}, MemoryBytes: 512 << 20},
		},
		Sockets: 2, Cores: 2, Threads: 1,
		VCPUs:        []plan.VCPU{{ID: 0, GuestNode: 0, HostCPUs: cpuset.New(2)}, {ID: 2, GuestNode: 1, Socket: 1, HostCPUs: cpuset.New(8)}},
		HotplugVCPUs: []plan.VCPU{{ID: 1, GuestNode: 0, Core: 1, HostCPUs: cpuset.New(3)}, {ID: 3, GuestNode: 1, Socket: 1, Core: 1, HostCPUs: cpuset.New(9)}},
	}
	e := summarize(p)
	type slot struct {
		ID, Node, Socket, Core int
		Present, Hotplug       bool
	}
	var got []slot
	for _, s := range e.VCPUSlots {
		got = append(got, slot{s.ID, s.GuestNode, s.SocketID, s.CoreID, s.Present, s.Hotplug})
	}
	want := []slot{{0, 0, 0, 0, true, false}, {2, 1, 1, 0, true, false}, {1, 0, 0, 1, false, true}, {3, 1, 1, 1, false, true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("slots %+v, want %+v", got, want)
	}
	// Up to slot 2, the highest present: slot 1 is absent, its planned home.
	if wantHomes := [][]int{{0}, {0}, {1}}; !reflect.DeepEqual(e.VCPUHomeNodes, wantHomes) {
		t.Errorf("vcpu home nodes %v, want %v (by cpu-index)", e.VCPUHomeNodes, wantHomes)
	}
	e.VCPUSlots[3].Present = true
	if got, want := e.SlotHomeNodes(), [][]int{{0}, {0}, {1}, {1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("with slot 3 present: homes %v, want %v", got, want)
	}
	if e.VCPUs[0] != 2 || e.VCPUs[1] != 2 {
		t.Errorf("vcpus per node %v, want 2 and 2 (the room promised too)", e.VCPUs)
	}
}
