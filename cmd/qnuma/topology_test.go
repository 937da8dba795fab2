package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/qnuma/qnuma/topology/topotest"
)

// parseTopology parses `qnuma topology ARGS...` with qnuma's own CLI.
func parseTopology(t *testing.T, args ...string) *TopologyCmd {
	t.Helper()
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("qnuma"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := parser.Parse(append([]string{"topology"}, args...))
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	if ctx.Command() != "topology" {
		t.Fatalf("parse %q: command %q, want topology", args, ctx.Command())
	}
	return &cli.Topology
}

// TestTopologyJSONSnapshots is issue 2's acceptance: `qnuma topology --json
// --root DIR` prints the expected facts for every shared snapshot.
func TestTopologyJSONSnapshots(t *testing.T) {
	for _, name := range topotest.Snapshots(t) {
		t.Run(name, func(t *testing.T) {
			cmd := parseTopology(t, "--json", "--root", topotest.Unpack(t, name))
			var out bytes.Buffer
			if err := cmd.write(&out); err != nil {
				t.Fatalf("qnuma topology: %v", err)
			}
			topotest.MatchExpected(t, name, out.Bytes())
		})
	}
}

// TestTopologyText checks the readable report against topology's reviewed
// golden files.
func TestTopologyText(t *testing.T) {
	for _, name := range []string{"32intel64-2p8co2t+8ve", "nvidiagpunumanodes"} {
		t.Run(name, func(t *testing.T) {
			cmd := parseTopology(t, "--root", topotest.Unpack(t, name))
			var out bytes.Buffer
			if err := cmd.write(&out); err != nil {
				t.Fatalf("qnuma topology: %v", err)
			}
			want, err := os.ReadFile(filepath.Join("..", "..", "topology", "testdata", name+".txt"))
			if err != nil {
				t.Fatalf("read golden file: %v", err)
			}
			if out.String() != string(want) {
				t.Errorf("qnuma topology --root %s:\n%s\nwant (topology/testdata/%s.txt):\n%s", name, out.String(), name, want)
			}
		})
	}
}

// TestTopologyThisHost reads the real /sys and /proc.
func TestTopologyThisHost(t *testing.T) {
	if _, err := os.Stat("/sys/devices/system/cpu"); err != nil {
		t.Skipf("no sysfs on this machine: %v", err)
	}
	var out bytes.Buffer
	if err := parseTopology(t, "--json").write(&out); err != nil {
		t.Fatalf("qnuma topology --json: %v", err)
	}
	var r struct {
		Nodes []struct {
			ID               int    `json:"id"`
			CPUs             string `json:"cpus"`
			MemoryTotalBytes uint64 `json:"memory_total_bytes"`
		} `json:"nodes"`
		OnlineCPUs    string `json:"online_cpus"`
		AllowedSource string `json:"allowed_source"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("decode: %v\n%s", err, out.String())
	}
	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Skipf("no cpu/online to compare with: %v", err)
	}
	if got, want := r.OnlineCPUs, strings.TrimSpace(string(online)); got != want {
		t.Errorf("online_cpus %q, /sys/devices/system/cpu/online says %q", got, want)
	}
	if len(r.Nodes) == 0 || r.Nodes[0].MemoryTotalBytes == 0 {
		t.Errorf("no node with memory in %s", out.String())
	}
	// Linux has had Cpus_allowed_list since 2.6.26.
	if r.AllowedSource != "proc-status" {
		t.Errorf("allowed_source %q, want proc-status on a live host", r.AllowedSource)
	}
}

// TestTopologyExitCodes runs the whole CLI: a wrong --root is bad input
// (2), a broken host is a fault (1).
func TestTopologyExitCodes(t *testing.T) {
	// One CPU and no node directory: the smallest host Read accepts.
	small := t.TempDir()
	topotest.WriteTree(t, small, map[string]string{
		"sys/devices/system/cpu/online": "0\n",
		"proc/meminfo":                  "MemTotal: 1024 kB\nMemFree: 512 kB\n",
	})
	broken := t.TempDir()
	topotest.WriteTree(t, broken, map[string]string{"sys/devices/system/cpu/online": "0-x\n"})
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"small host", []string{"topology", "--root", small}, 0},
		{"small host json", []string{"topology", "--json", "--root", small}, 0},
		{"missing root", []string{"topology", "--root", filepath.Join(t.TempDir(), "absent")}, 2},
		{"root without sys", []string{"topology", "--root", t.TempDir()}, 2},
		{"unknown flag", []string{"topology", "--jsn"}, 2},
		{"broken cpu/online", []string{"topology", "--root", broken}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(tc.args); got != tc.want {
				t.Errorf("qnuma %q exited %d, want %d", tc.args, got, tc.want)
			}
		})
	}
}

// TestTopologyEmptyRoot: `--root ""` is bad input, even from a directory
// that holds a snapshot (it used to read the current directory).
func TestTopologyEmptyRoot(t *testing.T) {
	small := t.TempDir()
	topotest.WriteTree(t, small, map[string]string{
		"sys/devices/system/cpu/online": "0\n",
		"proc/meminfo":                  "MemTotal: 1024 kB\nMemFree: 512 kB\n",
	})
	t.Chdir(small)
	code, stdout, stderr := runCaptured(t, "topology", "--root", "")
	if code != 2 || stdout != "" || !strings.Contains(stderr, `--root "": give a directory`) {
		t.Errorf("qnuma topology --root \"\": exit %d, stdout %q, stderr %q; want 2 and a message", code, stdout, stderr)
	}
	// --root . is how to say the current directory.
	if code, _, stderr := runCaptured(t, "topology", "--root", "."); code != 0 {
		t.Errorf("qnuma topology --root .: exit %d: %s", code, stderr)
	}
}

// TestTopologyMemTotalOnly is issue 11 item 23: a hand-made snapshot whose
// node meminfo has only MemTotal is shown, its free memory unknown; a plan
// on it promises no memory nobody said was free.
func TestTopologyMemTotalOnly(t *testing.T) {
	root := t.TempDir()
	topotest.WriteTree(t, root, map[string]string{
		"sys/devices/system/cpu/online":         "0-1\n",
		"sys/devices/system/node/node0/cpulist": "0-1\n",
		"sys/devices/system/node/node0/meminfo": "Node 0 MemTotal: 4194304 kB\n",
	})
	code, stdout, stderr := runCaptured(t, "topology", "--root", root)
	if code != 0 || !strings.Contains(stdout, "memory: 4.00 GiB total, free unknown") {
		t.Errorf("qnuma topology: exit %d, stdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCaptured(t, "topology", "--json", "--root", root)
	if code != 0 || !strings.Contains(stdout, `"memory_free_unknown": true`) {
		t.Errorf("qnuma topology --json: exit %d, stdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCaptured(t, "plan", "--root", root, "--qemu-version", "7.2", "--vcpus", "1", "--memory", "64M")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "does not fit") {
		t.Errorf("qnuma plan on memory not known free: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

// TestTopologySpecialFiles is issue 11 item 15's --root half: a snapshot
// whose cpulist is a link to /dev/zero, or whose meminfo is a FIFO, is an
// error naming the file (a broken host, exit 1), where it used to exhaust
// memory or block forever.
func TestTopologySpecialFiles(t *testing.T) {
	for name, plant := range map[string]func(root string) error{
		"cpulist is /dev/zero": func(root string) error {
			return os.Symlink("/dev/zero", filepath.Join(root, "sys/devices/system/node/node0/cpulist"))
		},
		"meminfo is a fifo": func(root string) error {
			return syscall.Mkfifo(filepath.Join(root, "sys/devices/system/node/node0/meminfo"), 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			topotest.WriteTree(t, root, map[string]string{"sys/devices/system/cpu/online": "0\n"})
			files := map[string]string{
				"sys/devices/system/node/node0/cpulist": "0\n",
				"sys/devices/system/node/node0/meminfo": "Node 0 MemTotal: 1024 kB\nNode 0 MemFree: 512 kB\n",
			}
			if err := os.MkdirAll(filepath.Join(root, "sys/devices/system/node/node0"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := plant(root); err != nil {
				t.Fatal(err)
			}
			for f, content := range files {
				if _, err := os.Lstat(filepath.Join(root, f)); err != nil {
					topotest.WriteTree(t, root, map[string]string{f: content})
				}
			}
			code, stdout, stderr := runCaptured(t, "topology", "--root", root)
			if code != 1 || stdout != "" || !strings.Contains(stderr, "node0/") || !strings.Contains(stderr, "not a regular file") {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 naming the file", code, stdout, stderr)
			}
		})
	}
}

// TestDoctorAndNumactlBadInput: doctor --root "" is refused like
// topology's (it used to check the current directory), and the numactl
// spelling with a command that is not there is bad input (exit 2), as
// plan and run are.
func TestDoctorAndNumactlBadInput(t *testing.T) {
	t.Chdir(t.TempDir())
	if code, stdout, stderr := runCaptured(t, "doctor", "--root", ""); code != 2 || stdout != "" || !strings.Contains(stderr, `--root "": give a directory`) {
		t.Errorf("qnuma doctor --root \"\": exit %d, stdout %q, stderr %q; want 2 and a message", code, stdout, stderr)
	}
	for _, cmd := range []string{"/nonexistent/qemu-system-x86_64", "qnuma-no-such-command"} {
		code, _, stderr := runCaptured(t, "--membind=0", "--", cmd, "-m", "64")
		if code != 2 || !strings.Contains(stderr, "execution of "+cmd) || !strings.Contains(stderr, "nothing was started") {
			t.Errorf("qnuma --membind=0 -- %s: exit %d, stderr %q; want 2 naming it", cmd, code, stderr)
		}
	}
}
