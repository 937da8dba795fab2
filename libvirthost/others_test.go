package libvirthost_test

import (
	"net/url"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/topology"
)

func twoNodes() *topology.Host {
	h := &topology.Host{OnlineCPUs: cpuset.New(0, 1, 2, 3)}
	h.Nodes = []topology.Node{{ID: 0, CPUs: cpuset.New(0, 1)}, {ID: 1, CPUs: cpuset.New(2, 3)}}
	for i := 0; i < 4; i++ {
		h.CPUs = append(h.CPUs, topology.CPU{ID: i, Node: i / 2, Siblings: cpuset.New(i)})
	}
	return h
}

func TestPinsPlaced(t *testing.T) {
	for _, tc := range []struct {
		name, xml string
		cpus      cpuset.CPUSet
		vcpus     map[int]int
		mem       map[int]uint64
	}{
		{"pinned and bound", `<domain type='kvm'><name>a</name><memory unit='KiB'>1048576</memory><vcpu placement='static'>2</vcpu>
			<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='3'/><emulatorpin cpuset='1'/><iothreadpin iothread='1' cpuset='0'/></cputune>
			<numatune><memory mode='strict' nodeset='1'/></numatune></domain>`,
			cpuset.New(0, 1, 2, 3), map[int]int{1: 2}, map[int]uint64{1: 1 << 30}},
		{"vcpu cpuset, two nodes", `<domain><name>b</name><memory unit='MiB'>2048</memory><vcpu cpuset='0-1'>2</vcpu>
			<numatune><memory mode='interleave' nodeset='0-1'/></numatune></domain>`,
			cpuset.New(0, 1), map[int]int{0: 2}, map[int]uint64{0: 1 << 30, 1: 1 << 30}},
		{"cells bound by memnode", `<domain><name>c</name><memory unit='GiB'>3</memory><vcpu>2</vcpu>
			<cpu><numa><cell id='0' cpus='0' memory='1' unit='GiB'/><cell id='1' cpus='1' memory='2' unit='GiB'/></numa></cpu>
			<numatune><memory mode='strict' nodeset='0-1'/><memnode cellid='0' mode='strict' nodeset='0'/><memnode cellid='1' mode='strict' nodeset='1'/></numatune></domain>`,
			cpuset.New(), map[int]int{0: 2}, map[int]uint64{0: 1 << 30, 1: 2 << 30}},
		{"floating, unbound", `<domain><name>d</name><memory>1048576</memory><vcpu current='1'>4</vcpu></domain>`,
			cpuset.New(), map[int]int{}, map[int]uint64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := libvirthost.ParsePins([]byte(tc.xml))
			if err != nil {
				t.Fatal(err)
			}
			got := p.Placed(twoNodes())
			if !got.CPUs.Equals(tc.cpus) || !sameMap(got.VCPUs, tc.vcpus) || !sameMap(got.MemoryBytes, tc.mem) || !got.DedicatedCPUs.IsEmpty() {
				t.Errorf("placed %+v, want cpus %s vcpus %v memory %v", got, tc.cpus, tc.vcpus, tc.mem)
			}
			if !strings.HasPrefix(got.Name, "libvirt:") {
				t.Errorf("name %q", got.Name)
			}
		})
	}
	for _, bad := range []string{`<domain><name>x</name><cputune><vcpupin vcpu='0' cpuset='q'/></cputune></domain>`, `<domain><name>x</name><memory unit='parsec'>1</memory></domain>`, `<notxml`} {
		if _, err := libvirthost.ParsePins([]byte(bad)); err == nil {
			t.Errorf("ParsePins(%q): no error", bad)
		}
	}
}

func sameMap[V comparable](a, b map[int]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSocketFor(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	have := map[string]bool{}
	exists := func(p string) bool { return have[p] }
	for _, tc := range []struct {
		uri, want string
		have      []string
		err       string
	}{
		{"qemu:///system", libvirthost.SystemSocket, nil, ""},
		{"qemu:///system", libvirthost.SystemModularSocket, []string{libvirthost.SystemModularSocket}, ""},
		{"qemu:///system?socket=/tmp/s", "/tmp/s", nil, ""},
		{"qemu:///session", "/run/user/1000/libvirt/virtqemud-sock", []string{"/run/user/1000/libvirt/virtqemud-sock"}, ""},
		{"qemu:///session", "", nil, "no session daemon"},
		{"qemu:///embed", "", nil, "want qemu:///system"},
	} {
		clear(have)
		for _, p := range tc.have {
			have[p] = true
		}
		u, _ := url.Parse(tc.uri)
		got, err := libvirthost.SocketFor(u, exists)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q, %v; want an error saying %q", tc.uri, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s with %v: %q, %v; want %q", tc.uri, tc.have, got, err, tc.want)
		}
	}
	if libvirthost.IsLocal("qemu+tcp://10.0.0.1/system") || !libvirthost.IsLocal("qemu:///system") {
		t.Error("IsLocal")
	}
}

func TestParseShape(t *testing.T) {
	s, err := libvirthost.ParseShape([]byte(`<domain><name>a</name><memory unit='GiB'>3</memory><vcpu current='2'>4</vcpu>
		<cpu><topology sockets='2' dies='1' cores='2' threads='1'/><numa><cell id='0' cpus='0-1' memory='1' unit='GiB'/><cell id='1' cpus='2-3' memory='1048576'/></numa></cpu>
		<memoryBacking><hugepages><page size='2048'/></hugepages><allocation mode='immediate'/></memoryBacking>
		<numatune><memory nodeset='0'/></numatune><devices><memory model='dimm'><target><size unit='GiB'>1</size></target></memory></devices></domain>`))
	if err != nil {
		t.Fatal(err)
	}
	if s.VCPUs != 2 || s.MaxVCPUs != 4 || s.Sockets != 2 || s.Cores != 2 || len(s.Cells) != 2 || !s.Cells[1].CPUs.Equals(cpuset.New(2, 3)) ||
		s.BootBytes() != 2<<30 || s.DeviceBytes != 1<<30 || !s.Hugepages || len(s.PageSizes) != 1 || s.PageSizes[0] != 2<<20 || !s.Immediate || s.Mode != "strict" {
		t.Errorf("shape %+v", s)
	}
	s, err = libvirthost.ParseShape([]byte(`<domain><name>b</name><memory>1048576</memory><vcpu>1</vcpu><devices><memory><target><size>524288</size></target></memory></devices></domain>`))
	if err != nil || s.BootBytes() != 512<<20 || s.Mode != "" {
		t.Errorf("shape %+v: %v", s, err)
	}
	for _, bad := range []string{
		`<domain><name>x</name><vcpu>0</vcpu></domain>`,
		`<domain><name>x</name><vcpu current='3'>2</vcpu></domain>`,
		`<domain><name>x</name><vcpu>5000</vcpu></domain>`,
		`<domain><name>x</name><vcpu>1</vcpu><cpu><numa><cell cpus='a' memory='1'/></numa></cpu></domain>`,
		`<domain><name>x</name><vcpu>1</vcpu><memory unit='yard'>1</memory></domain>`,
	} {
		if _, err := libvirthost.ParseShape([]byte(bad)); err == nil {
			t.Errorf("ParseShape(%s): no error", bad)
		}
	}
}
