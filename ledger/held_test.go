package ledger

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/qnuma/qnuma/plan"
)

// TestPlaceHeld: a held reservation writes nothing and keeps every other
// placement waiting until Commit, which writes the entry once, with qemu's
// process, and lets the next placement see it.
func TestPlaceHeld(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	// Long enough that the Place after Commit never loses to the given-up
	// wait of the one before (it takes the lock and drops it at once).
	l.LockTimeout = time.Second
	r, err := l.PlaceHeld(ctx, "held", fixed(onePlan(0, 1<<20, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.path("held")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a held reservation wrote its entry before Commit: %v", err)
	}
	if _, err := l.Place(ctx, "other", fixed(onePlan(0, 1<<20, 2))); err == nil {
		t.Fatal("another Place went ahead while the reservation was held")
	}
	q := liveProc(t)
	if err := r.Commit(q.PID, func(e *Entry) { e.Locked = true }); err != nil {
		t.Fatal(err)
	}
	e, err := l.read("held")
	if err != nil {
		t.Fatalf("no entry after Commit: %v", err)
	}
	if e.QEMU != q || !e.Locked || e.Owner != r.Entry.Owner {
		t.Errorf("committed entry = %+v, want qemu %+v, locked, owned by this process", e, q)
	}
	var saw []string
	if _, err := l.Place(ctx, "other", func(placed []plan.Placed) (*plan.Plan, error) {
		for _, p := range placed {
			saw = append(saw, p.Name)
		}
		return onePlan(0, 1<<20, 2), nil
	}); err != nil {
		t.Fatalf("Place after Commit: %v", err)
	}
	if len(saw) != 1 || saw[0] != "held" {
		t.Errorf("the next placement saw %v, want the committed vm", saw)
	}
	if err := r.Commit(q.PID); err == nil {
		t.Error("a second Commit succeeded")
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.path("held")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Release after Commit left the entry: %v", err)
	}
}

// TestPlaceHeldReleasedOrFailed: a hold given up (qemu never started), or
// a Commit that cannot read qemu's process, leaves no entry and the ledger
// unlocked.
func TestPlaceHeldReleasedOrFailed(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	l.LockTimeout = 2 * time.Second // every lock here must be had
	r, err := l.PlaceHeld(ctx, "a", fixed(onePlan(0, 1<<20, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	r, err = l.PlaceHeld(ctx, "b", fixed(onePlan(0, 1<<20, 1)))
	if err != nil {
		t.Fatalf("PlaceHeld after a released hold: %v", err)
	}
	if err := r.Commit(deadProc(t).PID); err == nil {
		t.Fatal("Commit with a pid that does not exist succeeded")
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	st, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != 0 {
		t.Errorf("entries %+v, want none", st.Entries)
	}
	if _, err := l.Place(ctx, "c", fixed(onePlan(0, 1<<20, 1))); err != nil {
		t.Errorf("Place after a failed Commit: %v (the ledger stayed locked?)", err)
	}
}

// TestPlaceRemovesOwnWaiting: placing the VM this process waits for
// (qnuma run --wait) removes its waiting entry under the same lock, so the
// two are never seen together; a waiting entry for another VM stays.
func TestPlaceRemovesOwnWaiting(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	if _, err := l.Wait(ctx, "c", plan.Spec{VCPUs: 1, MemoryBytes: 1 << 20}, "short"); err != nil {
		t.Fatal(err)
	}
	r, err := l.PlaceHeld(ctx, "other", fixed(onePlan(0, 1<<20, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.waitingPath(os.Getpid())); err != nil {
		t.Errorf("placing another vm removed the waiting entry of c: %v", err)
	}
	r.Release()
	r, err = l.PlaceHeld(ctx, "c", fixed(onePlan(0, 1<<20, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if _, err := os.Stat(l.waitingPath(os.Getpid())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("c placed (held, not committed) but its waiting entry is still there: %v", err)
	}
}
