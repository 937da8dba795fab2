package balance

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/numastat"
)

// GuestNodeRAM is one guest node's RAM as a sample found it: the pages of
// its memfd per host node, against the host nodes the ledger plans for it.
type GuestNodeRAM struct {
	ID        int
	HomeNodes []int
	// RAM is its resident RAM per host node.
	RAM map[int]uint64
	// LocalPercent is the share of RAM on HomeNodes, 100 with none
	// resident.
	LocalPercent float64
}

// Bytes is all of its resident RAM.
func (g GuestNodeRAM) Bytes() uint64 {
	var t uint64
	for _, b := range g.RAM {
		t += b
	}
	return t
}

// Away is its resident RAM outside its home nodes.
func (g GuestNodeRAM) Away() uint64 {
	var t uint64
	for n, b := range g.RAM {
		if !slices.Contains(g.HomeNodes, n) {
			t += b
		}
	}
	return t
}

// memfdFile is how numa_maps names a memfd mapping ("/memfd:NAME (deleted)").
const memfdFile = "/memfd:"

// MatchGuestNodes finds each guest node of e among qemu's mappings, as
// relocate.Match finds its memfd: a shared memfd mapping of the guest
// node's size (rounded up to its page size) whose memory policy names the
// guest node's host nodes. Guest nodes alike (same size, same host nodes)
// are taken in order: they have the same home, so their locality is
// judged alike whichever is which. why says why nothing is returned: an
// entry without a guest layout, or a guest node whose memfd is not
// found (RAM that is not in memfd backends, or a move under way).
func MatchGuestNodes(e ledger.Entry, ms []numastat.Mapping) (out []GuestNodeRAM, why string) {
	if len(e.GuestNodes) == 0 {
		return nil, "the ledger has no guest layout for it: its locality is judged as a whole"
	}
	used := make([]bool, len(ms))
	for _, g := range e.GuestNodes {
		if g.MemoryBytes == 0 {
			continue
		}
		want := cpuset.New(g.HostNodes...)
		found := -1
		for i, m := range ms {
			if !used[i] && strings.HasPrefix(m.File, memfdFile) && m.Size() > 0 && m.Size() == roundUp(g.MemoryBytes, m.PageSize) &&
				m.PolicyNodes.Equals(want) && policyIs(m.Policy, g.Policy) {
				found = i
				break
			}
		}
		if found < 0 {
			return nil, fmt.Sprintf("no memfd mapping of qemu holds guest node %d (%d bytes bound to host nodes %s): its locality is judged as a whole", g.ID, g.MemoryBytes, want)
		}
		used[found] = true
		r := GuestNodeRAM{ID: g.ID, HomeNodes: slices.Clone(g.HostNodes), RAM: ms[found].NodeBytes(), LocalPercent: 100}
		if all := r.Bytes(); all > 0 {
			r.LocalPercent = 100 * float64(all-r.Away()) / float64(all)
		}
		out = append(out, r)
	}
	return out, ""
}

// policyIs compares numa_maps' name of a policy with the ledger's.
func policyIs(maps, ledger string) bool {
	switch ledger {
	case "", "bind":
		return maps == "bind"
	case "preferred":
		return strings.HasPrefix(maps, "prefer")
	case "interleave":
		return maps == "interleave"
	}
	return false
}

func roundUp(n, page uint64) uint64 {
	if page == 0 {
		return n
	}
	return (n + page - 1) / page * page
}

// worstLocal is the lowest locality of v: of its guest nodes where they
// were told apart, else of the VM as a whole.
func (v VM) worstLocal() float64 {
	w := v.LocalPercent
	for _, g := range v.GuestNodes {
		w = min(w, g.LocalPercent)
	}
	return w
}

// worstGuestNode is the guest node of v with the lowest locality, nil when
// none is under the VM's own.
func (v VM) worstGuestNode() *GuestNodeRAM {
	var w *GuestNodeRAM
	for i := range v.GuestNodes {
		g := &v.GuestNodes[i]
		if g.LocalPercent < v.LocalPercent && (w == nil || g.LocalPercent < w.LocalPercent) {
			w = g
		}
	}
	return w
}

// strayTo is the RAM that goes home when every guest node of v is moved
// in place, per host node it goes to (spread over a guest node's host
// nodes), and in all. Without guest nodes told apart it is the VM's RAM
// off its home nodes, spread over them.
func (v VM) strayTo(home []int) (map[int]uint64, uint64) {
	to := map[int]uint64{}
	var all uint64
	spread := func(b uint64, nodes []int) {
		if len(nodes) == 0 || b == 0 {
			return
		}
		all += b
		for _, n := range nodes {
			to[n] += b / uint64(len(nodes))
		}
	}
	if len(v.GuestNodes) > 0 {
		for _, g := range v.GuestNodes {
			spread(g.Away(), g.HomeNodes)
		}
		return to, all
	}
	var away uint64
	for n, b := range v.RAM {
		if !slices.Contains(home, n) {
			away += b
		}
	}
	spread(away, home)
	return to, all
}
