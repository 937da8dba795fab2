package balance

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
)

// roomHost is a toy planner: each node's free bytes, and a VM fits a
// node when its RAM does; the waiting VM needs need bytes on one node.
type roomHost struct {
	free map[int]uint64
	vms  map[string]VM
	// asked counts the hypothetical questions.
	asked int
}

func (h *roomHost) fits(e ledger.Entry, to map[int][]int) error {
	v := h.vms[e.Name]
	for _, n := range homeNodes(to) {
		if !slices.Contains(e.HostNodes, n) && h.free[n] < v.RAMBytes() {
			return fmt.Errorf("%w: node %d has %d bytes free", plan.ErrDoesNotFit, n, h.free[n])
		}
	}
	return nil
}

func (h *roomHost) waitingFits(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error {
	h.asked++
	free := map[int]uint64{}
	for n, b := range h.free {
		free[n] = b
	}
	if moved != nil {
		v := h.vms[moved.Name]
		for n, b := range v.RAM {
			free[n] += b
		}
		dest := homeNodes(to)
		for _, n := range dest {
			free[n] -= v.RAMBytes() / uint64(len(dest))
		}
	}
	for n := range free {
		if free[n] >= w.Spec.MemoryBytes {
			return nil
		}
	}
	return fmt.Errorf("%w: no node has %d bytes free\n  node  free\n  ...", plan.ErrDoesNotFit, w.Spec.MemoryBytes)
}

func (h *roomHost) cfg() Config {
	c := DefaultConfig()
	c.Fits, c.WaitingFits = h.fits, h.waitingFits
	return c
}

func waitingVM(name string, need uint64, since time.Duration) ledger.Waiting {
	return ledger.Waiting{Name: name, Owner: ledger.Proc{PID: 900, StartTime: 1}, Since: t0.Add(-since), Spec: plan.Spec{VCPUs: 1, MemoryBytes: need}}
}

// TestDecideWaiting: A (2 GiB) on node 0 and B on node 1, each node with
// 2.5 GiB free; waiting C needs 3 GiB on one node, so it fits none. No
// node is over its use target and every VM is local: only the waiting
// rule moves, A to node 1, which leaves node 0 4.5 GiB free for C.
func TestDecideWaiting(t *testing.T) {
	a := vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 2 * gib})
	b := vm("b", map[int][]int{0: {1}}, map[int]uint64{1: 2 * gib})
	h := &roomHost{free: map[int]uint64{0: 5 * gib / 2, 1: 5 * gib / 2}, vms: map[string]VM{"a": a, "b": b}}
	nodes := []Node{node(0, 16, 50, 0), node(1, 16, 50, 0)}
	s := Sample{At: t0, Nodes: nodes, VMs: []VM{a, b}, Waiting: []ledger.Waiting{waitingVM("c", 3*gib, time.Minute)}}
	d := Decide(s, History{}, h.cfg())
	if d.Move == nil {
		t.Fatalf("no move: %s", d.Why)
	}
	m := d.Move
	if m.Kind != KindWaiting || m.ForWaiting != "c" || FormatLayout(m.To) != "0:1" || m.VM != "a" && m.VM != "b" || m.Bytes != 2*gib {
		t.Errorf("move %+v, want a or b moved for waiting c", *m)
	}
	if !strings.Contains(m.Why, "frees room for waiting VM c (waiting 1m0s; it does not fit now: vm does not fit: no node has 3221225472 bytes free)") || strings.Contains(m.Why, "\n") {
		t.Errorf("why %q", m.Why)
	}
	if m.VM != "a" {
		t.Errorf("moved %s, want a (b to node 0 moves as much, and a comes first by name)", m.VM)
	}
	if !strings.HasPrefix(d.Why, "vm a: frees room for waiting VM c") {
		t.Errorf("decision's why %q", d.Why)
	}

	// Fewest pages: S (1 GiB) on node 0 frees enough too, and moves less.
	small := vm("s", map[int][]int{0: {0}}, map[int]uint64{0: gib})
	h.vms["s"] = small
	s.VMs = []VM{a, b, small}
	if d := Decide(s, History{}, h.cfg()); d.Move == nil || d.Move.VM != "s" || d.Move.Bytes != gib {
		t.Errorf("move %+v (%s), want s, the fewest pages", d.Move, d.Why)
	}

	// Control: no waiting VM, nothing moves, the planner is not asked.
	s.VMs, s.Waiting, h.asked = []VM{a, b}, nil, 0
	if d := Decide(s, History{}, h.cfg()); d.Move != nil || h.asked != 0 || !strings.HasPrefix(d.Why, "nothing to do") {
		t.Errorf("no waiting VM: move %v, %d questions, why %q", d.Move, h.asked, d.Why)
	}
	// Control: a waiting VM no single move helps (5 GiB) moves nothing,
	// and the round says why.
	s.Waiting = []ledger.Waiting{waitingVM("big", 5*gib, time.Minute)}
	d = Decide(s, History{}, h.cfg())
	if d.Move != nil || !strings.Contains(d.Why, "waiting VM big does not fit (vm does not fit: no node has 5368709120 bytes free), and no single move of a VM that may move makes room for it") {
		t.Errorf("no move helps: move %v, why %q", d.Move, d.Why)
	}
	// A waiting VM that fits now gets nothing moved for it.
	s.Waiting = []ledger.Waiting{waitingVM("tiny", gib, time.Minute)}
	if d := Decide(s, History{}, h.cfg()); d.Move != nil || !strings.Contains(d.Why, "waiting VM tiny fits now") {
		t.Errorf("fits now: move %v, why %q", d.Move, d.Why)
	}
	// Oldest first: big waits longer than c, helps nothing, c gets room.
	s.Waiting = []ledger.Waiting{waitingVM("c", 3*gib, time.Minute), waitingVM("big", 5*gib, time.Hour)}
	if d := Decide(s, History{}, h.cfg()); d.Move == nil || d.Move.ForWaiting != "c" || !strings.Contains(verdict(d, "a"), "frees room for waiting VM c") {
		t.Errorf("two waiting: move %+v (%s)", d.Move, d.Why)
	}
}

// TestDecideWaitingRules: the waiting rule moves only VMs that may move
// (locked ones, those moved lately stay), and never when another rule
// moves a VM this round.
func TestDecideWaitingRules(t *testing.T) {
	a := vm("a", map[int][]int{0: {0}}, map[int]uint64{0: 2 * gib})
	h := &roomHost{free: map[int]uint64{0: 5 * gib / 2, 1: 5 * gib / 2}, vms: map[string]VM{"a": a}}
	s := Sample{At: t0, Nodes: []Node{node(0, 16, 50, 0), node(1, 16, 50, 0)}, VMs: []VM{a}, Waiting: []ledger.Waiting{waitingVM("c", 3*gib, time.Minute)}}
	if d := Decide(s, History{}, h.cfg()); d.Move == nil {
		t.Fatalf("control: no move: %s", d.Why)
	}
	for name, change := range map[string]func(*VM){
		"locked":      func(v *VM) { v.Entry.Locked = true },
		"moved later": func(v *VM) { v.Entry.Moves = []ledger.Move{{At: t0.Add(-time.Minute)}} },
	} {
		s.VMs = []VM{a}
		change(&s.VMs[0])
		if d := Decide(s, History{}, h.cfg()); d.Move != nil {
			t.Errorf("%s: moved %+v", name, *d.Move)
		}
	}
	// Node 1 over its use target, a's locality low: that rule's move
	// comes first, and only one move is made.
	low := vm("a", map[int][]int{0: {0}}, map[int]uint64{0: gib, 1: gib})
	h.vms["a"] = low
	s.VMs = []VM{low}
	if d := Decide(s, History{}, h.cfg()); d.Move == nil || d.Move.Kind != KindLocality {
		t.Errorf("locality and waiting: move %+v (%s), want the locality move", d.Move, d.Why)
	}
}
