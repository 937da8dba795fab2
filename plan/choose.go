package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"k8s.io/utils/cpuset"
)

// autoChoice finds the fewest nodes (the most with Spread) whose room holds
// both the vCPUs and the memory. Each node with CPUs seeds a set that grows
// by the nearest node supplying what is short; among the sets of the chosen
// size the nearest to NearNode, then the most compact, then the roomiest wins.
func autoChoice(all []*nodeRoom, spec Spec) (*choice, error) {
	var usable []*nodeRoom
	var cpus, maxCPUs int
	var mem, maxMem uint64
	seeds := 0
	for _, r := range all {
		if !r.usable() {
			continue
		}
		usable = append(usable, r)
		mem += r.memCap
		if !r.MemoryOnly {
			seeds++
			cpus += r.CPUs
			maxCPUs = max(maxCPUs, r.CPUs)
			maxMem = max(maxMem, r.memCap)
		}
	}
	unit := cpuUnit(spec)
	if seeds == 0 {
		return nil, noSeed(all, spec)
	}
	switch {
	case cpus < spec.VCPUs && !spec.Dedicated:
		return nil, fitError(spec, all, "%d vCPUs asked, the usable nodes have %d %s in all (--overcommit lets vCPUs share them)", spec.VCPUs, cpus, unit)
	case cpus < spec.VCPUs:
		return nil, fitError(spec, all, "%d vCPUs asked, the usable nodes have %d %s in all", spec.VCPUs, cpus, unit)
	case mem < spec.MemoryBytes:
		return nil, fitError(spec, all, "%s asked, the usable nodes have %s free in all", sizeString(spec.MemoryBytes), sizeString(mem))
	case spec.GuestNodes > len(usable):
		return nil, fitError(spec, all, "%d guest nodes asked, only %d host nodes are usable", spec.GuestNodes, len(usable))
	}

	s := newSearch(usable, spec)
	var best *candidate
	considered := map[string]bool{}
	for i, seed := range usable {
		if seed.MemoryOnly {
			continue
		}
		n, ok := s.grow(i)
		if !ok {
			continue
		}
		key := s.key(n)
		if considered[key] {
			continue
		}
		considered[key] = true
		c := s.candidate(n, key)
		if best == nil || c.better(best, spec) {
			best = c
		}
	}
	if best == nil {
		why := "no set of usable nodes holds both"
		if spec.GuestNodes > 0 {
			why = fmt.Sprintf("no set of %d usable nodes holds both", spec.GuestNodes)
		}
		return nil, fitError(spec, all, "%s %d vCPUs and %s%s", why, spec.VCPUs, sizeString(spec.MemoryBytes), topologyNote(spec))
	}

	lay, why := fit(best.set, spec)
	if lay == nil {
		// grow saw this very set, in this order, fit.
		panic("plan: the chosen node set does not fit: " + why)
	}
	ch := &choice{set: best.set, lay: lay}
	ids := setIDs(best.set)
	switch {
	case len(best.set) == 1:
		r := best.set[0]
		ch.reasons = append(ch.reasons, fmt.Sprintf("Node %d alone holds %d vCPUs and %s (its room: %d %s, %s), so the VM stays on one node.",
			r.Node, spec.VCPUs, sizeString(spec.MemoryBytes), r.CPUs, unit, sizeString(r.memCap)))
	case spec.Spread:
		ch.reasons = append(ch.reasons, fmt.Sprintf("--spread asked for more nodes: the VM spans nodes %s, the most that hold it with vCPUs split as evenly as they can be.", idList(ids)))
	case spec.GuestNodes > 0:
		ch.reasons = append(ch.reasons, fmt.Sprintf("--guest-nodes asked for %d guest nodes, one per host node: nodes %s.", spec.GuestNodes, idList(ids)))
	case maxCPUs < spec.VCPUs:
		ch.reasons = append(ch.reasons, fmt.Sprintf("No single node has room for %d vCPUs (the most is %d %s), so the VM spans nodes %s.",
			spec.VCPUs, maxCPUs, unit, idList(ids)))
	default:
		ch.reasons = append(ch.reasons, fmt.Sprintf("No single node has room for %s (the most is %s), so the VM spans nodes %s although its vCPUs fit one node.",
			sizeString(spec.MemoryBytes), sizeString(maxMem), idList(ids)))
	}
	if len(considered) > 1 {
		var by []string
		if spec.HasNearNode {
			by = append(by, fmt.Sprintf("nearness to node %d (the device's node)", spec.NearNode))
		}
		if len(best.set) > 1 && knownDistances(best.set) {
			by = append(by, fmt.Sprintf("the shortest distance between its nodes (%d)", best.spanDist))
		}
		by = append(by, "the most room")
		ch.reasons = append(ch.reasons, fmt.Sprintf("Of %d candidate node sets this one was chosen for %s.", len(considered), strings.Join(by, ", then ")))
	} else if spec.HasNearNode {
		ch.reasons = append(ch.reasons, fmt.Sprintf("Node %d (the device's node) was preferred; it was the only candidate set.", spec.NearNode))
	}
	return ch, nil
}

// noSeed says which is short when no node has both a usable CPU and room
// for memory: CPUs, memory, or only their pairing on one node.
func noSeed(all []*nodeRoom, spec Spec) error {
	var anyCPU, anyMem bool
	for _, r := range all {
		if r.excluded {
			continue
		}
		anyCPU = anyCPU || !r.MemoryOnly
		anyMem = anyMem || r.memCap > 0
	}
	mem := "free memory"
	if spec.HugepageBytes > 0 {
		mem = "free " + sizeString(spec.HugepageBytes) + " hugepages"
	}
	switch {
	case !anyCPU && !anyMem:
		return fitError(spec, all, "no node has a usable CPU or %s", mem)
	case !anyCPU:
		return fitError(spec, all, "CPUs are short: no node has a usable CPU left (offline, not allowed, or held by other VMs), though some have %s", mem)
	case !anyMem:
		return fitError(spec, all, "memory is short: no node has %s", mem)
	}
	return fitError(spec, all, "no node has both a usable CPU and %s", mem)
}

// search grows the candidate node sets of one autoChoice. Everything the
// growth compares is worked out once: the distance between every two usable
// nodes, each node's distance from NearNode, the order ties are broken in,
// each node's CPUs and memory; each seed's set then grows in one pass over
// the nodes per step, and a set's fit is checked without laying it out.
type search struct {
	spec  Spec
	nodes []*nodeRoom // the usable nodes, in host order; i below is an index here
	n     int
	dist  []int // dist[i*n+j]: distance between nodes i and j (see distances)
	nearD []int // distance from NearNode to node i; nil without one
	// rank orders ties of summed distance: by CPUs, then memory, then id
	// (rank[0]); by memory first while memory is short (rank[1]).
	rank [2][]int32
	bit  []int // node i's bit in a set's key: its id's rank among the usable
	// The nodes' figures, laid out for the growth loop.
	cpus    []int
	memCap  []uint64
	memOnly []bool

	// One growth at a time: the set in growth order, summed distances to
	// it, membership, the prefixes that fit and their CPU node counts.
	order    []int
	rest     []int // the usable nodes not in the set
	distTo   []int
	setKey   []byte // the set, as key() writes it
	fits     []int
	fitNodes []int
	scratch  []*nodeRoom
	keyBuf   []byte
	// grown holds sets earlier growths went through whose growth from
	// there hung on the set alone (see remember).
	grown map[string]struct{}
}

func newSearch(usable []*nodeRoom, spec Spec) *search {
	n := len(usable)
	s := &search{
		spec: spec, nodes: usable, n: n,
		bit:  make([]int, n),
		cpus: make([]int, n), memCap: make([]uint64, n), memOnly: make([]bool, n),
		order: make([]int, 0, n), rest: make([]int, 0, n), distTo: make([]int, n),
		setKey: make([]byte, (n+7)/8), keyBuf: make([]byte, (n+7)/8),
		grown: map[string]struct{}{},
	}
	for i, r := range usable {
		s.cpus[i], s.memCap[i], s.memOnly[i] = r.CPUs, r.memCap, r.MemoryOnly
	}
	if spec.HasNearNode {
		near := roomOf(usable, spec.NearNode)
		if near == nil {
			// The device's node is not usable; still prefer what is near it.
			near = &nodeRoom{Room: Room{Node: spec.NearNode}}
			for _, r := range usable {
				if d, ok := r.dist[spec.NearNode]; ok {
					if near.dist == nil {
						near.dist = map[int]int{}
					}
					near.dist[r.Node] = d
				}
			}
		}
		s.nearD = make([]int, n)
		for i, r := range usable {
			s.nearD[i] = distance(near, r)
		}
	}
	byID := make([]int, n)
	for i := range byID {
		byID[i] = i
	}
	slices.SortStableFunc(byID, func(a, b int) int { return cmp.Compare(usable[a].Node, usable[b].Node) })
	for rank, i := range byID {
		s.bit[i] = rank
	}
	for k, memFirst := range []bool{false, true} {
		order := slices.Clone(byID)
		slices.SortStableFunc(order, func(a, b int) int {
			ra, rb := usable[a], usable[b]
			if memFirst && ra.memCap != rb.memCap {
				return -cmp.Compare(ra.memCap, rb.memCap)
			}
			if ra.CPUs != rb.CPUs {
				return -cmp.Compare(ra.CPUs, rb.CPUs)
			}
			if ra.memCap != rb.memCap {
				return -cmp.Compare(ra.memCap, rb.memCap)
			}
			if ra.Node != rb.Node {
				return cmp.Compare(ra.Node, rb.Node)
			}
			return cmp.Compare(a, b) // the same id: host order
		})
		s.rank[k] = make([]int32, n)
		for rank, i := range order {
			s.rank[k][i] = int32(rank)
		}
	}
	return s
}

// distances fills s.dist as distance() would, the first time a set grows
// past its seed (a VM that fits on one node never asks).
func (s *search) distances() {
	if s.dist != nil {
		return
	}
	n := s.n
	s.dist = make([]int, n*n)
	for i, a := range s.nodes {
		for j, b := range s.nodes[:i] {
			d := max(oneWay(a, b), oneWay(b, a))
			if a.Node == b.Node {
				d = 10
			}
			s.dist[i*n+j], s.dist[j*n+i] = d, d
		}
		s.dist[i*n+i] = 10
	}
}

// grow grows seed's set: it adds the nearest usable node that supplies
// what is short (CPUs, else memory) until the set holds the VM, then, for
// --guest-nodes or --spread, more nodes. It returns how many nodes of
// s.order the candidate takes; false when seed has none, or when its set
// became one an earlier seed's set had been before any fit: the rest of the
// growth would be that seed's again, ending in a candidate already
// considered (or in none).
func (s *search) grow(seed int) (int, bool) {
	spec, n := s.spec, s.n
	s.order = append(s.order[:0], seed)
	s.rest = s.rest[:0]
	for r := range n {
		if r != seed {
			s.rest = append(s.rest, r)
		}
	}
	clear(s.setKey)
	s.setKey[s.bit[seed]/8] |= 1 << (s.bit[seed] % 8)
	cpus, mem := s.cpus[seed], s.memCap[seed]
	cpuNodes := 0
	if !s.memOnly[seed] {
		cpuNodes++
	}
	s.fits, s.fitNodes = s.fits[:0], s.fitNodes[:0]
	lastDep := 0 // the largest set whose fit hung on its order
	added := -1  // the node added last, whose distances distTo lacks
	for {
		size := len(s.order)
		if size > 1 && len(s.fits) == 0 {
			if _, ok := s.grown[string(s.setKey)]; ok {
				return 0, false
			}
		}
		cpuShort, memShort := cpus < spec.VCPUs, mem < spec.MemoryBytes
		if !cpuShort && !memShort {
			ok, free := s.fit()
			if !free {
				lastDep = size
			}
			if ok {
				s.fits = append(s.fits, size)
				s.fitNodes = append(s.fitNodes, cpuNodes)
			}
		}
		fits := len(s.fits) > 0
		if fits && !spec.Spread && (spec.GuestNodes == 0 || size == spec.GuestNodes) {
			break
		}
		if spec.GuestNodes > 0 && size >= spec.GuestNodes {
			break
		}
		wantCPU := cpuShort || (fits && spec.Spread)
		if wantCPU && cpuNodes >= spec.VCPUs && spec.GuestNodes == 0 {
			break // every vCPU already has its own node
		}
		// Past the fit (more guest nodes asked), nodes with CPUs come first.
		more := !cpuShort && !memShort
		rank := s.rank[0]
		if memShort {
			rank = s.rank[1]
		}
		var row []int
		if added < 0 {
			s.distances()
			copy(s.distTo, s.dist[seed*n:seed*n+n])
		} else {
			row = s.dist[added*n : added*n+n]
		}
		next, at, nextLate, nextDist := -1, -1, false, 0
		for i, r := range s.rest {
			d := s.distTo[r]
			if row != nil {
				d += row[r]
				s.distTo[r] = d
			}
			if wantCPU && s.memOnly[r] {
				continue
			}
			late := more && s.memOnly[r]
			if next < 0 || (nextLate && !late) ||
				(late == nextLate && (d < nextDist || (d == nextDist && rank[r] < rank[next]))) {
				next, at, nextLate, nextDist = r, i, late, d
			}
		}
		added = next
		if next < 0 {
			break
		}
		s.order = append(s.order, next)
		s.rest[at] = s.rest[len(s.rest)-1] // the scan's order does not matter
		s.rest = s.rest[:len(s.rest)-1]
		s.setKey[s.bit[next]/8] |= 1 << (s.bit[next] % 8)
		cpus += s.cpus[next]
		mem += s.memCap[next]
		if !s.memOnly[next] {
			cpuNodes++
		}
	}
	s.remember(lastDep)
	if len(s.fits) == 0 {
		return 0, false
	}
	last := len(s.fits) - 1
	pick := s.fits[last]
	if spec.GuestNodes > 0 && pick != spec.GuestNodes {
		return 0, false
	}
	if spec.Spread {
		// The most nodes, preferring a count that splits the vCPUs evenly.
		for i := last; i >= 0; i-- {
			if spec.VCPUs%max(s.fitNodes[i], 1) == 0 {
				pick = s.fits[i]
				break
			}
		}
	}
	return pick, true
}

// remember keeps the sets the growth just done went through before its
// first fit and after the last fit that hung on the nodes' order: what
// followed each of them hung on the set alone.
func (s *search) remember(lastDep int) {
	until := len(s.order)
	if len(s.fits) > 0 {
		until = s.fits[0]
	}
	clear(s.keyBuf)
	for t, r := range s.order[:until] {
		s.keyBuf[s.bit[r]/8] |= 1 << (s.bit[r] % 8)
		if size := t + 1; size > 1 && size > lastDep {
			s.grown[string(s.keyBuf)] = struct{}{}
		}
	}
}

// fit reports whether the set grown so far holds the VM; its CPUs and
// memory are known to add up. When every node has room for its share of
// an even memory split, it does; otherwise fit() lays the set out to tell.
// free is whether the answer would be the same in any order of the set:
// every node has room for the larger share.
func (s *search) fit() (ok, free bool) {
	k := uint64(len(s.order))
	g := granule(s.spec)
	units := s.spec.MemoryBytes / g
	// The user's guest topology keeps sockets whole on a node, which an
	// even memory split says nothing about: lay such sets out.
	if units >= k && s.spec.Topology == nil {
		q, rem := units/k, units%k
		even, roomy := true, true
		for i, r := range s.order {
			share := q
			if uint64(i) < rem {
				share++
			}
			if share*g > s.memCap[r] {
				even = false
				break
			}
			if rem > 0 && (q+1)*g > s.memCap[r] {
				roomy = false
			}
		}
		if even {
			return true, roomy
		}
	}
	s.scratch = s.scratch[:0]
	for _, r := range s.order {
		s.scratch = append(s.scratch, s.nodes[r])
	}
	lay, _ := fit(s.scratch, s.spec)
	return lay != nil, false
}

// key names the set of the first k nodes of s.order, whatever their order.
func (s *search) key(k int) string {
	clear(s.keyBuf)
	for _, r := range s.order[:k] {
		b := s.bit[r]
		s.keyBuf[b/8] |= 1 << (b % 8)
	}
	return string(s.keyBuf)
}

// candidate is one node set that holds the VM.
type candidate struct {
	set      []*nodeRoom // growth order: the seed first
	key      string      // the set's nodes, by the rank of their ids
	nearDist int         // distance from NearNode to the nearest node of the set
	spanDist int         // the largest distance between two nodes of the set
	score    float64
}

// candidate is the set of the first k nodes of s.order.
func (s *search) candidate(k int, key string) *candidate {
	order := s.order[:k]
	c := &candidate{set: make([]*nodeRoom, k), key: key}
	var memGiB, cpus float64
	for i, a := range order {
		c.set[i] = s.nodes[a]
		for _, b := range order[i+1:] {
			c.spanDist = max(c.spanDist, s.dist[a*s.n+b])
		}
		if s.nearD != nil {
			if d := s.nearD[a]; i == 0 || d < c.nearDist {
				c.nearDist = d
			}
		}
		memGiB += float64(s.memCap[a]) / (1 << 30)
		cpus += float64(s.nodes[a].CPUs - s.nodes[a].Load)
	}
	// numad's score: free memory times free CPU; a loaded node still
	// counts a little so that memory decides between busy nodes.
	c.score = memGiB * max(cpus, 0.5)
	return c
}

// better reports whether c beats d: the fewer nodes (the more with Spread),
// the nearer to NearNode, the more compact, the roomier, the lower ids.
func (c *candidate) better(d *candidate, spec Spec) bool {
	if len(c.set) != len(d.set) {
		if spec.Spread {
			return len(c.set) > len(d.set)
		}
		return len(c.set) < len(d.set)
	}
	if c.nearDist != d.nearDist {
		return c.nearDist < d.nearDist
	}
	if c.spanDist != d.spanDist {
		return c.spanDist < d.spanDist
	}
	if c.score != d.score {
		return c.score > d.score
	}
	// Sets of one size: the one holding the lowest id that is in only one
	// of them has the lower sorted ids.
	for i := range len(c.key) {
		if x := c.key[i] ^ d.key[i]; x != 0 {
			return c.key[i]&(x&-x) != 0
		}
	}
	return false
}

func setIDs(set []*nodeRoom) []int {
	ids := make([]int, len(set))
	for i, r := range set {
		ids[i] = r.Node
	}
	return ids
}

// idList writes node ids as a list ("0-1,4").
func idList(ids []int) string {
	return cpuset.New(ids...).String()
}

// nodesPhrase is "node 3" or "nodes 0-1", for sentences.
func nodesPhrase(nodes cpuset.CPUSet) string {
	if nodes.Size() == 1 {
		return "node " + nodes.String()
	}
	return "nodes " + nodes.String()
}
