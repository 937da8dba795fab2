package memobj

import (
	"strings"
	"testing"

	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

// smpCases are -smp values with their resolution as QEMU 7.2 makes it, or
// the refusal QEMU gives.
var smpCases = []struct {
	smp     SMP
	want    Topology
	refused string // in Resolve's error and in what QEMU prints
}{
	{smp: SMP{CPUs: 4}, want: Topology{CPUs: 4, MaxCPUs: 4, Sockets: 1, Dies: 1, Clusters: 1, Cores: 4, Threads: 1}},
	{smp: SMP{CPUs: 2, Sockets: 2}, want: Topology{CPUs: 2, MaxCPUs: 2, Sockets: 2, Dies: 1, Clusters: 1, Cores: 1, Threads: 1}},
	{smp: SMP{CPUs: 8, Sockets: 2, Threads: 2}, want: Topology{CPUs: 8, MaxCPUs: 8, Sockets: 2, Dies: 1, Clusters: 1, Cores: 2, Threads: 2}},
	{smp: SMP{CPUs: 8, Cores: 2}, want: Topology{CPUs: 8, MaxCPUs: 8, Sockets: 4, Dies: 1, Clusters: 1, Cores: 2, Threads: 1}},
	{smp: SMP{CPUs: 4, MaxCPUs: 8, Sockets: 2}, want: Topology{CPUs: 4, MaxCPUs: 8, Sockets: 2, Dies: 1, Clusters: 1, Cores: 4, Threads: 1}},
	{smp: SMP{CPUs: 8, Sockets: 2, Dies: 2, Cores: 2}, want: Topology{CPUs: 8, MaxCPUs: 8, Sockets: 2, Dies: 2, Clusters: 1, Cores: 2, Threads: 1}},
	{smp: SMP{Sockets: 2, Cores: 2, Threads: 2}, want: Topology{CPUs: 8, MaxCPUs: 8, Sockets: 2, Dies: 1, Clusters: 1, Cores: 2, Threads: 2}},
	{smp: SMP{CPUs: 2, Sockets: 1, Cores: 1, Threads: 1}, refused: "product of the hierarchy must match maxcpus"},
	{smp: SMP{CPUs: 6, Sockets: 4}, refused: "product of the hierarchy must match maxcpus"},
}

func TestSMPResolve(t *testing.T) {
	for _, tc := range smpCases {
		t.Run(strings.Join(tc.smp.opts(), ","), func(t *testing.T) {
			got, err := tc.smp.Resolve()
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Errorf("Resolve = %+v, %v; want refused with %q", got, err, tc.refused)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Resolve = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// The real QEMU resolves each -smp as Resolve does: query-cpus-fast has
// the vCPUs with the socket, die, core and thread ids IDs gives; what
// Resolve refuses, QEMU refuses.
func TestSMPResolveInQEMU(t *testing.T) {
	qemutest.Require(t)
	for _, tc := range smpCases {
		t.Run(strings.Join(tc.smp.opts(), ","), func(t *testing.T) {
			vm, err := qemutest.Start(t, "-smp", strings.Join(tc.smp.opts(), ","))
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("qemu -smp %s: %v; want refused with %q", tc.smp.opts(), err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cpus []qmp.CPU
			err = vm.Execute("query-cpus-fast", nil, &cpus)
			if err != nil {
				t.Fatal(err)
			}
			if len(cpus) != tc.want.CPUs {
				t.Fatalf("qemu has %d vcpus, Resolve says %d", len(cpus), tc.want.CPUs)
			}
			for _, c := range cpus {
				s, d, co, th := tc.want.IDs(c.CPUIndex)
				p := c.Props
				die := 0
				if p.DieID != nil {
					die = *p.DieID
				}
				if *p.SocketID != s || die != d || *p.CoreID != co || *p.ThreadID != th {
					t.Errorf("vcpu %d: qemu socket/die/core/thread %d/%d/%d/%d, IDs %d/%d/%d/%d", c.CPUIndex, *p.SocketID, die, *p.CoreID, *p.ThreadID, s, d, co, th)
				}
			}
		})
	}
}
