package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseNodeMemFree(t *testing.T) {
	// A node's meminfo as the test host's kernel (6.1) writes it.
	const meminfo = `Node 0 MemTotal:         985212 kB
Node 0 MemFree:          217716 kB
Node 0 MemUsed:          767496 kB
Node 0 Inactive(file):    14120 kB
`
	tests := []struct {
		name, in string
		want     int
		wantErr  string
	}{
		{"test host", meminfo, 212, ""},
		{"under a MiB", "Node 1 MemFree: 1000 kB\n", 0, ""},
		{"no MemFree", "Node 0 MemTotal: 985212 kB\n", 0, "no MemFree line"},
		{"not a number", "Node 0 MemFree: 12x kB\n", 0, `MemFree "12x"`},
		{"other unit", "Node 0 MemFree: 12 MB\n", 0, "no MemFree line"},
		{"empty", "", 0, "no MemFree line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNodeMemFree(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// numad 0.5+20150602's log at -l 6 in the test host: the move of one VM,
// then scans that move nothing.
const numadLogExcerpt = `Tue Dec  1 12:32:00 2026: Candidates: 2
1184: PID 144: (qemu-system-x86), Threads  4, MBs_size    853, MBs_used    361, CPUs_used   99, Magnitude  35739, Nodes: 0-1
1184: PID 153: (qemu-system-x86), Threads  4, MBs_size    853, MBs_used    348, CPUs_used  100, Magnitude  34800, Nodes: 0-1
Tue Dec  1 12:32:00 2026: Advising pid 144 (qemu-system-x86) move from nodes (0-1) to nodes (1)
Tue Dec  1 12:32:21 2026: PID 144 moved to node(s) 1 in 20.61 seconds
Tue Dec  1 12:32:26 2026: Candidates: 2
3752: PID 153: (qemu-system-x86), Threads  3, MBs_size    853, MBs_used    346, CPUs_used  100, Magnitude  34600, Nodes: 0-1
Tue Dec  1 12:32:41 2026: Could not open stat file: /proc/291/stat
`

func TestNumadMoves(t *testing.T) {
	tests := []struct {
		name, log string
		want      []string
	}{
		{"one move", numadLogExcerpt, []string{"PID 144 moved to node(s) 1 in 20.61 seconds"}},
		{"candidates only", strings.Join(strings.Split(numadLogExcerpt, "\n")[:3], "\n"), nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := numadMoves(tt.log); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestQnumaMoves(t *testing.T) {
	const out = `moved b: guest nodes 0:0 -> 0:1, 81920 pages in 16.827s, locality 100.0% -> 100.0%: node 0 is at 99.6% use
nothing to do: no node is over 85% use
  moved indented is not a move line
`
	want := []string{"moved b: guest nodes 0:0 -> 0:1, 81920 pages in 16.827s, locality 100.0% -> 100.0%: node 0 is at 99.6% use"}
	if got := qnumaMoves(out); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := qnumaMoves("nothing to do\n"); got != nil {
		t.Fatalf("no move lines: got %q", got)
	}
}

func TestParseBalanceOutput(t *testing.T) {
	v := probeVariant{Name: "qnuma balance --interval 5s", Samples: [][]float64{{21.5}, {16.8}, {4.7}, {100}, {1}}}
	line := func(br balanceResult) string {
		b, err := json.Marshal(br)
		if err != nil {
			t.Fatal(err)
		}
		return balanceMarker + string(b)
	}
	t.Run("found among the test host's lines", func(t *testing.T) {
		out := "probe: qnuma round 1: ...\n" + line(balanceResult{Variants: []probeVariant{v}, NoNumad: "no numad binary"}) + "\nqnuma-vm: exit 0\n"
		br, err := parseBalanceOutput(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(br.Variants) != 1 || br.Variants[0].Samples[0][0] != 21.5 || br.NoNumad != "no numad binary" {
			t.Fatalf("got %+v", br)
		}
	})
	short := v
	short.Samples = short.Samples[:2]
	tests := []struct{ name, out, want string }{
		{"no result line", "probe: vm a: exited\n", "printed no result"},
		{"no variants", line(balanceResult{}), "no variants"},
		{"a metric missing", line(balanceResult{Variants: []probeVariant{short}}), "has 2 metrics, want 5"},
		{"broken JSON", balanceMarker + "{\"variants\": [", "parse balance probe result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBalanceOutput(tt.out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// The spinning guest's boot sector: `jmp $` (EB FE) at its start and the
// BIOS boot signature 55 AA at bytes 510-511, zeros between.
func TestSpinSector(t *testing.T) {
	s := spinSector()
	if len(s) != 512 {
		t.Fatalf("%d bytes, want 512", len(s))
	}
	if s[0] != 0xeb || s[1] != 0xfe || s[510] != 0x55 || s[511] != 0xaa {
		t.Fatalf("code % x, signature % x", s[:2], s[510:])
	}
	for i, c := range s[2:510] {
		if c != 0 {
			t.Fatalf("byte %d is %#x, want 0", i+2, c)
		}
	}
}

func TestMoveTook(t *testing.T) {
	tests := []struct {
		name, line string
		parse      func(string) (time.Duration, error)
		want       time.Duration
		wantErr    string
	}{
		{"numad", "PID 144 moved to node(s) 1 in 20.61 seconds", numadMoveTook, 20610 * time.Millisecond, ""},
		{"numad, whole seconds", "PID 9 moved to node(s) 0-1 in 3 seconds", numadMoveTook, 3 * time.Second, ""},
		{"numad, no duration", "PID 144 moved to node(s) 1", numadMoveTook, 0, `no "in N seconds"`},
		{"numad, not a number", "PID 144 moved to node(s) 1 in soon seconds", numadMoveTook, 0, `duration "soon"`},
		{"numad, negative", "PID 144 moved to node(s) 1 in -2 seconds", numadMoveTook, 0, `duration "-2"`},
		{"qnuma", "moved b: guest nodes 0:0 -> 0:1, 81920 pages in 16.827s, locality 100.0% -> 100.0%: node 0 is at 99.6% use", qnumaMoveTook, 16827 * time.Millisecond, ""},
		{"qnuma, over a minute", "moved a: guest nodes 0:0 -> 0:1, 81920 pages in 1m11.35s, locality 100.0% -> 100.0%: why", qnumaMoveTook, 71350 * time.Millisecond, ""},
		{"qnuma, no duration", "moved a: guest nodes 0:0 -> 0:1", qnumaMoveTook, 0, `no "pages in D,"`},
		{"qnuma, bad duration", "moved a: guest nodes 0:0 -> 0:1, 81920 pages in 16 s, locality", qnumaMoveTook, 0, `duration "16 s"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
