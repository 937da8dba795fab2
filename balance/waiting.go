package balance

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// KindWaiting is a move that frees room a waiting VM needs.
const KindWaiting = "waiting"

// waiting is the third rule, for a round where the others move nothing:
// for each waiting VM (qnuma run --wait), oldest first, that does not fit
// now, each VM that may move is tried on each target the planner allows
// it (cfg.Fits), and the planner asked whether the waiting VM fits once
// that VM is moved (cfg.WaitingFits, on a hypothetical ledger); the move
// that makes it fit with the fewest bytes of guest RAM moved is the move.
// A waiting VM no single move helps is noted, and the next is tried.
func (r *decider) waiting() {
	if len(r.s.Waiting) == 0 {
		return
	}
	if r.cfg.WaitingFits == nil {
		r.waitNotes = append(r.waitNotes, "waiting VMs are not considered: no planner given (Config.WaitingFits)")
		return
	}
	ws := slices.Clone(r.s.Waiting)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Since.Before(ws[j].Since) })
	for _, w := range ws {
		short := r.cfg.WaitingFits(w, nil, nil)
		if short == nil {
			r.waitNotes = append(r.waitNotes, fmt.Sprintf("waiting VM %s fits now: its qnuma starts it", w.Label()))
			continue
		}
		var best *candidate
		for i, v := range r.s.VMs {
			if !r.eligible[i] {
				continue
			}
			layout := r.d.VMs[i].Layout
			for _, to := range moveTargets(layout, r.s.Nodes) {
				bytes := movedBytes(v, layout, to)
				if best != nil && !fewer(bytes, v.Entry.Name, to, *best, r.s.VMs[best.vm].Entry.Name) {
					continue // asks the planner only about moves that would win
				}
				if err := r.cfg.Fits(v.Entry, to); err != nil {
					continue
				}
				if err := r.cfg.WaitingFits(w, &v.Entry, to); err != nil {
					continue
				}
				best = &candidate{vm: i, to: to, kind: KindWaiting, bytes: bytes}
			}
		}
		if best == nil {
			r.waitNotes = append(r.waitNotes, fmt.Sprintf("waiting VM %s does not fit (%s), and no single move of a VM that may move makes room for it", w.Label(), oneLine(short)))
			continue
		}
		v := r.s.VMs[best.vm]
		why := fmt.Sprintf("frees room for waiting VM %s (waiting %s; it does not fit now: %s): it fits once %s moves to %s",
			w.Label(), r.s.At.Sub(w.Since).Round(time.Second), oneLine(short), v.Entry.Name, FormatLayout(best.to))
		r.d.Move = &Move{
			VM: v.Entry.Name, QEMU: v.Entry.QEMU, From: r.d.VMs[best.vm].Layout, To: best.to,
			Kind: KindWaiting, Why: why, Bytes: best.bytes, Pages: best.bytes / pageBytes(v.Entry), PagesPerSecond: r.cfg.PagesPerSecond,
			LocalityBefore: v.LocalPercent, ForWaiting: w.Label(),
		}
		r.note(best.vm, "moved: %s", why)
		return
	}
}

// fewer orders waiting moves: fewer bytes moved, then by VM name and
// target, so that the choice does not depend on the order asked.
func fewer(bytes uint64, name string, to map[int][]int, best candidate, bestName string) bool {
	if bytes != best.bytes {
		return bytes < best.bytes
	}
	if name != bestName {
		return name < bestName
	}
	return FormatLayout(to) < FormatLayout(best.to)
}

// moveTargets are the layouts a VM of layout may move to for room: every
// guest node to one node, and each of its host nodes replaced by one it
// is not on; nodes without CPUs or memory are left out, and so is the
// layout it has.
func moveTargets(layout map[int][]int, nodes []Node) []map[int][]int {
	var out []map[int][]int
	seen := map[string]bool{FormatLayout(layout): true}
	add := func(to map[int][]int) {
		if k := FormatLayout(to); !seen[k] {
			seen[k] = true
			out = append(out, to)
		}
	}
	home := homeNodes(layout)
	for _, n := range nodes {
		if n.CPUs == 0 || n.TotalBytes == 0 {
			continue // vCPUs and guest RAM both need a home there
		}
		all := map[int][]int{}
		for g := range layout {
			all[g] = []int{n.ID}
		}
		add(all)
		if slices.Contains(home, n.ID) {
			continue
		}
		for _, h := range home {
			add(replaceNode(layout, h, n.ID))
		}
	}
	return out
}

// movedBytes is the guest RAM that moves when v goes from layout to to:
// each guest node that changes nodes moves its pages not already on its
// new ones (without guest nodes told apart: its RAM off to's nodes).
func movedBytes(v VM, layout, to map[int][]int) uint64 {
	var b uint64
	if len(v.GuestNodes) > 0 {
		for _, g := range v.GuestNodes {
			if slices.Equal(layout[g.ID], to[g.ID]) {
				continue
			}
			for n, nb := range g.RAM {
				if !slices.Contains(to[g.ID], n) {
					b += nb
				}
			}
		}
		return b
	}
	home := homeNodes(to)
	for n, nb := range v.RAM {
		if !slices.Contains(home, n) {
			b += nb
		}
	}
	return b
}

// oneLine is an error's first line (the planner's refusals go on with a
// table of each node's room).
func oneLine(err error) string {
	s := err.Error()
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
