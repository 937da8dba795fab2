package domxml

import (
	"os"
	"testing"

	"k8s.io/utils/cpuset"
)

func mustParseFile(t *testing.T, name string) *Domain {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDistance(t *testing.T) {
	d, err := Parse(dom("<vcpu>3</vcpu>" + cells(
		"<cell cpus='0' memory='1'><distances><sibling id='1' value='15'/></distances></cell>"+
			"<cell cpus='1' memory='1'><distances><sibling id='2' value='30'/><sibling id='0' value='17'/></distances></cell>"+
			"<cell cpus='2' memory='1'/>")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want int }{
		{0, 0, 10},
		{0, 1, 15}, // given under 0
		{1, 0, 17}, // given under 1: not mirrored over
		{1, 2, 30},
		{2, 1, 30}, // mirrored from cell 1
		{0, 2, 20}, // not given either way
		{2, 2, 10},
	} {
		if got := d.Distance(tc.from, tc.to); got != tc.want {
			t.Errorf("Distance(%d, %d) = %d, want %d", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestHostCPUs(t *testing.T) {
	d := mustParseFile(t, "pins.xml")
	for _, tc := range []struct {
		name string
		got  cpuset.CPUSet
		want cpuset.CPUSet
	}{
		{"vcpu 2 (vcpupin 8-9,^8)", d.VCPUHostCPUs(2), cpuset.New(9)},
		{"emulator", d.EmulatorHostCPUs(), cpuset.New(0, 1)},
		{"iothread 5", d.IOThreadHostCPUs(5), cpuset.New(7)},
		{"iothread 1 (no pin: <vcpu cpuset>)", d.IOThreadHostCPUs(1), cpuset.New(0, 1, 2, 3, 5, 6, 7, 12)},
	} {
		if !tc.got.Equals(tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	auto := mustParseFile(t, "placement-auto.xml")
	if !auto.VCPUHostCPUs(0).IsEmpty() || !auto.EmulatorHostCPUs().IsEmpty() {
		t.Errorf("placement auto: host cpus %s and %s, want none (the cpuset is ignored)", auto.VCPUHostCPUs(0), auto.EmulatorHostCPUs())
	}
}

func TestBindingPerCell(t *testing.T) {
	d := mustParseFile(t, "three-cells-modes.xml")
	want := []Mode{ModeStrict, ModePreferred, ModeInterleave}
	for i, m := range want {
		if b := d.Binding(i); b.Mode != m || b.From != "memnode" {
			t.Errorf("cell %d: %+v, want mode %s from memnode", i, b, m)
		}
	}
	h := mustParseFile(t, "hugepages-one-cell.xml")
	if size, ok := h.PageSize(0); !ok || size != 1<<30 {
		t.Errorf("cell 0 page size %d %t, want 1 GiB", size, ok)
	}
	if _, ok := h.PageSize(1); ok {
		t.Error("cell 1 has hugepages; want ordinary pages")
	}
	if h.Access(0) != AccessShared || h.Access(1) != AccessPrivate {
		t.Errorf("access %s, %s; want shared (memoryBacking) and private (memAccess)", h.Access(0), h.Access(1))
	}
}
