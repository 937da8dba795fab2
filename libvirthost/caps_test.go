package libvirthost_test

import (
	"os"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirthosttest"
)

func TestParseCapabilities(t *testing.T) {
	data, err := os.ReadFile("testdata/caps-2node-smt.xml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := libvirthost.ParseCapabilities(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Nodes) != 2 || !h.Nodes[1].CPUs.Equals(cpuset.New(4, 5, 6, 7)) || h.Nodes[0].MemTotal != 4<<30 {
		t.Fatalf("nodes %+v", h.Nodes)
	}
	if got := len(h.Cores()); got != 4 {
		t.Errorf("%d cores, want 4 (thread pairs)", got)
	}
	if c := h.CPUs[6]; c.Package != 1 || !c.Siblings.Equals(cpuset.New(4, 6)) || c.Node != 1 {
		t.Errorf("cpu 6: %+v", c)
	}
	if d := h.Nodes[0].Distances; d[1] != 21 || d[0] != 10 {
		t.Errorf("distances of node 0: %v", d)
	}
	if hp := h.Nodes[0].Hugepages; len(hp) != 1 || hp[0].SizeBytes != 2<<20 || hp[0].Total != 512 || hp[0].Free != 0 {
		t.Errorf("hugepages of node 0: %+v", hp)
	}
	if !h.Nodes[0].MemFreeUnknown {
		t.Error("free memory known before FillFree")
	}
	f := &libvirthosttest.Fake{Free: map[int]uint64{0: 3 << 30, 1: 1 << 30}, Pages: map[int][]uint64{0: {100}}}
	if err := libvirthost.FillFree(f, h); err != nil {
		t.Fatal(err)
	}
	if h.Nodes[0].MemFree != 3<<30 || h.Nodes[1].MemFree != 1<<30 || h.Nodes[0].MemFreeUnknown || h.Nodes[0].Hugepages[0].Free != 100 {
		t.Errorf("after FillFree: %+v", h.Nodes)
	}

	// libvirt's own, from Debian 12's libvirt 9.0 on this project's build machine.
	real, err := os.ReadFile("testdata/caps-1node.xml")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := libvirthost.ParseCapabilities(real); err != nil || len(h.Nodes) != 1 || h.OnlineCPUs.Size() != 2 || len(h.Nodes[0].Hugepages) != 2 {
		t.Errorf("libvirt 9.0's capabilities: %v %+v", err, h)
	}
}

func TestParseCapabilitiesErrors(t *testing.T) {
	cell := func(id, cpus string) string {
		return "<cell id='" + id + "'><memory unit='KiB'>1024</memory><cpus>" + cpus + "</cpus></cell>"
	}
	for _, tc := range []struct{ name, cells, want string }{
		{"no cells", "", "no <host><topology><cells>"},
		{"repeated cell", cell("0", "") + cell("0", ""), "repeated"},
		{"cpu in two cells", cell("0", "<cpu id='1'/>") + cell("1", "<cpu id='1'/>"), "in two cells"},
		{"cpu id out of range", cell("0", "<cpu id='70000'/>"), "out of range"},
		{"bad siblings", cell("0", "<cpu id='0' siblings='x'/>"), "siblings"},
		{"bad unit", "<cell id='0'><memory unit='furlong'>1</memory></cell>", "unit"},
		{"siblings disagree", cell("0", "<cpu id='0' siblings='0-1'/><cpu id='1' siblings='1'/>"), "disagree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := "<capabilities><host><topology><cells>" + tc.cells + "</cells></topology></host></capabilities>"
			_, err := libvirthost.ParseCapabilities([]byte(x))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestCPUMap(t *testing.T) {
	for _, tc := range []struct {
		cpus   cpuset.CPUSet
		mapLen int
		want   []byte
	}{
		{cpuset.New(0), 1, []byte{1}},
		{cpuset.New(1, 9), 2, []byte{2, 2}},
		{cpuset.New(7, 8), 3, []byte{0x80, 1, 0}},
		{cpuset.New(), 1, []byte{0}},
	} {
		m, err := libvirthost.CPUMap(tc.cpus, tc.mapLen)
		if err != nil || string(m) != string(tc.want) {
			t.Errorf("CPUMap(%s, %d) = %v, %v; want %v", tc.cpus, tc.mapLen, m, err, tc.want)
		}
		back, err := libvirthost.ParseCPUMap(m)
		if err != nil || !back.Equals(tc.cpus) {
			t.Errorf("ParseCPUMap(%v) = %s, %v", m, back, err)
		}
	}
	if _, err := libvirthost.CPUMap(cpuset.New(8), 1); err == nil {
		t.Error("cpu 8 in a one-byte map: no error")
	}
	maps, err := libvirthost.SplitCPUMaps([]byte{1, 0, 2, 0}, 2, 2)
	if err != nil || !maps[0].Equals(cpuset.New(0)) || !maps[1].Equals(cpuset.New(1)) {
		t.Errorf("SplitCPUMaps: %v %v", maps, err)
	}
	if _, err := libvirthost.SplitCPUMaps([]byte{1}, 2, 1); err == nil {
		t.Error("two maps from one byte: no error")
	}
}
