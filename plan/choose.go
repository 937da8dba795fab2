package plan

import (
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

	var best *candidate
	considered := map[string]bool{}
	for _, seed := range usable {
		if seed.MemoryOnly {
			continue
		}
		c := grow(seed, usable, spec)
		if c == nil || considered[c.key] {
			continue
		}
		considered[c.key] = true
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

	ch := &choice{set: best.set, lay: best.lay}
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

// candidate is one node set that holds the VM.
type candidate struct {
	set      []*nodeRoom // growth order: the seed first
	lay      *layout
	key      string // sorted node ids
	nearDist int    // distance from NearNode to the nearest node of the set
	spanDist int    // the largest distance between two nodes of the set
	score    float64
}

func newCandidate(set []*nodeRoom, lay *layout, near *nodeRoom) *candidate {
	c := &candidate{set: set, lay: lay, key: idList(setIDs(set))}
	var memGiB, cpus float64
	for i, a := range set {
		for _, b := range set[i+1:] {
			c.spanDist = max(c.spanDist, distance(a, b))
		}
		if near != nil {
			d := distance(near, a)
			if i == 0 || d < c.nearDist {
				c.nearDist = d
			}
		}
		memGiB += float64(a.memCap) / (1 << 30)
		cpus += float64(a.CPUs - a.Load)
	}
	// numad's score: free memory times free CPU; a loaded node still
	// counts a little so that memory decides between busy nodes.
	c.score = memGiB * max(cpus, 0.5)
	return c
}

// better reports whether c beats d.
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
	return slices.Compare(sortedIDs(c.set), sortedIDs(d.set)) < 0
}

// grow builds seed's candidate: it adds the nearest usable node that
// supplies what is short (CPUs, else memory) until the set holds the VM,
// then, for --guest-nodes or --spread, more nodes. nil when it cannot.
func grow(seed *nodeRoom, usable []*nodeRoom, spec Spec) *candidate {
	var near *nodeRoom
	if spec.HasNearNode {
		near = roomOf(usable, spec.NearNode)
		if near == nil {
			// The device's node is not usable; still prefer what is near it.
			near = &nodeRoom{Room: Room{Node: spec.NearNode}, dist: nil}
			for _, r := range usable {
				if d, ok := r.dist[spec.NearNode]; ok {
					if near.dist == nil {
						near.dist = map[int]int{}
					}
					near.dist[r.Node] = d
				}
			}
		}
	}
	set := []*nodeRoom{seed}
	in := map[int]bool{seed.Node: true}
	distTo := map[int]int{} // summed distance from each node to the set
	for _, r := range usable {
		distTo[r.Node] = distance(seed, r)
	}
	cpus, mem := seed.CPUs, seed.memCap
	type prefix struct {
		n   int
		lay *layout
	}
	var fits []prefix
	for {
		cpuShort, memShort := cpus < spec.VCPUs, mem < spec.MemoryBytes
		if !cpuShort && !memShort {
			if lay, _ := fit(set, spec); lay != nil {
				fits = append(fits, prefix{len(set), lay})
			}
		}
		if len(fits) > 0 && !spec.Spread && (spec.GuestNodes == 0 || len(set) == spec.GuestNodes) {
			break
		}
		if spec.GuestNodes > 0 && len(set) >= spec.GuestNodes {
			break
		}
		cpuNodes := 0
		for _, r := range set {
			if !r.MemoryOnly {
				cpuNodes++
			}
		}
		wantCPU := cpuShort || (len(fits) > 0 && spec.Spread)
		if wantCPU && cpuNodes >= spec.VCPUs && spec.GuestNodes == 0 {
			break // every vCPU already has its own node
		}
		// Past the fit (more guest nodes asked), nodes with CPUs come first.
		more := !cpuShort && !memShort
		var next *nodeRoom
		for _, r := range usable {
			if in[r.Node] || (wantCPU && r.MemoryOnly) {
				continue
			}
			if next == nil || (more && next.MemoryOnly && !r.MemoryOnly) ||
				(!(more && r.MemoryOnly && !next.MemoryOnly) && nearer(r, next, distTo, memShort)) {
				next = r
			}
		}
		if next == nil {
			break
		}
		set = append(set, next)
		in[next.Node] = true
		cpus += next.CPUs
		mem += next.memCap
		for _, r := range usable {
			distTo[r.Node] += distance(next, r)
		}
	}
	if len(fits) == 0 {
		return nil
	}
	pick := fits[len(fits)-1]
	if spec.GuestNodes > 0 && pick.n != spec.GuestNodes {
		return nil
	}
	if spec.Spread {
		// The most nodes, preferring a count that splits the vCPUs evenly.
		for i := len(fits) - 1; i >= 0; i-- {
			if spec.VCPUs%cpuNodeCount(set[:fits[i].n]) == 0 {
				pick = fits[i]
				break
			}
		}
	}
	return newCandidate(set[:pick.n], pick.lay, near)
}

// nearer orders growth: the smallest summed distance to the set, then the
// most of what is short, then the lowest id.
func nearer(a, b *nodeRoom, distTo map[int]int, memShort bool) bool {
	if distTo[a.Node] != distTo[b.Node] {
		return distTo[a.Node] < distTo[b.Node]
	}
	if memShort && a.memCap != b.memCap {
		return a.memCap > b.memCap
	}
	if a.CPUs != b.CPUs {
		return a.CPUs > b.CPUs
	}
	if a.memCap != b.memCap {
		return a.memCap > b.memCap
	}
	return a.Node < b.Node
}

func cpuNodeCount(set []*nodeRoom) int {
	n := 0
	for _, r := range set {
		if !r.MemoryOnly {
			n++
		}
	}
	return max(n, 1)
}

func setIDs(set []*nodeRoom) []int {
	ids := make([]int, len(set))
	for i, r := range set {
		ids[i] = r.Node
	}
	return ids
}

func sortedIDs(set []*nodeRoom) []int {
	ids := setIDs(set)
	slices.Sort(ids)
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
