package plan

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/topology"
	"github.com/qnuma/qnuma/topology/topotest"
)

var update = flag.Bool("update", false, "rewrite the golden plans in testdata/plans")

// readSnapshot reads one of the shared real machines (skipping without them).
func readSnapshot(t *testing.T, name string) *topology.Host {
	t.Helper()
	h, err := topology.Read(topotest.Unpack(t, name))
	if err != nil {
		t.Fatalf("read snapshot %s: %v", name, err)
	}
	return h
}

// goldenCases are the specs planned on every snapshot; each snapshot's
// plans (or errors) are kept in testdata/plans/NAME.txt.
var goldenCases = []struct {
	name string
	spec Spec
}{
	{"small", Spec{VCPUs: 2, MemoryBytes: 2 * gib}},
	{"8 vcpus 16G", Spec{VCPUs: 8, MemoryBytes: 16 * gib}},
	{"12 vcpus 8G", Spec{VCPUs: 12, MemoryBytes: 8 * gib}},
	{"12 vcpus 8G prefer-ht", Spec{VCPUs: 12, MemoryBytes: 8 * gib, PreferHT: true}},
	{"8 vcpus 36G", Spec{VCPUs: 8, MemoryBytes: 36 * gib}},
	{"host node 1 16G", Spec{VCPUs: 8, MemoryBytes: 16 * gib, HostNodes: []int{1}}},
	{"dedicated prefer-ht 8", Spec{VCPUs: 8, MemoryBytes: 4 * gib, Dedicated: true, PreferHT: true}},
	{"spread 8", Spec{VCPUs: 8, MemoryBytes: 4 * gib, Spread: true}},
	{"wide memory-only allowed", Spec{VCPUs: 4, MemoryBytes: 240 * gib, AllowMemoryOnly: true}},
	{"hugepages 2M", Spec{VCPUs: 2, MemoryBytes: gib, HugepageBytes: 2 << 20}},
	{"too many vcpus", Spec{VCPUs: 4096, MemoryBytes: gib}},
	{"too much memory", Spec{VCPUs: 1, MemoryBytes: 1 << 50}},
}

var snapshots = []string{
	"128ia64-17n4s2c",
	"16amd64-8n2c-cpusets",
	"16em64t-4s2c2t-offlines",
	"32amd64-4s2n4c-cgroup2",
	"32intel64-2p8co2t+8ve",
	"nvidiagpunumanodes",
}

func TestGoldenSnapshots(t *testing.T) {
	for _, snap := range snapshots {
		t.Run(snap, func(t *testing.T) {
			h := readSnapshot(t, snap)
			var b strings.Builder
			for _, c := range goldenCases {
				fmt.Fprintf(&b, "=== %s\n", c.name)
				p, err := Make(h, c.spec, nil)
				switch {
				case errors.Is(err, ErrDoesNotFit) || errors.Is(err, ErrBadSpec):
					fmt.Fprintf(&b, "error: %v\n\n", err)
					continue
				case err != nil:
					t.Fatalf("%s: Make: %v", c.name, err)
				}
				checkPlan(t, h, p.Spec, nil, p)
				if err := p.Describe(&b); err != nil {
					t.Fatal(err)
				}
				b.WriteString("\n")
			}
			compareGolden(t, filepath.Join("testdata", "plans", snap+".txt"), b.String())
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (make it with go test ./plan -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("plans differ from %s (go test ./plan -update rewrites it):\n%s", path, firstDiff(string(want), got))
	}
}

// firstDiff shows the first differing line with some context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// Issue 3's examples on the common two-socket server, checked by value and
// not only by golden file.
func TestIntelExamples(t *testing.T) {
	h := readSnapshot(t, "32intel64-2p8co2t+8ve")
	nodes := func(spec Spec) ([]int, []int, error) {
		p, err := Make(h, spec, nil)
		if err != nil {
			return nil, nil, err
		}
		checkPlan(t, h, spec, nil, p)
		var v []int
		for _, g := range p.GuestNodes {
			v = append(v, len(g.VCPUs))
		}
		return p.HostNodes, v, nil
	}
	tests := []struct {
		spec  Spec
		nodes []int
		vcpus []int
		err   error
	}{
		{Spec{VCPUs: 8, MemoryBytes: 16 * gib}, []int{0}, []int{8}, nil},
		{Spec{VCPUs: 12, MemoryBytes: 8 * gib}, []int{0, 1}, []int{6, 6}, nil},
		{Spec{VCPUs: 12, MemoryBytes: 8 * gib, PreferHT: true}, []int{0}, []int{12}, nil},
		{Spec{VCPUs: 8, MemoryBytes: 36 * gib}, []int{0, 1}, []int{4, 4}, nil},
		{Spec{VCPUs: 8, MemoryBytes: 16 * gib, HostNodes: []int{1}}, nil, nil, ErrDoesNotFit},
		{Spec{VCPUs: 17, MemoryBytes: gib}, nil, nil, ErrDoesNotFit},
		{Spec{VCPUs: 2, MemoryBytes: 44 * gib}, nil, nil, ErrDoesNotFit},
	}
	for _, tt := range tests {
		got, vcpus, err := nodes(tt.spec)
		if !errors.Is(err, tt.err) || (err != nil && tt.err == nil) {
			t.Errorf("%+v: err %v, want %v", tt.spec, err, tt.err)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "  asked") {
				t.Errorf("%+v: error without the per-node table:\n%v", tt.spec, err)
			}
			continue
		}
		if !slices.Equal(got, tt.nodes) || !slices.Equal(vcpus, tt.vcpus) {
			t.Errorf("%+v: nodes %v vcpus %v, want %v %v", tt.spec, got, vcpus, tt.nodes, tt.vcpus)
		}
	}
}

// Memory-only nodes never get vCPUs, on the real machines that have them.
func TestMemoryOnlySnapshots(t *testing.T) {
	for _, c := range []struct {
		snap    string
		memOnly []int
	}{
		{"128ia64-17n4s2c", []int{16}},
		{"nvidiagpunumanodes", []int{250, 251, 252, 253, 254, 255}},
	} {
		h := readSnapshot(t, c.snap)
		usedMemOnly := 0
		for _, spec := range []Spec{
			{VCPUs: 4, MemoryBytes: gib, AllowMemoryOnly: true, GuestNodes: 3},
			{VCPUs: 8, MemoryBytes: 200 * gib, AllowMemoryOnly: true},
			{VCPUs: 8, MemoryBytes: 250 * gib, AllowMemoryOnly: true},
			{VCPUs: 8, MemoryBytes: 250 * gib},
			{VCPUs: 64, MemoryBytes: 8 * gib, AllowMemoryOnly: true, Spread: true},
			{VCPUs: 2, MemoryBytes: gib, AllowMemoryOnly: true, HostNodes: c.memOnly[:1]},
			// Node ids of 128 and above only with BindOnly: QEMU's
			// host-nodes= cannot name them.
			{VCPUs: 8, MemoryBytes: 250 * gib, AllowMemoryOnly: true, BindOnly: true},
			{VCPUs: 4, MemoryBytes: 2 * gib, AllowMemoryOnly: true, BindOnly: true, GuestNodes: 4},
		} {
			p, err := Make(h, spec, nil)
			if errors.Is(err, ErrDoesNotFit) {
				continue
			}
			if err != nil {
				t.Fatalf("%s %+v: %v", c.snap, spec, err)
			}
			checkPlan(t, h, spec, nil, p)
			for _, g := range p.GuestNodes {
				if !slices.Contains(c.memOnly, g.HostNodes[0]) {
					continue
				}
				usedMemOnly++
				if len(g.VCPUs) > 0 {
					t.Errorf("%s %+v: memory-only node %d got vcpus %v", c.snap, spec, g.HostNodes[0], g.VCPUs)
				}
				if !spec.AllowMemoryOnly {
					t.Errorf("%s %+v: memory-only node %d used without AllowMemoryOnly", c.snap, spec, g.HostNodes[0])
				}
			}
		}
		if usedMemOnly == 0 {
			t.Errorf("%s: no plan used a memory-only node, so none was checked", c.snap)
		}
	}
}
