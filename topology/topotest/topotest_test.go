package topotest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one tar entry to write.
type entry struct {
	name, body, link string
	kind             byte
}

func tarball(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.kind, Linkname: e.link, Mode: 0o444, Size: int64(len(e.body))}
		if e.kind == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o555 // read-only folders, as in the snapshots
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := w.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestUnpackTar(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	top, err := unpackTar(tarball(t,
		entry{name: "host/", kind: tar.TypeDir},
		entry{name: "host/sys/devices/system/node/node0/", kind: tar.TypeDir},
		entry{name: "host/sys/devices/system/node/node0/cpulist", body: "0-1\n"},
		entry{name: "host/sys/devices/system/node/node0/cpu0", kind: tar.TypeSymlink, link: "."},
		entry{name: "./host/proc/meminfo", body: "MemTotal: 1 kB\n"},
		entry{name: "host/proc/meminfo.link", kind: tar.TypeLink, link: "host/proc/meminfo"},
	), dest)
	if err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if top != "host" {
		t.Errorf("top folder %q, want host", top)
	}
	node := filepath.Join(dest, "host/sys/devices/system/node/node0")
	if b, err := os.ReadFile(filepath.Join(node, "cpulist")); err != nil || string(b) != "0-1\n" {
		t.Errorf("cpulist %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(node, "cpu0")); err != nil || target != "." {
		t.Errorf("cpu0 link %q, %v; want a symlink to .", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "host/proc/meminfo.link")); err != nil || string(b) != "MemTotal: 1 kB\n" {
		t.Errorf("hard link %q, %v", b, err)
	}
	// Folders stay writable so that the test's cleanup can remove them.
	if err := os.WriteFile(filepath.Join(node, "new"), nil, 0o644); err != nil {
		t.Errorf("unpacked folder not writable: %v", err)
	}
}

func TestUnpackTarRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"parent", []entry{{name: "host/a", body: "x"}, {name: "../evil", body: "x"}}, "outside the destination"},
		{"climbing", []entry{{name: "host/../../evil", body: "x"}}, "outside the destination"},
		{"absolute", []entry{{name: "/tmp/evil", body: "x"}}, "outside the destination"},
		{"through an absolute symlink", []entry{{name: "host/l", kind: tar.TypeSymlink, link: "$PARENT"}, {name: "host/l/evil", body: "x"}}, "entry host/l/evil"},
		{"through a climbing symlink", []entry{{name: "host/l", kind: tar.TypeSymlink, link: "../.."}, {name: "host/l/evil", body: "x"}}, "entry host/l/evil"},
		{"hard link out", []entry{{name: "host/l", kind: tar.TypeLink, link: "../../etc/passwd"}}, "outside the destination"},
		{"two top folders", []entry{{name: "a/x", body: "x"}, {name: "b/x", body: "x"}}, "one top-level folder"},
		{"device", []entry{{name: "host/null", kind: tar.TypeChar}}, "unsupported entry type"},
		{"same file twice", []entry{{name: "host/a", body: "x"}, {name: "host/a", body: "y"}}, "entry host/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "dest")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, e := range tc.entries {
				if e.link == "$PARENT" {
					tc.entries[i].link = parent
				}
			}
			_, err := unpackTar(tarball(t, tc.entries...), dest)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("unpack gave %v, want an error saying %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(parent, "evil")); err == nil {
				t.Error("a file was written outside the destination")
			}
		})
	}
}

func TestFixturesFromEnv(t *testing.T) {
	withSub := t.TempDir()
	WriteTree(t, withSub, map[string]string{"hwloc-sysfs/a.tar.bz2": ""})
	direct := t.TempDir()
	WriteTree(t, direct, map[string]string{"a.tar.bz2": ""})
	for _, tc := range []struct {
		name, env, want string
		wantErr         bool
	}{
		{"folder holding hwloc-sysfs", withSub, filepath.Join(withSub, "hwloc-sysfs"), false},
		{"the snapshot folder itself", direct, direct, false},
		{"no snapshots there", t.TempDir(), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(FixturesEnv, tc.env)
			got, err := fixtures()
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("fixtures() = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestFixturesBesideModule(t *testing.T) {
	t.Setenv(FixturesEnv, "")
	dir, err := fixtures()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	beside := filepath.Join(mod, "..", "shared", "fixtures", "hwloc-sysfs")
	if _, statErr := os.Stat(beside); statErr != nil {
		if dir != "" {
			t.Errorf("fixtures() = %q with no %s", dir, beside)
		}
		t.Skipf("no snapshots beside the module (%v): only the absent case was checked", statErr)
	}
	if dir != beside {
		t.Errorf("fixtures() = %q, want %q", dir, beside)
	}
}

// TestUnpackSnapshot unpacks a real snapshot: the root holds sys/ and
// proc/, and sysfs's self-links survive as links.
func TestUnpackSnapshot(t *testing.T) {
	root := Unpack(t, "16amd64-8n2c-cpusets.tar.bz2")
	if filepath.Base(root) != "16amd64-8n2c-cpusets" {
		t.Errorf("root %s", root)
	}
	for _, p := range []string{"sys/devices/system/cpu/online", "proc/mounts"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("unpacked snapshot lacks %s: %v", p, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "sys/devices/system/node/node0/cpu0")); err != nil || target != "." {
		t.Errorf("node0/cpu0 is %q, %v; want the symlink to .", target, err)
	}
}

func TestMatchExpectedFindsDifferences(t *testing.T) {
	want := map[string]any{
		"online_cpus": "0-3",
		"nodes":       []any{map[string]any{"id": json.Number("0"), "cpus": "0-3", "distances": nil}},
	}
	for _, tc := range []struct {
		name   string
		report string
		diffs  int
	}{
		{"same, with extra keys", `{"online_cpus":"0-3","cores":4,"nodes":[{"id":0,"cpus":"0-3","distances":null,"hugepages":[]}]}`, 0},
		{"other cpus", `{"online_cpus":"0-3","nodes":[{"id":0,"cpus":"0-2","distances":null}]}`, 1},
		{"missing key", `{"nodes":[{"id":0,"cpus":"0-3"}]}`, 2},
		{"distances where null is expected", `{"online_cpus":"0-3","nodes":[{"id":0,"cpus":"0-3","distances":{"0":10}}]}`, 1},
		{"extra node", `{"online_cpus":"0-3","nodes":[{"id":0,"cpus":"0-3","distances":null},{"id":1}]}`, 1},
	} {
		got, err := decode([]byte(tc.report))
		if err != nil {
			t.Fatal(err)
		}
		if diffs := compare("", want, got); len(diffs) != tc.diffs {
			t.Errorf("%s: %d differences %q, want %d", tc.name, len(diffs), diffs, tc.diffs)
		}
	}
}
