package main

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/balance/balancetest"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
)

// TestFitsWithMove asks the planner about a waiting VM on a hypothetical
// ledger: A (2 GiB) on node 0 and B (2 GiB) on node 1 hold their pages,
// each node has 3 GiB free; waiting C (one guest node of 4 GiB) fits no
// node, and fits node 0 once A is moved to node 1 (node 0 gets A's
// 2 GiB back); D (6 GiB) fits nowhere even then; moving A where it does
// not fit is refused as a move.
func TestFitsWithMove(t *testing.T) {
	host, err := topology.Read(balancetest.Machine(2, 4, 16, 3, 3).Write(t))
	if err != nil {
		t.Fatal(err)
	}
	entry := func(name string, node int) ledger.Entry {
		cpus := cpuset.New(4*node, 4*node+1, 4*node+2, 4*node+3)
		return ledger.Entry{Name: name, HostNodes: []int{node}, MemoryBytes: map[int]uint64{node: 2 * balanceGiB}, VCPUs: map[int]int{node: 1},
			DedicatedCPUs: cpuset.New(), VCPUCPUs: cpus, EmulatorCPUs: cpus, VCPUHomeNodes: [][]int{{node}},
			GuestNodes: []ledger.GuestNode{{ID: 0, HostNodes: []int{node}, VCPUs: []int{0}, MemoryBytes: 2 * balanceGiB, Policy: "bind"}}}
	}
	entries := []ledger.Entry{entry("a", 0), entry("b", 1)}
	placed := make([]plan.Placed, len(entries))
	for i, e := range entries {
		placed[i] = e.Placed()
		placed[i].ResidentBytes = map[int]uint64{e.HostNodes[0]: 2 * balanceGiB} // preallocated
	}
	c := ledger.Waiting{Name: "c", Spec: plan.Spec{VCPUs: 1, MemoryBytes: 4 * balanceGiB, GuestNodes: 1}}
	if err := fitsWithMove(host, entries, placed, c, nil, nil); !errors.Is(err, plan.ErrDoesNotFit) {
		t.Fatalf("c fits now (%v), want it short", err)
	}
	if err := fitsWithMove(host, entries, placed, c, &entries[0], map[int][]int{0: {1}}); err != nil {
		t.Errorf("a moved to node 1: %v, want c to fit node 0", err)
	}
	d := ledger.Waiting{Name: "d", Spec: plan.Spec{VCPUs: 1, MemoryBytes: 6 * balanceGiB, GuestNodes: 1}}
	if err := fitsWithMove(host, entries, placed, d, &entries[0], map[int][]int{0: {1}}); !errors.Is(err, plan.ErrDoesNotFit) {
		t.Errorf("a moved to node 1: %v, want d still short (node 0 has 5 GiB then)", err)
	}
	// A move that does not fit (node 1 with 1 GiB free) is refused as one.
	tight, err := topology.Read(balancetest.Machine(2, 4, 16, 3, 1).Write(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := fitsWithMove(tight, entries, placed, c, &entries[0], map[int][]int{0: {1}}); !errors.Is(err, plan.ErrDoesNotFit) || !strings.Contains(err.Error(), "move vm a to 0:1") {
		t.Errorf("a to a full node 1: %v", err)
	}
	// Without resident pages known, the promises count whole (the host's
	// free memory still holds them): 5 GiB free, 3 GiB of room each; a's
	// is released on node 0 by its move.
	for i := range placed {
		placed[i].ResidentBytes = nil
	}
	roomy, err := topology.Read(balancetest.Machine(2, 4, 16, 5, 5).Write(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := fitsWithMove(roomy, entries, placed, c, nil, nil); !errors.Is(err, plan.ErrDoesNotFit) {
		t.Errorf("promises only, now: %v, want c short", err)
	}
	if err := fitsWithMove(roomy, entries, placed, c, &entries[0], map[int][]int{0: {1}}); err != nil {
		t.Errorf("promises only, a moved to node 1: %v", err)
	}
}
