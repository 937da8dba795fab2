package ledger

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
)

func TestWaitingRoundTrip(t *testing.T) {
	spec := plan.Spec{VCPUs: 2, MemoryBytes: 1 << 30, GuestNodes: 1, Policy: memobj.PolicyBind, Prealloc: true,
		VCPUPins:    map[int]plan.Pin{1: {CPUs: cpuset.New(2, 3), From: "<vcpupin vcpu='1'>"}},
		EmulatorPin: &plan.Pin{CPUs: cpuset.New(0)},
		IOThreads:   []plan.IOThreadSpec{{ID: "io1", Pin: plan.Pin{CPUs: cpuset.New(4)}}},
		Cells:       []plan.Cell{{ID: 0, VCPUs: []int{0, 1}, MemoryBytes: 1 << 30, Backend: "m0"}},
	}
	w := Waiting{Name: "c", Owner: Proc{PID: 42, StartTime: 9}, Since: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Spec: spec, Short: "no node has 1 GiB free"}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var got Waiting
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !got.Spec.VCPUPins[1].CPUs.Equals(cpuset.New(2, 3)) || got.Spec.VCPUPins[1].From != spec.VCPUPins[1].From ||
		!got.Spec.EmulatorPin.CPUs.Equals(cpuset.New(0)) || !got.Spec.IOThreads[0].Pin.CPUs.Equals(cpuset.New(4)) {
		t.Errorf("pins %+v %+v %+v, want those written", got.Spec.VCPUPins, got.Spec.EmulatorPin, got.Spec.IOThreads)
	}
	got.Spec.VCPUPins, got.Spec.EmulatorPin, got.Spec.IOThreads = spec.VCPUPins, spec.EmulatorPin, spec.IOThreads
	if !reflect.DeepEqual(got, w) {
		t.Errorf("read back %+v, want %+v", got, w)
	}
	if !spec.VCPUPins[1].CPUs.Equals(cpuset.New(2, 3)) || spec.EmulatorPin == nil {
		t.Error("marshal changed the spec it was given")
	}
	for _, bad := range []string{
		strings.Replace(string(b), `"version":1`, `"version":2`, 1),
		strings.Replace(string(b), `"cpus":"2-3"`, `"cpus":"2-x"`, 1),
		strings.Replace(string(b), `"VCPUs":2,`, `"VCPUs":99999,`, 1),
		strings.Replace(string(b), `"pid":42`, `"pid":0`, 1),
	} {
		if bad == string(b) {
			t.Fatalf("replacement did not apply to %s", b)
		}
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("read %s without error", bad)
		}
	}
}

// TestWaitingEntries: a waiting entry is listed (oldest first) while its
// qnuma runs, holds no room (Place plans around live VMs only), is gone
// after Remove, and one whose qnuma died is left out and reaped by Place.
func TestWaitingEntries(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	tk, err := l.Wait(ctx, "c", plan.Spec{VCPUs: 1, MemoryBytes: 1 << 30}, "short")
	if err != nil {
		t.Fatal(err)
	}
	dead := Waiting{Name: "d", Owner: deadProc(t), Since: time.Now().UTC().Add(-time.Hour), Spec: plan.Spec{VCPUs: 1}}
	if err := l.writeWaiting(dead); err != nil {
		t.Fatal(err)
	}
	ws, corrupt, err := l.ListWaiting(ctx)
	if err != nil || len(corrupt) != 0 {
		t.Fatal(err, corrupt)
	}
	if len(ws) != 1 || ws[0].Name != "c" || ws[0].Owner.PID != os.Getpid() || ws[0].Spec.MemoryBytes != 1<<30 || ws[0].Short != "short" {
		t.Fatalf("waiting %+v, want c of this process", ws)
	}
	if err := tk.SetShort("shorter"); err != nil {
		t.Fatal(err)
	}
	if ws, _, _ := l.ListWaiting(ctx); len(ws) != 1 || ws[0].Short != "shorter" {
		t.Errorf("after SetShort: %+v", ws)
	}
	// Others' plans see no waiting VM; the dead one's file goes.
	var seen []plan.Placed
	r, err := l.Place(ctx, "a", func(p []plan.Placed) (*plan.Plan, error) { seen = p; return onePlan(0, 1<<20, 1), nil })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if len(seen) != 0 {
		t.Errorf("the planner saw %+v, want no VM (waiting ones hold no room)", seen)
	}
	if _, err := os.Stat(l.waitingPath(dead.Owner.PID)); !os.IsNotExist(err) {
		t.Errorf("the dead qnuma's waiting entry is still there: %v", err)
	}
	if _, err := os.Stat(l.waitingPath(os.Getpid())); err != nil {
		t.Errorf("the live waiting entry was reaped: %v", err)
	}
	if err := tk.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := tk.Remove(); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if ws, _, _ := l.ListWaiting(ctx); len(ws) != 0 {
		t.Errorf("after Remove: %+v", ws)
	}
	// A file named like one that does not read is reported apart.
	if err := os.WriteFile(l.waitingPath(12345), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, corrupt, err := l.ListWaiting(ctx); err != nil || len(corrupt) != 1 {
		t.Errorf("corrupt %v, err %v: want one", corrupt, err)
	}
}

// TestWatchSeesChanges: a placed and a released VM each wake a watcher.
func TestWatchSeesChanges(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	if err := makeDir(l.dir); err != nil {
		t.Fatal(err)
	}
	c, err := l.Watch()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.C:
		t.Fatal("a change before any")
	default:
	}
	r, err := l.Place(ctx, "a", fixed(onePlan(0, 1<<20, 1)))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.C:
	case <-time.After(10 * time.Second):
		t.Fatal("placing a VM woke no watcher")
	}
	// Drain what the write's temp file and rename told.
	for drained := false; !drained; {
		select {
		case <-c.C:
		case <-time.After(100 * time.Millisecond):
			drained = true
		}
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.C:
	case <-time.After(10 * time.Second):
		t.Fatal("releasing a VM woke no watcher")
	}
}

// FuzzWaitingJSON: a waiting file from outside never panics, its cpu
// lists are bounded, and what parses writes back to the same entry.
func FuzzWaitingJSON(f *testing.F) {
	f.Add(`{"version":1,"name":"c","owner":{"pid":42,"start_time":9},"since":"2026-12-01T00:00:00Z","short":"x","spec":{"VCPUs":2,"MemoryBytes":1073741824},"vcpu_pins":{"1":{"cpus":"2-3"}},"emulator_pin":{"cpus":"0"}}`)
	f.Add(`{"version":1,"owner":{"pid":1},"spec":{"IOThreads":[{"ID":"io1"}]},"io_thread_pins":{"io1":{"cpus":"0-4294967297"}}}`)
	f.Add(`{"version":1,"owner":{"pid":1},"spec":{"HostNodes":[-1]}}`)
	f.Add(`{"version":1,"owner":{"pid":1},"spec":{"Cells":[{"ID":0,"VCPUs":[0],"MemoryBytes":1,"Object":{"ID":"m0"}}]}}`)
	f.Add(`{"version":2}`)
	f.Add(`{`)
	f.Fuzz(func(t *testing.T, s string) {
		var w Waiting
		if err := json.Unmarshal([]byte(s), &w); err != nil {
			return
		}
		b, err := json.Marshal(w)
		if err != nil {
			t.Fatalf("marshal %+v: %v", w, err)
		}
		var back Waiting
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("re-read %s: %v", b, err)
		}
		b2, err := json.Marshal(back)
		if err != nil || string(b2) != string(b) {
			t.Errorf("round trip of %s: %s, then %s (%v)", s, b, b2, err)
		}
	})
}
