package plan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"k8s.io/utils/cpuset"
)

// Describe writes the plan for a person to check before anything starts:
// why these nodes, every node's room, guest node → host node with what was
// given and what qnuma chose (Bindings), vCPU → host CPUs (runs of vCPUs
// with the same CPUs on one line; hotpluggable ones apart), the guest
// topology, the emulator threads' CPUs and the process memory policy with
// its fallback.
func (p *Plan) Describe(w io.Writer) error {
	ew := &errWriter{w: w}
	s := p.Spec
	mode := "shared"
	if s.Dedicated {
		mode = "dedicated"
	}
	ew.printf("VM: %d vCPUs, %s, %s vCPUs, %s memory policy", s.VCPUs, sizeString(s.MemoryBytes), mode, p.Mempolicy.Mode)
	if s.HugepageBytes > 0 {
		ew.printf(", %s hugepages", sizeString(s.HugepageBytes))
	}
	if p.BindOnly {
		ew.printf(", bind only")
	}
	ew.printf("\nHost nodes: %s\n\nWhy:\n", cpuset.New(p.HostNodes...))
	for _, r := range p.Reasons {
		ew.printf("  - %s\n", r)
	}

	ew.printf("\nRoom per node (after other VMs):\n")
	tw := newTable(ew)
	hp := ""
	if s.HugepageBytes > 0 {
		hp = "\t" + sizeString(s.HugepageBytes) + " pages"
	}
	fmt.Fprintf(tw, "  node\t%s\tmemory free%s\tother vCPUs\tnote\n", cpuUnit(s), hp)
	for _, r := range p.Rooms {
		pages := ""
		if s.HugepageBytes > 0 {
			pages = fmt.Sprintf("\t%d", r.Hugepages)
		}
		note := r.Unusable
		if note == "" && r.MemoryOnly {
			note = "memory only"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s%s\t%d\t%s\n", r.Node, r.CPUs, sizeString(r.MemoryBytes), pages, r.Load, note)
	}
	tw.flush()

	ew.printf("\nGuest nodes (given: the user's binding, kept; chosen: by qnuma):\n")
	tw = newTable(ew)
	fmt.Fprintf(tw, "  guest node\thost nodes\tvCPUs\tmemory\tbackend\tpolicy\tbinding\n")
	bindings := p.Bindings()
	for i, g := range p.GuestNodes {
		vcpus := "-"
		if len(g.VCPUs) > 0 {
			vcpus = cpuset.New(g.VCPUs...).String()
		}
		b := bindings[i]
		backend, policy, given := dash(b.Backend), dash(b.Policy), "chosen"
		if b.Given {
			given = "given"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, cpuset.New(g.HostNodes...), vcpus, sizeString(g.MemoryBytes), backend, policy, given)
	}
	tw.flush()
	for i, g := range p.GuestNodes {
		ew.printf("  - guest node %d: %s.\n", g.ID, bindings[i].Reason)
	}

	ew.printf("\nvCPUs → host CPUs:\n")
	tw = newTable(ew)
	fmt.Fprintf(tw, "  vCPUs\tguest node\tsocket/core/thread\thost CPUs\n")
	for i := 0; i < len(p.VCPUs); {
		j := i + 1
		for j < len(p.VCPUs) && p.VCPUs[j].HostCPUs.Equals(p.VCPUs[i].HostCPUs) && p.VCPUs[j].GuestNode == p.VCPUs[i].GuestNode {
			j++
		}
		ids := make([]int, 0, j-i)
		for _, v := range p.VCPUs[i:j] {
			ids = append(ids, v.ID)
		}
		sct := fmt.Sprintf("%d/%d/%d", p.VCPUs[i].Socket, p.VCPUs[i].Core, p.VCPUs[i].Thread)
		if j-i > 1 {
			last := p.VCPUs[j-1]
			sct += fmt.Sprintf("..%d/%d/%d", last.Socket, last.Core, last.Thread)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", cpuset.New(ids...), p.GuestNodeID(p.VCPUs[i]), sct, p.VCPUs[i].HostCPUs)
		i = j
	}
	tw.flush()
	if hp := p.HotplugVCPUs; len(hp) > 0 {
		ew.printf("\nHotpluggable vCPUs (-smp maxcpus, not present at start; qnuma run pins only the vCPUs present at start):\n")
		tw = newTable(ew)
		fmt.Fprintf(tw, "  vCPU\tguest node\tsocket/core/thread\thost CPUs\n")
		for _, v := range hp {
			fmt.Fprintf(tw, "  %d\t%d\t%d/%d/%d\t%s\n", v.ID, p.GuestNodeID(v), v.Socket, v.Core, v.Thread, v.HostCPUs)
		}
		tw.flush()
	}
	if hm := p.HotplugMemory; len(hm) > 0 {
		if hm[0].DIMMBytes > 0 {
			ew.printf("\nHotplug memory (DIMMs of %s that qnuma memory plugs, none at start, each backend bound to its guest node's host nodes):\n", sizeString(hm[0].DIMMBytes))
		} else {
			ew.printf("\nHotplug memory (one virtio-mem device per guest node, empty at start, its backend bound to the guest node's host nodes):\n")
		}
		tw = newTable(ew)
		fmt.Fprintf(tw, "  guest node\thost nodes\tup to\n")
		for _, m := range hm {
			fmt.Fprintf(tw, "  %d\t%s\t%s\n", m.GuestNode, idList(m.HostNodes), sizeString(m.Bytes))
		}
		tw.flush()
	}

	ew.printf("\nGuest CPU topology: sockets=%d", p.Sockets)
	if t := s.Topology; t != nil && t.Dies > 1 {
		ew.printf(" dies=%d", t.Dies)
	}
	ew.printf(" cores=%d threads=%d", p.Cores, p.Threads)
	if t := s.Topology; t != nil && t.MaxCPUs > len(p.VCPUs) {
		ew.printf(", %d vCPUs present of maxcpus=%d", len(p.VCPUs), t.MaxCPUs)
	} else if n := p.Sockets * p.Cores * p.Threads; t == nil && len(p.HotplugVCPUs) > 0 {
		ew.printf(", %d vCPUs present of maxcpus=%d", len(p.VCPUs), n)
	}
	switch {
	case s.Topology != nil && s.CellsFrom != "":
		ew.printf(" (as given, kept)")
	case s.Topology != nil:
		ew.printf(" (the qemu command line's own -smp, kept)")
	}
	ew.printf("\n")
	ew.printf("Emulator threads: CPUs %s\n", p.EmulatorCPUs)
	for _, io := range p.IOThreads {
		ew.printf("I/O thread %s: CPUs %s\n", io.ID, io.HostCPUs)
	}
	ew.printf("Process memory policy: %s on %s", p.Mempolicy.Mode, nodesPhrase(p.Mempolicy.Nodes))
	if fb, ok := p.Mempolicy.Fallback(); ok {
		ew.printf(" (where the kernel lacks MPOL_PREFERRED_MANY: %s on %s)", fb.Mode, nodesPhrase(fb.Nodes))
	}
	ew.printf("\n")
	if p.Distances != nil {
		ew.printf("Guest node distances:\n")
		for i, row := range p.Distances {
			ew.printf("  %d:", i)
			for _, d := range row {
				ew.printf(" %d", d)
			}
			ew.printf("\n")
		}
	}
	return ew.err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// table is a tabwriter whose lines lose their trailing padding.
type table struct {
	*tabwriter.Writer
	buf *strings.Builder
	out io.Writer
}

func newTable(out io.Writer) *table {
	buf := &strings.Builder{}
	return &table{Writer: tabwriter.NewWriter(buf, 0, 0, 2, ' ', 0), buf: buf, out: out}
}

func (t *table) flush() {
	t.Writer.Flush()
	for _, l := range strings.SplitAfter(t.buf.String(), "\n") {
		if l != "" {
			io.WriteString(t.out, strings.TrimRight(l, " \n")+"\n")
		}
	}
	t.buf.Reset()
}

// errWriter keeps the first write error so Describe can report it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	if err != nil {
		e.err = fmt.Errorf("write plan: %w", err)
	}
	return n, e.err
}

func (e *errWriter) printf(format string, a ...any) {
	fmt.Fprintf(e, format, a...)
}
