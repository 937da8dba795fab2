package topology

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/topology/topotest"
)

// shape is a machine of a kind no snapshot holds, with the facts Read
// must report for it, written out by hand.
type shape struct {
	name     string
	machine  topotest.Machine
	nodes    []int
	nodeCPUs map[int]string // cpulist per node id
	online   string
	cores    int
	threads  [2]int            // fewest, most threads per core
	someCore map[int]string    // cpu → its thread-sibling set
	packages []int             // distinct physical_package_id
	memGiB   map[int]uint64    // MemTotal per node id
	dist     map[[2]int]int    // a few distances, from → to
	hugepage map[int][2]uint64 // node → {size of its first pool, free pages of 2 MiB}
}

var shapes = []shape{
	{
		name: "arm-clusters", machine: topotest.ARMClusters(0),
		nodes: []int{0, 1}, nodeCPUs: map[int]string{0: "0-7", 1: "8-15"}, online: "0-15",
		cores: 16, threads: [2]int{1, 1}, someCore: map[int]string{0: "0", 5: "5", 15: "15"},
		packages: []int{0}, memGiB: map[int]uint64{0: 64, 1: 64},
		dist:     map[[2]int]int{{0, 1}: 20, {1, 0}: 20, {1, 1}: 10},
		hugepage: map[int][2]uint64{0: {64 << 10, 512}, 1: {64 << 10, 512}},
	},
	{
		name: "arm-clusters-no-package", machine: topotest.ARMClusters(-1),
		nodes: []int{0, 1}, nodeCPUs: map[int]string{0: "0-7", 1: "8-15"}, online: "0-15",
		cores: 16, threads: [2]int{1, 1}, someCore: map[int]string{9: "9"},
		packages: []int{-1}, memGiB: map[int]uint64{0: 64, 1: 64},
		dist: map[[2]int]int{{0, 1}: 20},
	},
	{
		name: "snc2", machine: topotest.SNC2(),
		nodes:    []int{0, 1, 2, 3},
		nodeCPUs: map[int]string{0: "0-3,16-19", 1: "4-7,20-23", 2: "8-11,24-27", 3: "12-15,28-31"},
		online:   "0-31", cores: 16, threads: [2]int{2, 2},
		someCore: map[int]string{0: "0,16", 16: "0,16", 7: "7,23", 31: "15,31"},
		packages: []int{0, 1}, memGiB: map[int]uint64{0: 48, 3: 48},
		dist:     map[[2]int]int{{0, 1}: 11, {1, 0}: 11, {2, 3}: 11, {0, 2}: 21, {1, 3}: 21, {3, 3}: 10},
		hugepage: map[int][2]uint64{2: {2 << 20, 1024}},
	},
	{
		name: "power9-smt4", machine: topotest.POWER9SMT4(),
		nodes: []int{0, 8}, nodeCPUs: map[int]string{0: "0-15", 8: "16-31"}, online: "0-31",
		cores: 8, threads: [2]int{4, 4}, someCore: map[int]string{0: "0-3", 2: "0-3", 4: "4-7", 31: "28-31"},
		packages: []int{0, 8}, memGiB: map[int]uint64{0: 64, 8: 64},
		dist:     map[[2]int]int{{0, 8}: 40, {8, 0}: 40, {8, 8}: 10},
		hugepage: map[int][2]uint64{8: {2 << 20, 0}},
	},
	{
		name: "power8-smt8-off", machine: topotest.POWER8SMT8Off(),
		nodes:    []int{0, 1, 16, 17},
		nodeCPUs: map[int]string{0: "0,8", 1: "16,24", 16: "32,40", 17: "48,56"},
		online:   "0,8,16,24,32,40,48,56", cores: 8, threads: [2]int{1, 1},
		someCore: map[int]string{0: "0", 8: "8", 56: "56"},
		packages: []int{0, 1, 16, 17}, memGiB: map[int]uint64{0: 32, 17: 32},
		dist:     map[[2]int]int{{0, 1}: 20, {16, 17}: 20, {1, 16}: 40, {17, 0}: 40},
		hugepage: map[int][2]uint64{1: {16 << 20, 0}},
	},
	{
		name: "64-nodes", machine: topotest.Nodes64(),
		nodes:    evens(64),
		nodeCPUs: map[int]string{0: "0-3", 2: "4-7", 34: "68-71", 126: "252-255"},
		online:   "0-255", cores: 128, threads: [2]int{2, 2},
		someCore: map[int]string{0: "0-1", 3: "2-3", 69: "68-69", 255: "254-255"},
		packages: seq(64), // one package per node index
		memGiB:   map[int]uint64{0: 4, 126: 4},
		// Index 0 and 16 (ids 0 and 32) share a router group.
		dist: map[[2]int]int{{0, 32}: 13, {32, 96}: 13, {0, 2}: 21, {0, 8}: 31, {126, 94}: 13, {126, 0}: 31},
	},
	{
		name: "knl-snc4-flat", machine: topotest.KNL(),
		nodes:    []int{0, 1, 2, 3, 4, 5, 6, 7},
		nodeCPUs: map[int]string{0: "0-3,16-19,32-35,48-51", 3: "12-15,28-31,44-47,60-63", 4: "", 7: ""},
		online:   "0-63", cores: 16, threads: [2]int{4, 4},
		someCore: map[int]string{0: "0,16,32,48", 47: "15,31,47,63"},
		packages: []int{0}, memGiB: map[int]uint64{0: 24, 3: 24, 4: 4, 7: 4},
		dist: map[[2]int]int{{0, 1}: 21, {0, 4}: 31, {4, 0}: 31, {0, 5}: 41, {5, 6}: 41, {7, 3}: 31, {7, 7}: 10},
	},
}

// seq is 0, 1, ..., n-1.
func seq(n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	return ids
}

// evens is 0, 2, ..., 2(n-1): node ids with gaps.
func evens(n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = 2 * i
	}
	return ids
}

func TestShapes(t *testing.T) {
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			h, err := Read(s.machine.Write(t))
			if err != nil {
				t.Fatal(err)
			}
			checkShapeFacts(t, s, h)
			checkAsBuilt(t, s.machine, h)

			out, err := json.MarshalIndent(h.Report(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.MkdirAll(filepath.Join("testdata", "shapes"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			golden(t, filepath.Join("shapes", s.name+".json"), append(out, '\n'))
		})
	}
}

// checkShapeFacts compares Read's answer with the facts written by hand.
func checkShapeFacts(t *testing.T, s shape, h *Host) {
	t.Helper()
	if got := h.NodeIDs(); !slices.Equal(got, s.nodes) {
		t.Errorf("nodes %v, want %v", got, s.nodes)
	}
	for id, want := range s.nodeCPUs {
		if got := nodeOf(t, h, id).CPUs.String(); got != want {
			t.Errorf("node %d cpus %q, want %q", id, got, want)
		}
	}
	if got := h.OnlineCPUs.String(); got != s.online {
		t.Errorf("online cpus %q, want %q", got, s.online)
	}
	if got := len(h.Cores()); got != s.cores {
		t.Errorf("%d cores, want %d", got, s.cores)
	}
	if f, m := h.ThreadsPerCore(); [2]int{f, m} != s.threads {
		t.Errorf("threads per core %d..%d, want %d..%d", f, m, s.threads[0], s.threads[1])
	}
	byID := map[int]CPU{}
	for _, c := range h.CPUs {
		byID[c.ID] = c
	}
	for cpu, want := range s.someCore {
		c, ok := byID[cpu]
		if !ok {
			t.Errorf("cpu %d not reported", cpu)
			continue
		}
		if c.Siblings.String() != want || h.Cores()[c.Core].String() != want {
			t.Errorf("cpu %d: siblings %s, core %d = %s; want %s", cpu, c.Siblings, c.Core, h.Cores()[c.Core], want)
		}
	}
	if got := h.Packages(); !slices.Equal(got, s.packages) {
		t.Errorf("packages %v, want %v", got, s.packages)
	}
	for id, g := range s.memGiB {
		if got := nodeOf(t, h, id).MemTotal; got != g<<30 {
			t.Errorf("node %d MemTotal %d, want %d GiB", id, got, g)
		}
	}
	for pair, want := range s.dist {
		if got, ok := nodeOf(t, h, pair[0]).Distances[pair[1]]; !ok || got != want {
			t.Errorf("distance %d→%d = %d (present %v), want %d", pair[0], pair[1], got, ok, want)
		}
	}
	for id, want := range s.hugepage {
		hp := nodeOf(t, h, id).Hugepages
		if len(hp) == 0 || hp[0].SizeBytes != want[0] {
			t.Errorf("node %d hugepages %+v, want the smallest pool %d bytes", id, hp, want[0])
			continue
		}
		for _, p := range hp {
			if p.SizeBytes == 2<<20 && p.Free != want[1] {
				t.Errorf("node %d: %d free 2 MiB pages, want %d", id, p.Free, want[1])
			}
		}
	}
	for _, c := range h.CPUs {
		if c.Die != 0 {
			t.Errorf("cpu %d die %d: want 0 (die_id 0, or absent)", c.ID, c.Die)
		}
	}
	if h.Allowed.Source != SourceProcStatus || !h.Allowed.CPUs.Equals(h.OnlineCPUs) || !h.Allowed.Mems.Equals(cpuset.New(h.NodeIDs()...)) {
		t.Errorf("allowed cpus %s mems %s from %s: want every online cpu and node from %s", h.Allowed.CPUs, h.Allowed.Mems, h.Allowed.Source, SourceProcStatus)
	}
}

// checkAsBuilt compares every node and CPU with what the tree was built
// from: each node's CPUs and memory, the whole distance table, and each
// CPU's node and sibling set.
func checkAsBuilt(t *testing.T, m topotest.Machine, h *Host) {
	t.Helper()
	if len(h.Nodes) != len(m.Nodes) {
		t.Fatalf("%d nodes, built %d", len(h.Nodes), len(m.Nodes))
	}
	nodeOfCPU := map[int]int{}
	for i, b := range m.Nodes {
		n := h.Nodes[i]
		if n.ID != b.ID || !n.CPUs.Equals(b.CPUs) || n.MemTotal != b.TotalKB<<10 || n.MemFree != b.FreeKB<<10 || n.InactiveFile != b.InactiveFileKB<<10 {
			t.Errorf("node %d: cpus %s, total %d, free %d, inactive %d; built %d: %s, %d kB, %d kB, %d kB",
				n.ID, n.CPUs, n.MemTotal, n.MemFree, n.InactiveFile, b.ID, b.CPUs, b.TotalKB, b.FreeKB, b.InactiveFileKB)
		}
		if n.HasCPUs() != (b.CPUs.Size() > 0) || !n.HasMemory() {
			t.Errorf("node %d: has cpus %v, has memory %v", n.ID, n.HasCPUs(), n.HasMemory())
		}
		if len(n.Hugepages) != len(b.Hugepages) {
			t.Errorf("node %d: %d hugepage pools, built %d", n.ID, len(n.Hugepages), len(b.Hugepages))
		}
		want := map[int]int{}
		for j, to := range m.Nodes {
			want[to.ID] = m.Distance[i][j]
		}
		if !maps.Equal(n.Distances, want) {
			t.Errorf("node %d distances %v, built %v", n.ID, n.Distances, want)
		}
		for _, c := range b.CPUs.List() {
			nodeOfCPU[c] = b.ID
		}
	}
	if got, want := h.OnlineCPUs.Size(), m.Possible-m.Offline.Size(); got != want || len(h.CPUs) != want {
		t.Errorf("%d online cpus, %d described; built %d", got, len(h.CPUs), want)
	}
	for _, c := range h.CPUs {
		if c.Node != nodeOfCPU[c.ID] {
			t.Errorf("cpu %d on node %d, built on %d", c.ID, c.Node, nodeOfCPU[c.ID])
		}
		// The builder's sibling list, parsed by cpuset rather than by the
		// reader, so a reader bug cannot hide on both sides (the 64-node
		// tree is read from its masks).
		list := m.Topology(c.ID)["thread_siblings_list"]
		sib, err := cpuset.Parse(list)
		if err != nil {
			t.Fatalf("cpu %d: built thread_siblings_list %q: %v", c.ID, list, err)
		}
		if !c.Siblings.Equals(sib) {
			t.Errorf("cpu %d siblings %s, built %s", c.ID, c.Siblings, sib)
		}
	}
}

// TestMachineMask checks the builder writes masks as the kernel's %*pb
// does, so the trees are what a real kernel would give.
func TestMachineMask(t *testing.T) {
	for _, tc := range []struct {
		set  cpuset.CPUSet
		bits int
		want string
	}{
		{cpuset.New(0, 1, 2, 3), 4, "f"},
		{cpuset.New(0, 8), 16, "0101"},
		{cpuset.New(1), 32, "00000002"},
		{cpuset.New(0), 64, "00000000,00000001"},
		{cpuset.New(32, 63), 64, "80000001,00000000"},
		{cpuset.New(0, 39), 40, "80,00000001"},
		{cpuset.New(68, 69, 70, 71), 256, "00000000,00000000,00000000,00000000,00000000,000000f0,00000000,00000000"},
		{cpuset.New(), 8, "00"},
	} {
		if got := topotest.Mask(tc.set, tc.bits); got != tc.want {
			t.Errorf("Mask(%s, %d) = %q, want %q", tc.set, tc.bits, got, tc.want)
		}
	}
}
