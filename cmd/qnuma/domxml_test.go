package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/domxml"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemucmd"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
	"github.com/qnuma/qnuma/topology/topotest"
)

var updateDomain = flag.Bool("update-domain", false, "rewrite the golden plans of testdata/domxml")

// domainXMLs is every domain of the golden tests: domxml's own testdata
// (less its HMAT one, see below) and this package's.
func domainXMLs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, glob := range []string{"../../domxml/testdata/*.xml", "testdata/domxml/*.xml"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	// domxml's HMAT domain gives a bandwidth QEMU refuses (TestDomainXMLRefused);
	// testdata/domxml/hmat-six-cells-mib.xml is it in whole MiB/s.
	out = slices.DeleteFunc(out, func(p string) bool { return strings.HasSuffix(p, "domxml/testdata/hmat-six-cells.xml") })
	if len(out) < 10 {
		t.Fatalf("found %d domain XMLs: %v", len(out), out)
	}
	return out
}

func domainName(path string) string { return strings.TrimSuffix(filepath.Base(path), ".xml") }

// TestDomainXMLGolden plans every domain on a 4-node host (topotest.SNC2)
// and compares the plan, reasons and QEMU arguments with the golden text.
func TestDomainXMLGolden(t *testing.T) {
	root := topotest.SNC2().Write(t)
	for _, x := range domainXMLs(t) {
		t.Run(domainName(x), func(t *testing.T) {
			out, err := planOut(t, "--root", root, "--qemu-version", "7.2", "--domain-xml", x)
			if err != nil {
				t.Fatalf("qnuma plan --domain-xml %s: %v", x, err)
			}
			golden := filepath.Join("testdata", "domxml", domainName(x)+".plan.txt")
			if *updateDomain {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update-domain to write it)", err)
			}
			if out != string(want) {
				t.Errorf("qnuma plan --domain-xml %s:\n%s\nwant (%s):\n%s", x, out, golden, want)
			}
		})
	}
}

// domainPlanJSON is what the QEMU test reads of `qnuma plan --json`.
type domainPlanJSON struct {
	QEMUArgs   []string        `json:"qemu_args"`
	GuestNodes []guestNodeJSON `json:"guest_nodes"`
	VCPUs      []vcpuJSON      `json:"vcpus"`
	Hotplug    []vcpuJSON      `json:"hotplug_vcpus"`
	IOThreads  []iothreadJSON  `json:"iothreads"`
}

// TestDomainXMLInQEMU starts every domain's rendered command line in the
// real QEMU 7.2, paused, and checks over QMP that each vCPU is on its
// planned guest node with its planned socket, die, core and thread, and
// each backend has its size, policy and share. The plans are for a 4-node
// host: as in plan's TestRenderedPlansInQEMU, the host nodes are rewritten
// to node 0 (QEMU's mbind fails on nodes this host lacks), and hugepages
// this host has none of are first shown refused at mapping, then dropped.
func TestDomainXMLInQEMU(t *testing.T) {
	qemutest.Require(t)
	root := topotest.SNC2().Write(t)
	for _, x := range domainXMLs(t) {
		t.Run(domainName(x), func(t *testing.T) {
			out, err := planOut(t, "--json", "--root", root, "--qemu-version", "7.2", "--domain-xml", x)
			if err != nil {
				t.Fatalf("qnuma plan --domain-xml %s: %v", x, err)
			}
			var pj domainPlanJSON
			if err := json.Unmarshal([]byte(out), &pj); err != nil {
				t.Fatal(err)
			}
			c, err := qemucmd.Parse(pj.QEMUArgs)
			if err != nil {
				t.Fatalf("parse rendered %q: %v", pj.QEMUArgs, err)
			}
			want := map[string]qemucmd.Backend{}
			huge := false
			for i, a := range c.Args {
				b, ok := a.Opt.(qemucmd.Backend)
				if !ok {
					continue
				}
				want[b.ID] = b
				if b.HasHostNodes {
					b.HostNodes = cpuset.New(0)
				}
				c.Args[i] = b.Arg()
				huge = huge || (b.HugeTLB != nil && *b.HugeTLB)
			}
			args := c.Argv()[1:]
			if huge {
				// This host has no free hugepages of the domain's sizes:
				// QEMU takes the syntax and fails mapping them.
				if _, err := qemutest.Start(t, args...); err != nil && !strings.Contains(err.Error(), "backing store") {
					t.Errorf("hugepage backends: QEMU refused them with %v; want it past the syntax, failing to map the pages", err)
				}
				for i, a := range c.Args {
					if b, ok := a.Opt.(qemucmd.Backend); ok && b.HugeTLB != nil {
						b.HugeTLB, b.HugeTLBSize, b.Prealloc, b.PreallocThreads = nil, 0, nil, nil
						c.Args[i] = b.Arg()
					}
				}
				args = c.Argv()[1:]
			}
			vm, err := qemutest.Start(t, args...)
			if err != nil {
				t.Fatalf("QEMU refused the rendered command line: %v", err)
			}
			var cpus []qmp.CPU
			if err := vm.Execute("query-cpus-fast", nil, &cpus); err != nil {
				t.Fatal(err)
			}
			if len(cpus) != len(pj.VCPUs) {
				t.Errorf("QEMU has %d vCPUs, the plan %d", len(cpus), len(pj.VCPUs))
			}
			for _, cpu := range cpus {
				if cpu.CPUIndex >= len(pj.VCPUs) {
					continue
				}
				v := pj.VCPUs[cpu.CPUIndex]
				p := cpu.Props
				got := [4]int{deref(p.NodeID), deref(p.SocketID), deref(p.CoreID), deref(p.ThreadID)}
				w := [4]int{v.GuestNode, v.Socket, v.Core, v.Thread}
				if !c.Has("numa") {
					w[0] = -1 // a guest without NUMA: no node-id
				}
				if got != w {
					t.Errorf("vCPU %d: QEMU has node/socket/core/thread %v, the plan %v", cpu.CPUIndex, got, w)
				}
			}
			// Hotpluggable vCPUs not present at start: QEMU's slot for each
			// is on the planned guest node.
			var slots []struct {
				Props   qmp.CPUProps `json:"props"`
				QOMPath string       `json:"qom-path"`
			}
			if err := vm.Execute("query-hotpluggable-cpus", nil, &slots); err != nil {
				t.Fatal(err)
			}
			for _, v := range pj.Hotplug {
				found := false
				for _, sl := range slots {
					p := sl.Props
					if sl.QOMPath == "" && deref(p.SocketID) == v.Socket && deref(p.CoreID) == v.Core && deref(p.ThreadID) == v.Thread {
						found = true
						node := v.GuestNode
						if !c.Has("numa") {
							node = -1 // a guest without NUMA: no node-id
						}
						if deref(p.NodeID) != node {
							t.Errorf("hotpluggable vCPU %d: QEMU's slot is on node %d, want %d", v.VCPU, deref(p.NodeID), node)
						}
					}
				}
				if !found {
					t.Errorf("hotpluggable vCPU %d (socket %d core %d thread %d): QEMU has no empty slot for it", v.VCPU, v.Socket, v.Core, v.Thread)
				}
			}
			devs, err := vm.Memdevs()
			if err != nil {
				t.Fatal(err)
			}
			// The guest cells' share, from the domain itself (memAccess,
			// <access>), not only from the rendered line.
			data, err := os.ReadFile(x)
			if err != nil {
				t.Fatal(err)
			}
			dom, err := domxml.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range devs {
				id := -1
				if d.ID == "pc.ram" {
					id = 0
				}
				fmt.Sscanf(d.ID, "ram-node%d", &id)
				if id >= 0 && d.Share != (dom.Access(id) == domxml.AccessShared) {
					t.Errorf("backend %s: QEMU has share %t, the domain's cell %d is %s", d.ID, d.Share, id, dom.Access(id))
				}
			}
			if len(devs) != len(want) {
				t.Errorf("QEMU has %d memory backends, the rendered line %d", len(devs), len(want))
			}
			for _, d := range devs {
				b, ok := want[d.ID]
				if !ok {
					t.Errorf("QEMU has backend %s, which qnuma did not render", d.ID)
					continue
				}
				policy, nodes := "default", []int(nil)
				if b.Policy != "" {
					policy, nodes = b.Policy, []int{0}
				}
				share := b.Share != nil && *b.Share || b.Type == "memfd" && b.Share == nil
				if d.Size != b.Size || d.Policy != policy || !slices.Equal(nonNil(d.HostNodes), nonNil(nodes)) || d.Share != share {
					t.Errorf("backend %s: QEMU has size %d policy %s host-nodes %v share %t; rendered size %d policy %s host-nodes %v (as node 0) share %t",
						d.ID, d.Size, d.Policy, d.HostNodes, d.Share, b.Size, policy, nodes, share)
				}
			}
			var io []qmp.IOThread
			if err := vm.Execute("query-iothreads", nil, &io); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, i := range io {
				ids = append(ids, i.ID)
			}
			for _, w := range pj.IOThreads {
				if !slices.Contains(ids, w.IOThread) {
					t.Errorf("QEMU has I/O threads %v, not the plan's %s", ids, w.IOThread)
				}
			}
		})
	}
}

func deref(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// TestDomainXMLRefused: flags and QEMU options that say what the domain
// says, and domains qnuma cannot honour, are bad input (exit 2) naming
// what conflicts; a control plans.
func TestDomainXMLRefused(t *testing.T) {
	root := topotest.SNC2().Write(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(p, []byte("<domain type='kvm'><name>"+name+"</name>"+body+"</domain>"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok", "<memory unit='MiB'>128</memory><vcpu>2</vcpu>")
	cells := func(extra string) string {
		return "<vcpu>2</vcpu>" + extra + "<cpu><numa><cell id='0' cpus='0' memory='64' unit='MiB'/><cell id='1' cpus='1' memory='64' unit='MiB'/></numa></cpu>"
	}
	qemu := []string{"--", "qemu-system-x86_64", "-nographic"}
	tests := []struct {
		name string
		args []string
		want []string // in the message
		is   error
	}{
		{"--vcpus", []string{"--vcpus", "2", "--domain-xml", ok}, []string{"--vcpus", "<vcpu>"}, nil},
		{"--memory", []string{"--memory", "1G", "--domain-xml", ok}, []string{"--memory", "<memory>"}, nil},
		{"--host-nodes", []string{"--host-nodes", "1", "--domain-xml", ok}, []string{"--host-nodes", "<numatune>"}, nil},
		{"--guest-nodes", []string{"--guest-nodes", "2", "--domain-xml", ok}, []string{"--guest-nodes", "<cpu><numa>"}, nil},
		{"-smp in the command line", append([]string{"--domain-xml", ok}, append(qemu, "-smp", "2")...), []string{"-smp 2", "<vcpu>"}, nil},
		{"-m in the command line", append([]string{"--domain-xml", ok}, append(qemu, "-m", "1G")...), []string{"-m 1G", "<memory>"}, nil},
		{"-numa in the command line", append([]string{"--domain-xml", ok}, append(qemu, "-numa", "node")...), []string{"-numa", "<cpu><numa>"}, nil},
		{"a backend in the command line", append([]string{"--domain-xml", ok}, append(qemu, "-object", "memory-backend-ram,id=m0,size=128M")...), []string{"memory backends m0"}, nil},
		{"no such file", []string{"--domain-xml", filepath.Join(dir, "none.xml")}, []string{"none.xml", "no such file"}, nil},
		{"not xml", []string{"--domain-xml", write("bad", "<vcpu>two</vcpu>")}, []string{"<vcpu>"}, domxml.ErrInvalid},
		{"unsupported element", []string{"--domain-xml", write("sched", "<memory>131072</memory><vcpu>1</vcpu><cputune><vcpusched vcpus='0' scheduler='fifo' priority='1'/></cputune>")}, []string{"<cputune><vcpusched>"}, domxml.ErrUnsupported},
		{"vcpupin outside the usable CPUs", []string{"--domain-xml", write("pin", "<memory>131072</memory><vcpu>1</vcpu><cputune><vcpupin vcpu='0' cpuset='40'/></cputune>")}, []string{"<cputune><vcpupin vcpu='0'>", "40"}, plan.ErrBadSpec},
		{"emulatorpin outside", []string{"--domain-xml", write("emu", "<memory>131072</memory><vcpu>1</vcpu><cputune><emulatorpin cpuset='33'/></cputune>")}, []string{"<cputune><emulatorpin>", "33"}, plan.ErrBadSpec},
		{"a host node the host lacks", []string{"--domain-xml", write("node", "<numatune><memnode cellid='1' nodeset='7'/></numatune>"+cells(""))}, []string{"<numatune><memnode cellid='1' nodeset='7'>", "host node 7"}, nil},
		{"memory and cells disagree", []string{"--domain-xml", write("mem", "<memory unit='MiB'>256</memory>"+cells(""))}, []string{"<memory> is 256M", "128M"}, nil},
		{"clusters", []string{"--domain-xml", write("clusters", "<memory>131072</memory><vcpu>4</vcpu><cpu><topology sockets='1' clusters='2' cores='2' threads='1'/></cpu>")}, []string{"clusters='2'"}, domxml.ErrUnsupported},
		{"HMAT bandwidth QEMU cannot take", []string{"--domain-xml", "../../domxml/testdata/hmat-six-cells.xml"}, []string{"<interconnects><bandwidth initiator='2' target='5'>", "MiB/s"}, nil},
		{"HMAT without an initiator for a memory-only cell", []string{"--domain-xml", write("hmat", "<vcpu>1</vcpu><cpu><numa><cell id='0' cpus='0' memory='64' unit='MiB'/><cell id='1' memory='64' unit='MiB'><cache level='1' associativity='direct' policy='writeback'><size value='1' unit='MiB'/><line value='64' unit='B'/></cache></cell></numa></cpu>")}, []string{"<cell id='1'>", "initiator"}, nil},
		{"the lowest vCPUs enabled (control)", []string{"--domain-xml", write("order", "<memory>131072</memory><vcpu current='1'>2</vcpu><vcpus><vcpu id='0' enabled='yes' hotpluggable='no'/><vcpu id='1' enabled='no' hotpluggable='yes'/></vcpus>")}, nil, nil},
		{"a vCPU enabled above a disabled one", []string{"--domain-xml", write("gap", "<memory>131072</memory><vcpu current='2'>3</vcpu><vcpus><vcpu id='0' enabled='yes' hotpluggable='no'/><vcpu id='1' enabled='no' hotpluggable='yes'/><vcpu id='2' enabled='yes' hotpluggable='yes'/></vcpus>")}, []string{"<vcpus><vcpu id='1' enabled='no'>"}, domxml.ErrUnsupported},
		{"a cell not in whole hugepages", []string{"--domain-xml", write("hugesplit", "<vcpu>2</vcpu><memoryBacking><hugepages><page size='1' unit='GiB' nodeset='0'/></hugepages></memoryBacking><cpu><numa><cell id='0' cpus='0' memory='1536' unit='MiB'/><cell id='1' cpus='1' memory='64' unit='MiB'/></numa></cpu>")}, []string{"<cell id='0'>", "1536M", "1G hugepages"}, nil},
		{"file source on hugepages", []string{"--domain-xml", write("hugefile", "<memory>131072</memory><vcpu>1</vcpu><memoryBacking><hugepages/><source type='file'/></memoryBacking>")}, []string{"<source type='file'>", "memfd"}, domxml.ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--root", root, "--qemu-version", "7.2"}, tc.args...)
			out, err := planOut(t, args...)
			if tc.want == nil { // a control
				if err != nil {
					t.Fatalf("qnuma plan %q: %v", tc.args, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("qnuma plan %q planned:\n%s\nwant it refused", tc.args, out)
			}
			if !IsUsage(err) {
				t.Errorf("qnuma plan %q: %v: not bad input (exit 2)", tc.args, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("qnuma plan %q: %v, want it to wrap %v", tc.args, err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("qnuma plan %q: %v\nwant it to say %q", tc.args, err, w)
				}
			}
		})
	}
	// The control for the conflicts: the same domain and command line plan.
	if _, err := planOut(t, append([]string{"--root", root, "--qemu-version", "7.2", "--domain-xml", ok}, qemu...)...); err != nil {
		t.Errorf("control: %v", err)
	}
}

// TestRunDomainXML: `qnuma run --domain-xml` starts the domain's placement
// with the devices of the command line: each vCPU thread allowed only the
// plan's CPUs (vCPU 1 its <vcpupin>), and the two cells' RAM under their
// own policies (strict: bind, preferred: prefer) in numa_maps.
func TestRunDomainXML(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	x := filepath.Join("testdata", "domxml", "run-node0.xml")
	want := planJSONFor(t, bin, "--domain-xml", x, "--")
	if want.VCPUs[1].HostCPUs != "0" {
		t.Fatalf("plan pins vCPU 1 to %s, want <vcpupin>'s 0", want.VCPUs[1].HostCPUs)
	}
	args := append([]string{"run", "-v", "--state-dir", t.TempDir(), "--domain-xml", x, "--"}, bareQEMU...)
	p := startQnuma(t, []string{bin}, append(args, "-S")...)
	got := p.readPins(t, 2)
	for i, v := range want.VCPUs {
		if a := cpusAllowed(t, got.qemuPID, got.vcpuTID[i]); a != v.HostCPUs {
			t.Errorf("vcpu %d (tid %d) Cpus_allowed_list = %s, want the plan's %s", i, got.vcpuTID[i], a, v.HostCPUs)
		}
	}
	// The I/O thread on its <iothreadpin>, not with the emulator threads.
	m := regexp.MustCompile(`(?m)^qnuma: pinned iothread id=iothread1 tid=(\d+) cpus=(\S+)`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Errorf("qnuma did not pin iothread1; stderr:\n%s", p.stderr)
	} else {
		tid, _ := strconv.Atoi(m[1])
		if a := cpusAllowed(t, got.qemuPID, tid); a != "1" || a == want.EmulatorCPUs {
			t.Errorf("iothread1 (tid %d) Cpus_allowed_list = %s, want its <iothreadpin> 1 (emulator cpus %s)", tid, a, want.EmulatorCPUs)
		}
	}
	pols := ramPolicies(t, got.qemuPID, 64<<20)
	for _, w := range []string{"bind:0", "prefer:0"} {
		if !slices.Contains(pols, w) {
			t.Errorf("guest RAM numa_maps policies %q, want one %s (a cell each)", pols, w)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("qnuma exited %d after SIGTERM, want qemu's 0; stderr:\n%s", code, p.stderr)
	}
	requireGone(t, got.qemuPID)
}

// TestDomainXMLWithCommandLine: the user's command line carries the
// devices and stays first; an I/O thread it already creates is not
// rendered twice; plan --json lists the I/O threads with their CPUs and
// the hotpluggable vCPUs.
func TestDomainXMLWithCommandLine(t *testing.T) {
	root := topotest.SNC2().Write(t)
	x := filepath.Join("testdata", "domxml", "small-shared.xml")
	user := []string{"qemu-system-x86_64", "-nographic", "-object", "iothread,id=iothread1", "-drive", "file=disk.img,if=virtio"}
	out, err := planOut(t, append([]string{"--json", "--root", root, "--qemu-version", "7.2", "--domain-xml", x, "--"}, user...)...)
	if err != nil {
		t.Fatal(err)
	}
	var pj domainPlanJSON
	if err := json.Unmarshal([]byte(out), &pj); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pj.QEMUArgs[:len(user)], user) {
		t.Errorf("argv %q does not start with the user's command line %q", pj.QEMUArgs, user)
	}
	var io []string
	for i, a := range pj.QEMUArgs {
		if a == "-object" && strings.HasPrefix(pj.QEMUArgs[i+1], "iothread") {
			io = append(io, pj.QEMUArgs[i+1])
		}
	}
	if want := []string{"iothread,id=iothread1", "iothread,id=iothread2"}; !slices.Equal(io, want) {
		t.Errorf("I/O thread objects %q, want %q (the user's iothread1 once, then the domain's iothread2)", io, want)
	}
	if want := []iothreadJSON{{"iothread1", "6-7"}, {"iothread2", "7"}}; !slices.Equal(pj.IOThreads, want) {
		t.Errorf("iothreads %+v, want %+v (iothread1 with the emulator, iothread2 on its <iothreadpin>)", pj.IOThreads, want)
	}
	if len(pj.Hotplug) != 1 || pj.Hotplug[0].VCPU != 3 || pj.Hotplug[0].HostCPUs != "5" {
		t.Errorf("hotplug_vcpus %+v, want vCPU 3 on its <vcpupin> 5", pj.Hotplug)
	}
}

// TestDomainXMLUnboundCellFollowsPins: a cell the domain binds nowhere
// whose vCPUs are all pinned to one host node's CPUs (node 0 of SNC2) gets
// its memory on that node; a control with a vCPU unpinned is placed by
// room (node 2, the most free).
func TestDomainXMLUnboundCellFollowsPins(t *testing.T) {
	root := topotest.SNC2().Write(t)
	for _, tc := range []struct {
		pins string
		want []int
	}{
		{"<vcpupin vcpu='0' cpuset='1'/><vcpupin vcpu='1' cpuset='2,17'/>", []int{0}},
		{"<vcpupin vcpu='0' cpuset='16'/><vcpupin vcpu='1' cpuset='3'/>", []int{0}},
		{"<vcpupin vcpu='0' cpuset='1'/>", nil}, // vCPU 1 unpinned: by room, node 2
	} {
		x := filepath.Join(t.TempDir(), "d.xml")
		body := "<domain><name>d</name><vcpu>2</vcpu><cputune>" + tc.pins + "</cputune><cpu><numa><cell id='0' cpus='0-1' memory='64' unit='MiB'/></numa></cpu></domain>"
		if err := os.WriteFile(x, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := planOut(t, "--json", "--root", root, "--qemu-version", "7.2", "--domain-xml", x)
		if err != nil {
			t.Fatal(err)
		}
		var pj domainPlanJSON
		if err := json.Unmarshal([]byte(out), &pj); err != nil {
			t.Fatal(err)
		}
		got := pj.GuestNodes[0].HostNodes
		if tc.want != nil && !slices.Equal(got, tc.want) {
			t.Errorf("pins %s: cell 0 on host nodes %v, want %v", tc.pins, got, tc.want)
		}
		if tc.want == nil && !slices.Equal(got, []int{2}) {
			t.Errorf("pins %s: cell 0 on host nodes %v, want the roomiest, node 2", tc.pins, got)
		}
	}
}
