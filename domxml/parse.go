package domxml

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/qnuma/qnuma/cpulist"
	"k8s.io/utils/cpuset"
)

// MaxSize bounds the XML Read accepts; libvirt's own domains are a few KiB.
const MaxSize = 4 << 20

// maxCount bounds vCPU, I/O thread, slot and cell counts: like CPU ids they
// stay below cpulist.MaxID, so nothing sized by them can exhaust memory.
const maxCount = cpulist.MaxID

// Read parses a domain from r, reading at most MaxSize bytes.
func Read(r io.Reader) (*Domain, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read domain xml: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: domain xml is larger than %d bytes", ErrInvalid, MaxSize)
	}
	return Parse(b)
}

// Parse parses and checks the placement elements of a libvirt domain XML.
// Errors wrap ErrInvalid (libvirt would refuse it too) or ErrUnsupported
// (libvirt accepts it, qnuma does not) and name the element, the attribute
// and the value.
func Parse(data []byte) (*Domain, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: domain xml is larger than %d bytes", ErrInvalid, MaxSize)
	}
	var x xDomain
	dec := xml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p := parser{}
	d := p.domain(&x)
	if p.err != nil {
		return nil, p.err
	}
	if err := validate(d); err != nil {
		return nil, err
	}
	return d, nil
}

// maxSetIDs bounds the ids that all the cpusets of one domain may name
// together (16 sets of every possible id; 512 vCPUs each pinned to 2048
// CPUs fit), so that a document of many
// cpuset='0-65535' costs bounded time, not MaxSize/16 × 65536.
const maxSetIDs = 16 * cpulist.MaxID

// parser keeps the first error, so the conversion reads straight through.
type parser struct {
	err    error
	setIDs int // ids named by the cpusets read so far
}

func (p *parser) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

func (p *parser) invalid(where, format string, args ...any) {
	p.fail(fmt.Errorf("%w: %s: %s", ErrInvalid, where, fmt.Sprintf(format, args...)))
}

func (p *parser) unsupported(where, format string, args ...any) {
	p.fail(fmt.Errorf("%w: %s: %s", ErrUnsupported, where, fmt.Sprintf(format, args...)))
}

// once returns the single element of xs, nil if there is none; a second one
// is an error, as in libvirt.
func once[T any](p *parser, where string, xs []T) *T {
	if len(xs) > 1 {
		p.invalid(where, "given %d times; libvirt allows it once", len(xs))
	}
	if len(xs) == 0 {
		return nil
	}
	return &xs[0]
}

// unknown refuses attributes and children that qnuma does not know in a
// placement element.
func (p *parser) unknown(where string, u xUnknown) {
	for _, a := range u.Attrs {
		if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
			continue
		}
		p.unsupported(at(where, a.Name.Local, &a.Value), "attribute %s is not one qnuma honours here", a.Name.Local)
	}
	for _, e := range u.Elems {
		p.unsupported(where+"<"+e.XMLName.Local+">", "an element qnuma does not honour; remove it or place the VM with libvirt")
	}
}

// at writes an element with one attribute: at("<vcpu>", "current", "5") is
// "<vcpu current='5'>"; the element's text is written after it.
func at(where, attr string, v *string) string {
	switch {
	case v == nil:
		return where
	case attr == "content":
		return where + *v
	case strings.HasSuffix(where, ">"):
		return fmt.Sprintf("%s %s='%s'>", where[:len(where)-1], attr, *v)
	}
	return fmt.Sprintf("%s %s='%s'", where, attr, *v)
}

// num parses an optional non-negative integer attribute below limit;
// def when absent.
func (p *parser) num(where, attr string, v *string, def, limit int) int {
	if v == nil {
		return def
	}
	n, err := parseUint(*v)
	if err != nil {
		p.invalid(at(where, attr, v), "%v", err)
		return def
	}
	if n >= uint64(limit) {
		p.invalid(at(where, attr, v), "%s must be below %d", attr, limit)
		return def
	}
	return int(n)
}

func (p *parser) required(where, attr string, v *string) bool {
	if v == nil {
		p.invalid(where, "attribute %s is required", attr)
		return false
	}
	return true
}

func (p *parser) positive(where, attr string, v *string, def, limit int) int {
	n := p.num(where, attr, v, def, limit)
	if v != nil && n == 0 && p.err == nil {
		p.invalid(at(where, attr, v), "%s must be at least 1", attr)
	}
	return n
}

// enum checks an optional attribute against libvirt's list; "" when absent.
func (p *parser) enum(where, attr string, v *string, allowed ...string) string {
	if v == nil {
		return ""
	}
	if !slices.Contains(allowed, *v) {
		p.invalid(at(where, attr, v), "%s must be one of %s", attr, strings.Join(allowed, ", "))
		return ""
	}
	return *v
}

func (p *parser) yesNo(where, attr string, v *string) *bool {
	switch p.enum(where, attr, v, "yes", "no") {
	case "yes":
		t := true
		return &t
	case "no":
		f := false
		return &f
	}
	return nil
}

func (p *parser) set(where, attr string, v *string) cpuset.CPUSet {
	if v == nil {
		return cpuset.New()
	}
	if p.setIDs > maxSetIDs {
		return cpuset.New()
	}
	s, n, err := parseCPUSet(*v)
	if err != nil {
		p.invalid(at(where, attr, v), "%v", err)
		return cpuset.New()
	}
	if p.setIDs += n; p.setIDs > maxSetIDs {
		p.invalid(at(where, attr, v), "the cpusets of the domain name more than %d ids in all", maxSetIDs)
		return cpuset.New()
	}
	if s.IsEmpty() {
		p.invalid(at(where, attr, v), "%s names no id", attr)
	}
	return s
}

// memory reads a size element such as <memory unit='GiB'>4</memory>.
func (p *parser) memory(where string, s *xScaled) uint64 {
	if s == nil {
		return 0
	}
	return p.size(where, s.Value, s.unit(), 1024, true)
}

// size is value×unit in bytes, def the multiplier when unit is empty;
// memory sizes round up to a whole KiB, as libvirt's do.
func (p *parser) size(where, value, unit string, def uint64, roundKiB bool) uint64 {
	var b uint64
	var err error
	if roundKiB {
		b, err = memorySize(value, unit)
	} else {
		b, err = scaled(value, unit, def)
	}
	if err != nil {
		p.invalid(where, "size %q unit %q: %v", strings.TrimSpace(value), unit, err)
	}
	return b
}

func (p *parser) domain(x *xDomain) *Domain {
	d := &Domain{}
	if n := once(p, "<name>", x.Name); n != nil {
		d.Name = strings.TrimSpace(*n)
	}
	if u := once(p, "<uuid>", x.UUID); u != nil {
		d.UUID = strings.TrimSpace(*u)
		if !validUUID(d.UUID) {
			p.invalid("<uuid>"+d.UUID+"</uuid>", "not an RFC 4122 UUID (32 hex digits, dashes allowed)")
		}
	}
	d.Memory = p.memory("<memory>", once(p, "<memory>", x.Memory))
	d.CurrentMemory = p.memory("<currentMemory>", once(p, "<currentMemory>", x.CurrentMemory))
	if m := once(p, "<maxMemory>", x.MaxMemory); m != nil {
		d.MaxMemory = &MaxMemory{
			Size:  p.memory("<maxMemory>", &m.xScaled),
			Slots: p.num("<maxMemory>", "slots", m.Slots, 0, maxCount),
		}
		if m.Slots == nil {
			p.invalid("<maxMemory>", "attribute slots is required (QEMU -m slots=)")
		}
	}
	vcpuAttr := p.vcpu(d, once(p, "<vcpu>", x.VCPU))
	if v := once(p, "<vcpus>", x.VCPUs); v != nil {
		p.vcpus(d, v)
	}
	p.iothreads(d, once(p, "<iothreads>", x.IOThreads), once(p, "<iothreadids>", x.IOThreadIDs))
	if t := once(p, "<cputune>", x.CPUTune); t != nil {
		p.cputune(d, t)
	}
	p.numatune(d, once(p, "<numatune>", x.NUMATune), vcpuAttr)
	if c := once(p, "<cpu>", x.CPU); c != nil {
		p.cpu(d, c)
	}
	if m := once(p, "<memoryBacking>", x.MemoryBacking); m != nil {
		p.memoryBacking(d, m)
	}
	for _, dev := range x.Devices {
		for _, m := range dev.Memory {
			p.memoryDevice(d, &m)
		}
	}
	return d
}

func validUUID(s string) bool {
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return false
	}
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// vcpu reads <vcpu>; it returns the placement attribute as written ("" when
// absent), which <numatune> needs for its own default.
func (p *parser) vcpu(d *Domain, v *xVCPU) Placement {
	const w = "<vcpu>"
	if v == nil {
		p.invalid("<domain>", "<vcpu> is required")
		return ""
	}
	p.unknown(w, v.xUnknown)
	val := strings.TrimSpace(v.Value)
	d.VCPU.Max = p.positive(w, "content", &val, 0, maxCount)
	d.VCPU.Current = p.positive(w, "current", v.Current, d.VCPU.Max, maxCount)
	if d.VCPU.Current > d.VCPU.Max {
		p.invalid(at(w, "current", v.Current), "current is more than the %d vCPUs of <vcpu>", d.VCPU.Max)
	}
	attr := Placement(p.enum(w, "placement", v.Placement, "static", "auto"))
	d.VCPU.CPUSet = p.set(w, "cpuset", v.CPUSet)
	d.VCPU.Placement = attr
	if attr == "" {
		d.VCPU.Placement = PlacementStatic
	}
	return attr
}

func (p *parser) vcpus(d *Domain, v *xVCPUs) {
	const w = "<vcpus>"
	p.unknown(w, v.xUnknown)
	for _, c := range v.VCPU {
		w := "<vcpus><vcpu>"
		p.unknown(w, c.xUnknown)
		if !p.required(w, "id", c.ID) || !p.required(w, "enabled", c.Enabled) {
			return
		}
		s := VCPUState{
			ID:    p.num(w, "id", c.ID, 0, maxCount),
			Order: p.positive(w, "order", c.Order, 0, maxCount),
		}
		if e := p.yesNo(w, "enabled", c.Enabled); e != nil {
			s.Enabled = *e
		}
		if h := p.yesNo(w, "hotpluggable", c.Hotpluggable); h != nil {
			s.Hotpluggable = *h
		}
		if p.err != nil {
			return
		}
		d.VCPUs = append(d.VCPUs, s)
	}
}

func (p *parser) iothreads(d *Domain, count *string, ids *xIOThreadIDs) {
	n := 0
	if count != nil {
		c := strings.TrimSpace(*count)
		n = p.num("<iothreads>", "content", &c, 0, maxCount)
	}
	given := map[int]bool{}
	if ids != nil {
		p.unknown("<iothreadids>", ids.xUnknown)
		for _, t := range ids.IOThread {
			w := "<iothreadids><iothread>"
			p.unknown(w, t.xUnknown)
			if !p.required(w, "id", t.ID) {
				return
			}
			id := p.positive(w, "id", t.ID, 0, maxCount)
			if given[id] {
				p.invalid(at(w, "id", t.ID), "iothread id given twice")
			}
			given[id] = true
			d.IOThreads = append(d.IOThreads, id)
		}
	}
	// libvirt fills the ids not given from 1 upwards, skipping given ones.
	for next := 1; len(d.IOThreads) < n && p.err == nil; next++ {
		if !given[next] {
			d.IOThreads = append(d.IOThreads, next)
		}
	}
}

func (p *parser) cputune(d *Domain, t *xCPUTune) {
	// Scheduler classes, CFS quotas, cachetune and memorytune are cgroup
	// and resctrl settings qnuma does not apply: refused, named.
	p.unknown("<cputune>", t.xUnknown)
	for _, v := range t.VCPUPin {
		w := "<cputune><vcpupin>"
		p.unknown(w, v.xUnknown)
		if v.IOThread != nil {
			p.unsupported(at(w, "iothread", v.IOThread), "attribute iothread is not one qnuma knows")
		}
		if !p.required(w, "vcpu", v.VCPU) || !p.required(w, "cpuset", v.CPUSet) {
			return
		}
		d.CPUTune.VCPUPins = append(d.CPUTune.VCPUPins, VCPUPin{
			VCPU: p.num(w, "vcpu", v.VCPU, 0, maxCount),
			CPUs: p.set(w, "cpuset", v.CPUSet),
		})
	}
	if e := once(p, "<cputune><emulatorpin>", t.EmulatorPin); e != nil {
		w := "<cputune><emulatorpin>"
		p.unknown(w, e.xUnknown)
		if e.VCPU != nil || e.IOThread != nil {
			p.unsupported(w, "only attribute cpuset is known")
		}
		if p.required(w, "cpuset", e.CPUSet) {
			d.CPUTune.EmulatorPin = p.set(w, "cpuset", e.CPUSet)
		}
	}
	for _, v := range t.IOThreadPin {
		w := "<cputune><iothreadpin>"
		p.unknown(w, v.xUnknown)
		if v.VCPU != nil {
			p.unsupported(at(w, "vcpu", v.VCPU), "attribute vcpu is not one qnuma knows")
		}
		if !p.required(w, "iothread", v.IOThread) || !p.required(w, "cpuset", v.CPUSet) {
			return
		}
		d.CPUTune.IOThreadPins = append(d.CPUTune.IOThreadPins, IOThreadPin{
			IOThread: p.positive(w, "iothread", v.IOThread, 0, maxCount),
			CPUs:     p.set(w, "cpuset", v.CPUSet),
		})
	}
}

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

func (p *parser) memoryBacking(d *Domain, m *xMemoryBacking) {
	const w = "<memoryBacking>"
	mb := &d.MemoryBacking
	p.unknown(w, m.xUnknown)
	if h := once(p, w+"<hugepages>", m.Hugepages); h != nil {
		mb.Hugepages = true
		p.unknown(w+"<hugepages>", h.xUnknown)
		for _, pg := range h.Page {
			pw := w + "<hugepages><page>"
			p.unknown(pw, pg.xUnknown)
			if !p.required(pw, "size", pg.Size) {
				return
			}
			unit := ""
			if pg.Unit != nil {
				unit = *pg.Unit
			}
			size := p.size(pw, *pg.Size, unit, 1024, true)
			if p.err == nil && size == 0 {
				p.invalid(at(pw, "size", pg.Size), "a page size must be more than 0")
			}
			mb.Pages = append(mb.Pages, HugePage{Size: size, Cells: p.set(pw, "nodeset", pg.NodeSet)})
		}
	}
	if s := once(p, w+"<source>", m.Source); s != nil {
		p.unknown(w+"<source>", s.xUnknown)
		p.onlyAttr(w+"<source>", "type", s)
		mb.Source = Source(p.enum(w+"<source>", "type", s.Type, "anonymous", "file", "memfd"))
	}
	if a := once(p, w+"<access>", m.Access); a != nil {
		p.unknown(w+"<access>", a.xUnknown)
		p.onlyAttr(w+"<access>", "mode", a)
		mb.Access = Access(p.enum(w+"<access>", "mode", a.Mode, "shared", "private"))
	}
	if a := once(p, w+"<allocation>", m.Allocation); a != nil {
		aw := w + "<allocation>"
		p.unknown(aw, a.xUnknown)
		if a.Type != nil {
			p.unsupported(at(aw, "type", a.Type), "attribute type is not one qnuma knows")
		}
		mb.Allocation = Allocation(p.enum(aw, "mode", a.Mode, "immediate", "ondemand"))
		mb.AllocThreads = p.positive(aw, "threads", a.Threads, 0, maxCount)
	}
	for _, flag := range []struct {
		name string
		xs   []xUnknown
		to   *bool
	}{{"discard", m.Discard, &mb.Discard}, {"nosharepages", m.NoSharePages, &mb.NoSharePages}, {"locked", m.Locked, &mb.Locked}} {
		if u := once(p, w+"<"+flag.name+">", flag.xs); u != nil {
			p.unknown(w+"<"+flag.name+">", *u)
			*flag.to = true
		}
	}
}

// onlyAttr refuses the xTyped attributes other than the one the element has.
func (p *parser) onlyAttr(w, name string, t *xTyped) {
	for _, a := range []struct {
		name string
		v    *string
	}{{"type", t.Type}, {"mode", t.Mode}, {"threads", t.Threads}} {
		if a.name != name && a.v != nil {
			p.unsupported(at(w, a.name, a.v), "attribute %s is not one qnuma knows", a.name)
		}
	}
}

func (p *parser) memoryDevice(d *Domain, m *xMemoryDevice) {
	w := "<devices><memory>"
	if !p.required(w, "model", m.Model) {
		return
	}
	w = fmt.Sprintf("<devices><memory model='%s'>", *m.Model)
	switch MemoryModel(*m.Model) {
	case ModelDIMM, ModelVirtioMem:
	case "nvdimm", "virtio-pmem", "sgx-epc":
		p.unsupported(w, "qnuma places dimm and virtio-mem memory devices only")
		return
	default:
		p.invalid(w, "model must be one of dimm, nvdimm, virtio-pmem, virtio-mem, sgx-epc")
		return
	}
	p.unknown(w, m.xUnknown)
	dev := MemoryDevice{
		Model:   MemoryModel(*m.Model),
		Access:  Access(p.enum(w, "access", m.Access, "shared", "private")),
		Discard: p.yesNo(w, "discard", m.Discard),
	}
	if dev.Discard != nil && dev.Model != ModelDIMM {
		p.invalid(at(w, "discard", m.Discard), "discard is allowed only for model='dimm'")
	}
	if s := once(p, w+"<source>", m.Source); s != nil {
		p.unknown(w+"<source>", s.xUnknown)
		dev.PageSize = p.memory(w+"<source><pagesize>", once(p, w+"<source><pagesize>", s.PageSize))
		if nm := once(p, w+"<source><nodemask>", s.NodeMask); nm != nil {
			dev.NodeMask = p.set(w+"<source><nodemask>", "content", nm)
		}
	}
	t := once(p, w+"<target>", m.Target)
	if t == nil {
		p.invalid(w, "<target> is required")
		return
	}
	tw := w + "<target>"
	p.unknown(tw, t.xUnknown)
	size := once(p, tw+"<size>", t.Size)
	if size == nil {
		p.invalid(tw, "<size> is required")
		return
	}
	dev.Size = p.memory(tw+"<size>", size)
	if n := once(p, tw+"<node>", t.Node); n != nil {
		v := strings.TrimSpace(*n)
		node := p.num(tw+"<node>", "content", &v, 0, maxCount)
		dev.Node = &node
	}
	dev.Block = p.memory(tw+"<block>", once(p, tw+"<block>", t.Block))
	dev.Requested = p.memory(tw+"<requested>", once(p, tw+"<requested>", t.Requested))
	if dev.Model == ModelDIMM && (len(t.Block) > 0 || len(t.Requested) > 0) {
		p.invalid(tw, "<block> and <requested> are for model='virtio-mem' only")
	}
	d.MemoryDevices = append(d.MemoryDevices, dev)
}
