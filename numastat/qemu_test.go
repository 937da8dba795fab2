package numastat

import (
	"reflect"
	"testing"

	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/topology"
)

// A real QEMU with 64 MiB bound to node 0: its guest RAM is found by size
// and is all on node 0, and both vCPU threads are seen.
func TestSampleRealQEMU(t *testing.T) {
	pid := qemutest.StartPID(t, qemutest.StatArgs...)
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Take("/", host, pid, Home{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []NodeBytes{{Node: 0, Bytes: 64 << 20}}; !reflect.DeepEqual(s.RAM, want) {
		t.Errorf("guest RAM = %+v, want %+v", s.RAM, want)
	}
	if s.RAMMatch != MatchExact || s.RAMMappings != 1 {
		t.Errorf("guest RAM found by %q in %d mappings, want one by exact size", s.RAMMatch, s.RAMMappings)
	}
	if !reflect.DeepEqual(s.HomeNodes, []int{0}) || s.LocalPercent != 100 || s.LowLocal || s.RemoteBytes != 0 {
		t.Errorf("home %v local %.1f%% remote %d, want node 0, 100%%, 0", s.HomeNodes, s.LocalPercent, s.RemoteBytes)
	}
	if len(s.VCPUs) != 2 {
		t.Fatalf("vcpus = %+v, want 2 (threads %d)", s.VCPUs, s.Threads)
	}
	for i, v := range s.VCPUs {
		if v.Index != i || v.Comm == "" || !v.Allowed.Equals(host.Allowed.CPUs) || !host.OnlineCPUs.Contains(v.LastCPU) || v.LastNode != 0 {
			t.Errorf("vcpu %d = %+v (host allows %s)", i, v, host.Allowed.CPUs)
		}
	}
	// Sampling twice: nothing ran outside node 0 (the host has one node).
	next, err := Take("/", host, pid, Home{Nodes: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	next.Since(s)
	if next.OutsideSince != 0 || !next.HomeGiven {
		t.Errorf("second sample: outside since %d, home given %v", next.OutsideSince, next.HomeGiven)
	}
}
