package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirthosttest"
)

// fakeURI is remote, so the host is the fake's capabilities (two nodes of
// two cores of two threads, CPUs 0-3 and 4-7), not this machine's.
const fakeURI = "qemu+tcp://fake.example/system"

func fakeDomainXML(name string, vcpus int, memMiB int, numatune string) string {
	return fmt.Sprintf(`<domain type='kvm'>
  <name>%s</name>
  <memory unit='MiB'>%d</memory>
  <vcpu placement='static'>%d</vcpu>
  <iothreads>1</iothreads>%s
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
</domain>
`, name, memMiB, vcpus, numatune)
}

// newFake is a daemon on the two-node host with domain vm (2 vCPUs, 1 GiB,
// running unpinned, no numatune) and whatever more.
func newFake(t *testing.T) *libvirthosttest.Fake {
	t.Helper()
	caps, err := os.ReadFile("../../libvirthost/testdata/caps-2node-smt.xml")
	if err != nil {
		t.Fatal(err)
	}
	all := cpuset.New(0, 1, 2, 3, 4, 5, 6, 7)
	f := &libvirthosttest.Fake{Major: 7, Minor: 2, Caps: string(caps),
		Free:    map[int]uint64{0: 3 << 30, 1: 3 << 30},
		Domains: map[string]*libvirthosttest.Domain{}}
	f.Domains["vm"] = &libvirthosttest.Domain{State: libvirthost.StateRunning, XML: fakeDomainXML("vm", 2, 1024, ""),
		VCPUPins: []cpuset.CPUSet{all, all}, Emulator: all,
		IOThreads: []libvirthost.IOThread{{ID: 1, CPUs: all}}, NUMA: libvirthost.NUMAParams{Nodes: cpuset.New()}}
	return f
}

func placeFake(t *testing.T, f *libvirthosttest.Fake, args ...string) (placeResult, error) {
	t.Helper()
	dial := func(uri string) (libvirthost.Conn, error) {
		if uri != fakeURI {
			t.Fatalf("dialed %q", uri)
		}
		return f, nil
	}
	out, err := libvirtPlace(t, dial, nil, append(args, "--json", "--connect", fakeURI)...)
	if err != nil {
		return placeResult{}, err
	}
	if !f.Closed {
		t.Error("the connection was not closed")
	}
	return decodePlace(t, out), nil
}

func TestLibvirtPlaceLive(t *testing.T) {
	f := newFake(t)
	r, err := placeFake(t, f, "vm", "--live", "--cpus-dedicated")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PinVCPU vm 0 " + r.VCPUs[0].HostCPUs,
		"PinVCPU vm 1 " + r.VCPUs[1].HostCPUs,
		"PinEmulator vm " + r.EmulatorCPUs,
		"PinIOThread vm 1 " + r.EmulatorCPUs,
		fmt.Sprintf("SetNUMANodeset vm %d", r.HostNodes[0]),
	}
	if !slices.Equal(f.Calls, want) {
		t.Errorf("calls %q, want %q", f.Calls, want)
	}
	if len(f.Defined) != 0 || r.Applied.XML != "" || !r.Applied.Live {
		t.Errorf("--live defined %d XMLs; applied %+v", len(f.Defined), r.Applied)
	}
	d := f.Domains["vm"]
	if d.VCPUPins[0].String() != r.VCPUs[0].HostCPUs || d.NUMA.Nodes.String() != fmt.Sprint(r.HostNodes[0]) {
		t.Errorf("domain after: %+v", d)
	}
}

// TestLibvirtPlaceOtherDomains: a running domain's pins and nodeset are
// taken: the dedicated vCPUs go to the other node.
func TestLibvirtPlaceOtherDomains(t *testing.T) {
	f := newFake(t)
	f.Domains["busy"] = &libvirthosttest.Domain{State: libvirthost.StateRunning, XML: `<domain type='kvm'><name>busy</name><memory unit='GiB'>2</memory><vcpu cpuset='0-3'>4</vcpu>
		<numatune><memory mode='strict' nodeset='0'/></numatune></domain>`}
	f.Domains["off"] = &libvirthosttest.Domain{State: libvirthost.StateShutoff, XML: `<domain type='kvm'><name>off</name><memory unit='GiB'>2</memory><vcpu cpuset='4-7'>4</vcpu></domain>`}
	r, err := placeFake(t, f, "vm", "--cpus-dedicated")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.HostNodes) != "[1]" {
		t.Errorf("host nodes %v, want [1]: busy holds node 0's CPUs and 2 of its 3 GiB", r.HostNodes)
	}
	for _, v := range r.VCPUs {
		if c, _ := cpuset.Parse(v.HostCPUs); !c.IsSubsetOf(cpuset.New(4, 5, 6, 7)) {
			t.Errorf("vCPU %d on %s, among busy's CPUs 0-3", v.VCPU, v.HostCPUs)
		}
	}
	if !slices.ContainsFunc(r.Reasons, func(s string) bool {
		return strings.Contains(s, "busy (CPUs 0-3, memory on nodes 0)") && !strings.Contains(s, "off")
	}) {
		t.Errorf("reasons do not name busy alone: %q", r.Reasons)
	}
	if len(f.Calls) != 0 {
		t.Errorf("without --live or --config: calls %q", f.Calls)
	}
	if r.Applied.XML == "" || len(r.Applied.VCPUPins) != 2 {
		t.Errorf("the dry run shows no changes: %+v", r.Applied)
	}
}

func TestLibvirtPlaceConfigWide(t *testing.T) {
	f := newFake(t)
	f.Domains["wide"] = &libvirthosttest.Domain{State: libvirthost.StateShutoff, XML: fakeDomainXML("wide", 4, 5*1024, "")}
	r, err := placeFake(t, f, "wide", "--config")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.HostNodes) != 2 || len(f.Defined) != 1 || f.Calls[0] != "Define" || len(f.Calls) != 1 {
		t.Fatalf("host nodes %v, calls %q", r.HostNodes, f.Calls)
	}
	x := f.Defined[0]
	for _, want := range []string{"<memnode cellid='0' mode='strict' nodeset='0'/>", "<memnode cellid='1' mode='strict' nodeset='1'/>", "<cell id='1'", "<topology sockets='2'", "<vcpupin vcpu='3'", "<iothreads>1</iothreads>", "<type arch='x86_64' machine='q35'>hvm</type>"} {
		if !strings.Contains(x, want) {
			t.Errorf("defined XML lacks %s:\n%s", want, x)
		}
	}
}

// A domain with vCPU hotplug room (<vcpu current='4'>6</vcpu>) over two
// nodes (3 vCPU slots each, --prefer-ht): libvirt starts vCPUs 0 to
// current-1, so the plan keeps those present at start (0-2 in guest node 0,
// 3 in guest node 1), not each guest node's share of them (0-1 and 3-4),
// which only qnuma run can start (cold-plugged by -device).
func TestLibvirtPlaceConfigHotplugRoom(t *testing.T) {
	f := newFake(t)
	f.Domains["grow"] = &libvirthosttest.Domain{State: libvirthost.StateShutoff,
		XML: strings.Replace(fakeDomainXML("grow", 6, 5*1024, ""), "<vcpu placement='static'>6</vcpu>", "<vcpu placement='static' current='4'>6</vcpu>", 1)}
	r, err := placeFake(t, f, "grow", "--config", "--prefer-ht")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, v := range r.VCPUs {
		ids = append(ids, v.VCPU)
	}
	if len(r.HostNodes) != 2 || !slices.Equal(ids, []int{0, 1, 2, 3}) || len(f.Defined) != 1 {
		t.Fatalf("host nodes %v, vCPUs present %v, defined %d: want two nodes, vCPUs 0-3", r.HostNodes, ids, len(f.Defined))
	}
	for _, want := range []string{"current='4'", "<vcpupin vcpu='3'", "<cell id='1'"} {
		if !strings.Contains(f.Defined[0], want) {
			t.Errorf("defined XML lacks %s:\n%s", want, f.Defined[0])
		}
	}
}

// TestLibvirtPlaceRefused: every refusal exits 2 and leaves the domain as
// it was; one libvirt makes half-way is undone.
func TestLibvirtPlaceRefused(t *testing.T) {
	strict := "\n  <numatune>\n    <memory mode='strict' nodeset='1'/>\n  </numatune>"
	for _, tc := range []struct {
		name  string
		setup func(f *libvirthosttest.Fake)
		args  []string
		want  string
		calls []string
	}{
		{"missing domain", nil, []string{"nosuch", "--live"}, "no such domain", nil},
		{"live on a shut-off domain", func(f *libvirthosttest.Fake) { f.Domains["vm"].State = libvirthost.StateShutoff }, []string{"vm", "--live"}, "not running", nil},
		{"--vcpus", nil, []string{"vm", "--config", "--vcpus", "4"}, "--vcpus", nil},
		{"does not fit", nil, []string{"vm", "--live", "--host-nodes", "0", "--prefer-ht", "--max-vcpus-per-node", "1"}, "", nil},
		{"strict nodeset moved live", func(f *libvirthosttest.Fake) {
			f.Domains["vm"].XML = fakeDomainXML("vm", 2, 1024, strict)
			f.Domains["vm"].NUMA = libvirthost.NUMAParams{Mode: libvirthost.ModeStrict, Nodes: cpuset.New(1)}
		}, []string{"vm", "--live", "--host-nodes", "0"}, "mode strict on nodes 1", nil},
		{"guest layout changed live", nil, []string{"vm", "--live", "--guest-nodes", "2", "--spread"}, "NUMA layout cannot change", nil},
		{"wider than a node, live", func(f *libvirthosttest.Fake) {
			f.Domains["vm"].XML = fakeDomainXML("vm", 2, 5*1024, "")
		}, []string{"vm", "--live"}, "fit", nil},
		{"mode changed live", nil, []string{"vm", "--live", "--policy", "interleave"}, "cannot change the mode", nil},
		{"nodeset refused half-way", func(f *libvirthosttest.Fake) {
			f.Refuse = map[string]error{"SetNUMANodeset": libvirthost.ErrRefused}
		}, []string{"vm", "--live", "--host-nodes", "1", "--cpus-dedicated"}, "put back", []string{
			"PinVCPU vm 0 4,6", "PinVCPU vm 1 5,7", "PinEmulator vm 4-7", "PinIOThread vm 1 4-7", "SetNUMANodeset vm 1",
			"PinIOThread vm 1 0-7", "PinEmulator vm 0-7", "PinVCPU vm 1 0-7", "PinVCPU vm 0 0-7"}},
		{"memory devices on a one-node plan", func(f *libvirthosttest.Fake) {
			f.Domains["vm"].XML = `<domain type='kvm'><name>vm</name><maxMemory slots='2' unit='MiB'>4096</maxMemory><memory unit='MiB'>1536</memory><vcpu>2</vcpu>
				<os><type arch='x86_64' machine='q35'>hvm</type></os><cpu><numa><cell id='0' cpus='0-1' memory='1024' unit='MiB'/></numa></cpu>
				<devices><memory model='dimm'><target><size unit='MiB'>512</size><node>0</node></target></memory></devices></domain>`
		}, []string{"vm", "--config"}, "memory devices", nil},
		{"config of a transient domain", func(f *libvirthosttest.Fake) { f.Domains["vm"].Transient = true }, []string{"vm", "--config"}, "transient", nil},
		{"define refused", func(f *libvirthosttest.Fake) {
			f.Refuse = map[string]error{"Define": libvirthost.ErrRefused}
		}, []string{"vm", "--config"}, "libvirt refused", []string{"Define"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			before := *f.Domains["vm"]
			before.VCPUPins = slices.Clone(before.VCPUPins)
			_, err := placeFake(t, f, tc.args...)
			if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want exit 2 saying %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "nothing changed") && tc.name != "--vcpus" {
				t.Errorf("error does not say nothing changed: %v", err)
			}
			if !slices.Equal(f.Calls, tc.calls) {
				t.Errorf("calls %q, want %q", f.Calls, tc.calls)
			}
			after := f.Domains["vm"]
			if fmt.Sprint(after.VCPUPins) != fmt.Sprint(before.VCPUPins) || !after.Emulator.Equals(before.Emulator) || !after.NUMA.Nodes.Equals(before.NUMA.Nodes) || fmt.Sprint(after.IOThreads) != fmt.Sprint(before.IOThreads) || len(f.Defined) != 0 {
				t.Errorf("domain changed: %+v → %+v, defined %d", before, *after, len(f.Defined))
			}
		})
	}
}

// TestLibvirtPlaceRestrictive: a restrictive domain's nodeset moves live,
// and --config keeps the mode.
func TestLibvirtPlaceRestrictive(t *testing.T) {
	f := newFake(t)
	f.Domains["vm"].XML = fakeDomainXML("vm", 2, 1024, "\n  <numatune>\n    <memory mode='restrictive' nodeset='1'/>\n  </numatune>")
	f.Domains["vm"].NUMA = libvirthost.NUMAParams{Mode: libvirthost.ModeRestrictive, Nodes: cpuset.New(1)}
	r, err := placeFake(t, f, "vm", "--live", "--config", "--host-nodes", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Domains["vm"].NUMA.Nodes.Equals(cpuset.New(0)) || !strings.Contains(r.Applied.MemoryNote, "restrictive") {
		t.Errorf("nodeset %s, note %q", f.Domains["vm"].NUMA.Nodes, r.Applied.MemoryNote)
	}
	if len(f.Defined) != 1 || !strings.Contains(f.Defined[0], "<memory mode='restrictive' nodeset='0'/>") {
		t.Errorf("defined %q", f.Defined)
	}
}

func TestLibvirtPlaceDialErrors(t *testing.T) {
	_, err := libvirtPlace(t, nil, nil, "vm", "--connect", "http://x/")
	if err == nil || !IsUsage(err) || !errors.Is(err, libvirthost.ErrBadURI) {
		t.Errorf("bad uri: %v, want exit 2", err)
	}
}

// TestPsLibvirt: qnuma ps --libvirt lists the daemon's running domains
// beside the ledger's VMs, with their pins and nodesets; a remote one has
// no pid.
func TestPsLibvirt(t *testing.T) {
	f := newFake(t)
	f.Domains["vm"].XML = fakeDomainXML("vm", 2, 1024, "\n  <numatune>\n    <memory mode='strict' nodeset='1'/>\n  </numatune>\n  <cputune><vcpupin vcpu='0' cpuset='4'/><vcpupin vcpu='1' cpuset='5'/><emulatorpin cpuset='6'/></cputune>")
	f.Domains["off"] = &libvirthosttest.Domain{State: libvirthost.StateShutoff, XML: fakeDomainXML("off", 1, 128, "")}
	c := &PsCmd{JSON: true, Libvirt: true, Connect: fakeURI, StateDir: t.TempDir(), dial: func(string) (libvirthost.Conn, error) { return f, nil }}
	var out bytes.Buffer
	if err := c.write(&out, time.Now()); err != nil {
		t.Fatal(err)
	}
	var vms []psVM
	if err := json.Unmarshal(out.Bytes(), &vms); err != nil {
		t.Fatal(err)
	}
	if len(vms) != 1 || vms[0].Name != "libvirt:vm" || vms[0].PID != 0 || vms[0].VCPUCPUs != "4-5" || vms[0].EmulatorCPUs != "6" ||
		fmt.Sprint(vms[0].HostNodes) != "[1]" || vms[0].NodeMemory[1] != 1<<30 || vms[0].NodeVCPUs[1] != 2 {
		t.Errorf("ps --libvirt --json:\n%s", out.Bytes())
	}
	out.Reset()
	c.JSON = false
	if err := c.write(&out, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`libvirt:vm\s+-\s+1\s+2\s`).Match(out.Bytes()) {
		t.Errorf("ps --libvirt:\n%s", out.Bytes())
	}
	if _, err := (&PsCmd{Libvirt: true, Connect: "ftp://x", StateDir: t.TempDir()}).libvirtVMs(); !IsUsage(err) {
		t.Errorf("bad --connect: %v, want exit 2", err)
	}
}

// TestLibvirtPlaceKeepsTheRest: a domain with what qnuma does not plan by
// (<cputune><shares>, a <seclabel>, its <cpu> mode)
// is placed, and its definition keeps them.
func TestLibvirtPlaceKeepsTheRest(t *testing.T) {
	f := newFake(t)
	f.Domains["vm"].XML = `<domain type='kvm'>
  <name>vm</name>
  <memory unit='MiB'>1024</memory>
  <vcpu placement='static'>2</vcpu>
  <cputune>
    <shares>2048</shares>
    <vcpupin vcpu='0' cpuset='7'/>
  </cputune>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <cpu mode='host-passthrough'>
    <numa>
      <cell id='0' cpus='0-1' memory='1024' unit='MiB'/>
    </numa>
  </cpu>
  <seclabel type='dynamic' model='dac'/>
</domain>
`
	f.Domains["vm"].State = libvirthost.StateShutoff
	r, err := placeFake(t, f, "vm", "--config")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Defined) != 1 {
		t.Fatalf("defined %d", len(f.Defined))
	}
	x := f.Defined[0]
	for _, want := range []string{"<shares>2048</shares>", "<seclabel type='dynamic' model='dac'/>", "<cpu mode='host-passthrough'>", "<vcpupin vcpu='0' cpuset='" + r.VCPUs[0].HostCPUs + "'/>"} {
		if !strings.Contains(x, want) {
			t.Errorf("defined XML lacks %s:\n%s", want, x)
		}
	}
	if strings.Contains(x, "cpuset='7'") && r.VCPUs[0].HostCPUs != "7" {
		t.Errorf("the old pin survived:\n%s", x)
	}
}

// TestLibvirtPlaceSession: a session daemon has no NUMA tuning: --live
// pins and leaves the nodeset, saying why.
func TestLibvirtPlaceSession(t *testing.T) {
	f := newFake(t)
	f.Refuse = map[string]error{"SetNUMANodeset": libvirthost.ErrRefused}
	const uri = "qemu+ssh://fake.example/session"
	out, err := libvirtPlace(t, func(string) (libvirthost.Conn, error) { return f, nil }, nil, "vm", "--live", "--json", "--connect", uri)
	if err != nil {
		t.Fatal(err)
	}
	r := decodePlace(t, out)
	if len(f.Calls) != 4 || slices.ContainsFunc(f.Calls, func(c string) bool { return strings.HasPrefix(c, "SetNUMANodeset") }) {
		t.Errorf("calls %q: want the pins alone", f.Calls)
	}
	if r.Applied.MemoryNodeset != "" || !strings.Contains(r.Applied.MemoryNote, "session") {
		t.Errorf("applied %+v", r.Applied)
	}
}

func TestGuestPID(t *testing.T) {
	proc := t.TempDir()
	for pid, cmd := range map[string]string{
		"10":   "qemu-system-x86_64\x00-name\x00guest=web,debug-threads=on\x00-S",
		"11":   "qemu-system-x86_64\x00-name\x00guest=web2,debug-threads=on",
		"12":   "sh\x00-c\x00echo guest=db,",
		"self": "x",
	} {
		if err := os.MkdirAll(proc+"/"+pid, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(proc+"/"+pid+"/cmdline", []byte(cmd), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]int{"web": 10, "web2": 11, "db": 0, "we": 0} {
		if got := guestPID(proc, name); got != want {
			t.Errorf("guestPID(%q) = %d, want %d", name, got, want)
		}
	}
}
