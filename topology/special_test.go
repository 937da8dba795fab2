package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qnuma/qnuma/topology/topotest"
)

// TestReadSpecialFiles: a snapshot is outside input. A file that is a FIFO,
// a device (a symlink to /dev/zero), a directory, or far larger than any
// sysfs file is refused with an error naming it, instead of blocking in
// open, reading forever, or exhausting memory. Symlinks to regular files
// still work: sysfs snapshots are full of them.
func TestReadSpecialFiles(t *testing.T) {
	huge := strings.Repeat("0,", maxFileBytes/2+1) + "1\n"
	for _, tc := range []struct {
		name string
		file string // relative to the root
		make func(t *testing.T, path string)
		want []string
	}{
		{"meminfo is a fifo", nodeDir + "node0/meminfo", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"node0/meminfo", "not a regular file", "named pipe"}},
		{"cpulist is a symlink to /dev/zero", nodeDir + "node1/cpulist", func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, []string{"node1/cpulist", "not a regular file", "device"}},
		{"cpu/online is a fifo", cpuDir + "online", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"cpu/online", "not a regular file"}},
		{"proc/self/status is /dev/zero", "proc/self/status", func(t *testing.T, p string) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, []string{"proc/self/status", "not a regular file"}},
		{"distance is a directory", nodeDir + "node0/distance", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, []string{"node0/distance", "not a regular file", "directory"}},
		{"hugepages directory is a fifo", nodeDir + "node0/hugepages", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"node0/hugepages", "not a directory"}},
		{"cpulist of more than a MiB", nodeDir + "node1/cpulist", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte(huge), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"node1/cpulist", "larger than"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeHost(t, baseTree(), map[string]string{tc.file: absent})
			tc.make(t, filepath.Join(root, tc.file))
			h, err := Read(root)
			if err == nil {
				t.Fatalf("Read gave %+v, want an error", h)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// A cpulist that is a symlink to a regular file elsewhere is read.
	root := writeHost(t, baseTree(), map[string]string{nodeDir + "node1/cpulist": absent, "elsewhere/list": "2-3\n"})
	topotest.Symlink(t, root, nodeDir+"node1/cpulist", "../../../../../elsewhere/list")
	h, err := Read(root)
	if err != nil {
		t.Fatalf("cpulist through a symlink: %v", err)
	}
	wantSet(t, "node 1 cpus", nodeOf(t, h, 1).CPUs, set(2, 3))
}

// TestReadEmptyRoot: "" is not a root (it would read relative to the
// current directory).
func TestReadEmptyRoot(t *testing.T) {
	if h, err := Read(""); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("Read(\"\") = %v, %v; want an error about the root", h, err)
	}
}

// TestReadMeminfoEdges is issue 11 item 23: a hand-made node meminfo with
// only MemTotal is read (free unknown, counted as none), and figures whose
// sum would wrap past 2^64 bytes are refused instead of wrapped.
func TestReadMeminfoEdges(t *testing.T) {
	root := writeHost(t, baseTree(), map[string]string{nodeDir + "node1/meminfo": "Node 1 MemTotal: 1048576 kB\n"})
	h, err := Read(root)
	if err != nil {
		t.Fatalf("meminfo with only MemTotal: %v", err)
	}
	n := nodeOf(t, h, 1)
	if n.MemTotal != 1<<30 || n.MemFree != 0 || n.InactiveFile != 0 || !n.MemFreeUnknown {
		t.Errorf("node 1 = total %d free %d inactive %d unknown %v, want 1 GiB, 0, 0, unknown", n.MemTotal, n.MemFree, n.InactiveFile, n.MemFreeUnknown)
	}
	if n0 := nodeOf(t, h, 0); n0.MemFreeUnknown || n0.MemFree != 1<<29 {
		t.Errorf("node 0 with MemFree: free %d unknown %v", n0.MemFree, n0.MemFreeUnknown)
	}
	if text := h.Text(); !strings.Contains(text, "1.00 GiB total, free unknown") {
		t.Errorf("text does not say the free memory is unknown:\n%s", text)
	}
	if r := h.Report(); !r.Nodes[1].MemoryFreeUnknown || r.Nodes[0].MemoryFreeUnknown {
		t.Errorf("report memory_free_unknown: node 0 %v, node 1 %v", r.Nodes[0].MemoryFreeUnknown, r.Nodes[1].MemoryFreeUnknown)
	}

	// 2^54-1 kB is the largest MemTotal that fits 64 bits in bytes; free
	// and inactive of 2^53 kB each sum to 2^64 bytes, which wraps to 0.
	const maxKB = 1<<54 - 1
	for name, tc := range map[string]struct {
		meminfo string
		want    string
	}{
		"sum wraps":           {fmt.Sprintf("Node 0 MemTotal: %d kB\nNode 0 MemFree: %d kB\nNode 0 Inactive(file): %d kB\n", maxKB, 1<<53, 1<<53), "overflows"},
		"free over total":     {"Node 0 MemTotal: 1024 kB\nNode 0 MemFree: 2048 kB\n", "MemFree 2048 kB is more than MemTotal 1024 kB"},
		"inactive over total": {"Node 0 MemTotal: 1024 kB\nNode 0 MemFree: 0 kB\nNode 0 Inactive(file): 4096 kB\n", "Inactive(file) 4096 kB is more than MemTotal"},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := Read(writeHost(t, baseTree(), map[string]string{nodeDir + "node0/meminfo": tc.meminfo}))
			if err == nil {
				n := nodeOf(t, h, 0)
				t.Fatalf("Read gave node 0 free %d + inactive %d = %d, want an error", n.MemFree, n.InactiveFile, n.MemFree+n.InactiveFile)
			}
			if !strings.Contains(err.Error(), "node0/meminfo") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name node0/meminfo and say %q", err, tc.want)
			}
		})
	}
}

func TestReadDeviceNode(t *testing.T) {
	root := t.TempDir()
	topotest.WriteTree(t, root, map[string]string{
		"sys/bus/pci/devices/0000:5e:00.0/numa_node": "1\n",
		"sys/bus/pci/devices/0000:5f:00.0/numa_node": "-1\n",
		"sys/bus/pci/devices/0000:60:00.0/numa_node": "x\n",
	})
	fifo := filepath.Join(root, "sys/bus/pci/devices/0000:61:00.0")
	if err := os.MkdirAll(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(fifo, "numa_node"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr    string
		want    int
		wantErr string
	}{
		{"0000:5e:00.0", 1, ""},
		{"0000:5f:00.0", -1, ""},
		{"0000:60:00.0", 0, `"x" is not a node id`},
		{"0000:61:00.0", 0, "not a regular file"},
		{"0000:99:00.0", 0, "no such file"},
	} {
		n, err := ReadDeviceNode(root, tc.addr)
		if tc.wantErr == "" && (err != nil || n != tc.want) || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("ReadDeviceNode(%s) = %d, %v; want %d, error %q", tc.addr, n, err, tc.want, tc.wantErr)
		}
	}
	if _, err := ReadDeviceNode(root, "0000:99:00.0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent device: %v, want fs.ErrNotExist", err)
	}
}
