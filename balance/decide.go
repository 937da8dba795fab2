package balance

import (
	"fmt"
	"math"
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
	// Locality is the share of a VM's guest RAM on its home nodes, in
	// percent, under which it is moved to restore it.
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
}

// DefaultConfig is Config with numad's and ESXi's defaults and no Fits.
func DefaultConfig() Config {
	return Config{
		NodeUse: DefaultNodeUse, Locality: DefaultLocality, MinInterval: DefaultMinInterval,
		MinGain: DefaultMinGain, PagesPerSecond: DefaultPagesPerSecond,
	}
}

// History is what earlier rounds saw and did: the hysteresis that keeps a
// VM from being moved back and forth. The zero value is an empty history.
type History struct {
	last map[string]tried
	// prev is the previous sample Observe was given.
	prev *observed
}

type tried struct {
	at   time.Time
	qemu ledger.Proc
}

type observed struct {
	use   map[int]float64         // node id → Node.Use
	local map[ledger.Proc]float64 // each sampled VM's LocalPercent, by its qemu
}

// Record notes a move of vm (whose qemu is qemu) made or tried at at: it
// is not moved again for Config.MinInterval, whether the move worked or
// not.
func (h *History) Record(vm string, qemu ledger.Proc, at time.Time) {
	if h.last == nil {
		h.last = map[string]tried{}
	}
	h.last[vm] = tried{at, qemu}
}

// Observe keeps what s saw for the next Decide: a node counts as over the
// use target only when it was in two samples in a row (and as room only
// when it was under in both), a VM's locality as low only when it was in
// both, so that a load that comes and goes between two samples moves
// nothing.
func (h *History) Observe(s Sample) {
	o := &observed{use: map[int]float64{}, local: map[ledger.Proc]float64{}}
	for _, n := range s.Nodes {
		o.use[n.ID] = n.Use()
	}
	for _, v := range s.VMs {
		if v.NotSampled == "" {
			o.local[v.Entry.QEMU] = v.LocalPercent
		}
	}
	h.prev = o
}

// wasOver says whether node id was over limit at the previous sample
// (true when there is none to say otherwise).
func (h History) wasOver(id int, limit float64) bool {
	if h.prev == nil {
		return true
	}
	u, ok := h.prev.use[id]
	return !ok || u > limit
}

// wasUnder says whether node id was at or under limit at the previous
// sample (true when there is none).
func (h History) wasUnder(id int, limit float64) bool {
	if h.prev == nil {
		return true
	}
	u, ok := h.prev.use[id]
	return !ok || u <= limit
}

// wasLow says whether the VM of qemu had under limit locality at the
// previous sample (true when there is none).
func (h History) wasLow(qemu ledger.Proc, limit float64) bool {
	if h.prev == nil {
		return true
	}
	l, ok := h.prev.local[qemu]
	return !ok || l < limit
}

// lastMove is when e was last moved or tried, by this history or (for
// moves before it, by qnuma move or another balance) the ledger.
func (h History) lastMove(e ledger.Entry) (time.Time, bool) {
	var at time.Time
	if t, ok := h.last[e.Name]; ok && t.qemu == e.QEMU {
		at = t.at
	}
	for _, m := range e.Moves {
		if m.At.After(at) {
			at = m.At
		}
	}
	return at, !at.IsZero()
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
	VCPUUse      float64        `json:"vcpu_use_cpus"`
	// Verdict says what Decide made of it: left alone and why, fine, or a
	// move and why (not) chosen.
	Verdict string `json:"verdict"`
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
}

// Kinds of move.
const (
	KindNodeUse  = "node-use" // its home node is over the use target
	KindLocality = "locality" // its memory is not where its home is
)

// Request is the move as a Mover takes it.
func (m Move) Request() MoveRequest {
	return MoveRequest{VM: m.VM, QEMU: m.QEMU, To: m.To, PagesPerSecond: m.PagesPerSecond, By: By}
}

// Layout is a VM's guest nodes and the host nodes behind each, from its
// ledger entry; a VM without guest nodes is one guest node 0 on all its
// host nodes.
func Layout(e ledger.Entry) map[int][]int {
	out := map[int][]int{}
	if len(e.GuestNodes) == 0 {
		out[0] = slices.Clone(e.HostNodes)
		return out
	}
	for _, g := range e.GuestNodes {
		out[g.ID] = slices.Clone(g.HostNodes)
	}
	return out
}

// homeNodes is every host node in a layout, ascending.
func homeNodes(layout map[int][]int) []int {
	var out []int
	for _, hs := range layout {
		for _, h := range hs {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	slices.Sort(out)
	return out
}

// replaceNode is layout with host node from replaced by to everywhere.
func replaceNode(layout map[int][]int, from, to int) map[int][]int {
	out := map[int][]int{}
	for g, hs := range layout {
		n := make([]int, len(hs))
		for i, h := range hs {
			if h == from {
				h = to
			}
			n[i] = h
		}
		out[g] = n
	}
	return out
}

// FormatLayout writes a layout as "0:1 1:2,3" (guest node:host nodes).
func FormatLayout(layout map[int][]int) string {
	gs := make([]int, 0, len(layout))
	for g := range layout {
		gs = append(gs, g)
	}
	slices.Sort(gs)
	parts := make([]string, len(gs))
	for i, g := range gs {
		hs := make([]string, len(layout[g]))
		for j, h := range layout[g] {
			hs[j] = fmt.Sprint(h)
		}
		parts[i] = fmt.Sprintf("%d:%s", g, strings.Join(hs, ","))
	}
	return strings.Join(parts, " ")
}

// candidate is a move Decide considers.
type candidate struct {
	vm    int // index into the sample's VMs
	to    map[int][]int
	kind  string
	why   string
	gain  float64
	bytes uint64
	// after is the use of the node it goes to after the move.
	after float64
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
//   - its locality is under cfg.Locality: its memory is moved home, or,
//     for a VM on one host node, the VM is moved to the node holding
//     most of its memory, whichever moves fewer pages, provided the nodes
//     it goes to stay under cfg.NodeUse and locality rises by
//     cfg.MinGain points.
//
// Node use moves come first, the largest gain first, then fewer bytes;
// the first that cfg.Fits accepts is the move.
func Decide(s Sample, h History, cfg Config) Decision {
	d := Decision{At: s.At}
	var over, passing []Node
	for _, n := range s.Nodes {
		ns := NodeState{ID: n.ID, TotalBytes: n.TotalBytes, FreeBytes: n.FreeBytes, MemPercent: round1(n.MemPercent()), CPUPercent: round1(n.CPUPercent), Over: n.Use() > cfg.NodeUse}
		ns.Sustained = ns.Over && h.wasOver(n.ID, cfg.NodeUse)
		d.Nodes = append(d.Nodes, ns)
		switch {
		case ns.Sustained:
			over = append(over, n)
		case ns.Over:
			passing = append(passing, n)
		}
	}
	// Targets: the nodes under the target now and at the previous sample.
	var room []Node
	for _, n := range s.Nodes {
		if n.Use() <= cfg.NodeUse && h.wasUnder(n.ID, cfg.NodeUse) {
			room = append(room, n)
		}
	}
	sort.SliceStable(over, func(i, j int) bool { return over[i].Use() > over[j].Use() })

	notes := make([][]string, len(s.VMs))
	eligible := make([]bool, len(s.VMs))
	// lowLocal counts the VMs under the locality target now and at the
	// previous sample; lowNow marks those under it now only.
	lowLocal, lowNow := 0, make([]bool, len(s.VMs))
	for i, v := range s.VMs {
		e := v.Entry
		layout := Layout(e)
		d.VMs = append(d.VMs, VMState{Name: e.Name, PID: e.QEMU.PID, HomeNodes: homeNodes(layout), Layout: layout, RAM: v.RAM, LocalPercent: round1(v.LocalPercent), VCPUUse: round2(v.VCPUUse)})
		low := v.NotSampled == "" && v.RAMBytes() > 0 && v.LocalPercent < cfg.Locality
		lowNow[i] = low && !h.wasLow(e.QEMU, cfg.Locality)
		if low && !lowNow[i] {
			lowLocal++
		}
		switch last, moved := h.lastMove(e); {
		case v.NotSampled != "":
			notes[i] = append(notes[i], "not sampled: "+v.NotSampled)
		case e.Locked:
			notes[i] = append(notes[i], "locked by the user (qnuma pin --lock): left where it is")
		case e.NotMovable != "":
			notes[i] = append(notes[i], "cannot be moved live: "+e.NotMovable)
		case len(homeNodes(layout)) == 0:
			notes[i] = append(notes[i], "the ledger has no host nodes for it")
		case moved && s.At.Sub(last) < cfg.MinInterval:
			notes[i] = append(notes[i], fmt.Sprintf("moved %s ago: not again before %s (--min-interval)", s.At.Sub(last).Round(time.Second), cfg.MinInterval))
		default:
			eligible[i] = true
		}
	}

	var cands []candidate
	for _, n := range over {
		for i, v := range s.VMs {
			if eligible[i] && slices.Contains(d.VMs[i].HomeNodes, n.ID) {
				c, why := nodeUseMoves(v, d.VMs[i].Layout, n, room, cfg)
				for k := range c {
					c[k].vm = i
				}
				cands = append(cands, c...)
				if len(c) == 0 {
					notes[i] = append(notes[i], why)
				}
			}
		}
	}
	for i, v := range s.VMs {
		if lowNow[i] && eligible[i] {
			notes[i] = append(notes[i], fmt.Sprintf("%.1f%% of its memory on its home nodes, under %.0f%%, but not at the previous sample: waiting a round to see it last", v.LocalPercent, cfg.Locality))
			continue
		}
		if eligible[i] && v.RAMBytes() > 0 && v.LocalPercent < cfg.Locality {
			c, why := localityMoves(v, d.VMs[i].Layout, roomNodes(room), cfg)
			for k := range c {
				c[k].vm = i
			}
			cands = append(cands, c...)
			if len(c) == 0 {
				notes[i] = append(notes[i], why)
			}
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
		if s.VMs[x.vm].Entry.Name != s.VMs[y.vm].Entry.Name {
			return s.VMs[x.vm].Entry.Name < s.VMs[y.vm].Entry.Name
		}
		return FormatLayout(x.to) < FormatLayout(y.to)
	})
	chosen := -1
	for k, c := range cands {
		v := s.VMs[c.vm]
		why := c.why
		if err := cfg.Fits(v.Entry, c.to); err != nil {
			notes[c.vm] = append(notes[c.vm], fmt.Sprintf("%s: the planner refuses %s: %v", why, FormatLayout(c.to), err))
			continue
		}
		d.Move = &Move{
			VM: v.Entry.Name, QEMU: v.Entry.QEMU, From: d.VMs[c.vm].Layout, To: c.to,
			Kind: c.kind, Why: why, Bytes: c.bytes, Pages: c.bytes / pageBytes(v.Entry), PagesPerSecond: cfg.PagesPerSecond,
			LocalityBefore: v.LocalPercent, Gain: round1(c.gain),
		}
		notes[c.vm] = append(notes[c.vm], "moved: "+why)
		chosen = k
		break
	}
	if chosen >= 0 {
		// The candidates after the chosen one were not asked about.
		waits := map[int]bool{}
		for _, c := range cands[chosen+1:] {
			if name := s.VMs[c.vm].Entry.Name; name != d.Move.VM && !waits[c.vm] {
				waits[c.vm] = true
				notes[c.vm] = append(notes[c.vm], fmt.Sprintf("could move (%s), but one move per round: %s moves now", c.why, d.Move.VM))
			}
		}
	}

	for i := range d.VMs {
		if len(notes[i]) == 0 {
			notes[i] = []string{fmt.Sprintf("fine: %.1f%% of its memory on its home nodes", s.VMs[i].LocalPercent)}
		}
		d.VMs[i].Verdict = strings.Join(notes[i], "; ")
	}
	switch {
	case d.Move != nil:
		d.Why = fmt.Sprintf("vm %s: %s", d.Move.VM, d.Move.Why)
	case len(over) == 0 && lowLocal == 0:
		d.Why = fmt.Sprintf("nothing to do: no node is over %.0f%% use and every VM has at least %.0f%% of its memory on its home nodes", cfg.NodeUse, cfg.Locality)
		var passed []string
		for _, n := range passing {
			passed = append(passed, fmt.Sprintf("node %d is at %.1f%% use", n.ID, n.Use()))
		}
		for i, low := range lowNow {
			if low {
				passed = append(passed, fmt.Sprintf("vm %s has %.1f%% of its memory on its home nodes", d.VMs[i].Name, s.VMs[i].LocalPercent))
			}
		}
		if len(passed) > 0 {
			d.Why = fmt.Sprintf("nothing to do yet: %s, but not at the previous sample: waiting a round to see it last", strings.Join(passed, ", "))
		}
	default:
		var problems []string
		for _, n := range over {
			problems = append(problems, fmt.Sprintf("node %d is over %.0f%% use (memory %.1f%%, cpu %.1f%%)", n.ID, cfg.NodeUse, n.MemPercent(), n.CPUPercent))
		}
		if lowLocal > 0 {
			problems = append(problems, fmt.Sprintf("%d VM(s) under %.0f%% locality", lowLocal, cfg.Locality))
		}
		var why []string
		for _, vs := range d.VMs {
			why = append(why, vs.Name+": "+vs.Verdict)
		}
		d.Why = "no move: " + strings.Join(problems, ", ") + ", and no VM can help: " + strings.Join(why, "; ")
		if len(why) == 0 {
			d.Why = "no move: " + strings.Join(problems, ", ") + ", and no VM in the ledger"
		}
	}
	return d
}

// nodeUseMoves are the moves of v off node n (over the use target) to
// each node of room (under it) that stays under it; why says why there
// are none.
func nodeUseMoves(v VM, layout map[int][]int, n Node, room []Node, cfg Config) ([]candidate, string) {
	home := homeNodes(layout)
	// The pages that go: those on n, or, when n is its only home, all
	// those not on the target already.
	share := vcpuShare(v.Entry, home, n.ID)
	var out []candidate
	var refused []string
	for _, m := range room {
		if m.ID == n.ID || slices.Contains(home, m.ID) {
			continue
		}
		if m.CPUs == 0 || m.TotalBytes == 0 {
			continue // vCPUs and guest RAM both need a home there
		}
		bytes := v.RAM[n.ID]
		if len(home) == 1 {
			bytes = v.RAMBytes() - v.RAM[m.ID]
		}
		nAfter := max(n.MemPercent()-pct(v.RAM[n.ID], n.TotalBytes), n.CPUPercent-cpuPct(v.VCPUUse*share, n.CPUs))
		mAfter := max(m.MemPercent()+pct(bytes, m.TotalBytes), m.CPUPercent+cpuPct(v.VCPUUse*share, m.CPUs))
		if mAfter > cfg.NodeUse {
			refused = append(refused, fmt.Sprintf("node %d would be at %.1f%% use", m.ID, mAfter))
			continue
		}
		gain := (n.Use() - m.Use()) - math.Abs(nAfter-mAfter)
		if gain < cfg.MinGain {
			refused = append(refused, fmt.Sprintf("to node %d gains %.1f points, under %.1f (--min-gain)", m.ID, gain, cfg.MinGain))
			continue
		}
		out = append(out, candidate{
			to: replaceNode(layout, n.ID, m.ID), kind: KindNodeUse, gain: gain, bytes: bytes, after: mAfter,
			why: fmt.Sprintf("node %d is at %.1f%% use (memory %.1f%%, cpu %.1f%%), over %.0f%%; node %d has room: %.1f%% and %.1f%% after the move",
				n.ID, n.Use(), n.MemPercent(), n.CPUPercent, cfg.NodeUse, m.ID, nAfter, mAfter),
		})
	}
	if len(out) > 0 {
		return out, ""
	}
	if len(refused) == 0 {
		return nil, fmt.Sprintf("node %d is over %.0f%% use, and no other node with CPUs and memory is under it (now and at the previous sample)", n.ID, cfg.NodeUse)
	}
	return nil, fmt.Sprintf("node %d is over %.0f%% use, but no move off it helps: %s", n.ID, cfg.NodeUse, strings.Join(refused, ", "))
}

// localityMoves are the moves that restore v's locality: its memory back
// to its home nodes, or, for a VM on one host node, the VM to the node
// holding most of its memory; nodes are those with room.
func localityMoves(v VM, layout map[int][]int, nodes map[int]Node, cfg Config) ([]candidate, string) {
	home := homeNodes(layout)
	gain := 100 - v.LocalPercent
	if gain < cfg.MinGain {
		return nil, fmt.Sprintf("%.1f%% of its memory on its home nodes, under %.0f%%, but moving it gains %.1f points, under %.1f (--min-gain)", v.LocalPercent, cfg.Locality, gain, cfg.MinGain)
	}
	var out []candidate
	var refused []string
	// Home: the pages elsewhere come back, spread over the home nodes.
	var away uint64
	for n, b := range v.RAM {
		if !slices.Contains(home, n) {
			away += b
		}
	}
	ok := true
	for _, h := range home {
		n, known := nodes[h]
		if !known {
			ok = false
			refused = append(refused, fmt.Sprintf("home node %d is over %.0f%% use (now or at the previous sample)", h, cfg.NodeUse))
			break
		}
		if after := n.MemPercent() + pct(away/uint64(len(home)), n.TotalBytes); after > cfg.NodeUse {
			ok = false
			refused = append(refused, fmt.Sprintf("home node %d would be at %.1f%% memory use", h, after))
		}
	}
	if ok {
		out = append(out, candidate{
			to: replaceNode(layout, -1, -1) /* a copy: the same nodes */, kind: KindLocality, gain: gain, bytes: away,
			why: fmt.Sprintf("%.1f%% of its memory is on its home nodes, under %.0f%%: its memory moves home", v.LocalPercent, cfg.Locality),
		})
	}
	// Follow the memory: the node other than its home with most of it.
	if len(home) == 1 {
		best, most := -1, uint64(0)
		for n, b := range v.RAM {
			if n != home[0] && (b > most || b == most && best >= 0 && n < best) {
				best, most = n, b
			}
		}
		if m, known := nodes[best]; known && m.CPUs > 0 && m.TotalBytes > 0 {
			bytes := v.RAMBytes() - most
			after := max(m.MemPercent()+pct(bytes, m.TotalBytes), m.CPUPercent+cpuPct(v.VCPUUse, m.CPUs))
			if after > cfg.NodeUse {
				refused = append(refused, fmt.Sprintf("node %d, which holds most of it, would be at %.1f%% use", best, after))
			} else {
				out = append(out, candidate{
					to: replaceNode(layout, home[0], best), kind: KindLocality, gain: gain, bytes: bytes, after: after,
					why: fmt.Sprintf("%.1f%% of its memory is on its home node %d, under %.0f%%: it moves to node %d, which holds most of it", v.LocalPercent, home[0], cfg.Locality, best),
				})
			}
		}
	}
	if len(out) > 0 {
		return out, ""
	}
	return nil, fmt.Sprintf("%.1f%% of its memory on its home nodes, under %.0f%%, and no move restores it: %s", v.LocalPercent, cfg.Locality, strings.Join(refused, ", "))
}

// roomNodes indexes nodes by id.
func roomNodes(nodes []Node) map[int]Node {
	out := map[int]Node{}
	for _, n := range nodes {
		out[n.ID] = n
	}
	return out
}

// vcpuShare is the share of e's vCPUs that live on host node n.
func vcpuShare(e ledger.Entry, home []int, n int) float64 {
	if len(e.VCPUHomeNodes) == 0 {
		if len(home) == 0 {
			return 0
		}
		return 1 / float64(len(home))
	}
	on := 0
	for _, hs := range e.VCPUHomeNodes {
		if slices.Contains(hs, n) {
			on++
		}
	}
	return float64(on) / float64(len(e.VCPUHomeNodes))
}

// pageBytes is the size of the pages backing e's guest RAM.
func pageBytes(e ledger.Entry) uint64 {
	if e.HugepageBytes > 0 {
		return e.HugepageBytes
	}
	return 4096
}

// pct is b as a percentage of total.
func pct(b, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(b) / float64(total)
}

// cpuPct is cpus (CPUs' worth of time) as a percentage of n CPUs.
func cpuPct(cpus float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return 100 * cpus / float64(n)
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
func round2(f float64) float64 { return math.Round(f*100) / 100 }
