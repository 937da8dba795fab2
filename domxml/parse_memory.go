package domxml

import (
	"fmt"
	"strings"
)

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
