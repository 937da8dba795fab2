package libvirthost_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirtdtest"
	"github.com/qnuma/qnuma/topology"
)

// tcgDomain is a guestless 2-vCPU TCG domain with an I/O thread.
func tcgDomain(name string) string {
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>2</vcpu>
  <iothreads>1</iothreads>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
</domain>
`, name)
}

// cpusAllowed is a thread's Cpus_allowed_list in /proc.
func cpusAllowed(t *testing.T, pid, tid int) cpuset.CPUSet {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			s, err := cpulist.Parse(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	t.Fatalf("no Cpus_allowed_list for task %d of %d", tid, pid)
	return cpuset.New()
}

// threads is qemu's threads by name (comm).
func threads(t *testing.T, pid int) map[string]int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("tasks of %d: %v", pid, err)
	}
	out := map[string]int{}
	for _, task := range tasks {
		comm, _ := os.ReadFile(filepath.Join(task, "comm"))
		var tid int
		fmt.Sscan(filepath.Base(task), &tid)
		out[strings.TrimSpace(string(comm))] = tid
	}
	return out
}

// TestRealDaemon runs every call of Client against a private libvirtd:
// the host it describes is the one sysfs describes, a missing domain is
// ErrNoDomain, and the pins set on a paused domain are the ones its qemu
// threads have in /proc and libvirt reports back.
func TestRealDaemon(t *testing.T) {
	d := libvirtdtest.Start(t)
	c, err := libvirthost.Dial(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	major, minor, err := c.HypervisorVersion()
	if err != nil || major < 2 {
		t.Fatalf("hypervisor version %d.%d: %v", major, minor, err)
	}
	caps, err := c.Capabilities()
	if err != nil {
		t.Fatal(err)
	}
	h, err := libvirthost.ParseCapabilities([]byte(caps))
	if err != nil {
		t.Fatal(err)
	}
	if err := libvirthost.FillFree(c, h); err != nil {
		t.Fatal(err)
	}
	sys, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(h.NodeIDs()), fmt.Sprint(sys.NodeIDs()); got != want {
		t.Errorf("libvirt's nodes %s, sysfs's %s", got, want)
	}
	if !h.OnlineCPUs.Equals(sys.OnlineCPUs) || len(h.Cores()) != len(sys.Cores()) {
		t.Errorf("libvirt's cpus %s in %d cores, sysfs's %s in %d", h.OnlineCPUs, len(h.Cores()), sys.OnlineCPUs, len(sys.Cores()))
	}
	for i, n := range h.Nodes {
		s := sys.Nodes[i]
		if n.MemFreeUnknown || n.MemFree == 0 || n.MemFree > n.MemTotal || !n.CPUs.Equals(s.CPUs) {
			t.Errorf("node %d: libvirt says cpus %s, %d of %d bytes free; sysfs cpus %s", n.ID, n.CPUs, n.MemFree, n.MemTotal, s.CPUs)
		}
	}

	if _, err := c.DomainState("qnuma-no-such-domain"); !errors.Is(err, libvirthost.ErrNoDomain) {
		t.Errorf("state of a missing domain: %v, want ErrNoDomain", err)
	}
	if err := c.Define(tcgDomain("qnuma-lvh")); err != nil {
		t.Fatalf("define: %v\n%s", err, d.Log())
	}
	if err := c.Define("<domain type='qemu'><name>bad</name><vcpu>x</vcpu></domain>"); !errors.Is(err, libvirthost.ErrRefused) {
		t.Errorf("define of an invalid domain: %v, want ErrRefused", err)
	}
	if p, err := c.Persistent("qnuma-lvh"); err != nil || !p {
		t.Errorf("persistent after define: %v %v", p, err)
	}
	if st, err := c.DomainState("qnuma-lvh"); err != nil || st != libvirthost.StateShutoff {
		t.Fatalf("state after define: %v %v", st, err)
	}
	if out, err := d.Virsh(t, "start", "--paused", "qnuma-lvh"); err != nil {
		t.Fatalf("virsh start: %v\n%s\n%s", err, out, d.Log())
	}
	if st, err := c.DomainState("qnuma-lvh"); err != nil || st != libvirthost.StatePaused {
		t.Fatalf("state after start --paused: %v %v", st, err)
	}
	active, err := c.ActiveDomains()
	if err != nil || fmt.Sprint(active) != "[qnuma-lvh]" {
		t.Errorf("active domains %v: %v", active, err)
	}
	x, err := c.DomainXML("qnuma-lvh", false)
	if err != nil || !strings.Contains(x, "<name>qnuma-lvh</name>") {
		t.Errorf("live xml: %v\n%s", err, x)
	}

	hostCPUs := sys.OnlineCPUs.List()[sys.OnlineCPUs.Size()-1] + 1
	last := cpuset.New(sys.OnlineCPUs.List()[sys.OnlineCPUs.Size()-1])
	first := cpuset.New(sys.OnlineCPUs.List()[0])
	if err := c.PinVCPU("qnuma-lvh", 1, last); err != nil {
		t.Fatal(err)
	}
	if err := c.PinEmulator("qnuma-lvh", first); err != nil {
		t.Fatal(err)
	}
	if err := c.PinIOThread("qnuma-lvh", 1, last); err != nil {
		t.Fatal(err)
	}
	if err := c.SetNUMANodeset("qnuma-lvh", cpuset.New(sys.NodeIDs()[0])); err != nil {
		t.Fatal(err)
	}
	if err := c.PinVCPU("qnuma-lvh", 7, last); !errors.Is(err, libvirthost.ErrRefused) {
		t.Errorf("pin of a vcpu the domain lacks: %v, want ErrRefused", err)
	}
	pins, err := c.VCPUPins("qnuma-lvh", 2, hostCPUs)
	if err != nil || len(pins) != 2 || !pins[1].Equals(last) || !pins[0].Equals(sys.OnlineCPUs) {
		t.Errorf("vcpu pins %v: %v; want [%s %s]", pins, err, sys.OnlineCPUs, last)
	}
	emu, err := c.EmulatorPin("qnuma-lvh", hostCPUs)
	if err != nil || !emu.Equals(first) {
		t.Errorf("emulator pin %s: %v, want %s", emu, err, first)
	}
	ios, err := c.IOThreads("qnuma-lvh", hostCPUs)
	if err != nil || len(ios) != 1 || ios[0].ID != 1 || !ios[0].CPUs.Equals(last) {
		t.Errorf("i/o threads %v: %v", ios, err)
	}
	np, err := c.NUMAParams("qnuma-lvh")
	if err != nil || np.Mode != libvirthost.ModeStrict || !np.Nodes.Equals(cpuset.New(sys.NodeIDs()[0])) {
		t.Errorf("numa parameters %+v: %v", np, err)
	}

	pid, err := d.PID("qnuma-lvh")
	if err != nil {
		t.Fatal(err)
	}
	th := threads(t, pid)
	for name, want := range map[string]cpuset.CPUSet{"CPU 1/TCG": last, "IO iothread1": last, "CPU 0/TCG": sys.OnlineCPUs} {
		tid, ok := th[name]
		if !ok {
			t.Errorf("no thread %q in %v", name, th)
			continue
		}
		if got := cpusAllowed(t, pid, tid); !got.Equals(want) {
			t.Errorf("thread %s may run on %s, want %s", name, got, want)
		}
	}
	if runtime.NumCPU() < 2 {
		t.Log("one CPU: the pins cannot be told from none")
	}
}
