package qemucmd

import (
	"slices"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

// What the model renders, QEMU 7.2 takes and places as written: the
// topology, guest nodes by -numa cpu, backends in both forms with their
// host nodes, policy and share, thread-contexts in both forms, distances,
// HMAT, and memory devices on their nodes.
func TestRenderedInQEMU(t *testing.T) {
	qemutest.Require(t)
	const M = 1 << 20
	node0 := cpuset.New(0)
	c := &Cmdline{Binary: qemutest.Binary}
	c.Append(
		Machine{Type: "pc", HMAT: ptr(true)},
		SMP{CPUs: 4, MaxCPUs: 4, Sockets: 2, Cores: 2, Threads: 1},
		Memory{Size: 256 * M, Slots: 2, MaxMem: 1024 * M},
		Name{Guest: "qemucmd", DebugThreads: ptr(true)},
		ThreadContext{ID: "tc0", NodeAffinity: node0, HasNodes: true},
		ThreadContext{JSON: true, ID: "tc1", CPUAffinity: cpuset.New(0), HasCPUs: true},
		Backend{JSON: true, Type: "ram", ID: "m0", Size: 128 * M, HostNodes: node0, HasHostNodes: true, Policy: "bind",
			Prealloc: ptr(true), PreallocThreads: ptr(1), PreallocContext: "tc1"},
		Backend{Type: "memfd", ID: "m1", Size: 128 * M, Share: ptr(true), HostNodes: node0, HasHostNodes: true, Policy: "preferred",
			Prealloc: ptr(true), PreallocContext: "tc0"},
		Backend{Type: "ram", ID: "m2", Size: 128 * M},
		Backend{JSON: true, Type: "ram", ID: "m3", Size: 128 * M, Share: ptr(false)},
		NumaNode{NodeID: ptr(0), Memdev: "m0", Initiator: ptr(0)},
		NumaNode{NodeID: ptr(1), Memdev: "m1", Initiator: ptr(1)},
		NumaCPU{NodeID: ptr(0), SocketID: ptr(0)},
		NumaCPU{NodeID: ptr(1), SocketID: ptr(1)},
		NumaDist{Src: 0, Dst: 1, Val: 21}, NumaDist{Src: 1, Dst: 0, Val: 21},
	)
	for _, i := range []int{0, 1} {
		for _, j := range []int{0, 1} {
			lat := uint64(10 + 10*(i^j))
			c.Append(NumaHMATLB{Initiator: i, Target: j, Hierarchy: "memory", DataType: "access-latency", Latency: &lat},
				NumaHMATLB{Initiator: i, Target: j, Hierarchy: "memory", DataType: "access-bandwidth", Bandwidth: uint64(200-100*(i^j)) * M})
		}
	}
	c.Append(
		NumaHMATCache{NodeID: 0, Size: 10 * 1024, Level: 1, Associativity: "direct", Policy: "write-back", Line: 8},
		MemoryDevice{Driver: "pc-dimm", ID: "dimm0", Memdev: "m2", Node: ptr(1)},
		MemoryDevice{JSON: true, Driver: "virtio-mem-pci", ID: "vmem0", Memdev: "m3", Node: ptr(0), Other: []Prop{{"requested-size", "0"}}},
	)
	argv := c.Argv()
	back, err := Parse(argv)
	if err != nil {
		t.Fatalf("Parse(%q): %v", argv, err)
	}
	for i, a := range back.Args {
		if !slices.Equal(a.Strings(), c.Args[i].Strings()) || a.Opt == nil {
			t.Errorf("argument %d: %q parses to %+v", i, c.Args[i].Strings(), a)
		}
	}

	vm, err := qemutest.Start(t, argv[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := vm.Memdevs()
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		size            uint64
		policy          string
		share, prealloc bool
		nodes           []int
	}
	wants := map[string]want{
		"m0": {128 * M, "bind", false, true, []int{0}},
		"m1": {128 * M, "preferred", true, true, []int{0}},
		"m2": {128 * M, "default", false, false, nil},
		"m3": {128 * M, "default", false, false, nil},
	}
	for _, d := range devs {
		w, ok := wants[d.ID]
		if !ok {
			t.Errorf("query-memdev has %+v, not rendered", d)
			continue
		}
		delete(wants, d.ID)
		if d.Size != w.size || d.Policy != w.policy || d.Share != w.share || d.Prealloc != w.prealloc || !slices.Equal(d.HostNodes, w.nodes) {
			t.Errorf("query-memdev %s = %+v; want %+v", d.ID, d, w)
		}
	}
	if len(wants) > 0 {
		t.Errorf("query-memdev lacks %v", wants)
	}

	var cpus []qmp.CPU
	if err := vm.Execute("query-cpus-fast", nil, &cpus); err != nil {
		t.Fatal(err)
	}
	if len(cpus) != 4 {
		t.Fatalf("query-cpus-fast: %d vcpus, want 4", len(cpus))
	}
	for _, cpu := range cpus {
		p := cpu.Props
		if p.NodeID == nil || p.SocketID == nil || p.CoreID == nil || *p.NodeID != *p.SocketID || *p.SocketID != cpu.CPUIndex/2 || *p.CoreID != cpu.CPUIndex%2 {
			t.Errorf("vcpu %d: props %+v; want socket %d, core %d, on node %d", cpu.CPUIndex, p, cpu.CPUIndex/2, cpu.CPUIndex%2, cpu.CPUIndex/2)
		}
	}
	var mdevs []struct {
		Type string `json:"type"`
		Data struct {
			ID     string `json:"id"`
			Node   int    `json:"node"`
			Memdev string `json:"memdev"`
		} `json:"data"`
	}
	if err := vm.Execute("query-memory-devices", nil, &mdevs); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, d := range mdevs {
		got[d.Data.ID] = d.Data.Node
	}
	if len(got) != 2 || got["dimm0"] != 1 || got["vmem0"] != 0 {
		t.Errorf("query-memory-devices = %+v; want dimm0 on node 1, vmem0 on node 0", mdevs)
	}
}

// Guest nodes by -numa node,cpus= over several ranges: each vCPU is on the
// node whose list holds it.
func TestNodeCPUListsInQEMU(t *testing.T) {
	qemutest.Require(t)
	const M = 1 << 20
	c := &Cmdline{Binary: qemutest.Binary}
	c.Append(
		SMP{CPUs: 6}, Memory{Size: 128 * M},
		Backend{Type: "ram", ID: "a", Size: 64 * M}, Backend{JSON: true, Type: "ram", ID: "b", Size: 64 * M},
		NumaNode{NodeID: ptr(0), CPUs: cpuset.New(0, 1, 4), HasCPUs: true, Memdev: "a"},
		NumaNode{NodeID: ptr(1), CPUs: cpuset.New(2, 3, 5), HasCPUs: true, Memdev: "b"},
	)
	vm, err := qemutest.Start(t, c.Argv()[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	var cpus []qmp.CPU
	if err := vm.Execute("query-cpus-fast", nil, &cpus); err != nil {
		t.Fatal(err)
	}
	want := map[int]int{0: 0, 1: 0, 4: 0, 2: 1, 3: 1, 5: 1}
	for _, cpu := range cpus {
		if p := cpu.Props.NodeID; p == nil || *p != want[cpu.CPUIndex] {
			t.Errorf("vcpu %d on node %v, want %d (argv %q)", cpu.CPUIndex, p, want[cpu.CPUIndex], c.Argv())
		}
		delete(want, cpu.CPUIndex)
	}
	if len(want) > 0 {
		t.Errorf("vcpus %v missing from query-cpus-fast", want)
	}
}
