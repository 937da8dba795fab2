package plan

import (
	"fmt"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemucmd"
	"github.com/qnuma/qnuma/qemuversion"
)

// RenderOptions is what rendering needs beyond the Plan.
type RenderOptions struct {
	// QEMU is the version of the binary that will run (qemuversion.ProbeVersion).
	QEMU qemuversion.Version
	// Backend for guest RAM; "" means memfd (ram on a QEMU older than
	// 2.12): a memfd's memory policy can be changed while the VM runs, so
	// qnuma move can move it (qemucmd.Cmdline.NotMovable).
	Backend memobj.BackendType
	// MemPath is the directory (a hugetlbfs mount for hugepages) file
	// backends create their files in.
	MemPath string
	// CPUType is the QOM type of the vCPUs a plan with hotplug room
	// cold-plugs with -device (the -cpu model's, QEMUArgv.CPUType); "":
	// DefaultCPUType.
	CPUType string
}

// Backend and thread-context ids, by guest node.
const (
	ramIDFormat = "qnuma-ram%d"
	tcIDFormat  = "qnuma-tc%d"
)

// Args renders the plan as QEMU arguments: -smp, -m, a memory backend per
// guest node (with a thread-context for preallocation on QEMU 7.2+), and
// -numa node/cpu/dist for a guest with several nodes. A one-node guest gets
// no -numa: its backend is the machine's RAM. A BindOnly plan renders only
// the user's own backends that left their binding open, filled in
// (Plan.Fill; QEMUArgv.Final puts them in place of the user's): the user's
// other arguments stand. Args is pure.
func (p *Plan) Args(opts RenderOptions) ([]string, error) {
	if p.BindOnly {
		var out []string
		for _, b := range p.Fill {
			out = append(out, b.Arg().Strings()...)
		}
		return out, nil
	}
	if err := checkQEMU(opts.QEMU); err != nil {
		return nil, err
	}
	if err := p.checkShape(); err != nil {
		return nil, fmt.Errorf("render qemu args: %w", err)
	}
	backend, err := p.backend(opts)
	if err != nil {
		return nil, fmt.Errorf("render qemu args: %w", err)
	}

	// The user's own -smp topology stays as written in their command line
	// (Final keeps it when the rendered arguments have no -smp).
	var frags []qemucmd.Option
	if p.Spec.Topology == nil {
		frags = append(frags, p.smp())
	}
	mem := qemucmd.Memory{Size: p.Spec.MemoryBytes}
	if len(p.HotplugMemory) > 0 {
		if mem, err = p.hotplugMemory(mem, opts.QEMU); err != nil {
			return nil, fmt.Errorf("render qemu args: %w", err)
		}
	}
	frags = append(frags, mem)
	prealloc := backend.Prealloc != nil && *backend.Prealloc
	for _, g := range p.GuestNodes {
		if g.MemoryBytes == 0 {
			continue
		}
		b := backend
		b.ID = fmt.Sprintf(ramIDFormat, g.ID)
		b.Size = g.MemoryBytes
		b.HostNodes, b.HasHostNodes = cpuset.New(g.HostNodes...), len(g.HostNodes) > 0
		if prealloc && opts.QEMU.HasPreallocThreads() {
			n := p.preallocThreads(g)
			b.PreallocThreads = &n
		}
		// A memory-only guest node may sit on a CPU-less host node, where a
		// node-affinity thread-context has no CPUs to run on.
		if prealloc && opts.QEMU.HasThreadContext() && len(g.VCPUs) > 0 {
			tc := qemucmd.ThreadContext{ID: fmt.Sprintf(tcIDFormat, g.ID), NodeAffinity: cpuset.New(g.HostNodes...), HasNodes: true}
			b.PreallocContext = tc.ID
			frags = append(frags, tc)
		}
		frags = append(frags, b)
	}
	if len(p.GuestNodes) == 1 {
		frags = append(frags, p.mainRAM(opts.QEMU))
	} else {
		numa, err := p.numa()
		if err != nil {
			return nil, fmt.Errorf("render qemu args: %w", err)
		}
		frags = append(frags, numa...)
	}
	frags = append(frags, p.hotplugArgs(backend)...)
	frags = append(frags, p.coldPlugged(opts.CPUType)...)
	args, err := qemucmd.Render(frags...)
	if err != nil {
		return nil, fmt.Errorf("render qemu args: %w", err)
	}
	return args, nil
}

// checkQEMU refuses an unknown or too old QEMU: qnuma needs -numa dist and
// -numa cpu (2.10).
func checkQEMU(v qemuversion.Version) error {
	if v.IsZero() {
		return fmt.Errorf("render qemu args: qemu version not known (probe it with qemuversion.ProbeVersion)")
	}
	if !v.HasNUMADistCPU() {
		return fmt.Errorf("render qemu args: qemu %s is too old: qnuma needs 2.10 or newer (-numa dist, -numa cpu)", v)
	}
	return nil
}

// checkShape verifies what QEMU will derive from the arguments agrees with
// the plan: guest node ids, memory adding up to -m, and every vCPU where
// QEMU's topology puts it (vCPU i is socket i/(cores*threads), core
// (i/threads)%cores, thread i%threads), or the pinning would be wrong.
func (p *Plan) checkShape() error {
	if len(p.GuestNodes) == 0 {
		return fmt.Errorf("plan has no guest nodes")
	}
	if len(p.VCPUs) == 0 {
		return fmt.Errorf("plan has no vcpus")
	}
	var sum uint64
	for i, g := range p.GuestNodes {
		if g.ID != i {
			return fmt.Errorf("guest node %d has id %d: ids must be 0..%d in order", i, g.ID, len(p.GuestNodes)-1)
		}
		if g.MemoryBytes > 0 && len(g.HostNodes) == 0 {
			return fmt.Errorf("guest node %d has memory and no host nodes", g.ID)
		}
		if g.MemoryBytes%memobj.MiB != 0 {
			return fmt.Errorf("guest node %d memory (%d bytes) is not a multiple of 1 MiB", g.ID, g.MemoryBytes)
		}
		if hp := p.Spec.HugepageBytes; hp > 0 && g.MemoryBytes%hp != 0 {
			return fmt.Errorf("guest node %d memory %s is not a multiple of the hugepage size %s", g.ID, memobj.FormatSize(g.MemoryBytes), memobj.FormatSize(hp))
		}
		sum += g.MemoryBytes
	}
	if sum != p.Spec.MemoryBytes {
		return fmt.Errorf("guest nodes' memory adds up to %s, not the VM's %s (qemu insists they match -m)", memobj.FormatSize(sum), memobj.FormatSize(p.Spec.MemoryBytes))
	}
	if len(p.GuestNodes) == 1 && p.GuestNodes[0].MemoryBytes == 0 {
		return fmt.Errorf("the only guest node has no memory")
	}
	if p.Sockets <= 0 || p.Cores <= 0 || p.Threads <= 0 {
		return fmt.Errorf("topology %d sockets, %d cores, %d threads: each must be at least 1", p.Sockets, p.Cores, p.Threads)
	}
	topo := memobj.Topology{CPUs: len(p.VCPUs), Sockets: p.Sockets, Dies: 1, Clusters: 1, Cores: p.Cores, Threads: p.Threads}
	topo.MaxCPUs = p.Sockets * p.Cores * p.Threads
	if p.Spec.Topology != nil {
		topo = *p.Spec.Topology
	}
	if topo.MaxCPUs < len(p.VCPUs) {
		return fmt.Errorf("%d vcpus do not fit %d sockets × %d cores × %d threads", len(p.VCPUs), p.Sockets, p.Cores, p.Threads)
	}
	for i, v := range p.VCPUs {
		// With hotplug room the present vCPUs are any slots, ascending,
		// vCPU 0 among them: -smp starts 0, 1, ... and -device plugs the
		// others into their slots (cpu-index = slot).
		hot := len(p.HotplugVCPUs) > 0 && p.Spec.Topology == nil
		switch {
		case !hot && v.ID != i:
			return fmt.Errorf("vcpu %d has id %d: ids must be 0..%d in order", i, v.ID, len(p.VCPUs)-1)
		case hot && (i == 0 && v.ID != 0 || i > 0 && v.ID <= p.VCPUs[i-1].ID || v.ID >= topo.MaxCPUs):
			return fmt.Errorf("vcpu %d has id %d: ids must ascend from 0 within the %d slots", i, v.ID, topo.MaxCPUs)
		}
		if v.GuestNode < 0 || v.GuestNode >= len(p.GuestNodes) {
			return fmt.Errorf("vcpu %d is on guest node %d, which does not exist", v.ID, v.GuestNode)
		}
		s, _, c, t := topo.IDs(v.ID)
		if v.Socket != s || v.Core != c || v.Thread != t {
			return fmt.Errorf("vcpu %d is planned as socket %d core %d thread %d, but -smp sockets=%d,cores=%d,threads=%d makes it socket %d core %d thread %d",
				v.ID, v.Socket, v.Core, v.Thread, p.Sockets, p.Cores, p.Threads, s, c, t)
		}
	}
	return nil
}

// backend is the template for every guest node's memory backend.
func (p *Plan) backend(opts RenderOptions) (qemucmd.Backend, error) {
	hp := p.Spec.HugepageBytes
	typ, policy := opts.Backend, p.BackendPolicy()
	if typ == "" {
		typ = memobj.BackendRAM
		if hp > 0 || opts.QEMU.HasMemfd() {
			typ = memobj.BackendMemfd
		}
	}
	b := qemucmd.Backend{Type: string(typ), Policy: string(policy)}
	if p.Spec.Prealloc {
		on := true
		b.Prealloc = &on
	}
	switch typ {
	case memobj.BackendRAM:
		if hp > 0 {
			return b, fmt.Errorf("hugepages need a memfd or file backend, not ram")
		}
	case memobj.BackendMemfd:
		if !opts.QEMU.HasMemfd() {
			return b, fmt.Errorf("qemu %s has no memfd backend (2.12 or newer)", opts.QEMU)
		}
		if hp > 0 {
			on := true
			b.HugeTLB, b.HugeTLBSize = &on, hp
		}
	case memobj.BackendFile:
		if opts.MemPath == "" {
			return b, fmt.Errorf("a file backend needs a directory (mem-path) to create its files in")
		}
		b.MemPath = opts.MemPath
	default:
		_, err := memobj.ParseBackendType(string(typ))
		return b, err
	}
	return b, nil
}

// smp is -smp from the plan's topology; maxcpus covers a topology with
// more slots than vCPUs.
func (p *Plan) smp() qemucmd.SMP {
	s := qemucmd.SMP{CPUs: p.BootVCPUs(), Sockets: p.Sockets, Cores: p.Cores, Threads: p.Threads}
	if n := p.Sockets * p.Cores * p.Threads; n != s.CPUs {
		s.MaxCPUs = n
	}
	return s
}

// preallocThreads is one preallocation thread per host CPU the guest
// node's vCPUs run on (the emulator's CPUs for a memory-only node).
func (p *Plan) preallocThreads(g GuestNode) int {
	present := make(map[int]cpuset.CPUSet, len(p.VCPUs)) // by id
	for _, v := range p.VCPUs {
		present[v.ID] = v.HostCPUs
	}
	cpus := cpuset.New()
	for _, id := range g.VCPUs {
		if c, ok := present[id]; ok {
			cpus = cpus.Union(c)
		}
	}
	if len(g.VCPUs) == 0 {
		cpus = p.EmulatorCPUs
	}
	return max(1, cpus.Size())
}

// mainRAM makes a one-node guest's only backend its RAM: -machine
// memory-backend= where QEMU has it (5.0), else a single -numa node.
func (p *Plan) mainRAM(v qemuversion.Version) qemucmd.Option {
	id := fmt.Sprintf(ramIDFormat, 0)
	if v.HasMachineMemoryBackend() {
		return qemucmd.Machine{MemoryBackend: id}
	}
	zero := 0
	return qemucmd.NumaNode{NodeID: &zero, Memdev: id}
}

// numa is -numa node for every guest node, -numa cpu for every socket (a
// socket belongs to its vCPUs' guest node) and -numa dist for every ordered
// pair of distinct nodes: QEMU refuses a partial list when any pair is
// asymmetric and sets a node's distance to itself to 10.
func (p *Plan) numa() ([]qemucmd.Option, error) {
	var frags []qemucmd.Option
	for _, g := range p.GuestNodes {
		n := qemucmd.NumaNode{NodeID: &g.ID}
		if g.MemoryBytes > 0 {
			n.Memdev = fmt.Sprintf(ramIDFormat, g.ID)
		}
		frags = append(frags, n)
	}
	if len(p.HotplugVCPUs) > 0 {
		frags = append(frags, p.slotCPUs()...)
		return p.dist(frags)
	}
	socketNode := make([]int, p.Sockets)
	for i := range socketNode {
		socketNode[i] = -1
	}
	for _, v := range p.VCPUs {
		switch socketNode[v.Socket] {
		case -1:
			socketNode[v.Socket] = v.GuestNode
		case v.GuestNode:
		default:
			return nil, fmt.Errorf("socket %d holds vcpus of guest nodes %d and %d: a socket must stay in one node", v.Socket, socketNode[v.Socket], v.GuestNode)
		}
	}
	for s, g := range socketNode {
		if g < 0 {
			return nil, fmt.Errorf("socket %d has no vcpus, so it has no guest node", s)
		}
		frags = append(frags, qemucmd.NumaCPU{NodeID: &g, SocketID: &s})
	}
	return p.dist(frags)
}

// dist appends -numa dist for every ordered pair of distinct guest nodes.
func (p *Plan) dist(frags []qemucmd.Option) ([]qemucmd.Option, error) {
	if p.Distances == nil {
		return frags, nil
	}
	n := len(p.GuestNodes)
	if len(p.Distances) != n {
		return nil, fmt.Errorf("distances have %d rows for %d guest nodes", len(p.Distances), n)
	}
	for i, row := range p.Distances {
		if len(row) != n {
			return nil, fmt.Errorf("distance row %d has %d entries for %d guest nodes", i, len(row), n)
		}
		if row[i] != qemucmd.LocalDistance {
			return nil, fmt.Errorf("guest node %d's distance to itself is %d; qemu fixes it at %d", i, row[i], qemucmd.LocalDistance)
		}
	}
	for i, row := range p.Distances {
		for j, d := range row {
			if i != j {
				frags = append(frags, qemucmd.NumaDist{Src: i, Dst: j, Val: d})
			}
		}
	}
	return frags, nil
}
