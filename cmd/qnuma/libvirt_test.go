package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/alecthomas/kong"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/domxml"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology/topotest"
)

const amd = "32amd64-4s2n4c-cgroup2"

// libvirtXML runs `qnuma libvirt xml ARGS...` and returns what it prints
// and the plan it printed (planned again from the same flags).
func libvirtXML(t *testing.T, args ...string) ([]byte, *plan.Plan, error) {
	t.Helper()
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("qnuma"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := parser.Parse(append([]string{"libvirt", "xml"}, args...))
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasPrefix(ctx.Command(), "libvirt xml") {
		t.Fatalf("parse %q: command %q, want libvirt xml", args, ctx.Command())
	}
	c := &cli.Libvirt.XML
	var out bytes.Buffer
	if err := c.write(context.Background(), &out); err != nil {
		return nil, nil, err
	}
	pr, err := c.Prepare(context.Background(), nil) // --root: no ledger
	if err != nil {
		t.Fatalf("plan again: %v", err)
	}
	return out.Bytes(), pr.Plan, nil
}

// requireValidator is libvirt's virt-xml-validate, or a skip; under
// CI=true (scripts/deps.sh installs libvirt-clients) its absence fails.
func requireValidator(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("virt-xml-validate")
	if err == nil {
		_, err = exec.LookPath("xmllint")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("virt-xml-validate and xmllint are needed under CI=true (scripts/deps.sh installs libvirt-clients and libxml2-utils): %v", err)
		}
		t.Skipf("SKIP: libvirt's schema validator is not installed (apt-get install libvirt-clients libxml2-utils): %v", err)
	}
	return path
}

func validateDomain(t *testing.T, validator string, data []byte) error {
	t.Helper()
	f := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(validator, f, "domain").CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/qnuma -run TestLibvirt -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./cmd/qnuma -run TestLibvirt -update rewrites it); got:\n%s", path, got)
	}
}

// checkPlacement holds what the XML says, read back by domxml.Parse,
// against the plan itself: every vCPU's host CPUs, the emulator's, the
// topology, the cells' vCPUs, sizes, host nodes, modes and distances, and
// the hugepage size of every cell.
func checkPlacement(t *testing.T, d *domxml.Domain, p *plan.Plan) {
	t.Helper()
	if d.VCPU.Max != len(p.VCPUs) || d.VCPU.Current != len(p.VCPUs) {
		t.Errorf("<vcpu> %d (current %d), plan has %d vCPUs", d.VCPU.Max, d.VCPU.Current, len(p.VCPUs))
	}
	for _, v := range p.VCPUs {
		if got := d.VCPUHostCPUs(v.ID); !got.Equals(v.HostCPUs) {
			t.Errorf("vCPU %d on host CPUs %s, plan %s", v.ID, got, v.HostCPUs)
		}
	}
	if got := d.EmulatorHostCPUs(); !got.Equals(p.EmulatorCPUs) {
		t.Errorf("emulator on %s, plan %s", got, p.EmulatorCPUs)
	}
	for _, id := range d.IOThreads {
		if got := d.IOThreadHostCPUs(id); !got.Equals(p.EmulatorCPUs) {
			t.Errorf("I/O thread %d on %s, plan's emulator CPUs %s", id, got, p.EmulatorCPUs)
		}
	}
	if tp := d.Topology; tp == nil || tp.Sockets != p.Sockets || tp.Cores != p.Cores || tp.Threads != p.Threads || tp.Dies != 1 {
		t.Errorf("topology %+v, plan %d sockets %d cores %d threads", tp, p.Sockets, p.Cores, p.Threads)
	}
	wantMode := map[memobj.Policy]domxml.Mode{"": domxml.ModeStrict, memobj.PolicyBind: domxml.ModeStrict,
		memobj.PolicyPreferred: domxml.ModePreferred, memobj.PolicyInterleave: domxml.ModeInterleave}[p.Spec.Policy]
	if len(p.GuestNodes) == 1 {
		if len(d.Cells) != 0 {
			t.Errorf("a one-node plan got %d cells", len(d.Cells))
		}
		if d.Memory != p.Spec.MemoryBytes {
			t.Errorf("<memory> %d bytes, plan %d", d.Memory, p.Spec.MemoryBytes)
		}
		b := d.Binding(0)
		if b.Mode != wantMode || !b.Nodes.Equals(cpuset.New(p.HostNodes...)) {
			t.Errorf("guest bound %s on %s, plan %s on %v", b.Mode, b.Nodes, p.Spec.Policy, p.HostNodes)
		}
	} else {
		if len(d.Cells) != len(p.GuestNodes) {
			t.Fatalf("%d cells for %d guest nodes", len(d.Cells), len(p.GuestNodes))
		}
		for i, g := range p.GuestNodes {
			c := d.Cells[i]
			if !c.CPUs.Equals(cpuset.New(g.VCPUs...)) || c.Memory != g.MemoryBytes {
				t.Errorf("cell %d: vCPUs %s, %d bytes; plan %v, %d bytes", i, c.CPUs, c.Memory, g.VCPUs, g.MemoryBytes)
			}
			b := d.Binding(i)
			if b.From != "memnode" || b.Mode != wantMode || !b.Nodes.Equals(cpuset.New(g.HostNodes...)) {
				t.Errorf("cell %d bound %s on %s (from %s), plan %s on %v", i, b.Mode, b.Nodes, b.From, p.Spec.Policy, g.HostNodes)
			}
			for j := range p.GuestNodes {
				if got := d.Distance(i, j); p.Distances != nil && got != p.Distances[i][j] {
					t.Errorf("distance %d-%d is %d, plan %d", i, j, got, p.Distances[i][j])
				}
			}
		}
	}
	for i := range max(len(d.Cells), 1) {
		size, ok := d.PageSize(i)
		if hp := p.Spec.HugepageBytes; ok != (hp > 0) || size != hp {
			t.Errorf("cell %d on pages of %d bytes (hugepages %v), plan %d", i, size, ok, hp)
		}
	}
}

// TestLibvirtXMLGolden prints plans on real machines' snapshots: the
// output is the golden, validates against libvirt's schema and reads back
// (domxml.Parse) as the plan.
func TestLibvirtXMLGolden(t *testing.T) {
	validator := requireValidator(t)
	roots := map[string]string{intel: topotest.Unpack(t, intel), amd: topotest.Unpack(t, amd)}
	tests := []struct {
		name, host string
		args       []string
		cells      int
	}{
		{"one-node", intel, []string{"--vcpus", "4", "--memory", "2G"}, 0},
		{"two-nodes", intel, []string{"--vcpus", "12", "--memory", "8G"}, 2},
		{"dedicated", intel, []string{"--vcpus", "4", "--memory", "4G", "--cpus-dedicated"}, 0},
		{"dedicated-ht-two-nodes", intel, []string{"--vcpus", "24", "--memory", "8G", "--cpus-dedicated", "--prefer-ht"}, 2},
		{"hugepages-two-nodes", intel, []string{"--vcpus", "12", "--memory", "8G", "--hugepages", "2M", "--prealloc"}, 2},
		{"hugepages-one-node", intel, []string{"--vcpus", "2", "--memory", "2G", "--hugepages", "2M"}, 0},
		{"preferred", intel, []string{"--vcpus", "12", "--memory", "8G", "--policy", "preferred"}, 2},
		{"interleave", intel, []string{"--vcpus", "12", "--memory", "8G", "--policy", "interleave", "--name", "web&db", "--type", "qemu"}, 2},
		{"distances", amd, []string{"--vcpus", "6", "--memory", "3G", "--spread"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--root", roots[tc.host], "--qemu-version", "9.0"}, tc.args...)
			out, p, err := libvirtXML(t, args...)
			if err != nil {
				t.Fatalf("qnuma libvirt xml %s: %v", strings.Join(tc.args, " "), err)
			}
			compareGolden(t, filepath.Join("testdata", "libvirt", tc.name+".xml"), out)
			if err := validateDomain(t, validator, out); err != nil {
				t.Errorf("virt-xml-validate refuses it: %v\n%s", err, out)
			}
			d, err := domxml.Parse(out)
			if err != nil {
				t.Fatalf("domxml.Parse: %v\n%s", err, out)
			}
			if len(d.Cells) != tc.cells {
				t.Errorf("%d cells, want %d", len(d.Cells), tc.cells)
			}
			checkPlacement(t, d, p)
		})
	}
}

// placementPaths are the elements qnuma writes, as paths from <domain>.
var placementPaths = []string{
	"domain/memory", "domain/currentMemory", "domain/vcpu", "domain/numatune",
	"domain/cputune/vcpupin", "domain/cputune/emulatorpin", "domain/cputune/iothreadpin",
	"domain/cpu/topology", "domain/cpu/numa",
	"domain/memoryBacking/hugepages", "domain/memoryBacking/allocation",
}

// placementSpans are the byte ranges of the placement elements, found
// with a token walk of the test's own (not the writer's).
func placementSpans(t *testing.T, data []byte) [][2]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var path []string
	var spans [][2]int
	start, depth := -1, 0
	for {
		before := int(dec.InputOffset())
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return spans
		}
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			path = append(path, tk.Name.Local)
			if start < 0 && slices.Contains(placementPaths, strings.Join(path, "/")) {
				start, depth = before, len(path)
			}
		case xml.EndElement:
			if start >= 0 && depth == len(path) {
				spans = append(spans, [2]int{start, int(dec.InputOffset())})
				start = -1
			}
			path = path[:len(path)-1]
		}
	}
}

// outsideLines is the document's lines that hold no byte of a placement
// element: what Rewrite must keep byte for byte, in order.
func outsideLines(t *testing.T, data []byte) string {
	t.Helper()
	spans := placementSpans(t, data)
	var b strings.Builder
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off + 1
		}
		touched := false
		for _, sp := range spans {
			if sp[0] < end && sp[1] > off {
				touched = true
			}
		}
		if !touched {
			b.Write(data[off:end])
		}
		off = end
	}
	return b.String()
}

// outside is the document with each placement element cut out and
// replaced by a mark, for a document on one line.
func outside(t *testing.T, data []byte) string {
	t.Helper()
	var b strings.Builder
	at := 0
	for _, sp := range placementSpans(t, data) {
		b.Write(data[at:sp[0]])
		b.WriteString("|")
		at = sp[1]
	}
	b.Write(data[at:])
	return b.String()
}

// TestLibvirtXMLRewrite rewrites a hand-written domain (comments, tabs,
// double quotes, an entity, shares and a period in <cputune>, old pins, a
// numatune of placement auto, a host-model <cpu> with a feature and cells
// of shared memory, hugepages of another size, I/O threads, a qemu
// namespace) with a two-node plan: only the placement elements change,
// the result validates and reads back as the plan, and the file itself is
// not touched.
func TestLibvirtXMLRewrite(t *testing.T) {
	validator := requireValidator(t)
	root := topotest.Unpack(t, intel)
	in := filepath.Join("testdata", "libvirt", "rewrite-in.xml")
	orig, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"rewrite-two-nodes", []string{"--vcpus", "12", "--memory", "8G"}},
		{"rewrite-one-node", []string{"--vcpus", "4", "--memory", "2G"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, p, err := libvirtXML(t, append([]string{"--root", root, "--qemu-version", "9.0", "--rewrite", in}, tc.args...)...)
			if err != nil {
				t.Fatalf("qnuma libvirt xml --rewrite: %v", err)
			}
			compareGolden(t, filepath.Join("testdata", "libvirt", tc.name+".xml"), out)
			if now, _ := os.ReadFile(in); !bytes.Equal(now, orig) {
				t.Fatal("--rewrite changed its input file")
			}
			if a, b := outsideLines(t, orig), outsideLines(t, out); a != b {
				t.Errorf("bytes outside the placement elements changed:\n--- input\n%s\n--- output\n%s", a, b)
			}
			if err := validateDomain(t, validator, out); err != nil {
				t.Errorf("virt-xml-validate refuses it: %v\n%s", err, out)
			}
			// The rewritten domain keeps what qnuma does not honour (the
			// shares): read it as libvirt does, without them.
			d, err := domxml.Parse(bytes.Replace(bytes.Replace(out, []byte("\t\t<shares>2048</shares>\n"), nil, 1), []byte("\t\t<period>100000</period>\n"), nil, 1))
			if err != nil {
				t.Fatalf("domxml.Parse: %v\n%s", err, out)
			}
			checkPlacement(t, d, p)
			if len(d.IOThreads) != 2 {
				t.Errorf("I/O threads %v, want the domain's 2", d.IOThreads)
			}
			for i := range d.Cells {
				if d.Access(i) != domxml.AccessShared {
					t.Errorf("cell %d lost memAccess='shared'", i)
				}
			}
			if d.CurrentMemory != 2<<30 {
				t.Errorf("<currentMemory> %d, want the domain's 2 GiB balloon target kept", d.CurrentMemory)
			}
			for _, kept := range []string{`<cpu mode="host-model"   check="partial">`, `<feature policy="disable" name="vmx"/>`, "<nosharepages/>", `<access mode="shared"/>`, "<shares>2048</shares>", "<!-- old pins, to be replaced -->"} {
				if !bytes.Contains(out, []byte(kept)) {
					t.Errorf("%s was not kept", kept)
				}
			}
			if !bytes.Contains(out, []byte(`<vcpu placement="static">`)) {
				t.Error(`new elements are not quoted as the document quotes ("), as <vcpu placement="static">`)
			}
			for _, gone := range []string{`placement="auto"`, `<vcpupin vcpu="0" cpuset="0"/>`, `<page size="1" unit="GiB"/>`, `cpuset="0-3"`} {
				if bytes.Contains(out, []byte(gone)) {
					t.Errorf("old placement %s is still there", gone)
				}
			}
		})
	}
}

// TestLibvirtXMLRewriteBare adds every placement element to a one-line
// domain that has none but a self-closing <cpu>.
func TestLibvirtXMLRewriteBare(t *testing.T) {
	validator := requireValidator(t)
	root := topotest.Unpack(t, intel)
	in := filepath.Join("testdata", "libvirt", "bare-in.xml")
	out, p, err := libvirtXML(t, "--root", root, "--qemu-version", "9.0", "--rewrite", in, "--vcpus", "12", "--memory", "8G", "--hugepages", "2M")
	if err != nil {
		t.Fatal(err)
	}
	compareGolden(t, filepath.Join("testdata", "libvirt", "bare-out.xml"), out)
	if err := validateDomain(t, validator, out); err != nil {
		t.Errorf("virt-xml-validate refuses it: %v\n%s", err, out)
	}
	orig, _ := os.ReadFile(in)
	// The input's one line: <memory> and <vcpu> replaced, <numatune> added
	// after them, <cpu> opened for <topology> and <numa>; the containers
	// qnuma added (<memoryBacking>, <cputune>) taken out again.
	b := outside(t, out)
	b = regexp.MustCompile(`<(memoryBacking|cputune)>(\n  \|)+\n</(memoryBacking|cputune)>`).ReplaceAllString(b, "")
	a := outside(t, orig)
	a = strings.Replace(a, "</name>||<os>", "</name>|||<os>", 1)
	a = strings.Replace(a, "<cpu mode='host-passthrough'/>", "<cpu mode='host-passthrough'>\n  |\n  |\n</cpu>", 1)
	if a != b {
		t.Errorf("bytes outside the placement elements changed:\n--- input, as the output should be\n%s\n--- output\n%s", a, b)
	}
	d, err := domxml.Parse(out)
	if err != nil {
		t.Fatalf("domxml.Parse: %v\n%s", err, out)
	}
	checkPlacement(t, d, p)
}

// A domain qnuma cannot rewrite is bad input (exit 2) with the reason, and
// nothing is printed.
func TestLibvirtXMLRefuses(t *testing.T) {
	root := topotest.Unpack(t, intel)
	orig, err := os.ReadFile(filepath.Join("testdata", "libvirt", "rewrite-in.xml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, from, to, want string
	}{
		{"not xml", "</domain>", "", "invalid domain xml"},
		{"two vcpu", "<iothreads>", "<vcpu>2</vcpu><iothreads>", "<vcpu>: given 2 times"},
		{"hmat", "</numa>", "<interconnects><latency initiator='0' target='1' type='access' value='5'/></interconnects></numa>", "interconnects"},
		{"cells differ", `memory="2" unit="GiB" memAccess="shared"/>
		</numa>`, `memory="2" unit="GiB" memAccess="private"/>
		</numa>`, "differ in memAccess"},
		{"maxMemory", "<memory ", "<maxMemory slots='2' unit='GiB'>6</maxMemory><memory ", "raise <maxMemory>"},
		{"vcpus", "<iothreads>", "<vcpus><vcpu id='0' enabled='yes' hotpluggable='no'/><vcpu id='1' enabled='yes' hotpluggable='yes'/><vcpu id='2' enabled='yes' hotpluggable='yes'/><vcpu id='3' enabled='yes' hotpluggable='yes'/></vcpus><iothreads>", "<vcpus> describes 4 vCPUs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(orig), tc.from, tc.to, 1)
			if bad == string(orig) {
				t.Fatalf("rewrite-in.xml has no %q", tc.from)
			}
			f := filepath.Join(t.TempDir(), "dom.xml")
			if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCaptured(t, "libvirt", "xml", "--root", root, "--qemu-version", "9.0", "--vcpus", "12", "--memory", "8G", "--rewrite", f)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, stdout, stderr, tc.want)
			}
		})
	}
	// The control: the same domain as it is rewrites with exit 0.
	f := filepath.Join(t.TempDir(), "dom.xml")
	if err := os.WriteFile(f, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCaptured(t, "libvirt", "xml", "--root", root, "--qemu-version", "9.0", "--vcpus", "12", "--memory", "8G", "--rewrite", f); code != 0 {
		t.Errorf("control: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCaptured(t, "libvirt", "xml", "--root", root, "--qemu-version", "9.0", "--vcpus", "12", "--memory", "8G", "--bind-only"); code != 2 || !strings.Contains(stderr, "--bind-only") {
		t.Errorf("--bind-only: exit %d, %s", code, stderr)
	}
}

// The placement avoids the VMs qnuma already placed on this host, as
// `qnuma plan` does: with CPU 0 given to another VM in the ledger, a
// dedicated vCPU goes to CPU 1; with an empty ledger (the control) to CPU 0.
// The ledger is only read.
func TestLibvirtXMLReadsLedger(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("SKIP: this host has one CPU; the test gives one to another VM")
	}
	pin := func(dir string) cpuset.CPUSet {
		t.Helper()
		out, _, err := libvirtXML(t, "--state-dir", dir, "--qemu-version", "9.0", "--vcpus", "1", "--memory", "64M", "--cpus-dedicated")
		if err != nil {
			t.Fatalf("qnuma libvirt xml: %v", err)
		}
		d, err := domxml.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		return d.VCPUHostCPUs(0)
	}
	empty := t.TempDir()
	free := pin(empty)
	busy := t.TempDir()
	if free.Size() != 1 {
		t.Fatalf("dedicated vCPU on %s, want one CPU", free)
	}
	r := placeOne(t, busy, "other", 0, 64<<20, free.List()[0])
	if err := r.SetQEMU(os.Getppid()); err != nil { // a live process stands in for qemu
		t.Fatal(err)
	}
	before, err := os.ReadDir(busy)
	if err != nil {
		t.Fatal(err)
	}
	if got := pin(busy); got.Size() != 1 || got.Equals(free) {
		t.Errorf("vCPU pinned to CPU %s, which the ledger gives to another VM", got)
	}
	after, _ := os.ReadDir(busy)
	if len(after) != len(before) {
		t.Errorf("the ledger changed: %d entries, then %d", len(before), len(after))
	}
}

// TestLibvirtXMLVirshDefine has a real libvirt define every golden (as
// type='qemu', TCG) and reads libvirt's own XML of it back (virsh dumpxml
// --inactive): the placement survives libvirt's parsing and formatting.
// libvirt runs as nobody in session mode, in a folder of the test's,
// and is stopped when the test ends. It skips without libvirtd and virsh
// (apt-get install libvirt-daemon libvirt-daemon-driver-qemu
// libvirt-clients).
// sessionVirsh starts nothing yet: it returns a virsh of a libvirt in
// session mode as nobody, in a folder of the test's (virsh starts the
// daemon on first use; it is stopped when the test ends), and that
// folder. It skips without libvirtd, virsh, runuser or QEMU.
func sessionVirsh(t *testing.T) (func(args ...string) ([]byte, error), string) {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP: starts libvirtd")
	}
	for _, bin := range []string{"libvirtd", "virsh", "runuser", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed, and CI must run the real-libvirt tests (scripts/deps.sh installs it): %v", bin, err)
			}
			t.Skipf("SKIP: %s is not installed (scripts/deps.sh installs it): %v", bin, err)
		}
	}
	nobody, err := user.Lookup("nobody")
	if err != nil || os.Geteuid() != 0 {
		t.Skipf("SKIP: runs libvirt as nobody, which needs root and the user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	// Not under t.TempDir(), whose parent only root may enter.
	home, err := os.MkdirTemp("", "qnuma-libvirt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	if err := os.Mkdir(filepath.Join(home, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{home, filepath.Join(home, "run")} {
		if err := os.Chown(d, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	virsh := func(args ...string) ([]byte, error) {
		t.Helper()
		cmd := exec.Command("runuser", append([]string{"-u", "nobody", "--", "env", "HOME=" + home, "XDG_RUNTIME_DIR=" + filepath.Join(home, "run"),
			"virsh", "-q", "-c", "qemu:///session"}, args...)...)
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() {
		// virsh started the session daemon, and it its log daemon (for a
		// domain started): stop both by their pid files.
		for _, name := range []string{"libvirtd.pid", "virtlogd.pid"} {
			b, err := os.ReadFile(filepath.Join(home, "run", "libvirt", name))
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	return virsh, home
}

func TestLibvirtXMLVirshDefine(t *testing.T) {
	virsh, home := sessionVirsh(t)
	files, err := filepath.Glob(filepath.Join("testdata", "libvirt", "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "-in.xml") {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(f), ".xml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			data = regexp.MustCompile(`(<domain type=)(['"])kvm(['"])`).ReplaceAll(data, []byte("${1}${2}qemu${3}"))
			mine, err := domxml.Parse(stripShares(data))
			if err != nil {
				t.Fatal(err)
			}
			in := filepath.Join(home, "domain.xml")
			if err := os.WriteFile(in, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := virsh("define", in); err != nil {
				t.Fatalf("virsh define: %v\n%s", err, out)
			}
			defer virsh("undefine", mine.Name)
			dumped, err := virsh("dumpxml", "--inactive", mine.Name)
			if err != nil {
				t.Fatalf("virsh dumpxml: %v\n%s", err, dumped)
			}
			theirs, err := domxml.Parse(stripShares(dumped))
			if err != nil {
				t.Fatalf("domxml.Parse of libvirt's XML: %v\n%s", err, dumped)
			}
			for _, d := range []*domxml.Domain{mine, theirs} {
				if d.CurrentMemory == d.Memory { // libvirt writes it out
					d.CurrentMemory = 0
				}
			}
			if a, b := mine.Summary(), theirs.Summary(); a != b {
				t.Errorf("libvirt's XML says otherwise:\n--- ours\n%s\n--- libvirt's\n%s", a, b)
			}
		})
	}
}

// stripShares drops <shares> and <period> (the rewrite test's domain has
// them): libvirt honours them, qnuma's reader refuses them.
func stripShares(data []byte) []byte {
	return regexp.MustCompile(`\s*<(shares|period)>\d+</(shares|period)>`).ReplaceAll(data, nil)
}

// TestLibvirtXMLVirshStart has libvirt start (paused) a domain that qnuma
// placed on this host with a dedicated vCPU: the vCPU thread's allowed CPUs
// in /proc are the plan's one CPU, not all of the host's, and qemu's own
// thread is on the emulator's CPUs.
func TestLibvirtXMLVirshStart(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("SKIP: with one CPU a pin cannot be told from none")
	}
	virsh, home := sessionVirsh(t)
	out, p, err := libvirtXML(t, "--state-dir", t.TempDir(), "--vcpus", "1", "--memory", "128M", "--cpus-dedicated", "--type", "qemu", "--name", "qnuma-start-test")
	if err != nil {
		t.Fatalf("qnuma libvirt xml: %v", err)
	}
	in := filepath.Join(home, "start.xml")
	if err := os.WriteFile(in, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := virsh("define", in); err != nil {
		t.Fatalf("virsh define: %v\n%s", err, b)
	}
	defer virsh("undefine", "qnuma-start-test")
	if b, err := virsh("start", "--paused", "qnuma-start-test"); err != nil {
		t.Fatalf("virsh start: %v\n%s", err, b)
	}
	defer virsh("destroy", "qnuma-start-test")
	b, err := os.ReadFile(filepath.Join(home, "run", "libvirt", "qemu", "run", "qnuma-start-test.pid"))
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil {
		t.Fatalf("qemu's pid file: %v %v", err, perr)
	}
	want := map[string]string{"CPU 0/TCG": p.VCPUs[0].HostCPUs.String(), "qemu-system-x86": p.EmulatorCPUs.String()}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	seen := map[string]bool{}
	for _, task := range tasks {
		comm, _ := os.ReadFile(filepath.Join(task, "comm"))
		w, ok := want[strings.TrimSpace(string(comm))]
		if !ok {
			continue
		}
		seen[strings.TrimSpace(string(comm))] = true
		if got := cpusAllowed(t, pid, atoiBase(t, task)); got != w {
			t.Errorf("thread %s (%s) may run on %s, the plan says %s", task, strings.TrimSpace(string(comm)), got, w)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("found threads %v of %v in /proc/%d/task", seen, want, pid)
	}
}

func atoiBase(t *testing.T, path string) int {
	t.Helper()
	n, err := strconv.Atoi(filepath.Base(path))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
