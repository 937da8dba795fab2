package plan

import (
	"fmt"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
)

// Binding is where a guest node's host binding came from, for `qnuma plan`
// to say what was given and what qnuma chose.
type Binding struct {
	// Given: the user's own backend names its host-nodes, kept as given.
	// Otherwise qnuma chose the host nodes.
	Given bool
	// Backend is the memory backend's id: the user's, or qnuma's own
	// (qnuma-ram<ID>); "" when the guest node has no backend to bind (its
	// memory follows the process memory policy).
	Backend string
	// Policy is the backend's policy as applied (the user's, as written,
	// "" when they gave none), "" when there is no backend.
	Policy string
	// Reason says why, in one sentence.
	Reason string
}

// Bindings is one Binding per guest node, in GuestNodes' order.
func (p *Plan) Bindings() []Binding {
	out := make([]Binding, len(p.GuestNodes))
	for i, g := range p.GuestNodes {
		out[i] = p.binding(g)
	}
	return out
}

func (p *Plan) binding(g GuestNode) Binding {
	nodes := cpuset.New(g.HostNodes...)
	if c := p.cell(g.ID); c != nil {
		switch {
		case c.HostNodes != nil:
			b := Binding{Given: true, Backend: c.Backend, Policy: c.Policy}
			b.Reason = fmt.Sprintf("given: %s host-nodes=%s policy=%s, kept; its vCPUs are pinned to the CPUs of %s",
				backendPhrase(c.Backend), idList(c.HostNodes), policyOrDefault(c.Policy), nodesPhrase(cpuset.New(c.HostNodes...)))
			return b
		case c.Object != nil:
			b := Binding{Backend: c.Backend, Policy: string(cellPolicy(p.Spec))}
			for _, f := range p.Fill {
				if f.ID == c.Backend {
					b.Policy = f.Policy
				}
			}
			b.Reason = fmt.Sprintf("chosen: backend %s left host-nodes open, so qnuma chose %s (room for its vCPUs and memory, nearest the other guest nodes' nodes, then the most room), filled in host-nodes=%s policy=%s, and pins its vCPUs there",
				c.Backend, nodesPhrase(nodes), nodes, b.Policy)
			return b
		default:
			return Binding{Reason: fmt.Sprintf("chosen: it has no memory backend to bind (mem= or none), so its memory follows qemu's process memory policy; qnuma chose %s for its vCPUs by room and distance", nodesPhrase(p.cellVCPUNodes(g)))}
		}
	}
	if p.BindOnly {
		return Binding{Reason: fmt.Sprintf("chosen: qnuma's split of the vCPUs over the host nodes (see Why); --bind-only renders no backend, so guest RAM follows qemu's process memory policy (%s on %s)", p.Mempolicy.Mode, nodesPhrase(p.Mempolicy.Nodes))}
	}
	pol := p.Spec.Policy
	if pol == "" {
		pol = memobj.PolicyBind
	}
	if g.MemoryBytes == 0 {
		return Binding{Reason: fmt.Sprintf("chosen: qnuma's layout (see Why); a guest node of vCPUs only, on %s", nodesPhrase(nodes))}
	}
	what := "qnuma's layout (see Why)"
	if p.Spec.HostNodes != nil {
		what = fmt.Sprintf("qnuma's layout over the host nodes %s given (--host-nodes)", idList(p.Spec.HostNodes))
	}
	if len(g.VCPUs) == 0 {
		what += ", memory only"
	}
	return Binding{Backend: fmt.Sprintf(ramIDFormat, g.ID), Policy: string(pol),
		Reason: fmt.Sprintf("chosen: %s; its backend %s has host-nodes=%s policy=%s", what, fmt.Sprintf(ramIDFormat, g.ID), nodes, pol)}
}

// cell is the user's cell of guest node id, nil if none.
func (p *Plan) cell(id int) *Cell {
	for i := range p.Spec.Cells {
		if p.Spec.Cells[i].ID == id {
			return &p.Spec.Cells[i]
		}
	}
	return nil
}

// cellVCPUNodes is the host nodes whose CPUs guest node g's vCPUs run on:
// those of the rooms whose free CPUs its first vCPU may use, else g's own.
func (p *Plan) cellVCPUNodes(g GuestNode) cpuset.CPUSet {
	for _, v := range p.VCPUs {
		if v.GuestNode < len(p.GuestNodes) && p.GuestNodes[v.GuestNode].ID == g.ID {
			var ids []int
			for _, r := range p.Rooms {
				if !r.FreeCPUs.Intersection(v.HostCPUs).IsEmpty() {
					ids = append(ids, r.Node)
				}
			}
			return cpuset.New(ids...)
		}
	}
	return cpuset.New(g.HostNodes...)
}

// GuestNodeID is the id of vCPU v's guest node (v.GuestNode is its index
// in GuestNodes; the user's cells may give ids in another order).
func (p *Plan) GuestNodeID(v VCPU) int {
	if v.GuestNode >= 0 && v.GuestNode < len(p.GuestNodes) {
		return p.GuestNodes[v.GuestNode].ID
	}
	return v.GuestNode
}

// Die is vCPU v's die in the guest topology (0 without the user's -smp).
func (p *Plan) Die(v int) int {
	if p.Spec.Topology == nil {
		return 0
	}
	_, d, _, _ := p.Spec.Topology.IDs(v)
	return d
}

func backendPhrase(id string) string {
	if id == "" {
		return "its binding"
	}
	return "backend " + id
}

func policyOrDefault(p string) string {
	if p == "" {
		return "default"
	}
	return p
}
