package main

import (
	"fmt"
	"reflect"
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
