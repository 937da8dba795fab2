package plan

import (
	"fmt"
	"sort"

	"k8s.io/utils/cpuset"

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
func rooms(host *topology.Host, spec Spec, placed []Placed) []*nodeRoom {
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
		r.cores = groupCores(free, siblings)
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

// groupCores groups free CPUs by thread-sibling set. Cores with more free
// threads come first, so dedicated thread pairs land on whole cores.
func groupCores(free cpuset.CPUSet, siblings map[int]cpuset.CPUSet) []core {
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
