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
