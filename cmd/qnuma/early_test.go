package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/topology"
)

// TestEarlyHostTakenOnce: the topology read as `qnuma run` starts is the
// host's, handed out once; a later read is a fresh one, and other commands
// read nothing early.
func TestEarlyHostTakenOnce(t *testing.T) {
	t.Cleanup(func() { earlyHost = nil })
	want, err := topology.Read("/")
	if err != nil {
		t.Skipf("this host's topology: %v", err)
	}
	startEarly([]string{"ps"})
	if earlyHost != nil {
		t.Fatal("qnuma ps started an early topology read")
	}
	startEarly([]string{"run", "--vcpus", "1"})
	if earlyHost == nil {
		t.Fatal("qnuma run started no early topology read")
	}
	first, err := readHost("/")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(layout(first), layout(want)) || !first.OnlineCPUs.Equals(want.OnlineCPUs) {
		t.Errorf("early read's nodes = %v, want the host's %v", layout(first), layout(want))
	}
	second, err := readHost("/")
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Error("a second read returned the early one again, not a fresh read")
	}
	startEarly([]string{"--membind=0", "--", "true"})
	if earlyHost == nil {
		t.Error("the numactl spelling started no early topology read")
	}
	if h, err := readHost(t.TempDir()); err == nil && h == first {
		t.Error("a read of another root took the early read of /")
	}
}

// layout is each node's id, CPUs and size: what two reads of a host agree
// on (free memory moves).
func layout(h *topology.Host) []string {
	var out []string
	for _, n := range h.Nodes {
		out = append(out, fmt.Sprintf("%d:%s:%d", n.ID, n.CPUs, n.MemTotal))
	}
	return out
}

// TestEarlyQEMUVersion: `qnuma run ... -- BINARY` reads BINARY's version
// from the cache while kong parses, handed out once and only for the
// binary the parse found; it never runs the binary (a cache miss is left
// to the probe), and without "--" nothing is looked up.
func TestEarlyQEMUVersion(t *testing.T) {
	t.Cleanup(func() { earlyHost, earlyQEMU = nil, nil })
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	bin := filepath.Join(dir, "qemu-system-x86_64")
	count := filepath.Join(dir, "runs")
	script := "#!/bin/sh\necho run >> " + count + "\necho 'QEMU emulator version 8.1.3'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	runs := func() int { b, _ := os.ReadFile(count); return strings.Count(string(b), "run") }
	args := []string{"run", "--vcpus", "1", "--", bin, "-m", "1G"}

	startEarly(args)
	if _, ok := cachedVersion(bin); ok {
		t.Fatal("an empty cache gave a version")
	}
	if n := runs(); n != 0 {
		t.Fatalf("the early lookup ran the binary %d times", n)
	}
	if _, err := versionCache().Probe(context.Background(), bin); err != nil {
		t.Fatal(err)
	}

	startEarly(args)
	v, ok := cachedVersion(bin)
	if !ok || v.String() != "8.1.3" {
		t.Errorf("cachedVersion = %v, %v; want 8.1.3 from the cache", v, ok)
	}
	if _, ok := cachedVersion(bin); ok {
		t.Error("the early answer was handed out twice")
	}
	startEarly(args)
	if _, ok := cachedVersion(filepath.Join(dir, "other")); ok {
		t.Error("the early answer for one binary was taken for another")
	}
	if n := runs(); n != 1 {
		t.Errorf("the binary ran %d times, want once (the probe's)", n)
	}
	startEarly([]string{"run", "--vcpus", "1"})
	if earlyQEMU != nil {
		t.Error("qnuma run without -- looked up a qemu")
	}
	for _, a := range [][]string{{"plan", "--", bin}, {"run", "--"}} {
		if got := qemuNamed(a); got != "" {
			t.Errorf("qemuNamed(%q) = %q, want none", a, got)
		}
	}
}
