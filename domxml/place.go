package domxml

import (
	"fmt"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
)

// FromPlan is a qnuma plan as libvirt placement, in the reader's terms, so
// that what Rewrite writes and what Parse reads back compare field by field:
//
//   - Memory: the guest RAM; VCPU: placement static, Max the slots of the
//     plan's topology (sockets × dies × cores × threads), Current its vCPUs
//     when that is fewer (QEMU -smp N,maxcpus=M);
//   - Topology: the plan's -smp;
//   - CPUTune: a vcpupin per vCPU on its planned host CPUs, and the
//     emulator pinned where qemu's other threads go (EmulatorCPUs);
//   - NUMATune: <memory> on the plan's host nodes in the mode of its
//     policy (bind is libvirt's strict). A policy of preferred over several
//     nodes is written as preferred on the first: libvirt's process-wide
//     preferred mode takes one node, as MPOL_PREFERRED does (the plan's
//     Mempolicy.Fallback); the cells' memnodes still prefer their own nodes;
//   - with more than one guest node: Cells with their vCPUs (a socket's
//     offline slots go to the cell of its vCPUs, as QEMU's -numa cpu puts
//     them), sizes and the host's distances between their host nodes, and a
//     <memnode> per cell binding it to its host nodes;
//   - with hugepages: one page size, for every cell.
//
// A one-node plan has no <cpu><numa> and no <memnode>: the guest is one
// node without saying so, as a VM without -numa is to QEMU, and
// <numatune><memory> binds all of it (libvirt allows <memnode> only for
// cells, and a single cell would add nothing but a backend per cell).
//
// A --bind-only plan is refused (ErrUnsupported): it keeps the user's own
// QEMU layout, and libvirt writes its own command line.
func FromPlan(p *plan.Plan) (*Domain, error) {
	if p.BindOnly {
		return nil, fmt.Errorf("%w: a --bind-only plan keeps the QEMU command line's own layout; libvirt writes its own, so plan without --bind-only", ErrUnsupported)
	}
	if len(p.GuestNodes) == 0 || len(p.VCPUs) == 0 {
		return nil, fmt.Errorf("libvirt placement of a plan with %d guest nodes and %d vcpus: want at least one of each", len(p.GuestNodes), len(p.VCPUs))
	}
	topo := memobj.Topology{CPUs: len(p.VCPUs), Sockets: p.Sockets, Dies: 1, Clusters: 1, Cores: p.Cores, Threads: p.Threads}
	topo.MaxCPUs = p.Sockets * p.Cores * p.Threads
	if t := p.Spec.Topology; t != nil {
		topo = *t
		topo.Dies, topo.Clusters = max(topo.Dies, 1), max(topo.Clusters, 1)
	}
	if topo.Clusters > 1 {
		return nil, fmt.Errorf("%w: a guest topology with %d clusters (x86 has none)", ErrUnsupported, topo.Clusters)
	}
	slots := topo.Sockets * topo.Dies * topo.Cores * topo.Threads
	if slots < len(p.VCPUs) || slots > maxCount {
		return nil, fmt.Errorf("libvirt placement: topology %d sockets × %d dies × %d cores × %d threads for %d vcpus", topo.Sockets, topo.Dies, topo.Cores, topo.Threads, len(p.VCPUs))
	}
	mode, err := modeOf(p.Spec.Policy)
	if err != nil {
		return nil, err
	}
	d := &Domain{
		Memory:   p.Spec.MemoryBytes,
		VCPU:     VCPU{Max: slots, Current: len(p.VCPUs), CPUSet: cpuset.New(), Placement: PlacementStatic},
		Topology: &Topology{Sockets: topo.Sockets, Dies: topo.Dies, Clusters: 1, Cores: topo.Cores, Threads: topo.Threads},
	}
	for i, v := range p.VCPUs {
		if v.ID != i {
			return nil, fmt.Errorf("libvirt placement: vcpu %d has id %d", i, v.ID)
		}
		if v.HostCPUs.IsEmpty() {
			return nil, fmt.Errorf("libvirt placement: vcpu %d has no host cpus", i)
		}
		d.CPUTune.VCPUPins = append(d.CPUTune.VCPUPins, VCPUPin{VCPU: i, CPUs: v.HostCPUs})
	}
	d.CPUTune.EmulatorPin = p.EmulatorCPUs

	nodes := cpuset.New(p.HostNodes...)
	if mode == ModePreferred && nodes.Size() > 1 {
		nodes = cpuset.New(nodes.List()[0])
	}
	d.NUMATune = &NUMATune{Memory: &MemoryTune{Mode: mode, Nodes: nodes, Placement: PlacementStatic}}

	if len(p.GuestNodes) > 1 {
		if err := planCells(d, p, topo); err != nil {
			return nil, err
		}
	}
	if hp := p.Spec.HugepageBytes; hp > 0 {
		if hp%1024 != 0 {
			return nil, fmt.Errorf("libvirt placement: hugepage size %d bytes is not whole KiB", hp)
		}
		page := HugePage{Size: hp, Cells: cpuset.New()}
		if len(d.Cells) > 0 {
			ids := make([]int, len(d.Cells))
			for i := range ids {
				ids[i] = i
			}
			page.Cells = cpuset.New(ids...)
		}
		d.MemoryBacking = MemoryBacking{Hugepages: true, Pages: []HugePage{page}}
	}
	if p.Spec.Prealloc {
		d.MemoryBacking.Allocation = AllocImmediate
	}
	return d, nil
}

// planCells fills d's cells, memnodes and distances from a plan of several
// guest nodes.
func planCells(d *Domain, p *plan.Plan, topo memobj.Topology) error {
	mode := d.NUMATune.Memory.Mode
	socketCell := map[int]int{}
	for _, v := range p.VCPUs {
		if v.GuestNode < 0 || v.GuestNode >= len(p.GuestNodes) {
			return fmt.Errorf("libvirt placement: vcpu %d is on guest node %d, which does not exist", v.ID, v.GuestNode)
		}
		s, _, _, _ := topo.IDs(v.ID)
		if c, ok := socketCell[s]; ok && c != v.GuestNode {
			return fmt.Errorf("libvirt placement: socket %d holds vcpus of guest nodes %d and %d", s, c, v.GuestNode)
		}
		socketCell[s] = v.GuestNode
	}
	members := make([][]int, len(p.GuestNodes))
	for slot := range d.VCPU.Max {
		s, _, _, _ := topo.IDs(slot)
		c, ok := socketCell[s]
		if !ok {
			return fmt.Errorf("libvirt placement: socket %d has no vcpus, so no cell", s)
		}
		members[c] = append(members[c], slot)
	}
	if p.Distances != nil && len(p.Distances) != len(p.GuestNodes) {
		return fmt.Errorf("libvirt placement: %d distance rows for %d guest nodes", len(p.Distances), len(p.GuestNodes))
	}
	for i, g := range p.GuestNodes {
		if g.ID != i {
			return fmt.Errorf("libvirt placement: guest node %d has id %d", i, g.ID)
		}
		if g.MemoryBytes == 0 || g.MemoryBytes%1024 != 0 {
			return fmt.Errorf("libvirt placement: guest node %d has %d bytes: a libvirt cell needs whole KiB, more than none", i, g.MemoryBytes)
		}
		if len(g.HostNodes) == 0 {
			return fmt.Errorf("libvirt placement: guest node %d has no host nodes", i)
		}
		c := Cell{ID: i, CPUs: cpuset.New(members[i]...), Memory: g.MemoryBytes}
		if p.Distances != nil {
			row := p.Distances[i]
			if len(row) != len(p.GuestNodes) {
				return fmt.Errorf("libvirt placement: distance row %d has %d entries for %d guest nodes", i, len(row), len(p.GuestNodes))
			}
			for j, v := range row {
				c.Distances = append(c.Distances, Sibling{ID: j, Value: v})
			}
		}
		d.Cells = append(d.Cells, c)
		d.NUMATune.MemNodes = append(d.NUMATune.MemNodes, MemNode{CellID: i, Mode: mode, Nodes: cpuset.New(g.HostNodes...)})
	}
	return nil
}

// modeOf is the <numatune> mode of a plan's policy.
func modeOf(p memobj.Policy) (Mode, error) {
	switch p {
	case "", memobj.PolicyBind:
		return ModeStrict, nil
	case memobj.PolicyPreferred, memobj.PolicyPreferredMany:
		return ModePreferred, nil
	case memobj.PolicyInterleave:
		return ModeInterleave, nil
	}
	return "", fmt.Errorf("%w: memory policy %q has no libvirt <numatune> mode", ErrUnsupported, p)
}
