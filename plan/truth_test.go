package plan

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/topology"
)

// hugeHost is two nodes of 4 cores, each with pages free 1 GiB hugepages.
func hugeHost(pages uint64) *topology.Host {
	h := genHost(2, 4, 1, 8*gib)
	for i := range h.Nodes {
		h.Nodes[i].Hugepages = []topology.Hugepages{{SizeBytes: gib, Total: pages, Free: pages}}
	}
	return h
}

// Memory is split in whole hugepages: 1 GiB in one 1 GiB page over the two
// nodes 8 vCPUs need fits, node 1's guest node holding vCPUs and no memory,
// and the plan says why; 3 GiB over two nodes is 2+1 pages.
func TestHugepagesSplitInWholePages(t *testing.T) {
	tests := []struct {
		name    string
		pages   uint64
		mem     uint64
		wantMem []uint64
		reason  string
	}{
		{name: "one page, two vcpu nodes", pages: 1, mem: gib, wantMem: []uint64{gib, 0},
			reason: "1 GiB is 1 whole 1 GiB hugepages, fewer than the 2 nodes the vCPUs need, so guest node 1 has vCPUs and no memory"},
		{name: "three pages over two nodes", pages: 2, mem: 3 * gib, wantMem: []uint64{2 * gib, gib}, reason: "Memory is split evenly: 2 GiB on node 0, 1 GiB on node 1."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := Spec{VCPUs: 8, MemoryBytes: tc.mem, HugepageBytes: gib}
			p, err := Make(hugeHost(tc.pages), spec, nil)
			if err != nil {
				t.Fatalf("Make: %v", err)
			}
			var mem []uint64
			for _, g := range p.GuestNodes {
				mem = append(mem, g.MemoryBytes)
				if len(g.VCPUs) != 4 {
					t.Errorf("guest node %d has vcpus %v, want 4", g.ID, g.VCPUs)
				}
			}
			if !slices.Equal(mem, tc.wantMem) {
				t.Errorf("memory per guest node %v, want %v", mem, tc.wantMem)
			}
			if !hasReason(p, tc.reason) {
				t.Errorf("reasons %q: want one with %q", p.Reasons, tc.reason)
			}
			args, err := p.Args(RenderOptions{QEMU: qemu72})
			if err != nil {
				t.Fatalf("Args: %v", err)
			}
			if got := countPrefix(args, "memory-backend-"); got != len(slices.DeleteFunc(mem, func(m uint64) bool { return m == 0 })) {
				t.Errorf("%d backends in %q", got, args)
			}
		})
	}
}

func hasReason(p *Plan, s string) bool {
	for _, r := range p.Reasons {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// A host that reports no distances: the reason for the chosen set does not
// cite a distance (every pair counts 20 and none was compared); with
// distances it does.
func TestReasonCitesOnlyKnownDistances(t *testing.T) {
	for _, known := range []bool{true, false} {
		h := genHost(4, 4, 1, 8*gib)
		if !known {
			for i := range h.Nodes {
				h.Nodes[i].Distances = nil
			}
		}
		p, err := Make(h, Spec{VCPUs: 6, MemoryBytes: 2 * gib}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.HostNodes) != 2 {
			t.Fatalf("host nodes %v, want two", p.HostNodes)
		}
		if got := hasReason(p, "distance between its nodes"); got != known {
			t.Errorf("distances known %v: a reason cites a distance: %v (%q)", known, got, p.Reasons)
		}
		if !hasReason(p, "candidate node sets this one was chosen for the most room") && !known {
			t.Errorf("no distances: reasons %q, want the choice by room", p.Reasons)
		}
	}
}

// --policy interleave interleaves guest RAM: every guest node's backend
// has host-nodes = all the VM's host nodes and policy=interleave; an
// interleave that cannot spread evenly does not fit.
func TestInterleaveSpreadsOverEveryNode(t *testing.T) {
	h := intel2p()
	p, err := Make(h, Spec{VCPUs: 12, MemoryBytes: 8 * gib, Policy: memobj.PolicyInterleave}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range p.GuestNodes {
		if !slices.Equal(g.HostNodes, []int{0, 1}) {
			t.Errorf("guest node %d on host nodes %v, want 0-1", g.ID, g.HostNodes)
		}
	}
	for _, v := range p.VCPUs {
		want := cpuset.New(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
		if v.GuestNode == 1 {
			want = cpuset.New(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31)
		}
		if !v.HostCPUs.Equals(want) {
			t.Errorf("vcpu %d of guest node %d on %s, want its node's CPUs %s", v.ID, v.GuestNode, v.HostCPUs, want)
		}
	}
	args, err := p.Args(RenderOptions{QEMU: qemu72})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"qnuma-ram0", "qnuma-ram1"} {
		want := "memory-backend-memfd,id=" + id + ",size=4G,host-nodes=0-1,policy=interleave"
		if !slices.Contains(args, want) {
			t.Errorf("args %q: want %q", args, want)
		}
	}
	if !hasReason(p, "interleaves its pages over every chosen node (nodes 0-1") {
		t.Errorf("reasons %q: want the interleave said", p.Reasons)
	}

	// 36 GiB: node 1 has room for 12.7 GiB, not half.
	_, err = Make(h, Spec{VCPUs: 8, MemoryBytes: 36 * gib, Policy: memobj.PolicyInterleave, HostNodes: []int{0, 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "--policy interleave spreads 36 GiB evenly over the 2 nodes, and node 1 has room for 12.7 GiB of its 18 GiB") {
		t.Errorf("interleave 36 GiB on nodes 0-1: err = %v", err)
	}
}

// --policy preferred over several nodes: the process prefers them all
// (MPOL_PREFERRED_MANY), with MPOL_PREFERRED on the first node as the
// fallback; backends prefer their own node; the plan says each.
func TestPreferredOverSeveralNodes(t *testing.T) {
	p, err := Make(intel2p(), Spec{VCPUs: 12, MemoryBytes: 8 * gib, Policy: memobj.PolicyPreferred}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mempolicy.Mode != memobj.PolicyPreferredMany || !p.Mempolicy.Nodes.Equals(cpuset.New(0, 1)) {
		t.Errorf("mempolicy %+v, want preferred-many on 0-1", p.Mempolicy)
	}
	if m, _ := p.Mempolicy.Mode.Mode(); m != 5 {
		t.Errorf("mode %d, want MPOL_PREFERRED_MANY (5)", m)
	}
	fb, ok := p.Mempolicy.Fallback()
	if !ok || fb.Mode != memobj.PolicyPreferred || !fb.Nodes.Equals(cpuset.New(0)) {
		t.Errorf("fallback %+v %v, want preferred on node 0", fb, ok)
	}
	if !hasReason(p, "MPOL_PREFERRED_MANY") || !hasReason(p, "MPOL_PREFERRED on node 0 only") {
		t.Errorf("reasons %q: want the process policy and its fallback said", p.Reasons)
	}
	args, err := p.Args(RenderOptions{QEMU: qemu72})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{"0", "1"} {
		want := "memory-backend-memfd,id=qnuma-ram" + string(rune('0'+i)) + ",size=4G,host-nodes=" + n + ",policy=preferred"
		if !slices.Contains(args, want) {
			t.Errorf("args %q: want %q", args, want)
		}
	}
	one, err := Make(intel2p(), Spec{VCPUs: 2, MemoryBytes: gib, Policy: memobj.PolicyPreferred}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if one.Mempolicy.Mode != memobj.PolicyPreferred {
		t.Errorf("one node: mempolicy %+v, want preferred", one.Mempolicy)
	}
	if _, ok := one.Mempolicy.Fallback(); ok {
		t.Errorf("one node: a fallback, want none")
	}
}
