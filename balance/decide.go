package balance

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/qnuma/qnuma/ledger"
)

// Defaults, from numad and ESXi (see ../shared/REFERENCE.md and
// `qnuma balance --help`).
const (
	// DefaultInterval is numad's longest wait between scans (it scans
	// every 5 s after a move, up to every 15 s otherwise).
	DefaultInterval = 15 * time.Second
	// DefaultIntervalAfterMove is numad's wait after a move.
	DefaultIntervalAfterMove = 5 * time.Second
	// DefaultNodeUse is numad's target node use, in percent.
	DefaultNodeUse = 85.0
	// DefaultLocality is numad's memory locality target, in percent.
	DefaultLocality = 90.0
	// DefaultMinInterval is how often numad reconsiders one process at
	// most.
	DefaultMinInterval = 300 * time.Second
	// DefaultMinGain is ESXi's Numa.MigImbalanceThreshold (10%), in
	// percentage points.
	DefaultMinGain = 10.0
	// DefaultPagesPerSecond bounds migration as ESXi does (it migrates at
	// a bounded rate; numad does not bound it): 262144 pages of 4 KiB are
	// 1 GiB/s.
	DefaultPagesPerSecond = 262144
)

// By is what balance's moves are recorded as in the ledger.
const By = "qnuma balance"

// Config is what Decide decides by.
type Config struct {
	// NodeUse is the node use, in percent of its memory or of its CPUs'
	// time, over which a node is overloaded, and which no move may push
	// a target node over.
	NodeUse float64
	// Locality is the share of a guest node's RAM on the host nodes the
	// ledger plans for it (of the VM's on its home nodes, where its guest
	// nodes cannot be told apart), in percent, under which the VM is
	// moved to restore it.
	Locality float64
	// MinInterval is the least time between two moves of one VM.
	MinInterval time.Duration
	// MinGain is the least a move must gain, in percentage points: the
	// fall of the use gap between the node it leaves and the node it goes
	// to, or the rise of its locality.
	MinGain float64
	// PagesPerSecond is handed to the mover (0: unbounded).
	PagesPerSecond int
	// Fits asks the planner whether vm fits the host nodes of to (guest
	// node → host nodes). Required.
	Fits func(vm ledger.Entry, to map[int][]int) error
	// WaitingFits asks the planner whether the waiting VM w fits the host
	// now (moved nil), or once moved is moved to to: a hypothetical
	// ledger, nothing changed. nil: waiting VMs get no room made.
	WaitingFits func(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error
}

// DefaultConfig is Config with numad's and ESXi's defaults and no Fits.
func DefaultConfig() Config {
	return Config{
		NodeUse: DefaultNodeUse, Locality: DefaultLocality, MinInterval: DefaultMinInterval,
		MinGain: DefaultMinGain, PagesPerSecond: DefaultPagesPerSecond,
	}
}

// Decision is one round's outcome: at most one move.
type Decision struct {
	At time.Time
	// Move is the move chosen; nil for none.
	Move *Move
	// Why says why this move, or why none.
	Why   string
	Nodes []NodeState
	VMs   []VMState
}

// NodeState is a node as the decision saw it.
type NodeState struct {
	ID         int     `json:"node"`
	TotalBytes uint64  `json:"mem_total_bytes"`
	FreeBytes  uint64  `json:"mem_free_bytes"`
	MemPercent float64 `json:"mem_use_percent"`
	CPUPercent float64 `json:"cpu_use_percent"`
	// Over: its use is over the target now; Sustained: and at the
	// previous sample too (only then does a VM move off it).
	Over      bool `json:"over_target"`
	Sustained bool `json:"over_since_last_sample"`
}

// VMState is a VM as the decision saw it, with what was found about it.
type VMState struct {
	Name         string         `json:"name"`
	PID          int            `json:"pid"`
	HomeNodes    []int          `json:"home_nodes"`
	Layout       map[int][]int  `json:"guest_nodes"`
	RAM          map[int]uint64 `json:"guest_ram_bytes"`
	LocalPercent float64        `json:"local_percent"`
	// GuestNodeLocality is each guest node's locality against the host
	// nodes the ledger plans for it; GuestNodeNote says why there is none.
	GuestNodeLocality []GuestNodeState `json:"guest_node_locality"`
	GuestNodeNote     string           `json:"guest_node_locality_note,omitempty"`
	VCPUUse           float64          `json:"vcpu_use_cpus"`
	// Verdict says what Decide made of it: left alone and why, fine, or a
	// move and why (not) chosen.
	Verdict string `json:"verdict"`
}

// GuestNodeState is one guest node's RAM as the decision saw it.
type GuestNodeState struct {
	ID           int            `json:"guest_node"`
	HomeNodes    []int          `json:"home_nodes"`
	RAM          map[int]uint64 `json:"ram_bytes"`
	LocalPercent float64        `json:"local_percent"`
}

// Move is one move Decide chose.
type Move struct {
	VM   string
	QEMU ledger.Proc
	// From and To map guest node ids to host nodes, before and after.
	From, To map[int][]int
	// Kind is KindNodeUse or KindLocality; Why says it in words.
	Kind, Why string
	// Bytes of guest RAM expected to move, in Pages of its page size (4
	// KiB or its hugepages), and the budget for them.
	Bytes, Pages   uint64
	PagesPerSecond int
	// LocalityBefore is the VM's locality now, in percent.
	LocalityBefore float64
	// Gain in percentage points (see Config.MinGain).
	Gain float64
	// ForWaiting names the waiting VM a KindWaiting move makes room for.
	ForWaiting string
}

// Kinds of move.
const (
	KindNodeUse  = "node-use" // its home node is over the use target
	KindLocality = "locality" // its memory is not where its home is
	// KindWaiting (waiting.go): moving it frees room a waiting VM needs.
)

// Request is the move as a Mover takes it.
func (m Move) Request() MoveRequest {
	return MoveRequest{VM: m.VM, QEMU: m.QEMU, To: m.To, PagesPerSecond: m.PagesPerSecond, By: By}
}

// Decide chooses at most one move for a sample, as numad does (one move
// per round) with ESXi's rules (leave alone what the user placed by hand;
// move only for a gain worth it). It is pure but for cfg.Fits.
//
// A VM is left alone when the user locked it (qnuma pin --lock), when it
// cannot be moved live, when its qemu could not be sampled, and for
// cfg.MinInterval after it was last moved (or a move of it was tried).
// Otherwise it is a candidate when:
//   - a host node it lives on is over cfg.NodeUse (memory or CPU) while
//     another node would stay under it with the VM added, and moving it
//     narrows the gap between the two nodes' use by cfg.MinGain points:
//     the node is replaced by the other in its layout;
//   - the locality of one of its guest nodes (or of the VM as a whole,
//     where its guest nodes cannot be told apart) is under cfg.Locality:
//     its memory is moved home (a move in place), or,
//     for a VM on one host node, the VM is moved to the node holding
//     most of its memory, whichever moves fewer pages, provided the nodes
//     it goes to stay under cfg.NodeUse and locality rises by
//     cfg.MinGain points.
//
// Node use moves come first, the largest gain first, then fewer bytes;
// the first that cfg.Fits accepts is the move. Only when neither rule
// moves a VM, a VM may move to free room a waiting VM needs (waiting.go).
func Decide(s Sample, h History, cfg Config) Decision {
	r := &decider{s: s, h: h, cfg: cfg, d: Decision{At: s.At}}
	r.nodes()
	r.vms()
	r.choose(r.candidates())
	if r.d.Move == nil {
		r.waiting() // waiting.go
	}
	r.explain()
	return r.d
}

// decider is one Decide under way.
type decider struct {
	s   Sample
	h   History
	cfg Config
	d   Decision
	// over: the nodes over the use target now and at the previous sample,
	// fullest first; passing: over it now only; room: under it in both.
	over, passing, room []Node
	// Per VM of the sample: what was found (its verdict, in order),
	// whether it may move, and whether its locality is low now only.
	notes    [][]string
	eligible []bool
	lowNow   []bool
	// lowLocal counts the VMs under the locality target in both samples.
	lowLocal int
	// waitNotes say why no move was made for each waiting VM.
	waitNotes []string
}

func (r *decider) note(i int, format string, a ...any) {
	r.notes[i] = append(r.notes[i], fmt.Sprintf(format, a...))
}

// nodes sorts the nodes into over, passing and room.
func (r *decider) nodes() {
	for _, n := range r.s.Nodes {
		ns := NodeState{ID: n.ID, TotalBytes: n.TotalBytes, FreeBytes: n.FreeBytes, MemPercent: round1(n.MemPercent()), CPUPercent: round1(n.CPUPercent), Over: n.Use() > r.cfg.NodeUse}
		ns.Sustained = r.h.overInBoth(n, r.cfg.NodeUse)
		r.d.Nodes = append(r.d.Nodes, ns)
		switch {
		case ns.Sustained:
			r.over = append(r.over, n)
		case ns.Over:
			r.passing = append(r.passing, n)
		case r.h.wasUnder(n.ID, r.cfg.NodeUse):
			r.room = append(r.room, n)
		}
	}
	sort.SliceStable(r.over, func(i, j int) bool { return r.over[i].Use() > r.over[j].Use() })
}

// vms notes each VM's state and whether it may move.
func (r *decider) vms() {
	n := len(r.s.VMs)
	r.notes, r.eligible, r.lowNow = make([][]string, n), make([]bool, n), make([]bool, n)
	for i, v := range r.s.VMs {
		e := v.Entry
		layout := Layout(e)
		vs := VMState{Name: e.Name, PID: e.QEMU.PID, HomeNodes: homeNodes(layout), Layout: layout, RAM: v.RAM, LocalPercent: round1(v.LocalPercent),
			GuestNodeLocality: []GuestNodeState{}, GuestNodeNote: v.GuestNodesNote, VCPUUse: round2(v.VCPUUse)}
		for _, g := range v.GuestNodes {
			vs.GuestNodeLocality = append(vs.GuestNodeLocality, GuestNodeState{ID: g.ID, HomeNodes: g.HomeNodes, RAM: g.RAM, LocalPercent: round1(g.LocalPercent)})
		}
		r.d.VMs = append(r.d.VMs, vs)
		low := v.NotSampled == "" && v.RAMBytes() > 0 && v.worstLocal() < r.cfg.Locality
		r.lowNow[i] = low && !r.h.wasLow(e.QEMU, r.cfg.Locality)
		if low && !r.lowNow[i] {
			r.lowLocal++
		}
		switch last, moved := r.h.lastMove(e); {
		case v.NotSampled != "":
			r.note(i, "not sampled: %s", v.NotSampled)
		case e.Locked:
			r.note(i, "placed or pinned by hand, so locked: left where it is (qnuma pin --unlock hands it to balance)")
		case e.NotMovable != "":
			r.note(i, "cannot be moved live: %s", e.NotMovable)
		case len(r.d.VMs[i].HomeNodes) == 0:
			r.note(i, "the ledger has no host nodes for it")
		case moved && r.s.At.Sub(last) < r.cfg.MinInterval:
			r.note(i, "moved %s ago: not again before %s (--min-interval)", r.s.At.Sub(last).Round(time.Second), r.cfg.MinInterval)
		default:
			r.eligible[i] = true
		}
	}
}

// candidates are the moves worth asking the planner about, best first:
// node use moves before locality moves, then the largest gain, fewer
// bytes, the emptier target.
func (r *decider) candidates() []candidate {
	var cands []candidate
	add := func(i int, c []candidate, why string) {
		for k := range c {
			c[k].vm = i
		}
		cands = append(cands, c...)
		if len(c) == 0 {
			r.note(i, "%s", why)
		}
	}
	for _, n := range r.over {
		for i, v := range r.s.VMs {
			if r.eligible[i] && slices.Contains(r.d.VMs[i].HomeNodes, n.ID) {
				c, why := nodeUseMoves(v, r.d.VMs[i].Layout, n, r.room, r.cfg)
				add(i, c, why)
			}
		}
	}
	for i, v := range r.s.VMs {
		switch {
		case !r.eligible[i] || v.RAMBytes() == 0 || v.worstLocal() >= r.cfg.Locality:
		case r.lowNow[i]:
			r.note(i, "%s, under %.0f%%, but not at the previous sample: waiting a round to see it last", localText(v), r.cfg.Locality)
		default:
			c, why := localityMoves(v, r.d.VMs[i].Layout, roomNodes(r.room), r.cfg)
			add(i, c, why)
		}
	}
	sort.SliceStable(cands, func(a, b int) bool {
		x, y := cands[a], cands[b]
		if (x.kind == KindNodeUse) != (y.kind == KindNodeUse) {
			return x.kind == KindNodeUse
		}
		if x.gain != y.gain {
			return x.gain > y.gain
		}
		if x.bytes != y.bytes {
			return x.bytes < y.bytes
		}
		if x.after != y.after {
			return x.after < y.after
		}
		if nx, ny := r.s.VMs[x.vm].Entry.Name, r.s.VMs[y.vm].Entry.Name; nx != ny {
			return nx < ny
		}
		return FormatLayout(x.to) < FormatLayout(y.to)
	})
	return cands
}

// choose asks the planner about each candidate in turn; the first it
// accepts is the move.
func (r *decider) choose(cands []candidate) {
	for k, c := range cands {
		v := r.s.VMs[c.vm]
		err := errNoPlanner
		if r.cfg.Fits != nil {
			err = r.cfg.Fits(v.Entry, c.to)
		}
		if err != nil {
			r.note(c.vm, "%s: the planner refuses %s: %v", c.why, FormatLayout(c.to), err)
			continue
		}
		r.d.Move = &Move{
			VM: v.Entry.Name, QEMU: v.Entry.QEMU, From: r.d.VMs[c.vm].Layout, To: c.to,
			Kind: c.kind, Why: c.why, Bytes: c.bytes, Pages: c.bytes / pageBytes(v.Entry), PagesPerSecond: r.cfg.PagesPerSecond,
			LocalityBefore: v.LocalPercent, Gain: round1(c.gain),
		}
		r.note(c.vm, "moved: %s", c.why)
		// The candidates after it were not asked about: one move per round.
		waits := map[int]bool{c.vm: true}
		for _, o := range cands[k+1:] {
			if !waits[o.vm] {
				waits[o.vm] = true
				r.note(o.vm, "could move (%s), but one move per round: %s moves now", o.why, v.Entry.Name)
			}
		}
		return
	}
}

// errNoPlanner refuses every move when Config.Fits is not set.
var errNoPlanner = errors.New("no planner given (Config.Fits)")

// explain writes each VM's verdict and the decision's why.
func (r *decider) explain() {
	for i := range r.d.VMs {
		if len(r.notes[i]) == 0 {
			r.note(i, "fine: %s", localText(r.s.VMs[i]))
		}
		r.d.VMs[i].Verdict = strings.Join(r.notes[i], "; ")
	}
	cfg := r.cfg
	switch {
	case r.d.Move != nil:
		r.d.Why = fmt.Sprintf("vm %s: %s", r.d.Move.VM, r.d.Move.Why)
	case len(r.over) == 0 && r.lowLocal == 0:
		var passed []string
		for _, n := range r.passing {
			passed = append(passed, fmt.Sprintf("node %d is at %.1f%% use", n.ID, n.Use()))
		}
		for i, low := range r.lowNow {
			if low {
				passed = append(passed, fmt.Sprintf("vm %s has %s", r.d.VMs[i].Name, localText(r.s.VMs[i])))
			}
		}
		r.d.Why = fmt.Sprintf("nothing to do: no node is over %.0f%% use and every VM has at least %.0f%% of each guest node's memory on its home nodes", cfg.NodeUse, cfg.Locality)
		if len(passed) > 0 {
			r.d.Why = fmt.Sprintf("nothing to do yet: %s, but not at the previous sample: waiting a round to see it last", strings.Join(passed, ", "))
		}
	default:
		var problems, why []string
		for _, n := range r.over {
			problems = append(problems, fmt.Sprintf("node %d is over %.0f%% use (memory %.1f%%, cpu %.1f%%)", n.ID, cfg.NodeUse, n.MemPercent(), n.CPUPercent))
		}
		if r.lowLocal > 0 {
			problems = append(problems, fmt.Sprintf("%d VM(s) under %.0f%% locality", r.lowLocal, cfg.Locality))
		}
		for _, vs := range r.d.VMs {
			why = append(why, vs.Name+": "+vs.Verdict)
		}
		r.d.Why = "no move: " + strings.Join(problems, ", ") + ", and no VM can help: " + strings.Join(why, "; ")
		if len(why) == 0 {
			r.d.Why = "no move: " + strings.Join(problems, ", ") + ", and no VM in the ledger"
		}
	}
	if r.d.Move == nil && len(r.waitNotes) > 0 {
		r.d.Why += "; " + strings.Join(r.waitNotes, "; ")
	}
}
