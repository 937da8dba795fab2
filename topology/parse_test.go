package topology

import (
	"reflect"
	"testing"

	"k8s.io/utils/cpuset"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "0-3,8", want: []int{0, 1, 2, 3, 8}},
		{in: "5", want: []int{5}},
		{in: "", want: []int{}},
		{in: "\n", want: []int{}},
		{in: "0-7\n\x00", want: []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{in: " 0,8,250-252 \n", want: []int{0, 8, 250, 251, 252}},
		{in: "3-3", want: []int{3}},
		{in: "0, 2", want: []int{0, 2}},
		{in: "3-1", wantErr: true},
		{in: "a", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "0-", wantErr: true},
		{in: "1,,2", wantErr: true},
		{in: "0-4000000000", wantErr: true},
		{in: "0x3", wantErr: true},
	} {
		got, err := parseCPUList(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseCPUList(%q) = %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseCPUList(%q): %v", tc.in, err)
			continue
		}
		if !got.Equals(cpuset.New(tc.want...)) {
			t.Errorf("parseCPUList(%q) = %s, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseCPUMask(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "00000003", want: []int{0, 1}},
		{in: "00000000,00000101", want: []int{0, 8}},
		{in: "f", want: []int{0, 1, 2, 3}},
		// First word short, as the kernel prints masks wider than nr_cpu_ids.
		{in: "0000,00000000,00000000,00020002", want: []int{1, 17}},
		{in: "1,00000000", want: []int{32}},
		{in: "80000000,00000001\n", want: []int{0, 63}},
		{in: "00000020\x00\x00", want: []int{5}},
		{in: "00000000", want: []int{}},
		{in: "", wantErr: true},
		{in: "0000,0000", wantErr: true},           // later word short
		{in: "000000000", wantErr: true},           // first word too long
		{in: "0000000g", wantErr: true},            // not hex
		{in: "00000001,", wantErr: true},           // empty word
		{in: "00000001,0000000000", wantErr: true}, // later word long
	} {
		got, err := parseCPUMask(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseCPUMask(%q) = %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseCPUMask(%q): %v", tc.in, err)
			continue
		}
		if !got.Equals(cpuset.New(tc.want...)) {
			t.Errorf("parseCPUMask(%q) = %s, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    map[string]uint64
		wantErr bool
	}{
		{
			name: "node",
			in:   "Node 0 MemTotal:       16775084 kB\nNode 0 MemFree:  15394716 kB\nNode 0 Inactive(file):    22124 kB\nNode 0 HugePages_Total:    65\n",
			want: map[string]uint64{"MemTotal": 16775084 << 10, "MemFree": 15394716 << 10, "Inactive(file)": 22124 << 10, "HugePages_Total": 65},
		},
		{
			name: "sparse node id",
			in:   "Node 250 MemTotal:       15728640 kB\nNode 250 MemFree:        15728576 kB\n",
			want: map[string]uint64{"MemTotal": 15728640 << 10, "MemFree": 15728576 << 10},
		},
		{
			name: "proc",
			in:   "MemTotal:     1603993424 kB\nMemFree:      1524302144 kB\nHugePages_Rsvd:        0\n\x00",
			want: map[string]uint64{"MemTotal": 1603993424 << 10, "MemFree": 1524302144 << 10, "HugePages_Rsvd": 0},
		},
		{name: "empty", in: "", want: map[string]uint64{}},
		{name: "no colon", in: "MemTotal 1 kB", wantErr: true},
		{name: "no value", in: "MemTotal:", wantErr: true},
		{name: "not a number", in: "MemTotal: lots kB", wantErr: true},
		{name: "unknown unit", in: "MemTotal: 1 MB", wantErr: true},
		{name: "extra field", in: "MemTotal: 1 kB x", wantErr: true},
		{name: "negative", in: "MemTotal: -1 kB", wantErr: true},
		{name: "overflow", in: "MemTotal: 18446744073709551615 kB", wantErr: true},
		{name: "node without key", in: "Node 0", wantErr: true},
	} {
		got, err := parseMeminfo(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: parseMeminfo(%q) = %v, want an error", tc.name, tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: parseMeminfo: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: parseMeminfo = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseDistances(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "10 16 16 22\n", want: []int{10, 16, 16, 22}},
		{in: "10\x00", want: []int{10}},
		{in: "", want: nil},
		{in: "10  21", want: []int{10, 21}},
		{in: "10 x", wantErr: true},
		{in: "10 -1", wantErr: true},
		{in: "0 10", wantErr: true},
	} {
		got, err := parseDistances(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseDistances(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseDistances(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseDistances(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseHugepageDir(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "hugepages-2048kB", want: 2 << 20},
		{in: "hugepages-1048576kB", want: 1 << 30},
		{in: "hugepages-64kB", want: 64 << 10},
		{in: "hugepages-2048", wantErr: true},
		{in: "hugepages-kB", wantErr: true},
		{in: "hugepages-0kB", wantErr: true},
		{in: "huge-2048kB", wantErr: true},
		{in: "hugepages-2MB", wantErr: true},
	} {
		got, err := parseHugepageDir(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseHugepageDir(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseIndexedName(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		id           int
		ok, wantErr  bool
	}{
		{name: "node8", prefix: "node", id: 8, ok: true},
		{name: "node250", prefix: "node", id: 250, ok: true},
		{name: "cpu0", prefix: "cpu", id: 0, ok: true},
		{name: "cpufreq", prefix: "cpu"},
		{name: "cpu", prefix: "cpu"},
		{name: "cpu1a", prefix: "cpu"},
		{name: "has_cpu", prefix: "node"},
		{name: "node-1", prefix: "node"},
		{name: "node99999999", prefix: "node", wantErr: true},
	} {
		id, ok, err := parseIndexedName(tc.name, tc.prefix)
		if id != tc.id || ok != tc.ok || (err != nil) != tc.wantErr {
			t.Errorf("parseIndexedName(%q, %q) = %d, %v, %v; want %d, %v, error %v", tc.name, tc.prefix, id, ok, err, tc.id, tc.ok, tc.wantErr)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		cpus, mems string
		ok         bool
	}{
		{
			name: "linux",
			in:   "Name:\tqnuma\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t00000001\nMems_allowed_list:\t0\n",
			cpus: "0-1", mems: "0", ok: true,
		},
		{name: "old kernel", in: "Name:\tqnuma\nCpus_allowed:\t3\n"},
		{name: "cpus only", in: "Cpus_allowed_list:\t0-1\n"},
		{name: "empty", in: ""},
	} {
		cpus, mems, ok := parseStatus(tc.in)
		if cpus != tc.cpus || mems != tc.mems || ok != tc.ok {
			t.Errorf("%s: parseStatus = %q, %q, %v; want %q, %q, %v", tc.name, cpus, mems, ok, tc.cpus, tc.mems, tc.ok)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		v1, v2   string
		wantErr  bool
	}{
		{name: "v1", in: "7:cpuset:/jjh\n6:hugetlb:/\n1:name=systemd:/user.slice\n", v1: "/jjh"},
		{name: "v1 joined controllers", in: "3:cpu,cpuset:/a\n", v1: "/a"},
		{name: "v2", in: "0::/system.slice/qnuma.service\n", v2: "/system.slice/qnuma.service"},
		{name: "hybrid", in: "3:cpuset:/\n0::/user.slice\n", v1: "/", v2: "/user.slice"},
		{name: "colon in path", in: "0::/a:b\n", v2: "/a:b"},
		{name: "not cpuset", in: "4:cpuacct:/x\n"},
		{name: "malformed", in: "cpuset /x\n", wantErr: true},
	} {
		v1, v2, err := parseProcCgroup(tc.in)
		if v1 != tc.v1 || v2 != tc.v2 || (err != nil) != tc.wantErr {
			t.Errorf("%s: parseProcCgroup = %q, %q, %v; want %q, %q, error %v", tc.name, v1, v2, err, tc.v1, tc.v2, tc.wantErr)
		}
	}
}

func TestParseMounts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []mount
		wantErr bool
	}{
		{
			name: "cgroups",
			in:   "cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,cpuset 0 0\nnone /cgroup/unified cgroup2 rw 0 0\nnone /dev/cpuset cpuset rw 0 0\n",
			want: []mount{
				{point: "/sys/fs/cgroup/cpuset", fstype: "cgroup", options: []string{"rw", "nosuid", "cpuset"}},
				{point: "/cgroup/unified", fstype: "cgroup2", options: []string{"rw"}},
				{point: "/dev/cpuset", fstype: "cpuset", options: []string{"rw"}},
			},
		},
		{
			name: "escaped space",
			in:   `none /mnt/my\040cgroup cgroup2 rw 0 0`,
			want: []mount{{point: "/mnt/my cgroup", fstype: "cgroup2", options: []string{"rw"}}},
		},
		{name: "short line", in: "none /x cgroup2\n", wantErr: true},
		{name: "bad escape", in: `none /x\09 cgroup2 rw 0 0`, wantErr: true},
		{name: "cut escape", in: `none /x\04 cgroup2 rw 0 0`, wantErr: true},
	} {
		got, err := parseMounts(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: parseMounts = %v, want an error", tc.name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: parseMounts: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: parseMounts = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
