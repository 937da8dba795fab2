package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseBenchOutput(t *testing.T) {
	lines, err := parseBenchOutput(readTestdata(t, "plan-bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 84 {
		t.Errorf("%d results, want 7 host node counts × 4 placed counts × 3 VM kinds = 84", len(lines))
	}
	first := benchLine{Name: "BenchmarkMake/nodes=1/cpus=16/placed=0/one-node", N: 3, NsPerOp: 42671}
	if lines[0] != first {
		t.Errorf("first result %+v, want %+v (GOMAXPROCS suffix cut)", lines[0], first)
	}
	last := lines[len(lines)-1]
	if last.Name != "BenchmarkMake/nodes=64/cpus=1024/placed=1000/wide-dedicated" || last.NsPerOp != 8244076 {
		t.Errorf("last result %+v", last)
	}
}

func TestParseBenchOutputErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"nothing ran", "PASS\nok  \tgithub.com/qnuma/qnuma/plan\t0.01s\n", "no benchmark results"},
		{"bad count", "BenchmarkMake/x-2  many  100 ns/op\n", "iterations"},
		{"zero ns/op", "BenchmarkMake/x-2  3  0 ns/op\n", "ns/op"},
		{"failed", "--- FAIL: BenchmarkMake/x\nFAIL\n", "no benchmark results"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseBenchOutput([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPlanningRows(t *testing.T) {
	pass, err := parseBenchOutput(readTestdata(t, "plan-bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// A second pass twice as fast: every ratio to the baseline is unchanged.
	faster := make([]benchLine, len(pass))
	for i, l := range pass {
		faster[i] = l
		faster[i].NsPerOp /= 2
	}
	rows, sizes, slowest, err := planningRows([][]benchLine{pass, faster})
	if err != nil {
		t.Fatal(err)
	}
	if sizes != 28 || len(rows) != 3*28 {
		t.Fatalf("%d sizes, %d rows; want 28 sizes per VM kind, 84 rows", sizes, len(rows))
	}
	base := rows[0]
	if !base.Baseline || base.Variant != "1 nodes, 16 CPUs, 0 VMs placed" || base.Detail || base.Unit != "plans/s" {
		t.Errorf("first row %+v, want the 1-node baseline, in the table", base)
	}
	if want := 1e9 / 42671; math.Abs(base.Samples[0]-want) > 1e-6 || math.Abs(base.Samples[1]-2*want) > 1e-6 {
		t.Errorf("baseline samples %v, want %v and twice that", base.Samples, want)
	}
	shown := 0
	for _, r := range rows {
		if !r.Detail {
			shown++
		}
		if !r.Baseline && (r.Ratio == nil || r.Ratio.Max-r.Ratio.Min > 1e-9) {
			t.Errorf("%s / %s: ratio %+v, want the same in both passes", r.Case, r.Variant, r.Ratio)
		}
	}
	if shown != 3*len(planTableSizes) {
		t.Errorf("%d rows in the table, want %d", shown, 3*len(planTableSizes))
	}
	if slowest.Variant != "64 nodes, 1024 CPUs, 1000 VMs placed" || !strings.Contains(slowest.Case, "dedicated") {
		t.Errorf("slowest = %s / %s, want the dedicated wide VM on the largest host", slowest.Case, slowest.Variant)
	}
	if _, _, _, err := planningRows([][]benchLine{pass, pass[:10]}); err == nil {
		t.Error("a pass missing results was accepted")
	}
	if _, _, _, err := planningRows([][]benchLine{pass[3:]}); err == nil {
		t.Error("results without the 1-node baseline were accepted")
	}
}
