package topology

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/topology/topotest"
)

const (
	cpuDir  = "sys/devices/system/cpu/"
	nodeDir = "sys/devices/system/node/"
	// absent in a row's files removes the base tree's file.
	absent = "\x00absent"
)

func meminfo(node, totalKB, freeKB int) string {
	return fmt.Sprintf("Node %d MemTotal: %d kB\nNode %d MemFree: %d kB\nNode %d Inactive(file): 64 kB\n", node, totalKB, node, freeKB, node)
}

// baseTree is a small host: cpus 0-3 in one package, cores {0,1} and
// {2,3}, node 0 holding cpus 0-1 and node 1 cpus 2-3, 1 GiB each.
func baseTree() map[string]string {
	files := map[string]string{
		cpuDir + "online":          "0-3\n",
		nodeDir + "online":         "0-1\n",
		nodeDir + "node0/cpulist":  "0-1\n",
		nodeDir + "node0/cpumap":   "00000003\n",
		nodeDir + "node0/distance": "10 20\n",
		nodeDir + "node0/meminfo":  meminfo(0, 1<<20, 1<<19),
		nodeDir + "node1/cpulist":  "2-3\n",
		nodeDir + "node1/cpumap":   "0000000c\n",
		nodeDir + "node1/distance": "20 10\n",
		nodeDir + "node1/meminfo":  meminfo(1, 1<<20, 1<<18),
	}
	for cpu := 0; cpu < 4; cpu++ {
		dir := fmt.Sprintf("%scpu%d/topology/", cpuDir, cpu)
		files[dir+"physical_package_id"] = "0\n"
		files[dir+"core_id"] = fmt.Sprint(cpu/2, "\n")
		files[dir+"thread_siblings_list"] = fmt.Sprintf("%d-%d\n", cpu/2*2, cpu/2*2+1)
	}
	return files
}

// writeHost writes the base tree changed by edits (absent deletes a file)
// and returns its root.
func writeHost(t *testing.T, base, edits map[string]string) string {
	t.Helper()
	files := map[string]string{}
	for k, v := range base {
		files[k] = v
	}
	for k, v := range edits {
		if v == absent {
			delete(files, k)
			continue
		}
		files[k] = v
	}
	root := t.TempDir()
	topotest.WriteTree(t, root, files)
	return root
}

func set(ids ...int) cpuset.CPUSet { return cpuset.New(ids...) }

func nodeOf(t *testing.T, h *Host, id int) Node {
	t.Helper()
	n, ok := h.Node(id)
	if !ok {
		t.Fatalf("no node %d; nodes %v", id, h.NodeIDs())
	}
	return n
}

func wantSet(t *testing.T, what string, got cpuset.CPUSet, want cpuset.CPUSet) {
	t.Helper()
	if !got.Equals(want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// TestReadPitfalls builds a small tree for each way real machines' sysfs
// differs from the textbook and checks what Read makes of it.
func TestReadPitfalls(t *testing.T) {
	for _, tc := range []struct {
		name  string
		base  map[string]string // nil: baseTree()
		edits map[string]string
		links map[string]string // name → target
		check func(t *testing.T, h *Host)
	}{
		{
			name: "base",
			check: func(t *testing.T, h *Host) {
				if got := h.NodeIDs(); !reflect.DeepEqual(got, []int{0, 1}) {
					t.Errorf("nodes %v, want [0 1]", got)
				}
				n := nodeOf(t, h, 1)
				wantSet(t, "node 1 cpus", n.CPUs, set(2, 3))
				if n.MemTotal != 1<<30 || n.MemFree != 1<<28 || n.InactiveFile != 64<<10 {
					t.Errorf("node 1 memory %d/%d/%d, want %d/%d/%d", n.MemTotal, n.MemFree, n.InactiveFile, 1<<30, 1<<28, 64<<10)
				}
				if !reflect.DeepEqual(n.Distances, map[int]int{0: 20, 1: 10}) {
					t.Errorf("node 1 distances %v", n.Distances)
				}
				want := []CPU{
					{ID: 0, Node: 0, Package: 0, Core: 0, Siblings: set(0, 1)},
					{ID: 1, Node: 0, Package: 0, Core: 0, Siblings: set(0, 1)},
					{ID: 2, Node: 1, Package: 0, Core: 1, Siblings: set(2, 3)},
					{ID: 3, Node: 1, Package: 0, Core: 1, Siblings: set(2, 3)},
				}
				if !reflect.DeepEqual(h.CPUs, want) {
					t.Errorf("cpus %+v, want %+v", h.CPUs, want)
				}
			},
		},
		{
			name:  "cpumap without cpulist, first word short",
			edits: map[string]string{nodeDir + "node0/cpulist": absent, nodeDir + "node1/cpulist": absent, nodeDir + "node0/cpumap": "0000,00000000,00000003\n"},
			check: func(t *testing.T, h *Host) {
				wantSet(t, "node 0 cpus", nodeOf(t, h, 0).CPUs, set(0, 1))
				wantSet(t, "node 1 cpus", nodeOf(t, h, 1).CPUs, set(2, 3))
			},
		},
		{
			name:  "node lists offline cpus",
			edits: map[string]string{cpuDir + "online": "0-1,3\n", cpuDir + "cpu2/topology": absent, nodeDir + "node1/cpulist": "2-7\n"},
			check: func(t *testing.T, h *Host) {
				wantSet(t, "node 1 cpus", nodeOf(t, h, 1).CPUs, set(3))
				wantSet(t, "cpu 3 siblings", h.CPUs[2].Siblings, set(3))
				if f, m := h.ThreadsPerCore(); f != 1 || m != 2 {
					t.Errorf("threads per core %d-%d, want 1-2", f, m)
				}
			},
		},
		{
			name: "no cpu/online: cpu dirs and their online files",
			edits: map[string]string{
				cpuDir + "online":      absent, // cpu0 has no online file
				cpuDir + "cpu1/online": "1\n",
				cpuDir + "cpu2/online": "0\n",
				cpuDir + "cpu3/online": "", // snapshots keep some empty
				cpuDir + "cpufreq/x":   "",
			},
			check: func(t *testing.T, h *Host) {
				wantSet(t, "online", h.OnlineCPUs, set(0, 1, 3))
				wantSet(t, "node 1 cpus", nodeOf(t, h, 1).CPUs, set(3))
			},
		},
		{
			name: "trailing NULs and whitespace",
			edits: map[string]string{
				cpuDir + "online":                            "0-3\n\x00",
				nodeDir + "node0/cpulist":                    " 0-1\n\x00\x00",
				nodeDir + "node0/distance":                   "10 20 \n\x00",
				nodeDir + "node0/meminfo":                    meminfo(0, 1<<20, 1<<19) + "\x00",
				cpuDir + "cpu0/topology/physical_package_id": "0\n\x00",
			},
			check: func(t *testing.T, h *Host) {
				n := nodeOf(t, h, 0)
				wantSet(t, "node 0 cpus", n.CPUs, set(0, 1))
				if !reflect.DeepEqual(n.Distances, map[int]int{0: 10, 1: 20}) || n.MemTotal != 1<<30 {
					t.Errorf("node 0 distances %v, memory %d", n.Distances, n.MemTotal)
				}
			},
		},
		{
			name: "sparse ids and a memory-only node",
			edits: map[string]string{
				nodeDir + "node0/distance": "10 40 80\n",
				nodeDir + "node1/cpulist":  absent, nodeDir + "node1/cpumap": absent, nodeDir + "node1/distance": absent, nodeDir + "node1/meminfo": absent,
				nodeDir + "node8/cpulist":    "2-3\n",
				nodeDir + "node8/distance":   "40 10 80\n",
				nodeDir + "node8/meminfo":    meminfo(8, 1<<20, 1<<19),
				nodeDir + "node250/cpulist":  "\n",
				nodeDir + "node250/distance": "80 80 10\n",
				nodeDir + "node250/meminfo":  meminfo(250, 1<<24, 1<<24),
			},
			check: func(t *testing.T, h *Host) {
				// ReadDir's order would be node0, node250, node8.
				if got := h.NodeIDs(); !reflect.DeepEqual(got, []int{0, 8, 250}) {
					t.Fatalf("nodes %v, want [0 8 250]", got)
				}
				if d := nodeOf(t, h, 8).Distances; !reflect.DeepEqual(d, map[int]int{0: 40, 8: 10, 250: 80}) {
					t.Errorf("node 8 distances %v", d)
				}
				gpu := nodeOf(t, h, 250)
				if gpu.HasCPUs() || !gpu.HasMemory() || gpu.MemTotal != 16<<30 {
					t.Errorf("node 250: cpus %q, memory %d; want none and 16 GiB", gpu.CPUs, gpu.MemTotal)
				}
				if h.CPUs[3].Node != 8 {
					t.Errorf("cpu 3 on node %d, want 8", h.CPUs[3].Node)
				}
			},
		},
		{
			name:  "cpu-only node",
			edits: map[string]string{nodeDir + "node1/meminfo": "Node 1 MemTotal: 0 kB\nNode 1 MemFree: 0 kB\n"},
			check: func(t *testing.T, h *Host) {
				if n := nodeOf(t, h, 1); n.HasMemory() || !n.HasCPUs() {
					t.Errorf("node 1: memory %d, cpus %q; want none and 2-3", n.MemTotal, n.CPUs)
				}
			},
		},
		{
			name:  "distance row of the wrong length, and none",
			edits: map[string]string{nodeDir + "node0/distance": "10\n", nodeDir + "node1/distance": absent},
			check: func(t *testing.T, h *Host) {
				if d0, d1 := nodeOf(t, h, 0).Distances, nodeOf(t, h, 1).Distances; d0 != nil || d1 != nil {
					t.Errorf("distances %v and %v, want nil", d0, d1)
				}
			},
		},
		{
			name: "package -1 and huge, die ids",
			edits: map[string]string{
				cpuDir + "cpu0/topology/physical_package_id": "-1\n", cpuDir + "cpu1/topology/physical_package_id": "-1\n",
				cpuDir + "cpu2/topology/physical_package_id": "131073\n", cpuDir + "cpu3/topology/physical_package_id": "131073\n",
				cpuDir + "cpu2/topology/die_id": "1\n", cpuDir + "cpu3/topology/die_id": "1\n",
			},
			check: func(t *testing.T, h *Host) {
				if got := h.Packages(); !reflect.DeepEqual(got, []int{-1, 131073}) {
					t.Errorf("packages %v, want [-1 131073]", got)
				}
				if h.CPUs[0].Die != 0 || h.CPUs[3].Die != 1 {
					t.Errorf("dies %d and %d, want 0 and 1", h.CPUs[0].Die, h.CPUs[3].Die)
				}
			},
		},
		{
			name: "core_id repeats: cores are sibling sets",
			edits: map[string]string{
				cpuDir + "cpu0/topology/core_id": "0\n", cpuDir + "cpu1/topology/core_id": "0\n",
				cpuDir + "cpu2/topology/core_id": "0\n", cpuDir + "cpu3/topology/core_id": "0\n",
				cpuDir + "cpu0/topology/thread_siblings_list": "0\n", cpuDir + "cpu1/topology/thread_siblings_list": "1\n",
			},
			check: func(t *testing.T, h *Host) {
				cores := h.Cores()
				want := []cpuset.CPUSet{set(0), set(1), set(2, 3)}
				if len(cores) != len(want) {
					t.Fatalf("cores %v, want %v", cores, want)
				}
				for i := range want {
					wantSet(t, fmt.Sprint("core ", i), cores[i], want[i])
				}
				if h.CPUs[1].Core != 1 || h.CPUs[3].Core != 2 {
					t.Errorf("cpu 1 in core %d, cpu 3 in core %d; want 1 and 2", h.CPUs[1].Core, h.CPUs[3].Core)
				}
			},
		},
		{
			name: "thread_siblings mask without the list; no topology at all",
			edits: map[string]string{
				cpuDir + "cpu0/topology/thread_siblings_list": absent, cpuDir + "cpu0/topology/thread_siblings": "00000000,00000003\n",
				cpuDir + "cpu1/topology/thread_siblings_list": absent, cpuDir + "cpu1/topology/thread_siblings": "00000000,00000003\n",
				cpuDir + "cpu3/topology/physical_package_id": absent, cpuDir + "cpu3/topology/thread_siblings_list": absent,
				cpuDir + "cpu3/topology/core_id": absent, cpuDir + "cpu2/topology/thread_siblings_list": "2\n",
			},
			check: func(t *testing.T, h *Host) {
				wantSet(t, "cpu 0 siblings", h.CPUs[0].Siblings, set(0, 1))
				if c := h.CPUs[3]; c.Package != -1 || !c.Siblings.Equals(set(3)) {
					t.Errorf("cpu 3 package %d siblings %q, want -1 and 3", c.Package, c.Siblings)
				}
			},
		},
		{
			name:  "symlink loops are not followed",
			links: map[string]string{nodeDir + "node0/cpu0": ".", nodeDir + "node0/cpu1": ".", cpuDir + "cpu0/node0": "../../node/node0"},
			check: func(t *testing.T, h *Host) {
				wantSet(t, "node 0 cpus", nodeOf(t, h, 0).CPUs, set(0, 1))
			},
		},
		{
			name: "no node directory: one node with all memory",
			base: map[string]string{
				cpuDir + "online": "0-1\n",
				"proc/meminfo":    "MemTotal: 2097152 kB\nMemFree: 1048576 kB\nInactive(file): 1024 kB\nHugePages_Total: 4\n",
				"sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages":      "4\n",
				"sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages":    "3\n",
				"sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages":   "0\n",
				"sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages": "0\n",
			},
			check: func(t *testing.T, h *Host) {
				n := nodeOf(t, h, 0)
				wantSet(t, "node 0 cpus", n.CPUs, set(0, 1))
				if len(h.Nodes) != 1 || n.MemTotal != 2<<30 || n.MemFree != 1<<30 || n.Distances != nil {
					t.Errorf("nodes %+v", h.Nodes)
				}
				want := []Hugepages{{SizeBytes: 2 << 20, Total: 4, Free: 3}, {SizeBytes: 1 << 30}}
				if !reflect.DeepEqual(n.Hugepages, want) {
					t.Errorf("hugepages %+v, want %+v", n.Hugepages, want)
				}
				if h.CPUs[1].Node != 0 || h.Allowed.Source != SourceNone {
					t.Errorf("cpu 1 node %d, allowed source %q", h.CPUs[1].Node, h.Allowed.Source)
				}
			},
		},
		{
			name: "hugepages per node, ascending by size",
			edits: map[string]string{
				nodeDir + "node0/hugepages/hugepages-1048576kB/nr_hugepages":   "2\n",
				nodeDir + "node0/hugepages/hugepages-1048576kB/free_hugepages": "1\n",
				nodeDir + "node0/hugepages/hugepages-2048kB/nr_hugepages":      "512\n",
				nodeDir + "node0/hugepages/hugepages-2048kB/free_hugepages":    "500\n",
				nodeDir + "node0/hugepages/hugepages-64kB/nr_hugepages":        "0\n",
				nodeDir + "node0/hugepages/hugepages-64kB/free_hugepages":      "0\n",
			},
			check: func(t *testing.T, h *Host) {
				want := []Hugepages{{SizeBytes: 64 << 10}, {SizeBytes: 2 << 20, Total: 512, Free: 500}, {SizeBytes: 1 << 30, Total: 2, Free: 1}}
				if got := nodeOf(t, h, 0).Hugepages; !reflect.DeepEqual(got, want) {
					t.Errorf("node 0 hugepages %+v, want %+v", got, want)
				}
				if got := nodeOf(t, h, 1).Hugepages; got != nil {
					t.Errorf("node 1 hugepages %+v, want none", got)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base
			if base == nil {
				base = baseTree()
			}
			root := writeHost(t, base, tc.edits)
			for name, target := range tc.links {
				topotest.Symlink(t, root, name, target)
			}
			h, err := Read(root)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			tc.check(t, h)
		})
	}
}

// TestReadErrors checks that broken trees give an error naming the file
// and the fault, and no host.
func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		base  map[string]string
		edits map[string]string
		want  []string // substrings of the error
	}{
		{name: "bad cpu/online", edits: map[string]string{cpuDir + "online": "0-x\n"}, want: []string{"cpu/online", `"0-x"`}},
		{name: "bad cpuN/online", edits: map[string]string{cpuDir + "online": absent, cpuDir + "cpu1/online": "2\n"}, want: []string{"cpu1/online", "not 0 or 1"}},
		{name: "no cpus", base: map[string]string{cpuDir + "online": "\n"}, want: []string{"no online cpus"}},
		{name: "no cpu directory", base: map[string]string{"proc/meminfo": "MemTotal: 1 kB\n"}, want: []string{"list cpus", "sys/devices/system/cpu"}},
		{name: "bad cpulist", edits: map[string]string{nodeDir + "node1/cpulist": "2-\n"}, want: []string{"read node 1", "node1/cpulist"}},
		{name: "bad cpumap", edits: map[string]string{nodeDir + "node1/cpulist": absent, nodeDir + "node1/cpumap": "zz\n"}, want: []string{"node1/cpumap", "not hex"}},
		{name: "neither cpulist nor cpumap", edits: map[string]string{nodeDir + "node1/cpulist": absent, nodeDir + "node1/cpumap": absent}, want: []string{"node1 has neither cpulist nor cpumap"}},
		{name: "cpu on two nodes", edits: map[string]string{nodeDir + "node1/cpulist": "1-3\n"}, want: []string{"cpus 1 are listed by nodes 0 and 1"}},
		{name: "missing meminfo", edits: map[string]string{nodeDir + "node0/meminfo": absent}, want: []string{"node0/meminfo", "no such file"}},
		{name: "meminfo without MemTotal", edits: map[string]string{nodeDir + "node0/meminfo": "Node 0 MemFree: 1 kB\n"}, want: []string{"node0/meminfo", "no MemTotal line"}},
		{name: "bad meminfo line", edits: map[string]string{nodeDir + "node0/meminfo": "Node 0 MemTotal: many kB\n"}, want: []string{"node0/meminfo", "line 1"}},
		{name: "bad distance", edits: map[string]string{nodeDir + "node0/distance": "10 twenty\n"}, want: []string{"node0/distance", `"twenty"`}},
		{name: "bad hugepage count", edits: map[string]string{nodeDir + "node0/hugepages/hugepages-2048kB/nr_hugepages": "-1\n", nodeDir + "node0/hugepages/hugepages-2048kB/free_hugepages": "0\n"}, want: []string{"hugepages-2048kB/nr_hugepages", "not a count"}},
		{name: "missing hugepage count", edits: map[string]string{nodeDir + "node0/hugepages/hugepages-2048kB/nr_hugepages": "1\n"}, want: []string{"hugepages-2048kB/free_hugepages"}},
		{name: "bad hugepage size", edits: map[string]string{nodeDir + "node0/hugepages/hugepages-2MB/nr_hugepages": "1\n"}, want: []string{"hugepages-2MB"}},
		{name: "node id out of range", edits: map[string]string{nodeDir + "node99999999/cpulist": "\n"}, want: []string{"node99999999", "out of range"}},
		{name: "bad package id", edits: map[string]string{cpuDir + "cpu2/topology/physical_package_id": "two\n"}, want: []string{"read cpu 2", "physical_package_id"}},
		{name: "bad siblings", edits: map[string]string{cpuDir + "cpu2/topology/thread_siblings_list": "2-\n"}, want: []string{"cpu2/topology/thread_siblings_list"}},
		{name: "siblings disagree", edits: map[string]string{cpuDir + "cpu1/topology/thread_siblings_list": "1\n"}, want: []string{"cpu 0 has thread siblings 0-1 but cpu 1 has 1"}},
		{name: "no node directory, no /proc/meminfo", base: map[string]string{cpuDir + "online": "0\n"}, want: []string{"host without nodes", "proc/meminfo"}},
		{name: "bad Cpus_allowed_list", edits: map[string]string{"proc/self/status": "Cpus_allowed_list:\t0-a\nMems_allowed_list:\t0\n"}, want: []string{"proc/self/status", "Cpus_allowed_list"}},
		{name: "allowed cpus all offline", edits: map[string]string{"proc/self/status": "Cpus_allowed_list:\t8-9\nMems_allowed_list:\t0\n"}, want: []string{"proc/self/status", "none of them online"}},
		{name: "allowed nodes absent", edits: map[string]string{"proc/self/status": "Cpus_allowed_list:\t0\nMems_allowed_list:\t5\n"}, want: []string{"proc/self/status", "none of them present"}},
		{name: "bad cgroup cpus", edits: map[string]string{"proc/mounts": "none /dev/cpuset cpuset rw 0 0\n", "proc/self/cpuset": "/\n", "dev/cpuset/cpus": "x\n", "dev/cpuset/mems": "0\n"}, want: []string{"dev/cpuset/cpus"}},
		{name: "bad proc/mounts", edits: map[string]string{"proc/mounts": "none\n"}, want: []string{"proc/mounts", "line 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base
			if base == nil {
				base = baseTree()
			}
			h, err := Read(writeHost(t, base, tc.edits))
			if err == nil {
				t.Fatalf("Read gave %+v, want an error", h)
			}
			if h != nil {
				t.Errorf("Read gave a host with its error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
