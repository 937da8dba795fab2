package plan

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/topology"
)

// Make decides where a VM goes on host, given the VMs already placed there,
// and lays out its guest NUMA nodes. It is pure. A VM that cannot be placed
// gets an error wrapping ErrDoesNotFit (a *FitError with every node's room);
// a spec that is invalid on its own gets one wrapping ErrBadSpec.
func Make(host *topology.Host, spec Spec, placed []Placed) (*Plan, error) {
	if host == nil {
		return nil, errors.New("plan vm: no host topology")
	}
	if spec.MaxVCPUs > 0 || spec.MaxMemoryBytes > 0 {
		return hotplugPlan(host, spec, placed) // hotplug room (hotplug.go)
	}
	spec, err := checkSpec(host, spec)
	if err != nil {
		return nil, err
	}
	all := rooms(host, spec, placed)
	if len(spec.Cells) > 0 {
		return cellPlan(spec, all) // the user's own -numa cells (cells.go)
	}
	var c *choice
	if spec.HostNodes != nil {
		c, err = fixedChoice(all, spec)
	} else {
		c, err = autoChoice(all, spec)
	}
	if err != nil {
		return nil, err
	}
	return build(spec, all, c), nil
}

// checkSpec validates spec on its own and fills in defaults.
func checkSpec(host *topology.Host, spec Spec) (Spec, error) {
	if spec.VCPUs < 1 {
		return spec, badSpec("%d vcpus: want at least 1", spec.VCPUs)
	}
	if spec.MemoryBytes == 0 {
		return spec, badSpec("no memory asked: want at least 1 MiB")
	}
	if spec.HugepageBytes > 0 && (spec.HugepageBytes < 4096 || bits.OnesCount64(spec.HugepageBytes) != 1) {
		return spec, badSpec("hugepage size %d bytes: want a power of two of at least 4 KiB", spec.HugepageBytes)
	}
	if g := granule(spec); spec.MemoryBytes%g != 0 {
		what := "1 MiB (memory is split over nodes in MiB)"
		if spec.HugepageBytes > oneMiB {
			what = "the " + sizeString(spec.HugepageBytes) + " hugepage size"
		}
		return spec, badSpec("memory %s (%d bytes) is not a multiple of %s", sizeString(spec.MemoryBytes), spec.MemoryBytes, what)
	}
	if spec.Overcommit && spec.Dedicated {
		return spec, badSpec("--overcommit shares host CPUs between vCPUs, --cpus-dedicated gives each vCPU its own: choose one")
	}
	if spec.GuestNodes < 0 {
		return spec, badSpec("%d guest nodes: want 0 (auto) or more", spec.GuestNodes)
	}
	if spec.MaxVCPUsPerNode < 0 {
		return spec, badSpec("max %d vcpus per node: want 0 (no cap) or more", spec.MaxVCPUsPerNode)
	}
	switch spec.Policy {
	case "":
		spec.Policy = memobj.PolicyBind
	case memobj.PolicyBind, memobj.PolicyPreferred, memobj.PolicyInterleave:
	case memobj.PolicyDefault:
		return spec, badSpec("memory policy default places nothing: want bind, preferred or interleave")
	default:
		return spec, badSpec("unknown memory policy %q: want bind, preferred or interleave", spec.Policy)
	}
	if spec.HasNearNode {
		if _, ok := host.Node(spec.NearNode); !ok {
			return spec, badSpec("preferred node %d is not a node of this host (nodes %s)", spec.NearNode, idList(host.NodeIDs()))
		}
	}
	if spec.HostNodes != nil {
		if len(spec.HostNodes) == 0 {
			return spec, badSpec("empty host node list: give nodes or auto")
		}
		seen := map[int]bool{}
		for _, id := range spec.HostNodes {
			if seen[id] {
				return spec, badSpec("host node %d given twice", id)
			}
			seen[id] = true
			if _, ok := host.Node(id); !ok {
				return spec, badSpec("host node %d does not exist (this host has nodes %s)", id, idList(host.NodeIDs()))
			}
		}
		if spec.GuestNodes != 0 && spec.GuestNodes != len(spec.HostNodes) {
			return spec, badSpec("%d guest nodes on %d host nodes: qnuma gives one guest node per host node", spec.GuestNodes, len(spec.HostNodes))
		}
	}
	return spec, nil
}

// choice is the host nodes chosen, in preference order, with their layout
// and the sentences that explain why.
type choice struct {
	set     []*nodeRoom
	lay     *layout
	reasons []string
}

// fixedChoice honours --host-nodes exactly, or says why it cannot.
func fixedChoice(all []*nodeRoom, spec Spec) (*choice, error) {
	var set []*nodeRoom
	for _, id := range spec.HostNodes {
		r := roomOf(all, id)
		if !r.usable() {
			return nil, fitError(spec, all, "host node %d cannot hold this vm: %s", id, r.Unusable)
		}
		set = append(set, r)
	}
	lay, why := fit(set, spec)
	if lay == nil {
		return nil, fitError(spec, all, "host nodes %s given: %s", idList(spec.HostNodes), why)
	}
	return &choice{set: set, lay: lay, reasons: []string{
		fmt.Sprintf("Host nodes %s were given (--host-nodes) and hold %d vCPUs and %s.", idList(spec.HostNodes), spec.VCPUs, sizeString(spec.MemoryBytes)),
	}}, nil
}

func roomOf(all []*nodeRoom, id int) *nodeRoom {
	for _, r := range all {
		if r.Node == id {
			return r
		}
	}
	return nil
}

// fitError builds the *FitError for spec against every node's room.
func fitError(spec Spec, all []*nodeRoom, format string, a ...any) error {
	e := &FitError{
		Reason:        fmt.Sprintf(format, a...),
		VCPUs:         spec.VCPUs,
		MemoryBytes:   spec.MemoryBytes,
		HugepageBytes: spec.HugepageBytes,
		PreferHT:      spec.PreferHT,
	}
	for _, r := range all {
		e.Rooms = append(e.Rooms, r.Room)
	}
	return e
}

// cpuUnit names what a node's CPU room counts.
func cpuUnit(spec Spec) string {
	if spec.Overcommit {
		return "vCPU slots" // every vCPU fits a node with a CPU
	}
	if spec.PreferHT {
		return "threads"
	}
	return "cores"
}
