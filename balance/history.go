package balance

import (
	"time"

	"github.com/qnuma/qnuma/ledger"
)

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
	mem, cpu map[int]float64 // node id → MemPercent, CPUPercent
	// cpuKnown: the sample measured CPU use (a Sampler's first does not).
	cpuKnown bool
	local    map[ledger.Proc]float64 // each sampled VM's lowest locality (worstLocal), by its qemu
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
// use target only when it was in two samples in a row, by the same
// measure (memory or CPU; CPU use not measured counts as no evidence
// against), and as room only when it was under in both; a VM's locality
// counts as low only when it was in both. So a load that comes and goes
// between two samples moves nothing.
func (h *History) Observe(s Sample) {
	o := &observed{mem: map[int]float64{}, cpu: map[int]float64{}, cpuKnown: s.CPUKnown, local: map[ledger.Proc]float64{}}
	for _, n := range s.Nodes {
		o.mem[n.ID], o.cpu[n.ID] = n.MemPercent(), n.CPUPercent
	}
	for _, v := range s.VMs {
		if v.NotSampled == "" {
			o.local[v.Entry.QEMU] = v.worstLocal()
		}
	}
	h.prev = o
}

// overInBoth says whether n is over limit now and was at the previous
// sample by the same measure (true for what the previous did not see).
func (h History) overInBoth(n Node, limit float64) bool {
	p := h.prev
	if p == nil {
		return n.Use() > limit
	}
	mem, seen := p.mem[n.ID]
	if n.MemPercent() > limit && (!seen || mem > limit) {
		return true
	}
	cpu, seen := p.cpu[n.ID]
	return n.CPUPercent > limit && (!seen || !p.cpuKnown || cpu > limit)
}

// wasUnder says whether node id was at or under limit at the previous
// sample (true when there is none).
func (h History) wasUnder(id int, limit float64) bool {
	p := h.prev
	if p == nil {
		return true
	}
	return p.mem[id] <= limit && (!p.cpuKnown || p.cpu[id] <= limit)
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
