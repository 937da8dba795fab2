package main

// qnuma libvirt place (issue 14): a libvirt domain planned on its host and
// placed through the daemon (libvirthost over go-libvirt): its persistent
// definition rewritten (--config) and, while it runs, its threads pinned
// and its memory nodeset set (--live). Everything is checked before
// anything changes; a change libvirt refuses half-way puts back what was
// already changed.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
)

// LibvirtPlaceCmd is `qnuma libvirt place DOMAIN`.
type LibvirtPlaceCmd struct {
	Domain    string `arg:"" name:"domain" help:"The libvirt domain to place, by name (virsh list --all)."`
	SpecFlags `embed:""`
	Live      bool     `name:"live" help:"Place the running domain: pin every vCPU, the emulator and the I/O threads, and set its memory nodeset where libvirt allows it while it runs."`
	Config    bool     `name:"config" help:"Rewrite the domain's persistent definition with the placement (numatune, cputune pins, cpu numa cells and topology), validated, and define it; the domain gets it at its next start."`
	JSON      bool     `name:"json" help:"Print the plan as qnuma plan --json does, with the domain, the URI and what was applied."`
	Connect   []string `name:"connect" sep:"none" placeholder:"URI" help:"The libvirt daemon: qemu:///system (root's default), qemu:///session (a user's), qemu:///system?socket=PATH, or a remote one such as qemu+tcp://HOST/system or qemu+ssh://USER@HOST/system. Given more than once: the domain is placed on the host it fits best, as qnuma plan --connect ranks them (it must exist there)."`
	StateDir  string   `name:"state-dir" placeholder:"DIR" help:"Ledger of the VMs qnuma placed on this host, whose room they hold (default: /run/qnuma for root, else $XDG_RUNTIME_DIR/qnuma). Read only; not read for a remote daemon."`

	// hosts is the ranking placeBest chose by, for --json.
	hosts []hostJSON
	// dial connects to the daemon; nil is libvirthost.Dial (tests give a fake).
	dial func(uri string) (libvirthost.Conn, error)
	// validate checks a domain XML against libvirt's schema; nil is
	// virt-xml-validate.
	validate func(xml []byte) error
}

// Help is shown by `qnuma libvirt place --help`.
func (c *LibvirtPlaceCmd) Help() string {
	return `Plans the domain's vCPUs and memory (its <vcpu>, <memory>, <cpu><topology>
and hugepages are the spec) on the daemon's host, around every other running
domain's pins and nodesets and the VMs in qnuma's ledger, and applies it:

  --config  the persistent definition gets <numatune> (memory, and a
            <memnode> per guest cell), <cputune> (vcpupin, emulatorpin,
            iothreadpin) and, for a VM wider than a node, <cpu><numa> cells
            with a <cpu><topology> that matches; every other byte of the
            XML is kept. It is validated (virt-xml-validate, then libvirt's
            own schema check) and defined; the domain runs with it from its
            next start.
  --live    the running domain: every vCPU pinned, the emulator and I/O
            threads pinned, and the memory nodeset set (virsh numatune
            --live), which libvirt allows only
              - once, on a domain without <numatune>,
              - always, in mode restrictive (cgroups alone restrict),
              - never to other nodes in mode strict, preferred or
                interleave: QEMU binds its memory once, at start. Then
                nothing is changed: place it with --config and restart it,
                or define it with <numatune><memory mode='restrictive'>.
            The guest's NUMA layout cannot change while it runs: a domain
            without <cpu><numa> is planned on one host node.

Without --live or --config nothing is changed: the plan and the changes are
printed. A domain that does not exist, one that does not fit, or a change
libvirt refuses exits 2 and changes nothing (what was applied before a
refusal is put back).

The host is read from sysfs for a local daemon, and from libvirt
(capabilities, free memory and free hugepages per cell) for a remote one.

Examples:
  qnuma libvirt place vm1                       what would change
  qnuma libvirt place vm1 --config              for its next start
  qnuma libvirt place vm1 --live --config --cpus-dedicated
  qnuma libvirt place vm1 --live --json --connect qemu+tcp://host7/system
  qnuma libvirt place vm1 --config --connect qemu+ssh://host7/system --connect qemu+ssh://host8/system

With --connect given more than once the domain is planned on each of those
hosts where it exists, the hosts are ranked as qnuma plan --connect ranks
them (fits, then fewest nodes, most room left, distance), and the best is
placed; the ranking is printed first (--json: under "hosts"). A host that
does not answer, lacks the domain, or cannot take it is reported; when none
can, qnuma exits 2 and changes nothing.`
}

func (c *LibvirtPlaceCmd) Run() error {
	return c.place(context.Background(), os.Stdout)
}

// checkFlags refuses spec flags that the domain itself says.
func (c *LibvirtPlaceCmd) checkFlags(local bool) error {
	f := &c.SpecFlags
	for _, x := range []struct {
		given      bool
		flag, elem string
	}{
		{f.VCPUs != 0, "--vcpus", "<vcpu> (virsh setvcpus)"},
		{f.Memory != "", "--memory", "<memory> (virsh setmaxmem)"},
		{f.MaxVCPUs != 0, "--max-vcpus", "<vcpu> (its maximum; virsh setvcpus --maximum)"},
		{f.MaxMemory != "", "--max-memory", "<maxMemory>"},
		{f.DomainXML != "", "--domain-xml", "its own XML, read from libvirt"},
		{f.BindOnly, "--bind-only", "its layout; libvirt writes its own QEMU command line"},
		{len(f.QEMU) > 0, "a QEMU command line", "its devices; libvirt writes the command line"},
		{f.Root != "/", "--root", "the host: the daemon's own (sysfs, or libvirt's capabilities when remote)"},
		{f.NearDevice != "" && !local, "--near-device", "nothing qnuma can look up on a remote host"},
	} {
		if x.given {
			return badInput("%s: the domain %q says %s: drop it", x.flag, c.Domain, x.elem)
		}
	}
	return nil
}

func (c *LibvirtPlaceCmd) place(ctx context.Context, w io.Writer) error {
	if len(c.Connect) > 1 {
		return c.placeBest(ctx, w) // libvirt_place_hosts.go
	}
	uri := libvirthost.DefaultURI()
	if len(c.Connect) == 1 {
		uri = c.Connect[0]
	}
	if err := c.checkFlags(libvirthost.IsLocal(uri)); err != nil {
		return err
	}
	conn, err := c.dialURI(uri)
	if err != nil {
		return err
	}
	defer conn.Close()
	po, err := c.planOn(ctx, conn, uri)
	if err != nil {
		return err
	}
	return c.applyOn(w, po)
}

// dialURI connects to the daemon of uri; a URI qnuma cannot dial is bad
// input.
func (c *LibvirtPlaceCmd) dialURI(uri string) (libvirthost.Conn, error) {
	dial := c.dial
	if dial == nil {
		dial = func(u string) (libvirthost.Conn, error) { return libvirthost.Dial(u) }
	}
	conn, err := dial(uri)
	if errors.Is(err, libvirthost.ErrBadURI) {
		return nil, badInput("--connect: %w", err)
	}
	return conn, err
}

// placeOn is the domain planned on one daemon's host, every change
// checked and ready to apply.
type placeOn struct {
	uri  string
	conn libvirthost.Conn
	st   libvirthost.State
	pr   *Prepared
	ch   *placeChanges
}

// planOn plans the domain on the host of conn and checks every change it
// would make; nothing is changed.
func (c *LibvirtPlaceCmd) planOn(ctx context.Context, conn libvirthost.Conn, uri string) (*placeOn, error) {
	local := libvirthost.IsLocal(uri)
	st, err := conn.DomainState(c.Domain)
	if errors.Is(err, libvirthost.ErrNoDomain) {
		return nil, badInput("domain %q: libvirt at %s has %w (virsh -c %s list --all); nothing changed", c.Domain, uri, libvirthost.ErrNoDomain, uri)
	}
	if err != nil {
		return nil, err
	}
	if c.Live && !st.Active() {
		return nil, badInput("--live: domain %q is %s, not running: start it, or place its definition with --config; nothing changed", c.Domain, st)
	}
	if c.Config {
		persistent, err := conn.Persistent(c.Domain)
		if err != nil {
			return nil, err
		}
		if !persistent {
			return nil, badInput("--config: domain %q is transient (it has no definition to rewrite; defining one would make it persistent): place it --live, or define it first (virsh dumpxml %s > dom.xml; virsh define dom.xml); nothing changed", c.Domain, c.Domain)
		}
	}
	var liveXML, configXML string
	if st.Active() {
		if liveXML, err = conn.DomainXML(c.Domain, false); err != nil {
			return nil, err
		}
	}
	if c.Config || !st.Active() {
		if configXML, err = conn.DomainXML(c.Domain, true); err != nil {
			return nil, err
		}
	}
	src := configXML
	if c.Live || src == "" {
		src = liveXML
	}
	d, err := libvirthost.ParseShape([]byte(src))
	if err != nil {
		return nil, badInput("domain %q: %w", c.Domain, err)
	}
	if c.Live && c.Config {
		if err := sameShape(c.Domain, liveXML, configXML); err != nil {
			return nil, err
		}
	}

	f, err := c.specFlags(d, conn)
	if err != nil {
		return nil, err
	}
	pr, err := f.Gather(ctx)
	if err != nil {
		return nil, err
	}
	// libvirt starts vCPUs 0 to current-1 (<vcpu current=>), whatever
	// their guest nodes.
	pr.Spec.LowestVCPUsAtStart = true
	if !local {
		if pr.Host, err = remoteHost(conn); err != nil {
			return nil, err
		}
	}
	if d.Sockets > 0 {
		topo, err := memobj.SMP{CPUs: d.VCPUs, MaxCPUs: d.MaxVCPUs, Sockets: d.Sockets, Dies: d.Dies, Cores: d.Cores, Threads: d.Threads}.Resolve()
		if err != nil {
			return nil, badInput("domain %q: <vcpu> and <cpu><topology>: %w", c.Domain, err)
		}
		pr.Spec.Topology = &topo
	}
	var placed []plan.Placed
	if local {
		pc := &PlanCmd{SpecFlags: f, StateDir: c.StateDir}
		if placed, err = pc.placed(ctx); err != nil {
			return nil, err
		}
	}
	if local && st.Active() {
		// Its own pages are room for itself where they already are.
		for n, b := range domainResident(c.Domain) {
			for i := range pr.Host.Nodes {
				if pr.Host.Nodes[i].ID == n {
					pr.Host.Nodes[i].MemFree += b
				}
			}
		}
	}
	others, note, err := otherDomains(conn, c.Domain, pr, local)
	if err != nil {
		return nil, err
	}
	placed = append(placed, others...)
	if err := pr.PlanFor(placed); err != nil {
		return nil, fmt.Errorf("domain %q: %w; nothing changed", c.Domain, err)
	}
	if note != "" {
		pr.Plan.Reasons = append(pr.Plan.Reasons, note)
	}

	ch := &placeChanges{domain: c.Domain, session: libvirthost.IsSession(uri)}
	if c.Live || !c.Config {
		if st.Active() {
			if err := ch.checkLive(conn, d, pr); err != nil {
				return nil, err
			}
		}
	}
	if c.Config || !c.Live {
		if configXML == "" {
			configXML = liveXML
		}
		if err := ch.checkConfig(c, d, pr, configXML); err != nil {
			return nil, err
		}
	}
	return &placeOn{uri: uri, conn: conn, st: st, pr: pr, ch: ch}, nil
}

// applyOn makes the checked changes (with --live or --config) and prints
// them.
func (c *LibvirtPlaceCmd) applyOn(w io.Writer, po *placeOn) error {
	applied := placeAppliedJSON{Live: c.Live, Config: c.Config}
	if c.Live || c.Config {
		if err := po.ch.apply(po.conn); err != nil {
			return err
		}
	}
	applied.fill(po.ch)
	return c.print(w, po.uri, po.st, po.pr, applied)
}

// sameShape refuses --live --config for a domain whose running vCPUs or
// memory differ from its definition's: one plan cannot be both.
func sameShape(name, liveXML, configXML string) error {
	a, errA := libvirthost.ParseShape([]byte(liveXML))
	b, errB := libvirthost.ParseShape([]byte(configXML))
	if errA != nil || errB != nil {
		return badInput("domain %q: %w", name, errors.Join(errA, errB))
	}
	if a.VCPUs != b.VCPUs || a.MaxVCPUs != b.MaxVCPUs || a.MemoryBytes != b.MemoryBytes {
		return badInput("domain %q runs with %d vCPUs and %s, and its definition says %d and %s: place them one at a time (--live, then --config); nothing changed",
			name, a.VCPUs, memobj.FormatSize(a.MemoryBytes), b.VCPUs, memobj.FormatSize(b.MemoryBytes))
	}
	return nil
}

// specFlags is the command's spec flags with what the domain says: its
// vCPUs (and their maximum), memory, hugepages, preallocation and mode,
// and the daemon's QEMU version.
func (c *LibvirtPlaceCmd) specFlags(d *libvirthost.Shape, conn libvirthost.Conn) (SpecFlags, error) {
	f := c.SpecFlags
	f.VCPUs = d.VCPUs
	if d.MaxVCPUs > d.VCPUs {
		f.MaxVCPUs = d.MaxVCPUs
	}
	boot := d.BootBytes()
	if boot == 0 || boot%1024 != 0 {
		return f, badInput("domain %q: its boot memory is %d bytes: want a whole number of KiB, more than none", c.Domain, boot)
	}
	f.Memory = fmt.Sprintf("%dK", boot>>10)
	if d.Hugepages && f.Hugepages == "" {
		sizes := map[uint64]bool{}
		for _, p := range d.PageSizes {
			sizes[p] = true
		}
		if len(sizes) != 1 || sizes[0] {
			return f, badInput("domain %q is backed by hugepages of the host's default size or of several sizes: give the one size with --hugepages SIZE (2M, 1G)", c.Domain)
		}
		for s := range sizes {
			f.Hugepages = fmt.Sprintf("%dK", s>>10)
		}
	}
	if d.Immediate {
		f.Prealloc = true
	}
	if f.Policy == "bind" && (d.Mode == "preferred" || d.Mode == "interleave") {
		f.Policy = d.Mode
	}
	if c.Live && f.GuestNodes == "auto" {
		// The guest's NUMA layout is fixed while it runs.
		f.GuestNodes = fmt.Sprint(max(1, len(d.Cells)))
	}
	if f.QEMUVersion == "" {
		major, minor, err := conn.HypervisorVersion()
		if err != nil {
			return f, err
		}
		f.QEMUVersion = fmt.Sprintf("%d.%d", major, minor)
	}
	return f, nil
}

// remoteHost is the daemon's host as libvirt describes it.
func remoteHost(conn libvirthost.Conn) (*topology.Host, error) {
	caps, err := conn.Capabilities()
	if err != nil {
		return nil, err
	}
	h, err := libvirthost.ParseCapabilities([]byte(caps))
	if err != nil {
		return nil, err
	}
	if err := libvirthost.FillFree(conn, h); err != nil {
		return nil, err
	}
	return h, nil
}

// otherDomains is every other running domain as a VM placed on the host,
// and a sentence naming them for the plan's reasons.
func otherDomains(conn libvirthost.Conn, self string, pr *Prepared, local bool) ([]plan.Placed, string, error) {
	names, err := conn.ActiveDomains()
	if err != nil {
		return nil, "", err
	}
	var out []plan.Placed
	var said []string
	for _, n := range names {
		if n == self {
			continue
		}
		x, err := conn.DomainXML(n, false)
		if errors.Is(err, libvirthost.ErrNoDomain) {
			continue // it stopped and went away since the list
		}
		if err != nil {
			return nil, "", err
		}
		p, err := libvirthost.ParsePins([]byte(x))
		if err != nil {
			return nil, "", fmt.Errorf("libvirt's running domain %q: %w", n, err)
		}
		pl := p.Placed(pr.Host)
		if local {
			// What its qemu already holds is gone from the free memory:
			// only the rest of its promise is still to be taken.
			pl.ResidentBytes = domainResident(n)
		}
		out = append(out, pl)
		what := "unpinned"
		if !pl.CPUs.IsEmpty() {
			what = "CPUs " + pl.CPUs.String()
		}
		if !p.Nodes.IsEmpty() {
			what += ", memory on nodes " + p.Nodes.String()
		}
		said = append(said, fmt.Sprintf("%s (%s)", n, what))
	}
	if len(said) == 0 {
		return out, "", nil
	}
	return out, fmt.Sprintf("libvirt's other running domains count as taken: %s.", strings.Join(said, "; ")), nil
}

// domainResident is the guest RAM a local domain's qemu holds per host
// node (ledger.ResidentOf, as for qnuma's own VMs); nil when its qemu is
// not found or cannot be read, and then its whole promise counts.
func domainResident(name string) map[int]uint64 {
	pid := guestPID("/proc", name)
	if pid == 0 {
		return nil
	}
	r, err := ledger.ResidentOf(pid)
	if err != nil {
		return nil
	}
	return r
}
