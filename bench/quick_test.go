package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/test/vm"
)

// TestQuickRun builds qnuma and the bench from this checkout and runs the
// bench's quick mode: every figure must be measured, with samples, and the
// figures that are qnuma's promises must hold.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VMs and boots the test host: not under -short")
	}
	for _, bin := range []string{"qemu-system-x86_64", "numactl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (make deps installs it)", bin)
		}
	}
	vm.Require(t) // the locality figure boots the test host
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	dir := t.TempDir()
	for pkg, out := range map[string]string{"./cmd/qnuma": "qnuma", "./bench": "qnuma-bench"} {
		cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out := filepath.Join(dir, "out", "results.json")
	// The move and balance figures boot a test host of their own and move
	// hundreds of MiB under TCG (3-4 minutes of make test's 2 CPUs even in
	// quick mode); what they measure is proven by test/vm's move and
	// balance scenarios, and their parsing by move_test.go and
	// balance_test.go. The rest run here.
	var ids []string
	var want []figureDef
	for _, f := range figures {
		if f.id != "move" && f.id != "balance" {
			ids = append(ids, f.id)
			want = append(want, f)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "qnuma-bench"), "-quick", "-only", strings.Join(ids, ","), "-qnuma", filepath.Join(dir, "qnuma"), "-out", out)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	table, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench -quick: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), table)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if !res.Quick || res.Host.CPUs == 0 || res.Host.QEMU == "" {
		t.Errorf("results header %+v", res)
	}
	if len(res.Figures) != len(want) {
		t.Fatalf("%d figures, want %d", len(res.Figures), len(want))
	}
	for i, f := range res.Figures {
		if f.ID != want[i].id {
			t.Errorf("figure %d is %q, want %q", i, f.ID, want[i].id)
		}
		if f.Error != "" || len(f.Rows) == 0 {
			t.Errorf("figure %s not measured: %q, %d rows", f.ID, f.Error, len(f.Rows))
		}
		if !strings.Contains(string(table), f.Title) {
			t.Errorf("the printed table lacks %q", f.Title)
		}
		for _, r := range f.Rows {
			if len(r.Samples) == 0 || len(r.Samples) != r.Summary.N {
				t.Errorf("%s / %s / %s: %d samples, summary of %d", f.ID, r.Case, r.Variant, len(r.Samples), r.Summary.N)
			}
			for _, x := range r.Samples {
				if (r.Unit == "ms" || r.Unit == "plans/s") && x <= 0 && r.Case != "vCPU threads' CPU time when the last was pinned" {
					t.Errorf("%s / %s / %s: sample %v %s", f.ID, r.Case, r.Variant, x, r.Unit)
				}
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "out", "results.md"))
	if err != nil || string(md) != string(table) {
		t.Errorf("results.md (%v) differs from the printed table", err)
	}

	// What qnuma promises, seen through the bench.
	promise := func(fig, caseHas, variantHas string, want float64) {
		t.Helper()
		for _, f := range res.Figures {
			for _, r := range f.Rows {
				if f.ID == fig && strings.Contains(r.Case, caseHas) && strings.HasPrefix(r.Variant, variantHas) {
					if r.Summary.Min != want || r.Summary.Max != want {
						t.Errorf("%s / %s / %s: %v..%v %s, want %v", fig, r.Case, r.Variant, r.Summary.Min, r.Summary.Max, r.Unit, want)
					}
					return
				}
			}
		}
		t.Errorf("%s: no row %q / %q", fig, caseHas, variantHas)
	}
	promise("placement", "reset vector", "qnuma run", 100)
	promise("locality", "guest RAM on node 1", "qnuma run", 100)
	promise("locality", "vCPU samples on node 1", "qnuma run", 100)
}
