package domxml

import (
	"fmt"
	"math/bits"

	"k8s.io/utils/cpuset"
)

// validate checks what spans elements, without a host: references between
// vCPUs, cells, I/O threads and devices, and sizes against each other. The
// rules are libvirt's (numa_conf.c, domain_conf.c, qemu_validate.c) unless a
// comment says qnuma is stricter.
func validate(d *Domain) error {
	checks := []func(*Domain) error{
		checkVCPUs, checkPins, checkCells, checkInterconnects, checkTopology,
		checkNUMATune, checkMemory, checkHugepages, checkMemoryDevices,
	}
	for _, check := range checks {
		if err := check(d); err != nil {
			return err
		}
	}
	return nil
}

func invalid(where, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, where, fmt.Sprintf(format, args...))
}

func checkVCPUs(d *Domain) error {
	seen := map[int]bool{}
	enabled, ordered := 0, 0
	for _, v := range d.VCPUs {
		w := fmt.Sprintf("<vcpus><vcpu id='%d'>", v.ID)
		if v.ID >= d.VCPU.Max {
			return invalid(w, "vCPU ids run 0..%d (<vcpu>%d</vcpu>)", d.VCPU.Max-1, d.VCPU.Max)
		}
		if seen[v.ID] {
			return invalid(w, "vCPU given twice")
		}
		seen[v.ID] = true
		if !v.Enabled && !v.Hotpluggable {
			return invalid(w, "a disabled vCPU must be hotpluggable")
		}
		if v.ID == 0 && (!v.Enabled || v.Hotpluggable) {
			return invalid(w, "QEMU needs vCPU 0 enabled and not hotpluggable")
		}
		if v.Enabled {
			enabled++
			if v.Order > 0 {
				ordered++
			}
		}
	}
	if ordered > 0 && ordered != enabled {
		return invalid("<vcpus>", "order is given for %d of the %d enabled vCPUs; libvirt needs it on all or none", ordered, enabled)
	}
	if len(d.VCPUs) == d.VCPU.Max && enabled != d.VCPU.Current {
		return invalid("<vcpus>", "%d vCPUs are enabled but <vcpu current> is %d", enabled, d.VCPU.Current)
	}
	return nil
}

func checkPins(d *Domain) error {
	seen := map[int]bool{}
	for _, p := range d.CPUTune.VCPUPins {
		w := fmt.Sprintf("<cputune><vcpupin vcpu='%d'>", p.VCPU)
		if p.VCPU >= d.VCPU.Max {
			return invalid(w, "the domain has vCPUs 0..%d (<vcpu>%d</vcpu>)", d.VCPU.Max-1, d.VCPU.Max)
		}
		if seen[p.VCPU] {
			return invalid(w, "vCPU pinned twice")
		}
		seen[p.VCPU] = true
	}
	ids := map[int]bool{}
	for _, id := range d.IOThreads {
		ids[id] = true
	}
	pinned := map[int]bool{}
	for _, p := range d.CPUTune.IOThreadPins {
		w := fmt.Sprintf("<cputune><iothreadpin iothread='%d'>", p.IOThread)
		if !ids[p.IOThread] {
			return invalid(w, "no I/O thread has this id (ids: %v, from <iothreads> and <iothreadids>)", d.IOThreads)
		}
		if pinned[p.IOThread] {
			return invalid(w, "I/O thread pinned twice")
		}
		pinned[p.IOThread] = true
	}
	return nil
}

// checkCells: vCPU ids inside <vcpu>, no vCPU in two cells, and (qnuma is
// stricter than libvirt, which puts left-over vCPUs in cell 0) every vCPU in
// a cell, so that each vCPU's guest node is what the XML says.
func checkCells(d *Domain) error {
	if len(d.Cells) == 0 {
		return nil
	}
	cellOf := make([]int, d.VCPU.Max) // vCPU -> 1 + its cell, 0 for none
	for _, c := range d.Cells {
		w := fmt.Sprintf("<cpu><numa><cell id='%d' cpus='%s'>", c.ID, c.CPUs)
		for _, v := range c.CPUs.List() {
			if v >= d.VCPU.Max {
				return invalid(w, "vCPU ids run 0..%d (<vcpu>%d</vcpu>)", d.VCPU.Max-1, d.VCPU.Max)
			}
			if cellOf[v] != 0 {
				return invalid(w, "vCPU %d is in cell %d too", v, cellOf[v]-1)
			}
			cellOf[v] = c.ID + 1
		}
		seen := map[int]bool{}
		for _, s := range c.Distances {
			sw := fmt.Sprintf("<cpu><numa><cell id='%d'><distances><sibling id='%d' value='%d'>", c.ID, s.ID, s.Value)
			switch {
			case s.ID >= len(d.Cells):
				return invalid(sw, "no cell has id %d", s.ID)
			case seen[s.ID]:
				return invalid(sw, "sibling given twice")
			case s.Value < 10 || s.Value > 255:
				return invalid(sw, "a distance is 10..255")
			case s.ID == c.ID && s.Value != 10:
				return invalid(sw, "the distance of a cell to itself is 10")
			case s.ID != c.ID && s.Value == 10:
				return invalid(sw, "10 is the distance of a cell to itself only")
			}
			seen[s.ID] = true
		}
		levels := map[int]bool{}
		for _, k := range c.Caches {
			if levels[k.Level] {
				return invalid(fmt.Sprintf("<cpu><numa><cell id='%d'><cache level='%d'>", c.ID, k.Level), "cache level given twice")
			}
			levels[k.Level] = true
		}
	}
	var left []int
	for v, c := range cellOf {
		if c == 0 {
			left = append(left, v)
		}
	}
	if missing := cpuset.New(left...); !missing.IsEmpty() {
		return invalid("<cpu><numa>", "vCPUs %s are in no cell; list every vCPU of <vcpu>%d</vcpu> in a cell's cpus (libvirt would add them to cell 0)", missing, d.VCPU.Max)
	}
	return nil
}

func checkInterconnects(d *Domain) error {
	type key struct {
		kind, typ                string
		initiator, target, cache int
	}
	seen := map[key]bool{}
	for _, l := range d.Interconnects {
		w := fmt.Sprintf("<cpu><numa><interconnects><%s initiator='%d' target='%d' type='%s'>", l.Kind, l.Initiator, l.Target, l.Type)
		if l.Initiator >= len(d.Cells) {
			return invalid(w, "initiator names no cell")
		}
		if l.Target >= len(d.Cells) {
			return invalid(w, "target names no cell")
		}
		if d.Cells[l.Initiator].CPUs.IsEmpty() {
			return invalid(w, "a cell without vCPUs cannot be an initiator")
		}
		if l.Cache > 0 && !hasCache(d.Cells[l.Target], l.Cache) {
			return invalid(w, "cell %d has no cache of level %d", l.Target, l.Cache)
		}
		k := key{l.Kind, l.Type, l.Initiator, l.Target, l.Cache}
		if seen[k] {
			return invalid(w, "given twice")
		}
		seen[k] = true
	}
	return nil
}

func hasCache(c Cell, level int) bool {
	for _, k := range c.Caches {
		if k.Level == level {
			return true
		}
	}
	return false
}

func checkTopology(d *Domain) error {
	t := d.Topology
	if t == nil {
		return nil
	}
	n := uint64(1)
	for _, f := range []int{t.Sockets, t.Dies, t.Clusters, t.Cores, t.Threads} {
		hi, lo := bits.Mul64(n, uint64(f))
		if hi != 0 || lo > uint64(d.VCPU.Max) {
			n = uint64(d.VCPU.Max) + 1
			break
		}
		n = lo
	}
	if n != uint64(d.VCPU.Max) {
		return invalid(fmt.Sprintf("<cpu><topology sockets='%d' dies='%d' clusters='%d' cores='%d' threads='%d'>",
			t.Sockets, t.Dies, t.Clusters, t.Cores, t.Threads),
			"the topology does not make the %d vCPUs of <vcpu>", d.VCPU.Max)
	}
	return nil
}

func checkNUMATune(d *Domain) error {
	t := d.NUMATune
	if t == nil || len(t.MemNodes) == 0 {
		return nil
	}
	if t.Memory != nil && t.Memory.Placement == PlacementAuto {
		return invalid("<numatune><memnode>", "per-cell binding is not compatible with placement='auto'")
	}
	if len(d.Cells) == 0 {
		return invalid("<numatune><memnode>", "memnode needs guest NUMA cells (<cpu><numa>)")
	}
	restrictive := t.Memory != nil && t.Memory.Mode == ModeRestrictive
	seen := map[int]bool{}
	for _, n := range t.MemNodes {
		w := fmt.Sprintf("<numatune><memnode cellid='%d' mode='%s'>", n.CellID, n.Mode)
		if n.CellID >= len(d.Cells) {
			return invalid(w, "no cell has id %d (cells 0..%d)", n.CellID, len(d.Cells)-1)
		}
		if seen[n.CellID] {
			return invalid(w, "memnode given twice for this cell")
		}
		seen[n.CellID] = true
		if restrictive && n.Mode != ModeRestrictive {
			return invalid(w, "libvirt needs mode 'restrictive' on every memnode when <numatune><memory> is restrictive")
		}
		if !restrictive && n.Mode == ModeRestrictive {
			return invalid(w, "libvirt needs <numatune><memory mode='restrictive'> for a restrictive memnode")
		}
	}
	return nil
}

// cellMemory is the sum of the cells' sizes: the guest's boot RAM when it
// has cells.
func cellMemory(d *Domain) (uint64, error) {
	var sum uint64
	for _, c := range d.Cells {
		var carry uint64
		if sum, carry = bits.Add64(sum, c.Memory, 0); carry != 0 {
			return 0, invalid("<cpu><numa>", "the cells' sizes add up to more than 64 bits of bytes")
		}
	}
	return sum, nil
}

func checkMemory(d *Domain) error {
	if len(d.Cells) == 0 && d.Memory == 0 {
		return invalid("<domain>", "give the memory size in <memory> or in <cpu><numa> cells")
	}
	m := d.MaxMemory
	if m == nil {
		return nil
	}
	if m.Size == 0 {
		return invalid("<maxMemory>", "the size must be more than 0")
	}
	boot, err := cellMemory(d)
	if err != nil {
		return err
	}
	boot = max(boot, d.Memory)
	if m.Size < boot {
		return invalid("<maxMemory>", "%d bytes is less than the %d bytes of the guest's memory", m.Size, boot)
	}
	return nil
}

func checkHugepages(d *Domain) error {
	named := map[int]bool{}
	defaults := 0
	for _, p := range d.MemoryBacking.Pages {
		w := fmt.Sprintf("<memoryBacking><hugepages><page size='%d' nodeset='%s'>", p.Size/1024, p.Cells)
		if p.Cells.IsEmpty() {
			if defaults++; defaults > 1 {
				return invalid(w, "only one page may go without a nodeset")
			}
			continue
		}
		for _, id := range p.Cells.List() {
			// Without cells the whole guest is node 0.
			if id >= max(len(d.Cells), 1) {
				return invalid(w, "no guest cell has id %d", id)
			}
		}
		for _, id := range p.Cells.List() {
			if named[id] {
				return invalid(w, "cell %d is named by another page too", id)
			}
			named[id] = true
		}
	}
	return nil
}

func checkMemoryDevices(d *Domain) error {
	if len(d.MemoryDevices) == 0 {
		return nil
	}
	if d.MaxMemory == nil {
		return invalid("<devices><memory>", "memory devices need <maxMemory slots> (QEMU -m slots=,maxmem=)")
	}
	dimms := 0
	var plugged uint64
	for i, m := range d.MemoryDevices {
		w := fmt.Sprintf("<devices><memory model='%s'> (memory device %d)", m.Model, i)
		if m.Size == 0 {
			return invalid(w, "<target><size> must be more than 0")
		}
		if m.Node != nil && *m.Node >= len(d.Cells) {
			if len(d.Cells) == 0 {
				return invalid(w, "<target><node> needs guest NUMA cells")
			}
			return invalid(w, "<target><node>%d</node> names no cell (cells 0..%d)", *m.Node, len(d.Cells)-1)
		}
		var carry uint64
		if plugged, carry = bits.Add64(plugged, m.Size, 0); carry != 0 {
			return invalid(w, "the memory devices add up to more than 64 bits of bytes")
		}
		switch m.Model {
		case ModelDIMM:
			dimms++
		case ModelVirtioMem:
			if m.Block != 0 {
				switch {
				case m.Block&(m.Block-1) != 0:
					return invalid(w, "<target><block> %d bytes is not a power of two", m.Block)
				case m.Size%m.Block != 0:
					return invalid(w, "<target><size> is not a multiple of <block>")
				case m.Requested%m.Block != 0:
					return invalid(w, "<target><requested> is not a multiple of <block>")
				}
			}
			if m.Requested > m.Size {
				return invalid(w, "<target><requested> is more than <size>")
			}
		}
	}
	if dimms > d.MaxMemory.Slots {
		return invalid("<devices><memory>", "%d dimms but <maxMemory slots='%d'>; each dimm takes a slot", dimms, d.MaxMemory.Slots)
	}
	if len(d.Cells) > 0 {
		boot, err := cellMemory(d)
		if err != nil {
			return err
		}
		if total, carry := bits.Add64(boot, plugged, 0); carry != 0 || total > d.MaxMemory.Size {
			return invalid("<devices><memory>", "the cells and memory devices need more than <maxMemory> (%d bytes)", d.MaxMemory.Size)
		}
	}
	return nil
}
