package vmcgroup

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// copyTree copies the fake host testdata/NAME into a temporary directory,
// so that a test may change it.
func copyTree(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		tree      string
		kind      Kind
		mount     string
		prefix    string
		why       string
		mountRoot string
	}{
		{tree: "v2", kind: V2, mount: "/sys/fs/cgroup", prefix: "cpuset.", mountRoot: "/"},
		{tree: "v2-systemd", kind: V2Systemd, mount: "/sys/fs/cgroup", prefix: "cpuset.", mountRoot: "/"},
		{tree: "v1-hybrid", kind: V1, mount: "/sys/fs/cgroup/cpuset", prefix: "cpuset.", mountRoot: "/"},
		{tree: "v1-noprefix", kind: V1, mount: "/dev/cpuset", prefix: "", mountRoot: "/"},
		{tree: "v2-nocpuset", kind: None, prefix: "cpuset.", why: `cgroup v2 without the cpuset controller at /sys/fs/cgroup (controllers: "cpu io memory pids")`},
		{tree: "none", kind: None, prefix: "cpuset.", why: "no cgroup filesystem with the cpuset controller is mounted"},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			h, err := detect(filepath.Join("testdata", tc.tree), 0)
			if err != nil {
				t.Fatal(err)
			}
			if h.Kind != tc.kind || h.Mount != tc.mount || h.prefix != tc.prefix || h.mountRoot != tc.mountRoot {
				t.Errorf("got kind %s mount %q prefix %q root %q, want %s %q %q %q", h.Kind, h.Mount, h.prefix, h.mountRoot, tc.kind, tc.mount, tc.prefix, tc.mountRoot)
			}
			if !strings.Contains(h.Why, tc.why) || (tc.why == "") != (h.Why == "") {
				t.Errorf("why %q, want %q", h.Why, tc.why)
			}
		})
	}
}

// Not root: every kind of host is None, and the reason names what was found.
func TestDetectNotRoot(t *testing.T) {
	for _, tree := range []string{"v2", "v2-systemd", "v1-hybrid"} {
		h, err := detect(filepath.Join("testdata", tree), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if h.Kind != None || !strings.HasPrefix(h.Why, "not root (uid 1000)") || !strings.Contains(h.Why, "found at "+h.Mount) {
			t.Errorf("%s: kind %s, why %q", tree, h.Kind, h.Why)
		}
	}
	// The reason for a host without cgroups stays that one.
	h, _ := detect("testdata/none", 1000)
	if !strings.HasPrefix(h.Why, "no cgroup filesystem") {
		t.Errorf("why %q", h.Why)
	}
}

// Files that are not what the kernel makes are errors, never read as a
// kind of host.
func TestDetectRefusesOddFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		want  string
	}{
		{"no mountinfo", func(t *testing.T, root string) { os.Remove(filepath.Join(root, "proc/self/mountinfo")) }, "no such file"},
		{"mountinfo a symlink", func(t *testing.T, root string) {
			p := filepath.Join(root, "proc/self/mountinfo")
			os.Rename(p, p+".real")
			os.Symlink("mountinfo.real", p)
		}, "too many levels of symbolic links"},
		{"mountinfo too large", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "proc/self/mountinfo"), strings.Repeat("x", maxMountinfo+1))
		}, "more than 4194304 bytes"},
		{"mountinfo line cut", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "proc/self/mountinfo"), "29 23 0:26 / /sys/fs/cgroup rw\n")
		}, "is not a mountinfo line"},
		{"cgroup.controllers a FIFO", func(t *testing.T, root string) {
			p := filepath.Join(root, "sys/fs/cgroup/cgroup.controllers")
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"cgroup.controllers missing", func(t *testing.T, root string) { os.Remove(filepath.Join(root, "sys/fs/cgroup/cgroup.controllers")) }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := copyTree(t, "v2")
			tc.setup(t, root)
			h, err := detect(root, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (kind %s), want an error with %q", err, h.Kind, tc.want)
			}
		})
	}
}

func TestParseMountinfo(t *testing.T) {
	ms, err := parseMountinfo([]byte(
		"36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:2 - cgroup cg rw,cpu,cpuset\n" +
			"37 35 98:0 / /x rw - cgroup2 cgroup2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].root != "/mnt1" || ms[0].point != "/mnt 2" || ms[0].fsType != "cgroup" ||
		strings.Join(ms[0].super, ",") != "rw,cpu,cpuset" || ms[1].fsType != "cgroup2" || ms[1].super != nil {
		t.Errorf("got %+v", ms)
	}
	for _, bad := range []string{
		"36 35 98:0 / /x rw",                    // no separator
		"36 35 98:0 / /x rw - cgroup",           // no source
		"36 35 98:0 / x rw - cgroup cg rw",      // relative point
		"36 35 98:0 / /x\\04 rw - cgroup cg rw", // cut escape
		"36 35 98:0 / /x\\9zz rw - cgroup cg rw",
	} {
		if _, err := parseMountinfo([]byte(bad + "\n")); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A later mount at the same point hides the earlier one.
func TestVisible(t *testing.T) {
	ms := visible([]mount{{point: "/a", fsType: "cgroup"}, {point: "/b"}, {point: "/a", fsType: "tmpfs"}})
	if len(ms) != 2 || ms[0].point != "/b" || ms[1].fsType != "tmpfs" {
		t.Errorf("got %+v", ms)
	}
}

func TestCgroupPath(t *testing.T) {
	v1 := "12:pids:/user.slice\n3:cpuset,cpu:/qnuma/a\n0::/init.scope\n"
	for _, tc := range []struct {
		in   string
		v1   bool
		want string
		err  string
	}{
		{in: v1, v1: true, want: "/qnuma/a"},
		{in: v1, want: "/init.scope"},
		{in: "0::/qnuma/x:y\n", want: "/qnuma/x:y"},
		{in: "12:pids:/\n", err: "no line for cgroup v2"},
		{in: "0::/\n", v1: true, err: "no line for the cpuset hierarchy"},
		{in: "garbage\n", err: "is not a cgroup line"},
		{in: "0::relative\n", err: "is not a cgroup line"},
	} {
		got, err := cgroupPath([]byte(tc.in), tc.v1)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q v1=%v: got %q, %v; want %q, %q", tc.in, tc.v1, got, err, tc.want, tc.err)
		}
	}
}

// A mount of a sub-tree (containers) sees /proc/PID/cgroup's paths less
// its root.
func TestUnderMount(t *testing.T) {
	h := Host{mountRoot: "/docker/abc"}
	for in, want := range map[string]string{"/docker/abc/qnuma/x": "/qnuma/x", "/docker/abc": "/", "/docker/abcd/x": "", "/other": ""} {
		got, ok := h.underMount(in)
		if ok != (want != "") || ok && got != want {
			t.Errorf("%s: got %q %v, want %q", in, got, ok, want)
		}
	}
	if got, _ := (Host{mountRoot: "/"}).underMount("/qnuma//x/"); got != "/qnuma/x" {
		t.Errorf("got %q", got)
	}
}
