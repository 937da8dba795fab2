package plan

import (
	"slices"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/topology"
)

const gib = 1 << 30

// genHost builds a host of nodes × cores × threads the way Linux numbers
// CPUs (all first threads, then all second threads), every node with
// memFree bytes free, distances 10 local and 21 remote.
func genHost(nodes, cores, threads int, memFree uint64) *topology.Host {
	h := &topology.Host{}
	total := nodes * cores
	var all []int
	for n := 0; n < nodes; n++ {
		node := topology.Node{ID: n, MemTotal: memFree * 2, MemFree: memFree, Distances: map[int]int{}}
		var ids []int
		for c := 0; c < cores; c++ {
			var sib []int
			for t := 0; t < threads; t++ {
				sib = append(sib, t*total+n*cores+c)
			}
			ids = append(ids, sib...)
			for _, id := range sib {
				h.CPUs = append(h.CPUs, topology.CPU{ID: id, Node: n, Package: n, Core: n*cores + c, Siblings: cpuset.New(sib...)})
			}
		}
		node.CPUs = cpuset.New(ids...)
		all = append(all, ids...)
		for m := 0; m < nodes; m++ {
			node.Distances[m] = 21
			if m == n {
				node.Distances[m] = 10
			}
		}
		h.Nodes = append(h.Nodes, node)
	}
	sortCPUs(h)
	h.OnlineCPUs = cpuset.New(all...)
	h.Allowed = topology.Allowed{CPUs: h.OnlineCPUs, Mems: cpuset.New(h.NodeIDs()...), Source: "online"}
	return h
}

func sortCPUs(h *topology.Host) {
	byID := map[int]topology.CPU{}
	for _, c := range h.CPUs {
		byID[c.ID] = c
	}
	h.CPUs = h.CPUs[:0]
	for _, id := range cpuset.New(keys(byID)...).List() {
		h.CPUs = append(h.CPUs, byID[id])
	}
}

func keys(m map[int]topology.CPU) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}

// intel2p is 32intel64-2p8co2t+8ve as issue 3 describes it: 2 nodes of 8
// cores × 2 threads, about 30.7 GiB of room on node 0 and 12.7 on node 1,
// 2 MiB hugepages.
func intel2p() *topology.Host {
	h := genHost(2, 8, 2, 0)
	h.Nodes[0].MemFree, h.Nodes[0].InactiveFile = 24465948<<10, 7692612<<10
	h.Nodes[1].MemFree, h.Nodes[1].InactiveFile = 10710036<<10, 2602984<<10
	h.Nodes[0].Hugepages = []topology.Hugepages{{SizeBytes: 2 << 20, Total: 1024, Free: 1024}}
	h.Nodes[1].Hugepages = []topology.Hugepages{{SizeBytes: 2 << 20, Total: 4096, Free: 4096}}
	return h
}

// withMemoryOnly adds a CPU-less node (like a GPU's memory) at distance d.
func withMemoryOnly(h *topology.Host, id int, free uint64, d int) *topology.Host {
	n := topology.Node{ID: id, MemTotal: free, MemFree: free, Distances: map[int]int{id: 10}}
	for i := range h.Nodes {
		h.Nodes[i].Distances[id] = d
		n.Distances[h.Nodes[i].ID] = d
	}
	h.Nodes = append(h.Nodes, n)
	h.Allowed.Mems = h.Allowed.Mems.Union(cpuset.New(id))
	return h
}

// checkPlan asserts what every plan must hold, whatever the host.
func checkPlan(t *testing.T, h *topology.Host, spec Spec, placed []Placed, p *Plan) {
	t.Helper()
	if got := p.Sockets * p.Cores * p.Threads; got != spec.VCPUs {
		t.Errorf("sockets %d × cores %d × threads %d = %d, want %d vcpus", p.Sockets, p.Cores, p.Threads, got, spec.VCPUs)
	}
	if len(p.VCPUs) != spec.VCPUs {
		t.Fatalf("%d vcpus placed, want %d", len(p.VCPUs), spec.VCPUs)
	}
	g := granule(spec)
	var mem uint64
	hostNodes := cpuset.New()
	for i, gn := range p.GuestNodes {
		interleaved := spec.Policy == memobj.PolicyInterleave && slices.Equal(gn.HostNodes, p.HostNodes)
		if gn.ID != i || (len(gn.HostNodes) != 1 && !interleaved) {
			t.Errorf("guest node %d: id %d, host nodes %v; want id %d on one host node", i, gn.ID, gn.HostNodes, i)
		}
		mem += gn.MemoryBytes
		if gn.MemoryBytes%g != 0 || (gn.MemoryBytes == 0 && len(gn.VCPUs) == 0) {
			t.Errorf("guest node %d: memory %d is not a positive multiple of %d", i, gn.MemoryBytes, g)
		}
		n, _ := h.Node(gn.HostNodes[0])
		if !h.Allowed.Mems.Contains(n.ID) {
			t.Errorf("guest node %d on host node %d, which is not allowed", i, n.ID)
		}
		usable := n.CPUs.Intersection(h.Allowed.CPUs).Intersection(h.OnlineCPUs)
		if usable.IsEmpty() && len(gn.VCPUs) > 0 {
			t.Errorf("guest node %d on host node %d without usable CPUs has vcpus %v", i, n.ID, gn.VCPUs)
		}
		for _, v := range gn.VCPUs {
			if !p.VCPUs[v].HostCPUs.IsSubsetOf(usable) || p.VCPUs[v].HostCPUs.IsEmpty() {
				t.Errorf("vcpu %d on CPUs %s, not within host node %d's usable CPUs %s", v, p.VCPUs[v].HostCPUs, n.ID, usable)
			}
			if p.VCPUs[v].GuestNode != i {
				t.Errorf("vcpu %d says guest node %d, listed by guest node %d", v, p.VCPUs[v].GuestNode, i)
			}
		}
		hostNodes = hostNodes.Union(cpuset.New(n.ID))
	}
	if mem != spec.MemoryBytes {
		t.Errorf("guest memory adds up to %d, want %d", mem, spec.MemoryBytes)
	}
	if !cpuset.New(p.HostNodes...).Equals(hostNodes) || !p.Mempolicy.Nodes.Equals(hostNodes) {
		t.Errorf("HostNodes %v, mempolicy nodes %s, guest nodes' host nodes %s: want all equal", p.HostNodes, p.Mempolicy.Nodes, hostNodes)
	}
	// No vCPU on another VM's dedicated CPUs; no dedicated vCPU where
	// another VM's threads run.
	taken := cpuset.New()
	for _, pl := range placed {
		taken = taken.Union(pl.DedicatedCPUs)
		if spec.Dedicated {
			taken = taken.Union(pl.CPUs)
		}
	}
	mine := cpuset.New()
	for i, v := range p.VCPUs {
		if v.ID != i {
			t.Errorf("vcpu %d has id %d", i, v.ID)
		}
		if !v.HostCPUs.Intersection(taken).IsEmpty() {
			t.Errorf("vcpu %d on CPUs %s, dedicated to another VM (%s)", i, v.HostCPUs, taken)
		}
		if spec.Dedicated {
			if !v.HostCPUs.Intersection(mine).IsEmpty() {
				t.Errorf("dedicated vcpu %d on CPUs %s, already given to another vcpu", i, v.HostCPUs)
			}
			mine = mine.Union(v.HostCPUs)
		}
	}
	if p.EmulatorCPUs.IsEmpty() {
		t.Errorf("no emulator CPUs")
	}
	if len(p.Reasons) < 3 {
		t.Errorf("reasons %q: want the choice explained", p.Reasons)
	}
}

// placedOf is what a ledger would record for p.
func placedOf(name string, p *Plan) Placed {
	pl := Placed{Name: name, MemoryBytes: map[int]uint64{}, VCPUs: map[int]int{}, DedicatedCPUs: cpuset.New()}
	for _, g := range p.GuestNodes {
		pl.MemoryBytes[g.HostNodes[0]] += g.MemoryBytes
		pl.VCPUs[g.HostNodes[0]] += len(g.VCPUs)
	}
	pl.CPUs = p.EmulatorCPUs
	for _, v := range p.VCPUs {
		pl.CPUs = pl.CPUs.Union(v.HostCPUs)
		if p.Spec.Dedicated {
			pl.DedicatedCPUs = pl.DedicatedCPUs.Union(v.HostCPUs)
		}
	}
	pl.HugepageBytes = p.Spec.HugepageBytes
	return pl
}
