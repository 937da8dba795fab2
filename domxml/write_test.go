package domxml

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
)

const gib = 1 << 30

// threeNodePlan is a plan by hand: 3 vCPUs in 2 sockets of 2 cores (so
// slot 3 is offline, in socket 1), guest node 2 memory-only, host
// distances 10/20/30.
func threeNodePlan() *plan.Plan {
	return &plan.Plan{
		Spec:      plan.Spec{VCPUs: 3, MemoryBytes: 3 * gib, Policy: memobj.PolicyBind},
		HostNodes: []int{0, 1, 2},
		GuestNodes: []plan.GuestNode{
			{ID: 0, HostNodes: []int{0}, VCPUs: []int{0, 1}, MemoryBytes: gib},
			{ID: 1, HostNodes: []int{1}, VCPUs: []int{2}, MemoryBytes: gib},
			{ID: 2, HostNodes: []int{2}, MemoryBytes: gib},
		},
		VCPUs: []plan.VCPU{
			{ID: 0, GuestNode: 0, Socket: 0, Core: 0, HostCPUs: cpuset.New(0)},
			{ID: 1, GuestNode: 0, Socket: 0, Core: 1, HostCPUs: cpuset.New(1)},
			{ID: 2, GuestNode: 1, Socket: 1, Core: 0, HostCPUs: cpuset.New(4)},
		},
		Sockets: 2, Cores: 2, Threads: 1,
		EmulatorCPUs: cpuset.New(0, 1, 4),
		Mempolicy:    plan.Mempolicy{Mode: memobj.PolicyBind, Nodes: cpuset.New(0, 1, 2)},
		Distances:    [][]int{{10, 20, 30}, {20, 10, 20}, {30, 20, 10}},
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFromPlanCells: a socket's offline slot goes to its vCPUs' cell, a
// memory-only node is a cell without cpus, the distances are the plan's,
// and the skeleton with them validates and parses back.
func TestFromPlanCells(t *testing.T) {
	place, err := FromPlan(threeNodePlan())
	if err != nil {
		t.Fatal(err)
	}
	out, err := Rewrite(Skeleton("three", "qemu"), place)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := validateXML(t, requireValidator(t), writeTemp(t, out)); err != nil {
		t.Errorf("virt-xml-validate: %v %s\n%s", err, v, out)
	}
	d, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, out)
	}
	if d.VCPU.Max != 4 || d.VCPU.Current != 3 {
		t.Errorf("<vcpu> %d current %d, want 4 current 3", d.VCPU.Max, d.VCPU.Current)
	}
	wantCPUs := []cpuset.CPUSet{cpuset.New(0, 1), cpuset.New(2, 3), cpuset.New()}
	for i, c := range d.Cells {
		if !c.CPUs.Equals(wantCPUs[i]) || c.Memory != gib {
			t.Errorf("cell %d: cpus %s, %d bytes; want %s, 1 GiB", i, c.CPUs, c.Memory, wantCPUs[i])
		}
		if b := d.Binding(i); b.Mode != ModeStrict || !b.Nodes.Equals(cpuset.New(i)) {
			t.Errorf("cell %d bound %s %s, want strict %d", i, b.Mode, b.Nodes, i)
		}
		for j := range 3 {
			if got, want := d.Distance(i, j), threeNodePlan().Distances[i][j]; got != want {
				t.Errorf("distance %d-%d %d, want %d", i, j, got, want)
			}
		}
	}
	if len(d.Cells) != 3 {
		t.Fatalf("%d cells, want 3", len(d.Cells))
	}
	if got := d.VCPUHostCPUs(3); !got.IsEmpty() {
		t.Errorf("offline vCPU 3 pinned to %s", got)
	}
	if !strings.Contains(string(out), "<cell id='2' memory='1048576' unit='KiB'>") {
		t.Errorf("memory-only cell not written without cpus:\n%s", out)
	}
}

func TestFromPlanRefuses(t *testing.T) {
	p := threeNodePlan()
	p.BindOnly = true
	if _, err := FromPlan(p); !errors.Is(err, ErrUnsupported) {
		t.Errorf("--bind-only plan: %v, want ErrUnsupported", err)
	}
	p = threeNodePlan()
	p.VCPUs[2].GuestNode = 0 // socket 1 would hold cells 0 and 1
	p.VCPUs[1].GuestNode = 1
	if _, err := FromPlan(p); err == nil {
		t.Error("a socket split over two cells was accepted")
	}
}

func onePlace(t *testing.T, hugepages uint64) *Domain {
	t.Helper()
	p := threeNodePlan()
	p.GuestNodes = []plan.GuestNode{{ID: 0, HostNodes: []int{0}, VCPUs: []int{0, 1}, MemoryBytes: 2 * gib}}
	p.VCPUs = p.VCPUs[:2]
	p.Sockets, p.Cores = 1, 2
	p.HostNodes, p.Distances = []int{0}, nil
	p.Spec.MemoryBytes, p.Spec.HugepageBytes = 2*gib, hugepages
	place, err := FromPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	return place
}

// TestRewrite: how Rewrite places, keeps and removes elements.
func TestRewrite(t *testing.T) {
	tests := []struct {
		name, in  string
		hugepages uint64
		want      []string // substrings of the output, in this order
		not       []string
		err       error
		// parseFails: Parse refuses what libvirt honours (a scheduler).
		parseFails bool
	}{
		{
			name: "inserted in libvirt's order",
			in:   "<domain type='kvm'>\n  <name>a</name>\n  <os>\n    <type>hvm</type>\n  </os>\n  <devices/>\n</domain>\n",
			want: []string{"<name>a</name>\n  <memory unit='KiB'>2097152</memory>\n  <memoryBacking>\n    <hugepages>\n      <page size='2048' unit='KiB'/>\n    </hugepages>\n  </memoryBacking>\n  <vcpu placement='static'>2</vcpu>\n  <cputune>\n    <vcpupin vcpu='0' cpuset='0'/>",
				"</cputune>\n  <numatune>\n    <memory mode='strict' nodeset='0'/>\n  </numatune>\n  <os>",
				"</os>\n  <cpu>\n    <topology sockets='1' dies='1' cores='2' threads='1'/>\n  </cpu>\n  <devices/>"},
			hugepages: 2 << 20,
		},
		{
			name: "hugepages removed, memoryBacking with them",
			in:   "<domain type='kvm'>\n\t<name>a</name>\n\t<memoryBacking>\n\t\t<hugepages/>\n\t</memoryBacking>\n\t<vcpu>1</vcpu>\n\t<os><type>hvm</type></os>\n</domain>",
			want: []string{"<name>a</name>\n\t<memory unit='KiB'>2097152</memory>\n\t<vcpu placement='static'>2</vcpu>\n\t<cputune>\n\t\t<vcpupin"},
			not:  []string{"memoryBacking", "hugepages"},
		},
		{
			name: "hugepages removed, the rest of memoryBacking kept",
			in:   "<domain type='kvm'><name>a</name><memoryBacking><hugepages/><locked/></memoryBacking><vcpu>1</vcpu><os><type>hvm</type></os></domain>",
			want: []string{"<memoryBacking><locked/></memoryBacking>"},
		},
		{
			name: "self-closing cputune and cpu opened",
			in:   "<domain type='kvm'>\n  <name>a</name>\n  <vcpu>1</vcpu>\n  <cputune />\n  <os><type>hvm</type></os>\n  <cpu mode='host-passthrough' />\n</domain>",
			want: []string{"<cputune>\n    <vcpupin vcpu='0' cpuset='0'/>", "<emulatorpin cpuset='0-1,4'/>\n  </cputune>", "<cpu mode='host-passthrough'>\n    <topology sockets='1' dies='1' cores='2' threads='1'/>\n  </cpu>"},
		},
		{
			name: "a larger balloon target is lowered; memory devices count in memory",
			in:   "<domain type='kvm'><name>a</name><maxMemory slots='2' unit='GiB'>8</maxMemory><memory unit='GiB'>4</memory><currentMemory unit='GiB'>4</currentMemory><vcpu>1</vcpu><os><type>hvm</type></os><devices><memory model='dimm'><target><size unit='GiB'>1</size></target></memory></devices></domain>",
			want: []string{"<memory unit='KiB'>3145728</memory><currentMemory unit='KiB'>3145728</currentMemory>"},
		},
		{
			name: "a memory device on a cell the plan lacks",
			in:   "<domain type='kvm'><name>a</name><maxMemory slots='2' unit='GiB'>8</maxMemory><memory unit='GiB'>4</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices><memory model='dimm'><target><size unit='GiB'>1</size><node>1</node></target></memory></devices></domain>",
			err:  ErrUnsupported,
		},
		{
			name: "two cputune",
			in:   "<domain type='kvm'><name>a</name><vcpu>1</vcpu><cputune/><cputune/><os><type>hvm</type></os></domain>",
			err:  ErrInvalid,
		},
		{
			name: "not a domain",
			in:   "<network><name>a</name></network>",
			err:  ErrInvalid,
		},
		{
			name: "vcpusched of vCPUs the plan lacks",
			in:   "<domain type='kvm'><name>a</name><vcpu>4</vcpu><cputune><vcpusched vcpus='2-3' scheduler='fifo' priority='1'/></cputune><os><type>hvm</type></os></domain>",
			err:  ErrUnsupported,
		},
		{
			name:       "vcpusched of the plan's vCPUs kept",
			in:         "<domain type='kvm'><name>a</name><vcpu>4</vcpu><cputune><vcpusched vcpus='0-1' scheduler='fifo' priority='1'/></cputune><os><type>hvm</type></os></domain>",
			want:       []string{"<cputune><vcpusched vcpus='0-1' scheduler='fifo' priority='1'/>\n  <vcpupin vcpu='0' cpuset='0'/>"},
			parseFails: true,
		},
		{
			name: "no element at all",
			in:   "just text\n",
			err:  ErrInvalid,
		},
		{
			name: "not well-formed",
			in:   "<domain type='kvm'><name>a</name>",
			err:  ErrInvalid,
		},
		{
			name: "cells with memAccess the one node cannot keep",
			in:   "<domain type='kvm'><name>a</name><vcpu>2</vcpu><os><type>hvm</type></os><cpu><numa><cell id='0' cpus='0-1' memory='1' unit='GiB' memAccess='shared'/></numa></cpu></domain>",
			err:  ErrUnsupported,
		},
	}
	validator := requireValidator(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Rewrite([]byte(tc.in), onePlace(t, tc.hugepages))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rest := string(out)
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks (in order) %q:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(string(out), n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
			if v, err := validateXML(t, validator, writeTemp(t, out)); err != nil {
				t.Errorf("virt-xml-validate: %v %s\n%s", err, v, out)
			}
			if _, err := Parse(out); (err != nil) != tc.parseFails {
				t.Errorf("Parse: %v\n%s", err, out)
			}
		})
	}
}

// A document with CRLF line breaks keeps them in what Rewrite writes.
func TestRewriteCRLF(t *testing.T) {
	in := strings.ReplaceAll("<domain type='kvm'>\n  <name>a</name>\n  <vcpu>1</vcpu>\n  <os><type>hvm</type></os>\n  <cpu>\n    <topology sockets='1' cores='1' threads='1'/>\n  </cpu>\n</domain>\n", "\n", "\r\n")
	out, err := Rewrite([]byte(in), onePlace(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "\n"); n != strings.Count(string(out), "\r\n") || n < 10 {
		t.Errorf("%d line breaks, %d of them CRLF:\n%q", n, strings.Count(string(out), "\r\n"), out)
	}
	if _, err := Parse(out); err != nil {
		t.Error(err)
	}
}

// FuzzRewrite: no domain makes Rewrite panic or fail with an error that is
// neither ErrInvalid nor ErrUnsupported; what it writes is a domain whose
// placement is the plan's (Parse reads the plan's cells back where the
// rest parses), and rewriting that again changes nothing. The testdata
// domains and the command's rewrite inputs are the seeds.
func FuzzRewrite(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	more, _ := filepath.Glob("../cmd/qnuma/testdata/libvirt/*-in.xml")
	for _, file := range append(files, more...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, true)
	}
	f.Add(Skeleton("a", "kvm"), false)
	f.Fuzz(func(t *testing.T, data []byte, cells bool) {
		place, err := FromPlan(threeNodePlan())
		if err != nil {
			t.Fatal(err)
		}
		if !cells {
			place = onePlace(t, 2<<20)
		}
		out, err := Rewrite(data, place)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps neither ErrInvalid nor ErrUnsupported: %v", err)
			}
			return
		}
		again, err := Rewrite(out, place)
		if err != nil {
			t.Fatalf("rewriting the output: %v\n%s", err, out)
		}
		if string(again) != string(out) {
			t.Fatalf("a second rewrite changed it:\n%s\n---\n%s", out, again)
		}
		if d, err := Parse(out); err == nil && len(d.Cells) != len(place.Cells) {
			t.Fatalf("%d cells read back, the placement has %d", len(d.Cells), len(place.Cells))
		}
	})
}
