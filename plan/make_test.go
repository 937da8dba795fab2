package plan

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/topology"
)

func TestMake(t *testing.T) {
	tests := []struct {
		name   string
		host   func() *topology.Host
		spec   Spec
		placed []Placed
		// want
		hostNodes   []int
		guestVCPUs  []int    // vCPUs per guest node
		guestMem    []uint64 // memory per guest node; nil: don't check
		smp         [3]int   // sockets, cores, threads; zero: don't check
		err         error
		errContains []string
	}{
		{name: "8 vcpus 16G fit node 0 alone", host: intel2p,
			spec:      Spec{VCPUs: 8, MemoryBytes: 16 * gib},
			hostNodes: []int{0}, guestVCPUs: []int{8}, guestMem: []uint64{16 * gib}, smp: [3]int{1, 8, 1}},
		{name: "12 vcpus need two nodes of cores", host: intel2p,
			spec:      Spec{VCPUs: 12, MemoryBytes: 8 * gib},
			hostNodes: []int{0, 1}, guestVCPUs: []int{6, 6}, guestMem: []uint64{4 * gib, 4 * gib}, smp: [3]int{2, 6, 1}},
		{name: "12 vcpus fit one node counting threads", host: intel2p,
			spec:      Spec{VCPUs: 12, MemoryBytes: 8 * gib, PreferHT: true},
			hostNodes: []int{0}, guestVCPUs: []int{12}, smp: [3]int{1, 12, 1}},
		{name: "36G spans two nodes split by room", host: intel2p,
			spec:      Spec{VCPUs: 8, MemoryBytes: 36 * gib},
			hostNodes: []int{0, 1}, guestVCPUs: []int{4, 4}, guestMem: []uint64{26071 << 20, 10793 << 20}, smp: [3]int{2, 4, 1}},
		{name: "host node 1 too small for 16G", host: intel2p,
			spec: Spec{VCPUs: 8, MemoryBytes: 16 * gib, HostNodes: []int{1}},
			err:  ErrDoesNotFit, errContains: []string{"host nodes 1 given: 16 GiB asked, they have 12.7 GiB free", "asked"}},
		{name: "host node 1 honoured", host: intel2p,
			spec:      Spec{VCPUs: 4, MemoryBytes: 2 * gib, HostNodes: []int{1}},
			hostNodes: []int{1}, guestVCPUs: []int{4}},
		{name: "host nodes 1,0 honoured in host order", host: intel2p,
			spec:      Spec{VCPUs: 4, MemoryBytes: 2 * gib, HostNodes: []int{1, 0}},
			hostNodes: []int{0, 1}, guestVCPUs: []int{2, 2}},
		{name: "more vcpus than cores", host: intel2p,
			spec: Spec{VCPUs: 17, MemoryBytes: gib},
			err:  ErrDoesNotFit, errContains: []string{"17 vCPUs asked, the usable nodes have 16 cores in all", "node   cores  memory free", "asked  17"}},
		{name: "more vcpus than threads", host: intel2p,
			spec: Spec{VCPUs: 33, MemoryBytes: gib, PreferHT: true},
			err:  ErrDoesNotFit, errContains: []string{"33 vCPUs asked, the usable nodes have 32 threads in all"}},
		{name: "more memory than all the room", host: intel2p,
			spec: Spec{VCPUs: 2, MemoryBytes: 44 * gib},
			err:  ErrDoesNotFit, errContains: []string{"44 GiB asked, the usable nodes have 43.4 GiB free in all", "30.7 GiB", "12.7 GiB"}},
		{name: "hugepages fit by free pages", host: intel2p,
			spec:      Spec{VCPUs: 2, MemoryBytes: 4 * gib, HugepageBytes: 2 << 20},
			hostNodes: []int{1}, guestVCPUs: []int{2}},
		{name: "hugepages of an absent size", host: intel2p,
			spec: Spec{VCPUs: 2, MemoryBytes: 4 * gib, HugepageBytes: 1 << 30},
			err:  ErrDoesNotFit, errContains: []string{"no free 1 GiB hugepages"}},
		{name: "hugepages too few", host: intel2p,
			spec: Spec{VCPUs: 2, MemoryBytes: 12 * gib, HugepageBytes: 2 << 20},
			err:  ErrDoesNotFit, errContains: []string{"12 GiB asked, the usable nodes have 10 GiB free in all", "2 MiB pages", "4096"}},
		{name: "max vcpus per node", host: intel2p,
			spec:      Spec{VCPUs: 8, MemoryBytes: 2 * gib, MaxVCPUsPerNode: 4},
			hostNodes: []int{0, 1}, guestVCPUs: []int{4, 4}},
		{name: "near node 1", host: intel2p,
			spec:      Spec{VCPUs: 2, MemoryBytes: 2 * gib, NearNode: 1, HasNearNode: true},
			hostNodes: []int{1}},
		{name: "zero spec prefers no node", host: intel2p,
			spec:      Spec{VCPUs: 2, MemoryBytes: 2 * gib},
			hostNodes: []int{0}},
		{name: "two guest nodes asked", host: intel2p,
			spec:      Spec{VCPUs: 4, MemoryBytes: 2 * gib, GuestNodes: 2},
			hostNodes: []int{0, 1}, guestVCPUs: []int{2, 2}, guestMem: []uint64{gib, gib}},
		{name: "uneven split gives a socket per vcpu", host: intel2p,
			spec:      Spec{VCPUs: 9, MemoryBytes: 2 * gib},
			hostNodes: []int{0, 1}, guestVCPUs: []int{5, 4}, smp: [3]int{9, 1, 1}},
		{name: "spread over four nodes", host: func() *topology.Host { return genHost(4, 4, 1, 8*gib) },
			spec:      Spec{VCPUs: 8, MemoryBytes: 4 * gib, Spread: true},
			hostNodes: []int{0, 1, 2, 3}, guestVCPUs: []int{2, 2, 2, 2}, smp: [3]int{4, 2, 1}},
		{name: "spread prefers an even split", host: func() *topology.Host { return genHost(4, 4, 1, 8*gib) },
			spec:      Spec{VCPUs: 6, MemoryBytes: 3 * gib, Spread: true},
			hostNodes: []int{0, 1, 2}, guestVCPUs: []int{2, 2, 2}},
		{name: "dedicated threads pair siblings", host: intel2p,
			spec:      Spec{VCPUs: 4, MemoryBytes: 2 * gib, Dedicated: true, PreferHT: true},
			hostNodes: []int{0}, smp: [3]int{1, 2, 2}},
		{name: "dedicated odd threads do not pair", host: intel2p,
			spec: Spec{VCPUs: 3, MemoryBytes: 2 * gib, Dedicated: true, PreferHT: true},
			smp:  [3]int{1, 3, 1}},
		{name: "placed memory pushes to node 1", host: intel2p,
			spec:      Spec{VCPUs: 2, MemoryBytes: 10 * gib},
			placed:    []Placed{{Name: "a", MemoryBytes: map[int]uint64{0: 25 * gib}}},
			hostNodes: []int{1}},
		{name: "placed memory leaves too little", host: intel2p,
			spec:   Spec{VCPUs: 2, MemoryBytes: 40 * gib},
			placed: []Placed{{Name: "a", MemoryBytes: map[int]uint64{0: 25 * gib}}},
			err:    ErrDoesNotFit, errContains: []string{"5.7 GiB"}},
		{name: "placed dedicated cores shrink a node", host: intel2p,
			spec:      Spec{VCPUs: 4, MemoryBytes: gib},
			placed:    []Placed{{Name: "a", DedicatedCPUs: cpuset.New(0, 1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 21)}},
			hostNodes: []int{1}},

		{name: "no vcpus", host: intel2p, spec: Spec{MemoryBytes: gib}, err: ErrBadSpec, errContains: []string{"0 vcpus"}},
		{name: "no memory", host: intel2p, spec: Spec{VCPUs: 1}, err: ErrBadSpec, errContains: []string{"no memory"}},
		{name: "memory not in MiB", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib + 4096}, err: ErrBadSpec, errContains: []string{"not a multiple of 1 MiB"}},
		{name: "memory not in hugepages", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: 3 * gib / 2, HugepageBytes: gib}, err: ErrBadSpec, errContains: []string{"1 GiB hugepage size"}},
		{name: "hugepage size not a power of two", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib, HugepageBytes: 3 << 20}, err: ErrBadSpec},
		{name: "policy default", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib, Policy: memobj.PolicyDefault}, err: ErrBadSpec},
		{name: "unknown policy", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib, Policy: "local"}, err: ErrBadSpec},
		{name: "host node absent", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib, HostNodes: []int{2}}, err: ErrBadSpec, errContains: []string{"host node 2 does not exist (this host has nodes 0-1)"}},
		{name: "host node twice", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib, HostNodes: []int{0, 0}}, err: ErrBadSpec},
		{name: "host nodes empty", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib, HostNodes: []int{}}, err: ErrBadSpec},
		{name: "guest nodes against host nodes", host: intel2p, spec: Spec{VCPUs: 2, MemoryBytes: gib, HostNodes: []int{0}, GuestNodes: 2}, err: ErrBadSpec},
		{name: "near node absent", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib, NearNode: 7, HasNearNode: true}, err: ErrBadSpec},
		{name: "negative guest nodes", host: intel2p, spec: Spec{VCPUs: 1, MemoryBytes: gib, GuestNodes: -1}, err: ErrBadSpec},
		{name: "more guest nodes than host nodes", host: intel2p, spec: Spec{VCPUs: 4, MemoryBytes: gib, GuestNodes: 3}, err: ErrDoesNotFit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.host()
			p, err := Make(h, tt.spec, tt.placed)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Make: err %v, want %v", err, tt.err)
				}
				if p != nil {
					t.Errorf("Make returned a plan with its error")
				}
				for _, s := range tt.errContains {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error does not say %q:\n%v", s, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Make: %v", err)
			}
			checkPlan(t, h, p.Spec, tt.placed, p)
			if tt.hostNodes != nil && !slices.Equal(p.HostNodes, tt.hostNodes) {
				t.Errorf("host nodes %v, want %v", p.HostNodes, tt.hostNodes)
			}
			var vc []int
			var mem []uint64
			for _, g := range p.GuestNodes {
				vc = append(vc, len(g.VCPUs))
				mem = append(mem, g.MemoryBytes)
			}
			if tt.guestVCPUs != nil && !slices.Equal(vc, tt.guestVCPUs) {
				t.Errorf("vcpus per guest node %v, want %v", vc, tt.guestVCPUs)
			}
			if tt.guestMem != nil && !slices.Equal(mem, tt.guestMem) {
				t.Errorf("memory per guest node %v, want %v", mem, tt.guestMem)
			}
			if tt.smp != [3]int{} && [3]int{p.Sockets, p.Cores, p.Threads} != tt.smp {
				t.Errorf("smp sockets/cores/threads %d/%d/%d, want %v", p.Sockets, p.Cores, p.Threads, tt.smp)
			}
		})
	}
}
