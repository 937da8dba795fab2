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
	// lenient skips ErrUnsupported: Rewrite reads a domain that libvirt
	// places (its <cputune><shares>, say), not one qnuma must honour.
	lenient bool
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
	if p.lenient {
		return
	}
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
		p.invalid(at(where, attr, v), "%s must be below %d", valueName(attr), limit)
		return def
	}
	return int(n)
}

// valueName names an attribute, or an element's text, in a message.
func valueName(attr string) string {
	if attr == "content" {
		return "the value"
	}
	return attr
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
		p.invalid(at(where, attr, v), "%s must be at least 1", valueName(attr))
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
		if !p.lenient { // Rewrite adds it
			p.invalid("<domain>", "<vcpu> is required")
		}
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
