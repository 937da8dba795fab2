package vmcgroup

import (
	"os"
	"path"
	"strings"
	"testing"
)

// Fuzz targets for the parsers of what the kernel (or a planted file)
// says: mountinfo, /proc/PID/cgroup, cgroup.procs. Seeds: the fake hosts'
// files, this machine's, and the error rows of the table tests.

func FuzzParseMountinfo(f *testing.F) {
	for _, tree := range []string{"v2", "v2-systemd", "v1-hybrid", "v1-noprefix", "none"} {
		if b, err := os.ReadFile("testdata/" + tree + "/proc/self/mountinfo"); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{"36 35 98:0 / /x rw", "36 35 98:0 / /x rw - cgroup", `36 35 98:0 / /x\04 rw - cgroup cg rw`, `1 2 3 \134 /\040 rw - a b c`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parseMountinfo(b)
		if err != nil {
			return
		}
		for _, m := range ms {
			if !strings.HasPrefix(m.root, "/") || !strings.HasPrefix(m.point, "/") || m.point != path.Clean(m.point) {
				t.Fatalf("%q: mount %+v: root and point must be absolute and clean", b, m)
			}
		}
		if len(visible(ms)) > len(ms) {
			t.Fatalf("visible grew")
		}
	})
}

// FuzzCgroupPath: what is returned is an absolute path; Of's checks of it
// (underMount, then the qnuma directory and name) never panic.
func FuzzCgroupPath(f *testing.F) {
	for _, s := range []string{"0::/qnuma/vm1\n", "3:cpuset,cpu:/qnuma/a\n0::/\n", "0::/qnuma/../x\n", "garbage", "0::rel\n", "0::/a (deleted)\n"} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, v1 bool) {
		p, err := cgroupPath(b, v1)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("%q: path %q", b, p)
		}
		for _, root := range []string{"/", "/docker/abc"} {
			if rel, ok := (Host{mountRoot: root}).underMount(p); ok && !strings.HasPrefix(rel, "/") {
				t.Fatalf("%q under %s: %q", p, root, rel)
			}
		}
	})
}

func FuzzParseProcs(f *testing.F) {
	for _, s := range []string{"1\n23\n", "", "x\n", "-1\n", "0\n", "1 2\n", "99999999999999999999\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pids, err := parseProcs(b)
		if err != nil {
			return
		}
		for _, p := range pids {
			if p <= 0 {
				t.Fatalf("%q: pid %d", b, p)
			}
		}
	})
}
