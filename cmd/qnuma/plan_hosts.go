package main

// qnuma plan --connect URI --connect URI ... (issue 14): the VM planned on
// each libvirt host as `qnuma libvirt place` plans a domain there (a
// remote host's topology and free memory from libvirt, a local one's from
// sysfs with qnuma's ledger; every running domain's pins and nodesets
// taken), and the hosts ranked: those it fits first, then by the quality
// of its plan there.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
)

// hostPlan is the VM planned on one libvirt host.
type hostPlan struct {
	uri string
	// down: the host could not be reached or read. noFit: the planner
	// refused the VM there (plan.ErrDoesNotFit, plan.ErrBadSpec).
	down, noFit error
	// refusal names noFit in the ranking ("" is "does not fit").
	refusal string
	pr      *Prepared
	q       planQuality
	// why says where it ranks against its neighbour in the ranking.
	why string
}

func (h *hostPlan) fits() bool { return h.down == nil && h.noFit == nil }

// planQuality is what ranks the hosts a VM fits, in this order: the
// fewest host nodes, the most memory left on them, the most of their CPUs
// no vCPU claims, the shortest distance between them.
type planQuality struct {
	Nodes       int    `json:"nodes"`
	MemoryLeft  uint64 `json:"memory_left_bytes"`
	CPUsLeft    int    `json:"cpus_left"`
	MaxDistance int    `json:"max_distance"`
}

// qualityOf measures a plan on its chosen host nodes: the memory their
// room has beyond the VM's (free hugepages of its size, with hugepages),
// their CPUs less other VMs' floating vCPUs and its own, and the largest
// distance between its guest nodes (0 for one).
func qualityOf(p *plan.Plan) planQuality {
	q := planQuality{Nodes: len(p.HostNodes)}
	var room, want uint64
	for _, r := range p.Rooms {
		if !slices.Contains(p.HostNodes, r.Node) {
			continue
		}
		if p.Spec.HugepageBytes > 0 {
			room += r.Hugepages * p.Spec.HugepageBytes
		} else {
			room += r.MemoryBytes
		}
		q.CPUsLeft += r.FreeCPUs.Size() - r.Load
	}
	for _, g := range p.GuestNodes {
		want += g.MemoryBytes
	}
	for _, m := range p.HotplugMemory {
		want += m.Bytes
	}
	q.MemoryLeft = room - min(room, want)
	q.CPUsLeft -= len(p.VCPUs) + len(p.HotplugVCPUs)
	for _, row := range p.Distances {
		for _, d := range row {
			q.MaxDistance = max(q.MaxDistance, d)
		}
	}
	return q
}

// better compares two plans' quality (negative: a is better) and says by
// what, as a phrase about a against the other host.
func better(a, b planQuality, other string) (int, string) {
	switch {
	case a.Nodes != b.Nodes:
		return cmp.Compare(a.Nodes, b.Nodes), fmt.Sprintf("%s against %s on %s", nodesWord(a.Nodes), nodesWord(b.Nodes), other)
	case a.MemoryLeft != b.MemoryLeft:
		return -cmp.Compare(a.MemoryLeft, b.MemoryLeft), fmt.Sprintf("as many host nodes as %s, and %s of memory left on them against %s", other, memobj.FormatSize(a.MemoryLeft), memobj.FormatSize(b.MemoryLeft))
	case a.CPUsLeft != b.CPUsLeft:
		return -cmp.Compare(a.CPUsLeft, b.CPUsLeft), fmt.Sprintf("as many host nodes and as much memory left as %s, and %d CPUs no vCPU claims against %d", other, a.CPUsLeft, b.CPUsLeft)
	case a.MaxDistance != b.MaxDistance:
		return cmp.Compare(a.MaxDistance, b.MaxDistance), fmt.Sprintf("as much room as %s, and its nodes at distance %d against %d", other, a.MaxDistance, b.MaxDistance)
	}
	return 0, fmt.Sprintf("as good as %s (given first)", other)
}

func nodesWord(n int) string {
	if n == 1 {
		return "1 host node"
	}
	return fmt.Sprintf("%d host nodes", n)
}

// rankHosts orders the hosts best first: those the VM fits by the quality
// of its plan, then those it does not fit, then those that did not answer;
// the order given breaks ties. Each gets its why.
func rankHosts(hs []*hostPlan) {
	class := func(h *hostPlan) int {
		switch {
		case h.down != nil:
			return 2
		case h.noFit != nil:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(hs, func(a, b *hostPlan) int {
		if c := cmp.Compare(class(a), class(b)); c != 0 || class(a) != 0 {
			return c
		}
		c, _ := better(a.q, b.q, "")
		return c
	})
	for i, h := range hs {
		switch {
		case h.down != nil:
			h.why = "unreachable: " + h.down.Error()
		case h.noFit != nil:
			h.why = cmp.Or(h.refusal, "does not fit") + ": " + h.noFit.Error()
		case i == 0 && (len(hs) == 1 || !hs[1].fits()):
			h.why = "chosen: the only host the VM fits"
		case i == 0:
			_, by := better(h.q, hs[1].q, hs[1].uri)
			h.why = "chosen: " + by
		default:
			_, by := better(hs[i-1].q, h.q, h.uri)
			h.why = fmt.Sprintf("after %s, which has %s", hs[i-1].uri, by)
		}
	}
}

// planHosts is `qnuma plan --connect ...`.
func (c *PlanCmd) planHosts(ctx context.Context, w io.Writer) error {
	if c.Root != "/" {
		return badInput("--root with --connect: each host is its daemon's own (sysfs for a local one, libvirt's capabilities for a remote one): drop one of them")
	}
	dial := c.dial
	if dial == nil {
		dial = func(u string) (libvirthost.Conn, error) { return libvirthost.Dial(u) }
	}
	var hs []*hostPlan
	for i, uri := range c.Connect {
		if slices.Contains(c.Connect[:i], uri) {
			return badInput("--connect %s is given twice", uri)
		}
		h, err := c.planOn(ctx, dial, uri)
		if err != nil {
			return err
		}
		hs = append(hs, h)
	}
	rankHosts(hs)
	if err := c.printHosts(w, hs); err != nil {
		return err
	}
	switch {
	case hs[0].fits():
		return nil
	case hs[0].down == nil:
		return badInput("the VM fits none of the libvirt hosts that answered (why for each above); nothing started")
	}
	return badInput("no libvirt host answered (%s); nothing started", strings.Join(c.Connect, ", "))
}

// planOn plans the VM on the host of uri. A host that does not answer, or
// whose description cannot be read, comes back down; one the VM does not
// fit, noFit. Bad input (a URI qnuma cannot dial, spec flags wrong on any
// host) is returned as an error.
func (c *PlanCmd) planOn(ctx context.Context, dial func(string) (libvirthost.Conn, error), uri string) (*hostPlan, error) {
	h := &hostPlan{uri: uri}
	local := libvirthost.IsLocal(uri)
	if c.NearDevice != "" && !local {
		return nil, badInput("--near-device with --connect %s: a PCI device is nothing qnuma can look up on a remote host", uri)
	}
	conn, err := dial(uri)
	if errors.Is(err, libvirthost.ErrBadURI) {
		return nil, badInput("--connect: %w", err)
	}
	if err != nil {
		h.down = err
		return h, nil
	}
	defer conn.Close()
	f := c.SpecFlags
	if f.QEMUVersion == "" {
		// The QEMU that host's libvirt runs.
		major, minor, err := conn.HypervisorVersion()
		if err != nil {
			h.down = err
			return h, nil
		}
		f.QEMUVersion = fmt.Sprintf("%d.%d", major, minor)
	}
	pr, err := f.Gather(ctx)
	if err != nil {
		return nil, err // the spec, wrong whatever the host
	}
	var placed []plan.Placed
	if local {
		pc := &PlanCmd{SpecFlags: f, StateDir: c.StateDir}
		if placed, err = pc.placed(ctx); err != nil {
			return nil, err
		}
	} else if pr.Host, err = remoteHost(conn); err != nil {
		h.down = err
		return h, nil
	}
	others, note, err := otherDomains(conn, "", pr, local)
	if err != nil {
		h.down = err
		return h, nil
	}
	if err := pr.PlanFor(append(placed, others...)); err != nil {
		if !IsUsage(err) {
			return nil, err
		}
		h.noFit = err
		return h, nil
	}
	if note != "" {
		pr.Plan.Reasons = append(pr.Plan.Reasons, note)
	}
	h.pr, h.q = pr, qualityOf(pr.Plan)
	return h, nil
}

// hostsJSON is `qnuma plan --connect ... --json`.
type hostsJSON struct {
	// Chosen is the URI of the best host the VM fits ("" when none).
	Chosen string `json:"chosen"`
	// Hosts are every host given, best first.
	Hosts []hostJSON `json:"hosts"`
}

type hostJSON struct {
	URI       string `json:"uri"`
	Rank      int    `json:"rank"`
	Reachable bool   `json:"reachable"`
	Fits      bool   `json:"fits"`
	// Reason: why it ranks where it does, why it does not fit, or why it
	// could not be reached.
	Reason  string       `json:"reason"`
	Quality *planQuality `json:"quality"`
	// Plan is `qnuma plan --json` on that host (null where it does not fit).
	Plan *planJSON `json:"plan"`
}

func (c *PlanCmd) printHosts(w io.Writer, hs []*hostPlan) error {
	if c.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(hostsJSONOf(hs))
	}
	if err := hostsText(w, hs); err != nil {
		return err
	}
	if !hs[0].fits() {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\nThe plan on %s (qnuma libvirt place --connect %s DOMAIN applies it to a domain there):\n\n", hs[0].uri, hs[0].uri); err != nil {
		return err
	}
	return hs[0].pr.Plan.Describe(w)
}

// hostsJSONOf is the ranking as --json prints it.
func hostsJSONOf(hs []*hostPlan) hostsJSON {
	out := hostsJSON{Hosts: []hostJSON{}}
	for i, h := range hs {
		j := hostJSON{URI: h.uri, Rank: i + 1, Reachable: h.down == nil, Fits: h.fits(), Reason: h.why}
		if h.fits() {
			p, q := planJSONOf(h.pr), h.q
			j.Plan, j.Quality = &p, &q
			if i == 0 {
				out.Chosen = h.uri
			}
		}
		out.Hosts = append(out.Hosts, j)
	}
	return out
}

// hostsText is the ranking, a host to a few lines.
func hostsText(w io.Writer, hs []*hostPlan) error {
	var b strings.Builder
	fmt.Fprintf(&b, "libvirt hosts, best first:\n")
	for i, h := range hs {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, h.uri)
		if h.fits() {
			p := h.pr.Plan
			fmt.Fprintf(&b, "     fits on host node(s) %s: %s of memory and %d CPUs left there, distance %d (QEMU %s)\n",
				intList(p.HostNodes), memobj.FormatSize(h.q.MemoryLeft), h.q.CPUsLeft, h.q.MaxDistance, h.pr.QEMU)
		}
		fmt.Fprintf(&b, "     %s\n", h.why)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
