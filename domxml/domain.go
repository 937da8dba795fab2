// Package domxml reads the placement half of a libvirt domain XML: vCPUs and
// their pins, guest NUMA cells and their host binding, memory backing,
// memory sizes and hotplug room, and memory devices. It follows libvirt's
// documented meaning (docs/formatdomain.rst) and refuses, with ErrUnsupported,
// what qnuma cannot honour in those areas. Everything else in a domain (os,
// features, disks, interfaces, consoles...) is ignored here: with
// `qnuma run --domain-xml` the QEMU command line carries it.
//
// It also writes that half: FromPlan turns a qnuma plan into the same
// Domain values (vCPU pins, numatune with a memnode per cell, cells with the
// host's distances, topology, hugepages), and Rewrite writes them into a
// domain XML at the byte offsets of its elements, every other byte kept
// (`qnuma libvirt xml`). Parse reads the result back as the plan.
//
// The package is pure: Parse and Rewrite take bytes and do no I/O.
package domxml

import (
	"errors"

	"k8s.io/utils/cpuset"
)

// ErrInvalid marks XML that libvirt itself would refuse: a malformed number,
// size, unit or cpuset, a value outside libvirt's list, a reference to a cell
// that does not exist, cells that overlap.
var ErrInvalid = errors.New("invalid domain xml")

// ErrUnsupported marks an element or value in a placement area that libvirt
// accepts but qnuma does not honour (a scheduler class, cachetune, an nvdimm);
// it is refused rather than dropped.
var ErrUnsupported = errors.New("not supported by qnuma")

// Domain is what a libvirt domain says about placement. Sizes are bytes; CPU
// and node sets are cpuset.CPUSet; an empty set means "not given".
type Domain struct {
	// Name is <name>.
	Name string
	// UUID is <uuid> as written, "" when absent.
	UUID string

	// Memory is <memory>: the guest's maximum memory at boot, including the
	// memory devices present at start. 0 when absent, which libvirt allows
	// only with NUMA cells (the boot RAM is then the sum of the cells).
	// libvirt rounds every memory size up to a whole KiB; so does Parse.
	Memory uint64
	// CurrentMemory is <currentMemory>: what the balloon leaves the guest.
	// 0 when absent (libvirt: the same as Memory).
	CurrentMemory uint64
	// MaxMemory is <maxMemory slots>: the hotplug room, QEMU's
	// -m slots=,maxmem=. Nil when absent.
	MaxMemory *MaxMemory

	// VCPU is <vcpu>.
	VCPU VCPU
	// VCPUs is <vcpus>: per-vCPU state for vCPU hotplug, in document order.
	VCPUs []VCPUState
	// IOThreads holds the ids of the I/O threads: <iothreadids> as given,
	// filled from 1 upwards (skipping given ids) up to <iothreads>, as
	// libvirt does.
	IOThreads []int

	// CPUTune is <cputune>: explicit host CPUs for vCPU, emulator and I/O
	// threads.
	CPUTune CPUTune
	// NUMATune is <numatune>, resolved with libvirt's defaults; nil when the
	// domain has none (and <vcpu placement> is not auto).
	NUMATune *NUMATune

	// Topology is <cpu><topology>: the guest CPU topology, QEMU's -smp
	// sockets,dies,clusters,cores,threads. Nil when absent.
	Topology *Topology
	// Cells is <cpu><numa>: the guest NUMA nodes (QEMU -numa node), indexed
	// by cell id (libvirt requires ids 0..n-1).
	Cells []Cell
	// Interconnects is <cpu><numa><interconnects>: HMAT latencies and
	// bandwidths (QEMU -numa hmat-lb), in document order.
	Interconnects []Interconnect

	// MemoryBacking is <memoryBacking>.
	MemoryBacking MemoryBacking

	// MemoryDevices is <devices><memory>: pc-dimm and virtio-mem devices,
	// in document order.
	MemoryDevices []MemoryDevice
}

// MaxMemory is <maxMemory slots='S' unit=...>SIZE</maxMemory>.
type MaxMemory struct {
	Size uint64 // QEMU maxmem=: the most the guest can reach with hotplug
	// Slots is QEMU slots=: how many DIMMs may be plugged. libvirt before
	// 10.x requires it; later ones allow it absent (0) for virtio-mem, which
	// takes no slot.
	Slots int
}

// Placement is libvirt's placement attribute of <vcpu> and
// <numatune><memory>.
type Placement string

const (
	// PlacementStatic: the cpuset or nodeset given is used as is.
	PlacementStatic Placement = "static"
	// PlacementAuto: libvirt asks numad for a nodeset at start; for qnuma it
	// means its own planner chooses the host nodes and CPUs (any cpuset or
	// nodeset given alongside is ignored, as libvirt ignores it).
	PlacementAuto Placement = "auto"
)

// VCPU is <vcpu placement cpuset current>MAX</vcpu>.
type VCPU struct {
	// Max is the element's content: the most vCPUs the guest can have
	// (QEMU -smp maxcpus=).
	Max int
	// Current is how many are online at boot (QEMU -smp cpus=); Max when
	// the attribute is absent.
	Current int
	// CPUSet is the default host CPUs for the emulator and every vCPU that
	// has no <vcpupin>, and for the emulator when there is no <emulatorpin>.
	// Empty when absent or when Placement is auto.
	CPUSet cpuset.CPUSet
	// Placement, resolved as libvirt does: the attribute; else static when
	// cpuset is given; else <numatune><memory placement>; else static.
	Placement Placement
}

// VCPUState is one <vcpus><vcpu id enabled hotpluggable order/>.
type VCPUState struct {
	ID           int
	Enabled      bool // online at boot
	Hotpluggable bool // may be plugged and unplugged later (QEMU device_add)
	Order        int  // the order vCPUs are brought online; 0 when not given
}

// CPUTune is the pinning part of <cputune>.
type CPUTune struct {
	// VCPUPins is <vcpupin vcpu cpuset>: the host CPUs one vCPU thread may
	// run on, in document order.
	VCPUPins []VCPUPin
	// EmulatorPin is <emulatorpin cpuset>: the host CPUs of QEMU's threads
	// that are neither vCPUs nor I/O threads. Empty when absent.
	EmulatorPin cpuset.CPUSet
	// IOThreadPins is <iothreadpin iothread cpuset>, in document order.
	IOThreadPins []IOThreadPin
}

// VCPUPin pins vCPU VCPU to host CPUs CPUs.
type VCPUPin struct {
	VCPU int
	CPUs cpuset.CPUSet
}

// IOThreadPin pins the I/O thread with id IOThread to host CPUs CPUs.
type IOThreadPin struct {
	IOThread int
	CPUs     cpuset.CPUSet
}

// Mode is a <numatune> memory mode.
type Mode string

const (
	// ModeStrict allocates only on the nodeset: QEMU policy=bind on the
	// backend (MPOL_BIND). libvirt's default.
	ModeStrict Mode = "strict"
	// ModePreferred prefers the nodeset and falls back elsewhere: QEMU
	// policy=preferred.
	ModePreferred Mode = "preferred"
	// ModeInterleave spreads pages over the nodeset: QEMU policy=interleave.
	ModeInterleave Mode = "interleave"
	// ModeRestrictive sets no memory policy on the backends (no mbind): only
	// the process's allowed memory nodes (libvirt: cgroup cpuset.mems)
	// restrict it, so the nodeset can be changed while the guest runs.
	// libvirt requires every <memnode> to be restrictive when <memory> is,
	// and the other way round.
	ModeRestrictive Mode = "restrictive"
)

// NUMATune is <numatune>.
type NUMATune struct {
	// Memory is <numatune><memory>: the default for the whole guest and for
	// every cell without a <memnode>. Nil when only <memnode>s are given.
	Memory *MemoryTune
	// MemNodes is <memnode cellid mode nodeset>: one cell's own host
	// binding, in document order.
	MemNodes []MemNode
}

// MemoryTune is <numatune><memory mode nodeset placement/>, with libvirt's
// defaults applied: mode strict; placement static when a nodeset is given,
// else that of <vcpu>.
type MemoryTune struct {
	Mode      Mode
	Nodes     cpuset.CPUSet // host nodes; empty when Placement is auto
	Placement Placement
}

// MemNode is <memnode cellid mode nodeset/>: guest cell CellID's memory is
// placed on host nodes Nodes with policy Mode (strict when not given).
type MemNode struct {
	CellID int
	Mode   Mode
	Nodes  cpuset.CPUSet
}

// Topology is <cpu><topology>. Dies and Clusters are 1 when not given. Their
// product is the vCPU count.
type Topology struct {
	Sockets, Dies, Clusters, Cores, Threads int
}

// Access is libvirt's memory access mode: whether the guest RAM is mapped
// MAP_SHARED (QEMU share=on, needed by vhost-user and virtiofs) or private.
type Access string

const (
	AccessShared  Access = "shared"
	AccessPrivate Access = "private"
)

// Cell is one <cpu><numa><cell>.
type Cell struct {
	ID int
	// CPUs is the vCPUs of the cell; empty for a memory-only cell (libvirt
	// since 6.6: cpus omitted).
	CPUs cpuset.CPUSet
	// Memory is the cell's RAM (QEMU -numa node,memdev= of that size).
	Memory uint64
	// MemAccess overrides <memoryBacking><access> for this cell; "" when
	// not given.
	MemAccess Access
	// Discard overrides <memoryBacking><discard/> for this cell (QEMU
	// discard-data on a file backend); nil when not given.
	Discard *bool
	// Distances is <distances><sibling id value/>, as given (libvirt fills
	// the rest: 10 to itself, the mirrored value, else 20).
	Distances []Sibling
	// Caches is <cache>: the memory-side caches of this cell (HMAT, QEMU
	// -numa hmat-cache).
	Caches []Cache
}

// Sibling is the SLIT distance from the cell to cell ID.
type Sibling struct {
	ID    int
	Value int // 10..255; 10 only to the cell itself
}

// Cache is a memory-side cache <cache level associativity policy> with its
// <size> and <line>.
type Cache struct {
	Level         int    // 1..3
	Associativity string // none, direct or full
	Policy        string // none, writeback or writethrough
	Size          uint64 // bytes (libvirt: KiB when unit is absent)
	Line          uint64 // bytes (libvirt: bytes when unit is absent)
}

// Interconnect is one <interconnects><latency> or <bandwidth>: the HMAT
// figure from initiator cell Initiator (which must have CPUs) to the memory
// of cell Target, or to its cache of level Cache when Cache > 0.
type Interconnect struct {
	Kind      string // "latency" or "bandwidth"
	Initiator int
	Target    int
	Cache     int    // 0: the memory itself
	Type      string // access, read or write
	// Value is nanoseconds for a latency, bytes per second for a bandwidth
	// (libvirt: KiB/s when unit is absent).
	Value uint64
}

// Source is <memoryBacking><source type>: what backs guest RAM.
type Source string

const (
	SourceAnonymous Source = "anonymous" // memory-backend-ram
	SourceFile      Source = "file"      // memory-backend-file
	SourceMemfd     Source = "memfd"     // memory-backend-memfd
)

// Allocation is <memoryBacking><allocation mode>.
type Allocation string

const (
	// AllocImmediate touches all guest RAM at start (QEMU prealloc=on).
	AllocImmediate Allocation = "immediate"
	// AllocOnDemand allocates pages as the guest touches them.
	AllocOnDemand Allocation = "ondemand"
)

// MemoryBacking is <memoryBacking>.
type MemoryBacking struct {
	// Hugepages is true when <hugepages> is present: guest RAM comes from
	// hugepages; Pages says which size for which cells (none: the host's
	// default hugepage size for all).
	Hugepages bool
	Pages     []HugePage
	// Source is <source type>; "" when absent (libvirt: anonymous, or file
	// when hugepages are used).
	Source Source
	// Access is <access mode>; "" when absent (libvirt: private).
	Access Access
	// Allocation is <allocation mode>; "" when absent. AllocThreads is its
	// threads attribute (QEMU prealloc-threads=), 0 when absent.
	Allocation   Allocation
	AllocThreads int
	// Discard is <discard/>: free guest RAM on shutdown (QEMU discard-data).
	Discard bool
	// NoSharePages is <nosharepages/>: no KSM merging (QEMU
	// -machine mem-merge=off).
	NoSharePages bool
	// Locked is <locked/>: guest RAM may not be swapped (QEMU
	// -overcommit mem-lock=on).
	Locked bool
}

// HugePage is <hugepages><page size unit nodeset/>: cells Cells use
// hugepages of Size bytes; an empty Cells means every cell not named by
// another page.
type HugePage struct {
	Size  uint64
	Cells cpuset.CPUSet // guest cell ids
}

// MemoryModel is <devices><memory model>.
type MemoryModel string

const (
	ModelDIMM      MemoryModel = "dimm"       // QEMU -device pc-dimm
	ModelVirtioMem MemoryModel = "virtio-mem" // QEMU -device virtio-mem-pci
)

// MemoryDevice is one <devices><memory>. Its guest-side layout (the
// device's <address> and <alias>, <target><address base>, the virtio-mem
// dynamicMemslots attribute and the output-only <target><current>) is not
// placement and is ignored.
type MemoryDevice struct {
	Model MemoryModel
	// Access overrides <memoryBacking><access> for this device; "" when
	// not given.
	Access Access
	// Discard (dimm only) overrides <memoryBacking><discard/>; nil when not
	// given.
	Discard *bool
	// PageSize is <source><pagesize>: the host page size backing the
	// device; 0 when not given.
	PageSize uint64
	// NodeMask is <source><nodemask>: the host nodes its memory comes
	// from, overriding <numatune>; empty when not given.
	NodeMask cpuset.CPUSet
	// Size is <target><size>: the device's size (for virtio-mem its most).
	Size uint64
	// Node is <target><node>: the guest cell it is attached to; nil when
	// not given.
	Node *int
	// Block and Requested (virtio-mem only) are <target><block> (the
	// granularity, QEMU block-size=) and <target><requested> (what the guest
	// is offered, QEMU requested-size=); 0 when not given.
	Block     uint64
	Requested uint64
}
