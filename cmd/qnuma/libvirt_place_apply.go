package main

// What `qnuma libvirt place` changes: worked out and checked against what
// libvirt allows before anything changes, then applied in an order that
// can be put back.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/domxml"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/memobj"
)

// placeChanges is everything `place` would change, checked, with what it
// replaces (to put back after a refusal).
type placeChanges struct {
	domain string
	live   bool
	// session: a qemu:///session daemon, which has no NUMA tuning (no
	// cgroups): the nodeset is left alone.
	session bool
	vcpus   []cpuset.CPUSet
	emu     cpuset.CPUSet
	ios     []libvirthost.IOThread
	// nodes is the new memory nodeset; nil leaves it as it is.
	nodes     *cpuset.CPUSet
	nodesNote string
	// xml is the new persistent definition; "" defines nothing.
	xml string

	oldVCPUs []cpuset.CPUSet
	oldEmu   cpuset.CPUSet
	oldIOs   []libvirthost.IOThread
	oldXML   string
}

// hostCPUs is the size of the daemon's cpumaps: one past the highest CPU.
func hostCPUs(pr *Prepared) int {
	l := pr.Host.OnlineCPUs.List()
	return l[len(l)-1] + 1
}

// checkLive works out the live changes and checks what libvirt would
// refuse; it changes nothing.
func (ch *placeChanges) checkLive(conn libvirthost.Conn, d *libvirthost.Shape, pr *Prepared) error {
	p := pr.Plan
	name := ch.domain
	if len(d.Cells) <= 1 && len(p.GuestNodes) > 1 {
		return badInput("--live: domain %q runs as one guest NUMA node, and the plan gives it %d: a running guest's NUMA layout cannot change; place it with --config and restart it; nothing changed", name, len(p.GuestNodes))
	}
	if n := len(d.Cells); n > 1 {
		for i, cell := range d.Cells {
			if i >= len(p.GuestNodes) || !cpuset.New(p.GuestNodes[i].VCPUs...).Equals(cell.CPUs) {
				return badInput("--live: domain %q runs with guest cell %d of vCPUs %s, and the plan puts other vCPUs in guest node %d: a running guest's NUMA layout cannot change; place it with --config and restart it; nothing changed", name, cell.ID, cell.CPUs, i)
			}
		}
	}
	hc := hostCPUs(pr)
	var err error
	if ch.oldVCPUs, err = conn.VCPUPins(name, len(p.VCPUs), hc); err != nil {
		return err
	}
	if len(ch.oldVCPUs) < len(p.VCPUs) {
		return fmt.Errorf("domain %q: libvirt reports %d vcpu pins for %d vcpus", name, len(ch.oldVCPUs), len(p.VCPUs))
	}
	if ch.oldEmu, err = conn.EmulatorPin(name, hc); err != nil {
		return err
	}
	if ch.oldIOs, err = conn.IOThreads(name, hc); err != nil {
		return err
	}
	numa, err := conn.NUMAParams(name)
	if err != nil {
		return err
	}
	for _, v := range p.VCPUs {
		ch.vcpus = append(ch.vcpus, v.HostCPUs)
	}
	ch.emu = p.EmulatorCPUs
	for _, io := range ch.oldIOs {
		// The I/O threads run where the emulator does, as --config writes it.
		ch.ios = append(ch.ios, libvirthost.IOThread{ID: io.ID, CPUs: p.EmulatorCPUs})
	}
	nodes := cpuset.New(p.HostNodes...)
	wantMode := libvirthost.ModeStrict
	switch p.Spec.Policy {
	case memobj.PolicyPreferred:
		wantMode = libvirthost.ModePreferred
	case memobj.PolicyInterleave:
		wantMode = libvirthost.ModeInterleave
	}
	switch {
	case ch.session:
		ch.nodesNote = "qemu:///session: libvirt has no NUMA tuning in session mode (no cgroups), so the memory stays where qemu put it; --config binds it from the next start"
	case numa.Nodes.Equals(nodes):
		ch.nodesNote = fmt.Sprintf("memory nodeset %s already (mode %s)", nodes, numa.Mode)
	case numa.Mode == libvirthost.ModeRestrictive:
		ch.nodes = &nodes
		ch.nodesNote = fmt.Sprintf("mode restrictive: nodeset %s → %s (cgroup cpuset.mems; the kernel migrates the pages)", nodesOrNone(numa.Nodes), nodes)
	case numa.Nodes.IsEmpty() && numa.Mode == libvirthost.ModeStrict && wantMode == libvirthost.ModeStrict:
		ch.nodes = &nodes
		ch.nodesNote = fmt.Sprintf("no <numatune> before: nodeset %s in mode strict (cgroup cpuset.mems); libvirt will not move it again while the domain runs", nodes)
	case numa.Nodes.IsEmpty():
		return badInput("--live: domain %q runs without a nodeset, and the plan wants mode %s: libvirt cannot change the mode of a running domain (it is %s); place it with --config and restart it; nothing changed", name, wantMode, numa.Mode)
	default:
		return badInput("--live: domain %q runs with <numatune> mode %s on nodes %s, and the plan puts it on nodes %s: libvirt refuses a new nodeset for a running domain in mode %s (QEMU binds its memory once, at start); place it with --config and restart it, or define it with <numatune><memory mode='restrictive'> to move it live; nothing changed",
			name, numa.Mode, numa.Nodes, nodes, numa.Mode)
	}
	ch.live = true
	return nil
}

func nodesOrNone(n cpuset.CPUSet) string {
	if n.IsEmpty() {
		return "none"
	}
	return n.String()
}

// checkConfig rewrites the persistent definition and validates it; it
// defines nothing.
func (ch *placeChanges) checkConfig(c *LibvirtPlaceCmd, d *libvirthost.Shape, pr *Prepared, old string) error {
	place, err := domxml.FromPlan(pr.Plan)
	if err != nil {
		return fromDomxml(err)
	}
	if d.Mode == string(domxml.ModeRestrictive) && place.NUMATune != nil && place.NUMATune.Memory != nil {
		// Kept: restrictive is what lets libvirt move the memory live.
		place.NUMATune.Memory.Mode = domxml.ModeRestrictive
		for i := range place.NUMATune.MemNodes {
			place.NUMATune.MemNodes[i].Mode = domxml.ModeRestrictive
		}
	}
	if d.DeviceBytes > 0 && len(place.Cells) == 0 {
		// libvirt wants guest cells for memory devices on x86, and a
		// one-node placement is written without cells.
		return badInput("domain %q has memory devices (<devices><memory>), which need guest NUMA cells, and the plan puts it on one host node, which qnuma writes without <cpu><numa>: give --guest-nodes 2 (or more), or remove the devices; nothing changed", ch.domain)
	}
	out, err := domxml.Rewrite([]byte(old), place)
	if err != nil {
		return fromDomxml(fmt.Errorf("domain %q: %w", ch.domain, err))
	}
	validate := c.validate
	if validate == nil {
		validate = virtXMLValidate
	}
	if err := validate(out); err != nil {
		return badInput("domain %q: the placed XML does not validate: %w; nothing changed", ch.domain, err)
	}
	ch.xml, ch.oldXML = string(out), old
	return nil
}

// virtXMLValidate checks a domain XML against libvirt's schema on this
// machine (libvirt-clients).
func virtXMLValidate(x []byte) error {
	bin, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		return fmt.Errorf("virt-xml-validate is not installed (apt-get install libvirt-clients): %w", err)
	}
	dir, err := os.MkdirTemp("", "qnuma-domain-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "domain.xml")
	if err := os.WriteFile(p, x, 0o600); err != nil {
		return err
	}
	out, err := exec.Command(bin, p, "domain").CombinedOutput()
	if err != nil {
		return fmt.Errorf("virt-xml-validate: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// apply makes the checked changes: pins, then the definition, then the
// nodeset (which cannot be put back where there was none). A failure puts
// back what was done; a refusal is then bad input (exit 2).
func (ch *placeChanges) apply(conn libvirthost.Conn) error {
	var undo []func() error
	fail := func(err error) error {
		var back []error
		for i := len(undo) - 1; i >= 0; i-- {
			if e := undo[i](); e != nil {
				back = append(back, e)
			}
		}
		if len(back) > 0 {
			return fmt.Errorf("%w; and putting back what was already changed failed: %w", err, errors.Join(back...))
		}
		if errors.Is(err, libvirthost.ErrRefused) {
			return badInput("domain %q: %w; what was applied before it was put back, so nothing changed", ch.domain, err)
		}
		return fmt.Errorf("domain %q: %w; what was applied before it was put back", ch.domain, err)
	}
	name := ch.domain
	if ch.live {
		for v, cpus := range ch.vcpus {
			if err := conn.PinVCPU(name, v, cpus); err != nil {
				return fail(err)
			}
			old := ch.oldVCPUs[v]
			undo = append(undo, func() error { return conn.PinVCPU(name, v, old) })
		}
		if err := conn.PinEmulator(name, ch.emu); err != nil {
			return fail(err)
		}
		undo = append(undo, func() error { return conn.PinEmulator(name, ch.oldEmu) })
		for i, io := range ch.ios {
			if err := conn.PinIOThread(name, io.ID, io.CPUs); err != nil {
				return fail(err)
			}
			old := ch.oldIOs[i]
			undo = append(undo, func() error { return conn.PinIOThread(name, old.ID, old.CPUs) })
		}
	}
	if ch.xml != "" {
		if err := conn.Define(ch.xml); err != nil {
			return fail(err)
		}
		undo = append(undo, func() error { return conn.Define(ch.oldXML) })
	}
	if ch.live && ch.nodes != nil {
		if err := conn.SetNUMANodeset(name, *ch.nodes); err != nil {
			return fail(err)
		}
	}
	return nil
}
