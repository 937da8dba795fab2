package plan

import (
	"fmt"
	"slices"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/topology"
)

// oneMiB is the granule guest memory is split in when no hugepages are asked.
const oneMiB = 1 << 20

// qemuMaxNodes bounds the node ids QEMU's memory backends take (host-nodes=
// is a bitmap of MAX_NODES, 128 since QEMU 2.x).
const qemuMaxNodes = 128

// core is one physical core's threads that this VM may use.
type core struct {
	threads []int // ascending
}

// nodeRoom is a node's Room plus what placement needs to work with it.
type nodeRoom struct {
	Room
	dist  map[int]int // host distances from this node; nil when unknown
	cores []core      // usable cores, fullest first, then by lowest CPU
	// memCap is the memory this VM may take here, rounded down to the
	// granule (free hugepages × size with hugepages).
	memCap uint64
	// excluded: unusable whatever its CPUs and memory (its id, or memory
	// not allowed to qnuma).
	excluded bool
}

// usable reports whether the node can take part in this VM at all.
func (r *nodeRoom) usable() bool { return r.Unusable == "" }

// rooms works out every node's room for spec, given the VMs already placed.
// The ledger is read once: what the placed VMs promised, float over and
// hold is summed per node, and the CPUs they keep from this VM are marked
// in one bitmap, before any node's room is worked out.
func rooms(host *topology.Host, spec Spec, placed []Placed) []*nodeRoom {
	pos := newIDIndex(len(host.Nodes))
	for i, n := range host.Nodes {
		pos.set(n.ID, i)
	}
	// Each node's CPUs, ascending; the largest id bounds the bitmaps.
	nodeCPUs := make([][]int, len(host.Nodes))
	maxCPU := -1
	for i, n := range host.Nodes {
		nodeCPUs[i] = n.CPUs.List()
		if l := len(nodeCPUs[i]); l > 0 {
			maxCPU = max(maxCPU, nodeCPUs[i][l-1])
		}
	}

	// A shared VM may float over any CPU but another VM's dedicated ones; a
	// dedicated VM's CPUs must be free of every other VM's threads.
	taken := newIDBits(maxCPU + 1)
	promised := make([]uint64, len(host.Nodes))      // ordinary memory still to be taken
	promisedPages := make([]uint64, len(host.Nodes)) // hugepages of spec's size still to be taken
	load := make([]int, len(host.Nodes))
	for _, p := range placed {
		taken.addSet(p.DedicatedCPUs)
		if spec.Dedicated {
			taken.addSet(p.CPUs)
		}
		for n, b := range p.MemoryBytes {
			i, ok := pos.get(n)
			if !ok {
				continue // a node this host does not have
			}
			// What its qemu already holds the host's free memory lacks.
			left := b - min(b, p.ResidentBytes[n])
			switch {
			case p.HugepageBytes == 0:
				promised[i] += left
			case p.HugepageBytes == spec.HugepageBytes:
				promisedPages[i] += (left + p.HugepageBytes - 1) / p.HugepageBytes
			}
			// Hugepages of another size come from their own pool, which
			// MemFree already lacks: they take nothing this VM could use.
		}
		for n, v := range p.VCPUs {
			if i, ok := pos.get(n); ok {
				load[i] += v
			}
		}
	}

	// Each CPU's thread siblings, by where host.CPUs lists it (the last
	// entry of an id counts), and each core's CPUs.
	sibling := newIDIndex(maxCPU + 1)
	for i, c := range host.CPUs {
		sibling.set(c.ID, i)
	}
	cores := newCoreIndex(host, maxCPU+1)
	g := granule(spec)
	inFree, seen := newIDBits(maxCPU+1), newIDBits(maxCPU+1)

	out := make([]*nodeRoom, 0, len(host.Nodes))
	for i, n := range host.Nodes {
		r := &nodeRoom{Room: Room{Node: n.ID, Load: load[i]}, dist: n.Distances}
		free := make([]int, 0, len(nodeCPUs[i]))
		for _, c := range nodeCPUs[i] {
			if host.OnlineCPUs.Contains(c) && host.Allowed.CPUs.Contains(c) && !taken.has(c) {
				free = append(free, c)
			}
		}
		if len(free) > 0 && len(free) == n.CPUs.Size() {
			r.FreeCPUs = n.CPUs // every CPU of the node (sets are immutable)
		} else {
			r.FreeCPUs = cpuset.New(free...)
		}
		r.cores = groupCores(free, inFree, seen, func(cpu int) (cpuset.CPUSet, []int, bool) {
			if j, ok := sibling.get(cpu); ok {
				return host.CPUs[j].Siblings, cores.of(j), true
			}
			return cpuset.CPUSet{}, nil, false
		})
		if spec.PreferHT {
			r.CPUs = len(free)
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
		if p := promised[i]; p < avail {
			r.MemoryBytes = avail - p
		}
		if spec.HugepageBytes > 0 {
			for _, hp := range n.Hugepages {
				if hp.SizeBytes == spec.HugepageBytes && hp.Free > promisedPages[i] {
					r.Hugepages = hp.Free - promisedPages[i]
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

// groupCores groups a node's free CPUs (ascending) by thread-sibling set.
// Cores with more free threads come first, so dedicated thread pairs land
// on whole cores. siblings gives a CPU's sibling set and, where known, the
// CPUs of its core. inFree and seen are scratch, left empty.
func groupCores(free []int, inFree, seen *idBits, siblings func(cpu int) (cpuset.CPUSet, []int, bool)) []core {
	for _, c := range free {
		inFree.add(c)
	}
	cores := make([]core, 0, len(free))
	buf := make([]int, 0, len(free)) // the cores' threads
	for _, cpu := range free {
		if seen.has(cpu) {
			continue
		}
		sib, members, ok := siblings(cpu)
		if !ok {
			sib = cpuset.New(cpu)
		}
		start := len(buf)
		if sameCPUs(sib, members) {
			// The sibling set is the core's CPUs: no need to list it.
			for _, t := range members {
				if inFree.has(t) {
					buf = append(buf, t)
				}
			}
		} else {
			for _, t := range sib.UnsortedList() {
				if inFree.has(t) {
					buf = append(buf, t)
				}
			}
		}
		threads := buf[start:len(buf):len(buf)]
		slices.Sort(threads)
		for _, t := range threads {
			seen.add(t)
		}
		cores = append(cores, core{threads: threads})
	}
	for _, c := range free {
		inFree.remove(c)
		seen.remove(c)
	}
	slices.SortStableFunc(cores, func(a, b core) int { return len(b.threads) - len(a.threads) })
	return cores
}

// sameCPUs reports whether set holds exactly the distinct CPUs of list
// (false for a nil list).
func sameCPUs(set cpuset.CPUSet, list []int) bool {
	if list == nil || set.Size() != len(list) {
		return false
	}
	for _, c := range list {
		if !set.Contains(c) {
			return false
		}
	}
	return true
}

// coreIndex lists the CPUs of each core (topology.CPU.Core) in host.CPUs
// order, all cores in one slice.
type coreIndex struct {
	slot   []int // host.CPUs[j]'s core's slot
	starts []int // slot's CPUs are cpus[starts[slot]:starts[slot+1]]
	cpus   []int
}

// newCoreIndex indexes host's cores; nil when host.CPUs lists an id twice
// (a core's list would not be its distinct CPUs).
func newCoreIndex(host *topology.Host, bound int) *coreIndex {
	x := &coreIndex{slot: make([]int, len(host.CPUs))}
	byCore := newIDIndex(len(host.CPUs))
	ids := newIDBits(max(bound, len(host.CPUs)))
	var counts []int
	for j, c := range host.CPUs {
		if ids.has(c.ID) {
			return nil
		}
		ids.add(c.ID)
		k, ok := byCore.get(c.Core)
		if !ok {
			k = len(counts)
			byCore.set(c.Core, k)
			counts = append(counts, 0)
		}
		x.slot[j] = k
		counts[k]++
	}
	x.starts = make([]int, len(counts)+1)
	for k, n := range counts {
		x.starts[k+1] = x.starts[k] + n
	}
	x.cpus = make([]int, len(host.CPUs))
	next := slices.Clone(x.starts[:len(counts)])
	for j, c := range host.CPUs {
		k := x.slot[j]
		x.cpus[next[k]] = c.ID
		next[k]++
	}
	return x
}

// of is the CPUs of host.CPUs[j]'s core; nil without an index.
func (x *coreIndex) of(j int) []int {
	if x == nil {
		return nil
	}
	k := x.slot[j]
	return x.cpus[x.starts[k]:x.starts[k+1]:x.starts[k+1]]
}

// granule is the unit guest memory is split in: a MiB, or the hugepage
// size when that is larger.
func granule(spec Spec) uint64 {
	if spec.HugepageBytes > oneMiB {
		return spec.HugepageBytes
	}
	return oneMiB
}

// distance between two host nodes; unknown distances count as remote (20),
// the kernel's default for a node that is not local.
func distance(a, b *nodeRoom) int {
	if a.Node == b.Node {
		return 10
	}
	// A VM's vCPUs on each node reach memory on the other, so a pair is as
	// far apart as its longer direction: with asymmetric distances (12 one
	// way, 22 back) the pair is 22 away, not 12.
	return max(oneWay(a, b), oneWay(b, a))
}

func oneWay(from, to *nodeRoom) int {
	if d, ok := from.dist[to.Node]; ok {
		return d
	}
	return 20
}

// idIndex maps ids (of nodes, of CPUs) to indices: in a slice for the ids
// below the bound it was made with, in a map for any others.
type idIndex struct {
	dense  []int32 // index+1; 0 for none
	sparse map[int]int
}

func newIDIndex(bound int) *idIndex {
	return &idIndex{dense: make([]int32, min(max(bound, 0), denseIDs))}
}

// denseIDs bounds the ids kept in slices: cpulist.MaxID, the most any id
// read from outside can be.
const denseIDs = cpulist.MaxID

func (x *idIndex) set(id, i int) {
	if id >= 0 && id < len(x.dense) {
		x.dense[id] = int32(i + 1)
		return
	}
	if x.sparse == nil {
		x.sparse = map[int]int{}
	}
	x.sparse[id] = i
}

func (x *idIndex) get(id int) (int, bool) {
	if id >= 0 && id < len(x.dense) {
		return int(x.dense[id]) - 1, x.dense[id] != 0
	}
	i, ok := x.sparse[id]
	return i, ok
}

// idBits is a set of ids: a bitmap below the bound it was made with, a map
// for any others.
type idBits struct {
	words  []uint64
	sparse map[int]bool
}

func newIDBits(bound int) *idBits {
	return &idBits{words: make([]uint64, (min(max(bound, 0), denseIDs)+63)/64)}
}

func (b *idBits) add(id int) {
	if id >= 0 && id < len(b.words)*64 {
		b.words[id/64] |= 1 << (id % 64)
		return
	}
	if b.sparse == nil {
		b.sparse = map[int]bool{}
	}
	b.sparse[id] = true
}

func (b *idBits) remove(id int) {
	if id >= 0 && id < len(b.words)*64 {
		b.words[id/64] &^= 1 << (id % 64)
		return
	}
	delete(b.sparse, id)
}

func (b *idBits) has(id int) bool {
	if id >= 0 && id < len(b.words)*64 {
		return b.words[id/64]&(1<<(id%64)) != 0
	}
	return b.sparse[id]
}

// addSet adds every CPU of s.
func (b *idBits) addSet(s cpuset.CPUSet) {
	if s.IsEmpty() {
		return
	}
	for _, id := range s.UnsortedList() {
		b.add(id)
	}
}
