package plan

import (
	"errors"
	"testing"
)

// TestMakeOvercommit: shared vCPUs may outnumber a node's cores only when
// asked; each then floats over all of its node's CPUs, and memory still
// decides how many nodes the VM needs.
func TestMakeOvercommit(t *testing.T) {
	h := genHost(2, 2, 1, 4*gib) // 2 nodes of 2 cores, 4 GiB free each
	spec := Spec{VCPUs: 6, MemoryBytes: 1 * gib}
	if _, err := Make(h, spec, nil); !errors.Is(err, ErrDoesNotFit) {
		t.Fatalf("6 vCPUs on 4 cores without --overcommit: %v, want ErrDoesNotFit", err)
	}

	spec.Overcommit = true
	p, err := Make(h, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, h, spec, nil, p)
	if len(p.HostNodes) != 1 {
		t.Errorf("host nodes %v, want one node (memory fits one, vCPUs may share)", p.HostNodes)
	}
	node, _ := h.Node(p.HostNodes[0])
	for _, v := range p.VCPUs {
		if !v.HostCPUs.Equals(node.CPUs) {
			t.Errorf("vcpu %d floats over %s, want all of node %d's cpus %s", v.ID, v.HostCPUs, node.ID, node.CPUs)
		}
	}

	// Memory larger than a node still spans two nodes.
	spec.MemoryBytes = 6 * gib
	if p, err = Make(h, spec, nil); err != nil {
		t.Fatal(err)
	}
	if len(p.HostNodes) != 2 {
		t.Errorf("6 GiB on nodes of 4 GiB: host nodes %v, want two", p.HostNodes)
	}

	// The per-node cap still holds.
	spec.MemoryBytes, spec.MaxVCPUsPerNode = 1*gib, 3
	if p, err = Make(h, spec, nil); err != nil {
		t.Fatal(err)
	}
	if len(p.HostNodes) != 2 {
		t.Errorf("--max-vcpus-per-node 3 with 6 vCPUs: host nodes %v, want two", p.HostNodes)
	}

	spec.MaxVCPUsPerNode, spec.Dedicated = 0, true
	if _, err := Make(h, spec, nil); !errors.Is(err, ErrBadSpec) {
		t.Errorf("--overcommit with --cpus-dedicated: %v, want ErrBadSpec", err)
	}
}
