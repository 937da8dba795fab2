package numastat

import (
	"reflect"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/topology"
)

// twoNodes: cpus 0-1 on node 0, 2-3 on node 1.
var twoNodes = &topology.Host{
	Nodes: []topology.Node{{ID: 0, CPUs: cpuset.New(0, 1)}, {ID: 1, CPUs: cpuset.New(2, 3)}},
	CPUs:  []topology.CPU{{ID: 0, Node: 0}, {ID: 1, Node: 0}, {ID: 2, Node: 1}, {ID: 3, Node: 1}},
}

func ram(node0, node1 uint64) Mapping {
	return Mapping{Start: 1 << 40, End: 1<<40 + 64<<20, Perms: "rw-p", PageSize: 4096,
		Pages: map[int]uint64{0: node0 << 20 / 4096, 1: node1 << 20 / 4096}}
}

func TestBuild(t *testing.T) {
	threads := []Thread{
		{TID: 10, Comm: "qemu-system-x86", VCPU: -1, LastCPU: 3},
		{TID: 12, Comm: "CPU 1/TCG", VCPU: 1, LastCPU: 3, Allowed: cpuset.New(2, 3)},
		{TID: 11, Comm: "CPU 0/TCG", VCPU: 0, LastCPU: 1, Allowed: cpuset.New(0, 1)},
	}
	tests := []struct {
		name     string
		m        Mapping
		home     Home
		homes    []int
		given    bool
		local    uint64
		pct      float64
		low      bool
		outside  []bool
		nOutside int
	}{
		{"ledger home node 0, all local", ram(64, 0), Home{Nodes: []int{0}}, []int{0}, true, 64 << 20, 100, false, []bool{false, true}, 1},
		{"ledger home node 1, all remote", ram(64, 0), Home{Nodes: []int{1}}, []int{1}, true, 0, 0, true, []bool{true, false}, 1},
		{"most ram decides", ram(16, 48), Home{}, []int{1}, false, 48 << 20, 75, true, []bool{true, false}, 1},
		{"per-vcpu homes", ram(32, 32), Home{Nodes: []int{0, 1}, VCPUs: [][]int{{0}, {1}}}, []int{0, 1}, true, 64 << 20, 100, false, []bool{false, false}, 0},
		{"no ram resident yet", ram(0, 0), Home{}, []int{}, false, 0, 100, false, []bool{true, true}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Build(twoNodes, 7, []Mapping{tt.m}, []uint64{64 << 20}, threads, tt.home)
			if !reflect.DeepEqual(s.HomeNodes, tt.homes) || s.HomeGiven != tt.given {
				t.Errorf("home = %v (given %v), want %v (%v)", s.HomeNodes, s.HomeGiven, tt.homes, tt.given)
			}
			if s.LocalBytes != tt.local || s.LocalBytes+s.RemoteBytes != sum(tt.m) {
				t.Errorf("local %d remote %d, want local %d of %d", s.LocalBytes, s.RemoteBytes, tt.local, sum(tt.m))
			}
			if s.LocalPercent != tt.pct || s.LowLocal != tt.low {
				t.Errorf("local %% = %v (low %v), want %v (%v)", s.LocalPercent, s.LowLocal, tt.pct, tt.low)
			}
			if len(s.VCPUs) != 2 || s.VCPUs[0].Index != 0 || s.VCPUs[1].Index != 1 || s.Threads != 3 {
				t.Fatalf("vcpus = %+v, threads %d", s.VCPUs, s.Threads)
			}
			for i, v := range s.VCPUs {
				if v.Outside != tt.outside[i] {
					t.Errorf("vcpu %d (last cpu %d, node %d, home %v): outside = %v", i, v.LastCPU, v.LastNode, v.HomeNodes, v.Outside)
				}
			}
			if s.OutsideNow != tt.nOutside || s.OutsideSince != -1 {
				t.Errorf("outside now %d since %d, want %d and -1", s.OutsideNow, s.OutsideSince, tt.nOutside)
			}
		})
	}
}

func sum(m Mapping) uint64 {
	var t uint64
	for _, b := range m.NodeBytes() {
		t += b
	}
	return t
}

func TestSince(t *testing.T) {
	home := Home{Nodes: []int{0}}
	sample := func(cpu0, cpu1 int, ticks0, ticks1 uint64) *Sample {
		return Build(twoNodes, 7, []Mapping{ram(64, 0)}, nil, []Thread{
			{TID: 11, VCPU: 0, LastCPU: cpu0, Ticks: ticks0},
			{TID: 12, VCPU: 1, LastCPU: cpu1, Ticks: ticks1},
		}, home)
	}
	tests := []struct {
		name       string
		prev, cur  *Sample
		want       int
		ranOutside []bool
	}{
		{"both stayed home", sample(0, 1, 5, 5), sample(1, 0, 9, 9), 0, []bool{false, false}},
		{"one ran on node 1", sample(0, 1, 5, 5), sample(0, 2, 5, 6), 1, []bool{false, true}},
		{"outside but idle since", sample(0, 3, 5, 5), sample(0, 3, 5, 5), 0, []bool{false, false}},
		{"moved outside without a tick", sample(0, 1, 5, 5), sample(3, 1, 5, 5), 1, []bool{true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cur.Since(tt.prev)
			if tt.cur.OutsideSince != tt.want {
				t.Errorf("outside since = %d, want %d", tt.cur.OutsideSince, tt.want)
			}
			for i, v := range tt.cur.VCPUs {
				if v.RanOutside != tt.ranOutside[i] {
					t.Errorf("vcpu %d ran outside = %v", i, v.RanOutside)
				}
			}
		})
	}
	s := sample(3, 3, 1, 1)
	s.Since(nil)
	if s.OutsideSince != -1 {
		t.Errorf("without a previous sample outside since = %d, want -1", s.OutsideSince)
	}
}

func TestVCPUIndex(t *testing.T) {
	for name, want := range map[string]int{"CPU 0/TCG": 0, "CPU 12/KVM": 12, "qemu-system-x86": -1, "CPU x/KVM": -1, "CPU 1/TCG ": -1, "IO mon_iothread": -1} {
		if got, _ := VCPUIndex(name); got != want {
			t.Errorf("VCPUIndex(%q) = %d, want %d", name, got, want)
		}
	}
}

// TestBuildStaleVCPU: a paused VM's vCPU pinned to node 1 still shows the
// CPU it was created on (node 0) until it runs again; that is not a vCPU
// running outside its home node.
func TestBuildStaleVCPU(t *testing.T) {
	threads := []Thread{
		{TID: 11, VCPU: 0, LastCPU: 0, Allowed: cpuset.New(2, 3)}, // pinned, not run since
		{TID: 12, VCPU: 1, LastCPU: 1, Allowed: cpuset.New(0, 1, 2, 3)},
	}
	s := Build(twoNodes, 7, []Mapping{ram(0, 64)}, []uint64{64 << 20}, threads, Home{Nodes: []int{1}})
	if !s.VCPUs[0].Stale || s.VCPUs[0].Outside {
		t.Errorf("vcpu 0 last on cpu 0, allowed 2-3: stale %v outside %v, want stale and not outside", s.VCPUs[0].Stale, s.VCPUs[0].Outside)
	}
	if s.VCPUs[1].Stale || !s.VCPUs[1].Outside {
		t.Errorf("vcpu 1 last on cpu 1, allowed 0-3, home node 1: stale %v outside %v, want outside", s.VCPUs[1].Stale, s.VCPUs[1].Outside)
	}
	if s.OutsideNow != 1 {
		t.Errorf("outside now %d, want 1", s.OutsideNow)
	}
}
