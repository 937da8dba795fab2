package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/plan"
)

// onePlan is a plan for a VM on one host node with the given vCPU CPUs.
func onePlan(node int, mem uint64, cpus ...int) *plan.Plan {
	p := &plan.Plan{
		Spec:       plan.Spec{VCPUs: len(cpus), MemoryBytes: mem, Dedicated: true},
		HostNodes:  []int{node},
		GuestNodes: []plan.GuestNode{{ID: 0, HostNodes: []int{node}, MemoryBytes: mem}},
	}
	for i, c := range cpus {
		p.GuestNodes[0].VCPUs = append(p.GuestNodes[0].VCPUs, i)
		p.VCPUs = append(p.VCPUs, plan.VCPU{ID: i, HostCPUs: cpuset.New(c)})
	}
	return p
}

func fixed(p *plan.Plan) func([]plan.Placed) (*plan.Plan, error) {
	return func([]plan.Placed) (*plan.Plan, error) { return p, nil }
}

func open(t *testing.T) *Ledger {
	t.Helper()
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// deadProc names a process that cannot exist: pids stay below pid_max.
// (Unit tests start no processes.)
func deadProc(t *testing.T) Proc {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return Proc{PID: max, StartTime: 1}
}

// liveProc is a running process other than this one: the one that started
// the test binary.
func liveProc(t *testing.T) Proc {
	t.Helper()
	p, err := ProcOf(os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSummarize(t *testing.T) {
	two := &plan.Plan{
		Spec:      plan.Spec{VCPUs: 4, MemoryBytes: 3 << 30, HugepageBytes: 2 << 20},
		HostNodes: []int{1, 3},
		GuestNodes: []plan.GuestNode{
			{ID: 0, HostNodes: []int{1}, VCPUs: []int{0, 1}, MemoryBytes: 1 << 30},
			{ID: 1, HostNodes: []int{3}, VCPUs: []int{2, 3}, MemoryBytes: 2 << 30},
		},
		VCPUs: []plan.VCPU{
			{ID: 0, GuestNode: 0, HostCPUs: cpuset.New(4, 5)}, {ID: 1, GuestNode: 0, HostCPUs: cpuset.New(4, 5)},
			{ID: 2, GuestNode: 1, HostCPUs: cpuset.New(12)}, {ID: 3, GuestNode: 1, HostCPUs: cpuset.New(13)},
		},
	}
	inter := &plan.Plan{
		Spec:       plan.Spec{VCPUs: 2, MemoryBytes: 3, Dedicated: true},
		HostNodes:  []int{0, 1},
		GuestNodes: []plan.GuestNode{{ID: 0, HostNodes: []int{0, 1}, VCPUs: []int{0, 1}, MemoryBytes: 3}},
		VCPUs:      []plan.VCPU{{ID: 0, HostCPUs: cpuset.New(0)}, {ID: 1, HostCPUs: cpuset.New(8)}},
	}
	bindOnly := &plan.Plan{
		Spec:      plan.Spec{VCPUs: 1, MemoryBytes: 10, BindOnly: true},
		HostNodes: []int{0, 2},
		VCPUs:     []plan.VCPU{{ID: 0, HostCPUs: cpuset.New(1)}},
		BindOnly:  true,
	}
	// Hotplug room (issue 15): the growth is promised where it was planned,
	// so a VM placed later cannot take it.
	grow := &plan.Plan{
		Spec:      plan.Spec{VCPUs: 1, MemoryBytes: 1 << 30, Dedicated: true, MaxVCPUs: 2, MaxMemoryBytes: 3 << 30},
		HostNodes: []int{0, 1},
		GuestNodes: []plan.GuestNode{
			{ID: 0, HostNodes: []int{0}, VCPUs: []int{0}, MemoryBytes: 512 << 20},
			{ID: 1, HostNodes: []int{1}, VCPUs: []int{1}, MemoryBytes: 512 << 20},
		},
		VCPUs:         []plan.VCPU{{ID: 0, GuestNode: 0, HostCPUs: cpuset.New(2)}},
		HotplugVCPUs:  []plan.VCPU{{ID: 1, GuestNode: 1, HostCPUs: cpuset.New(9)}},
		HotplugMemory: []plan.HotplugMemory{{GuestNode: 0, HostNodes: []int{0}, Bytes: 1 << 30}, {GuestNode: 1, HostNodes: []int{1}, Bytes: 1 << 30}},
	}
	tests := []struct {
		name      string
		p         *plan.Plan
		mem       map[int]uint64
		vcpus     map[int]int
		dedicated string
		homes     [][]int
		huge      uint64
	}{
		{"two guest nodes, shared", two, map[int]uint64{1: 1 << 30, 3: 2 << 30}, map[int]int{1: 2, 3: 2}, "", [][]int{{1}, {1}, {3}, {3}}, 2 << 20},
		{"interleaved over two host nodes, dedicated", inter, map[int]uint64{0: 2, 1: 1}, map[int]int{0: 1, 1: 1}, "0,8", [][]int{{0, 1}, {0, 1}}, 0},
		{"hotplug room promised", grow, map[int]uint64{0: 1536 << 20, 1: 1536 << 20}, map[int]int{0: 1, 1: 1}, "2,9", [][]int{{0}}, 0},
		{"bind-only without guest nodes", bindOnly, map[int]uint64{0: 5, 2: 5}, map[int]int{0: 1}, "", [][]int{{0, 2}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := summarize(tt.p)
			if !reflect.DeepEqual(e.MemoryBytes, tt.mem) {
				t.Errorf("memory = %v, want %v", e.MemoryBytes, tt.mem)
			}
			if !reflect.DeepEqual(e.VCPUs, tt.vcpus) {
				t.Errorf("vcpus = %v, want %v", e.VCPUs, tt.vcpus)
			}
			if got := e.DedicatedCPUs.String(); got != tt.dedicated {
				t.Errorf("dedicated = %q, want %q", got, tt.dedicated)
			}
			if !reflect.DeepEqual(e.VCPUHomeNodes, tt.homes) {
				t.Errorf("vcpu homes = %v, want %v", e.VCPUHomeNodes, tt.homes)
			}
			if e.HugepageBytes != tt.huge {
				t.Errorf("hugepage bytes = %d, want %d", e.HugepageBytes, tt.huge)
			}
			if len(e.GuestNodes) != len(tt.p.GuestNodes) {
				t.Fatalf("guest nodes = %+v, want %d", e.GuestNodes, len(tt.p.GuestNodes))
			}
			for i, g := range tt.p.GuestNodes {
				got := e.GuestNodes[i]
				if got.ID != g.ID || !reflect.DeepEqual(got.HostNodes, g.HostNodes) || got.MemoryBytes != g.MemoryBytes || got.Backend == "" {
					t.Errorf("guest node %d = %+v, want the plan's %+v with its backend", i, got, g)
				}
			}
			if e.Dedicated != tt.p.Spec.Dedicated {
				t.Errorf("dedicated = %v, want %v", e.Dedicated, tt.p.Spec.Dedicated)
			}
		})
	}
}

func TestEntryJSON(t *testing.T) {
	e := summarize(onePlan(1, 1<<30, 8, 9, 24))
	e.Name, e.Owner, e.QEMU = "web", Proc{PID: 10, StartTime: 99}, Proc{PID: 11, StartTime: 100}
	e.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"dedicated_cpus":"8-9,24"`) {
		t.Errorf("dedicated cpus not written as a cpulist: %s", b)
	}
	var back Entry
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Placed(), e.Placed()) || back.Owner != e.Owner || back.QEMU != e.QEMU || !back.Created.Equal(e.Created) {
		t.Errorf("round trip: got %+v, want %+v", back, e)
	}
	// The layout, the movability and the move history survive too.
	e.GuestNodes = []GuestNode{{ID: 0, HostNodes: []int{1}, VCPUs: []int{0}, MemoryBytes: 1 << 30, Backend: "qnuma-ram0", Policy: "bind"}}
	e.NotMovable, e.Cgroup, e.Locked = "hugepages", "/sys/fs/cgroup/qnuma/web", true
	e.Moves = []Move{{At: e.Created, From: [][]int{{0}}, To: [][]int{{1}}, Bytes: 1 << 20, Took: time.Second, By: "qnuma move"}}
	if b, err = e.MarshalJSON(); err != nil {
		t.Fatal(err)
	}
	back = Entry{}
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.GuestNodes, e.GuestNodes) || back.NotMovable != e.NotMovable || back.Cgroup != e.Cgroup || !back.Locked ||
		len(back.Moves) != 1 || !reflect.DeepEqual(back.Moves[0].To, e.Moves[0].To) || back.Moves[0].Took != time.Second {
		t.Errorf("round trip of layout and moves: got %+v, want %+v", back, e)
	}
	bad := []struct{ name, json string }{
		{"not json", `{"version":1,`},
		{"other version", `{"version":2,"name":"a"}`},
		{"bad cpus", `{"version":1,"name":"a","dedicated_cpus":"3-1"}`},
		{"huge dedicated range", `{"version":1,"name":"a","dedicated_cpus":"0-2147483647"}`},
		{"huge vcpu range", `{"version":1,"name":"a","vcpu_cpus":"0-4294967297"}`},
		{"huge emulator range", `{"version":1,"name":"a","emulator_cpus":"0-2147483647"}`},
		// Sums that wrap would make a full node look free.
		{"wrapping memory", `{"version":1,"name":"a","memory_bytes":{"0":18446744073709551615,"1":1}}`},
		{"memory past bounds in all", `{"version":1,"name":"a","memory_bytes":{"0":1125899906842624,"1":1}}`},
		{"negative node", `{"version":1,"name":"a","memory_bytes":{"-1":1}}`},
		{"negative vcpus", `{"version":1,"name":"a","vcpus":{"0":-5}}`},
		{"too many vcpus", `{"version":1,"name":"a","vcpus":{"0":4096,"1":1}}`},
		{"huge host node", `{"version":1,"name":"a","host_nodes":[2147483647]}`},
		{"guest node on a huge host node", `{"version":1,"name":"a","guest_nodes":[{"id":0,"host_nodes":[2147483647]}]}`},
		{"negative guest node", `{"version":1,"name":"a","guest_nodes":[{"id":-1,"host_nodes":[0]}]}`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var e Entry
			if err := e.UnmarshalJSON([]byte(tt.json)); err == nil {
				t.Errorf("UnmarshalJSON(%s) = nil error, got %+v", tt.json, e)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	for _, n := range []string{"a", "vm-1", "db_2.prod", strings.Repeat("x", 64)} {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", ".hidden", "-x", "a/b", "a b", "../x", strings.Repeat("x", 65), "é"} {
		if err := ValidateName(n); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", n)
		}
	}
}

func TestPlaceNamesAndPlaced(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	var seen [][]plan.Placed
	planFn := func(p *plan.Plan) func([]plan.Placed) (*plan.Plan, error) {
		return func(placed []plan.Placed) (*plan.Plan, error) {
			seen = append(seen, placed)
			return p, nil
		}
	}
	a, err := l.Place(ctx, "", planFn(onePlan(0, 1<<30, 0, 1)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Place(ctx, "", planFn(onePlan(1, 2<<30, 8)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Entry.Name != "vm-1" || b.Entry.Name != "vm-2" {
		t.Errorf("auto names = %q, %q, want vm-1, vm-2", a.Entry.Name, b.Entry.Name)
	}
	if len(seen[0]) != 0 || len(seen[1]) != 1 || seen[1][0].Name != "vm-1" ||
		!seen[1][0].DedicatedCPUs.Equals(cpuset.New(0, 1)) || seen[1][0].MemoryBytes[0] != 1<<30 {
		t.Errorf("planner saw %+v", seen)
	}
	me, _ := self()
	if a.Entry.Owner != me {
		t.Errorf("owner = %+v, want this process %+v", a.Entry.Owner, me)
	}
	if _, err := l.Place(ctx, "vm-2", planFn(onePlan(1, 1, 9))); !errors.Is(err, ErrNameTaken) {
		t.Errorf("placing a second vm-2: err = %v, want ErrNameTaken", err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	c, err := l.Place(ctx, "", planFn(onePlan(0, 1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Entry.Name != "vm-1" {
		t.Errorf("after releasing vm-1 the next auto name = %q, want vm-1", c.Entry.Name)
	}
	st, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range st.Entries {
		names = append(names, e.Name)
	}
	if !reflect.DeepEqual(names, []string{"vm-1", "vm-2"}) || len(st.Corrupt) != 0 {
		t.Errorf("List = %v, corrupt %v", names, st.Corrupt)
	}
}

func TestPlaceErrors(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	if _, err := l.Place(ctx, "a", fixed(onePlan(0, 1, 0, 1))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		vm     string
		planFn func([]plan.Placed) (*plan.Plan, error)
		is     error
		text   string
	}{
		{"planner says no room", "b", func([]plan.Placed) (*plan.Plan, error) {
			return nil, fmt.Errorf("node 0: %w", plan.ErrDoesNotFit)
		}, plan.ErrDoesNotFit, "place vm b"},
		{"planner gives a held cpu", "b", fixed(onePlan(0, 1, 1, 2)), ErrCPUTaken, "dedicates cpus 1, where vm a's threads run"},
		{"nil plan", "b", fixed(nil), nil, "no plan"},
		{"bad name", "../b", fixed(onePlan(0, 1, 5)), nil, "vm name"},
		{"name in use", "a", fixed(onePlan(0, 1, 5)), ErrNameTaken, "owner pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Place(ctx, tt.vm, tt.planFn)
			if err == nil {
				t.Fatal("Place succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %q, want it to say %q", err, tt.text)
			}
		})
	}
	if _, err := os.Stat(l.path("b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Place left an entry: %v", err)
	}
}

func TestPlaceHonoursContext(t *testing.T) {
	l := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	held, err := l.lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held()
	cancel()
	if _, err := l.Place(ctx, "x", fixed(onePlan(0, 1, 0))); !errors.Is(err, context.Canceled) {
		t.Errorf("Place while the lock is held elsewhere with a cancelled ctx: err = %v", err)
	}
}

func TestReclaim(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	me, err := self()
	if err != nil {
		t.Fatal(err)
	}
	live, dead := liveProc(t), deadProc(t)
	entries := []struct {
		name  string
		owner Proc
		qemu  Proc
		keep  bool
	}{
		{"owner-dead-no-qemu", dead, Proc{}, false},
		{"owner-and-qemu-dead", dead, dead, false},
		{"pid-reused", Proc{PID: me.PID, StartTime: me.StartTime + 1}, Proc{}, false},
		{"owner-dead-qemu-runs", dead, live, true},
		{"owner-runs-starting", live, Proc{}, true},
		{"qemu-pid-reused", dead, Proc{PID: live.PID, StartTime: live.StartTime + 7}, false},
	}
	for i, e := range entries {
		en := summarize(onePlan(0, 1, i))
		en.Name, en.Owner, en.QEMU = e.name, e.owner, e.qemu
		if err := l.write(en); err != nil {
			t.Fatal(err)
		}
	}
	var gotPlaced []string
	r, err := l.Place(ctx, "new", func(placed []plan.Placed) (*plan.Plan, error) {
		for _, p := range placed {
			gotPlaced = append(gotPlaced, p.Name)
		}
		return onePlan(0, 1, 0), nil // cpu 0 was owner-dead-no-qemu's
	})
	if err != nil {
		t.Fatal(err)
	}
	var wantKept, wantGone []string
	for _, e := range entries {
		if e.keep {
			wantKept = append(wantKept, e.name)
		} else {
			wantGone = append(wantGone, e.name)
		}
	}
	if !reflect.DeepEqual(gotPlaced, wantKept) {
		t.Errorf("planner saw %v, want %v", gotPlaced, wantKept)
	}
	if !sameSet(r.Reclaimed, wantGone) {
		t.Errorf("reclaimed %v, want %v", r.Reclaimed, wantGone)
	}
	for _, n := range wantGone {
		if _, err := os.Stat(l.path(n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("entry %s still there: %v", n, err)
		}
	}
}

func TestSetQEMUKeepsEntryAfterOwner(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	r, err := l.Place(ctx, "vm", fixed(onePlan(0, 1, 3)))
	if err != nil {
		t.Fatal(err)
	}
	q := liveProc(t)
	if err := r.SetQEMU(q.PID); err != nil {
		t.Fatal(err)
	}
	// Make the owner a dead process, as if qnuma had been killed.
	e, err := l.read("vm")
	if err != nil {
		t.Fatal(err)
	}
	if e.QEMU != q {
		t.Fatalf("qemu = %+v, want %+v", e.QEMU, q)
	}
	e.Owner = deadProc(t)
	if err := l.write(e); err != nil {
		t.Fatal(err)
	}
	st, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != 1 || st.Entries[0].Name != "vm" || len(st.Dead) != 0 {
		t.Errorf("List = %+v, want vm kept while its qemu runs", st)
	}
	// The reservation no longer owns the entry: release leaves it alone.
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.path("vm")); err != nil {
		t.Errorf("release by a former owner removed the entry: %v", err)
	}
	if err := r.SetQEMU(q.PID); err == nil {
		t.Error("SetQEMU on an entry owned by another process succeeded")
	}
	if err := r.SetQEMU(deadProc(t).PID); err == nil {
		t.Error("SetQEMU with a pid that does not exist succeeded")
	}
}

func TestCorruptEntries(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	if _, err := l.Place(ctx, "good", fixed(onePlan(0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"torn.json":  `{"version":1,"name":"torn"`,
		"other.json": `{"version":1,"name":"someone-else","owner":{"pid":1,"start_time":1},"dedicated_cpus":""}`,
		"nopid.json": `{"version":1,"name":"nopid","dedicated_cpus":""}`,
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(l.Dir(), n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary file left by a writer that died before its rename.
	stale := filepath.Join(l.Dir(), ".x.json"+tmpMarker+"123")
	if err := os.WriteFile(stale, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != 1 || len(st.Corrupt) != len(files) {
		t.Fatalf("List: %d entries, corrupt %v; want 1 entry and %d corrupt", len(st.Entries), st.Corrupt, len(files))
	}
	for n := range files {
		if _, err := os.Stat(filepath.Join(l.Dir(), n)); err != nil {
			t.Errorf("List moved or removed %s: %v", n, err)
		}
	}
	if _, err := os.Stat(stale); err != nil {
		t.Errorf("List, which changes nothing, removed the stale temp file: %v", err)
	}
	r, err := l.Place(ctx, "", fixed(onePlan(0, 1, 1)))
	if err != nil {
		t.Fatalf("Place with corrupt files: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file kept by Place: %v", err)
	}
	if len(r.Quarantined) != len(files) {
		t.Errorf("quarantined %v, want %d files", r.Quarantined, len(files))
	}
	moved, err := os.ReadDir(filepath.Join(l.Dir(), "corrupt"))
	if err != nil || len(moved) != len(files) {
		t.Errorf("corrupt/ holds %v (%v), want %d files", moved, err, len(files))
	}
	st, err = l.List(ctx)
	if err != nil || len(st.Corrupt) != 0 || len(st.Entries) != 2 {
		t.Errorf("List after quarantine = %+v, %v", st, err)
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
