package ledger

import (
	"context"
	"testing"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/topology"
)

// A running qemu whose 64 MiB of guest RAM is preallocated on node 0 has
// already left MemFree: with its resident memory known, node 0's room is
// what it would be without the VM (the 64 MiB are taken once, by the
// kernel); counting the promise again, as qnuma did, takes them twice
// (issue 11, item 9). Both plans see the same host snapshot.
func TestRoomOfPreallocatedQEMU(t *testing.T) {
	pid := qemutest.StartPID(t, qemutest.StatArgs...)
	res, err := ResidentOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != 64*memobj.MiB {
		t.Fatalf("resident guest RAM %v, want 64 MiB on node 0", res)
	}
	ctx := context.Background()
	l := open(t)
	p := onePlan(0, 64*memobj.MiB, 0)
	p.Spec.Dedicated = false
	r, err := l.Place(ctx, "prealloc", fixed(p))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetQEMU(pid); err != nil {
		t.Fatal(err)
	}
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	room0 := func(placed []plan.Placed) uint64 {
		t.Helper()
		pl, err := plan.Make(host, plan.Spec{VCPUs: 1, MemoryBytes: memobj.MiB}, placed)
		if err != nil {
			t.Fatal(err)
		}
		for _, rm := range pl.Rooms {
			if rm.Node == 0 {
				return rm.MemoryBytes
			}
		}
		t.Fatal("no room for node 0")
		return 0
	}
	st, err := l.List(ctx)
	if err != nil || len(st.Entries) != 1 {
		t.Fatalf("List: %+v, %v", st, err)
	}
	without := room0(nil)
	l.Resident = ResidentOf
	if with := room0(l.Placed(st.Entries)); with != without {
		t.Errorf("node 0 room with the preallocated vm %d, without %d: want equal (MemFree already lacks its 64 MiB)", with, without)
	}
	// Negative control: the promise counted whole takes the 64 MiB again.
	l.Resident = nil
	if with := room0(l.Placed(st.Entries)); without-with != 64*memobj.MiB {
		t.Errorf("control: node 0 room falls by %d counting the promise whole, want the double-counted 64 MiB", without-with)
	}
}
