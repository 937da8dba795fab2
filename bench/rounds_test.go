package main

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestInterleaveRotatesOrder(t *testing.T) {
	var calls []string
	mk := func(name string, metric float64) variant {
		return variant{name: name, run: func(context.Context) ([]float64, error) {
			calls = append(calls, name)
			return []float64{metric + float64(len(calls)), -metric}, nil
		}}
	}
	vs := []variant{mk("A", 100), mk("B", 200), mk("C", 300)}
	got, err := interleave(context.Background(), 3, true, vs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A", "B", "C", "A", "B", "C", "B", "C", "A", "C", "A", "B"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("call order = %v, want warm-up then ABC BCA CAB: %v", calls, want)
	}
	// Each sample lands with its own variant: metric 0 is 100/200/300 plus
	// the call's position, metric 1 the variant's constant.
	wantA := [][]float64{{104, 109, 111}, {-100, -100, -100}}
	if !reflect.DeepEqual(got[0], wantA) {
		t.Errorf("samples of A = %v, want %v", got[0], wantA)
	}
	ss := metric(vs, got, 1)
	if ss[2].variant != "C" || !reflect.DeepEqual(ss[2].samples, []float64{-300, -300, -300}) {
		t.Errorf("metric 1 of C = %+v", ss[2])
	}
}

func TestInterleaveErrors(t *testing.T) {
	boom := errors.New("qemu exited")
	tests := []struct {
		name string
		vs   []variant
		want string
	}{
		{"a run fails", []variant{
			{name: "ok", run: func(context.Context) ([]float64, error) { return []float64{1}, nil }},
			{name: "bad", run: func(context.Context) ([]float64, error) { return nil, boom }},
		}, "bad (round 1): qemu exited"},
		{"metric count changes", []variant{
			{name: "flaky", run: func() func(context.Context) ([]float64, error) {
				n := 0
				return func(context.Context) ([]float64, error) {
					n++
					return make([]float64, n), nil
				}
			}()},
		}, "flaky (round 2): 2 metrics, earlier 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := interleave(context.Background(), 2, false, tt.vs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLineLog(t *testing.T) {
	l := newLineLog(time.Now())
	l.Write([]byte("qnuma: step find qemu: took=1ms\nqnuma: started qe"))
	l.Write([]byte("mu pid=42\r\nqnuma: pinned vcpu vcpu=0\npartial"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := l.waitLine(ctx, func(s string) bool { return strings.HasPrefix(s, logStarted) })
	if err != nil || got.text != "qnuma: started qemu pid=42" {
		t.Fatalf("waitLine = %q, %v; want the line joined across writes, without \\r", got.text, err)
	}
	done := make(chan timedLine)
	go func() {
		x, _ := l.waitLine(ctx, func(s string) bool { return s == "partial tail" })
		done <- x
	}()
	l.Write([]byte(" tail\n"))
	if x := <-done; x.text != "partial tail" {
		t.Errorf("waitLine after a later write = %q", x.text)
	}
	l.Write([]byte("unterminated"))
	l.close()
	if _, err := l.waitLine(ctx, func(s string) bool { return s == "never" }); !errors.Is(err, errOutputEnded) {
		t.Errorf("waitLine on ended output: %v, want errOutputEnded", err)
	}
	if lines, _, _ := l.snapshot(); lines[len(lines)-1].text != "unterminated" {
		t.Errorf("close dropped the unterminated last line: %v", lines)
	}
}

func TestWithQMPNeverSharesArrays(t *testing.T) {
	base := make([]string, 2, 8) // room to grow in place
	base[0], base[1] = "qnuma", "run"
	held := append(base, "-S") // built from base, as the placement figure does
	a := withQMP(base, "/tmp/a.sock")
	b := withQMP(held, "/tmp/b.sock")
	if want := []string{"qnuma", "run", "-S"}; !reflect.DeepEqual(held, want) {
		t.Errorf("held argv became %v, want %v", held, want)
	}
	if want := []string{"qnuma", "run", "-qmp", "unix:/tmp/a.sock,server=on,wait=off"}; !reflect.DeepEqual(a, want) {
		t.Errorf("withQMP(base) = %v, want %v", a, want)
	}
	if b[2] != "-S" || b[4] != "unix:/tmp/b.sock,server=on,wait=off" {
		t.Errorf("withQMP(held) = %v", b)
	}
}
