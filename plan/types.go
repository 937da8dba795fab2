// Package plan decides where a VM goes on a host and what its guest NUMA
// layout is. It is pure: host topology + spec + VMs already placed in, Plan
// or error out; no sysfs reads, no exec, no logging.
package plan

import (
	"errors"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemucmd"
)

// ErrDoesNotFit is wrapped by every error that says the VM does not fit.
var ErrDoesNotFit = errors.New("vm does not fit")

// ErrBadSpec is wrapped by errors about a spec that is invalid on its own.
var ErrBadSpec = errors.New("invalid vm spec")

// Spec is what the user asks for.
type Spec struct {
	VCPUs       int
	MemoryBytes uint64
	// HostNodes, when not nil, are the host nodes to use, honoured exactly
	// or refused with the reason. Nil means auto.
	HostNodes []int
	// GuestNodes is the number of guest NUMA nodes; 0 means auto.
	GuestNodes int
	// Policy for guest RAM and for qemu's own allocations; "" means bind.
	Policy memobj.Policy
	// MaxVCPUsPerNode caps vCPUs per guest/host node (0: no cap).
	MaxVCPUsPerNode int
	// PreferHT counts SMT threads, not cores, as a node's CPU room.
	PreferHT bool
	// Spread uses more nodes (for bandwidth) instead of consolidating.
	Spread bool
	// HugepageBytes backs guest RAM with hugepages of this size (0: none).
	HugepageBytes uint64
	Prealloc      bool
	// NearNode is a node to prefer (the node of --near-device), used only
	// when HasNearNode is set, so that Spec's zero value prefers nothing.
	NearNode    int
	HasNearNode bool
	// Dedicated gives each vCPU its own host CPU; otherwise vCPUs float
	// over their node's CPUs.
	Dedicated bool
	// AllowMemoryOnly lets CPU-less nodes hold memory of a wide VM.
	AllowMemoryOnly bool
	// BindOnly: see Plan.BindOnly.
	BindOnly bool
	// Overcommit lets shared vCPUs outnumber a node's CPUs (they take
	// turns on them); without it a node holds at most one vCPU per core
	// (per thread with PreferHT). Not with Dedicated.
	Overcommit bool

	// Given by the user's QEMU command line (MergeSpec), kept exactly
	// (helper E, issue 10): Cells are their own -numa nodes (with
	// --bind-only), whose vCPUs qnuma pins by the cells' host binding;
	// Topology their -smp as QEMU resolves it, kept when it gives sockets,
	// dies, cores or threads (or the cells need it); nil leaves the guest
	// topology to qnuma.
	Cells    []Cell
	Topology *memobj.Topology

	// Given by a libvirt domain XML (helper E, issue 10, cmd/qnuma
	// --domain-xml), for a spec with Cells. CellsFrom names where the cells
	// come from in the plan's reasons ("" for the user's -numa cells).
	CellsFrom string
	// VCPUPins are explicit host CPUs for some vCPUs, kept exactly (a CPU
	// this VM may not use is refused); EmulatorPin those of qemu's other
	// threads (nil: the vCPUs' CPUs). GuestDistances, when not nil, are
	// the guest's own distances (Plan.Distances).
	VCPUPins       map[int]Pin
	EmulatorPin    *Pin
	IOThreads      []IOThreadSpec
	GuestDistances [][]int

	// MaxVCPUs and MaxMemoryBytes are the hotplug room (--max-vcpus,
	// --max-memory; 0: none): the plan fits the VM at that size, starts it
	// with VCPUs and MemoryBytes, and maps the absent vCPUs and the memory
	// growth to guest nodes (hotplug.go).
	MaxVCPUs       int
	MaxMemoryBytes uint64
	// LowestVCPUsAtStart: with vCPU hotplug room the vCPUs present at
	// start are 0 to VCPUs-1, the first guest nodes' slots, as libvirt's
	// <vcpu current=> starts them (qnuma libvirt place). Otherwise each
	// guest node starts with its share (its first slots, cold-plugged by
	// -device past guest node 0's).
	LowestVCPUsAtStart bool
	// MemoryHotplug is how the memory growth is plugged: virtio-mem
	// devices (MemoryHotplugVirtioMem, also when empty) or DIMMs
	// (MemoryHotplugDIMM), where the QEMU has no virtio-mem.
	MemoryHotplug MemoryHotplug
}

// Pin is host CPUs given for a thread, and where they were given (for
// reasons and errors: "<vcpupin vcpu='0'>").
type Pin struct {
	CPUs cpuset.CPUSet
	From string
}

// IOThreadSpec is one of the VM's I/O threads (QEMU -object iothread,id=)
// with its own host CPUs; an empty Pin.CPUs runs it on the emulator CPUs.
type IOThreadSpec struct {
	ID  string
	Pin Pin
}

// IOThread is where one I/O thread runs.
type IOThread struct {
	ID       string
	HostCPUs cpuset.CPUSet
	// Given: HostCPUs are the thread's own (a pin), which the launcher
	// applies after pinning it with the emulator threads; otherwise it
	// runs on the emulator CPUs (HostCPUs is then what they were planned).
	Given bool
}

// Placed is a VM already on the host (from the ledger).
type Placed struct {
	Name string
	// MemoryBytes promised per host node id: hugepages of HugepageBytes
	// when that is set, else ordinary memory.
	MemoryBytes map[int]uint64
	// ResidentBytes is what its running qemu already holds of that promise
	// per host node (nil: nothing known, the whole promise counts). The
	// host's free memory (free hugepages) already lacks it, so only
	// MemoryBytes - ResidentBytes is still to be taken from the room.
	ResidentBytes map[int]uint64
	// HugepageBytes is the page size backing its guest RAM (0: none).
	HugepageBytes uint64
	// VCPUs per host node id (load, for shared placement).
	VCPUs map[int]int
	// DedicatedCPUs are host CPUs given to this VM alone: no other VM's
	// threads may run there.
	DedicatedCPUs cpuset.CPUSet
	// CPUs are every host CPU its threads may run on (vCPUs, emulator and
	// I/O threads), DedicatedCPUs included: no dedicated vCPU of another
	// VM may be given one of them.
	CPUs cpuset.CPUSet
}

// untouched is what p still has to take on node n: its promise less what
// its qemu already holds there.
func (p Placed) untouched(n int) uint64 {
	b, r := p.MemoryBytes[n], p.ResidentBytes[n]
	if r >= b {
		return 0
	}
	return b - r
}

// Plan is where a VM goes and how its guest NUMA layout looks.
type Plan struct {
	Spec Spec
	// HostNodes used, ascending.
	HostNodes []int
	// Reasons explain the choice, one sentence each, for `qnuma plan`.
	Reasons []string
	// Rooms is every node's room as the planner saw it.
	Rooms []Room
	// GuestNodes: guest node i is backed by HostNodes of GuestNodes[i].
	GuestNodes []GuestNode
	// VCPUs in vCPU index order.
	VCPUs []VCPU
	// HotplugVCPUs are the vCPUs of a plan with cells that are not present
	// at start (-smp maxcpus=), placed as VCPUs are; the launcher pins only
	// those present at start.
	HotplugVCPUs []VCPU
	// HotplugMemory is the memory growth (Spec.MaxMemoryBytes) per guest
	// node: one virtio-mem device each, plugged empty at start.
	HotplugMemory []HotplugMemory
	// -smp topology; Sockets == len(GuestNodes) when the guest has NUMA.
	Sockets, Cores, Threads int
	// EmulatorCPUs is where qemu's non-vCPU threads run.
	EmulatorCPUs cpuset.CPUSet
	// Mempolicy is the policy qemu's process starts under.
	Mempolicy Mempolicy
	// Distances between guest nodes (Distances[i][j], from the host's
	// distances between their host nodes); nil when the host gives none or
	// the guest has one node.
	Distances [][]int
	// BindOnly: the user wrote their own -numa/memory backends; qnuma adds
	// no -smp/-m/-numa/-object and only binds the process and pins threads.
	BindOnly bool

	// Fill (helper E, issue 10) are the user's own memory backends that
	// left their binding open, with the host-nodes and policy qnuma chose
	// filled in: Args renders them, and QEMUArgv.Final puts each in the
	// place of the user's backend of the same id.
	Fill []qemucmd.Backend
	// IOThreads are the VM's I/O threads and their host CPUs (Spec.IOThreads;
	// the emulator CPUs for one without its own).
	IOThreads []IOThread
}

// GuestNode is one guest NUMA node.
type GuestNode struct {
	ID          int
	HostNodes   []int
	VCPUs       []int
	MemoryBytes uint64
}

// VCPU is one vCPU's place.
type VCPU struct {
	ID        int
	GuestNode int
	Socket    int
	Core      int
	Thread    int
	HostCPUs  cpuset.CPUSet
}

// Room is what one host node can give this VM.
type Room struct {
	Node        int
	MemoryBytes uint64 // available memory, after other VMs' promises
	CPUs        int    // usable CPUs (cores, or threads with PreferHT), after caps
	FreeCPUs    cpuset.CPUSet
	Hugepages   uint64 // free hugepages of the asked size (pages)
	// MemoryOnly: the node has no usable CPU, so it may only hold memory.
	MemoryOnly bool
	// Load is the vCPUs of other VMs floating over this node's CPUs.
	Load int
	// Unusable says why this VM cannot use the node at all ("" when it can).
	Unusable string
}

// Mempolicy is a set_mempolicy mode and node set.
type Mempolicy struct {
	Mode  memobj.Policy
	Nodes cpuset.CPUSet
}

// HotplugMemory is one guest node's share of the memory growth, on the
// host nodes of that guest node.
type HotplugMemory struct {
	GuestNode int
	HostNodes []int
	Bytes     uint64
	// DIMMBytes is the size of each DIMM the growth is plugged in, Bytes
	// a multiple of it; 0: one virtio-mem device takes it all.
	DIMMBytes uint64
}
