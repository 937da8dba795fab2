package topotest

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

// Machine is a host written as the Linux kernel lays out sysfs and procfs:
// node/nodeN/{cpulist,cpumap,distance,meminfo,hugepages/}, cpu/cpuN/
// {online,topology/}, cpu/{online,offline,possible,present}, the
// nodeN/cpuM and cpuM/nodeN links, and proc/self/status. It is how tests
// get machines of shapes no snapshot has.
type Machine struct {
	// Possible is nr_cpu_ids: CPUs 0..Possible-1 have a cpuN directory,
	// and masks are this many bits wide.
	Possible int
	// Offline CPUs have a cpuN directory with online=0 and no topology.
	Offline cpuset.CPUSet
	Nodes   []MachineNode // ascending id
	// Distance[i][j] is from Nodes[i] to Nodes[j]; nil writes no distance files.
	Distance [][]int
	// MaskOnly writes cpumap and thread_siblings but none of the *_list
	// files, as kernels before 2.6.28 (and ia64 ones) did.
	MaskOnly bool
	// Topology gives an online CPU's topology files (name → value).
	Topology func(cpu int) map[string]string
}

// MachineNode is one node of a Machine.
type MachineNode struct {
	ID   int
	CPUs cpuset.CPUSet // what the kernel lists for the node (online CPUs)
	// Memory in kB, as meminfo gives it.
	TotalKB, FreeKB, InactiveFileKB uint64
	Hugepages                       []MachineHugepages
}

// MachineHugepages is one nodeN/hugepages/hugepages-<size>kB pool.
type MachineHugepages struct {
	SizeKB, Total, Free uint64
}

// Write writes m under a new temporary directory and returns the root.
func (m Machine) Write(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	WriteTree(t, root, m.Files())
	const node, cpu = "sys/devices/system/node", "sys/devices/system/cpu"
	for _, n := range m.Nodes {
		for _, c := range n.CPUs.List() {
			// The kernel's links, which point back at their own tree.
			Symlink(t, root, fmt.Sprintf("%s/node%d/cpu%d", node, n.ID, c), fmt.Sprintf("../../cpu/cpu%d", c))
			Symlink(t, root, fmt.Sprintf("%s/cpu%d/node%d", cpu, c, n.ID), fmt.Sprintf("../../node/node%d", n.ID))
		}
	}
	return root
}

// Files returns every regular file of m, path relative to the root.
func (m Machine) Files() map[string]string {
	const node, cpu = "sys/devices/system/node/", "sys/devices/system/cpu/"
	all := cpuset.New()
	for i := 0; i < m.Possible; i++ {
		all = all.Union(cpuset.New(i))
	}
	online := all.Difference(m.Offline)
	f := map[string]string{
		cpu + "possible": all.String() + "\n",
		cpu + "present":  all.String() + "\n",
		cpu + "online":   online.String() + "\n",
		cpu + "offline":  m.Offline.String() + "\n",
	}
	var ids, withCPU, withMem []int
	for _, n := range m.Nodes {
		ids = append(ids, n.ID)
		if n.CPUs.Size() > 0 {
			withCPU = append(withCPU, n.ID)
		}
		if n.TotalKB > 0 {
			withMem = append(withMem, n.ID)
		}
	}
	f[node+"possible"] = cpuset.New(ids...).String() + "\n"
	f[node+"online"] = cpuset.New(ids...).String() + "\n"
	f[node+"has_cpu"] = cpuset.New(withCPU...).String() + "\n"
	f[node+"has_memory"] = cpuset.New(withMem...).String() + "\n"
	f[node+"has_normal_memory"] = cpuset.New(withMem...).String() + "\n"
	for i, n := range m.Nodes {
		dir := fmt.Sprintf("%snode%d/", node, n.ID)
		f[dir+"cpumap"] = Mask(n.CPUs, m.Possible) + "\n"
		if !m.MaskOnly {
			f[dir+"cpulist"] = n.CPUs.String() + "\n"
		}
		if m.Distance != nil {
			f[dir+"distance"] = joinInts(m.Distance[i]) + "\n"
		}
		f[dir+"meminfo"] = nodeMeminfo(n)
		for _, hp := range n.Hugepages {
			hd := fmt.Sprintf("%shugepages/hugepages-%dkB/", dir, hp.SizeKB)
			f[hd+"nr_hugepages"] = strconv.FormatUint(hp.Total, 10) + "\n"
			f[hd+"free_hugepages"] = strconv.FormatUint(hp.Free, 10) + "\n"
			f[hd+"surplus_hugepages"] = "0\n"
		}
	}
	for c := 0; c < m.Possible; c++ {
		dir := fmt.Sprintf("%scpu%d/", cpu, c)
		if m.Offline.Contains(c) {
			f[dir+"online"] = "0\n"
			continue
		}
		if c != 0 { // cpu0 usually cannot go offline and has no online file
			f[dir+"online"] = "1\n"
		}
		for name, v := range m.Topology(c) {
			if m.MaskOnly && strings.HasSuffix(name, "_list") {
				continue
			}
			f[path.Join(dir, "topology", name)] = v + "\n"
		}
	}
	f["proc/self/status"] = fmt.Sprintf("Name:\tqnuma\nState:\tR (running)\nCpus_allowed:\t%s\nCpus_allowed_list:\t%s\nMems_allowed_list:\t%s\n",
		Mask(online, m.Possible), online, cpuset.New(withMem...).Union(cpuset.New(withCPU...)))
	return f
}

// SetFiles returns a set's *_list and mask files under name, as the
// kernel writes thread_siblings and thread_siblings_list.
func SetFiles(name string, s cpuset.CPUSet, possible int) map[string]string {
	return map[string]string{name: Mask(s, possible), name + "_list": s.String()}
}

// Mask writes s as the kernel's %*pb does for a bitmap of bits bits:
// 32-bit hex words, most significant first, comma-separated, the first
// word only as wide as the bits it holds.
func Mask(s cpuset.CPUSet, bits int) string {
	words := (bits + 31) / 32
	out := make([]string, words)
	for w := 0; w < words; w++ {
		var v uint32
		for b := 0; b < 32; b++ {
			if s.Contains(w*32 + b) {
				v |= 1 << b
			}
		}
		digits := 8
		if w == words-1 && bits%32 != 0 {
			digits = (bits%32 + 3) / 4
		}
		out[words-1-w] = fmt.Sprintf("%0*x", digits, v)
	}
	return strings.Join(out, ",")
}

// nodeMeminfo is nodeN/meminfo with the lines the kernel writes first.
func nodeMeminfo(n MachineNode) string {
	var b strings.Builder
	line := func(key string, kb uint64) {
		fmt.Fprintf(&b, "Node %d %-15s %8d kB\n", n.ID, key+":", kb)
	}
	line("MemTotal", n.TotalKB)
	line("MemFree", n.FreeKB)
	line("MemUsed", n.TotalKB-n.FreeKB)
	line("Active", 0)
	line("Inactive", n.InactiveFileKB)
	line("Active(anon)", 0)
	line("Inactive(anon)", 0)
	line("Active(file)", 0)
	line("Inactive(file)", n.InactiveFileKB)
	var total, free uint64
	for _, hp := range n.Hugepages {
		if hp.SizeKB == 2048 { // the default size, on x86 and arm64 alike
			total, free = hp.Total, hp.Free
		}
	}
	fmt.Fprintf(&b, "Node %d HugePages_Total: %5d\nNode %d HugePages_Free:  %5d\nNode %d HugePages_Surp:  %5d\n", n.ID, total, n.ID, free, n.ID, 0)
	return b.String()
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, " ")
}

// Range is the CPUs from..to-1.
func Range(from, to int) cpuset.CPUSet {
	ids := make([]int, 0, max(to-from, 0))
	for i := from; i < to; i++ {
		ids = append(ids, i)
	}
	return cpuset.New(ids...)
}

// union merges topology file maps.
func union(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func gibKB(g uint64) uint64 { return g << 20 }

// ARMClusters is an arm64 server (kernel 5.16 or later): 2 nodes × 2
// clusters × 4 cores, no SMT, cluster_id and cluster_cpus in topology/,
// every CPU in package pkg (0, or -1 where firmware gives no socket), no
// die_id (only x86 has it). Distances 10/20; 64 GiB a node with arm64's
// four hugepage sizes (64 KiB, 2 MiB, 32 MiB, 1 GiB).
func ARMClusters(pkg int) Machine {
	hp := []MachineHugepages{{64, 0, 0}, {2048, 512, 512}, {32768, 0, 0}, {1048576, 4, 4}}
	return Machine{
		Possible: 16,
		Offline:  cpuset.New(),
		Nodes: []MachineNode{
			{ID: 0, CPUs: Range(0, 8), TotalKB: gibKB(64), FreeKB: gibKB(60), InactiveFileKB: gibKB(1), Hugepages: hp},
			{ID: 1, CPUs: Range(8, 16), TotalKB: gibKB(64), FreeKB: gibKB(62), InactiveFileKB: gibKB(1), Hugepages: hp},
		},
		Distance: [][]int{{10, 20}, {20, 10}},
		Topology: func(c int) map[string]string {
			cl := c / 4
			return union(map[string]string{
				"physical_package_id": strconv.Itoa(pkg),
				"core_id":             strconv.Itoa(c),
				"cluster_id":          strconv.Itoa(cl),
			},
				SetFiles("thread_siblings", cpuset.New(c), 16),
				SetFiles("core_cpus", cpuset.New(c), 16),
				SetFiles("cluster_cpus", Range(cl*4, cl*4+4), 16),
				SetFiles("core_siblings", Range(0, 16), 16),
				SetFiles("package_cpus", Range(0, 16), 16))
		},
	}
}

// SNC2 is a two-socket Intel server with sub-NUMA clustering in two: 4
// nodes of 4 cores × 2 threads, numbered as Linux does (all first threads,
// then all second: cpu i and i+16 are siblings), core_id sparse and
// repeating across packages, die_id 0. A node's SNC sibling is 11 away,
// the other package 21. 48 GiB a node, with different amounts free.
func SNC2() Machine {
	free := []uint64{40, 44, 46, 30}
	var nodes []MachineNode
	for n := 0; n < 4; n++ {
		nodes = append(nodes, MachineNode{ID: n, CPUs: Range(4*n, 4*n+4).Union(Range(16+4*n, 16+4*n+4)),
			TotalKB: gibKB(48), FreeKB: gibKB(free[n]), InactiveFileKB: gibKB(1),
			Hugepages: []MachineHugepages{{2048, 1024, 1024}, {1048576, 0, 0}}})
	}
	coreIDs := []int{0, 1, 2, 4, 8, 9, 10, 12}
	return Machine{
		Possible: 32,
		Offline:  cpuset.New(),
		Nodes:    nodes,
		Distance: [][]int{{10, 11, 21, 21}, {11, 10, 21, 21}, {21, 21, 10, 11}, {21, 21, 11, 10}},
		Topology: func(c int) map[string]string {
			i := c % 16
			pkg := i / 8
			pkgCPUs := Range(8*pkg, 8*pkg+8).Union(Range(16+8*pkg, 16+8*pkg+8))
			return union(map[string]string{
				"physical_package_id": strconv.Itoa(pkg),
				"die_id":              "0",
				"core_id":             strconv.Itoa(coreIDs[i%8]),
			},
				SetFiles("thread_siblings", cpuset.New(i, i+16), 32),
				SetFiles("core_cpus", cpuset.New(i, i+16), 32),
				SetFiles("core_siblings", pkgCPUs, 32),
				SetFiles("die_cpus", pkgCPUs, 32),
				SetFiles("package_cpus", pkgCPUs, 32))
		},
	}
}

// POWER9SMT4 is a two-chip POWER9 (an AC922 without its GPUs): nodes 0
// and 8, each one chip (physical_package_id 0 and 8) of 4 cores × 4
// threads, the threads of a core contiguous (cpus 0-3 are one core),
// core_id repeating on both chips. Distances 10/40; 64 GiB a node.
func POWER9SMT4() Machine {
	hp := []MachineHugepages{{2048, 0, 0}, {1048576, 8, 8}}
	return Machine{
		Possible: 32,
		Offline:  cpuset.New(),
		Nodes: []MachineNode{
			{ID: 0, CPUs: Range(0, 16), TotalKB: gibKB(64), FreeKB: gibKB(50), InactiveFileKB: gibKB(2), Hugepages: hp},
			{ID: 8, CPUs: Range(16, 32), TotalKB: gibKB(64), FreeKB: gibKB(56), InactiveFileKB: gibKB(2), Hugepages: hp},
		},
		Distance: [][]int{{10, 40}, {40, 10}},
		Topology: func(c int) map[string]string {
			chip := c / 16 * 8
			core := Range(c/4*4, c/4*4+4)
			return union(map[string]string{
				"physical_package_id": strconv.Itoa(chip),
				"core_id":             strconv.Itoa(c % 16 / 4 * 4),
			},
				SetFiles("thread_siblings", core, 32),
				SetFiles("core_cpus", core, 32),
				SetFiles("core_siblings", Range(c/16*16, c/16*16+16), 32))
		},
	}
}

// POWER8SMT8Off is a four-chip POWER8 after `ppc64_cpu --smt=off`: nodes
// 0, 1, 16 and 17 of 2 cores × 8 threads, only thread 0 of each core
// online (cpu/online is 0,8,16,...,56). powerpc drops an offline thread
// from its node's cpulist and from its siblings' masks, so each online
// thread is a core of one. Distances 10/20 on a drawer, 40 across; 32 GiB
// a node with hash-MMU hugepages (16 MiB, 16 GiB).
func POWER8SMT8Off() Machine {
	ids := []int{0, 1, 16, 17}
	var nodes []MachineNode
	off := cpuset.New()
	for i, id := range ids {
		online := cpuset.New(16*i, 16*i+8)
		off = off.Union(Range(16*i, 16*i+16).Difference(online))
		nodes = append(nodes, MachineNode{ID: id, CPUs: online, TotalKB: gibKB(32), FreeKB: gibKB(28), InactiveFileKB: gibKB(1),
			Hugepages: []MachineHugepages{{16384, 64, 64}, {16777216, 0, 0}}})
	}
	return Machine{
		Possible: 64,
		Offline:  off,
		Nodes:    nodes,
		Distance: [][]int{{10, 20, 40, 40}, {20, 10, 40, 40}, {40, 40, 10, 20}, {40, 40, 20, 10}},
		Topology: func(c int) map[string]string {
			chip := ids[c/16]
			return union(map[string]string{
				"physical_package_id": strconv.Itoa(chip),
				"core_id":             strconv.Itoa(c),
			},
				SetFiles("thread_siblings", cpuset.New(c), 64),
				SetFiles("core_siblings", cpuset.New(c/16*16, c/16*16+8), 64))
		},
	}
}

// Nodes64 is a 64-node machine of the ia64 (SGI Altix) kind: node ids
// 0, 2, ..., 126, each a package of 2 cores × 2 threads (cpus 4i..4i+3,
// siblings adjacent), 256 CPUs, and only masks (cpumap, thread_siblings):
// no *_list files. Node index i sits in router group i%16, so the nodes
// nearest one another are not neighbours in id: 13 within a group, 21
// between groups of the same rack (of four groups), 31 across racks.
func Nodes64() Machine {
	var nodes []MachineNode
	dist := make([][]int, 64)
	for i := 0; i < 64; i++ {
		nodes = append(nodes, MachineNode{ID: 2 * i, CPUs: Range(4*i, 4*i+4), TotalKB: gibKB(4), FreeKB: gibKB(3)})
		dist[i] = make([]int, 64)
		for j := range dist[i] {
			dist[i][j] = Nodes64Distance(i, j)
		}
	}
	return Machine{
		Possible: 256,
		Offline:  cpuset.New(),
		Nodes:    nodes,
		Distance: dist,
		MaskOnly: true,
		Topology: func(c int) map[string]string {
			core := cpuset.New(c/2*2, c/2*2+1)
			return union(map[string]string{
				"physical_package_id": strconv.Itoa(c / 4),
				"core_id":             strconv.Itoa(c % 4 / 2),
			},
				SetFiles("thread_siblings", core, 256),
				SetFiles("core_siblings", Range(c/4*4, c/4*4+4), 256))
		},
	}
}

// Nodes64Distance is Nodes64's distance between node indexes i and j.
func Nodes64Distance(i, j int) int {
	switch gi, gj := i%16, j%16; {
	case i == j:
		return 10
	case gi == gj:
		return 13
	case gi/4 == gj/4:
		return 21
	}
	return 31
}

// KNL is a Knights Landing in SNC-4 flat mode: nodes 0-3 of 4 cores × 4
// threads (Linux numbering: cpu k, k+16, k+32, k+48 are siblings) with 24
// GiB of DDR each, and nodes 4-7 holding 4 GiB of MCDRAM each and no CPUs.
// Distances as the firmware gives them: 21 between DDR nodes, 31 from a
// quadrant to its own MCDRAM, 41 to the others.
func KNL() Machine {
	var nodes []MachineNode
	for n := 0; n < 4; n++ {
		cpus := cpuset.New()
		for t := 0; t < 4; t++ {
			cpus = cpus.Union(Range(16*t+4*n, 16*t+4*n+4))
		}
		nodes = append(nodes, MachineNode{ID: n, CPUs: cpus, TotalKB: gibKB(24), FreeKB: gibKB(22), InactiveFileKB: gibKB(1) / 2,
			Hugepages: []MachineHugepages{{2048, 0, 0}, {1048576, 0, 0}}})
	}
	for n := 4; n < 8; n++ {
		nodes = append(nodes, MachineNode{ID: n, CPUs: cpuset.New(), TotalKB: gibKB(4), FreeKB: gibKB(4) - 2048,
			Hugepages: []MachineHugepages{{2048, 0, 0}, {1048576, 0, 0}}})
	}
	dist := make([][]int, 8)
	for i := range dist {
		dist[i] = make([]int, 8)
		for j := range dist[i] {
			switch {
			case i == j:
				dist[i][j] = 10
			case i < 4 && j < 4:
				dist[i][j] = 21
			case i%4 == j%4:
				dist[i][j] = 31
			default:
				dist[i][j] = 41
			}
		}
	}
	return Machine{
		Possible: 64,
		Offline:  cpuset.New(),
		Nodes:    nodes,
		Distance: dist,
		Topology: func(c int) map[string]string {
			core := cpuset.New(c%16, c%16+16, c%16+32, c%16+48)
			return union(map[string]string{
				"physical_package_id": "0",
				"die_id":              "0",
				"core_id":             strconv.Itoa(c % 16),
			},
				SetFiles("thread_siblings", core, 64),
				SetFiles("core_siblings", Range(0, 64), 64))
		},
	}
}
