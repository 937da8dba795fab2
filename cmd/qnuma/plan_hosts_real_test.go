package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirtdtest"
	"github.com/qnuma/qnuma/topology"
)

// TestPlanHostsReal ranks a private libvirtd reached two ways, on its unix
// socket (local: sysfs and the ledger) and over qemu+tcp on loopback
// (remote: libvirt's capabilities and free memory), and a port where none
// listens: both plans count the running domain's pinned CPU, the dead one
// is reported, and with only dead ones the exit is 2.
func TestPlanHostsReal(t *testing.T) {
	d := libvirtdtest.StartWith(t, libvirtdtest.Options{TCP: true})
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	if host.OnlineCPUs.Size() < 2 {
		t.Skip("SKIP: with one CPU the domain's pinned CPU leaves none to plan on")
	}
	busyCPU := host.OnlineCPUs.List()[0]
	virsh := func(args ...string) {
		t.Helper()
		if out, err := d.Virsh(t, args...); err != nil {
			t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	x := strings.Replace(placeDomainXML("qnuma-busy", 1), "<vcpu placement='static'>", fmt.Sprintf("<vcpu placement='static' cpuset='%d'>", busyCPU), 1)
	p := filepath.Join(d.Dir, "busy.xml")
	if err := os.WriteFile(p, []byte(x), 0o600); err != nil {
		t.Fatal(err)
	}
	virsh("define", p)
	defer virsh("undefine", "qnuma-busy")
	virsh("start", "--paused", "qnuma-busy")
	defer virsh("destroy", "qnuma-busy")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("qemu+tcp://%s/system", l.Addr())
	l.Close()

	out, err := planHosts(t, nil, "--json", "--cpus-dedicated", "--vcpus", "1", "--memory", "64M",
		"--connect", dead, "--connect", d.TCPURI, "--connect", d.URI)
	if err != nil {
		t.Fatalf("plan --connect: %v\n%s", err, out)
	}
	r := decodeHosts(t, out)
	if len(r.Hosts) != 3 || (r.Chosen != d.URI && r.Chosen != d.TCPURI) {
		t.Fatalf("chosen %q:\n%s", r.Chosen, out)
	}
	conn, err := libvirthost.Dial(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	major, minor, err := conn.HypervisorVersion()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range r.Hosts[:2] {
		if !h.Fits || !h.Reachable || h.Plan == nil {
			t.Fatalf("host %s: %+v", h.URI, h)
		}
		for _, v := range h.Plan.VCPUs {
			if c, err := cpulist.Parse(v.HostCPUs); err != nil || c.Contains(busyCPU) {
				t.Errorf("host %s: dedicated vCPU %d on %s, which qnuma-busy holds", h.URI, v.VCPU, v.HostCPUs)
			}
		}
		if !strings.Contains(strings.Join(h.Plan.Reasons, " "), fmt.Sprintf("qnuma-busy (CPUs %d", busyCPU)) {
			t.Errorf("host %s: reasons do not name qnuma-busy: %q", h.URI, h.Plan.Reasons)
		}
		if !strings.HasPrefix(h.Plan.QEMUVersion, fmt.Sprintf("%d.%d", major, minor)) {
			t.Errorf("host %s: rendered for QEMU %s, the daemon runs %d.%d", h.URI, h.Plan.QEMUVersion, major, minor)
		}
		if len(h.Plan.Rooms) != len(host.Nodes) || h.Plan.Rooms[0].MemoryBytes == 0 || h.Plan.Rooms[0].MemoryBytes > host.Nodes[0].MemTotal {
			t.Errorf("host %s: rooms %+v", h.URI, h.Plan.Rooms)
		}
	}
	if h := r.Hosts[2]; h.URI != dead || h.Reachable || h.Fits || !strings.HasPrefix(h.Reason, "unreachable: ") {
		t.Errorf("the dead host: %+v", h)
	}

	_, err = planHosts(t, nil, "--vcpus", "1", "--memory", "64M", "--connect", dead)
	if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "no libvirt host answered") {
		t.Errorf("only a dead host: %v, want exit 2", err)
	}

	// qnuma libvirt place with the same three: the domain's definition is
	// placed on the host chosen, around qnuma-busy.
	p = filepath.Join(d.Dir, "two.xml")
	if err := os.WriteFile(p, []byte(placeDomainXML("qnuma-two", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	virsh("define", p)
	defer virsh("undefine", "qnuma-two")
	state := t.TempDir()
	out, err = libvirtPlace(t, nil, nil, "qnuma-two", "--config", "--json", "--cpus-dedicated", "--state-dir", state,
		"--connect", dead, "--connect", d.TCPURI, "--connect", d.URI)
	if err != nil {
		t.Fatalf("place --connect x3: %v\n%s", err, out)
	}
	var pr struct {
		placeResult
		URI   string           `json:"uri"`
		Hosts []map[string]any `json:"hosts"`
	}
	if err := json.Unmarshal(out, &pr); err != nil {
		t.Fatal(err)
	}
	if (pr.URI != d.URI && pr.URI != d.TCPURI) || len(pr.Hosts) != 3 || pr.Hosts[0]["uri"] != pr.URI || pr.Hosts[2]["uri"] != dead || !pr.Applied.Config {
		t.Fatalf("placed at %s; hosts %v; applied %+v", pr.URI, pr.Hosts, pr.Applied)
	}
	after, err := d.Virsh(t, "dumpxml", "--inactive", "qnuma-two")
	if err != nil {
		t.Fatal(err)
	}
	v := pr.VCPUs[0]
	if c, _ := cpulist.Parse(v.HostCPUs); c.Contains(busyCPU) || !strings.Contains(string(after), fmt.Sprintf("<vcpupin vcpu='0' cpuset='%s'/>", v.HostCPUs)) {
		t.Errorf("vCPU 0 on %s (qnuma-busy holds %d); defined:\n%s", v.HostCPUs, busyCPU, after)
	}
	_, err = libvirtPlace(t, nil, nil, "qnuma-none", "--config", "--state-dir", state, "--connect", d.TCPURI, "--connect", d.URI)
	if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "no host given can take it") {
		t.Errorf("a domain on neither: %v, want exit 2", err)
	}
}
