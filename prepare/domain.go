package prepare

// A libvirt domain XML as the VM spec (qnuma --domain-xml). The
// domain's placement (vCPUs and topology, guest cells and their host
// binding, memory backing, pins, I/O threads, hotplug room, memory
// devices) becomes a plan.Spec with the domain's own cells, which
// plan.Make places (plan/cells.go); the placement half of the QEMU command
// line is rendered from the domain and the plan, and the user's QEMU
// command line after -- carries the rest (devices, disks, console).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/domxml"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemucmd"
	"github.com/qnuma/qnuma/qemuversion"
)

// shmDir is where a file backend that is not on hugepages creates its
// files (libvirt: memory_backing_dir, /var/lib/libvirt/qemu/ram).
const shmDir = "/dev/shm"

// Domain is what a domain XML gives: the spec's cells and what the
// rendering needs once the plan has chosen the open host nodes.
type Domain struct {
	path string
	dom  *domxml.Domain
	// implicit: the domain has no <cpu><numa>: one cell of every vCPU and
	// all memory, rendered as the machine's RAM (-machine memory-backend=),
	// not as a -numa node.
	implicit bool
	smp      qemucmd.SMP
	mem      qemucmd.Memory
	// backends are the cells' backends as given, host-nodes left out
	// where qnuma chooses (plan.Plan.Fill then holds them filled in).
	backends []qemucmd.Backend
	// unbind: the cells whose backends get no policy at all (restrictive).
	unbind map[string]bool
	// iothreads to render (those the user's command line lacks).
	iothreads []string
	notes     []string
}

// ReadDomain reads the domain XML at path into spec; user is the QEMU
// command line after -- (nil for none), which must not say what the domain
// says. Bad input wraps ErrBadInput.
func ReadDomain(path string, spec plan.Spec, user *plan.QEMUArgv) (*Domain, plan.Spec, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil, spec, Bad("--domain-xml %s: %w", path, err)
	}
	if err != nil {
		return nil, spec, fmt.Errorf("read domain xml: %w", err)
	}
	d, err := domxml.Parse(data)
	if err != nil {
		return nil, spec, Bad("--domain-xml %s: %w", path, err)
	}
	if user != nil {
		if err := domainConflicts(path, user); err != nil {
			return nil, spec, err
		}
	}
	dp := &Domain{path: path, dom: d, unbind: map[string]bool{}}
	if spec, err = dp.spec(spec); err != nil {
		return nil, spec, err
	}
	dp.iothreads = missingIOThreads(d, user)
	return dp, spec, nil
}

// domainConflicts refuses a QEMU command line that says what the domain
// says: its placement options would contradict the rendered ones.
func domainConflicts(path string, user *plan.QEMUArgv) error {
	var own []string
	if user.HasSMP {
		own = append(own, "-smp "+user.SMPArg+" (the domain's <vcpu> and <cpu><topology>)")
	}
	if user.MemoryArg != "" {
		own = append(own, "-m "+user.MemoryArg+" (the domain's <memory> and cells)")
	}
	if user.HasNUMA {
		own = append(own, "-numa (the domain's <cpu><numa>)")
	}
	if user.HasMemoryBackend {
		own = append(own, "memory backends "+strings.Join(user.Backends, ", ")+" (the domain's cells and <memoryBacking>)")
	}
	if user.MemPath != "" {
		own = append(own, "-mem-path (the domain's <memoryBacking>)")
	}
	if user.MemPrealloc {
		own = append(own, "-mem-prealloc (the domain's <memoryBacking><allocation>)")
	}
	if len(user.Cmdline.MemoryDevices()) > 0 {
		own = append(own, "memory devices (the domain's <devices><memory>)")
	}
	if m, ok := user.Cmdline.Machine(); ok && (m.MemoryBackend != "" || m.HMAT != nil) {
		own = append(own, "-machine memory-backend=/hmat= (the domain's memory)")
	}
	if len(own) == 0 {
		return nil
	}
	return Bad("the qemu command line has its own %s, and --domain-xml %s gives the placement: drop them from the command line (it carries devices, disks and the console)", strings.Join(own, "; "), path)
}

// modePolicy is QEMU's backend policy for a libvirt mode.
func modePolicy(m domxml.Mode) memobj.Policy {
	switch m {
	case domxml.ModePreferred:
		return memobj.PolicyPreferred
	case domxml.ModeInterleave:
		return memobj.PolicyInterleave
	}
	return memobj.PolicyBind // strict; restrictive binds by the process policy
}

// spec fills spec from the domain.
func (dp *Domain) spec(spec plan.Spec) (plan.Spec, error) {
	d := dp.dom
	where := "--domain-xml " + dp.path
	cur, most := d.VCPU.Current, d.VCPU.Max
	for _, st := range d.VCPUs {
		if st.Enabled != (st.ID < cur) {
			return spec, Bad("%s: <vcpus><vcpu id='%d' enabled='%s'>: %w: qnuma starts vCPUs 0-%d (QEMU -smp %d,maxcpus=%d) and plugs none at start; enable the lowest ids",
				where, st.ID, yesNo(st.Enabled), domxml.ErrUnsupported, cur-1, cur, most)
		}
	}
	dp.smp = qemucmd.SMP{CPUs: cur, Sockets: most, Cores: 1, Threads: 1} // libvirt's default: a socket per vCPU
	if t := d.Topology; t != nil {
		dp.smp = qemucmd.SMP{CPUs: cur, Sockets: t.Sockets, Cores: t.Cores, Threads: t.Threads}
		if t.Dies > 1 {
			dp.smp.Dies = t.Dies
		}
		if t.Clusters > 1 {
			return spec, Bad("%s: <cpu><topology clusters='%d'>: %w: x86 machines have no clusters in QEMU 7.2", where, t.Clusters, domxml.ErrUnsupported)
		}
	}
	if most != cur {
		dp.smp.MaxCPUs = most
	}
	s := dp.smp
	topo, err := memobj.SMP{CPUs: s.CPUs, MaxCPUs: s.MaxCPUs, Sockets: s.Sockets, Dies: s.Dies, Cores: s.Cores, Threads: s.Threads}.Resolve()
	if err != nil {
		return spec, Bad("%s: <vcpu> and <cpu><topology>: %w", where, err)
	}
	spec.VCPUs, spec.Topology = cur, &topo
	spec.CellsFrom = "The domain XML's <cpu><numa>"
	if most != cur {
		dp.notes = append(dp.notes, fmt.Sprintf("vCPUs %s are hotpluggable and offline at start (-smp %d,maxcpus=%d): they are in their guest nodes' -numa cpus=, and qnuma pins only the vCPUs present at start.", cpuset.New(seq(most)[cur:]...), cur, most))
	}

	cells := d.Cells
	if len(cells) == 0 {
		dp.implicit = true
		spec.CellsFrom = "The domain XML, without <cpu><numa>,"
		if len(d.MemoryDevices) > 0 {
			return spec, Bad("%s: <devices><memory>: memory devices need guest NUMA cells (<cpu><numa>), as libvirt requires on x86", where)
		}
		cells = []domxml.Cell{{ID: 0, CPUs: cpuset.New(seq(most)...), Memory: d.Memory}}
	}
	var boot, plugged uint64
	for _, c := range cells {
		boot += c.Memory
	}
	for _, m := range d.MemoryDevices {
		plugged += m.Size
	}
	if !dp.implicit && d.Memory != 0 && d.Memory != boot+plugged {
		return spec, Bad("%s: <memory> is %s, but the <cpu><numa> cells (%s) and memory devices (%s) add up to %s: make them agree",
			where, memobj.FormatSize(d.Memory), memobj.FormatSize(boot), memobj.FormatSize(plugged), memobj.FormatSize(boot+plugged))
	}
	spec.MemoryBytes = boot
	dp.mem = qemucmd.Memory{Size: boot}
	if m := d.MaxMemory; m != nil {
		dp.mem.MaxMem, dp.mem.Slots = m.Size, m.Slots
	}
	if dp.hmat() {
		for _, c := range cells {
			if dp.initiator(c.ID) < 0 {
				return spec, Bad("%s: <cell id='%d'>: with HMAT (<interconnects>, <cache>) QEMU needs every cell's initiator, and this memory-only cell is the target of no <latency> or <bandwidth> that names one: add one from a cell with vCPUs", where, c.ID)
			}
		}
		for _, l := range d.Interconnects {
			if l.Kind == "bandwidth" && l.Value%(1<<20) != 0 {
				return spec, Bad("%s: <interconnects><bandwidth initiator='%d' target='%d'>: %d bytes/s is not a whole number of MiB/s, which QEMU's -numa hmat-lb needs: give it in MiB (unit='MiB') or GiB", where, l.Initiator, l.Target, l.Value)
			}
		}
		dp.notes = append(dp.notes, "HMAT is given to the guest as the domain says (-machine hmat=on, -numa hmat-lb and hmat-cache): the guest's own latency and bandwidth figures, not measured on the host.")
	}

	// The process policy: <numatune><memory mode>, bind by default.
	spec.Policy = memobj.PolicyBind
	restrictiveAuto := false
	if t := d.NUMATune; t != nil && t.Memory != nil {
		spec.Policy = modePolicy(t.Memory.Mode)
		restrictiveAuto = t.Memory.Mode == domxml.ModeRestrictive && t.Memory.Placement == domxml.PlacementAuto
	}

	var pages []uint64
	mixed := false
	for i, c := range cells {
		b, note, err := dp.backend(c.ID, c.Memory)
		if err != nil {
			return spec, err
		}
		size, huge := d.PageSize(c.ID)
		if huge && size > 0 && c.Memory%size != 0 {
			return spec, Bad("%s: <cell id='%d'> has %s, not a whole number of its %s hugepages (<memoryBacking><hugepages>): QEMU would refuse its backend", where, c.ID, memobj.FormatSize(c.Memory), memobj.FormatSize(size))
		}
		if huge && size > 0 {
			pages = append(pages, size)
		} else {
			mixed = true
		}
		cell := plan.Cell{ID: c.ID, VCPUs: c.CPUs.List(), MemoryBytes: c.Memory, Backend: b.ID, Note: note}
		bind := d.Binding(c.ID)
		switch {
		case bind.Mode == "" || bind.Auto:
			cell.Given = "the domain XML binds it to no host node (no <numatune>)"
			if bind.Auto {
				cell.Given = fmt.Sprintf("<numatune><memory mode='%s' placement='auto'> leaves its host nodes to qnuma (libvirt would ask numad)", bind.Mode)
			}
			if restrictiveAuto {
				dp.unbind[b.ID] = true
				cell.Note = withSentence(cell.Note, "Mode restrictive: its backend gets no policy (rendered without host-nodes); qemu's process policy and its vCPUs' pins keep it on the chosen node.")
			}
		default:
			cell.HostNodes, cell.Policy = bind.Nodes.List(), string(modePolicy(bind.Mode))
			cell.Given = givenText(d, c.ID, bind)
			switch bind.Mode {
			case domxml.ModeRestrictive:
				dp.unbind[b.ID] = true
				cell.Policy = "none (restrictive)"
				cell.Note = withSentence(cell.Note, fmt.Sprintf("Mode restrictive: libvirt sets no memory policy on the backend and confines qemu with cgroup cpuset.mems; qnuma renders the backend without host-nodes or policy, starts qemu under a bind policy over the VM's host nodes and pins this cell's vCPUs to the CPUs of %s, so its pages land there when its vCPUs first touch them (a page qemu's own threads touch first may go to any of the VM's nodes), and unlike cpuset.mems the nodes cannot be changed while the guest runs.", nodesText(bind.Nodes)))
			default:
				b.HostNodes, b.HasHostNodes, b.Policy = bind.Nodes, true, string(modePolicy(bind.Mode))
				if bind.Mode == domxml.ModePreferred && bind.Nodes.Size() > 1 {
					cell.Note = withSentence(cell.Note, fmt.Sprintf("QEMU's policy=preferred over several nodes is the kernel's MPOL_PREFERRED, which prefers only the first, node %d.", bind.Nodes.List()[0]))
				}
			}
		}
		dp.backends = append(dp.backends, b)
		bb := dp.backends[i]
		cell.Object = &bb
		spec.Cells = append(spec.Cells, cell)
	}
	if !mixed && len(pages) > 0 && slices.Min(pages) == slices.Max(pages) {
		spec.HugepageBytes = pages[0] // the room is counted in free hugepages of that size
	} else if len(pages) > 0 || d.MemoryBacking.Hugepages {
		dp.notes = append(dp.notes, "The guest nodes are on hugepages of different sizes, or some on ordinary pages, or on the host's default size: qnuma counts their room in ordinary memory and does not check the hugepage pools.")
	}

	// Pins: <vcpupin>, else <vcpu cpuset>; <emulatorpin>; <iothreadpin>.
	spec.VCPUPins = map[int]plan.Pin{}
	for v := 0; v < most; v++ {
		if cpus := d.VCPUHostCPUs(v); !cpus.IsEmpty() {
			spec.VCPUPins[v] = plan.Pin{CPUs: cpus, From: pinFrom(d, v)}
		}
	}
	if cpus := d.EmulatorHostCPUs(); !cpus.IsEmpty() {
		from := "<cputune><emulatorpin>"
		if d.CPUTune.EmulatorPin.IsEmpty() {
			from = fmt.Sprintf("<vcpu cpuset='%s'>", d.VCPU.CPUSet)
		}
		spec.EmulatorPin = &plan.Pin{CPUs: cpus, From: from}
	}
	for _, id := range d.IOThreads {
		io := plan.IOThreadSpec{ID: ioThreadID(id), Pin: plan.Pin{CPUs: d.IOThreadHostCPUs(id)}}
		io.Pin.From = fmt.Sprintf("<cputune><iothreadpin iothread='%d'>", id)
		if !slices.ContainsFunc(d.CPUTune.IOThreadPins, func(p domxml.IOThreadPin) bool { return p.IOThread == id }) {
			io.Pin.From = fmt.Sprintf("<vcpu cpuset='%s'>", d.VCPU.CPUSet)
		}
		spec.IOThreads = append(spec.IOThreads, io)
	}

	if !dp.implicit {
		given := false
		for _, c := range d.Cells {
			given = given || len(c.Distances) > 0
		}
		if given {
			n := len(d.Cells)
			spec.GuestDistances = make([][]int, n)
			for i := range n {
				spec.GuestDistances[i] = make([]int, n)
				for j := range n {
					spec.GuestDistances[i][j] = d.Distance(i, j)
				}
			}
		}
	}
	if len(d.MemoryDevices) > 0 {
		dp.notes = append(dp.notes, "The memory devices' backends are bound where their guest node's memory is (or to their <nodemask>); qnuma's room check counts the guest nodes' boot memory only, not the devices'.")
	}
	return spec, nil
}

// backend is guest cell id's memory backend as the domain gives it,
// without its host binding.
func (dp *Domain) backend(id int, size uint64) (qemucmd.Backend, string, error) {
	d := dp.dom
	mb := d.MemoryBacking
	b := qemucmd.Backend{Type: "ram", ID: fmt.Sprintf("ram-node%d", id), Size: size}
	if dp.implicit {
		b.ID = "pc.ram"
	}
	shared := d.Access(id) == domxml.AccessShared
	page, huge := d.PageSize(id)
	discard := mb.Discard
	if !dp.implicit && d.Cells[id].Discard != nil {
		discard = *d.Cells[id].Discard
	}
	var notes []string
	switch {
	case huge && mb.Source == domxml.SourceFile:
		return b, "", Bad("--domain-xml %s: <memoryBacking><source type='file'> with <hugepages>: %w: a file backend on hugepages needs the hugetlbfs mount of that page size, which qnuma does not look up; give <source type='memfd'/> (or none): qnuma backs hugepages with memfd hugetlb=on", dp.path, domxml.ErrUnsupported)
	case huge:
		b.Type = "memfd"
		on := true
		b.HugeTLB, b.HugeTLBSize = &on, page
		if mb.Source == "" {
			notes = append(notes, "Its hugepages come from memfd hugetlb=on (libvirt would use a file on hugetlbfs).")
		}
	case mb.Source == domxml.SourceMemfd:
		b.Type = "memfd"
	case mb.Source == domxml.SourceFile:
		b.Type, b.MemPath = "file", shmDir
	case shared:
		b.Type = "memfd" // shared memory others can map needs an fd
		notes = append(notes, "Shared anonymous memory is a memfd backend (libvirt would use a file in its memory_backing_dir).")
	}
	if b.Type != "ram" || shared {
		b.Share = &shared
	}
	if discard {
		if b.Type == "file" {
			b.Other = append(b.Other, qemucmd.Prop{Key: "discard-data", Value: "on"})
		} else {
			notes = append(notes, fmt.Sprintf("discard is for file backends (QEMU discard-data); this %s backend's memory is freed when qemu exits anyway.", b.Type))
		}
	}
	prealloc := mb.Allocation == domxml.AllocImmediate || (huge && mb.Allocation != domxml.AllocOnDemand)
	if prealloc {
		on := true
		b.Prealloc = &on
		if mb.AllocThreads > 0 {
			n := mb.AllocThreads
			b.PreallocThreads = &n
		}
		if huge && mb.Allocation == "" {
			notes = append(notes, "Its hugepages are preallocated, as libvirt does unless <allocation mode='ondemand'>.")
		}
	}
	return b, strings.Join(notes, " "), nil
}

// planDomain plans the domain's VM and renders its argv (PlanFor's part for
// --domain-xml).
func (pr *VM) planDomain(placed []plan.Placed) error {
	dp := pr.Dom
	if err := dp.checkNodes(pr); err != nil {
		return err
	}
	if !pr.QEMU.HasMachineMemoryBackend() {
		return Bad("--domain-xml: qemu %s is too old: qnuma renders a domain for QEMU 5.0 or newer (-machine memory-backend=, prealloc-threads)", pr.QEMU)
	}
	p, err := plan.Make(pr.Host, pr.Spec, placed)
	if err != nil {
		return err
	}
	p.Reasons = append(p.Reasons, dp.notes...)
	pr.Plan = p
	pr.Rendered = dp.render(p, pr.QEMU)
	binary, args := DefaultQEMU, []string(nil)
	if pr.User != nil {
		binary, args = pr.User.Binary, pr.User.Args
	}
	pr.Argv = slices.Concat([]string{binary}, args, pr.Rendered)
	pr.NotMovable = NotMovable(pr.Argv, true)
	if pr.NotMovable != "" && pr.Dom.dom.MemoryBacking.Source == "" {
		pr.NotMovable += " (the domain gives no <memoryBacking><source type='memfd'/>, so its RAM is libvirt's default, anonymous memory)"
	}
	if pr.NotMovable == "" {
		pr.NotMovable = hotplugNotMovable(p.Spec)
	}
	return nil
}

// checkNodes refuses a nodeset naming a host node that does not exist,
// naming the element.
func (dp *Domain) checkNodes(pr *VM) error {
	d := dp.dom
	check := func(nodes cpuset.CPUSet, elem string) error {
		for _, n := range nodes.List() {
			if _, ok := pr.Host.Node(n); !ok {
				return Bad("--domain-xml %s: %s names host node %d, which this host does not have (nodes %s)", dp.path, elem, n, cpuset.New(pr.Host.NodeIDs()...))
			}
		}
		return nil
	}
	if t := d.NUMATune; t != nil {
		if t.Memory != nil && t.Memory.Placement != domxml.PlacementAuto {
			if err := check(t.Memory.Nodes, fmt.Sprintf("<numatune><memory nodeset='%s'>", t.Memory.Nodes)); err != nil {
				return err
			}
		}
		for _, m := range t.MemNodes {
			if err := check(m.Nodes, fmt.Sprintf("<numatune><memnode cellid='%d' nodeset='%s'>", m.CellID, m.Nodes)); err != nil {
				return err
			}
		}
	}
	for i, m := range d.MemoryDevices {
		if err := check(m.NodeMask, fmt.Sprintf("<devices><memory> %d <source><nodemask>%s", i, m.NodeMask)); err != nil {
			return err
		}
	}
	return nil
}

// render is the placement half of the QEMU command line.
func (dp *Domain) render(p *plan.Plan, v qemuversion.Version) []string {
	d := dp.dom
	c := &qemucmd.Cmdline{}
	c.Append(dp.smp, dp.mem)
	fills := map[string]qemucmd.Backend{}
	for _, b := range p.Fill {
		fills[b.ID] = b
	}
	for i, b := range dp.backends {
		if f, ok := fills[b.ID]; ok {
			b = f
		}
		if dp.unbind[b.ID] {
			b.HostNodes, b.HasHostNodes, b.Policy = cpuset.New(), false, ""
		}
		if b.PreallocThreads != nil && !v.HasPreallocThreads() {
			b.PreallocThreads = nil
		}
		c.Append(b)
		if dp.implicit {
			c.Append(qemucmd.Machine{MemoryBackend: b.ID})
			continue
		}
		cell := d.Cells[i]
		id := cell.ID
		n := qemucmd.NumaNode{NodeID: &id, CPUs: cell.CPUs, HasCPUs: !cell.CPUs.IsEmpty(), Memdev: b.ID}
		if dp.hmat() {
			in := dp.initiator(id)
			n.Initiator = &in
		}
		c.Append(n)
	}
	if dp.hmat() {
		on := true
		c.Append(qemucmd.Machine{HMAT: &on})
		dp.renderHMAT(c)
	}
	for i, row := range p.Distances {
		for j, val := range row {
			if i != j {
				c.Append(qemucmd.NumaDist{Src: i, Dst: j, Val: val})
			}
		}
	}
	for i, m := range d.MemoryDevices {
		dp.device(c, p, i, m)
	}
	for _, id := range dp.iothreads {
		c.Args = append(c.Args, rawArg("object", "iothread,id="+id))
	}
	if d.MemoryBacking.NoSharePages {
		c.Args = append(c.Args, rawArg("machine", "mem-merge=off"))
	}
	if d.MemoryBacking.Locked {
		c.Args = append(c.Args, rawArg("overcommit", "mem-lock=on"))
	}
	var out []string
	for _, a := range c.Args {
		out = append(out, a.Strings()...)
	}
	return out
}

// device renders memory device i: its backend, bound to its <nodemask>
// or where its guest node's memory is, and the -device.
func (dp *Domain) device(c *qemucmd.Cmdline, p *plan.Plan, i int, m domxml.MemoryDevice) {
	node := 0
	if m.Node != nil {
		node = *m.Node
	}
	name := "dimm"
	driver := "pc-dimm"
	if m.Model == domxml.ModelVirtioMem {
		name, driver = "virtiomem", "virtio-mem-pci"
	}
	b := qemucmd.Backend{Type: "ram", ID: fmt.Sprintf("mem%s%d", name, i), Size: m.Size}
	shared := m.Access == domxml.AccessShared || (m.Access == "" && dp.dom.Access(node) == domxml.AccessShared)
	if m.PageSize > 0 {
		on := true
		b.Type, b.HugeTLB, b.HugeTLBSize = "memfd", &on, m.PageSize
	} else if shared {
		b.Type = "memfd"
	}
	if b.Type != "ram" {
		b.Share = &shared
	}
	cellB := dp.backends[node]
	switch {
	case !m.NodeMask.IsEmpty():
		b.HostNodes, b.HasHostNodes, b.Policy = m.NodeMask, true, string(memobj.PolicyBind)
	case dp.unbind[cellB.ID]:
	default:
		policy := cellB.Policy
		for _, f := range p.Fill {
			if f.ID == cellB.ID {
				policy = f.Policy
			}
		}
		b.HostNodes, b.HasHostNodes, b.Policy = cpuset.New(p.GuestNodes[node].HostNodes...), true, policy
	}
	c.Append(b)
	n := node
	dev := qemucmd.MemoryDevice{Driver: driver, ID: fmt.Sprintf("%s%d", name, i), Memdev: b.ID, Node: &n}
	if m.Model == domxml.ModelVirtioMem {
		dev = plan.VirtioMem(dev.ID, b.ID, n, m.Block, m.Requested)
	}
	c.Append(dev)
}

// hmat says the domain describes its memory to the guest with HMAT.
func (dp *Domain) hmat() bool {
	if len(dp.dom.Interconnects) > 0 {
		return true
	}
	for _, c := range dp.dom.Cells {
		if len(c.Caches) > 0 {
			return true
		}
	}
	return false
}

// initiator is libvirt's HMAT initiator of cell id: the cell itself when it
// has vCPUs, else the initiator of the first <latency> or <bandwidth> to
// it; -1 when there is none.
func (dp *Domain) initiator(id int) int {
	if !dp.dom.Cells[id].CPUs.IsEmpty() {
		return id
	}
	for _, l := range dp.dom.Interconnects {
		if l.Target == id {
			return l.Initiator
		}
	}
	return -1
}

// renderHMAT is -numa hmat-lb for every <latency> and <bandwidth> and
// then (QEMU wants them first) -numa hmat-cache for every <cache>, in
// libvirt's words for QEMU.
func (dp *Domain) renderHMAT(c *qemucmd.Cmdline) {
	levels := []string{"memory", "first-level", "second-level", "third-level"}
	for _, l := range dp.dom.Interconnects {
		h := qemucmd.NumaHMATLB{Initiator: l.Initiator, Target: l.Target, Hierarchy: levels[l.Cache], DataType: l.Type + "-" + l.Kind}
		if l.Kind == "latency" {
			v := l.Value
			h.Latency = &v
		} else {
			h.Bandwidth = l.Value
		}
		c.Append(h)
	}
	for _, cell := range dp.dom.Cells {
		for _, k := range cell.Caches {
			c.Append(qemucmd.NumaHMATCache{NodeID: cell.ID, Level: k.Level, Size: k.Size, Line: int(k.Line),
				Associativity: map[string]string{"none": "none", "direct": "direct", "full": "complex"}[k.Associativity],
				Policy:        map[string]string{"none": "none", "writeback": "write-back", "writethrough": "write-through"}[k.Policy]})
		}
	}
}

func rawArg(name, value string) qemucmd.Arg {
	return qemucmd.Arg{Flag: "-" + name, Name: name, Value: value, HasValue: true}
}

// missingIOThreads is the domain's I/O thread ids that the user's command
// line does not already create (-object iothread,id=).
func missingIOThreads(d *domxml.Domain, user *plan.QEMUArgv) []string {
	have := map[string]bool{}
	if user != nil {
		for _, a := range user.Cmdline.Find("object") {
			p, err := qemucmd.ParseProps(a.Value, "qom-type", true)
			if err != nil {
				continue // not an object qnuma reads; qemu judges it
			}
			if t, _ := p.Get("qom-type"); strings.Trim(t, `"`) == "iothread" {
				id, _ := p.Get("id")
				have[strings.Trim(id, `"`)] = true
			}
		}
	}
	var out []string
	for _, id := range d.IOThreads {
		if !have[ioThreadID(id)] {
			out = append(out, ioThreadID(id))
		}
	}
	return out
}

// ioThreadID is libvirt's QEMU id of I/O thread id.
func ioThreadID(id int) string { return fmt.Sprintf("iothread%d", id) }

func givenText(d *domxml.Domain, id int, b domxml.Binding) string {
	q := modePolicy(b.Mode)
	what := fmt.Sprintf("QEMU policy=%s", q)
	if b.Mode == domxml.ModeRestrictive {
		what = "no policy on the backend"
	}
	if b.From == "memnode" {
		return fmt.Sprintf("<numatune><memnode cellid='%d' mode='%s' nodeset='%s'> (%s)", id, b.Mode, b.Nodes, what)
	}
	return fmt.Sprintf("<numatune><memory mode='%s' nodeset='%s'> (no <memnode> for it; %s)", b.Mode, b.Nodes, what)
}

func pinFrom(d *domxml.Domain, v int) string {
	for _, p := range d.CPUTune.VCPUPins {
		if p.VCPU == v {
			return fmt.Sprintf("<cputune><vcpupin vcpu='%d'>", v)
		}
	}
	return fmt.Sprintf("<vcpu cpuset='%s'>", d.VCPU.CPUSet)
}

func nodesText(n cpuset.CPUSet) string {
	if n.Size() == 1 {
		return fmt.Sprintf("host node %s", n)
	}
	return fmt.Sprintf("host nodes %s", n)
}

func withSentence(s, more string) string {
	if s == "" {
		return more
	}
	return s + " " + more
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
