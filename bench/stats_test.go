package main

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		in      []float64
		want    Summary
		wantErr string
	}{
		{"one", []float64{7}, Summary{N: 1, Median: 7, Min: 7, Max: 7, Q1: 7, Q3: 7}, ""},
		{"odd, unsorted", []float64{5, 1, 3}, Summary{N: 3, Median: 3, Min: 1, Max: 5, Q1: 2, Q3: 4}, ""},
		{"even interpolates", []float64{4, 1, 3, 2}, Summary{N: 4, Median: 2.5, Min: 1, Max: 4, Q1: 1.75, Q3: 3.25}, ""},
		{"outlier moves the max, not the median", []float64{10, 11, 12, 13, 900}, Summary{N: 5, Median: 12, Min: 10, Max: 900, Q1: 11, Q3: 13}, ""},
		{"empty", nil, Summary{}, "no samples"},
		{"NaN", []float64{1, math.NaN()}, Summary{}, "sample 1 is NaN"},
		{"infinite", []float64{math.Inf(1)}, Summary{}, "sample 0 is +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Summarize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Summarize(%v) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSummarizeLeavesInputAlone(t *testing.T) {
	in := []float64{3, 1, 2}
	if _, err := Summarize(in); err != nil {
		t.Fatal(err)
	}
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("Summarize sorted its caller's slice: %v", in)
	}
}

func TestPaired(t *testing.T) {
	tests := []struct {
		name              string
		v, base           []float64
		wantRatio         *Summary
		wantDiff          Summary
		wantErr           string
		wantErrIsNoSample bool
	}{
		{
			name: "round by round", v: []float64{110, 220, 90}, base: []float64{100, 200, 100},
			wantRatio: &Summary{N: 3, Median: 1.1, Min: 0.9, Max: 1.1, Q1: 1, Q3: 1.1},
			wantDiff:  Summary{N: 3, Median: 10, Min: -10, Max: 20, Q1: 0, Q3: 15},
		},
		{
			name: "a zero baseline leaves only the difference", v: []float64{100, 100}, base: []float64{50, 0},
			wantDiff: Summary{N: 2, Median: 75, Min: 50, Max: 100, Q1: 62.5, Q3: 87.5},
		},
		{name: "unpaired", v: []float64{1, 2}, base: []float64{1}, wantErr: "2 against 1 baseline samples"},
		{name: "nothing", v: nil, base: nil, wantErr: "no samples", wantErrIsNoSample: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ratio, diff, err := Paired(tt.v, tt.base)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Paired error = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.wantErrIsNoSample && !errors.Is(err, errNoSamples) {
					t.Errorf("Paired error %v does not wrap errNoSamples", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !closeSummary(diff, tt.wantDiff) {
				t.Errorf("diff = %+v, want %+v", diff, tt.wantDiff)
			}
			switch {
			case tt.wantRatio == nil && ratio != nil:
				t.Errorf("ratio = %+v, want none", *ratio)
			case tt.wantRatio != nil && (ratio == nil || !closeSummary(*ratio, *tt.wantRatio)):
				t.Errorf("ratio = %+v, want %+v", ratio, *tt.wantRatio)
			}
		})
	}
}

func closeSummary(a, b Summary) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return a.N == b.N && near(a.Median, b.Median) && near(a.Min, b.Min) && near(a.Max, b.Max) && near(a.Q1, b.Q1) && near(a.Q3, b.Q3)
}

func TestCaseRows(t *testing.T) {
	ss := []series{
		{variant: "qemu", samples: []float64{100, 120}},
		{variant: "qnuma", argv: []string{"qnuma", "run"}, samples: []float64{110, 126}},
	}
	rows, err := caseRows("vm", "ms", ss, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || !rows[0].Baseline || rows[1].Baseline {
		t.Fatalf("rows = %+v, want the first as baseline", rows)
	}
	if rows[0].Ratio != nil || rows[0].Diff != nil {
		t.Errorf("baseline compared with itself: %+v", rows[0])
	}
	if rows[1].Ratio == nil || math.Abs(rows[1].Ratio.Median-1.075) > 1e-9 {
		t.Errorf("qnuma ratio = %+v, want median (1.1+1.05)/2", rows[1].Ratio)
	}
	if rows[1].Diff == nil || rows[1].Diff.Median != 8 || rows[1].Summary.Median != 118 {
		t.Errorf("qnuma diff %+v summary %+v, want median diff 8 and median 118", rows[1].Diff, rows[1].Summary)
	}
	if _, err := caseRows("vm", "ms", []series{{variant: "empty"}}, 0); !errors.Is(err, errNoSamples) {
		t.Errorf("a variant without samples: error %v, want errNoSamples", err)
	}
	noBase, err := caseRows("steps", "ms", ss, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range noBase {
		if r.Baseline || r.Ratio != nil || r.Diff != nil {
			t.Errorf("case without baseline has a comparison: %+v", r)
		}
	}
}
