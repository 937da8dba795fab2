package relocate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/qnuma/qnuma/affinity"
)

// GuestNode is what the ledger says of one guest node: its memory and the
// host nodes its memfd is bound to now.
type GuestNode struct {
	ID          int
	MemoryBytes uint64
	HostNodes   []int
	Policy      string // bind, preferred, interleave ("" bind)
}

// Match finds each guest node's memfd among those qemu maps: the one of its
// size whose policy names its host nodes. Two guest nodes alike (same
// size, same nodes) that are to go to different nodes cannot be told apart
// and are refused; alike ones going to the same place are taken in order.
// to gives each guest node's new nodes (absent: it stays).
func Match(nodes []GuestNode, found []Backend, to map[int][]int) ([]Part, []Backend, error) {
	used := make([]bool, len(found))
	var parts []Part
	for _, g := range nodes {
		if g.MemoryBytes == 0 {
			continue
		}
		var cands []int
		for i, b := range found {
			if !used[i] && b.Size == g.MemoryBytes && slices.Equal(b.PolicyNodes, g.HostNodes) && samePolicy(b.Policy, g.Policy) {
				cands = append(cands, i)
			}
		}
		if len(cands) == 0 {
			return nil, nil, fmt.Errorf("%w: no memfd of qemu holds guest node %d (%d bytes bound to host nodes %s): its guest RAM is not in a memory-backend-memfd, or it was changed behind qnuma's back (found: %s)",
				ErrNotMovable, g.ID, g.MemoryBytes, idList(g.HostNodes), describe(found))
		}
		for _, o := range nodes {
			if o.ID != g.ID && o.MemoryBytes == g.MemoryBytes && slices.Equal(o.HostNodes, g.HostNodes) && !slices.Equal(dest(o, to), dest(g, to)) {
				return nil, nil, fmt.Errorf("%w: guest nodes %d and %d have the same size on the same host nodes %s, so their memfds cannot be told apart: move them to the same nodes together",
					ErrNotMovable, g.ID, o.ID, idList(g.HostNodes))
			}
		}
		used[cands[0]] = true
		to, ok := to[g.ID]
		if !ok {
			continue // stays
		}
		parts = append(parts, Part{GuestNode: g.ID, Backend: found[cands[0]], Mode: mode(g.Policy, len(to)), To: to, From: g.HostNodes})
	}
	var rest []Backend
	for i, b := range found {
		if !used[i] {
			rest = append(rest, b)
		}
	}
	return parts, rest, nil
}

func dest(g GuestNode, to map[int][]int) []int {
	if t, ok := to[g.ID]; ok {
		return t
	}
	return g.HostNodes
}

// samePolicy compares numa_maps' name of a policy with qemu's.
func samePolicy(maps, qemu string) bool {
	switch qemu {
	case "", "bind":
		return maps == "bind"
	case "preferred":
		return maps == "prefer" || maps == "preferred" || maps == "preferred_many" || maps == "prefer (many)"
	case "interleave":
		return maps == "interleave"
	}
	return false
}

// mode is the mbind mode for a backend policy over n nodes.
func mode(policy string, n int) int {
	switch policy {
	case "preferred":
		if n > 1 {
			return affinity.MPOLPreferredMany
		}
		return affinity.MPOLPreferred
	case "interleave":
		return affinity.MPOLInterleave
	}
	return affinity.MPOLBind
}

func describe(bs []Backend) string {
	if len(bs) == 0 {
		return "none"
	}
	var s []string
	for _, b := range bs {
		s = append(s, fmt.Sprintf("fd %d, %d bytes, %s %s", b.FD, b.Size, b.Policy, idList(b.PolicyNodes)))
	}
	return strings.Join(s, "; ")
}
