package plan

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemucmd"
	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/topology"
)

// MaxHotplugVCPUs is the most vCPUs any QEMU x86 machine takes (q35 in
// QEMU 9.0 and later).
const MaxHotplugVCPUs = 4096

// virtioMemBlock is virtio-mem's default block size on x86 (the THP
// size): a device's backend must be a multiple of it.
const virtioMemBlock = 2 * memobj.MiB

// hotplugPlan plans a VM with hotplug room: it fits the VM at its most
// (Spec.MaxVCPUs, Spec.MaxMemoryBytes) on the host nodes, so that the
// growth is reserved there, then starts it with Spec.VCPUs and
// Spec.MemoryBytes: the vCPUs past VCPUs become Plan.HotplugVCPUs in the
// guest nodes the full plan gives them, and each guest node's part of the
// growth becomes a HotplugMemory on that guest node's host nodes.
func hotplugPlan(host *topology.Host, spec Spec, placed []Placed) (*Plan, error) {
	maxV, maxM := spec.MaxVCPUs, spec.MaxMemoryBytes
	if maxV == 0 {
		maxV = spec.VCPUs
	}
	if maxM == 0 {
		maxM = spec.MemoryBytes
	}
	switch {
	case spec.BindOnly:
		return nil, badSpec("hotplug room (--max-vcpus, --max-memory) needs qnuma's own -smp, -m and -numa: drop --bind-only, or give -smp maxcpus= and -m maxmem= in your own command line")
	case len(spec.Cells) > 0 || spec.Topology != nil:
		return nil, badSpec("hotplug room (--max-vcpus, --max-memory) is planned on qnuma's own guest layout: drop the -smp topology and -numa of the QEMU command line, or the flags")
	case maxV < spec.VCPUs:
		return nil, badSpec("--max-vcpus %d is below the %d vCPUs the VM starts with: give at least %d", maxV, spec.VCPUs, spec.VCPUs)
	case maxV > MaxHotplugVCPUs:
		return nil, badSpec("--max-vcpus %d: QEMU takes at most %d vCPUs (the q35 machine of QEMU 9.0 and later)", maxV, MaxHotplugVCPUs)
	case maxM < spec.MemoryBytes:
		return nil, badSpec("--max-memory %s is below the %s the VM starts with: give at least %s", memobj.FormatSize(maxM), memobj.FormatSize(spec.MemoryBytes), memobj.FormatSize(spec.MemoryBytes))
	}
	growth := maxM - spec.MemoryBytes
	unit, dimm := max(virtioMemBlock, spec.HugepageBytes), uint64(0)
	what := "virtio-mem's block size"
	switch spec.MemoryHotplug {
	case "", MemoryHotplugVirtioMem:
	case MemoryHotplugDIMM:
		dimm = DIMMSize(growth, spec.HugepageBytes)
		unit, what = dimm, "the DIMM size qnuma plugs it in, --memory-hotplug dimm"
	default:
		return nil, badSpec("--memory-hotplug %q: want virtio-mem or dimm", spec.MemoryHotplug)
	}
	if growth%unit != 0 {
		return nil, badSpec("--max-memory %s is %s above --memory %s: the growth must be a multiple of %s (%s)", memobj.FormatSize(maxM), memobj.FormatSize(growth), memobj.FormatSize(spec.MemoryBytes), memobj.FormatSize(unit), what)
	}
	full := spec
	full.VCPUs, full.MemoryBytes, full.MaxVCPUs, full.MaxMemoryBytes = maxV, maxM, 0, 0
	p, err := Make(host, full, placed)
	if err != nil {
		return nil, fmt.Errorf("plan vm with hotplug room (%d vCPUs, %s at most): %w", maxV, memobj.FormatSize(maxM), err)
	}
	p.Spec = spec
	if spec.LowestVCPUsAtStart {
		p.HotplugVCPUs = append(p.HotplugVCPUs, p.VCPUs[spec.VCPUs:]...)
		p.VCPUs = p.VCPUs[:spec.VCPUs]
	} else {
		p.startVCPUs(spec.VCPUs)
	}
	if err := splitGrowth(p, maxM, growth, unit); err != nil {
		return nil, err
	}
	for i := range p.HotplugMemory {
		p.HotplugMemory[i].DIMMBytes = dimm
	}
	r := fmt.Sprintf("Hotplug room: qnuma fitted the VM at its most (%d vCPUs, %s) on host nodes %s (the sentences above are about that size), so the growth has room there now, and starts it with %d vCPUs and %s; the ledger promises the growth too, so VMs placed later leave it free.",
		maxV, sizeString(maxM), idList(p.HostNodes), spec.VCPUs, sizeString(spec.MemoryBytes))
	if len(p.HotplugVCPUs) > 0 {
		r += " Absent vCPUs:"
		for _, g := range p.GuestNodes {
			ids := cpuset.New()
			for _, v := range p.HotplugVCPUs {
				if v.GuestNode == g.ID {
					ids = ids.Union(cpuset.New(v.ID))
				}
			}
			if !ids.IsEmpty() {
				r += fmt.Sprintf(" %s in guest node %d (host nodes %s);", ids, g.ID, idList(g.HostNodes))
			}
		}
		r = r[:len(r)-1] + "; each is mapped there ahead of time (-numa cpu for every slot)."
		r += " " + p.startPhrase()
	}
	for _, m := range p.HotplugMemory {
		how := "virtio-mem, empty at start"
		if m.DIMMBytes > 0 {
			how = fmt.Sprintf("up to %d DIMMs of %s, none at start", m.Bytes/m.DIMMBytes, sizeString(m.DIMMBytes))
		}
		r += fmt.Sprintf(" Guest node %d can grow by %s (%s) on host nodes %s.", m.GuestNode, sizeString(m.Bytes), how, idList(m.HostNodes))
	}
	if dimm > 0 {
		r += " The growth is plugged as DIMMs, each with its own backend bound to its guest node's host nodes, by qnuma memory; removing one needs the guest to release it (ACPI memory hot-remove)."
	}
	p.Reasons = append(p.Reasons, r)
	return p, nil
}

// splitGrowth takes the memory growth out of the guest nodes of a plan
// made at maxM, in proportion to their memory, in multiples of unit (the
// last node with memory takes what rounding leaves).
func splitGrowth(p *Plan, maxM, growth, unit uint64) error {
	if growth == 0 {
		return nil
	}
	last := -1
	for i, g := range p.GuestNodes {
		if g.MemoryBytes > 0 {
			last = i
		}
	}
	left := growth
	for i := range p.GuestNodes {
		g := &p.GuestNodes[i]
		if g.MemoryBytes == 0 {
			continue
		}
		share := left
		if i != last {
			share = (g.MemoryBytes / memobj.MiB) * (growth / memobj.MiB) / (maxM / memobj.MiB) * memobj.MiB
			share -= share % unit
		}
		if share >= g.MemoryBytes {
			return badSpec("guest node %d (%s at most) would start with no memory of its own once its %s of growth is taken out: give more --memory or less --max-memory", g.ID, memobj.FormatSize(g.MemoryBytes), memobj.FormatSize(share))
		}
		left -= share
		g.MemoryBytes -= share
		if share > 0 {
			p.HotplugMemory = append(p.HotplugMemory, HotplugMemory{GuestNode: g.ID, HostNodes: append([]int(nil), g.HostNodes...), Bytes: share})
		}
	}
	return nil
}

// MemoryHotplug is how a plan's memory growth is plugged.
type MemoryHotplug string

const (
	// MemoryHotplugVirtioMem: one virtio-mem-pci device per guest node,
	// empty at start, whose requested-size qnuma memory sets (QEMU 5.1+).
	MemoryHotplugVirtioMem MemoryHotplug = "virtio-mem"
	// MemoryHotplugDIMM: -m slots= for DIMMs (pc-dimm) that qnuma memory
	// adds at run time, each with its own backend, for a QEMU without
	// virtio-mem.
	MemoryHotplugDIMM MemoryHotplug = "dimm"
)

// Sizes of the DIMMs the growth is plugged in: 128 MiB (the memory block
// an x86 Linux guest onlines and offlines whole), doubled until the growth
// needs no more than maxDIMMs of them.
const (
	minDIMM  = 128 * memobj.MiB
	maxDIMMs = 256 // QEMU's x86 limit on -m slots= (ACPI_MAX_RAM_SLOTS)
)

// DIMMSize is the size of each DIMM a growth of growth bytes is plugged in
// with --memory-hotplug dimm: 128 MiB, or a larger power of two times it
// so that at most 256 DIMMs take it all, and never below the hugepage size
// (0: none).
func DIMMSize(growth, hugepage uint64) uint64 {
	d := max(minDIMM, hugepage)
	for growth/d > maxDIMMs {
		d *= 2
	}
	return d
}

// HasVirtioMem says whether QEMU v on machine type machine ("" for the
// default) has virtio-mem for x86 (QEMU 5.1 and later, on a machine with
// PCI), and if not why.
func HasVirtioMem(v qemuversion.Version, machine string) (bool, string) {
	switch {
	case !v.AtLeast(5, 1):
		return false, fmt.Sprintf("qemu %s has no virtio-mem (5.1 and later)", v)
	case machine == "microvm" || machine == "isapc":
		return false, fmt.Sprintf("machine %s has no PCI bus for virtio-mem-pci", machine)
	}
	return true, ""
}

// Ids of the growth's backends and virtio-mem devices, by guest node.
const (
	hotmemIDFormat = "qnuma-hotmem%d"
	vmemIDFormat   = "qnuma-vmem%d"
	// DIMMs, by guest node and number.
	dimmIDFormat    = "qnuma-dimm%d-%d"
	dimmMemIDFormat = "qnuma-dimmmem%d-%d"
)

// hotplugMemory is -m mem with the room for the growth: maxmem, and a
// slot per virtio-mem device or per DIMM the growth can take.
func (p *Plan) hotplugMemory(mem qemucmd.Memory, v qemuversion.Version) (qemucmd.Memory, error) {
	mem.MaxMem = p.Spec.MemoryBytes
	for _, m := range p.HotplugMemory {
		mem.MaxMem += m.Bytes
		if m.DIMMBytes == 0 {
			if ok, why := HasVirtioMem(v, ""); !ok {
				return mem, badSpec("memory hotplug room: %s: plan it with --memory-hotplug dimm", why)
			}
			mem.Slots++
			continue
		}
		mem.Slots += int(m.Bytes / m.DIMMBytes)
	}
	if mem.Slots > maxDIMMs {
		return mem, badSpec("memory hotplug room: %d slots, more than QEMU's %d", mem.Slots, maxDIMMs)
	}
	return mem, nil
}

// DIMMIDs are the ids of the k-th DIMM (from 1) qnuma memory plugs into
// guest node g, and of its backend.
func DIMMIDs(g, k int) (device, memdev string) {
	return fmt.Sprintf(dimmIDFormat, g, k), fmt.Sprintf(dimmMemIDFormat, g, k)
}

// HotplugIDs are the ids of guest node g's virtio-mem device and of its
// backend, as Args renders them.
func HotplugIDs(g int) (device, memdev string) {
	return fmt.Sprintf(vmemIDFormat, g), fmt.Sprintf(hotmemIDFormat, g)
}

// BackendPolicy is the policy Args puts on every backend it renders
// (guest RAM and hotplug memory): Spec.Policy, bind when unset.
func (p *Plan) BackendPolicy() memobj.Policy {
	if p.Spec.Policy == "" {
		return memobj.PolicyBind
	}
	return p.Spec.Policy
}

// VirtioMem is a virtio-mem-pci device in guest node node on backend
// memdev, plugging requested bytes (0: empty at start); block is its
// block size (0: QEMU's default).
func VirtioMem(id, memdev string, node int, block, requested uint64) qemucmd.MemoryDevice {
	dev := qemucmd.MemoryDevice{Driver: "virtio-mem-pci", ID: id, Memdev: memdev, Node: &node}
	if block > 0 {
		dev.Other = append(dev.Other, qemucmd.Prop{Key: "block-size", Value: memobj.FormatSize(block)})
	}
	dev.Other = append(dev.Other, qemucmd.Prop{Key: "requested-size", Value: memobj.FormatSize(requested)})
	return dev
}

// hotplugArgs are the memory growth's backends (template b, bound to each
// guest node's host nodes, never preallocated) and virtio-mem devices.
// DIMMs have none at start: qnuma memory adds each with its backend.
func (p *Plan) hotplugArgs(b qemucmd.Backend) []qemucmd.Option {
	var frags []qemucmd.Option
	b.Prealloc, b.PreallocThreads, b.PreallocContext = nil, nil, ""
	for _, m := range p.HotplugMemory {
		if m.DIMMBytes > 0 {
			continue
		}
		dev, memdev := HotplugIDs(m.GuestNode)
		mb := b
		mb.ID, mb.Size = memdev, m.Bytes
		mb.HostNodes, mb.HasHostNodes = cpuset.New(m.HostNodes...), true
		frags = append(frags, mb, VirtioMem(dev, memdev, m.GuestNode, 0, 0))
	}
	return frags
}

// slotCPUs is -numa cpu for every vCPU slot of a plan with hotplug room,
// present or absent, by socket, core and thread: a slot past the planned
// vCPUs (the topology's padding) goes with its socket's last planned vCPU.
func (p *Plan) slotCPUs() []qemucmd.Option {
	node := map[int]int{}
	for _, v := range append(append([]VCPU(nil), p.VCPUs...), p.HotplugVCPUs...) {
		node[v.ID] = v.GuestNode
	}
	t := memobj.Topology{Sockets: p.Sockets, Dies: 1, Clusters: 1, Cores: p.Cores, Threads: p.Threads}
	var frags []qemucmd.Option
	g := 0
	for i := 0; i < p.Sockets*p.Cores*p.Threads; i++ {
		if n, ok := node[i]; ok {
			g = n
		}
		s, _, c, th := t.IDs(i)
		frags = append(frags, qemucmd.NumaCPU{NodeID: ptr(g), SocketID: ptr(s), CoreID: ptr(c), ThreadID: ptr(th)})
	}
	return frags
}

func ptr(i int) *int { return &i }

// startVCPUs splits the n vCPUs a plan made at its most starts with over
// its guest nodes as a VM of n vCPUs is split (splitVCPUs, each guest
// node's slots its cap), each guest node's first slots present: a guest
// node with slots boots with vCPUs of its own whenever n allows. The rest
// become HotplugVCPUs in the order qnuma vcpus adds them: the guest node
// the split of one vCPU more grows, so that growth alternates between
// guest nodes as the start split does; removal takes the last added first.
func (p *Plan) startVCPUs(n int) {
	byNode := make([][]VCPU, len(p.GuestNodes))
	caps := make([]int, len(p.GuestNodes))
	for _, v := range p.VCPUs {
		byNode[v.GuestNode] = append(byNode[v.GuestNode], v)
		caps[v.GuestNode]++
	}
	used := splitVCPUs(caps, n)
	var present []VCPU
	for g, vs := range byNode {
		present = append(present, vs[:used[g]]...)
	}
	slices.SortFunc(present, func(a, b VCPU) int { return a.ID - b.ID })
	var hot []VCPU
	for k := n + 1; k <= len(p.VCPUs); k++ {
		for g, want := range splitVCPUs(caps, k) {
			for ; used[g] < want; used[g]++ {
				hot = append(hot, byNode[g][used[g]])
			}
		}
	}
	p.VCPUs, p.HotplugVCPUs = present, append(p.HotplugVCPUs, hot...)
}

// startPhrase says how the vCPUs present at start are given to QEMU: the
// first by -smp, those of other guest nodes cold-plugged by -device.
func (p *Plan) startPhrase() string {
	boot := p.BootVCPUs()
	if boot == len(p.VCPUs) {
		return "qnuma vcpus adds them in the order listed under Hotpluggable vCPUs and removes the last added first."
	}
	var parts []string
	for _, g := range p.GuestNodes {
		ids := cpuset.New()
		for _, v := range p.VCPUs {
			if v.GuestNode == g.ID {
				ids = ids.Union(cpuset.New(v.ID))
			}
		}
		if !ids.IsEmpty() {
			parts = append(parts, fmt.Sprintf("%s in guest node %d", ids, g.ID))
		}
	}
	return fmt.Sprintf("Present at start: vCPUs %s, split as a VM of %d vCPUs is, so every guest node with vCPUs boots with some; QEMU starts vCPUs %s (-smp %d) and the others are cold-plugged into their slots (-device <cpu model>-x86_64-cpu,id=qnuma-vcpuN), each pinned like the rest. qnuma vcpus adds the absent ones in the order listed under Hotpluggable vCPUs, alternating between guest nodes, and removes the last added first.",
		strings.Join(parts, ", "), len(p.VCPUs), cpuset.New(iota(boot)...), boot)
}

// BootVCPUs is how many vCPUs -smp starts: the present vCPUs 0, 1, ...
// up to the first absent slot. The other present vCPUs are cold-plugged
// (coldPlugged).
func (p *Plan) BootVCPUs() int {
	n := 0
	for n < len(p.VCPUs) && p.VCPUs[n].ID == n {
		n++
	}
	return n
}

// DefaultCPUType is the QOM type of QEMU's default x86 vCPU (-cpu qemu64),
// which RenderOptions.CPUType defaults to.
const DefaultCPUType = "qemu64-x86_64-cpu"

// VCPUDeviceID is the id of the vCPU device in slot id (cpu-index id):
// one cold-plugged on the command line, or one qnuma vcpus adds.
func VCPUDeviceID(id int) string { return fmt.Sprintf("qnuma-vcpu%d", id) }

// cpuDevice is -device for one vCPU cold-plugged into its slot.
type cpuDevice struct {
	Driver, ID           string
	Socket, Core, Thread int
}

func (d cpuDevice) Arg() qemucmd.Arg {
	return qemucmd.Arg{Flag: "-device", Name: "device", HasValue: true,
		Value: fmt.Sprintf("%s,id=%s,socket-id=%d,core-id=%d,thread-id=%d", d.Driver, d.ID, d.Socket, d.Core, d.Thread)}
}

// coldPlugged is -device for every present vCPU -smp does not start (a
// plan with hotplug room whose later guest nodes start with vCPUs of their
// own), of type typ ("": DefaultCPUType).
func (p *Plan) coldPlugged(typ string) []qemucmd.Option {
	if typ == "" {
		typ = DefaultCPUType
	}
	var frags []qemucmd.Option
	for _, v := range p.VCPUs[p.BootVCPUs():] {
		frags = append(frags, cpuDevice{Driver: typ, ID: VCPUDeviceID(v.ID), Socket: v.Socket, Core: v.Core, Thread: v.Thread})
	}
	return frags
}

// iota is 0, 1, ..., n-1.
func iota(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
