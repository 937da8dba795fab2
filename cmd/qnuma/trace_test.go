package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

var traceLine = regexp.MustCompile(`^qnuma: trace mono=\d+\.\d{6} \+\d+\.\d{3}ms (.+)$`)

func TestTracer(t *testing.T) {
	for _, tc := range []struct {
		env        string
		wantPhases []string
	}{
		{"", nil},
		{"0", nil},
		{"1", []string{"init", "read host topology"}},
	} {
		var b bytes.Buffer
		tr := newTracer(tc.env, &b)
		tr.Mark("read host topology")
		if tr.on() != (tc.wantPhases != nil) {
			t.Errorf("QNUMA_TRACE=%q: on() = %v", tc.env, tr.on())
		}
		var phases []string
		for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			if l == "" {
				continue
			}
			m := traceLine.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("QNUMA_TRACE=%q: line %q is not a trace line", tc.env, l)
			}
			phases = append(phases, m[1])
		}
		if strings.Join(phases, "|") != strings.Join(tc.wantPhases, "|") {
			t.Errorf("QNUMA_TRACE=%q: phases %q, want %q", tc.env, phases, tc.wantPhases)
		}
	}
}

// With tracing on, the launcher's step lines are trace lines, shown
// without -v; warnings too.
func TestCLILoggerTraces(t *testing.T) {
	var b bytes.Buffer
	saved := trace
	defer func() { trace = saved }()
	trace = newTracer("1", &b)
	log := newCLILogger(&b, false)
	log.Info("step", "name", "start", "took", "1ms")
	log.Warn("pinning failed")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{"init", "step start: took=1ms", "warning: pinning failed"}
	if len(lines) != len(want) {
		t.Fatalf("got %q, want phases %q", lines, want)
	}
	for i, l := range lines {
		m := traceLine.FindStringSubmatch(l)
		if m == nil || m[1] != want[i] {
			t.Errorf("line %d = %q, want a trace line of %q", i, l, want[i])
		}
	}
	// Off, it is the plain -v format and Info needs -v.
	trace = newTracer("", &b)
	b.Reset()
	newCLILogger(&b, false).Info("step", "name", "start")
	newCLILogger(&b, true).Info("step", "name", "start", "took", "1ms")
	if got := b.String(); got != "qnuma: step start: took=1ms\n" {
		t.Errorf("plain lines: got %q", got)
	}
}
