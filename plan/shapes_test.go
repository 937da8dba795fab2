package plan

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/topology"
	"github.com/qnuma/qnuma/topology/topotest"
)

// machines are the shapes no snapshot holds, built as sysfs trees and read
// with topology.Read, so that plans see what a real host would give.
var machines = map[string]func() topotest.Machine{
	"arm-clusters":    func() topotest.Machine { return topotest.ARMClusters(0) },
	"snc2":            topotest.SNC2,
	"power9-smt4":     topotest.POWER9SMT4,
	"power8-smt8-off": topotest.POWER8SMT8Off,
	"64-nodes":        topotest.Nodes64,
	"knl-snc4-flat":   topotest.KNL,
}

// shapeCase is one VM planned on one shape, with the rule it must keep.
// check gets the plan or the error (never both nil).
type shapeCase struct {
	shape  string
	name   string
	spec   Spec
	placed []Placed
	check  func(t *testing.T, h *topology.Host, p *Plan, err error)
}

var shapeCases = []shapeCase{
	// ARM: no SMT, so cores are CPUs; shared vCPUs float over the node.
	{shape: "arm-clusters", name: "4 shared vcpus float over one node", spec: Spec{VCPUs: 4, MemoryBytes: 8 * gib},
		check: all(onNodes(1), floating)}, // node 1 has the more room
	{shape: "arm-clusters", name: "12 shared vcpus span both nodes", spec: Spec{VCPUs: 12, MemoryBytes: 8 * gib},
		check: all(onNodes(0, 1), vcpusPerNode(6, 6), floating)},
	{shape: "arm-clusters", name: "8 dedicated vcpus take one CPU each", spec: Spec{VCPUs: 8, MemoryBytes: 8 * gib, Dedicated: true},
		check: all(onNodes(1), coresEach(1))},
	{shape: "arm-clusters", name: "2 MiB hugepages", spec: Spec{VCPUs: 2, MemoryBytes: gib, HugepageBytes: 2 << 20},
		check: onNodes(0)},
	{shape: "arm-clusters", name: "17 vcpus do not fit 16 cores", spec: Spec{VCPUs: 17, MemoryBytes: gib},
		check: failsWith(ErrDoesNotFit, "17 vCPUs asked, the usable nodes have 16 cores in all")},

	// SNC-2: two nodes are the SNC siblings of one package (11), never
	// nodes across packages (21).
	{shape: "snc2", name: "6 vcpus take an SNC pair", spec: Spec{VCPUs: 6, MemoryBytes: 8 * gib},
		check: all(sncPair, vcpusPerNode(3, 3))},
	{shape: "snc2", name: "60G takes an SNC pair", spec: Spec{VCPUs: 2, MemoryBytes: 60 * gib},
		check: all(sncPair, onNodes(0, 1))}, // the pair with the most room: 84 GiB against 76
	{shape: "snc2", name: "2 guest nodes take an SNC pair", spec: Spec{VCPUs: 4, MemoryBytes: 4 * gib, GuestNodes: 2},
		check: sncPair},
	{shape: "snc2", name: "node 1 taken: the other package's pair, not 0 and 2",
		spec:   Spec{VCPUs: 6, MemoryBytes: 8 * gib},
		placed: []Placed{{Name: "busy", DedicatedCPUs: topotest.SNC2().Nodes[1].CPUs}},
		check:  all(sncPair, onNodes(2, 3))},
	{shape: "snc2", name: "8 threads fit one SNC node", spec: Spec{VCPUs: 8, MemoryBytes: 8 * gib, PreferHT: true},
		check: onNodes(2)}, // the roomiest
	{shape: "snc2", name: "dedicated thread pairs are sibling pairs", spec: Spec{VCPUs: 4, MemoryBytes: 2 * gib, Dedicated: true, PreferHT: true},
		check: all(onNodes(2), smp(1, 2, 2), siblingPairs)},

	// POWER9 SMT4: PreferHT counts the 4 threads of each core; dedicated
	// vCPUs take whole cores.
	{shape: "power9-smt4", name: "12 vcpus fit one node counting threads", spec: Spec{VCPUs: 12, MemoryBytes: 8 * gib, PreferHT: true},
		check: all(onNodes(8), roomCPUs(16), vcpusPerNode(12))},
	{shape: "power9-smt4", name: "12 vcpus do not fit 8 cores", spec: Spec{VCPUs: 12, MemoryBytes: 8 * gib},
		check: failsWith(ErrDoesNotFit, "12 vCPUs asked, the usable nodes have 8 cores in all")},
	{shape: "power9-smt4", name: "6 vcpus by cores span both chips", spec: Spec{VCPUs: 6, MemoryBytes: 8 * gib},
		check: all(onNodes(0, 8), roomCPUs(4), vcpusPerNode(3, 3))},
	{shape: "power9-smt4", name: "dedicated vcpus take whole cores", spec: Spec{VCPUs: 3, MemoryBytes: 4 * gib, Dedicated: true},
		check: all(onNodes(8), coresEach(4))},
	{shape: "power9-smt4", name: "5 dedicated cores span both chips", spec: Spec{VCPUs: 5, MemoryBytes: 4 * gib, Dedicated: true},
		check: all(onNodes(0, 8), coresEach(4))},
	{shape: "power9-smt4", name: "dedicated threads with prefer-ht", spec: Spec{VCPUs: 8, MemoryBytes: 4 * gib, Dedicated: true, PreferHT: true},
		check: all(onNodes(8), threadsEach)},

	// POWER8 with SMT off: one thread a core, the nearest pair of nodes.
	{shape: "power8-smt8-off", name: "3 threads span a drawer pair", spec: Spec{VCPUs: 3, MemoryBytes: 4 * gib, PreferHT: true},
		check: all(onNodes(0, 1), roomCPUs(2), maxSpan(20))},
	{shape: "power8-smt8-off", name: "5 cores span three nodes", spec: Spec{VCPUs: 5, MemoryBytes: 4 * gib},
		check: onNodeCount(3)},
	{shape: "power8-smt8-off", name: "16 MiB hugepages", spec: Spec{VCPUs: 2, MemoryBytes: 512 << 20, HugepageBytes: 16 << 20},
		check: onNodes(0)},

	// 64 nodes: a VM needing three nodes takes three of one router group.
	{shape: "64-nodes", name: "5 vcpus take three mutually near nodes", spec: Spec{VCPUs: 5, MemoryBytes: 4 * gib},
		check: all(onNodeCount(3), maxSpan(13), onNodes(0, 32, 64))},
	{shape: "64-nodes", name: "5 vcpus near node 126", spec: Spec{VCPUs: 5, MemoryBytes: 4 * gib, NearNode: 126, HasNearNode: true},
		check: all(onNodeCount(3), maxSpan(13), includes(126))},
	{shape: "64-nodes", name: "8G on 2 vcpus takes three near nodes", spec: Spec{VCPUs: 2, MemoryBytes: 8 * gib},
		check: all(onNodeCount(3), maxSpan(13))},
	{shape: "64-nodes", name: "spread 6 vcpus", spec: Spec{VCPUs: 6, MemoryBytes: 3 * gib, Spread: true},
		check: onNodeCount(6)},

	// KNL: MCDRAM nodes never get vCPUs, and hold memory only when allowed.
	{shape: "knl-snc4-flat", name: "small vm stays on a quadrant", spec: Spec{VCPUs: 4, MemoryBytes: 4 * gib},
		check: onNodes(0)},
	{shape: "knl-snc4-flat", name: "100G does not fit the DDR nodes", spec: Spec{VCPUs: 4, MemoryBytes: 100 * gib},
		check: failsWith(ErrDoesNotFit, "100 GiB asked")},
	{shape: "knl-snc4-flat", name: "100G with memory-only nodes", spec: Spec{VCPUs: 4, MemoryBytes: 100 * gib, AllowMemoryOnly: true},
		check: usesMemoryOnly},
	{shape: "knl-snc4-flat", name: "MCDRAM node given without AllowMemoryOnly", spec: Spec{VCPUs: 2, MemoryBytes: 2 * gib, HostNodes: []int{0, 4}},
		check: failsWith(ErrDoesNotFit, "host node 4 cannot hold this vm: memory-only node")},
	{shape: "knl-snc4-flat", name: "MCDRAM node given with AllowMemoryOnly", spec: Spec{VCPUs: 2, MemoryBytes: 2 * gib, HostNodes: []int{0, 4}, AllowMemoryOnly: true},
		check: all(onNodes(0, 4), usesMemoryOnly)},
	{shape: "knl-snc4-flat", name: "spread over quadrants with AllowMemoryOnly", spec: Spec{VCPUs: 8, MemoryBytes: 8 * gib, Spread: true, AllowMemoryOnly: true},
		check: all(onNodes(0, 1, 2, 3), vcpusPerNode(2, 2, 2, 2))},
}

func TestShapePlans(t *testing.T) {
	hosts := map[string]*topology.Host{}
	golden := map[string]*strings.Builder{}
	for _, c := range shapeCases {
		h := hosts[c.shape]
		if h == nil {
			var err error
			if h, err = topology.Read(machines[c.shape]().Write(t)); err != nil {
				t.Fatalf("read %s: %v", c.shape, err)
			}
			hosts[c.shape], golden[c.shape] = h, &strings.Builder{}
		}
		b := golden[c.shape]
		t.Run(c.shape+"/"+c.name, func(t *testing.T) {
			fmt.Fprintf(b, "=== %s\n", c.name)
			p, err := Make(h, c.spec, c.placed)
			if err != nil {
				fmt.Fprintf(b, "error: %v\n\n", err)
			} else {
				checkPlan(t, h, p.Spec, c.placed, p)
				noMemoryOnlyVCPUs(t, h, p)
				if err := p.Describe(b); err != nil {
					t.Fatal(err)
				}
				b.WriteString("\n")
			}
			c.check(t, h, p, err)
		})
	}
	for shape := range machines {
		b := golden[shape]
		if b == nil {
			t.Errorf("no case plans on %s", shape)
			continue
		}
		compareGolden(t, filepath.Join("testdata", "shapes", shape+".txt"), b.String())
	}
}

type checkFunc = func(t *testing.T, h *topology.Host, p *Plan, err error)

// all runs the checks in order; each but failsWith needs a plan.
func all(checks ...checkFunc) checkFunc {
	return func(t *testing.T, h *topology.Host, p *Plan, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("Make: %v", err)
		}
		for _, c := range checks {
			c(t, h, p, nil)
		}
	}
}

func failsWith(target error, text string) checkFunc {
	return func(t *testing.T, _ *topology.Host, p *Plan, err error) {
		t.Helper()
		if !errors.Is(err, target) || !strings.Contains(err.Error(), text) {
			t.Errorf("error %v (plan %v), want %v saying %q", err, p != nil, target, text)
		}
	}
}

func onNodes(ids ...int) checkFunc {
	return all(func(t *testing.T, _ *topology.Host, p *Plan, _ error) {
		t.Helper()
		if !slices.Equal(p.HostNodes, ids) {
			t.Errorf("host nodes %v, want %v", p.HostNodes, ids)
		}
	})
}

func onNodeCount(n int) checkFunc {
	return all(func(t *testing.T, _ *topology.Host, p *Plan, _ error) {
		t.Helper()
		if len(p.HostNodes) != n {
			t.Errorf("host nodes %v, want %d of them", p.HostNodes, n)
		}
	})
}

func includes(id int) checkFunc {
	return all(func(t *testing.T, _ *topology.Host, p *Plan, _ error) {
		t.Helper()
		if !slices.Contains(p.HostNodes, id) {
			t.Errorf("host nodes %v, want them to include %d", p.HostNodes, id)
		}
	})
}

func vcpusPerNode(want ...int) checkFunc {
	return all(func(t *testing.T, _ *topology.Host, p *Plan, _ error) {
		t.Helper()
		var got []int
		for _, g := range p.GuestNodes {
			got = append(got, len(g.VCPUs))
		}
		if !slices.Equal(got, want) {
			t.Errorf("vcpus per guest node %v, want %v", got, want)
		}
	})
}

func smp(sockets, cores, threads int) checkFunc {
	return all(func(t *testing.T, _ *topology.Host, p *Plan, _ error) {
		t.Helper()
		if p.Sockets != sockets || p.Cores != cores || p.Threads != threads {
			t.Errorf("-smp %d×%d×%d, want %d×%d×%d", p.Sockets, p.Cores, p.Threads, sockets, cores, threads)
		}
	})
}

// maxSpan: every two chosen host nodes are at most d apart, both ways.
func maxSpan(d int) checkFunc {
	return all(func(t *testing.T, h *topology.Host, p *Plan, _ error) {
		t.Helper()
		for _, a := range p.HostNodes {
			n, _ := h.Node(a)
			for _, b := range p.HostNodes {
				if got := n.Distances[b]; got > d {
					t.Errorf("host nodes %v: %d→%d is %d, want at most %d", p.HostNodes, a, b, got, d)
				}
			}
		}
	})
}

// sncPair: two host nodes of one package, 11 apart, and the guest sees 11.
func sncPair(t *testing.T, h *topology.Host, p *Plan, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	if len(p.HostNodes) != 2 {
		t.Fatalf("host nodes %v, want an SNC pair", p.HostNodes)
	}
	a, b := p.HostNodes[0], p.HostNodes[1]
	n, _ := h.Node(a)
	if n.Distances[b] != 11 || a/2 != b/2 {
		t.Errorf("host nodes %v are %d apart, want an SNC pair (11 apart, one package)", p.HostNodes, n.Distances[b])
	}
	if len(p.Distances) != 2 || p.Distances[0][1] != 11 || p.Distances[1][0] != 11 {
		t.Errorf("guest distances %v, want 11 between the two nodes", p.Distances)
	}
}

// roomCPUs: each chosen node's room counts n CPUs.
func roomCPUs(n int) checkFunc {
	return all(func(t *testing.T, _ *topology.Host, p *Plan, _ error) {
		t.Helper()
		for _, r := range p.Rooms {
			if slices.Contains(p.HostNodes, r.Node) && r.CPUs != n {
				t.Errorf("node %d room %d cpus, want %d", r.Node, r.CPUs, n)
			}
		}
	})
}

// floating: each shared vCPU may run on every CPU of its host node.
func floating(t *testing.T, h *topology.Host, p *Plan, _ error) {
	t.Helper()
	for _, v := range p.VCPUs {
		n, _ := h.Node(p.GuestNodes[v.GuestNode].HostNodes[0])
		if !v.HostCPUs.Equals(n.CPUs) {
			t.Errorf("vcpu %d on cpus %s, want all of node %d's %s", v.ID, v.HostCPUs, n.ID, n.CPUs)
		}
	}
}

// coresEach: each dedicated vCPU has a whole core of n threads, its own.
func coresEach(n int) checkFunc {
	return all(func(t *testing.T, h *topology.Host, p *Plan, _ error) {
		t.Helper()
		sib := siblingsOf(h)
		for _, v := range p.VCPUs {
			if v.HostCPUs.Size() != n || !v.HostCPUs.Equals(sib[v.HostCPUs.List()[0]]) {
				t.Errorf("vcpu %d on cpus %s, want one whole core of %d threads", v.ID, v.HostCPUs, n)
			}
		}
	})
}

// threadsEach: each dedicated vCPU has one thread of its own.
func threadsEach(t *testing.T, _ *topology.Host, p *Plan, _ error) {
	t.Helper()
	for _, v := range p.VCPUs {
		if v.HostCPUs.Size() != 1 {
			t.Errorf("vcpu %d on cpus %s, want one thread", v.ID, v.HostCPUs)
		}
	}
}

// siblingPairs: guest threads 0 and 1 of a guest core are host siblings.
func siblingPairs(t *testing.T, h *topology.Host, p *Plan, _ error) {
	t.Helper()
	sib := siblingsOf(h)
	for i := 0; i+1 < len(p.VCPUs); i += 2 {
		a, b := p.VCPUs[i].HostCPUs, p.VCPUs[i+1].HostCPUs
		if a.Size() != 1 || b.Size() != 1 || !sib[a.List()[0]].Equals(a.Union(b)) {
			t.Errorf("vcpus %d and %d on %s and %s, want the two threads of one core", i, i+1, a, b)
		}
	}
}

// usesMemoryOnly: some guest node is on a CPU-less host node, with memory.
func usesMemoryOnly(t *testing.T, h *topology.Host, p *Plan, _ error) {
	t.Helper()
	for _, g := range p.GuestNodes {
		if n, _ := h.Node(g.HostNodes[0]); !n.HasCPUs() && g.MemoryBytes > 0 {
			return
		}
	}
	t.Errorf("host nodes %v: no memory-only node holds memory", p.HostNodes)
}

// noMemoryOnlyVCPUs: CPU-less host nodes get no vCPUs, and are used only
// with AllowMemoryOnly.
func noMemoryOnlyVCPUs(t *testing.T, h *topology.Host, p *Plan) {
	t.Helper()
	for _, g := range p.GuestNodes {
		n, _ := h.Node(g.HostNodes[0])
		if n.HasCPUs() {
			continue
		}
		if len(g.VCPUs) > 0 {
			t.Errorf("memory-only host node %d got vcpus %v", n.ID, g.VCPUs)
		}
		if !p.Spec.AllowMemoryOnly {
			t.Errorf("memory-only host node %d used without AllowMemoryOnly", n.ID)
		}
	}
}

func siblingsOf(h *topology.Host) map[int]cpuset.CPUSet {
	m := map[int]cpuset.CPUSet{}
	for _, c := range h.CPUs {
		m[c.ID] = c.Siblings
	}
	return m
}
