package domxml

import (
	"fmt"

	"k8s.io/utils/cpuset"
)

var modes = []string{string(ModeStrict), string(ModePreferred), string(ModeInterleave), string(ModeRestrictive)}

// numatune reads <numatune> with libvirt's defaults (virDomainNumatuneSet):
// mode strict; placement static when a nodeset is given, else that of
// <vcpu>; placement static needs a nodeset; <vcpu placement='auto'> without
// a <numatune><memory> implies one with mode strict, placement auto.
func (p *parser) numatune(d *Domain, t *xNUMATune, vcpuAttr Placement) {
	var mem *xNUMAMemory
	if t != nil {
		p.unknown("<numatune>", t.xUnknown)
		mem = once(p, "<numatune><memory>", t.Memory)
	}
	if mem != nil || vcpuAttr == PlacementAuto {
		m := &MemoryTune{Mode: ModeStrict, Placement: vcpuAttr}
		if vcpuAttr == "" {
			m.Placement = PlacementStatic
		}
		if mem != nil {
			const w = "<numatune><memory>"
			p.unknown(w, mem.xUnknown)
			if mode := p.enum(w, "mode", mem.Mode, modes...); mode != "" {
				m.Mode = Mode(mode)
			}
			m.Nodes = p.set(w, "nodeset", mem.NodeSet)
			if pl := p.enum(w, "placement", mem.Placement, "static", "auto"); pl != "" {
				m.Placement = Placement(pl)
			} else if mem.NodeSet != nil {
				m.Placement = PlacementStatic
			}
			if m.Placement == PlacementStatic && mem.NodeSet == nil {
				p.invalid(w, "placement static needs a nodeset (or give placement='auto')")
			}
		}
		if m.Placement == PlacementAuto {
			m.Nodes = cpuset.New() // libvirt ignores a nodeset under auto
			if vcpuAttr == "" && d.VCPU.CPUSet.IsEmpty() {
				d.VCPU.Placement = PlacementAuto
			}
		}
		d.NUMATune = &NUMATune{Memory: m}
	}
	if d.VCPU.Placement == PlacementAuto {
		d.VCPU.CPUSet = cpuset.New() // libvirt ignores cpuset under auto
	}
	if t == nil {
		return
	}
	if d.NUMATune == nil {
		d.NUMATune = &NUMATune{}
	}
	for _, n := range t.MemNode {
		w := "<numatune><memnode>"
		p.unknown(w, n.xUnknown)
		if !p.required(w, "cellid", n.CellID) || !p.required(w, "nodeset", n.NodeSet) {
			return
		}
		mn := MemNode{
			CellID: p.num(w, "cellid", n.CellID, 0, maxCount),
			Mode:   ModeStrict,
			Nodes:  p.set(w, "nodeset", n.NodeSet),
		}
		if mode := p.enum(at(w, "cellid", n.CellID), "mode", n.Mode, modes...); mode != "" {
			mn.Mode = Mode(mode)
		}
		d.NUMATune.MemNodes = append(d.NUMATune.MemNodes, mn)
	}
}

func (p *parser) cpu(d *Domain, c *xCPU) {
	if t := once(p, "<cpu><topology>", c.Topology); t != nil {
		w := "<cpu><topology>"
		p.unknown(w, t.xUnknown)
		for _, a := range []struct {
			name string
			v    *string
		}{{"sockets", t.Sockets}, {"cores", t.Cores}, {"threads", t.Threads}} {
			p.required(w, a.name, a.v)
		}
		d.Topology = &Topology{
			Sockets:  p.positive(w, "sockets", t.Sockets, 1, maxCount),
			Dies:     p.positive(w, "dies", t.Dies, 1, maxCount),
			Clusters: p.positive(w, "clusters", t.Clusters, 1, maxCount),
			Cores:    p.positive(w, "cores", t.Cores, 1, maxCount),
			Threads:  p.positive(w, "threads", t.Threads, 1, maxCount),
		}
	}
	n := once(p, "<cpu><numa>", c.NUMA)
	if n == nil {
		return
	}
	p.unknown("<cpu><numa>", n.xUnknown)
	if len(n.Cell) == 0 {
		p.invalid("<cpu><numa>", "NUMA topology without cells")
		return
	}
	if len(n.Cell) > maxCount {
		p.invalid("<cpu><numa>", "more than %d cells", maxCount)
		return
	}
	d.Cells = make([]Cell, len(n.Cell))
	seen := make([]bool, len(n.Cell))
	for i := range n.Cell {
		id := p.cell(d, &n.Cell[i], i, len(n.Cell))
		if p.err != nil {
			return
		}
		if seen[id] {
			p.invalid(fmt.Sprintf("<cpu><numa><cell id='%d'>", id), "cell id given twice")
			return
		}
		seen[id] = true
	}
	if ic := once(p, "<cpu><numa><interconnects>", n.Interconnects); ic != nil {
		p.unknown("<cpu><numa><interconnects>", ic.xUnknown)
		for _, l := range ic.Latency {
			p.link(d, "latency", &l)
		}
		for _, l := range ic.Bandwidth {
			p.link(d, "bandwidth", &l)
		}
	}
}

// cell reads the i-th of n cells into d.Cells at its id and returns the id.
func (p *parser) cell(d *Domain, x *xCell, i, n int) int {
	w := "<cpu><numa><cell>"
	p.unknown(w, x.xUnknown)
	id := p.num(w, "id", x.ID, i, maxCount)
	if p.err != nil {
		return 0
	}
	if id >= n {
		p.invalid(at(w, "id", x.ID), "cell ids must run 0..%d (one cell each), as libvirt requires", n-1)
		return 0
	}
	w = fmt.Sprintf("<cpu><numa><cell id='%d'>", id)
	c := Cell{ID: id}
	if x.CPUs != nil {
		c.CPUs = p.set(w, "cpus", x.CPUs)
	} else {
		c.CPUs = cpuset.New()
	}
	if p.required(w, "memory", x.Memory) {
		unit := ""
		if x.Unit != nil {
			unit = *x.Unit
		}
		c.Memory = p.size(w, *x.Memory, unit, 1024, true)
	}
	c.MemAccess = Access(p.enum(w, "memAccess", x.MemAccess, "shared", "private"))
	c.Discard = p.yesNo(w, "discard", x.Discard)
	if ds := once(p, w+"<distances>", x.Distances); ds != nil {
		p.unknown(w+"<distances>", ds.xUnknown)
		if len(ds.Sibling) == 0 {
			p.invalid(w+"<distances>", "distances without siblings")
		}
		for _, s := range ds.Sibling {
			sw := w + "<distances><sibling>"
			p.unknown(sw, s.xUnknown)
			if !p.required(sw, "id", s.ID) || !p.required(sw, "value", s.Value) {
				return id
			}
			c.Distances = append(c.Distances, Sibling{
				ID:    p.num(sw, "id", s.ID, 0, maxCount),
				Value: p.num(sw, "value", s.Value, 0, 256),
			})
		}
	}
	for _, k := range x.Cache {
		cw := w + "<cache>"
		p.unknown(cw, k.xUnknown)
		if !p.required(cw, "level", k.Level) || !p.required(cw, "associativity", k.Associativity) ||
			!p.required(cw, "policy", k.Policy) {
			return id
		}
		cache := Cache{
			Level:         p.positive(cw, "level", k.Level, 0, 4),
			Associativity: p.enum(cw, "associativity", k.Associativity, "none", "direct", "full"),
			Policy:        p.enum(cw, "policy", k.Policy, "none", "writeback", "writethrough"),
		}
		cw = fmt.Sprintf("%s<cache level='%d'>", w, cache.Level)
		cache.Size = p.valueUnit(cw+"<size>", once(p, cw+"<size>", k.Size), 1024, true)
		cache.Line = p.valueUnit(cw+"<line>", once(p, cw+"<line>", k.Line), 1, false)
		c.Caches = append(c.Caches, cache)
	}
	d.Cells[id] = c
	return id
}

// valueUnit reads <size value unit/>: the unit's default is def; memory
// sizes round up to a KiB as libvirt's do.
func (p *parser) valueUnit(w string, v *xValueUnit, def uint64, roundKiB bool) uint64 {
	if v == nil {
		p.invalid(w, "element is required")
		return 0
	}
	p.unknown(w, v.xUnknown)
	if !p.required(w, "value", v.Value) {
		return 0
	}
	unit := ""
	if v.Unit != nil {
		unit = *v.Unit
	}
	return p.size(w, *v.Value, unit, def, roundKiB)
}

func (p *parser) link(d *Domain, kind string, l *xLink) {
	w := "<cpu><numa><interconnects><" + kind + ">"
	p.unknown(w, l.xUnknown)
	for _, a := range []struct {
		name string
		v    *string
	}{{"initiator", l.Initiator}, {"target", l.Target}, {"type", l.Type}, {"value", l.Value}} {
		if !p.required(w, a.name, a.v) {
			return
		}
	}
	ic := Interconnect{
		Kind:      kind,
		Initiator: p.num(w, "initiator", l.Initiator, 0, maxCount),
		Target:    p.num(w, "target", l.Target, 0, maxCount),
		Cache:     p.num(w, "cache", l.Cache, 0, maxCount),
		Type:      p.enum(w, "type", l.Type, "access", "read", "write"),
	}
	if kind == "latency" {
		if l.Unit != nil {
			p.invalid(at(w, "unit", l.Unit), "a latency is in nanoseconds and takes no unit")
		}
		n, err := parseUint(*l.Value)
		if err != nil {
			p.invalid(at(w, "value", l.Value), "%v", err)
		}
		ic.Value = n
	} else {
		ic.Value = p.valueUnit(w, &xValueUnit{Value: l.Value, Unit: l.Unit}, 1024, true)
	}
	d.Interconnects = append(d.Interconnects, ic)
}
