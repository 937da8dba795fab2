package ledger

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/utils/cpuset"
)

// Update changes a live entry under the lock, checked against the other
// VMs, and writes nothing when the change is refused.
func TestUpdate(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	if _, err := l.Place(ctx, "a", fixed(onePlan(0, 1<<30, 0))); err != nil {
		t.Fatal(err)
	}
	shared := onePlan(0, 1<<30, 2)
	shared.Spec.Dedicated = false
	rb, err := l.Place(ctx, "b", fixed(shared))
	if err != nil {
		t.Fatal(err)
	}
	stored := func() Entry {
		t.Helper()
		e, ok, err := l.Get(ctx, "b")
		if err != nil || !ok {
			t.Fatalf("get b: %v %v", ok, err)
		}
		return e
	}
	before := stored()

	got, err := l.Update(ctx, "b", func(e *Entry) error {
		e.VCPUCPUs = cpuset.New(3)
		e.EmulatorCPUs = cpuset.New(2, 3)
		return nil
	})
	if err != nil {
		t.Fatalf("update b: %v", err)
	}
	after := stored()
	if !after.VCPUCPUs.Equals(cpuset.New(3)) || !after.EmulatorCPUs.Equals(cpuset.New(2, 3)) || !reflect.DeepEqual(after, got) {
		t.Errorf("after update: stored %+v, returned %+v; want vcpu cpus 3, emulator cpus 2-3", after, got)
	}
	if after.Owner != rb.Entry.Owner || !after.Created.Equal(before.Created) || after.TotalMemory() != before.TotalMemory() {
		t.Errorf("update changed more than the cpus: %+v, was %+v", after, before)
	}

	boom := errors.New("boom")
	for _, tt := range []struct {
		name   string
		vm     string
		change func(*Entry) error
		want   error
	}{
		{"vcpu on a's dedicated cpu", "b", func(e *Entry) error { e.VCPUCPUs = cpuset.New(0, 3); return nil }, ErrCPUTaken},
		{"emulator on a's dedicated cpu", "b", func(e *Entry) error { e.EmulatorCPUs = cpuset.New(0); return nil }, ErrCPUTaken},
		{"dedicating where a runs", "b", func(e *Entry) error { e.DedicatedCPUs = cpuset.New(0); return nil }, ErrCPUTaken},
		{"change refuses", "b", func(e *Entry) error { e.VCPUCPUs = cpuset.New(1); return boom }, boom},
		{"no such vm", "c", func(e *Entry) error { return nil }, ErrNoVM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Update(ctx, tt.vm, tt.change); !errors.Is(err, tt.want) {
				t.Errorf("update: %v, want %v", err, tt.want)
			}
			if now := stored(); !reflect.DeepEqual(now, after) {
				t.Errorf("refused update changed the entry: %+v, was %+v", now, after)
			}
		})
	}
	for _, tt := range []struct {
		name   string
		change func(*Entry)
	}{
		{"owner", func(e *Entry) { e.Owner.PID++ }},
		{"qemu", func(e *Entry) { e.QEMU = liveProc(t) }},
		{"name", func(e *Entry) { e.Name = "c" }},
		{"created", func(e *Entry) { e.Created = e.Created.Add(1) }},
	} {
		t.Run("identity "+tt.name, func(t *testing.T) {
			_, err := l.Update(ctx, "b", func(e *Entry) error { tt.change(e); return nil })
			if err == nil {
				t.Errorf("update changing the %s: no error", tt.name)
			}
			if now := stored(); !reflect.DeepEqual(now, after) {
				t.Errorf("refused update changed the entry: %+v, was %+v", now, after)
			}
		})
	}
	// The change sees a copy: its edits to maps do not leak when refused.
	_, _ = l.Update(ctx, "b", func(e *Entry) error { e.MemoryBytes[0] = 1; return boom })
	if now := stored(); now.MemoryBytes[0] != after.MemoryBytes[0] {
		t.Errorf("refused change leaked into the stored entry: %v", now.MemoryBytes)
	}
}

// An entry whose owner and qemu are gone is no VM to update, and an
// absent ledger has none.
func TestUpdateDeadOrMissing(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	if _, err := l.Place(ctx, "x", fixed(onePlan(0, 1<<30, 0))); err != nil {
		t.Fatal(err)
	}
	e, err := l.read("x")
	if err != nil {
		t.Fatal(err)
	}
	e.Owner = deadProc(t)
	if err := l.write(e); err != nil {
		t.Fatal(err)
	}
	called := false
	if _, err := l.Update(ctx, "x", func(*Entry) error { called = true; return nil }); !errors.Is(err, ErrNoVM) || called {
		t.Errorf("update of a dead vm: %v (change called: %v), want ErrNoVM and no call", err, called)
	}
	missing, err := Open(filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := missing.Update(ctx, "x", func(*Entry) error { return nil }); !errors.Is(err, ErrNoVM) {
		t.Errorf("update in a missing ledger: %v, want ErrNoVM", err)
	}
	if _, err := l.Update(ctx, "../x", func(*Entry) error { return nil }); err == nil {
		t.Error("update of a bad name: no error")
	}
}

// Updates race under the lock: of two VMs that at once try to take the
// same CPU, one dedicating it and one moving its vCPUs onto it, exactly
// one succeeds every time.
func TestUpdateConcurrent(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		l := open(t)
		for i, name := range []string{"x", "y"} {
			p := onePlan(0, 1<<20, 2+i)
			p.Spec.Dedicated = false
			if _, err := l.Place(ctx, name, fixed(p)); err != nil {
				t.Fatal(err)
			}
		}
		errs := make(chan error, 2)
		start := make(chan struct{})
		go func() {
			<-start
			_, err := l.Update(ctx, "x", func(e *Entry) error { e.DedicatedCPUs, e.VCPUCPUs = cpuset.New(5), cpuset.New(5); return nil })
			errs <- err
		}()
		go func() {
			<-start
			_, err := l.Update(ctx, "y", func(e *Entry) error { e.VCPUCPUs = cpuset.New(5); return nil })
			errs <- err
		}()
		close(start)
		a, b := <-errs, <-errs
		if (a == nil) == (b == nil) {
			t.Fatalf("round %d: updates ended %v and %v, want exactly one refused", round, a, b)
		}
		if err := errors.Join(a, b); !errors.Is(err, ErrCPUTaken) {
			t.Fatalf("round %d: refusal %v, want ErrCPUTaken", round, err)
		}
	}
}

// UpdateAmong's change sees every other live VM as the ledger holds it
// under the lock, and a refusal writes nothing.
func TestUpdateAmong(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	for _, n := range []string{"a", "b", "c"} {
		p := onePlan(0, 1<<30, 2)
		p.Spec.Dedicated = false
		if _, err := l.Place(ctx, n, fixed(p)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	if _, err := l.UpdateAmong(ctx, "b", func(e *Entry, others []Entry) error {
		for _, o := range others {
			seen = append(seen, o.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seen, []string{"a", "c"}) {
		t.Errorf("others = %v, want a and c", seen)
	}
	before, _, _ := l.Get(ctx, "b")
	_, err := l.UpdateAmong(ctx, "b", func(e *Entry, others []Entry) error {
		e.VCPUCPUs = cpuset.New(1)
		return errors.New("does not fit around them")
	})
	after, _, _ := l.Get(ctx, "b")
	if err == nil || !after.VCPUCPUs.Equals(before.VCPUCPUs) {
		t.Errorf("refused change: %v, vcpu cpus %s (were %s)", err, after.VCPUCPUs, before.VCPUCPUs)
	}
}
