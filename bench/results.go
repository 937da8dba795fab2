package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Results is one run of the bench, as written to results.json.
type Results struct {
	Started time.Time `json:"started"`
	// Seconds is the whole run's wall time.
	Seconds float64  `json:"seconds"`
	Quick   bool     `json:"quick"`
	Host    HostInfo `json:"host"`
	Figures []Figure `json:"figures"`
}

// HostInfo says what machine the figures come from.
type HostInfo struct {
	CPUs   int    `json:"cpus"`
	Nodes  []int  `json:"nodes"`
	Kernel string `json:"kernel"`
	QEMU   string `json:"qemu"`
	// KVM: /dev/kvm exists (else every VM runs under TCG).
	KVM bool `json:"kvm"`
}

// Figure is one of the bench's measurements, with its cases.
type Figure struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Rounds is how many interleaved rounds each case ran.
	Rounds int   `json:"rounds"`
	Rows   []Row `json:"rows"`
	// Notes are facts found while measuring (refusals, evidence).
	Notes []string `json:"notes,omitempty"`
	// Error says why the figure could not be measured; Rows is then empty.
	Error string `json:"error,omitempty"`
}

// Row is one variant of one case: its samples and how they compare with
// the case's baseline, round by round.
type Row struct {
	Case    string `json:"case"`
	Variant string `json:"variant"`
	// Argv is the command measured, when there is one.
	Argv     []string  `json:"argv,omitempty"`
	Unit     string    `json:"unit"`
	Baseline bool      `json:"baseline,omitempty"`
	Samples  []float64 `json:"samples"`
	Summary  Summary   `json:"summary"`
	// Ratio and Diff are per-round variant/baseline and variant-baseline;
	// nil for the baseline itself and for cases without one.
	Ratio *Summary `json:"ratio,omitempty"`
	Diff  *Summary `json:"diff,omitempty"`
	// Detail rows are in the JSON only, to keep the printed table short.
	Detail bool `json:"detail,omitempty"`
}

// series is the samples of one variant of a case, before summarizing.
type series struct {
	variant string
	argv    []string
	samples []float64
}

// caseRows summarizes a case's variants; base is the index of the baseline
// among them, or -1 for a case without one.
func caseRows(name, unit string, ss []series, base int) ([]Row, error) {
	rows := make([]Row, 0, len(ss))
	for i, s := range ss {
		sum, err := Summarize(s.samples)
		if err != nil {
			return nil, fmt.Errorf("case %s, %s: %w", name, s.variant, err)
		}
		r := Row{Case: name, Variant: s.variant, Argv: s.argv, Unit: unit, Baseline: i == base, Samples: s.samples, Summary: sum}
		if base >= 0 && i != base {
			ratio, diff, err := Paired(s.samples, ss[base].samples)
			if err != nil {
				return nil, fmt.Errorf("case %s, %s: %w", name, s.variant, err)
			}
			r.Ratio, r.Diff = ratio, &diff
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// writeJSON writes r to path atomically, making its directory.
func writeJSON(path string, r *Results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	return nil
}
