package balance

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/qnuma/qnuma/ledger"
)

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
// to its home nodes (each guest node's pages to the host nodes the ledger
// plans for it: a move in place), or, for a VM on one host node, the VM to
// the node holding most of its memory; nodes are those with room. A guest
// node under the target counts even when the VM as a whole is over it
// (its pages strayed to another node of the VM).
func localityMoves(v VM, layout map[int][]int, nodes map[int]Node, cfg Config) ([]candidate, string) {
	home := homeNodes(layout)
	worst := v.worstLocal()
	gain := 100 - worst
	if gain < cfg.MinGain {
		return nil, fmt.Sprintf("%s, under %.0f%%, but moving it gains %.1f points, under %.1f (--min-gain)", localText(v), cfg.Locality, gain, cfg.MinGain)
	}
	var out []candidate
	var refused []string
	// Home: the pages elsewhere come back to each guest node's host nodes.
	to, away := v.strayTo(home)
	ok := true
	for _, h := range home {
		n, known := nodes[h]
		if !known {
			ok = false
			refused = append(refused, fmt.Sprintf("home node %d is over %.0f%% use (now or at the previous sample)", h, cfg.NodeUse))
			break
		}
		if after := n.MemPercent() + pct(to[h], n.TotalBytes); after > cfg.NodeUse {
			ok = false
			refused = append(refused, fmt.Sprintf("home node %d would be at %.1f%% memory use", h, after))
		}
	}
	if ok && away > 0 {
		why := fmt.Sprintf("%.1f%% of its memory is on its home nodes, under %.0f%%: its memory moves home", v.LocalPercent, cfg.Locality)
		if g := v.worstGuestNode(); g != nil && g.LocalPercent < cfg.Locality {
			why = fmt.Sprintf("guest node %d has %.1f%% of its memory on host node%s %s, under %.0f%% (the VM as a whole %.1f%%): its memory moves home",
				g.ID, g.LocalPercent, plural(len(g.HomeNodes)), nodeList(g.HomeNodes), cfg.Locality, v.LocalPercent)
		}
		out = append(out, candidate{
			to: replaceNode(layout, -1, -1) /* a copy: the same nodes */, kind: KindLocality, gain: gain, bytes: away, why: why,
		})
	}
	// Follow the memory: the node other than its home with most of it.
	if len(home) == 1 && v.LocalPercent < cfg.Locality {
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
	return nil, fmt.Sprintf("%s, under %.0f%%, and no move restores it: %s", localText(v), cfg.Locality, strings.Join(refused, ", "))
}

// localText says where v's memory is: on its home nodes as a whole, and
// for the guest node furthest from its own host nodes when it is further.
func localText(v VM) string {
	s := fmt.Sprintf("%.1f%% of its memory on its home nodes", v.LocalPercent)
	if g := v.worstGuestNode(); g != nil {
		s += fmt.Sprintf(", guest node %d %.1f%% on host node%s %s", g.ID, g.LocalPercent, plural(len(g.HomeNodes)), nodeList(g.HomeNodes))
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// nodeList writes node ids as "0,2".
func nodeList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
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
