package domxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Skeleton is the smallest domain libvirt's schema accepts, for Rewrite to
// write a placement into when there is no domain XML to start from: name,
// type (kvm, or qemu for TCG) and an x86_64 q35 <os>. Disks, interfaces and
// consoles are the user's to add.
func Skeleton(name, typ string) []byte {
	var b bytes.Buffer
	b.WriteString("<domain type='")
	xml.EscapeText(&b, []byte(typ))
	b.WriteString("'>\n  <name>")
	xml.EscapeText(&b, []byte(name))
	b.WriteString("</name>\n  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n</domain>\n")
	return b.Bytes()
}

// Rewrite writes the placement of place (from FromPlan) into the domain
// XML data and returns the new document. Every byte outside the elements it
// writes stays as it was: comments, attribute order and quoting,
// whitespace, and every other element. It works on the byte offsets of the
// elements (encoding/xml's InputOffset), never by marshalling the document
// again. What it writes:
//
//   - <memory>: place.Memory plus the domain's memory devices (libvirt
//     counts them in <memory>); <currentMemory> only where it was more than
//     that (a smaller balloon target is kept);
//   - <vcpu>, <numatune>: replaced whole, or added;
//   - <cputune>: its <vcpupin>, <emulatorpin> and <iothreadpin> replaced
//     (every I/O thread of the domain runs where the emulator does, as qnuma's
//     launcher pins it); <shares>, quotas and the rest kept;
//   - <cpu>: its <topology> and <numa> replaced; the mode, model, vendor,
//     features and caches kept. The old cells' memAccess and discard are
//     carried to the new cells when every old cell had the same;
//   - <memoryBacking>: its <hugepages> replaced (or removed, for a plan
//     without hugepages: the plan counted ordinary memory), <allocation>
//     set to immediate for a preallocated plan; the rest kept.
//
// New elements go where libvirt itself writes them (virDomainDefFormat's
// order), indented as the document indents, their attributes quoted as its
// root element's are. A removed element takes its
// line's indentation with it. An existing <vcpus> (per-vCPU hotplug state)
// is kept when it still describes the new vCPUs, else refused.
//
// Errors wrap ErrInvalid for a document that is not a libvirt domain (or one
// that libvirt would refuse) and ErrUnsupported for one whose placement
// cannot be rewritten without changing something else: HMAT figures or
// memory devices naming the old cells, cells with different memAccess,
// a <vcpusched>, <cachetune> or <memorytune> of vCPUs the placement lacks.
func Rewrite(data []byte, place *Domain) ([]byte, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: domain xml is larger than %d bytes", ErrInvalid, MaxSize)
	}
	old, err := parseLenient(data)
	if err != nil {
		return nil, err
	}
	root, err := spans(data)
	if err != nil {
		return nil, err
	}
	w := &rewriter{data: data, root: root, unit: root.childUnit(data), nl: "\n"}
	if bytes.Contains(data, []byte("\r\n")) {
		w.nl = "\r\n"
	}
	// Attributes quoted as the root element quotes its own.
	tag := data[root.start:root.startEnd]
	if i := bytes.IndexAny(tag, `'"`); i >= 0 && tag[i] == '"' {
		w.quote = `"`
	}
	if err := w.plan(old, place); err != nil {
		return nil, err
	}
	out := w.apply()
	// The result must still be one well-formed domain.
	if _, err := spans(out); err != nil {
		return nil, fmt.Errorf("rewrite domain xml: the result is not well-formed (a bug in qnuma): %w", err)
	}
	return out, nil
}

// parseLenient reads a domain as libvirt would accept it: what qnuma does
// not honour is not refused, and cross-element checks are not run (the
// placement is about to be replaced).
func parseLenient(data []byte) (*Domain, error) {
	var x xDomain
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&x); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: no XML element in it: want a libvirt <domain> (virsh dumpxml --inactive NAME)", ErrInvalid)
		}
		var se xml.UnmarshalError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: %v: want a libvirt <domain>", ErrInvalid, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p := parser{lenient: true}
	d := p.domain(&x)
	if p.err != nil {
		return nil, p.err
	}
	return d, nil
}

// node is one element of the document, with its byte offsets: [start,
// end) the whole element, [start, startEnd) its start tag.
type node struct {
	name            string
	start, startEnd int
	end             int
	selfClosing     bool
	children        []*node
	removed         bool // Rewrite drops it
	attrs           []xml.Attr
}

// spans reads the element tree of a document with every element's offsets.
func spans(data []byte) (*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []*node
	var root *node
	for {
		before := int(dec.InputOffset())
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, start: before, startEnd: int(dec.InputOffset()), attrs: t.Copy().Attr}
			n.selfClosing = bytes.HasSuffix(data[n.start:n.startEnd], []byte("/>"))
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			} else if root != nil {
				return nil, fmt.Errorf("%w: more than one root element", ErrInvalid)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack[len(stack)-1].end = int(dec.InputOffset())
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil || root.name != "domain" {
		return nil, fmt.Errorf("%w: the root element is not <domain>", ErrInvalid)
	}
	return root, nil
}

func (n *node) all(name string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// indent is the whitespace before offset on its line, "" when something
// else precedes it there.
func indent(data []byte, off int) string {
	i := off
	for i > 0 && (data[i-1] == ' ' || data[i-1] == '\t') {
		i--
	}
	if i > 0 && data[i-1] != '\n' {
		return ""
	}
	return string(data[i:off])
}

// childUnit is how much deeper the document indents a child than its
// parent: two spaces when it cannot tell.
func (n *node) childUnit(data []byte) string {
	parent := indent(data, n.start)
	for _, c := range n.children {
		if ci := indent(data, c.start); len(ci) > len(parent) && strings.HasPrefix(ci, parent) {
			return ci[len(parent):]
		}
	}
	return "  "
}

// edit replaces data[start:end] with text. Insertions at one offset go in
// the order of rank.
type edit struct {
	start, end int
	text       string
	rank       int
}

type rewriter struct {
	data  []byte
	root  *node
	unit  string // one level of indentation
	nl    string // the document's line break: \r\n where it uses them
	quote string // "" for ', or " where the document quotes so
	edits []edit
}

func (w *rewriter) apply() []byte {
	sort.SliceStable(w.edits, func(i, j int) bool {
		a, b := w.edits[i], w.edits[j]
		if a.start != b.start {
			return a.start < b.start
		}
		if (a.start == a.end) != (b.start == b.end) {
			return a.start == a.end // insertions before a replacement there
		}
		return a.rank < b.rank
	})
	var b bytes.Buffer
	at := 0
	for _, e := range w.edits {
		b.Write(w.data[at:e.start])
		b.WriteString(e.text)
		at = e.end
	}
	b.Write(w.data[at:])
	return b.Bytes()
}

// childIndent is the indentation of n's children.
func (w *rewriter) childIndent(n *node) string {
	for _, c := range n.children {
		if ci := indent(w.data, c.start); ci != "" {
			return ci
		}
	}
	return indent(w.data, n.start) + w.unit
}

// replace puts block (lines of an element, relative indentation in units)
// where n is.
func (w *rewriter) replace(n *node, block []line) {
	w.edits = append(w.edits, edit{start: n.start, end: n.end, text: w.render(block, indent(w.data, n.start))})
}

// remove drops n and, when it is alone on its line, the line break and
// indentation before it.
func (w *rewriter) remove(n *node) {
	n.removed = true
	start := n.start - len(indent(w.data, n.start))
	if start > 0 && w.data[start-1] == '\n' {
		start--
		if start > 0 && w.data[start-1] == '\r' {
			start--
		}
	} else {
		start = n.start
	}
	w.edits = append(w.edits, edit{start: start, end: n.end})
}

// appendTo adds block as the last child of parent.
func (w *rewriter) appendTo(parent *node, block []line, r int) {
	ind := w.childIndent(parent)
	text := w.nl + ind + w.render(block, ind)
	if parent.selfClosing {
		// <cpu mode='x'/> becomes <cpu mode='x'>...</cpu>.
		tag := w.data[parent.start:parent.startEnd]
		open := strings.TrimRight(strings.TrimSuffix(string(tag), "/>"), " \t\r\n") + ">"
		w.edits = append(w.edits, edit{start: parent.start, end: parent.end, text: open + text + w.nl + indent(w.data, parent.start) + "</" + parent.name + ">"})
		return
	}
	at := parent.startEnd
	for _, c := range parent.children {
		if !c.removed {
			at = c.end
		}
	}
	if at == parent.startEnd && !bytes.Contains(w.data[parent.startEnd:parent.end], []byte("\n")) {
		text += w.nl + indent(w.data, parent.start)
	}
	w.edits = append(w.edits, edit{start: at, end: at, text: text, rank: r})
}

// domainOrder is the order libvirt writes a domain's children in
// (virDomainDefFormat); a new element goes before the first present one
// that libvirt writes after it.
var domainOrder = []string{
	"name", "uuid", "genid", "title", "description", "metadata",
	"maxMemory", "memory", "currentMemory", "blkiotune", "memtune", "memoryBacking",
	"vcpu", "vcpus", "iothreads", "iothreadids", "defaultiothread", "cputune", "numatune",
	"resource", "sysinfo", "bootloader", "bootloader_args", "os", "idmap", "features",
	"cpu", "clock", "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm",
	"perf", "devices",
}

func rank(name string) int {
	if i := slices.Index(domainOrder, name); i >= 0 {
		return i
	}
	return len(domainOrder) // seclabel, qemu:commandline and the rest come last
}

// insert adds block as a new child of the domain, where libvirt puts it.
func (w *rewriter) insert(name string, block []line) {
	r := rank(name)
	for _, c := range w.root.children {
		if rank(c.name) > r && !c.removed {
			ind := indent(w.data, c.start)
			sep := w.nl + ind
			if ind == "" {
				sep = ""
			}
			w.edits = append(w.edits, edit{start: c.start, end: c.start, text: w.render(block, ind) + sep, rank: r})
			return
		}
	}
	w.appendTo(w.root, block, r)
}

// set replaces the domain's element name, or inserts it.
func (w *rewriter) set(name string, block []line) error {
	all := w.root.all(name)
	switch len(all) {
	case 0:
		w.insert(name, block)
	case 1:
		w.replace(all[0], block)
	default:
		return fmt.Errorf("%w: <%s> given %d times; libvirt allows it once", ErrInvalid, name, len(all))
	}
	return nil
}

// children rewrites the children of the domain's element parent: those
// named in drop are removed, add put in place of the first removed one
// (else after the last child). The parent is made when absent, and removed
// when nothing would be left in it.
func (w *rewriter) children(parent string, drop []string, add []line) error {
	all := w.root.all(parent)
	if len(all) > 1 {
		return fmt.Errorf("%w: <%s> given %d times; libvirt allows it once", ErrInvalid, parent, len(all))
	}
	if len(all) == 0 {
		if len(add) > 0 {
			w.insert(parent, wrap(parent, add))
		}
		return nil
	}
	n := all[0]
	var dropped []*node
	kept := 0
	for _, c := range n.children {
		if slices.Contains(drop, c.name) {
			dropped = append(dropped, c)
		} else {
			kept++
		}
	}
	if kept == 0 && len(add) == 0 && !n.selfClosing && len(n.children) > 0 {
		w.remove(n)
		return nil
	}
	for i, c := range dropped {
		if i == 0 && len(add) > 0 {
			w.replace(c, add)
			continue
		}
		w.remove(c)
	}
	if len(dropped) == 0 && len(add) > 0 {
		w.appendTo(n, add, 0)
	}
	return nil
}

// line is one line of a rendered element: its depth below the element's
// own line and its text.
type line struct {
	depth int
	text  string
}

// render joins lines; the first takes the place of the element (already
// indented by ind), the others are indented by ind and depth units.
func (w *rewriter) render(block []line, ind string) string {
	var b strings.Builder
	for i, l := range block {
		if i > 0 {
			b.WriteString(w.nl + ind + strings.Repeat(w.unit, l.depth))
		}
		b.WriteString(l.text)
	}
	if w.quote != "" {
		// The rendered values (numbers, sets, modes) hold no quotes.
		return strings.ReplaceAll(b.String(), "'", w.quote)
	}
	return b.String()
}

// wrap puts lines inside <name>...</name>, one level deeper.
func wrap(name string, inner []line) []line {
	out := []line{{0, "<" + name + ">"}}
	for _, l := range inner {
		out = append(out, line{l.depth + 1, l.text})
	}
	return append(out, line{0, "</" + name + ">"})
}

func kib(b uint64) string { return strconv.FormatUint(b/1024, 10) }

// plan works out every edit.
func (w *rewriter) plan(old, place *Domain) error {
	if place == nil || place.VCPU.Max == 0 {
		return fmt.Errorf("rewrite domain xml: no placement to write")
	}
	if err := w.checkOld(old, place); err != nil {
		return err
	}
	// memoryBacking first: an element it removes is no anchor for the
	// elements inserted after it.
	var backing []line
	drop := []string{"hugepages"}
	if mb := place.MemoryBacking; mb.Hugepages {
		backing = append(backing, line{0, "<hugepages>"})
		for _, pg := range mb.Pages {
			t := fmt.Sprintf("<page size='%s' unit='KiB'", kib(pg.Size))
			if !pg.Cells.IsEmpty() {
				t += fmt.Sprintf(" nodeset='%s'", pg.Cells)
			}
			backing = append(backing, line{1, t + "/>"})
		}
		backing = append(backing, line{0, "</hugepages>"})
	}
	if place.MemoryBacking.Allocation == AllocImmediate {
		drop = append(drop, "allocation")
		backing = append(backing, line{0, "<allocation mode='immediate'/>"})
	}
	if err := w.children("memoryBacking", drop, backing); err != nil {
		return err
	}
	var devices uint64
	for _, m := range old.MemoryDevices {
		devices += m.Size
	}
	total := place.Memory + devices
	if old.MaxMemory != nil && old.MaxMemory.Size < total {
		return fmt.Errorf("%w: <maxMemory> is %s but the guest's memory and memory devices need %s: raise <maxMemory>", ErrInvalid, bytesText(old.MaxMemory.Size), bytesText(total))
	}
	if err := w.set("memory", []line{{0, "<memory unit='KiB'>" + kib(total) + "</memory>"}}); err != nil {
		return err
	}
	if old.CurrentMemory > total {
		if err := w.set("currentMemory", []line{{0, "<currentMemory unit='KiB'>" + kib(total) + "</currentMemory>"}}); err != nil {
			return err
		}
	}

	vcpu := "<vcpu placement='static'>"
	if place.VCPU.Current != place.VCPU.Max {
		vcpu = fmt.Sprintf("<vcpu placement='static' current='%d'>", place.VCPU.Current)
	}
	if err := w.set("vcpu", []line{{0, vcpu + strconv.Itoa(place.VCPU.Max) + "</vcpu>"}}); err != nil {
		return err
	}

	var pins []line
	for _, p := range place.CPUTune.VCPUPins {
		pins = append(pins, line{0, fmt.Sprintf("<vcpupin vcpu='%d' cpuset='%s'/>", p.VCPU, p.CPUs)})
	}
	if !place.CPUTune.EmulatorPin.IsEmpty() {
		pins = append(pins, line{0, fmt.Sprintf("<emulatorpin cpuset='%s'/>", place.CPUTune.EmulatorPin)})
		for _, id := range old.IOThreads {
			pins = append(pins, line{0, fmt.Sprintf("<iothreadpin iothread='%d' cpuset='%s'/>", id, place.CPUTune.EmulatorPin)})
		}
	}
	if err := w.children("cputune", []string{"vcpupin", "emulatorpin", "iothreadpin"}, pins); err != nil {
		return err
	}

	if err := w.set("numatune", numatuneLines(place.NUMATune)); err != nil {
		return err
	}

	var cpu []line
	if t := place.Topology; t != nil {
		cpu = append(cpu, line{0, fmt.Sprintf("<topology sockets='%d' dies='%d' cores='%d' threads='%d'/>", t.Sockets, t.Dies, t.Cores, t.Threads)})
	}
	cpu = append(cpu, numaLines(place.Cells, carried(old.Cells))...)
	if err := w.children("cpu", []string{"topology", "numa"}, cpu); err != nil {
		return err
	}

	return nil
}

// checkOld refuses a domain whose other elements name the cells or vCPUs
// that the placement replaces.
func (w *rewriter) checkOld(old, place *Domain) error {
	if len(old.Interconnects) > 0 {
		return fmt.Errorf("%w: <cpu><numa><interconnects> gives HMAT figures for the domain's own cells, which the placement replaces: remove them", ErrUnsupported)
	}
	for _, c := range old.Cells {
		if len(c.Caches) > 0 {
			return fmt.Errorf("%w: <cpu><numa><cell id='%d'> has memory-side caches (HMAT) for a cell the placement replaces: remove them", ErrUnsupported, c.ID)
		}
	}
	a := carried(old.Cells)
	if a == nil {
		return fmt.Errorf("%w: the domain's cells differ in memAccess or discard, which the new cells cannot all keep: set <memoryBacking><access> (or <discard/>) for the whole guest instead", ErrUnsupported)
	}
	if len(place.Cells) == 0 && len(old.Cells) > 0 {
		// A one-node placement has no cell to carry them.
		access := old.MemoryBacking.Access
		if access == "" {
			access = AccessPrivate
		}
		if a.access != "" && a.access != access {
			return fmt.Errorf("%w: the domain's cells have memAccess='%s', and the one-node placement has no cells to keep it: set <memoryBacking><access mode='%s'/> for the whole guest", ErrUnsupported, a.access, a.access)
		}
		if a.discard != nil && *a.discard != old.MemoryBacking.Discard {
			return fmt.Errorf("%w: the domain's cells set discard, and the one-node placement has no cells to keep it: set <memoryBacking><discard/> (or remove the cells' discard)", ErrUnsupported)
		}
	}
	for i, m := range old.MemoryDevices {
		if m.Node != nil && *m.Node >= max(len(place.Cells), 1) {
			return fmt.Errorf("%w: memory device %d is on guest cell %d, and the placement has %d: change its <target><node>", ErrUnsupported, i, *m.Node, max(len(place.Cells), 1))
		}
	}
	// <vcpusched>, <cachetune>, <memorytune> name vCPUs by id.
	for _, t := range w.root.all("cputune") {
		for _, c := range t.children {
			for _, a := range c.attrs {
				if a.Name.Local != "vcpus" {
					continue
				}
				set, err := ParseCPUSet(a.Value)
				if err != nil {
					return fmt.Errorf("%w: <cputune><%s vcpus='%s'>: %v", ErrInvalid, c.name, a.Value, err)
				}
				if l := set.List(); len(l) > 0 && l[len(l)-1] >= place.VCPU.Max {
					return fmt.Errorf("%w: <cputune><%s vcpus='%s'> names vCPUs the placement's %d do not have: change it to 0-%d or less", ErrUnsupported, c.name, a.Value, place.VCPU.Max, place.VCPU.Max-1)
				}
			}
		}
	}
	if n := len(old.VCPUs); n > 0 {
		enabled := 0
		for _, v := range old.VCPUs {
			if v.Enabled {
				enabled++
			}
		}
		if n != place.VCPU.Max || enabled != place.VCPU.Current {
			return fmt.Errorf("%w: <vcpus> describes %d vCPUs, %d of them enabled; the placement has %d, %d enabled: remove <vcpus> or make it match", ErrUnsupported, n, enabled, place.VCPU.Max, place.VCPU.Current)
		}
	}
	return nil
}

// cellAttrs is what the new cells take over from the old ones.
type cellAttrs struct {
	access  Access
	discard *bool
}

// carried is the memAccess and discard every old cell shares; nil when
// they differ.
func carried(cells []Cell) *cellAttrs {
	a := &cellAttrs{}
	for i, c := range cells {
		if i == 0 {
			a.access, a.discard = c.MemAccess, c.Discard
			continue
		}
		if c.MemAccess != a.access || (c.Discard == nil) != (a.discard == nil) || (c.Discard != nil && *c.Discard != *a.discard) {
			return nil
		}
	}
	return a
}

func numatuneLines(t *NUMATune) []line {
	if t == nil {
		return nil
	}
	var inner []line
	if m := t.Memory; m != nil {
		inner = append(inner, line{0, fmt.Sprintf("<memory mode='%s' nodeset='%s'/>", m.Mode, m.Nodes)})
	}
	for _, n := range t.MemNodes {
		inner = append(inner, line{0, fmt.Sprintf("<memnode cellid='%d' mode='%s' nodeset='%s'/>", n.CellID, n.Mode, n.Nodes)})
	}
	return wrap("numatune", inner)
}

func numaLines(cells []Cell, attrs *cellAttrs) []line {
	if len(cells) == 0 {
		return nil
	}
	var inner []line
	for _, c := range cells {
		t := fmt.Sprintf("<cell id='%d'", c.ID)
		if !c.CPUs.IsEmpty() {
			t += fmt.Sprintf(" cpus='%s'", c.CPUs)
		}
		t += fmt.Sprintf(" memory='%s' unit='KiB'", kib(c.Memory))
		access, discard := c.MemAccess, c.Discard
		if attrs != nil && access == "" {
			access = attrs.access
		}
		if attrs != nil && discard == nil {
			discard = attrs.discard
		}
		if access != "" {
			t += fmt.Sprintf(" memAccess='%s'", access)
		}
		if discard != nil {
			t += " discard='" + map[bool]string{true: "yes", false: "no"}[*discard] + "'"
		}
		if len(c.Distances) == 0 {
			inner = append(inner, line{0, t + "/>"})
			continue
		}
		inner = append(inner, line{0, t + ">"}, line{1, "<distances>"})
		for _, s := range c.Distances {
			inner = append(inner, line{2, fmt.Sprintf("<sibling id='%d' value='%d'/>", s.ID, s.Value)})
		}
		inner = append(inner, line{1, "</distances>"}, line{0, "</cell>"})
	}
	return wrap("numa", inner)
}
