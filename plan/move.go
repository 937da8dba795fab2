package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/topology"
)

// Running is a VM that runs now, as the ledger knows it: what qnuma move
// needs to plan it again on other host nodes with the same guest layout.
type Running struct {
	Name string
	// GuestNodes are its guest nodes with the host nodes they are on now.
	GuestNodes []GuestNode
	// VCPUs is the number of vCPUs present.
	VCPUs         int
	Dedicated     bool
	PreferHT      bool
	HugepageBytes uint64
	// Policy of its guest RAM ("" is bind).
	Policy memobj.Policy
	// Self is its own entry as the planner counts it (its promise and what
	// its qemu holds), so that the memory of guest nodes that stay is not
	// counted twice and that of guest nodes that leave is freed.
	Self Placed
}

// MoveSpec is where a VM should go: To[i] are the host nodes for guest
// node i (GuestNodes order); a guest node absent from To stays.
type MoveSpec struct {
	To map[int][]int
}

// Move plans a running VM again with the same guest NUMA layout, each
// guest node on the host nodes MoveSpec gives it: its vCPUs on those
// nodes' CPUs (dedicated CPUs taken anew where a guest node moves), its
// memory there, its emulator threads on the VM's new CPUs. The room of
// every target node is checked against the other VMs placed (placed
// excludes this VM: r.Self stands for it) before anything moves; a guest
// node moving onto a node where another of its guest nodes stays shares
// that node's room. Errors wrap ErrBadSpec (a node that does not exist, a
// guest node that is not the VM's) or ErrDoesNotFit (FitError).
func Move(host *topology.Host, r Running, m MoveSpec, placed []Placed) (*Plan, error) {
	if len(r.GuestNodes) == 0 {
		return nil, badSpec("vm %s has no guest node layout in the ledger (placed by an older qnuma?): it cannot be moved", r.Name)
	}
	byID := map[int]int{}
	for i, g := range r.GuestNodes {
		byID[g.ID] = i
	}
	for id := range m.To {
		if _, ok := byID[id]; !ok {
			return nil, badSpec("vm %s has no guest node %d (its guest nodes: %s)", r.Name, id, idList(guestIDs(r.GuestNodes)))
		}
	}
	spec := Spec{VCPUs: r.VCPUs, Dedicated: r.Dedicated, PreferHT: r.PreferHT, HugepageBytes: r.HugepageBytes, Policy: r.Policy}
	if spec.Policy == "" {
		spec.Policy = memobj.PolicyBind
	}
	for _, g := range r.GuestNodes {
		spec.MemoryBytes += g.MemoryBytes
	}

	// The guest nodes that stay keep their promise; those that move leave
	// theirs behind, where their pages are free again once moved, and the
	// room of their new nodes is what is checked.
	target := make([][]int, len(r.GuestNodes))
	moving := make([]bool, len(r.GuestNodes))
	stay := Placed{Name: r.Self.Name, MemoryBytes: map[int]uint64{}, ResidentBytes: map[int]uint64{}, HugepageBytes: r.Self.HugepageBytes, VCPUs: map[int]int{}, DedicatedCPUs: cpuset.New(), CPUs: cpuset.New()}
	for i, g := range r.GuestNodes {
		target[i] = g.HostNodes
		if to, ok := m.To[g.ID]; ok {
			to = slices.Clone(to)
			sort.Ints(to)
			to = slices.Compact(to)
			if !slices.Equal(to, g.HostNodes) {
				target[i], moving[i] = to, true
			}
		}
		if moving[i] {
			continue
		}
		for _, n := range g.HostNodes {
			share := g.MemoryBytes / uint64(len(g.HostNodes))
			stay.MemoryBytes[n] += share
			stay.ResidentBytes[n] += min(r.Self.ResidentBytes[n], share)
		}
	}
	all := rooms(host, spec, append(slices.Clone(placed), stay))
	usedMem := map[int]uint64{}
	usedCPU := map[int]int{}
	for i, g := range r.GuestNodes {
		for _, n := range target[i] {
			nr := roomOf(all, n)
			if nr == nil {
				return nil, badSpec("guest node %d: host node %d does not exist (this host has nodes %s)", g.ID, n, idList(nodeIDs(all)))
			}
			if !moving[i] {
				continue
			}
			if !nr.usable() {
				return nil, fitError(spec, all, "guest node %d cannot go to host node %d: %s", g.ID, n, nr.Unusable)
			}
			usedMem[n] += g.MemoryBytes / uint64(len(target[i]))
			if usedMem[n] > nr.memCap {
				return nil, fitError(spec, all, "guest node %d (%s) does not fit on host node %d: %s free there for this VM", g.ID, sizeString(g.MemoryBytes), n, sizeString(nr.memCap))
			}
		}
		if len(g.VCPUs) == 0 {
			continue
		}
		first := roomOf(all, target[i][0])
		if first.MemoryOnly || first.FreeCPUs.IsEmpty() {
			return nil, fitError(spec, all, "guest node %d's vCPUs cannot run on host node %d: it has no usable CPU", g.ID, first.Node)
		}
		if spec.Dedicated {
			units := len(first.cores)
			if spec.PreferHT {
				units = first.FreeCPUs.Size()
			}
			if usedCPU[first.Node]+len(g.VCPUs) > units {
				return nil, fitError(spec, all, "guest node %d's %d dedicated vCPUs do not fit on host node %d: %d free %s there", g.ID, len(g.VCPUs), first.Node, units-usedCPU[first.Node], cpuUnit(spec))
			}
			usedCPU[first.Node] += len(g.VCPUs)
		}
	}

	p := &Plan{Spec: spec}
	for _, nr := range all {
		p.Rooms = append(p.Rooms, nr.Room)
	}
	nodes := cpuset.New()
	var used []int
	clear(usedCPU)
	for i, g := range r.GuestNodes {
		gn := GuestNode{ID: g.ID, HostNodes: target[i], VCPUs: slices.Clone(g.VCPUs), MemoryBytes: g.MemoryBytes}
		nodes = nodes.Union(cpuset.New(target[i]...))
		p.GuestNodes = append(p.GuestNodes, gn)
		if len(g.VCPUs) == 0 {
			continue
		}
		nr := roomOf(all, target[i][0])
		for _, v := range g.VCPUs {
			cpus := nr.FreeCPUs
			if spec.Dedicated {
				cpus = hostCPUs(nr, spec, usedCPU[nr.Node])
				usedCPU[nr.Node]++
				used = append(used, cpus.UnsortedList()...)
			}
			p.VCPUs = append(p.VCPUs, VCPU{ID: v, GuestNode: i, HostCPUs: cpus})
		}
	}
	sort.Slice(p.VCPUs, func(a, b int) bool { return p.VCPUs[a].ID < p.VCPUs[b].ID })
	p.HostNodes = nodes.List()
	vcpuCPUs := cpuset.New()
	for _, v := range p.VCPUs {
		vcpuCPUs = vcpuCPUs.Union(v.HostCPUs)
	}
	p.EmulatorCPUs = vcpuCPUs
	if spec.Dedicated {
		p.EmulatorCPUs = cpuset.New(used...)
	}
	p.Mempolicy = Mempolicy{Mode: spec.Policy, Nodes: nodes}
	if spec.Policy == memobj.PolicyPreferred && nodes.Size() > 1 {
		p.Mempolicy.Mode = memobj.PolicyPreferredMany
	}
	var moves []string
	for i, g := range r.GuestNodes {
		if moving[i] {
			moves = append(moves, fmt.Sprintf("guest node %d (%s, vCPUs %s) from host node%s %s to %s", g.ID, sizeString(g.MemoryBytes), vcpuPhrase(g.VCPUs), plural(len(g.HostNodes)), idList(g.HostNodes), idList(target[i])))
		}
	}
	if len(moves) == 0 {
		p.Reasons = append(p.Reasons, "Every guest node is already where it was asked to go: nothing moves.")
	} else {
		p.Reasons = append(p.Reasons, "Moves "+strings.Join(moves, "; ")+", the guest's own NUMA layout kept; each target node has room for what moves there, counting the other VMs' promises.")
	}
	p.Reasons = append(p.Reasons, fmt.Sprintf("qemu's other threads run on CPUs %s.", p.EmulatorCPUs))
	return p, nil
}

// Moves reports whether the plan from Move changes guest node i's host
// nodes, compared with the VM as it runs.
func (r Running) Moves(p *Plan, i int) bool {
	return !slices.Equal(r.GuestNodes[i].HostNodes, p.GuestNodes[i].HostNodes)
}

func guestIDs(gs []GuestNode) []int {
	ids := make([]int, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
	}
	return ids
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
