package plan

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

func TestMove(t *testing.T) {
	const gib = 1 << 30
	// 4 nodes × 4 cores, 8 GiB free each.

	one := Running{Name: "a", VCPUs: 2, GuestNodes: []GuestNode{{ID: 0, HostNodes: []int{0}, VCPUs: []int{0, 1}, MemoryBytes: 2 * gib}}}
	two := Running{Name: "b", VCPUs: 4, Dedicated: true, GuestNodes: []GuestNode{
		{ID: 0, HostNodes: []int{0}, VCPUs: []int{0, 1}, MemoryBytes: 2 * gib},
		{ID: 1, HostNodes: []int{1}, VCPUs: []int{2, 3}, MemoryBytes: 2 * gib},
	}}
	// Another VM holding most of node 2 and two dedicated cores of node 3.
	other := Placed{Name: "x", MemoryBytes: map[int]uint64{2: 7 * gib, 3: gib}, VCPUs: map[int]int{3: 2},
		DedicatedCPUs: cpuset.New(12, 13), CPUs: cpuset.New(12, 13)}

	tests := []struct {
		name    string
		r       Running
		to      map[int][]int
		placed  []Placed
		nodes   [][]int // each guest node's host nodes after
		vcpus   []cpuset.CPUSet
		wantErr string
		fit     bool // the error is ErrDoesNotFit (else ErrBadSpec)
	}{
		{name: "one guest node to node 1", r: one, to: map[int][]int{0: {1}},
			nodes: [][]int{{1}}, vcpus: []cpuset.CPUSet{cpuset.New(4, 5, 6, 7), cpuset.New(4, 5, 6, 7)}},
		// Moving guest node 0 alone keeps guest node 1 where it is: no
		// positional shuffle of the other.
		{name: "guest node 0 alone moves", r: two, to: map[int][]int{0: {3}},
			nodes: [][]int{{3}, {1}}, vcpus: []cpuset.CPUSet{cpuset.New(14), cpuset.New(15), cpuset.New(4), cpuset.New(5)}, placed: []Placed{other}},
		{name: "swap the two guest nodes", r: two, to: map[int][]int{0: {1}, 1: {0}},
			nodes: [][]int{{1}, {0}}, vcpus: []cpuset.CPUSet{cpuset.New(4), cpuset.New(5), cpuset.New(0), cpuset.New(1)}},
		{name: "both onto one node", r: two, to: map[int][]int{0: {2}, 1: {2}},
			nodes: [][]int{{2}, {2}}, vcpus: []cpuset.CPUSet{cpuset.New(8), cpuset.New(9), cpuset.New(10), cpuset.New(11)}},
		{name: "nowhere to go: node 2 is full", r: one, to: map[int][]int{0: {2}}, placed: []Placed{other},
			wantErr: "does not fit on host node 2", fit: true},
		{name: "two dedicated vCPUs where two cores are left", r: two, to: map[int][]int{0: {3}, 1: {3}}, placed: []Placed{other},
			wantErr: "dedicated vCPUs do not fit on host node 3", fit: true},
		{name: "a node that does not exist", r: one, to: map[int][]int{0: {9}}, wantErr: "host node 9 does not exist"},
		{name: "a guest node the VM lacks", r: one, to: map[int][]int{3: {1}}, wantErr: "no guest node 3"},
		{name: "no layout", r: Running{Name: "old", VCPUs: 1}, to: map[int][]int{0: {1}}, wantErr: "no guest node layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Move(genHost(4, 4, 1, 8*gib), tt.r, MoveSpec{To: tt.to}, tt.placed)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Move = %v, want an error with %q", err, tt.wantErr)
				}
				if want := map[bool]error{true: ErrDoesNotFit, false: ErrBadSpec}[tt.fit]; !errors.Is(err, want) {
					t.Errorf("Move error %v does not wrap %v", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range p.GuestNodes {
				if !slices.Equal(g.HostNodes, tt.nodes[i]) || g.MemoryBytes != tt.r.GuestNodes[i].MemoryBytes {
					t.Errorf("guest node %d on %v with %d bytes, want %v with %d", i, g.HostNodes, g.MemoryBytes, tt.nodes[i], tt.r.GuestNodes[i].MemoryBytes)
				}
			}
			for i, v := range p.VCPUs {
				if v.ID != i || !v.HostCPUs.Equals(tt.vcpus[i]) {
					t.Errorf("vCPU %d (id %d) on %s, want %s", i, v.ID, v.HostCPUs, tt.vcpus[i])
				}
			}
			if len(p.Reasons) == 0 {
				t.Error("no reasons")
			}
		})
	}
}

// The guest node that stays keeps its promise on its node: a guest node
// moving next to it finds that node's room less what the staying one has
// still to take there.
func TestMoveCountsWhatStays(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		stays uint64 // guest node 0's size, none of it resident yet
		fits  bool
	}{{5 * gib, false}, {2 * gib, true}} {
		h := genHost(2, 4, 1, 8*gib)
		r := Running{Name: "b", VCPUs: 2, GuestNodes: []GuestNode{
			{ID: 0, HostNodes: []int{0}, VCPUs: []int{0}, MemoryBytes: tc.stays},
			{ID: 1, HostNodes: []int{1}, VCPUs: []int{1}, MemoryBytes: 5 * gib},
		}}
		r.Self = Placed{Name: "b", MemoryBytes: map[int]uint64{0: tc.stays, 1: 5 * gib}}
		_, err := Move(h, r, MoveSpec{To: map[int][]int{1: {0}}}, nil)
		if tc.fits && err != nil {
			t.Errorf("guest node 1 (5 GiB) next to %d GiB still to come on 8 GiB: %v, want it to fit", tc.stays>>30, err)
		}
		if !tc.fits && !errors.Is(err, ErrDoesNotFit) {
			t.Errorf("guest node 1 (5 GiB) next to %d GiB still to come on 8 GiB: %v, want ErrDoesNotFit", tc.stays>>30, err)
		}
	}
}
