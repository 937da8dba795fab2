package domxml

import (
	"fmt"
	"strings"

	"k8s.io/utils/cpuset"
)

// Binding is where a guest cell's memory goes, resolved as libvirt does:
// the cell's <memnode>, else <numatune><memory>.
type Binding struct {
	// Mode is "" when the XML binds the cell nowhere: qnuma chooses.
	Mode Mode
	// Nodes is the host nodes given; empty when Mode is "" or Auto.
	Nodes cpuset.CPUSet
	// Auto is placement='auto': qnuma's planner chooses the host nodes (with
	// policy Mode), where libvirt would ask numad.
	Auto bool
	// From is "memnode", "memory" (<numatune><memory>) or "" (not given).
	From string
}

// Binding resolves the host binding of guest cell id (or of the whole guest
// when it has no cells and id is 0).
func (d *Domain) Binding(id int) Binding {
	t := d.NUMATune
	if t == nil {
		return Binding{Nodes: cpuset.New()}
	}
	for _, n := range t.MemNodes {
		if n.CellID == id {
			return Binding{Mode: n.Mode, Nodes: n.Nodes, From: "memnode"}
		}
	}
	if t.Memory == nil {
		return Binding{Nodes: cpuset.New()}
	}
	return Binding{Mode: t.Memory.Mode, Nodes: t.Memory.Nodes, Auto: t.Memory.Placement == PlacementAuto, From: "memory"}
}

// PageSize is the hugepage size backing guest cell id, as libvirt picks it:
// the page whose nodeset names the cell, else the page without a nodeset.
// ok is false when the cell is on ordinary pages; a size of 0 with ok means
// the host's default hugepage size (<hugepages/> without <page>).
func (d *Domain) PageSize(id int) (size uint64, ok bool) {
	mb := d.MemoryBacking
	if !mb.Hugepages {
		return 0, false
	}
	if len(mb.Pages) == 0 {
		return 0, true
	}
	for _, p := range mb.Pages {
		if p.Cells.Contains(id) {
			return p.Size, true
		}
	}
	for _, p := range mb.Pages {
		if p.Cells.IsEmpty() {
			return p.Size, true
		}
	}
	return 0, false
}

// Access is how guest cell id's RAM is mapped: its memAccess, else
// <memoryBacking><access>, else private (libvirt's default).
func (d *Domain) Access(id int) Access {
	if id < len(d.Cells) && d.Cells[id].MemAccess != "" {
		return d.Cells[id].MemAccess
	}
	if d.MemoryBacking.Access != "" {
		return d.MemoryBacking.Access
	}
	return AccessPrivate
}

// Distance is the SLIT distance from guest cell from to cell to, as libvirt
// fills it in: the <sibling> given under from, else the one given under to
// (distances are mirrored), else 10 to itself and 20 to any other cell.
func (d *Domain) Distance(from, to int) int {
	for _, pair := range [][2]int{{from, to}, {to, from}} {
		if pair[0] < 0 || pair[0] >= len(d.Cells) {
			continue
		}
		for _, s := range d.Cells[pair[0]].Distances {
			if s.ID == pair[1] {
				return s.Value
			}
		}
	}
	if from == to {
		return 10
	}
	return 20
}

// VCPUHostCPUs is the host CPUs vCPU id may run on: its <vcpupin>, else
// <vcpu cpuset>; empty when neither is given (libvirt: all host CPUs).
func (d *Domain) VCPUHostCPUs(id int) cpuset.CPUSet {
	for _, p := range d.CPUTune.VCPUPins {
		if p.VCPU == id {
			return p.CPUs
		}
	}
	return d.VCPU.CPUSet
}

// EmulatorHostCPUs is the host CPUs of the emulator threads: <emulatorpin>,
// else <vcpu cpuset>; empty when neither is given.
func (d *Domain) EmulatorHostCPUs() cpuset.CPUSet {
	if !d.CPUTune.EmulatorPin.IsEmpty() {
		return d.CPUTune.EmulatorPin
	}
	return d.VCPU.CPUSet
}

// IOThreadHostCPUs is the host CPUs of I/O thread id: its <iothreadpin>,
// else <vcpu cpuset>; empty when neither is given.
func (d *Domain) IOThreadHostCPUs(id int) cpuset.CPUSet {
	for _, p := range d.CPUTune.IOThreadPins {
		if p.IOThread == id {
			return p.CPUs
		}
	}
	return d.VCPU.CPUSet
}

// Summary describes the placement the domain asks for, a line per item, for
// people and tests.
func (d *Domain) Summary() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("domain %q", d.Name)
	v := d.VCPU
	s := fmt.Sprintf("vcpus %d of %d, placement %s", v.Current, v.Max, v.Placement)
	if !v.CPUSet.IsEmpty() {
		s += ", default host cpus " + v.CPUSet.String()
	}
	line("%s", s)
	for _, st := range d.VCPUs {
		line("vcpu %d: enabled %t, hotpluggable %t, order %d", st.ID, st.Enabled, st.Hotpluggable, st.Order)
	}
	if t := d.Topology; t != nil {
		line("topology: %d sockets, %d dies, %d clusters, %d cores, %d threads", t.Sockets, t.Dies, t.Clusters, t.Cores, t.Threads)
	}
	if d.Memory > 0 {
		line("memory %s", bytesText(d.Memory))
	}
	if d.CurrentMemory > 0 {
		line("current memory %s", bytesText(d.CurrentMemory))
	}
	if m := d.MaxMemory; m != nil {
		line("hotplug room: up to %s in %d slots", bytesText(m.Size), m.Slots)
	}
	for _, p := range d.CPUTune.VCPUPins {
		line("vcpu %d pinned to host cpus %s", p.VCPU, p.CPUs)
	}
	if !d.CPUTune.EmulatorPin.IsEmpty() {
		line("emulator pinned to host cpus %s", d.CPUTune.EmulatorPin)
	}
	if len(d.IOThreads) > 0 {
		line("iothreads %v", d.IOThreads)
	}
	for _, p := range d.CPUTune.IOThreadPins {
		line("iothread %d pinned to host cpus %s", p.IOThread, p.CPUs)
	}
	if t := d.NUMATune; t != nil && t.Memory != nil {
		line("numatune memory: %s", bindingText(d.Binding(-1)))
	}
	mb := d.MemoryBacking
	var backing []string
	if mb.Source != "" {
		backing = append(backing, "source "+string(mb.Source))
	}
	if mb.Access != "" {
		backing = append(backing, "access "+string(mb.Access))
	}
	if mb.Allocation != "" {
		backing = append(backing, fmt.Sprintf("allocation %s (threads %d)", mb.Allocation, mb.AllocThreads))
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{mb.Hugepages, "hugepages"}, {mb.Discard, "discard"}, {mb.NoSharePages, "nosharepages"}, {mb.Locked, "locked"}} {
		if f.on {
			backing = append(backing, f.name)
		}
	}
	if len(backing) > 0 {
		line("memory backing: %s", strings.Join(backing, ", "))
	}
	if len(d.Cells) == 0 {
		line("no guest NUMA cells")
	}
	for _, c := range d.Cells {
		cpus := "no vcpus"
		if !c.CPUs.IsEmpty() {
			cpus = "vcpus " + c.CPUs.String()
		}
		s := fmt.Sprintf("cell %d: %s, %s, %s, %s", c.ID, cpus, bytesText(c.Memory), bindingText(d.Binding(c.ID)), d.Access(c.ID))
		if size, ok := d.PageSize(c.ID); ok {
			if size == 0 {
				s += ", default hugepages"
			} else {
				s += ", hugepages of " + bytesText(size)
			}
		}
		if c.Discard != nil {
			s += fmt.Sprintf(", discard %t", *c.Discard)
		}
		line("%s", s)
		if len(c.Distances) > 0 {
			var ds []string
			for _, x := range c.Distances {
				ds = append(ds, fmt.Sprintf("%d:%d", x.ID, x.Value))
			}
			line("cell %d distances %s", c.ID, strings.Join(ds, " "))
		}
		for _, k := range c.Caches {
			line("cell %d cache level %d: %s, line %d bytes, %s, %s", c.ID, k.Level, bytesText(k.Size), k.Line, k.Associativity, k.Policy)
		}
	}
	for _, l := range d.Interconnects {
		to := fmt.Sprintf("cell %d", l.Target)
		if l.Cache > 0 {
			to += fmt.Sprintf(" cache level %d", l.Cache)
		}
		unit := "ns"
		if l.Kind == "bandwidth" {
			unit = "bytes/s"
		}
		line("%s %s from cell %d to %s: %d %s", l.Type, l.Kind, l.Initiator, to, l.Value, unit)
	}
	for i, m := range d.MemoryDevices {
		s := fmt.Sprintf("memory device %d: %s %s", i, m.Model, bytesText(m.Size))
		if m.Node != nil {
			s += fmt.Sprintf(" on cell %d", *m.Node)
		}
		if m.Requested > 0 || m.Block > 0 {
			s += fmt.Sprintf(", requested %s, block %s", bytesText(m.Requested), bytesText(m.Block))
		}
		if !m.NodeMask.IsEmpty() {
			s += ", host nodes " + m.NodeMask.String()
		}
		if m.PageSize > 0 {
			s += ", pages of " + bytesText(m.PageSize)
		}
		line("%s", s)
	}
	return b.String()
}

func bindingText(b Binding) string {
	switch {
	case b.Mode == "":
		return "host nodes open"
	case b.Auto:
		return fmt.Sprintf("%s on nodes qnuma chooses (placement auto)", b.Mode)
	default:
		return fmt.Sprintf("%s on host nodes %s (%s)", b.Mode, b.Nodes, b.From)
	}
}

func bytesText(n uint64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
