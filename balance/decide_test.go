package balance

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
)

const gib = 1 << 30

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// node is a node of totalGiB with usedPct of its memory and cpuPct of its
// 8 CPUs in use.
func node(id int, totalGiB uint64, usedPct, cpuPct float64) Node {
	total := totalGiB * gib
	return Node{ID: id, CPUs: 8, TotalBytes: total, FreeBytes: total - uint64(float64(total)*usedPct/100), CPUPercent: cpuPct}
}

// vm is a running VM with the guest layout given (guest node → host
// nodes), one vCPU per guest node, and guest RAM resident per host node.
func vm(name string, layout map[int][]int, ram map[int]uint64) VM {
	e := ledger.Entry{Name: name, QEMU: ledger.Proc{PID: 1000 + len(name), StartTime: 7}, MemoryBytes: map[int]uint64{}, VCPUs: map[int]int{}}
	for _, g := range slices.Sorted(maps.Keys(layout)) {
		e.GuestNodes = append(e.GuestNodes, ledger.GuestNode{ID: g, HostNodes: layout[g], VCPUs: []int{g}})
		e.VCPUHomeNodes = append(e.VCPUHomeNodes, layout[g])
	}
	e.HostNodes = homeNodes(layout)
	v := VM{Entry: e, RAM: ram}
	v.LocalPercent = locality(v)
	return v
}

func locality(v VM) float64 {
	var local, all uint64
	for n, b := range v.RAM {
		all += b
		if slices.Contains(v.Entry.HostNodes, n) {
			local += b
		}
	}
	if all == 0 {
		return 100
	}
	return 100 * float64(local) / float64(all)
}

func fitsAll(ledger.Entry, map[int][]int) error { return nil }

func cfgWith(fits func(ledger.Entry, map[int][]int) error) Config {
	c := DefaultConfig()
	c.Fits = fits
	return c
}

func verdict(d Decision, name string) string {
	for _, v := range d.VMs {
		if v.Name == name {
			return v.Verdict
		}
	}
	return "(no such vm)"
}

func TestDecideNodeShort(t *testing.T) {
	// Two VMs on node 0, which is short of memory; node 1 has room.
	s := Sample{At: t0, Nodes: []Node{node(0, 16, 95, 10), node(1, 16, 20, 10)}, VMs: []VM{
		vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 2 * gib}),
		vm("b", map[int][]int{0: {0}}, map[int]uint64{0: 2 * gib}),
	}}
	d := Decide(s, History{}, cfgWith(fitsAll))
	if d.Move == nil {
		t.Fatalf("no move: %s", d.Why)
	}
	m := d.Move
	if m.VM != "a" || FormatLayout(m.From) != "0:0" || FormatLayout(m.To) != "0:1" || m.Kind != KindNodeUse || m.Bytes != 2*gib || m.Pages != 2*gib/4096 {
		t.Errorf("move %+v, want a from 0:0 to 0:1 for node use, 2 GiB", *m)
	}
	if m.PagesPerSecond != DefaultPagesPerSecond || m.Request().By != By || m.Request().QEMU != s.VMs[0].Entry.QEMU {
		t.Errorf("request %+v", m.Request())
	}
	if v := verdict(d, "b"); !strings.Contains(v, "one move per round") {
		t.Errorf("b: %q, want it to wait for the next round", v)
	}
	if !d.Nodes[0].Over || d.Nodes[1].Over {
		t.Errorf("nodes %+v: want node 0 over, node 1 not", d.Nodes)
	}

	// Negative control: with room on node 0 nothing moves.
	s.Nodes[0] = node(0, 16, 50, 10)
	if d := Decide(s, History{}, cfgWith(fitsAll)); d.Move != nil || !strings.HasPrefix(d.Why, "nothing to do") {
		t.Errorf("balanced host: move %+v, why %q", d.Move, d.Why)
	}
}

func TestDecideCPUOverloaded(t *testing.T) {
	// Node 0's CPUs are 95% busy, 4 of its 8 CPUs by vm a's vCPU.
	a := vm("a", map[int][]int{0: {0}}, map[int]uint64{0: gib})
	a.VCPUUse = 4
	s := Sample{At: t0, CPUKnown: true, Nodes: []Node{node(0, 16, 30, 95), node(1, 16, 30, 10)}, VMs: []VM{a}}
	d := Decide(s, History{}, cfgWith(fitsAll))
	if d.Move == nil || FormatLayout(d.Move.To) != "0:1" || !strings.Contains(d.Move.Why, "cpu 95.0%") {
		t.Fatalf("move %+v (%s), want a to node 1 for its CPU use", d.Move, d.Why)
	}
	// A VM whose vCPUs use nothing does not relieve the node: no gain.
	s.VMs[0].VCPUUse = 0
	if d := Decide(s, History{}, cfgWith(fitsAll)); d.Move != nil {
		t.Errorf("idle vm moved: %+v", *d.Move)
	}
}

func TestDecideLeavesAlone(t *testing.T) {
	short := []Node{node(0, 16, 95, 0), node(1, 16, 20, 0)}
	for _, tt := range []struct {
		name   string
		change func(*VM)
		want   string
	}{
		{"locked", func(v *VM) { v.Entry.Locked = true }, "placed or pinned by hand, so locked"},
		{"not movable", func(v *VM) { v.Entry.NotMovable = "no cpuset cgroup" }, "cannot be moved live: no cpuset cgroup"},
		{"not sampled", func(v *VM) { v.NotSampled = "its qemu (pid 9) has exited" }, "not sampled: its qemu (pid 9) has exited"},
		{"moved lately", func(v *VM) { v.Entry.Moves = []ledger.Move{{At: t0.Add(-100 * time.Second)}} }, "moved 1m40s ago: not again before 5m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 4 * gib})
			s := Sample{At: t0, Nodes: short, VMs: []VM{v}}
			// Negative control: as it is, it moves.
			if d := Decide(s, History{}, cfgWith(fitsAll)); d.Move == nil {
				t.Fatalf("control: no move: %s", d.Why)
			}
			tt.change(&s.VMs[0])
			d := Decide(s, History{}, cfgWith(func(ledger.Entry, map[int][]int) error {
				t.Error("the planner was asked about a VM left alone")
				return nil
			}))
			if d.Move != nil {
				t.Fatalf("moved: %+v", *d.Move)
			}
			if !strings.Contains(verdict(d, "a"), tt.want) || !strings.Contains(d.Why, tt.want) || !strings.Contains(d.Why, "node 0 is over 85% use") {
				t.Errorf("verdict %q, why %q: want %q", verdict(d, "a"), d.Why, tt.want)
			}
		})
	}
}

func TestDecideMinInterval(t *testing.T) {
	s := Sample{At: t0, Nodes: []Node{node(0, 16, 95, 0), node(1, 16, 20, 0)}, VMs: []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 4 * gib})}}
	var h History
	h.Record("a", s.VMs[0].Entry.QEMU, t0.Add(-299*time.Second))
	if d := Decide(s, h, cfgWith(fitsAll)); d.Move != nil {
		t.Errorf("moved 299 s after the last try: %+v", *d.Move)
	}
	h.Record("a", s.VMs[0].Entry.QEMU, t0.Add(-300*time.Second))
	if d := Decide(s, h, cfgWith(fitsAll)); d.Move == nil {
		t.Errorf("not moved 300 s after the last try: %s", d.Why)
	}
	// A VM of the same name with another qemu is another VM.
	h.Record("a", ledger.Proc{PID: 1, StartTime: 1}, t0)
	if d := Decide(s, h, cfgWith(fitsAll)); d.Move == nil {
		t.Errorf("the history of another qemu held it: %s", d.Why)
	}
}

func TestDecideMinGain(t *testing.T) {
	// Node 0 just over the target, node 1 just under: a 1 GiB VM would
	// only swap which is fuller.
	s := Sample{At: t0, Nodes: []Node{node(0, 16, 87, 0), node(1, 16, 80, 0)}, VMs: []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: gib})}}
	d := Decide(s, History{}, cfgWith(fitsAll))
	if d.Move != nil {
		t.Fatalf("moved for a small gain: %+v", *d.Move)
	}
	if v := verdict(d, "a"); !strings.Contains(v, "would be at 86.2% use") {
		t.Errorf("verdict %q", v)
	}
	s.Nodes[1] = node(1, 16, 78, 0)
	d = Decide(s, History{}, cfgWith(fitsAll))
	if d.Move != nil || !strings.Contains(verdict(d, "a"), "under 10.0 (--min-gain)") {
		t.Errorf("move %v, verdict %q: want none for a gain under --min-gain", d.Move, verdict(d, "a"))
	}
	// With a smaller --min-gain it moves.
	c := cfgWith(fitsAll)
	c.MinGain = 1
	if d := Decide(s, History{}, c); d.Move == nil {
		t.Errorf("--min-gain 1: no move: %s", d.Why)
	}
}

func TestDecideLocality(t *testing.T) {
	nodes := []Node{node(0, 16, 50, 0), node(1, 16, 50, 0), node(2, 16, 50, 0)}
	for _, tt := range []struct {
		name  string
		ram   map[int]uint64
		to    string
		bytes uint64
		why   string
	}{
		{"home", map[int]uint64{0: 3 * gib, 1: gib}, "0:0", gib, "its memory moves home"},
		{"follow the memory", map[int]uint64{0: gib, 1: 2 * gib, 2: gib}, "0:1", 2 * gib, "it moves to node 1, which holds most of it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := Sample{At: t0, Nodes: nodes, VMs: []VM{vm("a", map[int][]int{0: {0}}, tt.ram)}}
			d := Decide(s, History{}, cfgWith(fitsAll))
			if d.Move == nil {
				t.Fatalf("no move: %s", d.Why)
			}
			if FormatLayout(d.Move.To) != tt.to || d.Move.Bytes != tt.bytes || d.Move.Kind != KindLocality || !strings.Contains(d.Move.Why, tt.why) {
				t.Errorf("move %+v, want to %s, %d bytes, %q", *d.Move, tt.to, tt.bytes, tt.why)
			}
		})
	}
	// At 90% local it is left alone (numad's target).
	s := Sample{At: t0, Nodes: nodes, VMs: []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 9 * gib, 1: gib})}}
	if d := Decide(s, History{}, cfgWith(fitsAll)); d.Move != nil {
		t.Errorf("moved at 90%% local: %+v", *d.Move)
	}
	// Home full, the node holding the rest full too: nothing restores it.
	s = Sample{At: t0, Nodes: []Node{node(0, 16, 84, 0), node(1, 16, 84, 0)}, VMs: []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: gib, 1: gib})}}
	d := Decide(s, History{}, cfgWith(fitsAll))
	if d.Move != nil || !strings.Contains(verdict(d, "a"), "no move restores it") {
		t.Errorf("move %v, verdict %q", d.Move, verdict(d, "a"))
	}
}

func TestDecideKeepsGuestLayout(t *testing.T) {
	// Guest node 0 on host node 0 (over), guest node 1 on host node 1:
	// only guest node 0 moves, to a node the VM is not on.
	nodes := []Node{node(0, 16, 95, 0), node(1, 16, 30, 0), node(2, 16, 40, 0), node(3, 16, 20, 0)}
	s := Sample{At: t0, Nodes: nodes, VMs: []VM{vm("a", map[int][]int{0: {0}, 1: {1}}, map[int]uint64{0: 2 * gib, 1: 2 * gib})}}
	d := Decide(s, History{}, cfgWith(fitsAll))
	if d.Move == nil || FormatLayout(d.Move.To) != "0:3 1:1" || d.Move.Bytes != 2*gib {
		t.Fatalf("move %+v (%s), want guest node 0 to host node 3 (the emptiest), guest node 1 left on 1", d.Move, d.Why)
	}
}

func TestDecideAsksThePlanner(t *testing.T) {
	s := Sample{At: t0, Nodes: []Node{node(0, 16, 95, 0), node(1, 16, 20, 0), node(2, 16, 30, 0)}, VMs: []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 2 * gib})}}
	var asked []string
	refuse1 := func(e ledger.Entry, to map[int][]int) error {
		asked = append(asked, e.Name+" "+FormatLayout(to))
		if to[0][0] == 1 {
			return fmt.Errorf("node 1: %w: its hugepages are taken", plan.ErrDoesNotFit)
		}
		return nil
	}
	d := Decide(s, History{}, cfgWith(refuse1))
	if d.Move == nil || FormatLayout(d.Move.To) != "0:2" {
		t.Fatalf("move %+v (%s), want node 2 once node 1 is refused", d.Move, d.Why)
	}
	if !slices.Equal(asked, []string{"a 0:1", "a 0:2"}) {
		t.Errorf("asked %q, want the best first", asked)
	}
	if v := verdict(d, "a"); !strings.Contains(v, "the planner refuses 0:1") || !strings.Contains(v, "hugepages are taken") {
		t.Errorf("verdict %q", v)
	}
	if d := Decide(s, History{}, DefaultConfig()); d.Move != nil || !strings.Contains(d.Why, "no planner given") {
		t.Errorf("without Fits: move %v, why %q", d.Move, d.Why)
	}
	d = Decide(s, History{}, cfgWith(func(ledger.Entry, map[int][]int) error { return errors.New("no room") }))
	if d.Move != nil || !strings.Contains(d.Why, "the planner refuses 0:2: no room") {
		t.Errorf("move %v, why %q", d.Move, d.Why)
	}
}

func TestDecideOneMovePerRound(t *testing.T) {
	// Two nodes over, four VMs that could move: one move, the largest gain.
	nodes := []Node{node(0, 16, 95, 0), node(1, 16, 92, 0), node(2, 16, 10, 0), node(3, 16, 10, 0)}
	s := Sample{At: t0, Nodes: nodes, VMs: []VM{
		vm("a", map[int][]int{0: {0}}, map[int]uint64{0: gib}),
		vm("b", map[int][]int{0: {0}}, map[int]uint64{0: 3 * gib}),
		vm("c", map[int][]int{0: {1}}, map[int]uint64{1: 2 * gib}),
		vm("d", map[int][]int{0: {1}}, map[int]uint64{1: 2 * gib}),
	}}
	calls := 0
	d := Decide(s, History{}, cfgWith(func(ledger.Entry, map[int][]int) error { calls++; return nil }))
	if d.Move == nil || d.Move.VM != "b" || calls != 1 {
		t.Fatalf("move %+v after %d planner calls, want b (the largest gain) after one", d.Move, calls)
	}
	for _, name := range []string{"a", "c", "d"} {
		if v := verdict(d, name); !strings.Contains(v, "one move per round: b moves now") {
			t.Errorf("%s: %q", name, v)
		}
	}
}

// world is a host whose nodes hold an outside load that changes round by
// round, and VMs whose memory moves when Decide moves them.
type world struct {
	nodes   int
	outside func(round, node int) float64 // GiB used by others
	// drift, if set, changes where a VM's memory is before each round.
	drift func(round int, v *VM)
	vms   []VM
}

func (w *world) sample(round int, at time.Time) Sample {
	s := Sample{At: at}
	for i := range w.vms {
		if w.drift != nil {
			w.drift(round, &w.vms[i])
		}
	}
	for n := 0; n < w.nodes; n++ {
		used := w.outside(round, n) * gib
		for _, v := range w.vms {
			used += float64(v.RAM[n])
		}
		s.Nodes = append(s.Nodes, node(n, 16, 100*used/(16*gib), 0))
	}
	s.VMs = slices.Clone(w.vms)
	return s
}

// apply does a move as a Mover would: every page to the new nodes, the
// ledger's layout and moves updated.
func (w *world) apply(m *Move, at time.Time) {
	for i := range w.vms {
		v := &w.vms[i]
		if v.Entry.Name != m.VM {
			continue
		}
		to := homeNodes(m.To)
		ram := map[int]uint64{to[0]: v.RAMBytes()}
		v.RAM = ram
		for g := range v.Entry.GuestNodes {
			v.Entry.GuestNodes[g].HostNodes = m.To[v.Entry.GuestNodes[g].ID]
		}
		v.Entry.HostNodes = to
		v.Entry.Moves = append(slices.Clone(v.Entry.Moves), ledger.Move{At: at, By: By})
		v.LocalPercent = locality(*v)
	}
}

// run runs rounds 15 s apart and returns the moves as "round vm layout";
// with observe, each round's sample is kept for the next, as qnuma
// balance does.
func (w *world) run(t *testing.T, rounds int, cfg Config, observe bool) []string {
	t.Helper()
	var h History
	var moves []string
	for r := 0; r < rounds; r++ {
		at := t0.Add(time.Duration(r) * DefaultInterval)
		s := w.sample(r, at)
		d := Decide(s, h, cfg)
		if observe {
			h.Observe(s)
		}
		if d.Move != nil {
			h.Record(d.Move.VM, d.Move.QEMU, at)
			w.apply(d.Move, at)
			moves = append(moves, fmt.Sprintf("%d %s %s", r, d.Move.VM, FormatLayout(d.Move.To)))
		}
	}
	return moves
}

// TestDecideFlapping feeds inputs that swing round by round; the moves
// they cause must not go back and forth.
func TestDecideFlapping(t *testing.T) {
	twoVMs := func() []VM {
		return []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 2 * gib}), vm("b", map[int][]int{0: {1}}, map[int]uint64{1: 2 * gib})}
	}
	swing := func(round, node int) float64 { // 12 GiB on one node, 1 on the other, swapping each round
		if (round+node)%2 == 0 {
			return 12
		}
		return 1
	}
	for _, tt := range []struct {
		name    string
		outside func(round, node int) float64
		vms     []VM
		drift   func(round int, v *VM)
		max     int
	}{
		// Another process fills node 0 and node 1 in turn: a (and b) may
		// leave a full node once, never come back within 300 s.
		{"load swings between nodes", swing, twoVMs(), nil, 1},
		// Node 0 hovers around the 85% target, node 1 a few points under.
		{"noise at the target", func(round, node int) float64 {
			return []float64{11.6, 10.8}[node] + []float64{0.3, -0.3}[round%2]
		}, twoVMs(), nil, 0},
		// A VM's memory flaps between 85% and 95% local.
		{"locality flaps", func(round, node int) float64 { return 4 }, []VM{vm("a", map[int][]int{0: {0}}, nil)}, func(round int, v *VM) {
			h := v.Entry.HostNodes[0]
			v.RAM = map[int]uint64{h: 19 * gib / 10, 1 - h: gib / 10}
			if round%2 == 0 {
				v.RAM = map[int]uint64{h: 17 * gib / 10, 1 - h: 3 * gib / 10}
			}
			v.LocalPercent = locality(*v)
		}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{nodes: 2, outside: tt.outside, vms: tt.vms}
			w.drift = tt.drift
			cfg := cfgWith(fitsAll)
			moves := w.run(t, 20, cfg, true) // 20 rounds of 15 s: 300 s
			t.Logf("moves: %q", moves)
			if len(moves) > tt.max {
				t.Errorf("%d moves in 300 s, want at most %d: %q", len(moves), tt.max, moves)
			}
			seen := map[string]bool{}
			for _, m := range moves {
				name := strings.Fields(m)[1]
				if seen[name] {
					t.Errorf("vm %s moved twice in 300 s: %q", name, moves)
				}
				seen[name] = true
			}
		})
	}
	// Negative controls: each hysteresis alone holds the moves down, and
	// without both the swinging load moves VMs back and forth.
	for _, c := range []struct {
		name        string
		minInterval time.Duration
		observe     bool
		min, max    int
	}{
		{"min interval alone", DefaultMinInterval, false, 2, 2},
		{"two samples alone", 0, true, 1, 1},
		{"neither", 0, false, 10, 20},
	} {
		w := &world{nodes: 2, outside: swing, vms: twoVMs()}
		cfg := cfgWith(fitsAll)
		cfg.MinInterval = c.minInterval
		if moves := w.run(t, 20, cfg, c.observe); len(moves) < c.min || len(moves) > c.max {
			t.Errorf("control %s: %d moves, want %d to %d: %q", c.name, len(moves), c.min, c.max, moves)
		}
	}
}

func TestDecideWaitsForASecondSample(t *testing.T) {
	s := Sample{At: t0, Nodes: []Node{node(0, 16, 95, 0), node(1, 16, 20, 0)}, VMs: []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 2 * gib})}}
	var h History
	h.Observe(Sample{Nodes: []Node{node(0, 16, 50, 0), node(1, 16, 20, 0)}, VMs: s.VMs})
	d := Decide(s, h, cfgWith(fitsAll))
	if d.Move != nil || !strings.Contains(d.Why, "node 0 is at 95.0% use, but not at the previous sample") {
		t.Errorf("move %v, why %q: want a round's wait", d.Move, d.Why)
	}
	if !d.Nodes[0].Over || d.Nodes[0].Sustained {
		t.Errorf("node 0 %+v: want over now, not sustained", d.Nodes[0])
	}
	h.Observe(s)
	if d := Decide(s, h, cfgWith(fitsAll)); d.Move == nil {
		t.Errorf("over in two samples: no move: %s", d.Why)
	}
	// A target that was over at the previous sample is no room.
	h.Observe(Sample{Nodes: []Node{node(0, 16, 95, 0), node(1, 16, 90, 0)}})
	if d := Decide(s, h, cfgWith(fitsAll)); d.Move != nil {
		t.Errorf("moved to a node over the target at the previous sample: %+v", *d.Move)
	}
	// CPU use the previous sample did not measure (a Sampler's first) is
	// no evidence against: busy CPUs in the first measured sample count,
	// so qnuma balance --once acts on them.
	a := vm("a", map[int][]int{0: {0}}, map[int]uint64{0: gib})
	a.VCPUUse = 4
	busy := Sample{At: t0, CPUKnown: true, Nodes: []Node{node(0, 16, 30, 95), node(1, 16, 30, 10)}, VMs: []VM{a}}
	var hc History
	hc.Observe(Sample{Nodes: []Node{node(0, 16, 30, 0), node(1, 16, 30, 0)}, VMs: busy.VMs})
	if d := Decide(busy, hc, cfgWith(fitsAll)); d.Move == nil {
		t.Errorf("busy after an unmeasured sample: no move: %s", d.Why)
	}
	hc.Observe(Sample{CPUKnown: true, Nodes: []Node{node(0, 16, 30, 20), node(1, 16, 30, 10)}, VMs: busy.VMs})
	if d := Decide(busy, hc, cfgWith(fitsAll)); d.Move != nil {
		t.Errorf("busy now, measured idle before: moved %+v", *d.Move)
	}
	// Nor does memory over now count for CPU over before.
	hc.Observe(Sample{CPUKnown: true, Nodes: []Node{node(0, 16, 95, 10), node(1, 16, 30, 10)}, VMs: busy.VMs})
	if d := Decide(busy, hc, cfgWith(fitsAll)); d.Move != nil {
		t.Errorf("cpu over now, memory over before: moved %+v", *d.Move)
	}

	// Locality too.
	low := Sample{At: t0, Nodes: []Node{node(0, 16, 50, 0), node(1, 16, 50, 0)}, VMs: []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: gib, 1: gib})}}
	var hl History
	hl.Observe(Sample{Nodes: low.Nodes, VMs: []VM{vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 2 * gib})}})
	if d := Decide(low, hl, cfgWith(fitsAll)); d.Move != nil || !strings.Contains(verdict(d, "a"), "waiting a round") {
		t.Errorf("move %v, verdict %q: want a round's wait", d.Move, verdict(d, "a"))
	}
	hl.Observe(low)
	if d := Decide(low, hl, cfgWith(fitsAll)); d.Move == nil {
		t.Errorf("low locality in two samples: no move: %s", d.Why)
	}
}

// withGuestNodes gives v each guest node's RAM per host node, as the
// sampler finds it in the guest node's memfd.
func withGuestNodes(v VM, ram map[int]map[int]uint64) VM {
	v.GuestNodes = nil
	for _, g := range v.Entry.GuestNodes {
		r := GuestNodeRAM{ID: g.ID, HomeNodes: g.HostNodes, RAM: ram[g.ID], LocalPercent: 100}
		if all := r.Bytes(); all > 0 {
			r.LocalPercent = 100 * float64(all-r.Away()) / float64(all)
		}
		v.GuestNodes = append(v.GuestNodes, r)
	}
	return v
}

// TestDecideGuestNodeLocality: a VM of two guest nodes on host nodes 0
// and 1 whose guest node 0 has most of its pages on host node 1. The VM
// as a whole is 100% local (host node 1 is one of its nodes), but guest
// node 0 is 25% local: it is moved in place, its stray pages home.
func TestDecideGuestNodeLocality(t *testing.T) {
	nodes := []Node{node(0, 16, 50, 0), node(1, 16, 50, 0)}
	layout := map[int][]int{0: {0}, 1: {1}}
	stray := map[int]map[int]uint64{0: {0: gib / 2, 1: 3 * gib / 2}, 1: {1: 2 * gib}}
	v := withGuestNodes(vm("a", layout, map[int]uint64{0: gib / 2, 1: 7 * gib / 2}), stray)
	if v.LocalPercent != 100 {
		t.Fatalf("the VM as a whole is %.1f%% local, want 100", v.LocalPercent)
	}
	s := Sample{At: t0, Nodes: nodes, VMs: []VM{v}}
	d := Decide(s, History{}, cfgWith(fitsAll))
	if d.Move == nil {
		t.Fatalf("no move: %s", d.Why)
	}
	if m := d.Move; FormatLayout(m.To) != "0:0 1:1" || m.Kind != KindLocality || m.Bytes != 3*gib/2 || !strings.Contains(m.Why, "guest node 0 has 25.0% of its memory on host node 0, under 90%") {
		t.Errorf("move %+v, want guest node 0's 1.5 GiB home in place (0:0 1:1)", *m)
	}
	gl := d.VMs[0].GuestNodeLocality
	if len(gl) != 2 || gl[0].ID != 0 || gl[0].LocalPercent != 25 || gl[1].LocalPercent != 100 || d.VMs[0].LocalPercent != 100 {
		t.Errorf("guest node locality %+v (vm %.1f%%), want 25%% and 100%%", gl, d.VMs[0].LocalPercent)
	}
	b, err := json.Marshal(d.VMs[0])
	if err != nil || !strings.Contains(string(b), `"guest_node_locality":[{"guest_node":0,"home_nodes":[0],"ram_bytes":{"0":536870912,"1":1610612736},"local_percent":25}`) {
		t.Errorf("json %s (%v): want each guest node's locality", b, err)
	}
	// Home full: its pages cannot go back, so no move.
	full := Sample{At: t0, Nodes: []Node{node(0, 16, 84, 0), node(1, 16, 50, 0)}, VMs: []VM{v}}
	if d := Decide(full, History{}, cfgWith(fitsAll)); d.Move != nil || !strings.Contains(verdict(d, "a"), "home node 0 would be at") {
		t.Errorf("home full: move %v, verdict %q", d.Move, verdict(d, "a"))
	}
	// It waits for a second sample as a whole VM does.
	var h History
	h.Observe(Sample{Nodes: nodes, VMs: []VM{withGuestNodes(v, map[int]map[int]uint64{0: {0: 2 * gib}, 1: {1: 2 * gib}})}})
	if d := Decide(s, h, cfgWith(fitsAll)); d.Move != nil || !strings.Contains(verdict(d, "a"), "guest node 0 25.0% on host node 0, under 90%, but not at the previous sample") {
		t.Errorf("first low sample: move %v, verdict %q", d.Move, verdict(d, "a"))
	}
	h.Observe(s)
	if d := Decide(s, h, cfgWith(fitsAll)); d.Move == nil {
		t.Errorf("low in two samples: no move: %s", d.Why)
	}

	// Negative control: the same VM with each guest node's pages at home
	// (90% of guest node 0's, numad's target) moves nothing.
	home := withGuestNodes(vm("a", layout, map[int]uint64{0: 18 * gib / 10, 1: 22 * gib / 10}), map[int]map[int]uint64{0: {0: 18 * gib / 10, 1: 2 * gib / 10}, 1: {1: 2 * gib}})
	d = Decide(Sample{At: t0, Nodes: nodes, VMs: []VM{home}}, History{}, cfgWith(fitsAll))
	if d.Move != nil || !strings.HasPrefix(d.Why, "nothing to do") {
		t.Errorf("every guest node at least 90%% local: move %v, why %q", d.Move, d.Why)
	}
	// Nor does the VM-wide rule see the stray guest node without them.
	v.GuestNodes = nil
	if d := Decide(Sample{At: t0, Nodes: nodes, VMs: []VM{v}}, History{}, cfgWith(fitsAll)); d.Move != nil {
		t.Errorf("without guest nodes told apart: moved %+v", *d.Move)
	}
}
