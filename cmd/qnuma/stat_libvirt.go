package main

// qnuma stat --libvirt: libvirt's running domains sampled beside qnuma's
// own VMs, each domain's qemu found by its -name guest=NAME, and its
// <numatune> nodeset (and each vCPU's pinned CPUs' nodes) as home.

import (
	"errors"
	"fmt"
	"slices"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/topology"
)

// libvirtTargets is every running domain of the local daemon as a target.
func (c *StatCmd) libvirtTargets(host *topology.Host) ([]statTarget, error) {
	uri := c.Connect
	if uri == "" {
		uri = libvirthost.DefaultURI()
	}
	if !libvirthost.IsLocal(uri) {
		return nil, badInput("--connect %s: qnuma stat reads each domain's qemu in /proc, so the daemon must be on this host: run qnuma stat --libvirt there", uri)
	}
	dial := c.dial
	if dial == nil {
		dial = func(u string) (libvirthost.Conn, error) { return libvirthost.Dial(u) }
	}
	conn, err := dial(uri)
	if errors.Is(err, libvirthost.ErrBadURI) {
		return nil, badInput("--connect: %w", err)
	}
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	names, err := conn.ActiveDomains()
	if err != nil {
		return nil, err
	}
	var out []statTarget
	for _, n := range names {
		x, err := conn.DomainXML(n, false)
		if errors.Is(err, libvirthost.ErrNoDomain) {
			continue // stopped since the list
		}
		if err != nil {
			return nil, err
		}
		p, err := libvirthost.ParsePins([]byte(x))
		if err != nil {
			return nil, fmt.Errorf("libvirt's running domain %q: %w", n, err)
		}
		pid := guestPID("/proc", n)
		if pid == 0 {
			return nil, fmt.Errorf("libvirt's running domain %q: no qemu with -name guest=%s, in /proc (is the daemon at %s in another pid namespace?)", n, n, uri)
		}
		out = append(out, statTarget{name: "libvirt:" + n, pid: pid, home: domainHome(p, host), homeFrom: "libvirt"})
	}
	return out, nil
}

// domainHome is where a domain is meant to be: its memory nodeset (with
// each <memnode>'s nodes), and for each vCPU pinned the nodes of its CPUs.
// A domain bound nowhere has no home nodes (nil: the node holding most of
// its guest RAM is taken), and its unpinned vCPUs the domain's.
func domainHome(p *libvirthost.Pins, host *topology.Host) numastat.Home {
	nodes := p.Nodes
	for _, cn := range p.CellNodes {
		nodes = nodes.Union(cn)
	}
	var h numastat.Home
	if !nodes.IsEmpty() {
		h.Nodes = nodes.List()
	}
	nodeOf := map[int]int{}
	for _, c := range host.CPUs {
		nodeOf[c.ID] = c.Node
	}
	for v := 0; v < p.VCPUs; v++ {
		var vn []int
		for _, c := range p.VCPUPins[v].List() {
			if n, ok := nodeOf[c]; ok && !slices.Contains(vn, n) {
				vn = append(vn, n)
			}
		}
		slices.Sort(vn)
		h.VCPUs = append(h.VCPUs, vn)
	}
	return h
}
