// Package topology reads the host's NUMA topology from sysfs and procfs.
//
// Every reader takes a root ("/" in production, an unpacked snapshot in
// tests); nothing here walks sysfs recursively, and errors are returned
// instead of partial results.
package topology

import (
	"slices"

	"k8s.io/utils/cpuset"
)

// Host is the machine as the kernel describes it.
type Host struct {
	// Nodes in ascending id order. A machine without a node/ directory has
	// one node 0 holding every online CPU and all memory.
	Nodes []Node
	// OnlineCPUs is every online CPU.
	OnlineCPUs cpuset.CPUSet
	// CPUs describes each online CPU, in ascending id order.
	CPUs []CPU
	// Allowed is what this process may use.
	Allowed Allowed
}

// Node is one NUMA node.
type Node struct {
	ID int
	// CPUs are the node's online CPUs (cpulist, or cpumap where cpulist is
	// absent, intersected with the online CPUs). Empty for a memory-only node.
	CPUs cpuset.CPUSet
	// Memory figures in bytes, from nodeN/meminfo. MemFree + InactiveFile
	// does not overflow.
	MemTotal     uint64
	MemFree      uint64
	InactiveFile uint64
	// MemFreeUnknown: meminfo has no MemFree line (a hand-made snapshot);
	// MemFree is then 0, so nothing is planned on memory not known free.
	MemFreeUnknown bool
	// Hugepages per page size, ascending by size.
	Hugepages []Hugepages
	// Distances keyed by node id; nil when the kernel gives none or the row
	// does not match the node count.
	Distances map[int]int
}

// Hugepages is one page size's pool on a node.
type Hugepages struct {
	SizeBytes uint64
	Total     uint64 // pages
	Free      uint64 // pages
}

// CPU is one online logical CPU.
type CPU struct {
	ID      int
	Node    int // -1 when no node lists it
	Package int // physical_package_id; may be -1 or sparse
	Die     int // die_id, or 0 when absent
	// Core is an index into Host.Cores(): CPUs with the same thread-sibling
	// set share a core. core_id alone is never trusted.
	Core     int
	Siblings cpuset.CPUSet // thread siblings, including this CPU
}

// Allowed is the CPUs and memory nodes this process may use.
type Allowed struct {
	CPUs cpuset.CPUSet
	Mems cpuset.CPUSet // node ids
	// Source names where the sets came from: SourceProcStatus,
	// SourceCpusetV1, SourceCgroupV1, SourceCgroupV2, or SourceNone (all
	// online CPUs and every node).
	Source string
}

// HasCPUs reports whether the node has any online CPU.
func (n Node) HasCPUs() bool { return n.CPUs.Size() > 0 }

// HasMemory reports whether the node has memory.
func (n Node) HasMemory() bool { return n.MemTotal > 0 }

// Node returns the node with the given id.
func (h *Host) Node(id int) (Node, bool) {
	for _, n := range h.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// NodeIDs returns the node ids in ascending order.
func (h *Host) NodeIDs() []int {
	ids := make([]int, len(h.Nodes))
	for i, n := range h.Nodes {
		ids[i] = n.ID
	}
	return ids
}

// Cores returns the distinct thread-sibling sets among online CPUs, ordered
// by their lowest CPU; CPU.Core indexes this slice. Read cuts sibling sets
// down to online CPUs and checks that they agree, so each CPU is in one.
func (h *Host) Cores() []cpuset.CPUSet {
	var cores []cpuset.CPUSet
	seen := map[string]bool{}
	for _, c := range h.CPUs {
		k := c.Siblings.String()
		if !seen[k] {
			seen[k] = true
			cores = append(cores, c.Siblings)
		}
	}
	return cores
}

// Packages returns the distinct physical package ids, ascending (-1 where
// the kernel gives none).
func (h *Host) Packages() []int {
	var ids []int
	for _, c := range h.CPUs {
		if !slices.Contains(ids, c.Package) {
			ids = append(ids, c.Package)
		}
	}
	slices.Sort(ids)
	return ids
}

// ThreadsPerCore returns the fewest and most threads a core has; they
// differ when some SMT siblings are offline.
func (h *Host) ThreadsPerCore() (fewest, most int) {
	for i, c := range h.Cores() {
		n := c.Size()
		if i == 0 || n < fewest {
			fewest = n
		}
		most = max(most, n)
	}
	return fewest, most
}
