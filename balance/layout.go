package balance

import (
	"fmt"
	"slices"
	"strings"

	"github.com/qnuma/qnuma/ledger"
)

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
