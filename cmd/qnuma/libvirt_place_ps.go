package main

// qnuma ps --libvirt: libvirt's running domains beside the VMs in qnuma's
// ledger, each with where libvirt holds it (its pins and nodeset) and, for
// a local daemon, its qemu's pid.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/topology"
)

// libvirtVMs is every running domain of the daemon at uri as `qnuma ps`
// lists a VM; its name is prefixed "libvirt:".
func (c *PsCmd) libvirtVMs() ([]psVM, error) {
	uri := c.Connect
	if uri == "" {
		uri = libvirthost.DefaultURI()
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
	var h *topology.Host
	local := libvirthost.IsLocal(uri)
	if local {
		h, err = topology.Read("/")
	} else {
		h, err = remoteHost(conn)
	}
	if err != nil {
		return nil, err
	}
	names, err := conn.ActiveDomains()
	if err != nil {
		return nil, err
	}
	vms := []psVM{}
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
			return nil, err
		}
		pl := p.Placed(h)
		vcpus := cpuset.New()
		for _, s := range p.VCPUPins {
			vcpus = vcpus.Union(s)
		}
		v := psVM{Name: "libvirt:" + n, HostNodes: p.Nodes.List(), VCPUs: p.VCPUs, MemoryBytes: p.MemoryBytes,
			NodeMemory: pl.MemoryBytes, NodeVCPUs: pl.VCPUs, VCPUCPUs: vcpus.String(), EmulatorCPUs: p.Emulator.String()}
		if local {
			v.PID = guestPID("/proc", n)
		}
		if v.HostNodes == nil {
			v.HostNodes = []int{}
		}
		vms = append(vms, v)
	}
	return vms, nil
}

// guestPID is the pid of the qemu that libvirt started for domain name
// (its command line has -name guest=NAME,...), 0 when none is found.
func guestPID(proc, name string) int {
	dirs, _ := os.ReadDir(proc)
	want := []byte("\x00guest=" + name + ",")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join(proc, d.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmd, []byte("\x00-name")) && bytes.Contains(cmd, want) {
			return pid
		}
	}
	return 0
}
