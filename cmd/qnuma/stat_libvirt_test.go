package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirtdtest"
	"github.com/qnuma/qnuma/topology"
)

func TestDomainHome(t *testing.T) {
	caps, err := os.ReadFile("../../libvirthost/testdata/caps-2node-smt.xml")
	if err != nil {
		t.Fatal(err)
	}
	host, err := libvirthost.ParseCapabilities(caps)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, xml string
		nodes     string
		vcpus     string
	}{
		{"nodeset and pins", `<numatune><memory mode='strict' nodeset='1'/></numatune><cputune><vcpupin vcpu='0' cpuset='4'/><vcpupin vcpu='1' cpuset='5-6'/></cputune>`, "[1]", "[[1] [1]]"},
		{"unbound, one pinned", `<cputune><vcpupin vcpu='0' cpuset='0'/></cputune>`, "[]", "[[0] []]"},
		{"cells", `<numatune><memnode cellid='0' mode='strict' nodeset='0'/><memnode cellid='1' mode='strict' nodeset='1'/></numatune><cpu><numa><cell id='0' cpus='0' memory='512' unit='MiB'/><cell id='1' cpus='1' memory='512' unit='MiB'/></numa></cpu>`, "[0 1]", "[[] []]"},
		{"a pin over both nodes", `<vcpu cpuset='3-4'>2</vcpu>`, "[]", "[[0 1] [0 1]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := "<domain><name>d</name><memory unit='MiB'>1024</memory>" + tc.xml
			if !strings.Contains(tc.xml, "<vcpu ") {
				x += "<vcpu>2</vcpu>"
			}
			p, err := libvirthost.ParsePins([]byte(x + "</domain>"))
			if err != nil {
				t.Fatal(err)
			}
			h := domainHome(p, host)
			if fmt.Sprint(h.Nodes) != tc.nodes || (tc.nodes == "[]") != (h.Nodes == nil) || fmt.Sprint(h.VCPUs) != tc.vcpus {
				t.Errorf("home %v (nil %v) vcpus %v, want %s %s", h.Nodes, h.Nodes == nil, h.VCPUs, tc.nodes, tc.vcpus)
			}
		})
	}
}

func TestStatLibvirtRefused(t *testing.T) {
	for uri, want := range map[string]string{
		fakeURI:    "must be on this host",
		"ftp:///y": "bad libvirt uri",
	} {
		c := &StatCmd{Libvirt: true, Connect: uri, StateDir: t.TempDir()}
		if err := c.run(context.Background(), &bytes.Buffer{}); err == nil || !IsUsage(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("--connect %s: %v, want exit 2 saying %q", uri, err, want)
		}
	}
}

// TestStatLibvirtReal samples a private libvirtd's running domain: its
// qemu found, its nodeset as home, its preallocated guest RAM on that
// node and its vCPU threads where libvirt pinned them.
func TestStatLibvirtReal(t *testing.T) {
	d := libvirtdtest.Start(t)
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	node := host.Nodes[0]
	cpu := node.CPUs.List()[0]
	x := strings.Replace(placeDomainXML("qnuma-stat", 2), "<iothreads>1</iothreads>", fmt.Sprintf(`<iothreads>1</iothreads>
  <memoryBacking><allocation mode='immediate'/></memoryBacking>
  <cputune><vcpupin vcpu='0' cpuset='%d'/><vcpupin vcpu='1' cpuset='%d'/></cputune>
  <numatune><memory mode='strict' nodeset='%d'/></numatune>`, cpu, cpu, node.ID), 1)
	p := filepath.Join(d.Dir, "stat.xml")
	if err := os.WriteFile(p, []byte(x), 0o600); err != nil {
		t.Fatal(err)
	}
	virsh := func(args ...string) {
		t.Helper()
		if out, err := d.Virsh(t, args...); err != nil {
			t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	virsh("define", p)
	defer virsh("undefine", "qnuma-stat")
	virsh("start", "--paused", "qnuma-stat")
	defer virsh("destroy", "qnuma-stat")
	pid, err := d.PID("qnuma-stat")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if err := (&StatCmd{StateDir: state}).run(context.Background(), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no running VM") {
		t.Fatalf("without --libvirt: %v, want no VM to sample", err)
	}
	var out bytes.Buffer
	if err := (&StatCmd{Libvirt: true, Connect: d.URI, JSON: true, StateDir: state}).run(context.Background(), &out); err != nil {
		t.Fatalf("stat --libvirt: %v", err)
	}
	var got []struct {
		statJSON
		HomeFrom string `json:"home_from"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != 1 {
		t.Fatalf("%v:\n%s", err, out.Bytes())
	}
	s := got[0]
	if s.Name != "libvirt:qnuma-stat" || s.PID != pid || fmt.Sprint(s.Home) != fmt.Sprint([]int{node.ID}) || !s.Ledger || s.HomeFrom != "libvirt" {
		t.Errorf("name %q pid %d (qemu %d) home %v from %q:\n%s", s.Name, s.PID, pid, s.Home, s.HomeFrom, out.Bytes())
	}
	if len(s.GuestRAM) != 1 || s.GuestRAM[0].Node != node.ID || s.GuestRAM[0].Bytes != 128<<20 || s.Local != 100 {
		t.Errorf("guest RAM %+v, local %.1f%%: want 128 MiB preallocated on node %d", s.GuestRAM, s.Local, node.ID)
	}
	if len(s.VCPUs) != 2 || s.VCPUs[0].Allowed != fmt.Sprint(cpu) || s.VCPUs[1].Allowed != fmt.Sprint(cpu) {
		t.Errorf("vcpus %+v, want both on cpu %d", s.VCPUs, cpu)
	}
	out.Reset()
	if err := (&StatCmd{Libvirt: true, Connect: d.URI, StateDir: state}).run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("libvirt:qnuma-stat (pid %d)  home node(s) %d (libvirt nodeset)", pid, node.ID); !strings.Contains(out.String(), want) {
		t.Errorf("text lacks %q:\n%s", want, out.String())
	}
}
