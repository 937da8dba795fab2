package balance_test

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/balance"
	"github.com/qnuma/qnuma/balance/balancetest"
	"github.com/qnuma/qnuma/ledger"
)

const gib = 1 << 30

func TestParseCPUTimes(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     map[int]balance.CPUTime
		err      string
	}{
		{"linux 6", "cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 4 1 2 50 3 1 1 1 7 0\ncpu1 3 0 0 60 0 0 0 0 0 0\nintr 12 0\n",
			map[int]balance.CPUTime{0: {Busy: 10, Idle: 53}, 1: {Busy: 3, Idle: 60}}, ""},
		{"sparse ids", "cpu0 1 0 0 1\ncpu8 2 0 0 2\n", map[int]balance.CPUTime{0: {Busy: 1, Idle: 1}, 8: {Busy: 2, Idle: 2}}, ""},
		{"no cpus", "cpu  1 2 3 4\nintr 0\n", nil, "no cpuN lines"},
		{"short", "cpu0 1 2 3\n", nil, "want at least 4"},
		{"bad id", "cpuX 1 2 3 4\n", nil, "bad cpu id"},
		{"signed id", "cpu+1 1 2 3 4\n", nil, "bad cpu id"},
		{"huge id", "cpu99999999 1 2 3 4\n", nil, "bad cpu id"},
		{"twice", "cpu0 1 2 3 4\ncpu0 1 2 3 4\n", nil, "listed twice"},
		{"bad number", "cpu0 1 x 3 4\n", nil, "column 2"},
		{"overflow", "cpu0 18446744073709551615 1 0 0\n", nil, "overflow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := balance.ParseCPUTimes([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for id, w := range tt.want {
				if got[id] != w {
					t.Errorf("cpu %d: %+v, want %+v", id, got[id], w)
				}
			}
		})
	}
}

func FuzzParseCPUTimes(f *testing.F) {
	f.Add([]byte("cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 4 1 2 50 3 1 1 1 7 0\n"))
	f.Add([]byte("cpu0 1 0 0 1\ncpu8 2 0 0 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := balance.ParseCPUTimes(b)
		if err != nil {
			return
		}
		for id, c := range got {
			if id < 0 || c.Total() < c.Busy {
				t.Fatalf("cpu %d: %+v", id, c)
			}
		}
	})
}

// TestSampler samples a written host twice: free memory as the planner
// counts it, CPU use and vCPU use over the interval, guest RAM per node
// and locality against the ledger's home.
func TestSampler(t *testing.T) {
	m := balancetest.Machine(2, 4, 16, 2, 12) // node 0: 2 GiB free, node 1: 12
	m.Nodes[0].InactiveFileKB = 1 << 20       // and 1 GiB inactive file pages
	root := m.Write(t)
	q := balancetest.QEMU{PID: 4242, StartTime: 99, RAM: map[int]uint64{0: 3 * gib, 1: gib}, VCPUTicks: []uint64{100, 100}, VCPUCPUs: cpuset.New(0, 1, 2, 3)}
	q.Write(t, root)
	gone := balancetest.QEMU{PID: 4343, StartTime: 5, RAM: map[int]uint64{0: gib}}
	gone.Write(t, root)
	times := map[int]balance.CPUTime{}
	for c := 0; c < 8; c++ {
		times[c] = balance.CPUTime{Busy: 1000, Idle: 1000}
	}
	balancetest.WriteCPUTimes(t, root, times)
	entries := []ledger.Entry{
		{Name: "a", QEMU: q.Proc(), HostNodes: []int{0}},
		{Name: "b", QEMU: ledger.Proc{PID: 4343, StartTime: 6}, HostNodes: []int{0}}, // pid reused
		{Name: "c", QEMU: ledger.Proc{PID: 4444, StartTime: 1}, HostNodes: []int{1}}, // exited
		{Name: "d", HostNodes: []int{1}},                                             // starting
	}
	s := &balance.Sampler{Root: root}
	first, err := s.Sample(entries, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if first.CPUKnown || first.Nodes[0].CPUPercent != 0 || first.VMs[0].VCPUUse != 0 {
		t.Errorf("first sample: CPU use known %v, node 0 %v%%, vm a %v CPUs: want none without an interval", first.CPUKnown, first.Nodes[0].CPUPercent, first.VMs[0].VCPUUse)
	}
	if n := first.Nodes[0]; n.TotalBytes != 16*gib || n.FreeBytes != 3*gib || n.CPUs != 4 {
		t.Errorf("node 0: %+v, want 16 GiB, 3 GiB free (MemFree + Inactive(file)), 4 CPUs", n)
	}
	a := first.VMs[0]
	if a.RAM[0] != 3*gib || a.RAM[1] != gib || a.LocalPercent != 75 || a.NotSampled != "" {
		t.Errorf("vm a: %+v, want 3 GiB on node 0, 1 on node 1, 75%% local", a)
	}
	for i, want := range []string{"", "pid 4343 is no longer its qemu", "its qemu (pid 4444) has exited", "its qemu has not started yet"} {
		if got := first.VMs[i].NotSampled; !strings.Contains(got, want) || (want == "") != (got == "") {
			t.Errorf("vm %s: not sampled %q, want %q", first.VMs[i].Entry.Name, got, want)
		}
	}

	// 100 ticks later (1 s): node 0's CPUs 75% busy, node 1's 25%; vm a's
	// two vCPUs ran 100 and 50 ticks: 1.5 CPUs.
	for c := 0; c < 8; c++ {
		busy := uint64(25)
		if c < 4 {
			busy = 75
		}
		times[c] = balance.CPUTime{Busy: 1000 + busy, Idle: 1000 + 100 - busy}
	}
	balancetest.WriteCPUTimes(t, root, times)
	q.VCPUTicks = []uint64{200, 150}
	q.Write(t, root)
	second, err := s.Sample(entries, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !second.CPUKnown || second.Nodes[0].CPUPercent != 75 || second.Nodes[1].CPUPercent != 25 {
		t.Errorf("second sample: known %v, nodes %.1f%% and %.1f%%, want 75 and 25", second.CPUKnown, second.Nodes[0].CPUPercent, second.Nodes[1].CPUPercent)
	}
	if u := second.VMs[0].VCPUUse; u != 1.5 {
		t.Errorf("vm a: %v CPUs, want 1.5", u)
	}
	if u := second.Nodes[0].Use(); u != 81.25 {
		t.Errorf("node 0 use %v, want 81.25 (memory: 13 of 16 GiB, more than cpu 75%%)", u)
	}
}

func TestSamplerFaults(t *testing.T) {
	root := balancetest.Machine(1, 2, 4).Write(t)
	if _, err := (&balance.Sampler{Root: root}).Sample(nil, time.Now()); err == nil || !strings.Contains(err.Error(), "read cpu times") {
		t.Errorf("no /proc/stat: %v", err)
	}
	balancetest.WriteCPUTimes(t, root, map[int]balance.CPUTime{0: {}, 1: {}})
	q := balancetest.QEMU{PID: 10, StartTime: 1, RAM: map[int]uint64{0: gib}}
	q.Write(t, root)
	// A numa_maps the kernel would not write is an error, not a VM left out.
	if err := writeFile(root, "proc/10/numa_maps", "7f0000000000 default N0=x\n"); err != nil {
		t.Fatal(err)
	}
	_, err := (&balance.Sampler{Root: root}).Sample([]ledger.Entry{{Name: "a", QEMU: q.Proc(), HostNodes: []int{0}}}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "sample vm a") {
		t.Errorf("bad numa_maps: %v", err)
	}
}

// TestSamplerGuestNodes: each guest node's memfd is told apart by its size
// and the host nodes its policy binds it to, and its pages judged against
// the ledger's host nodes for it; without a guest layout, or with a memfd
// the ledger does not describe, only the VM as a whole is judged.
func TestSamplerGuestNodes(t *testing.T) {
	root := balancetest.Machine(2, 4, 16).Write(t)
	balancetest.WriteCPUTimes(t, root, map[int]balance.CPUTime{0: {}, 1: {}})
	q := balancetest.QEMU{PID: 77, StartTime: 3, RAM: map[int]uint64{0: gib / 2, 1: 7 * gib / 2}, GuestNodes: []balancetest.GuestNode{
		{Size: 2 * gib, HostNodes: []int{0}, RAM: map[int]uint64{0: gib / 2, 1: 3 * gib / 2}},
		{Size: gib, HostNodes: []int{1}, RAM: map[int]uint64{1: gib}},
		{Size: gib, HostNodes: []int{1}, RAM: map[int]uint64{1: gib}},
	}}
	q.Write(t, root)
	e := ledger.Entry{Name: "a", QEMU: q.Proc(), HostNodes: []int{0, 1}, GuestNodes: []ledger.GuestNode{
		{ID: 0, HostNodes: []int{0}, MemoryBytes: 2 * gib, Policy: "bind"},
		{ID: 1, HostNodes: []int{1}, MemoryBytes: gib, Policy: "bind"},
		{ID: 2, HostNodes: []int{1}, MemoryBytes: gib, Policy: "bind"},
	}}
	s, err := (&balance.Sampler{Root: root}).Sample([]ledger.Entry{e}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v := s.VMs[0]
	if v.LocalPercent != 100 || v.RAMBytes() != 4*gib {
		t.Errorf("vm a: %.1f%% local, %d bytes: want 100%% of 4 GiB as a whole", v.LocalPercent, v.RAMBytes())
	}
	if len(v.GuestNodes) != 3 || v.GuestNodesNote != "" {
		t.Fatalf("guest nodes %+v (%s), want 3", v.GuestNodes, v.GuestNodesNote)
	}
	if g := v.GuestNodes[0]; g.ID != 0 || g.LocalPercent != 25 || g.RAM[1] != 3*gib/2 || g.Away() != 3*gib/2 {
		t.Errorf("guest node 0: %+v, want 25%% local, 1.5 GiB away on host node 1", g)
	}
	for _, g := range v.GuestNodes[1:] {
		if g.LocalPercent != 100 || g.Bytes() != gib {
			t.Errorf("guest node %d: %+v, want 1 GiB all local", g.ID, g)
		}
	}
	// Control: a ledger whose guest node 0 is bound elsewhere than its
	// memfd finds no guest nodes, and says why.
	e.GuestNodes[0].HostNodes = []int{1}
	s, err = (&balance.Sampler{Root: root}).Sample([]ledger.Entry{e}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if v := s.VMs[0]; v.GuestNodes != nil || !strings.Contains(v.GuestNodesNote, "no memfd mapping of qemu holds guest node 0") {
		t.Errorf("guest nodes %+v, note %q: want none found for guest node 0", v.GuestNodes, v.GuestNodesNote)
	}
	e.GuestNodes = nil
	s, _ = (&balance.Sampler{Root: root}).Sample([]ledger.Entry{e}, time.Now())
	if v := s.VMs[0]; v.GuestNodes != nil || !strings.Contains(v.GuestNodesNote, "no guest layout") {
		t.Errorf("no layout: guest nodes %+v, note %q", v.GuestNodes, v.GuestNodesNote)
	}
}
