package main

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/numastat"
)

// fakeClock advances only when a fake query says so.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestPingerWorst(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	trips := []time.Duration{time.Millisecond, 7 * time.Millisecond, 2 * time.Millisecond}
	stop := make(chan struct{})
	calls := 0
	pg := pinger{now: clock.now, gap: 0, query: func(context.Context) error {
		clock.t = clock.t.Add(trips[calls])
		calls++
		if calls == len(trips) {
			close(stop) // the round trip in flight still counts
		}
		return nil
	}}
	worst, n, err := pg.worst(context.Background(), stop)
	if err != nil {
		t.Fatal(err)
	}
	if worst != 7*time.Millisecond || n != 3 {
		t.Errorf("worst, n = %v, %d; want 7ms, 3", worst, n)
	}
}

func TestPingerError(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	boom := errors.New("qmp gone")
	calls := 0
	pg := pinger{now: clock.now, gap: 0, query: func(context.Context) error {
		calls++
		if calls == 2 {
			return boom
		}
		clock.t = clock.t.Add(3 * time.Millisecond)
		return nil
	}}
	worst, n, err := pg.worst(context.Background(), make(chan struct{}))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if worst != 3*time.Millisecond || n != 1 {
		t.Errorf("worst, n = %v, %d before the error; want 3ms, 1", worst, n)
	}
}

func TestPingerStoppedBeforeFirst(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	pg := pinger{now: time.Now, query: func(context.Context) error {
		t.Error("asked after stop")
		return nil
	}}
	if _, n, err := pg.worst(context.Background(), stop); err != nil || n != 0 {
		t.Errorf("n, err = %d, %v; want 0, nil", n, err)
	}
}

func TestParseMoveRate(t *testing.T) {
	tests := []struct {
		name, in string
		want     float64
		wantErr  string
	}{
		{"a GiB in half a second", `{"vm":"a","bytes_moved":1073741824,"seconds":0.5,"guest_nodes":[]}`, 2, ""},
		{"256 MiB in 1 s", `{"bytes_moved":268435456,"seconds":1}`, 0.25, ""},
		{"nothing moved", `{"bytes_moved":0,"seconds":0.01}`, 0, "nothing to measure"},
		{"no seconds", `{"bytes_moved":4096}`, 0, "no bytes_moved or seconds"},
		{"not JSON", `vm a guest node 0: host node 0 -> 1`, 0, "parse qnuma move --json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMoveRate([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("rate = %v GiB/s, want %v", got, tt.want)
			}
		})
	}
}

// metrics builds one variant's samples: every metric gets base + round.
func moveSamples(rounds int, f func(metric, round int) float64) [][]float64 {
	s := make([][]float64, nMoveMetrics)
	for j := range s {
		for r := 0; r < rounds; r++ {
			s[j] = append(s[j], f(j, r))
		}
	}
	return s
}

func TestMoveRows(t *testing.T) {
	mp := probeVariant{Name: "migratepages PID 0 1", Argv: []string{"migratepages", "PID", "0", "1"},
		Samples: moveSamples(2, func(j, r int) float64 { return float64(10*(j+1) + r) })}
	q := probeVariant{Name: "qnuma move --to-nodes 1",
		Samples: moveSamples(2, func(j, r int) float64 { return float64(20*(j+1) + r) })}
	rows, err := moveRows(&moveProbeResult{Sizes: []moveSizeResult{{moveCase: moveCase{MiB: 1024, Rounds: 2, Control: true}, Variants: []probeVariant{mp, q}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The rate case: migratepages is the baseline; qnuma's two rates are
	// its wall-time rate (metric mRate) and its own (mOwnRate).
	if rows[0].Case != "1 GiB guest RAM moved, node 0 → 1" || !rows[0].Baseline || rows[0].Unit != "GiB/s" {
		t.Fatalf("first row = %+v", rows[0])
	}
	if rows[1].Summary.Median != 20.5 || rows[1].Ratio == nil || rows[1].Ratio.Median != (20.0/10+21.0/11)/2 {
		t.Errorf("qnuma's rate row = %+v (ratio %+v), want median 20.5 paired with migratepages", rows[1], rows[1].Ratio)
	}
	if rows[2].Summary.Median != 40.5 || rows[2].Detail {
		t.Errorf("qnuma's own rate row = %+v, want median 40.5 shown", rows[2])
	}
	// Each stall case pairs a mover with its own VM's control.
	byCase := map[string][]Row{}
	for _, r := range rows {
		byCase[r.Case] = append(byCase[r.Case], r)
	}
	st := byCase["1 GiB: worst query-status round trip, qnuma's VM"]
	if len(st) != 2 || !st[0].Baseline || st[0].Summary.Median != 20*(mWorstIdle+1)+0.5 || st[1].Summary.Median != 20*(mWorstMove+1)+0.5 {
		t.Errorf("qnuma's stall rows = %+v", st)
	}
	st = byCase["1 GiB: worst query-status round trip, numactl's VM"]
	if len(st) != 2 || st[0].Summary.Median != 10*(mWorstIdle+1)+0.5 || st[1].Variant != "during migratepages PID 0 1" {
		t.Errorf("numactl's stall rows = %+v", st)
	}
	for _, c := range []string{"1 GiB: the move command's wall time", "1 GiB: guest RAM that left node 0", "1 GiB: query-status round trips during the move"} {
		if len(byCase[c]) != 2 || !byCase[c][0].Detail || !byCase[c][1].Detail {
			t.Errorf("case %q: %+v, want two detail rows", c, byCase[c])
		}
	}
}

// Without the control the worst round trips during the two moves are
// compared with each other: migratepages is the baseline.
func TestMoveRowsNoControl(t *testing.T) {
	mp := probeVariant{Name: "migratepages PID 0 1", Samples: moveSamples(2, func(j, r int) float64 { return float64(10*(j+1) + r) })}
	q := probeVariant{Name: "qnuma move --to-nodes 1", Samples: moveSamples(2, func(j, r int) float64 { return float64(20*(j+1) + r) })}
	rows, err := moveRows(&moveProbeResult{Sizes: []moveSizeResult{{moveCase: moveCase{MiB: 256, Rounds: 2}, Variants: []probeVariant{mp, q}}}})
	if err != nil {
		t.Fatal(err)
	}
	var st []Row
	for _, r := range rows {
		if strings.Contains(r.Case, "worst query-status") {
			st = append(st, r)
		}
		if strings.Contains(r.Variant, "no move") {
			t.Errorf("row %q / %q: a control that was not measured", r.Case, r.Variant)
		}
	}
	if len(st) != 2 || st[0].Detail || !st[0].Baseline || st[0].Variant != "during migratepages PID 0 1" ||
		st[1].Summary.Median != 20*(mWorstMove+1)+0.5 || st[1].Ratio == nil {
		t.Errorf("stall rows without a control = %+v", st)
	}
}

func TestParseMoveCases(t *testing.T) {
	got, err := parseMoveCases("256x3c,1024x2")
	if err != nil {
		t.Fatal(err)
	}
	want := []moveCase{{MiB: 256, Rounds: 3, Control: true}, {MiB: 1024, Rounds: 2}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseMoveCases = %+v, want %+v", got, want)
	}
	for _, c := range moveCases(false) {
		if back, err := parseMoveCases(c.String()); err != nil || back[0] != c {
			t.Errorf("%+v does not survive its flag form %q: %+v, %v", c, c.String(), back, err)
		}
	}
	for _, bad := range []string{"", "256", "256x", "x3", "256x0", "-1x2", "256x3cc", "256x3,"} {
		if _, err := parseMoveCases(bad); err == nil {
			t.Errorf("parseMoveCases(%q): no error", bad)
		}
	}
}

func TestMoveRowsRefusesShortProbe(t *testing.T) {
	full := probeVariant{Name: "a", Samples: moveSamples(1, func(int, int) float64 { return 1 })}
	short := probeVariant{Name: "b", Samples: [][]float64{{1}}}
	for name, vs := range map[string][]probeVariant{
		"one variant":   {full},
		"short metrics": {full, short},
	} {
		if _, err := moveRows(&moveProbeResult{Sizes: []moveSizeResult{{moveCase: moveCase{MiB: 256, Rounds: 1}, Variants: vs}}}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseMoveOutput(t *testing.T) {
	out := "probe-move: 256 MiB, qnuma ...\n  " + moveMarker + `{"sizes":[{"mib":256,"variants":[]}]}` + "\n"
	pr, err := parseMoveOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Sizes) != 1 || pr.Sizes[0].MiB != 256 {
		t.Errorf("parsed %+v", pr)
	}
	for _, bad := range []string{"no marker here\n", moveMarker + "{\n", moveMarker + `{"sizes":[]}` + "\n"} {
		if _, err := parseMoveOutput(bad); err == nil {
			t.Errorf("parseMoveOutput(%q): no error", bad)
		}
	}
}

func TestBytesOnAndSizeName(t *testing.T) {
	s := &numastat.Sample{RAM: []numastat.NodeBytes{{Node: 0, Bytes: 5}, {Node: 1, Bytes: 7}}}
	if bytesOn(s, 1) != 7 || bytesOn(s, 2) != 0 {
		t.Errorf("bytesOn = %d, %d; want 7, 0", bytesOn(s, 1), bytesOn(s, 2))
	}
	for mib, want := range map[int]string{256: "256 MiB", 1024: "1 GiB", 1536: "1536 MiB", 2048: "2 GiB"} {
		if got := sizeName(mib); got != want {
			t.Errorf("sizeName(%d) = %q, want %q", mib, got, want)
		}
	}
}

func TestNodeMemFreeKiB(t *testing.T) {
	meminfo := "Node 1 MemTotal:        1572864 kB\nNode 1 MemFree:         1498112 kB\nNode 1 MemUsed:           74752 kB\n"
	if got, err := nodeMemFreeKiB(meminfo); err != nil || got != 1498112 {
		t.Errorf("nodeMemFreeKiB = %d, %v; want 1498112", got, err)
	}
	if _, err := nodeMemFreeKiB("Node 1 MemTotal: 1 kB\n"); err == nil {
		t.Error("no MemFree: no error")
	}
}
