package balance_test

import (
	"testing"

	"github.com/qnuma/qnuma/balance"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/qemutest"
)

// TestMatchGuestNodesRealQEMU: a real qemu's memfd backends, one per guest
// node, are told apart in its numa_maps as the ledger describes them; an
// entry naming a size no backend has finds none.
func TestMatchGuestNodesRealQEMU(t *testing.T) {
	qemutest.Require(t)
	vm := qemutest.MustStart(t, "-m", "96M",
		"-object", "memory-backend-memfd,id=m0,size=64M,host-nodes=0,policy=bind,prealloc=on", "-numa", "node,nodeid=0,memdev=m0",
		"-object", "memory-backend-memfd,id=m1,size=32M,host-nodes=0,policy=bind,prealloc=on", "-numa", "node,nodeid=1,memdev=m1")
	ms, err := numastat.ReadMappings("/", vm.PID())
	if err != nil {
		t.Fatal(err)
	}
	e := ledger.Entry{Name: "a", HostNodes: []int{0}, GuestNodes: []ledger.GuestNode{
		{ID: 0, HostNodes: []int{0}, MemoryBytes: 64 << 20, Policy: "bind"},
		{ID: 1, HostNodes: []int{0}, MemoryBytes: 32 << 20, Policy: "bind"},
	}}
	got, why := balance.MatchGuestNodes(e, ms)
	if len(got) != 2 || why != "" {
		t.Fatalf("guest nodes %+v (%s), want 2", got, why)
	}
	for i, want := range []uint64{64 << 20, 32 << 20} {
		if g := got[i]; g.ID != i || g.Bytes() != want || g.LocalPercent != 100 {
			t.Errorf("guest node %d: %+v, want %d bytes, all on host node 0", i, g, want)
		}
	}
	e.GuestNodes[1].MemoryBytes = 48 << 20
	if got, why := balance.MatchGuestNodes(e, ms); got != nil || why == "" {
		t.Errorf("a guest node of no backend's size: %+v, %q", got, why)
	}
}
