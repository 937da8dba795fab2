package plan

// The planner's search as it was before it was made incremental (issue 16),
// kept as the reference the differential test (search_diff_test.go) holds
// the new search to: every plan and every error must be the same. Do not
// change it to follow the new code; change it only when plans are meant to
// change, together with the golden plans.

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/topology"
)

// refAutoChoice finds the fewest nodes (the most with Spread) whose room holds
// both the vCPUs and the memory. Each node with CPUs seeds a set that grows
// by the nearest node supplying what is short; among the sets of the chosen
// size the nearest to NearNode, then the most compact, then the roomiest wins.
func refAutoChoice(all []*nodeRoom, spec Spec) (*choice, error) {
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

	var best *refCandidate
	considered := map[string]bool{}
	for _, seed := range usable {
		if seed.MemoryOnly {
			continue
		}
		c := refGrow(seed, usable, spec)
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
		return nil, fitError(spec, all, "%s %d vCPUs and %s", why, spec.VCPUs, sizeString(spec.MemoryBytes))
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

// refCandidate is one node set that holds the VM.
type refCandidate struct {
	set      []*nodeRoom // growth order: the seed first
	lay      *layout
	key      string // sorted node ids
	nearDist int    // distance from NearNode to the nearest node of the set
	spanDist int    // the largest distance between two nodes of the set
	score    float64
}

func refNewCandidate(set []*nodeRoom, lay *layout, near *nodeRoom) *refCandidate {
	c := &refCandidate{set: set, lay: lay, key: idList(setIDs(set))}
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
func (c *refCandidate) better(d *refCandidate, spec Spec) bool {
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

// refGrow builds seed's refCandidate: it adds the nearest usable node that
// supplies what is short (CPUs, else memory) until the set holds the VM,
// then, for --guest-nodes or --spread, more nodes. nil when it cannot.
func refGrow(seed *nodeRoom, usable []*nodeRoom, spec Spec) *refCandidate {
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
				(!(more && r.MemoryOnly && !next.MemoryOnly) && refNearer(r, next, distTo, memShort)) {
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
	return refNewCandidate(set[:pick.n], pick.lay, near)
}

// refNearer orders growth: the smallest summed distance to the set, then the
// most of what is short, then the lowest id.
func refNearer(a, b *nodeRoom, distTo map[int]int, memShort bool) bool {
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

// refRooms works out every node's room for spec, given the VMs already placed.
func refRooms(host *topology.Host, spec Spec, placed []Placed) []*nodeRoom {
	// A shared VM may float over any CPU but another VM's dedicated ones; a
	// dedicated VM's CPUs must be free of every other VM's threads.
	var taken []cpuset.CPUSet
	promised := map[int]uint64{}      // ordinary memory still to be taken
	promisedPages := map[int]uint64{} // hugepages of spec's size still to be taken
	load := map[int]int{}
	for _, p := range placed {
		taken = append(taken, p.DedicatedCPUs)
		if spec.Dedicated {
			taken = append(taken, p.CPUs)
		}
		for n := range p.MemoryBytes {
			switch {
			case p.HugepageBytes == 0:
				promised[n] += p.untouched(n)
			case p.HugepageBytes == spec.HugepageBytes:
				promisedPages[n] += (p.untouched(n) + p.HugepageBytes - 1) / p.HugepageBytes
			}
			// Hugepages of another size come from their own pool, which
			// MemFree already lacks: they take nothing this VM could use.
		}
		for n, v := range p.VCPUs {
			load[n] += v
		}
	}
	dedicated := cpuset.New().Union(taken...)

	siblings := make(map[int]cpuset.CPUSet, len(host.CPUs))
	for _, c := range host.CPUs {
		siblings[c.ID] = c.Siblings
	}
	g := granule(spec)

	out := make([]*nodeRoom, 0, len(host.Nodes))
	for _, n := range host.Nodes {
		r := &nodeRoom{Room: Room{Node: n.ID, Load: load[n.ID]}, dist: n.Distances}
		free := n.CPUs.Intersection(host.OnlineCPUs).Intersection(host.Allowed.CPUs).Difference(dedicated)
		r.FreeCPUs = free
		r.cores = refGroupCores(free, siblings)
		if spec.PreferHT {
			r.CPUs = free.Size()
		} else {
			r.CPUs = len(r.cores)
		}
		if spec.Overcommit && r.CPUs > 0 {
			r.CPUs = max(r.CPUs, spec.VCPUs) // any node with a CPU holds every vCPU
		}
		if spec.MaxVCPUsPerNode > 0 && r.CPUs > spec.MaxVCPUsPerNode {
			r.CPUs = spec.MaxVCPUsPerNode
		}
		r.MemoryOnly = r.CPUs == 0

		avail := n.MemFree + n.InactiveFile
		if p := promised[n.ID]; p < avail {
			r.MemoryBytes = avail - p
		}
		if spec.HugepageBytes > 0 {
			for _, hp := range n.Hugepages {
				if hp.SizeBytes == spec.HugepageBytes && hp.Free > promisedPages[n.ID] {
					r.Hugepages = hp.Free - promisedPages[n.ID]
				}
			}
			r.memCap = r.Hugepages * spec.HugepageBytes
		} else {
			r.memCap = r.MemoryBytes / g * g
		}

		r.excluded = (n.ID >= qemuMaxNodes && !spec.BindOnly) || !host.Allowed.Mems.Contains(n.ID)
		switch {
		case n.ID >= qemuMaxNodes && !spec.BindOnly:
			r.Unusable = fmt.Sprintf("QEMU's host-nodes= takes node ids below %d", qemuMaxNodes)
		case !host.Allowed.Mems.Contains(n.ID):
			r.Unusable = "memory not allowed to qnuma"
		case r.memCap == 0 && spec.HugepageBytes > 0:
			r.Unusable = fmt.Sprintf("no free %s hugepages", sizeString(spec.HugepageBytes))
		case r.memCap == 0:
			r.Unusable = "no free memory"
		case r.MemoryOnly && !spec.AllowMemoryOnly && n.CPUs.Size() > 0:
			r.Unusable = "no usable CPU (offline, not allowed, or dedicated to other VMs)"
			if spec.Dedicated {
				r.Unusable = "no usable CPU (offline, not allowed, or in use by other VMs' threads)"
			}
		case r.MemoryOnly && !spec.AllowMemoryOnly:
			r.Unusable = "memory-only node (see --allow-memory-only-nodes)"
		}
		out = append(out, r)
	}
	return out
}

// refGroupCores groups free CPUs by thread-sibling set. Cores with more free
// threads come first, so dedicated thread pairs land on whole cores.
func refGroupCores(free cpuset.CPUSet, siblings map[int]cpuset.CPUSet) []core {
	seen := map[int]bool{}
	var cores []core
	for _, cpu := range free.List() {
		if seen[cpu] {
			continue
		}
		sib, ok := siblings[cpu]
		if !ok {
			sib = cpuset.New(cpu)
		}
		threads := sib.Intersection(free).List()
		for _, t := range threads {
			seen[t] = true
		}
		cores = append(cores, core{threads: threads})
	}
	sort.SliceStable(cores, func(i, j int) bool {
		return len(cores[i].threads) > len(cores[j].threads)
	})
	return cores
}

// refMake decides where a VM goes on host, given the VMs already placed there,
// and lays out its guest NUMA nodes. It is pure. A VM that cannot be placed
// gets an error wrapping ErrDoesNotFit (a *FitError with every node's room);
// a spec that is invalid on its own gets one wrapping ErrBadSpec.
func refMake(host *topology.Host, spec Spec, placed []Placed) (*Plan, error) {
	if host == nil {
		return nil, errors.New("plan vm: no host topology")
	}
	spec, err := checkSpec(host, spec)
	if err != nil {
		return nil, err
	}
	all := refRooms(host, spec, placed)
	var c *choice
	if spec.HostNodes != nil {
		c, err = fixedChoice(all, spec)
	} else {
		c, err = refAutoChoice(all, spec)
	}
	if err != nil {
		return nil, err
	}
	return build(spec, all, c), nil
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

func sortedIDs(set []*nodeRoom) []int {
	ids := setIDs(set)
	slices.Sort(ids)
	return ids
}
