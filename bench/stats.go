package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Summary is the spread of repeated samples of one figure.
type Summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Q1 and Q3 are the quartiles (linear interpolation between the
	// closest ranks, as R's default and numpy's "linear").
	Q1 float64 `json:"q1"`
	Q3 float64 `json:"q3"`
}

// errNoSamples is returned when a figure has nothing to summarize.
var errNoSamples = errors.New("no samples")

// Summarize returns the median, quartiles and range of xs. NaN and
// infinite samples are refused: they mean a measurement went wrong.
func Summarize(xs []float64) (Summary, error) {
	if len(xs) == 0 {
		return Summary{}, errNoSamples
	}
	s := slices.Clone(xs)
	for i, x := range s {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return Summary{}, fmt.Errorf("summarize: sample %d is %v", i, x)
		}
	}
	slices.Sort(s)
	return Summary{
		N:      len(s),
		Median: quantile(s, 0.5),
		Min:    s[0],
		Max:    s[len(s)-1],
		Q1:     quantile(s, 0.25),
		Q3:     quantile(s, 0.75),
	}, nil
}

// quantile of sorted s at q in [0,1], interpolating between closest ranks.
func quantile(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// Paired compares samples of a variant with the baseline's samples taken in
// the same rounds: per round the ratio v/base and the difference v-base,
// summarized. Pairing by round cancels the machine's slow drifts that
// interleaving leaves in both. ratio is nil when a baseline sample is zero
// (a share of 0 %): the difference still says how far apart they are.
func Paired(v, base []float64) (ratio *Summary, diff Summary, err error) {
	if len(v) != len(base) {
		return nil, diff, fmt.Errorf("pair samples: %d against %d baseline samples", len(v), len(base))
	}
	rs := make([]float64, 0, len(v))
	ds := make([]float64, len(v))
	for i := range v {
		if base[i] != 0 {
			rs = append(rs, v[i]/base[i])
		}
		ds[i] = v[i] - base[i]
	}
	if diff, err = Summarize(ds); err != nil {
		return nil, diff, fmt.Errorf("pair samples: %w", err)
	}
	if len(rs) < len(v) {
		return nil, diff, nil
	}
	r, err := Summarize(rs)
	if err != nil {
		return nil, diff, fmt.Errorf("pair samples: %w", err)
	}
	return &r, diff, nil
}
