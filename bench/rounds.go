package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// variant is one way of doing the thing a case measures.
type variant struct {
	name string
	argv []string
	// run measures once and returns the case's metrics, always as many.
	run func(ctx context.Context) ([]float64, error)
}

// interleave runs every variant once per round, rotating the order from
// round to round (ABC, BCA, CAB, ...), so that the machine's drifts and the
// cost of going first or last fall on every variant alike. With warm, an
// untimed round comes first (page cache, the kernel's first-run costs).
// It returns samples[variant][metric][round].
func interleave(ctx context.Context, rounds int, warm bool, vs []variant) ([][][]float64, error) {
	out := make([][][]float64, len(vs))
	if warm {
		for _, v := range vs {
			if _, err := v.run(ctx); err != nil {
				return nil, fmt.Errorf("%s (warm-up): %w", v.name, err)
			}
		}
	}
	for r := 0; r < rounds; r++ {
		for k := range vs {
			i := (r + k) % len(vs)
			v := vs[i]
			m, err := v.run(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s (round %d): %w", v.name, r+1, err)
			}
			if out[i] == nil {
				out[i] = make([][]float64, len(m))
			}
			if len(m) != len(out[i]) {
				return nil, fmt.Errorf("%s (round %d): %d metrics, earlier %d", v.name, r+1, len(m), len(out[i]))
			}
			for j, x := range m {
				out[i][j] = append(out[i][j], x)
			}
		}
		fmt.Fprintf(os.Stderr, "bench:   round %d/%d\n", r+1, rounds)
	}
	return out, nil
}

// metric picks one metric of every variant, as series for caseRows.
func metric(vs []variant, samples [][][]float64, j int) []series {
	ss := make([]series, len(vs))
	for i, v := range vs {
		ss[i] = series{variant: v.name, argv: v.argv, samples: samples[i][j]}
	}
	return ss
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

// timeCase runs vs in interleaved rounds and returns the case's rows in
// milliseconds, the first variant being the baseline.
func timeCase(ctx context.Context, name string, rounds int, warm bool, vs []variant) ([]Row, error) {
	samples, err := interleave(ctx, rounds, warm, vs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return caseRows(name, "ms", metric(vs, samples, 0), 0)
}
