package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testResults(t *testing.T) *Results {
	t.Helper()
	startup, err := caseRows("4 vCPUs", "ms", []series{
		{variant: "qemu", samples: []float64{100, 104, 98}},
		{variant: "qnuma --membind=0 (drop-in)", samples: []float64{108, 110, 101}},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	locality, err := caseRows("vCPU samples on node 1", "%", []series{
		{variant: "numactl --membind=1 qemu", samples: []float64{50, 0}},
		{variant: "qnuma run --host-nodes 1", samples: []float64{100, 100}},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	planning, err := caseRows("plan a wide VM", "plans/s", []series{
		{variant: "1 nodes", samples: []float64{22645}},
		{variant: "8 nodes", samples: []float64{9760}},
		{variant: "16 nodes", samples: []float64{4000}},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	planning[2].Detail = true
	return &Results{
		Started: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC),
		Seconds: 312.4,
		Host:    HostInfo{CPUs: 2, Nodes: []int{0}, Kernel: "6.18.44", QEMU: "QEMU 7.2.22"},
		Figures: []Figure{
			{ID: "startup", Title: "1. Start-up", Rounds: 3, Rows: startup, Notes: []string{"qnuma run refuses 4 vCPUs here"}},
			{ID: "locality", Title: "3. Locality", Rounds: 2, Rows: locality},
			{ID: "planning", Title: "4. Planning", Rounds: 1, Rows: planning},
			{ID: "prealloc", Title: "5. Preallocation", Error: "no size fits node 0"},
		},
	}
}

func TestRenderTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := renderTable(&b, testResults(t)); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "table.golden"), b.String())
}

func TestRenderTableShape(t *testing.T) {
	var b bytes.Buffer
	if err := renderTable(&b, testResults(t)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| 4 vCPUs ", "qemu (baseline)", // the baseline is named
		"1.06× (1.03–1.08)", "+6.00 ms", // ratio and difference round by round
		"+75.0 pp", // shares differ in percentage points
		"**not measured:** no size fits node 0",
		"- qnuma run refuses 4 vCPUs here",
		"1 interleaved round;",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "16 nodes") {
		t.Errorf("a detail row is in the table:\n%s", out)
	}
	// A zero baseline round gives no ratio, but the row and its difference stay.
	if !strings.Contains(out, "| qnuma run --host-nodes 1            | 100 %  | 100–100 |                      | +75.0 pp |") {
		t.Errorf("locality row without a ratio missing:\n%s", out)
	}
	// Within a table every line has the same width: the columns are padded.
	width := -1
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "|") {
			width = -1
			continue
		}
		if n := len([]rune(line)); width < 0 {
			width = n
		} else if n != width {
			t.Errorf("line %q is %d wide, want %d", line, n, width)
		}
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 1234.6: "1235", 12.34: "12.3", 1.234: "1.23", 0.01234: "0.0123", -5.5: "-5.50"} {
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bench -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./bench -update rewrites it); got:\n%s", path, got)
	}
}

// The preallocation figure's note names the sizes it tried, as tried.
func TestPreallocSizeNote(t *testing.T) {
	for _, tc := range []struct {
		tried []int
		want  string
	}{
		{[]int{4, 2, 1}, "sized 2 GiB: the largest of 4, 2 and 1 GiB that node 0, with 3.5 GiB free, has room for; too large: 4 GiB (x)"},
		{[]int{1}, "sized 2 GiB: the largest of 1 GiB that node 0, with 3.5 GiB free, has room for; too large: 4 GiB (x)"},
	} {
		if got := preallocSizeNote(2, tc.tried, 0, 3.5, []string{"4 GiB (x)"}); got != tc.want {
			t.Errorf("preallocSizeNote(%v) = %q, want %q", tc.tried, got, tc.want)
		}
	}
}
