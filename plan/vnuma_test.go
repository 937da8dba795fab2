package plan

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/topology"
)

func TestSplitVCPUs(t *testing.T) {
	tests := []struct {
		caps []int
		n    int
		want []int
	}{
		{[]int{8, 8}, 12, []int{6, 6}},
		{[]int{8, 8}, 9, []int{5, 4}},
		{[]int{8, 2}, 10, []int{8, 2}},
		{[]int{2, 8}, 7, []int{2, 5}},
		{[]int{8, 0, 8}, 4, []int{2, 0, 2}},
		{[]int{1, 1, 1, 1}, 2, []int{1, 1, 0, 0}},
		{[]int{3, 5, 4}, 12, []int{3, 5, 4}},
		{[]int{16}, 1, []int{1}},
	}
	for _, tt := range tests {
		if got := splitVCPUs(tt.caps, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("splitVCPUs(%v, %d) = %v, want %v", tt.caps, tt.n, got, tt.want)
		}
	}
}

func TestSplitMemory(t *testing.T) {
	const m = oneMiB
	tests := []struct {
		caps   []uint64
		total  uint64
		g      uint64
		want   []uint64
		byRoom bool
	}{
		{[]uint64{10 * m, 10 * m}, 8 * m, m, []uint64{4 * m, 4 * m}, false},
		{[]uint64{10 * m, 10 * m}, 7 * m, m, []uint64{4 * m, 3 * m}, false},
		{[]uint64{30 * m, 10 * m}, 36 * m, m, []uint64{27 * m, 9 * m}, true},
		{[]uint64{30 * m, 10 * m}, 40 * m, m, []uint64{30 * m, 10 * m}, true},
		{[]uint64{3 * m, 3 * m, 1 * m}, 7 * m, m, []uint64{3 * m, 3 * m, m}, true},
		{[]uint64{4 * gib, 2 * gib}, 5 * gib, gib, []uint64{3 * gib, 2 * gib}, false},
		{[]uint64{4 * gib, 1 * gib}, 4 * gib, gib, []uint64{3 * gib, 1 * gib}, true},
		// Granule counts whose product overflows 64 bits.
		{[]uint64{1 << 50, 1 << 49}, 5 << 48, 1, []uint64{938249922368853, 469124961184427}, true},
	}
	for _, tt := range tests {
		got, byRoom := splitMemory(tt.caps, tt.total, tt.g)
		if !slices.Equal(got, tt.want) || byRoom != tt.byRoom {
			t.Errorf("splitMemory(%v, %d, %d) = %v, %v; want %v, %v", tt.caps, tt.total, tt.g, got, byRoom, tt.want, tt.byRoom)
		}
	}
}

// A memory-only node never gets vCPUs; it holds memory of a wide VM only
// when asked.
func TestMemoryOnlyNode(t *testing.T) {
	host := func() *topology.Host { return withMemoryOnly(genHost(2, 4, 1, 8*gib), 5, 16*gib, 14) }
	tests := []struct {
		name      string
		spec      Spec
		hostNodes []int
		err       error
	}{
		{"not asked: refused", Spec{VCPUs: 2, MemoryBytes: 20 * gib}, nil, ErrDoesNotFit},
		{"asked: holds memory", Spec{VCPUs: 2, MemoryBytes: 20 * gib, AllowMemoryOnly: true}, []int{0, 5}, nil},
		{"asked, not needed", Spec{VCPUs: 2, MemoryBytes: 4 * gib, AllowMemoryOnly: true}, []int{0}, nil},
		{"asked, alone", Spec{VCPUs: 2, MemoryBytes: 4 * gib, AllowMemoryOnly: true, HostNodes: []int{5}}, nil, ErrDoesNotFit},
		{"given without asking", Spec{VCPUs: 2, MemoryBytes: 4 * gib, HostNodes: []int{0, 5}}, nil, ErrDoesNotFit},
		{"given and asked", Spec{VCPUs: 2, MemoryBytes: 4 * gib, HostNodes: []int{0, 5}, AllowMemoryOnly: true}, []int{0, 5}, nil},
		{"spread ignores it", Spec{VCPUs: 8, MemoryBytes: 4 * gib, AllowMemoryOnly: true, Spread: true}, []int{0, 1}, nil},
		{"three guest nodes", Spec{VCPUs: 4, MemoryBytes: 3 * gib, AllowMemoryOnly: true, GuestNodes: 3}, []int{0, 1, 5}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := host()
			p, err := Make(h, tt.spec, nil)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Make: err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Make: %v", err)
			}
			checkPlan(t, h, p.Spec, nil, p)
			if !slices.Equal(p.HostNodes, tt.hostNodes) {
				t.Errorf("host nodes %v, want %v", p.HostNodes, tt.hostNodes)
			}
			for _, g := range p.GuestNodes {
				if g.HostNodes[0] == 5 && len(g.VCPUs) > 0 {
					t.Errorf("memory-only node 5 got vcpus %v", g.VCPUs)
				}
			}
		})
	}
}

// Only allowed, online CPUs and allowed memory nodes are used.
func TestAllowedAndOffline(t *testing.T) {
	h := genHost(4, 4, 2, 8*gib)
	// Node 0 loses CPUs 0 and 16 (one core) to offline; node 1's memory
	// is not allowed; node 2 keeps only one thread of each core.
	off := cpuset.New(0, 16)
	h.OnlineCPUs = h.OnlineCPUs.Difference(off)
	h.Nodes[0].CPUs = h.Nodes[0].CPUs.Difference(off)
	h.Allowed.CPUs = h.OnlineCPUs.Difference(cpuset.New(24, 25, 26, 27))
	h.Allowed.Mems = cpuset.New(0, 2, 3)
	spec := Spec{VCPUs: 12, MemoryBytes: 6 * gib, Dedicated: true, PreferHT: true}
	p, err := Make(h, spec, nil)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	checkPlan(t, h, p.Spec, nil, p)
	if slices.Contains(p.HostNodes, 1) {
		t.Errorf("host nodes %v include node 1, whose memory is not allowed", p.HostNodes)
	}
	for _, v := range p.VCPUs {
		if v.HostCPUs.Contains(0) || v.HostCPUs.Contains(16) {
			t.Errorf("vcpu %d on offline CPUs: %s", v.ID, v.HostCPUs)
		}
	}
	if r := p.Rooms[1]; r.Unusable == "" {
		t.Errorf("node 1's room %+v does not say why it is unusable", r)
	}
	if got := p.Rooms[2].CPUs; got != 4 {
		t.Errorf("node 2 room %d threads, want 4 (CPUs 24-27 not allowed)", got)
	}
}

// Dedicated CPUs are never given twice: VMs are placed one after another
// until the host is full, each seeing the ones before.
func TestDedicatedNeverTwice(t *testing.T) {
	for _, ht := range []bool{false, true} {
		h := intel2p()
		var placed []Placed
		spec := Spec{VCPUs: 3, MemoryBytes: gib, Dedicated: true, PreferHT: ht}
		n := 0
		for ; n < 40; n++ {
			p, err := Make(h, spec, placed)
			if errors.Is(err, ErrDoesNotFit) {
				break
			}
			if err != nil {
				t.Fatalf("prefer-ht %v, vm %d: %v", ht, n, err)
			}
			checkPlan(t, h, p.Spec, placed, p)
			placed = append(placed, placedOf("vm", p))
		}
		// 16 cores hold 5 VMs of 3 cores; 32 threads hold 10 of 3 threads.
		want := 5
		if ht {
			want = 10
		}
		if n != want {
			t.Errorf("prefer-ht %v: %d dedicated VMs of 3 vcpus placed, want %d", ht, n, want)
		}
	}
}

// With SMT and dedicated threads, guest thread pairs are host sibling pairs;
// dedicated cores give each vCPU a whole core.
func TestDedicatedSiblings(t *testing.T) {
	h := intel2p()
	p, err := Make(h, Spec{VCPUs: 4, MemoryBytes: gib, Dedicated: true, PreferHT: true}, nil)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	want := [][]int{{0}, {16}, {1}, {17}}
	for i, v := range p.VCPUs {
		if !slices.Equal(v.HostCPUs.List(), want[i]) || v.Core != i/2 || v.Thread != i%2 {
			t.Errorf("vcpu %d: CPUs %s core %d thread %d; want CPUs %v core %d thread %d", i, v.HostCPUs, v.Core, v.Thread, want[i], i/2, i%2)
		}
	}
	// Not the node's spare CPUs, which a later dedicated VM may be given.
	if !p.EmulatorCPUs.Equals(cpuset.New(0, 1, 16, 17)) {
		t.Errorf("emulator CPUs %s, want the vCPUs' own dedicated CPUs 0-1,16-17", p.EmulatorCPUs)
	}

	p, err = Make(h, Spec{VCPUs: 2, MemoryBytes: gib, Dedicated: true}, nil)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	for i, v := range p.VCPUs {
		if !v.HostCPUs.Equals(cpuset.New(i, i+16)) {
			t.Errorf("vcpu %d on %s, want the whole core %d,%d", i, v.HostCPUs, i, i+16)
		}
	}
	if p.Threads != 1 {
		t.Errorf("threads %d, want 1 for dedicated cores", p.Threads)
	}
}

// Shared vCPUs float over all their node's usable CPUs; qemu's other
// threads may use them all too.
func TestShared(t *testing.T) {
	h := intel2p()
	p, err := Make(h, Spec{VCPUs: 12, MemoryBytes: gib}, nil)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	for _, v := range p.VCPUs {
		want := h.Nodes[p.GuestNodes[v.GuestNode].HostNodes[0]].CPUs
		if !v.HostCPUs.Equals(want) {
			t.Errorf("vcpu %d on %s, want its node's CPUs %s", v.ID, v.HostCPUs, want)
		}
	}
	if !p.EmulatorCPUs.Equals(h.OnlineCPUs) {
		t.Errorf("emulator CPUs %s, want %s", p.EmulatorCPUs, h.OnlineCPUs)
	}
	if len(p.Distances) != 2 || p.Distances[0][1] != 21 || p.Distances[1][0] != 21 || p.Distances[0][0] != 10 {
		t.Errorf("distances %v, want [[10 21] [21 10]]", p.Distances)
	}
}

// Nearest nodes by distance: on two packages of two nodes each, a VM of two
// nodes stays within a package, the roomier one.
func TestNearestSet(t *testing.T) {
	h := genHost(4, 4, 1, 8*gib)
	for i := range h.Nodes {
		for j := range h.Nodes {
			switch {
			case i == j:
			case i/2 == j/2:
				h.Nodes[i].Distances[j] = 16
			default:
				h.Nodes[i].Distances[j] = 22
			}
		}
	}
	h.Nodes[2].MemFree, h.Nodes[3].MemFree = 12*gib, 12*gib
	p, err := Make(h, Spec{VCPUs: 6, MemoryBytes: 2 * gib}, nil)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	if !slices.Equal(p.HostNodes, []int{2, 3}) {
		t.Errorf("host nodes %v, want [2 3] (same package, most room)", p.HostNodes)
	}
	p, err = Make(h, Spec{VCPUs: 6, MemoryBytes: 2 * gib, NearNode: 1, HasNearNode: true}, nil)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	if !slices.Equal(p.HostNodes, []int{0, 1}) {
		t.Errorf("near node 1: host nodes %v, want [0 1]", p.HostNodes)
	}
	if !strings.Contains(strings.Join(p.Reasons, " "), "nearness to node 1") {
		t.Errorf("reasons do not mention the device's node: %q", p.Reasons)
	}
}

func TestDescribe(t *testing.T) {
	p, err := Make(intel2p(), Spec{VCPUs: 8, MemoryBytes: 36 * gib}, nil)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	var b strings.Builder
	if err := p.Describe(&b); err != nil {
		t.Fatalf("Describe: %v", err)
	}
	for _, s := range []string{
		"Host nodes: 0-1",
		"No single node has room for 36 GiB (the most is 30.7 GiB)",
		"Memory is split by room",
		"  0           0           0-3    25.5 GiB",
		"  4-7    1           1/0/0..1/3/0        8-15,24-31",
		"Guest CPU topology: sockets=2 cores=4 threads=1",
		"Process memory policy: bind on nodes 0-1",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("description lacks %q:\n%s", s, b.String())
		}
	}
}
