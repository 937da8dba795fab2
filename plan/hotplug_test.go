package plan

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qemuversion"
)

// Hotplug room: the VM is fitted at its most, starts at its present size,
// and every absent vCPU and every guest node's growth has a guest node.
func TestHotplugPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		// wantHot is the absent vCPUs' guest nodes, in the order qnuma
		// vcpus adds them, wantHotIDs their ids (slots), wantPresent the
		// ids present at start; wantGrow each guest node's growth in MiB
		// (0: no device).
		wantHot     []int
		wantStart   []uint64
		wantGrow    []uint64
		wantPresent []int
		wantHotIDs  []int
	}{
		// Split 2+2 at start as --vcpus 4 is, slots 0-5 in guest node 0
		// and 6-11 in guest node 1; growth alternates.
		{"vcpus on two nodes", Spec{VCPUs: 4, MaxVCPUs: 12, MemoryBytes: 4 * memobj.GiB},
			[]int{0, 1, 0, 1, 0, 1, 0, 1}, []uint64{2048, 2048}, nil, []int{0, 1, 6, 7}, []int{2, 8, 3, 9, 4, 10, 5, 11}},
		// Odd: the first guest node takes the one left over, at start and
		// when growing.
		{"odd vcpus on two nodes", Spec{VCPUs: 3, MaxVCPUs: 10, MemoryBytes: 4 * memobj.GiB},
			[]int{1, 0, 1, 0, 1, 0, 1}, []uint64{2048, 2048}, nil, []int{0, 1, 5}, []int{6, 2, 7, 3, 8, 4, 9}},
		// As libvirt starts them (<vcpu current=>): the lowest ids.
		{"lowest vcpus at start", Spec{VCPUs: 4, MaxVCPUs: 12, MemoryBytes: 4 * memobj.GiB, LowestVCPUsAtStart: true},
			[]int{0, 0, 1, 1, 1, 1, 1, 1}, []uint64{2048, 2048}, nil, []int{0, 1, 2, 3}, []int{4, 5, 6, 7, 8, 9, 10, 11}},
		{"memory on two nodes", Spec{VCPUs: 4, MemoryBytes: 4 * memobj.GiB, MaxMemoryBytes: 36 * memobj.GiB},
			nil, []uint64{2897, 1199}, []uint64{23174, 9594}, []int{0, 1, 2, 3}, nil},
		{"both on one node", Spec{VCPUs: 2, MaxVCPUs: 4, MemoryBytes: memobj.GiB, MaxMemoryBytes: 2 * memobj.GiB},
			[]int{0, 0}, []uint64{1024}, []uint64{1024}, []int{0, 1}, []int{2, 3}},
		{"no growth", Spec{VCPUs: 2, MaxVCPUs: 2, MemoryBytes: memobj.GiB, MaxMemoryBytes: memobj.GiB},
			nil, []uint64{1024}, nil, []int{0, 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Make(intel2p(), tc.spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.VCPUs) != tc.spec.VCPUs || p.Spec.MemoryBytes != tc.spec.MemoryBytes {
				t.Errorf("starts with %d vCPUs, %d bytes; want the present %d, %d", len(p.VCPUs), p.Spec.MemoryBytes, tc.spec.VCPUs, tc.spec.MemoryBytes)
			}
			var hot, hotIDs, present []int
			for _, v := range p.HotplugVCPUs {
				hot, hotIDs = append(hot, v.GuestNode), append(hotIDs, v.ID)
			}
			for _, v := range p.VCPUs {
				present = append(present, v.ID)
			}
			if !slices.Equal(hot, tc.wantHot) || !slices.Equal(hotIDs, tc.wantHotIDs) {
				t.Errorf("absent vCPUs %v in guest nodes %v, want %v in %v", hotIDs, hot, tc.wantHotIDs, tc.wantHot)
			}
			if !slices.Equal(present, tc.wantPresent) {
				t.Errorf("present at start: vCPUs %v, want %v", present, tc.wantPresent)
			}
			var start, grow []uint64
			for _, g := range p.GuestNodes {
				start = append(start, g.MemoryBytes/memobj.MiB)
			}
			for i, m := range p.HotplugMemory {
				grow = append(grow, m.Bytes/memobj.MiB)
				if m.GuestNode != i || !slices.Equal(m.HostNodes, p.GuestNodes[i].HostNodes) || m.Bytes%virtioMemBlock != 0 {
					t.Errorf("hotplug memory %d: %+v, want guest node %d on host nodes %v, in 2 MiB blocks", i, m, i, p.GuestNodes[i].HostNodes)
				}
			}
			if !slices.Equal(start, tc.wantStart) || !slices.Equal(grow, tc.wantGrow) {
				t.Errorf("guest nodes start with %v MiB and grow by %v MiB, want %v and %v", start, grow, tc.wantStart, tc.wantGrow)
			}
			if !hasReason(p, "Hotplug room: qnuma fitted the VM at its most") {
				t.Errorf("reasons %q: want the hotplug room said", p.Reasons)
			}
			if _, err := p.Args(RenderOptions{QEMU: qemu72}); err != nil {
				t.Errorf("render: %v", err)
			}
		})
	}
}

// Growth that is smaller than the present size, too big for QEMU, too big
// for the host, out of step with virtio-mem's blocks, or with --bind-only
// is refused.
func TestHotplugPlanRefused(t *testing.T) {
	g := memobj.GiB
	for _, tc := range []struct {
		name string
		spec Spec
		is   error
		want string
	}{
		{"vcpus below", Spec{VCPUs: 4, MaxVCPUs: 2, MemoryBytes: g}, ErrBadSpec, "--max-vcpus 2 is below the 4 vCPUs"},
		{"memory below", Spec{VCPUs: 4, MemoryBytes: 2 * g, MaxMemoryBytes: g}, ErrBadSpec, "--max-memory 1G is below the 2G"},
		{"beyond qemu", Spec{VCPUs: 4, MaxVCPUs: 4097, MemoryBytes: g}, ErrBadSpec, "QEMU takes at most 4096 vCPUs"},
		{"vcpus do not fit", Spec{VCPUs: 4, MaxVCPUs: 24, MemoryBytes: g}, ErrDoesNotFit, "plan vm with hotplug room (24 vCPUs, 1G at most)"},
		{"memory does not fit", Spec{VCPUs: 4, MemoryBytes: g, MaxMemoryBytes: 64 * g}, ErrDoesNotFit, "plan vm with hotplug room (4 vCPUs, 64G at most)"},
		{"odd block", Spec{VCPUs: 4, MemoryBytes: g, MaxMemoryBytes: g + memobj.MiB}, ErrBadSpec, "must be a multiple of 2M"},
		{"bind-only", Spec{VCPUs: 4, MaxVCPUs: 8, MemoryBytes: g, BindOnly: true}, ErrBadSpec, "drop --bind-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Make(intel2p(), tc.spec, nil)
			if !errors.Is(err, tc.is) || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Errorf("err = %v, want %v saying %q", err, tc.is, tc.want)
			}
		})
	}
}

// Without hotplug room nothing of it is rendered: the -numa cpu stay per
// socket, -m has no maxmem, and there is no virtio-mem.
func TestHotplugArgsOnlyWithRoom(t *testing.T) {
	p, err := Make(intel2p(), Spec{VCPUs: 4, MemoryBytes: 36 * memobj.GiB}, nil)
	if err != nil {
		t.Fatal(err)
	}
	args, err := p.Args(RenderOptions{QEMU: qemu72})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, bad := range []string{"maxmem", "virtio-mem", "core-id", "maxcpus"} {
		if strings.Contains(line, bad) {
			t.Errorf("args %q: %s without hotplug room", line, bad)
		}
	}
}

// The rendered room on the real QEMU, planned for two host nodes and
// rendered for node 0 (this machine's only node): query-cpus-fast has one
// vCPU in each guest node at start (cpu-index 0, and 6 cold-plugged),
// query-hotpluggable-cpus puts every absent slot on its planned guest node, query-memory-devices
// has one empty virtio-mem per guest node on its node, whose backend is
// bound as planned.
func TestHotplugInQEMU(t *testing.T) {
	qemutest.Require(t)
	p, err := Make(intel2p(), Spec{VCPUs: 2, MaxVCPUs: 12, MemoryBytes: 256 * memobj.MiB, MaxMemoryBytes: 512 * memobj.MiB, Policy: memobj.PolicyPreferred}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.GuestNodes) != 2 || len(p.HotplugMemory) != 2 {
		t.Fatalf("guest nodes %+v, hotplug memory %+v: want two of each", p.GuestNodes, p.HotplugMemory)
	}
	for i := range p.GuestNodes {
		p.GuestNodes[i].HostNodes = []int{0}
		p.HotplugMemory[i].HostNodes = []int{0}
	}
	args, err := p.Args(RenderOptions{QEMU: probeQEMU(t)})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := qemutest.Start(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var slots []struct {
		QOMPath string `json:"qom-path"`
		Props   struct {
			NodeID   *int `json:"node-id"`
			SocketID int  `json:"socket-id"`
			CoreID   int  `json:"core-id"`
			ThreadID int  `json:"thread-id"`
		} `json:"props"`
	}
	if err := vm.Execute("query-hotpluggable-cpus", nil, &slots); err != nil {
		t.Fatal(err)
	}
	// Present: one vCPU in each guest node, QEMU's cpu-index its slot
	// (vCPU 6, the first of guest node 1, cold-plugged by -device).
	var cpus []struct {
		CPUIndex int    `json:"cpu-index"`
		QOMPath  string `json:"qom-path"`
		Props    struct {
			NodeID   *int `json:"node-id"`
			SocketID int  `json:"socket-id"`
			CoreID   int  `json:"core-id"`
		} `json:"props"`
	}
	if err := vm.Execute("query-cpus-fast", nil, &cpus); err != nil {
		t.Fatal(err)
	}
	gotPresent := map[int]string{}
	for _, c := range cpus {
		n := -1
		if c.Props.NodeID != nil {
			n = *c.Props.NodeID
		}
		gotPresent[c.CPUIndex] = fmt.Sprintf("node %d socket %d core %d %s", n, c.Props.SocketID, c.Props.CoreID, c.QOMPath)
	}
	wantPresent := map[int]string{0: "node 0 socket 0 core 0 /machine/unattached/device[0]", 6: "node 1 socket 1 core 0 /machine/peripheral/qnuma-vcpu6"}
	if !maps.Equal(gotPresent, wantPresent) {
		t.Errorf("present vCPUs (cpu-index: where) %v, want %v", gotPresent, wantPresent)
	}
	want := map[string]int{}
	for _, v := range p.HotplugVCPUs {
		want[fmt.Sprintf("%d/%d/%d", v.Socket, v.Core, v.Thread)] = v.GuestNode
	}
	got := map[string]int{}
	for _, s := range slots {
		if s.QOMPath != "" {
			continue // present
		}
		n := -1
		if s.Props.NodeID != nil {
			n = *s.Props.NodeID
		}
		got[fmt.Sprintf("%d/%d/%d", s.Props.SocketID, s.Props.CoreID, s.Props.ThreadID)] = n
	}
	if len(want) != 10 || !maps.Equal(got, want) {
		t.Errorf("absent slots' nodes (socket/core/thread: node) %v, planned %v", got, want)
	}
	var devs []struct {
		Type string `json:"type"`
		Data struct {
			ID            string `json:"id"`
			Memdev        string `json:"memdev"`
			Node          int    `json:"node"`
			Size          uint64 `json:"size"`
			RequestedSize uint64 `json:"requested-size"`
			MaxSize       uint64 `json:"max-size"`
		} `json:"data"`
	}
	if err := vm.Execute("query-memory-devices", nil, &devs); err != nil {
		t.Fatal(err)
	}
	memdevs, err := vm.Memdevs()
	if err != nil {
		t.Fatal(err)
	}
	backend := map[string]qemutest.Memdev{}
	for _, m := range memdevs {
		backend["/objects/"+m.ID] = m
	}
	if len(devs) != len(p.HotplugMemory) {
		t.Fatalf("query-memory-devices %+v, want one per guest node", devs)
	}
	for i, m := range p.HotplugMemory {
		d := devs[i]
		dev, memdev := HotplugIDs(m.GuestNode)
		b := backend[d.Data.Memdev]
		if d.Type != "virtio-mem" || d.Data.ID != dev || d.Data.Node != m.GuestNode || d.Data.Size != 0 || d.Data.RequestedSize != 0 || d.Data.MaxSize != m.Bytes {
			t.Errorf("memory device %d: %+v, want an empty virtio-mem %s of %d bytes on guest node %d", i, d, dev, m.Bytes, m.GuestNode)
		}
		if d.Data.Memdev != "/objects/"+memdev || !slices.Equal(b.HostNodes, []int{0}) || b.Policy != "preferred" || b.Size != m.Bytes {
			t.Errorf("memory device %d's backend %s: %+v, want %s on host node 0, preferred, %d bytes", i, d.Data.Memdev, b, memdev, m.Bytes)
		}
	}
}

// A one-node guest has no -numa: its virtio-mem is on node 0 and QEMU
// takes it, with the absent vCPU slots of its one node.
func TestHotplugOneNodeInQEMU(t *testing.T) {
	qemutest.Require(t)
	p, err := Make(intel2p(), Spec{VCPUs: 1, MaxVCPUs: 2, MemoryBytes: 128 * memobj.MiB, MaxMemoryBytes: 256 * memobj.MiB}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.GuestNodes) != 1 || len(p.HotplugMemory) != 1 || len(p.HotplugVCPUs) != 1 {
		t.Fatalf("plan %+v: want one guest node, one absent vCPU, one virtio-mem", p)
	}
	p.GuestNodes[0].HostNodes, p.HotplugMemory[0].HostNodes = []int{0}, []int{0}
	args, err := p.Args(RenderOptions{QEMU: probeQEMU(t)})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := qemutest.Start(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var devs []struct {
		Type string `json:"type"`
		Data struct {
			Node    int    `json:"node"`
			MaxSize uint64 `json:"max-size"`
		} `json:"data"`
	}
	if err := vm.Execute("query-memory-devices", nil, &devs); err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Type != "virtio-mem" || devs[0].Data.Node != 0 || devs[0].Data.MaxSize != 128*memobj.MiB {
		t.Errorf("query-memory-devices %+v, want one virtio-mem of 128 MiB on node 0", devs)
	}
}

// DIMMs where virtio-mem is not: -m with a slot per DIMM and maxmem, no
// virtio-mem device or growth backend at start, each guest node's growth in
// whole DIMMs; virtio-mem on a QEMU without it is refused.
func TestHotplugDIMMArgs(t *testing.T) {
	g, m := memobj.GiB, memobj.MiB
	qemu50 := qemuversion.Version{Major: 5, Minor: 0}
	for _, tc := range []struct {
		name     string
		spec     Spec
		qemu     qemuversion.Version
		want     []string // in the rendered line
		dimms    []uint64 // each guest node's DIMM size, MiB
		grow     []uint64 // and growth, MiB
		bad      string   // a refusal
		notWants []string
	}{
		{name: "one node, 128M dimms", spec: Spec{VCPUs: 1, MemoryBytes: 256 * m, MaxMemoryBytes: 512 * m, MemoryHotplug: MemoryHotplugDIMM}, qemu: qemu72,
			want: []string{"-m 256M,slots=2,maxmem=512M"}, dimms: []uint64{128}, grow: []uint64{256}},
		{name: "two nodes", spec: Spec{VCPUs: 4, MemoryBytes: 4 * g, MaxMemoryBytes: 36 * g, MemoryHotplug: MemoryHotplugDIMM}, qemu: qemu72,
			want: []string{"-m 4G,slots=256,maxmem=36G"}, dimms: []uint64{128, 128}, grow: []uint64{23168, 9600}},
		{name: "large room, larger dimms", spec: Spec{VCPUs: 4, MemoryBytes: 4 * g, MaxMemoryBytes: 40 * g, MemoryHotplug: MemoryHotplugDIMM}, qemu: qemu72,
			want: []string{"-m 4G,slots=144,maxmem=40G"}, dimms: []uint64{256, 256}, grow: []uint64{25856, 11008}},
		{name: "old qemu", spec: Spec{VCPUs: 1, MemoryBytes: 256 * m, MaxMemoryBytes: 512 * m, MemoryHotplug: MemoryHotplugDIMM}, qemu: qemu50,
			want: []string{"-m 256M,slots=2,maxmem=512M"}, dimms: []uint64{128}, grow: []uint64{256}},
		{name: "not whole dimms", spec: Spec{VCPUs: 1, MemoryBytes: 256 * m, MaxMemoryBytes: 320 * m, MemoryHotplug: MemoryHotplugDIMM}, qemu: qemu72,
			bad: "must be a multiple of 128M (the DIMM size"},
		{name: "virtio-mem on a qemu without", spec: Spec{VCPUs: 1, MemoryBytes: 256 * m, MaxMemoryBytes: 512 * m}, qemu: qemu50,
			bad: "qemu 5.0.0 has no virtio-mem (5.1 and later): plan it with --memory-hotplug dimm"},
		{name: "virtio-mem", spec: Spec{VCPUs: 1, MemoryBytes: 256 * m, MaxMemoryBytes: 512 * m, MemoryHotplug: MemoryHotplugVirtioMem}, qemu: qemu72,
			want: []string{"-m 256M,slots=1,maxmem=512M", "virtio-mem-pci,id=qnuma-vmem0"}, dimms: []uint64{0}, grow: []uint64{256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Make(intel2p(), tc.spec, nil)
			var args []string
			if err == nil {
				args, err = p.Args(RenderOptions{QEMU: tc.qemu})
			}
			if tc.bad != "" {
				if !errors.Is(err, ErrBadSpec) || !strings.Contains(fmt.Sprint(err), tc.bad) {
					t.Fatalf("err = %v, want bad spec saying %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Join(args, " ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("args %q: want %q", line, w)
				}
			}
			if tc.spec.MemoryHotplug == MemoryHotplugDIMM && (strings.Contains(line, "virtio-mem") || strings.Contains(line, "qnuma-hotmem")) {
				t.Errorf("args %q: DIMMs want no virtio-mem nor growth backend", line)
			}
			var dimms, grow []uint64
			for i, hm := range p.HotplugMemory {
				dimms, grow = append(dimms, hm.DIMMBytes/m), append(grow, hm.Bytes/m)
				if hm.DIMMBytes > 0 && hm.Bytes%hm.DIMMBytes != 0 || !slices.Equal(hm.HostNodes, p.GuestNodes[i].HostNodes) {
					t.Errorf("hotplug memory %+v: want whole DIMMs on guest node %d's host nodes", hm, i)
				}
			}
			if !slices.Equal(dimms, tc.dimms) || !slices.Equal(grow, tc.grow) {
				t.Errorf("DIMMs of %v MiB, growth %v MiB; want %v and %v", dimms, grow, tc.dimms, tc.grow)
			}
		})
	}
}

func TestDIMMSizeAndVirtioMem(t *testing.T) {
	g, m := memobj.GiB, memobj.MiB
	for _, tc := range []struct{ growth, huge, want uint64 }{
		{128 * m, 0, 128 * m}, {32 * g, 0, 128 * m}, {32*g + 128*m, 0, 256 * m}, {1024 * g, 0, 4 * g}, {2 * g, g, g}, {256 * m, 2 * m, 128 * m},
	} {
		if got := DIMMSize(tc.growth, tc.huge); got != tc.want {
			t.Errorf("DIMMSize(%s, %s) = %s, want %s", memobj.FormatSize(tc.growth), memobj.FormatSize(tc.huge), memobj.FormatSize(got), memobj.FormatSize(tc.want))
		}
	}
	for _, tc := range []struct {
		v       qemuversion.Version
		machine string
		want    bool
	}{
		{qemu72, "", true}, {qemu72, "q35", true}, {qemuversion.Version{Major: 5, Minor: 1}, "pc", true},
		{qemuversion.Version{Major: 5, Minor: 0, Micro: 1}, "", false}, {qemu72, "microvm", false}, {qemu72, "isapc", false},
	} {
		if got, why := HasVirtioMem(tc.v, tc.machine); got != tc.want || got == (why != "") {
			t.Errorf("HasVirtioMem(%s, %q) = %v %q, want %v", tc.v, tc.machine, got, why, tc.want)
		}
	}
}

// A VM with hotplug room over two guest nodes: -smp starts guest node 0's
// vCPUs, -device of the user's -cpu model cold-plugs guest node 1's into
// their slots; one guest node needs no -device.
func TestHotplugColdPlugArgs(t *testing.T) {
	for _, tc := range []struct {
		name, cpuType string
		spec          Spec
		want, not     []string
	}{
		{"two guest nodes", "", Spec{VCPUs: 4, MaxVCPUs: 12, MemoryBytes: 4 * memobj.GiB},
			[]string{"-smp 2,sockets=2,cores=6,threads=1,maxcpus=12 ", "-device qemu64-x86_64-cpu,id=qnuma-vcpu6,socket-id=1,core-id=0,thread-id=0 -device qemu64-x86_64-cpu,id=qnuma-vcpu7,socket-id=1,core-id=1,thread-id=0"},
			[]string{"qnuma-vcpu2", "qnuma-vcpu8"}},
		{"the user's model", "host-x86_64-cpu", Spec{VCPUs: 3, MaxVCPUs: 10, MemoryBytes: 4 * memobj.GiB},
			[]string{"-smp 2,sockets=2,cores=5,threads=1,maxcpus=10 ", "-device host-x86_64-cpu,id=qnuma-vcpu5,socket-id=1,core-id=0,thread-id=0"},
			[]string{"qemu64", "qnuma-vcpu6"}},
		{"one guest node", "", Spec{VCPUs: 2, MaxVCPUs: 4, MemoryBytes: memobj.GiB},
			[]string{"-smp 2,sockets=1,cores=4,threads=1,maxcpus=4"}, []string{"-device"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Make(intel2p(), tc.spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			args, err := p.Args(RenderOptions{QEMU: qemu72, CPUType: tc.cpuType})
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Join(args, " ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("args %q lack %q", line, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(line, n) {
					t.Errorf("args %q have %q", line, n)
				}
			}
		})
	}
}

func TestQEMUArgvCPUType(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"qemu-system-x86_64", "-m", "1G"}, ""},
		{[]string{"qemu-system-x86_64", "-cpu", "host"}, "host-x86_64-cpu"},
		{[]string{"qemu-system-x86_64", "-cpu", "qemu64", "-cpu", "Skylake-Client-v2,+avx2,pmu=off"}, "Skylake-Client-v2-x86_64-cpu"},
		{[]string{"/usr/bin/qemu-system-i386", "-cpu", "max"}, "max-i386-cpu"},
	} {
		q, err := ParseQEMUArgv(tc.argv)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.CPUType(); got != tc.want {
			t.Errorf("%q: CPUType() = %q, want %q", tc.argv, got, tc.want)
		}
	}
}
