package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirtdtest"
	"github.com/qnuma/qnuma/topology"
)

// libvirtPlace runs `qnuma libvirt place ARGS...` as main does, with the
// test's dial and validate (nil: the real ones), and returns what it
// printed.
func libvirtPlace(t *testing.T, dial func(string) (libvirthost.Conn, error), validate func([]byte) error, args ...string) ([]byte, error) {
	t.Helper()
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("qnuma"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := parser.Parse(append([]string{"libvirt", "place"}, args...))
	if err != nil {
		return nil, badInput("%w", err)
	}
	if !strings.HasPrefix(ctx.Command(), "libvirt place") {
		t.Fatalf("parse %q: command %q", args, ctx.Command())
	}
	c := &cli.Libvirt.Place
	c.dial, c.validate = dial, validate
	var out bytes.Buffer
	err = c.place(context.Background(), &out)
	return out.Bytes(), err
}

// placeResult is the part of `qnuma libvirt place --json` the tests read.
type placeResult struct {
	HostNodes    []int      `json:"host_nodes"`
	VCPUs        []vcpuJSON `json:"vcpus"`
	EmulatorCPUs string     `json:"emulator_cpus"`
	Reasons      []string   `json:"reasons"`
	Domain       string     `json:"domain"`
	Applied      placeAppliedJSON
}

func decodePlace(t *testing.T, out []byte) placeResult {
	t.Helper()
	var r placeResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	return r
}

func placeDomainXML(name string, vcpus int) string {
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>%d</vcpu>
  <iothreads>1</iothreads>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
`, name, vcpus)
}

// placementElems are the elements place --config writes.
var placementElems = regexp.MustCompile(`(?s)\s*<vcpu[ >].*?</vcpu>|\s*<cputune>.*?</cputune>|\s*<numatune>.*?</numatune>|\s*<cpu[ >].*?</cpu>|\s*<cpu .*?/>`)

// threadAffinity is the Cpus_allowed_list of each of qemu's threads by name.
func threadAffinity(t *testing.T, pid int) map[string]cpuset.CPUSet {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("tasks of qemu %d: %v", pid, err)
	}
	out := map[string]cpuset.CPUSet{}
	for _, task := range tasks {
		comm, _ := os.ReadFile(filepath.Join(task, "comm"))
		s, err := cpulist.Parse(cpusAllowed(t, pid, atoiBase(t, task)))
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSpace(string(comm))] = s
	}
	return out
}

// TestLibvirtPlaceReal places domains of a private libvirtd (TCG,
// started paused): --config's XML validates, keeps the rest of the
// domain, and the domain starts with those pins; --live pins the running
// qemu's threads as the JSON says, in /proc and in libvirt's own account;
// a missing domain, one that does not fit and one that would take another
// domain's dedicated CPU change nothing.
func TestLibvirtPlaceReal(t *testing.T) {
	d := libvirtdtest.StartWith(t, libvirtdtest.Options{TCP: true})
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	if host.OnlineCPUs.Size() < 2 {
		t.Skip("SKIP: with one CPU a pin cannot be told from none")
	}
	virsh := func(args ...string) string {
		t.Helper()
		out, err := d.Virsh(t, args...)
		if err != nil {
			t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	define := func(name string, vcpus int) {
		t.Helper()
		p := filepath.Join(d.Dir, name+".xml")
		if err := os.WriteFile(p, []byte(placeDomainXML(name, vcpus)), 0o600); err != nil {
			t.Fatal(err)
		}
		virsh("define", p)
	}
	state := t.TempDir()
	place := func(args ...string) ([]byte, error) {
		t.Helper()
		return libvirtPlace(t, nil, nil, append(args, "--connect", d.URI, "--state-dir", state)...)
	}
	conn, err := libvirthost.Dial(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := host.OnlineCPUs.List()[host.OnlineCPUs.Size()-1] + 1

	t.Run("config", func(t *testing.T) {
		define("qnuma-cfg", 2)
		defer virsh("undefine", "qnuma-cfg")
		before := virsh("dumpxml", "--inactive", "qnuma-cfg")
		out, err := place("qnuma-cfg", "--config", "--json", "--cpus-dedicated")
		if err != nil {
			t.Fatalf("place --config: %v\n%s", err, out)
		}
		r := decodePlace(t, out)
		after := virsh("dumpxml", "--inactive", "qnuma-cfg")
		for _, v := range r.VCPUs {
			if want := fmt.Sprintf("<vcpupin vcpu='%d' cpuset='%s'/>", v.VCPU, v.HostCPUs); !strings.Contains(after, want) {
				t.Errorf("defined XML lacks %s:\n%s", want, after)
			}
		}
		if want := fmt.Sprintf("<memory mode='strict' nodeset='%d'/>", r.HostNodes[0]); !strings.Contains(after, want) {
			t.Errorf("defined XML lacks %s:\n%s", want, after)
		}
		if a, b := placementElems.ReplaceAllString(before, ""), placementElems.ReplaceAllString(after, ""); a != b {
			t.Errorf("place --config changed more than the placement:\n--- before\n%s\n--- after\n%s", a, b)
		}
		if !r.Applied.Config || r.Applied.Live || r.Applied.XML == "" {
			t.Errorf("applied %+v", r.Applied)
		}
		virsh("start", "--paused", "qnuma-cfg")
		defer virsh("destroy", "qnuma-cfg")
		pid, err := d.PID("qnuma-cfg")
		if err != nil {
			t.Fatal(err)
		}
		aff := threadAffinity(t, pid)
		for _, v := range r.VCPUs {
			if got := aff[fmt.Sprintf("CPU %d/TCG", v.VCPU)]; got.String() != v.HostCPUs {
				t.Errorf("started with its definition: vCPU %d may run on %s, the plan says %s", v.VCPU, got, v.HostCPUs)
			}
		}
	})

	t.Run("live", func(t *testing.T) {
		define("qnuma-live", 2)
		defer virsh("undefine", "qnuma-live")
		virsh("start", "--paused", "qnuma-live")
		defer virsh("destroy", "qnuma-live")
		out, err := place("qnuma-live", "--live", "--json", "--cpus-dedicated")
		if err != nil {
			t.Fatalf("place --live: %v\n%s", err, out)
		}
		r := decodePlace(t, out)
		if len(r.VCPUs) != 2 || r.VCPUs[0].HostCPUs == r.VCPUs[1].HostCPUs {
			t.Fatalf("--cpus-dedicated gives each vCPU its own CPU: %+v", r.VCPUs)
		}
		pid, err := d.PID("qnuma-live")
		if err != nil {
			t.Fatal(err)
		}
		aff := threadAffinity(t, pid)
		pins, err := conn.VCPUPins("qnuma-live", 2, hc)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range r.VCPUs {
			if c, err := cpulist.Parse(v.HostCPUs); err != nil || c.Size() != 1 {
				t.Errorf("dedicated vCPU %d on %q", v.VCPU, v.HostCPUs)
			}
			if got := aff[fmt.Sprintf("CPU %d/TCG", v.VCPU)]; got.String() != v.HostCPUs {
				t.Errorf("vCPU %d thread may run on %s, the JSON says %s", v.VCPU, got, v.HostCPUs)
			}
			if got := pins[v.VCPU]; got.String() != v.HostCPUs {
				t.Errorf("libvirt's DomainGetVcpuPinInfo: vCPU %d on %s, the JSON says %s", v.VCPU, got, v.HostCPUs)
			}
		}
		if got := aff["IO iothread1"]; got.String() != r.EmulatorCPUs {
			t.Errorf("I/O thread may run on %s, emulator cpus %s", got, r.EmulatorCPUs)
		}
		if emu, err := conn.EmulatorPin("qnuma-live", hc); err != nil || emu.String() != r.EmulatorCPUs {
			t.Errorf("libvirt's emulator pin %s (%v), the JSON says %s", emu, err, r.EmulatorCPUs)
		}
		// virsh's own account agrees: vcpupin lines "VCPU CPUS", emulatorpin "*: CPUS".
		var vp []string
		for _, line := range strings.Split(strings.TrimSpace(virsh("vcpupin", "qnuma-live")), "\n") {
			vp = append(vp, strings.Join(strings.Fields(line), " "))
		}
		var want []string
		for _, v := range r.VCPUs {
			want = append(want, fmt.Sprintf("%d %s", v.VCPU, v.HostCPUs))
		}
		if !slices.Equal(vp, want) {
			t.Errorf("virsh vcpupin says %q, the JSON %q", vp, want)
		}
		if ep := strings.Join(strings.Fields(virsh("emulatorpin", "qnuma-live")), " "); strings.TrimPrefix(ep, "*: ") != r.EmulatorCPUs {
			t.Errorf("virsh emulatorpin says %q, the JSON %q", ep, r.EmulatorCPUs)
		}
		numa, err := conn.NUMAParams("qnuma-live")
		if err != nil || numa.Nodes.String() != fmt.Sprint(r.HostNodes[0]) || r.Applied.MemoryNodeset != numa.Nodes.String() {
			t.Errorf("memory nodeset %s (%v); applied %q, plan %v", numa.Nodes, err, r.Applied.MemoryNodeset, r.HostNodes)
		}

		// Its qemu's guest RAM is found as for qnuma's own VMs (libvirt's
		// JSON -object backends or -m), for the room it holds.
		if res, err := ledger.ResidentOf(pid); err != nil || domainResident("qnuma-live") == nil {
			t.Errorf("resident memory of libvirt's qemu %d: %v %v", pid, res, err)
		}

		// qnuma ps --libvirt lists it, with its qemu and its new pins.
		var ps bytes.Buffer
		if err := (&PsCmd{JSON: true, Libvirt: true, Connect: d.URI, StateDir: state}).write(&ps, time.Now()); err != nil {
			t.Fatalf("ps --libvirt: %v", err)
		}
		var vms []psVM
		if err := json.Unmarshal(ps.Bytes(), &vms); err != nil {
			t.Fatal(err)
		}
		union := cpuset.New()
		for _, v := range r.VCPUs {
			c, _ := cpulist.Parse(v.HostCPUs)
			union = union.Union(c)
		}
		i := slices.IndexFunc(vms, func(v psVM) bool { return v.Name == "libvirt:qnuma-live" })
		if i < 0 || vms[i].PID != pid || vms[i].VCPUs != 2 || vms[i].VCPUCPUs != union.String() || vms[i].EmulatorCPUs != r.EmulatorCPUs || fmt.Sprint(vms[i].HostNodes) != fmt.Sprint(r.HostNodes) {
			t.Errorf("qnuma ps --libvirt (qemu %d):\n%s", pid, ps.Bytes())
		}

		// Another domain placed now must not share the dedicated CPUs.
		define("qnuma-other", 1)
		defer virsh("undefine", "qnuma-other")
		virsh("start", "--paused", "qnuma-other")
		defer virsh("destroy", "qnuma-other")
		before, _ := conn.VCPUPins("qnuma-other", 1, hc)
		out, err = place("qnuma-other", "--live", "--json", "--cpus-dedicated")
		if err == nil {
			o := decodePlace(t, out)
			for _, v := range r.VCPUs {
				if o.VCPUs[0].HostCPUs == v.HostCPUs {
					t.Errorf("qnuma-other's dedicated vCPU on CPU %s, which qnuma-live's vCPU %d holds", v.HostCPUs, v.VCPU)
				}
			}
		} else if !IsUsage(err) || !strings.Contains(err.Error(), "fit") {
			t.Errorf("qnuma-other: %v (want a placement beside qnuma-live's or does-not-fit)", err)
		} else if after, _ := conn.VCPUPins("qnuma-other", 1, hc); !after[0].Equals(before[0]) {
			t.Errorf("did not fit, yet its vCPU moved from %s to %s", before[0], after[0])
		}
	})

	// Over TCP the daemon is remote to qnuma: the host is libvirt's
	// capabilities and free memory, and the ledger is not read.
	t.Run("live over qemu+tcp", func(t *testing.T) {
		define("qnuma-tcp", 2)
		defer virsh("undefine", "qnuma-tcp")
		virsh("start", "--paused", "qnuma-tcp")
		defer virsh("destroy", "qnuma-tcp")
		out, err := libvirtPlace(t, nil, nil, "qnuma-tcp", "--live", "--json", "--connect", d.TCPURI)
		if err != nil {
			t.Fatalf("place --live over %s: %v\n%s", d.TCPURI, err, out)
		}
		r := decodePlace(t, out)
		pid, err := d.PID("qnuma-tcp")
		if err != nil {
			t.Fatal(err)
		}
		aff := threadAffinity(t, pid)
		for _, v := range r.VCPUs {
			if got := aff[fmt.Sprintf("CPU %d/TCG", v.VCPU)]; got.String() != v.HostCPUs {
				t.Errorf("vCPU %d thread may run on %s, the JSON says %s", v.VCPU, got, v.HostCPUs)
			}
		}
		var rooms struct {
			Rooms []roomJSON `json:"rooms"`
		}
		json.Unmarshal(out, &rooms)
		if len(rooms.Rooms) != len(host.Nodes) || rooms.Rooms[0].MemoryBytes == 0 || rooms.Rooms[0].MemoryBytes > host.Nodes[0].MemTotal {
			t.Errorf("rooms from libvirt's free memory: %+v", rooms.Rooms)
		}
	})

	t.Run("does not fit: nothing changed", func(t *testing.T) {
		n := host.OnlineCPUs.Size() + 1
		define("qnuma-big", n)
		defer virsh("undefine", "qnuma-big")
		virsh("start", "--paused", "qnuma-big")
		defer virsh("destroy", "qnuma-big")
		before := virsh("dumpxml", "--inactive", "qnuma-big")
		pinsBefore, _ := conn.VCPUPins("qnuma-big", n, hc)
		out, err := place("qnuma-big", "--live", "--config")
		if err == nil || !IsUsage(err) {
			t.Fatalf("%d vCPUs on %d CPUs without --overcommit: %v, want exit 2\n%s", n, host.OnlineCPUs.Size(), err, out)
		}
		if after := virsh("dumpxml", "--inactive", "qnuma-big"); after != before {
			t.Errorf("the definition changed:\n%s", after)
		}
		pinsAfter, _ := conn.VCPUPins("qnuma-big", n, hc)
		if fmt.Sprint(pinsAfter) != fmt.Sprint(pinsBefore) {
			t.Errorf("vCPU pins changed: %v → %v", pinsBefore, pinsAfter)
		}
		if np, _ := conn.NUMAParams("qnuma-big"); !np.Nodes.IsEmpty() {
			t.Errorf("memory nodeset set to %s", np.Nodes)
		}
	})

	t.Run("missing domain", func(t *testing.T) {
		_, err := place("qnuma-no-such", "--live")
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "no such domain") {
			t.Errorf("missing domain: %v, want exit 2 naming it", err)
		}
	})
}

// TestLibvirtPlaceSessionReal: as a user, qnuma libvirt place reaches the
// user's session daemon by default (qemu:///session under
// $XDG_RUNTIME_DIR/libvirt), pins the running domain's threads, and leaves
// the nodeset, which session mode cannot tune.
func TestLibvirtPlaceSessionReal(t *testing.T) {
	virsh, home := sessionVirsh(t)
	bin := buildQnuma(t)
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	if host.OnlineCPUs.Size() < 2 {
		t.Skip("SKIP: with one CPU a pin cannot be told from none")
	}
	p := filepath.Join(home, "sess.xml")
	if err := os.WriteFile(p, []byte(placeDomainXML("qnuma-sess", 2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := virsh("define", p); err != nil {
		t.Fatalf("virsh define: %v\n%s", err, out)
	}
	defer virsh("undefine", "qnuma-sess")
	if out, err := virsh("start", "--paused", "qnuma-sess"); err != nil {
		t.Fatalf("virsh start: %v\n%s", err, out)
	}
	defer virsh("destroy", "qnuma-sess")
	cmd := exec.Command("runuser", "-u", "nobody", "--", "env", "HOME="+home, "XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
		bin, "libvirt", "place", "qnuma-sess", "--live", "--json", "--cpus-dedicated", "--state-dir", filepath.Join(home, "run", "qnuma"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qnuma libvirt place as nobody: %v\n%s", err, stderr.Bytes())
	}
	r := decodePlace(t, out)
	if !strings.Contains(r.Applied.MemoryNote, "session") || r.Applied.MemoryNodeset != "" {
		t.Errorf("applied %+v", r.Applied)
	}
	b, err := os.ReadFile(filepath.Join(home, "run", "libvirt", "qemu", "run", "qnuma-sess.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	aff := threadAffinity(t, pid)
	for _, v := range r.VCPUs {
		if got := aff[fmt.Sprintf("CPU %d/TCG", v.VCPU)]; got.String() != v.HostCPUs {
			t.Errorf("vCPU %d thread may run on %s, the JSON says %s", v.VCPU, got, v.HostCPUs)
		}
	}
}
