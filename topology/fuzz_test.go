package topology

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/cpulist"
)

// Fuzz targets for every parser of sysfs and procfs text. Their seeds are
// real files and the error rows of the table tests in parse_test.go; they
// run with go test, and `go test -fuzz=FuzzX ./topology` explores.

func FuzzParseMeminfo(f *testing.F) {
	for _, s := range []string{
		"Node 0 MemTotal:       16775084 kB\nNode 0 MemFree:  15394716 kB\nNode 0 Inactive(file):    22124 kB\nNode 0 HugePages_Total:    65\n",
		"Node 250 MemTotal:       15728640 kB\nNode 250 MemFree:        15728576 kB\n",
		"MemTotal:     1603993424 kB\nMemFree:      1524302144 kB\nHugePages_Rsvd:        0\n\x00",
		"", "MemTotal 1 kB", "MemTotal:", "MemTotal: lots kB", "MemTotal: 1 MB", "MemTotal: 1 kB x",
		"MemTotal: -1 kB", "MemTotal: 18446744073709551615 kB", "Node 0", "Node 0 MemTotal: 1048576 kB\n",
		"Node 0 MemTotal: 18014398509481983 kB\nNode 0 MemFree: 9007199254740992 kB\nNode 0 Inactive(file): 9007199254740992 kB\n",
		"Node 0 MemTotal: 1024 kB\nNode 0 MemFree: 2048 kB\n", ": 1", "Node  MemTotal: 1 kB",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMeminfo(s)
		if err == nil {
			for k := range m {
				if k == "" || strings.Contains(k, ":") {
					t.Errorf("parseMeminfo(%q): key %q", s, k)
				}
			}
			if len(m) > strings.Count(s, "\n")+1 {
				t.Errorf("parseMeminfo(%q): %d keys from %d lines", s, len(m), strings.Count(s, "\n")+1)
			}
		}
		// The node figures that plans use hold together, or are refused.
		var n Node
		if err := parseNodeMemory(&n, s); err != nil {
			if n.MemTotal != 0 || n.MemFree != 0 || n.InactiveFile != 0 || n.MemFreeUnknown {
				t.Errorf("parseNodeMemory(%q) filled %+v with error %v", s, n, err)
			}
			return
		}
		if n.MemFree > n.MemTotal || n.InactiveFile > n.MemTotal || n.MemFree+n.InactiveFile < n.MemFree {
			t.Errorf("parseNodeMemory(%q): total %d free %d inactive %d", s, n.MemTotal, n.MemFree, n.InactiveFile)
		}
		if n.MemFreeUnknown && n.MemFree != 0 {
			t.Errorf("parseNodeMemory(%q): free unknown but %d", s, n.MemFree)
		}
	})
}

func FuzzParseDistances(f *testing.F) {
	for _, s := range []string{"10 16 16 22\n", "10\x00", "", "10  21", "10 x", "10 -1", "0 10", "10 99999999999999999999", "\t10\n20"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		row, err := parseDistances(s)
		if err != nil {
			if row != nil {
				t.Errorf("parseDistances(%q) = %v with error", s, row)
			}
			return
		}
		parts := make([]string, len(row))
		for i, d := range row {
			if d <= 0 {
				t.Errorf("parseDistances(%q): entry %d is %d", s, i, d)
			}
			parts[i] = strconv.Itoa(d)
		}
		if len(row) > 0 {
			back, err := parseDistances(strings.Join(parts, " "))
			if err != nil || fmt.Sprint(back) != fmt.Sprint(row) {
				t.Errorf("parseDistances(%q) = %v, which reads back as %v, %v", s, row, back, err)
			}
		}
	})
}

func FuzzParseHugepageDir(f *testing.F) {
	for _, s := range []string{"hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB", "hugepages-2048", "hugepages-kB",
		"hugepages-0kB", "huge-2048kB", "hugepages-2MB", "hugepages-18014398509481984kB", "hugepages-+1kB", "hugepages--1kB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		size, err := parseHugepageDir(name)
		if err != nil {
			if size != 0 {
				t.Errorf("parseHugepageDir(%q) = %d with error", name, size)
			}
			return
		}
		if size == 0 || size%1024 != 0 {
			t.Errorf("parseHugepageDir(%q) = %d, not a positive number of KiB", name, size)
		}
		back, err := parseHugepageDir(fmt.Sprintf("hugepages-%dkB", size/1024))
		if err != nil || back != size {
			t.Errorf("parseHugepageDir(%q) = %d, which reads back as %d, %v", name, size, back, err)
		}
	})
}

func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"0", "65\n", "-1\n", "18446744073709551615", "18446744073709551616", "", "1 2", "0x10", "+1", "1\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseCount(s)
		if err != nil {
			return
		}
		if back, err := parseCount(strconv.FormatUint(n, 10)); err != nil || back != n {
			t.Errorf("parseCount(%q) = %d, which reads back as %d, %v", s, n, back, err)
		}
	})
}

func FuzzParseIndexedName(f *testing.F) {
	for _, s := range []string{"node8", "node250", "cpu0", "cpufreq", "cpu", "cpu1a", "has_cpu", "node-1", "node99999999", "node08", "node+1", "node١"} {
		f.Add(s, "node")
		f.Add(s, "cpu")
	}
	f.Fuzz(func(t *testing.T, name, prefix string) {
		id, ok, err := parseIndexedName(name, prefix)
		if err != nil || !ok {
			if ok || id != 0 {
				t.Errorf("parseIndexedName(%q, %q) = %d, %v, %v", name, prefix, id, ok, err)
			}
			return
		}
		if id < 0 || id >= cpulist.MaxID || !strings.HasPrefix(name, prefix) {
			t.Errorf("parseIndexedName(%q, %q) = %d", name, prefix, id)
		}
		if n, _ := strconv.Atoi(strings.TrimPrefix(name, prefix)); n != id {
			t.Errorf("parseIndexedName(%q, %q) = %d, the digits say %d", name, prefix, id, n)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{
		"Name:\tqnuma\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t00000001\nMems_allowed_list:\t0\n",
		"Name:\tqnuma\nCpus_allowed:\t3\n", "Cpus_allowed_list:\t0-1\n", "", "Cpus_allowed_list:\nMems_allowed_list:\n",
		"Cpus_allowed_list:\t0-4294967297\nMems_allowed_list:\t0\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, mems, ok := parseStatus(s)
		if !ok {
			if cpus != "" || mems != "" {
				t.Errorf("parseStatus(%q) = %q, %q without both lines", s, cpus, mems)
			}
			return
		}
		if cpus != strings.TrimSpace(cpus) || mems != strings.TrimSpace(mems) || strings.Contains(cpus+mems, "\n") {
			t.Errorf("parseStatus(%q) = %q, %q", s, cpus, mems)
		}
		// What readAllowed then does with them: bounded parsing.
		for _, l := range []string{cpus, mems} {
			if set, err := parseCPUList(l); err == nil && set.Size() > cpulist.MaxID {
				t.Errorf("parseStatus(%q): list %q of %d ids", s, l, set.Size())
			}
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	for _, s := range []string{"7:cpuset:/jjh\n6:hugetlb:/\n1:name=systemd:/user.slice\n", "3:cpu,cpuset:/a\n",
		"0::/system.slice/qnuma.service\n", "3:cpuset:/\n0::/user.slice\n", "0::/a:b\n", "4:cpuacct:/x\n", "cpuset /x\n", "", "::\n", "0::/../x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v1, v2, err := parseProcCgroup(s)
		if err != nil {
			if v1 != "" || v2 != "" {
				t.Errorf("parseProcCgroup(%q) = %q, %q with error", s, v1, v2)
			}
			return
		}
		if strings.Contains(v1, "\n") || strings.Contains(v2, "\n") {
			t.Errorf("parseProcCgroup(%q) = %q, %q: a path spans lines", s, v1, v2)
		}
	})
}

func FuzzParseMounts(f *testing.F) {
	for _, s := range []string{
		"cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,cpuset 0 0\nnone /cgroup/unified cgroup2 rw 0 0\nnone /dev/cpuset cpuset rw 0 0\n",
		`none /mnt/my\040cgroup cgroup2 rw 0 0`, "none /x cgroup2\n", `none /x\09 cgroup2 rw 0 0`, `none /x\04 cgroup2 rw 0 0`,
		`none /x\777 cgroup2 rw 0 0`, `none \ cgroup2 rw 0 0`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseMounts(s)
		if err != nil {
			return
		}
		if lines := strings.Count(s, "\n") + 1; len(ms) > lines {
			t.Errorf("parseMounts(%q): %d mounts from %d lines", s, len(ms), lines)
		}
		for _, m := range ms {
			if len(m.point) > len(s) || m.fstype == "" || len(m.options) == 0 {
				t.Errorf("parseMounts(%q): %+v", s, m)
			}
			if _, ok := findMount([]mount{m}, SourceCgroupV2); ok != (m.fstype == "cgroup2") {
				t.Errorf("findMount of %+v: %v", m, ok)
			}
		}
	})
}
