package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology/topotest"
)

const intel = "32intel64-2p8co2t+8ve"

// parsePlan parses `qnuma plan ARGS...` with qnuma's own CLI.
func parsePlan(t *testing.T, args ...string) (*PlanCmd, error) {
	t.Helper()
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("qnuma"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := parser.Parse(append([]string{"plan"}, args...))
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(ctx.Command(), "plan") {
		t.Fatalf("parse %q: command %q, want plan", args, ctx.Command())
	}
	return &cli.Plan, nil
}

// planOut runs `qnuma plan ARGS...` and returns what it prints.
func planOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd, err := parsePlan(t, args...)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = cmd.write(context.Background(), &out)
	return out.String(), err
}

func TestPlanText(t *testing.T) {
	root := topotest.Unpack(t, intel)
	out, err := planOut(t, "--root", root, "--qemu-version", "7.2", "--vcpus", "8", "--memory", "36G",
		"--", "qemu-system-x86_64", "-nographic", "-append", "console=ttyS0 quiet")
	if err != nil {
		t.Fatalf("qnuma plan: %v", err)
	}
	for _, want := range []string{
		"Host nodes: 0-1",
		"No single node has room for 36 GiB",
		"  0           0           0-3    25.5 GiB",
		"  4-7    1           1/0/0..1/3/0        8-15,24-31",
		"QEMU command line (QEMU 7.2.0):\nqemu-system-x86_64 -nographic -append 'console=ttyS0 quiet' -smp 8,sockets=2,cores=4,threads=1 -m 36G ",
		"host-nodes=1,policy=bind",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("qnuma plan output lacks %q:\n%s", want, out)
		}
	}
}

func TestPlanJSON(t *testing.T) {
	root := topotest.Unpack(t, intel)
	tests := []struct {
		name      string
		args      []string
		hostNodes []int
		guestVCPU [][]int
		guestMem  []uint64
		hostCPUs  []string // per vCPU
		policy    string
		argv      []string // qemu_args, whole
		argvHas   [][]string
	}{
		{name: "one node, own args only",
			args:      []string{"--vcpus", "2", "--memory", "2G"},
			hostNodes: []int{0}, guestVCPU: [][]int{{0, 1}}, guestMem: []uint64{2 << 30},
			hostCPUs: []string{"0-7,16-23", "0-7,16-23"}, policy: "bind",
			argv: []string{"-smp", "2,sockets=1,cores=2,threads=1", "-m", "2G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=2G,host-nodes=0,policy=bind",
				"-machine", "memory-backend=qnuma-ram0"}},
		{name: "spec from the user's -smp and -m",
			args:      []string{"--cpus-dedicated", "--prefer-ht", "--", "qemu-system-x86_64", "-smp", "4", "-m", "1G", "-nographic"},
			hostNodes: []int{0}, guestVCPU: [][]int{{0, 1, 2, 3}}, guestMem: []uint64{1 << 30},
			hostCPUs: []string{"0", "16", "1", "17"}, policy: "bind",
			argvHas: [][]string{{"qemu-system-x86_64", "-nographic", "-smp", "4,sockets=1,cores=2,threads=2", "-m", "1G"}}},
		{name: "two nodes interleaved",
			args:      []string{"--vcpus", "12", "--memory", "8G", "--policy", "interleave"},
			hostNodes: []int{0, 1}, guestMem: []uint64{4 << 30, 4 << 30}, policy: "interleave",
			argvHas: [][]string{{"-numa", "dist,src=0,dst=1,val=21"}, {"-numa", "cpu,node-id=1,socket-id=1"}}},
		{name: "host nodes given",
			args:      []string{"--vcpus", "2", "--memory", "1G", "--host-nodes", "1"},
			hostNodes: []int{1}, policy: "bind",
			argvHas: [][]string{{"-object", "memory-backend-memfd,id=qnuma-ram0,size=1G,host-nodes=1,policy=bind"}}},
		// A node without memdev is refused, as QEMU refuses it ("total
		// memory for NUMA nodes should equal RAM size"); a cell bound by
		// its own backend is kept as written.
		{name: "bind only keeps the user's layout",
			args: []string{"--bind-only", "--", "qemu-system-x86_64", "-smp", "2", "-m", "512M",
				"-object", "memory-backend-ram,id=m0,size=512M,host-nodes=1,policy=bind", "-numa", "node,nodeid=0,memdev=m0"},
			argv: []string{"qemu-system-x86_64", "-smp", "2", "-m", "512M",
				"-object", "memory-backend-ram,id=m0,size=512M,host-nodes=1,policy=bind", "-numa", "node,nodeid=0,memdev=m0"},
			hostNodes: []int{1}, guestVCPU: [][]int{{0, 1}}, hostCPUs: []string{"8-15,24-31", "8-15,24-31"}, policy: "bind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--json", "--root", root, "--qemu-version", "7.2"}, tt.args...)
			out, err := planOut(t, args...)
			if err != nil {
				t.Fatalf("qnuma plan %q: %v", args, err)
			}
			var got struct {
				HostNodes  []int    `json:"host_nodes"`
				QEMUArgs   []string `json:"qemu_args"`
				GuestNodes []struct {
					ID          int    `json:"id"`
					HostNodes   []int  `json:"host_nodes"`
					VCPUs       []int  `json:"vcpus"`
					MemoryBytes uint64 `json:"memory_bytes"`
				} `json:"guest_nodes"`
				VCPUs []struct {
					VCPU      int    `json:"vcpu"`
					GuestNode int    `json:"guest_node"`
					HostCPUs  string `json:"host_cpus"`
				} `json:"vcpus"`
				ProcessMempolicy struct {
					Mode  string `json:"mode"`
					Nodes []int  `json:"nodes"`
				} `json:"process_mempolicy"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("decode %s: %v", out, err)
			}
			if tt.hostNodes != nil && (!slices.Equal(got.HostNodes, tt.hostNodes) || !slices.Equal(got.ProcessMempolicy.Nodes, tt.hostNodes)) {
				t.Errorf("host_nodes %v, process_mempolicy.nodes %v, want %v", got.HostNodes, got.ProcessMempolicy.Nodes, tt.hostNodes)
			}
			if got.ProcessMempolicy.Mode != tt.policy {
				t.Errorf("process_mempolicy.mode %q, want %q", got.ProcessMempolicy.Mode, tt.policy)
			}
			for i, g := range got.GuestNodes {
				if g.ID != i {
					t.Errorf("guest_nodes[%d].id = %d", i, g.ID)
				}
				if tt.guestVCPU != nil && !slices.Equal(g.VCPUs, tt.guestVCPU[i]) {
					t.Errorf("guest node %d vcpus %v, want %v", i, g.VCPUs, tt.guestVCPU[i])
				}
				if tt.guestMem != nil && g.MemoryBytes != tt.guestMem[i] {
					t.Errorf("guest node %d memory_bytes %d, want %d", i, g.MemoryBytes, tt.guestMem[i])
				}
			}
			for i, v := range got.VCPUs {
				if v.VCPU != i {
					t.Errorf("vcpus[%d].vcpu = %d", i, v.VCPU)
				}
				if tt.hostCPUs != nil && v.HostCPUs != tt.hostCPUs[i] {
					t.Errorf("vcpu %d host_cpus %q, want %q", i, v.HostCPUs, tt.hostCPUs[i])
				}
			}
			if tt.argv != nil && !slices.Equal(got.QEMUArgs, tt.argv) {
				t.Errorf("qemu_args\n%q\nwant\n%q", got.QEMUArgs, tt.argv)
			}
			for _, run := range tt.argvHas {
				if !containsRun(got.QEMUArgs, run) {
					t.Errorf("qemu_args %q lack %q in a row", got.QEMUArgs, run)
				}
			}
		})
	}
}

// containsRun reports whether sub appears in args as consecutive items.
func containsRun(args, sub []string) bool {
	for i := 0; i+len(sub) <= len(args); i++ {
		if slices.Equal(args[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// Errors that mean bad input or a VM that does not fit: exit 2, nothing
// printed on stdout, the reason on stderr.
func TestPlanErrors(t *testing.T) {
	root := topotest.Unpack(t, intel)
	topotest.WriteTree(t, root, map[string]string{
		"sys/bus/pci/devices/0000:5e:00.0/numa_node": "1\n",
		"sys/bus/pci/devices/0000:5f:00.0/numa_node": "-1\n",
	})
	base := []string{"plan", "--root", root, "--qemu-version", "7.2"}
	tests := []struct {
		name string
		args []string
		code int
		says []string
	}{
		{"too many vcpus", []string{"--vcpus", "17", "--memory", "1G"}, 2, []string{"vm does not fit: 17 vCPUs asked, the usable nodes have 16 cores in all", "  asked  17     1 GiB"}},
		{"too much memory", []string{"--vcpus", "2", "--memory", "44G"}, 2, []string{"44 GiB asked", "  1      8      12.7 GiB"}},
		{"host node refused", []string{"--vcpus", "8", "--memory", "16G", "--host-nodes", "1"}, 2, []string{"host nodes 1 given: 16 GiB asked, they have 12.7 GiB free"}},
		{"host node absent", []string{"--vcpus", "2", "--memory", "1G", "--host-nodes", "4"}, 2, []string{"host node 4 does not exist"}},
		{"bad host node list", []string{"--vcpus", "2", "--memory", "1G", "--host-nodes", "one"}, 2, []string{"--host-nodes \"one\""}},
		{"bad guest nodes", []string{"--vcpus", "2", "--memory", "1G", "--guest-nodes", "0"}, 2, []string{"--guest-nodes \"0\""}},
		{"bad memory", []string{"--vcpus", "2", "--memory", "12Q"}, 2, []string{"--memory"}},
		{"no vcpus", []string{"--memory", "1G"}, 2, []string{"how many vCPUs?"}},
		{"no memory", []string{"--vcpus", "2"}, 2, []string{"how much memory?"}},
		{"bad policy", []string{"--vcpus", "2", "--memory", "1G", "--policy", "local"}, 2, []string{"--policy"}},
		{"bad qemu version", []string{"--vcpus", "2", "--memory", "1G", "--qemu-version", "seven"}, 2, []string{"--qemu-version \"seven\""}},
		{"conflict with -smp", []string{"--vcpus", "4", "--memory", "1G", "--", "qemu-system-x86_64", "-smp", "8"}, 2, []string{"--vcpus 4 conflicts with -smp 8"}},
		{"own -numa", []string{"--vcpus", "2", "--memory", "1G", "--", "qemu-system-x86_64", "-numa", "node"}, 2, []string{"--bind-only"}},
		{"not qemu", []string{"--vcpus", "2", "--memory", "1G", "--", "ls", "-l"}, 2, []string{"ls is not a QEMU system emulator"}},
		{"no such device", []string{"--vcpus", "2", "--memory", "1G", "--near-device", "0000:99:00.0"}, 2, []string{"no such PCI device"}},
		{"bad device address", []string{"--vcpus", "2", "--memory", "1G", "--near-device", "../../etc"}, 2, []string{"want a PCI address"}},
		{"root without sys", []string{"--vcpus", "2", "--memory", "1G", "--root", t.TempDir()}, 2, []string{"not a snapshot of /"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCaptured(t, append(slices.Clone(base), tt.args...)...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if stdout != "" {
				t.Errorf("printed on stdout:\n%s", stdout)
			}
			for _, s := range tt.says {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}

	// The device's node is preferred; a device without one is said so.
	out, err := planOut(t, "--root", root, "--qemu-version", "7.2", "--vcpus", "2", "--memory", "1G", "--near-device", "5e:00.0")
	if err != nil || !strings.Contains(out, "Host nodes: 1\n") {
		t.Errorf("--near-device on node 1: err %v, output:\n%s", err, out)
	}
	out, err = planOut(t, "--root", root, "--qemu-version", "7.2", "--vcpus", "2", "--memory", "1G", "--near-device", "0000:5f:00.0")
	if err != nil || !strings.Contains(out, "PCI device 0000:5f:00.0 has no NUMA node (the kernel says -1), so --near-device prefers no node.") {
		t.Errorf("--near-device without a node: err %v, output:\n%s", err, out)
	}
}

// runCaptured runs qnuma's main logic with stdout and stderr captured.
func runCaptured(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outW, errW
	outC, errC := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(outR); outC <- string(b) }()
	go func() { b, _ := io.ReadAll(errR); errC <- string(b) }()
	func() {
		defer func() { os.Stdout, os.Stderr = oldOut, oldErr }()
		code = run(args)
	}()
	outW.Close()
	errW.Close()
	return code, <-outC, <-errC
}

// A plan that fits prints on stdout and exits 0, through qnuma's own run().
func TestPlanRunExitZero(t *testing.T) {
	root := topotest.Unpack(t, intel)
	code, stdout, stderr := runCaptured(t, "plan", "--root", root, "--qemu-version", "7.2", "--vcpus", "12", "--memory", "8G", "--prefer-ht")
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "Host nodes: 0\n") || !strings.Contains(stdout, "qnuma's QEMU arguments (QEMU 7.2.0;") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestShellJoin(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"qemu-system-x86_64", "-m", "2G"}, "qemu-system-x86_64 -m 2G"},
		{[]string{"-append", "console=ttyS0 quiet"}, "-append 'console=ttyS0 quiet'"},
		{[]string{"-name", "it's"}, `-name 'it'\''s'`},
		{[]string{""}, "''"},
		{[]string{"-drive", "file=$HOME/a.img,if=virtio"}, "-drive 'file=$HOME/a.img,if=virtio'"},
	}
	for _, tt := range tests {
		got := shellJoin(tt.args)
		if got != tt.want {
			t.Errorf("shellJoin(%q) = %s, want %s", tt.args, got, tt.want)
			continue
		}
		// A real shell reads it back as the same words.
		if _, err := exec.LookPath("sh"); err != nil {
			continue
		}
		back, err := exec.Command("sh", "-c", "printf '%s\\0' "+got).Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		words := strings.Split(strings.TrimSuffix(string(back), "\x00"), "\x00")
		if !slices.Equal(words, tt.args) {
			t.Errorf("sh reads %s back as %q, want %q", got, words, tt.args)
		}
	}
}

// On this machine, with its QEMU: the version is probed, and QEMU accepts
// the plan's command line (started paused with -S, asked to quit at once).
func TestPlanThisHostRealQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("starts qemu; skipped with -short")
	}
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 is not installed (make deps installs it)")
	}
	cmd, err := parsePlan(t, "--vcpus", "2", "--memory", "256M", "--state-dir", t.TempDir(),
		"--", bin, "-accel", "tcg", "-display", "none", "-nodefaults", "-S")
	if err != nil {
		t.Fatal(err)
	}
	pr, err := cmd.Prepare(context.Background(), nil)
	if errors.Is(err, plan.ErrDoesNotFit) {
		t.Skipf("this machine has no room for a 2-vCPU 256 MiB VM: %v", err)
	}
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if pr.QEMU.Major == 0 {
		t.Errorf("qemu version not probed: %v", pr.QEMU)
	}
	// -S keeps the guest stopped; a monitor on stdin lets us say quit.
	argv := append(slices.Clone(pr.Argv), "-monitor", "stdio")
	q := exec.Command(argv[0], argv[1:]...)
	q.Stdin = strings.NewReader("quit\n")
	out, err := q.CombinedOutput()
	if err != nil {
		t.Fatalf("qemu refused %q: %v\n%s", argv, err, out)
	}
}

// TestPlanEmptyRoot: `plan --root ""` is bad input, not the current
// directory, even where that holds a snapshot.
func TestPlanEmptyRoot(t *testing.T) {
	t.Chdir(topotest.Unpack(t, intel))
	code, stdout, stderr := runCaptured(t, "plan", "--root", "", "--qemu-version", "7.2", "--vcpus", "2", "--memory", "1G")
	if code != 2 || stdout != "" || !strings.Contains(stderr, `--root "": give a directory`) {
		t.Errorf("qnuma plan --root \"\": exit %d, stdout %q, stderr %q; want 2 and a message", code, stdout, stderr)
	}
}

// TestHugeCountsRefused is issue 11 item 15: ids and counts far past any
// host or QEMU are bad input (exit 2), refused before anything allocates
// per id or per vCPU (these used to die of out-of-memory), and start
// nothing.
func TestHugeCountsRefused(t *testing.T) {
	root := topotest.Unpack(t, intel)
	plan := []string{"plan", "--root", root, "--qemu-version", "7.2", "--memory", "1G"}
	tests := []struct {
		name string
		args []string
		says []string
	}{
		{"plan --host-nodes", append(slices.Clone(plan), "--vcpus", "2", "--host-nodes", "0-4294967297"),
			[]string{`--host-nodes "0-4294967297"`, "out of range 0-65535"}},
		{"plan --vcpus with --overcommit", append(slices.Clone(plan), "--vcpus", "4294967297", "--overcommit"),
			[]string{"--vcpus 4294967297", "QEMU takes at most 4096"}},
		{"plan --vcpus just past QEMU's limit", append(slices.Clone(plan), "--vcpus", "4097", "--overcommit"),
			[]string{"--vcpus 4097", "at most 4096"}},
		{"plan -smp of the user's command line", append(slices.Clone(plan), "--overcommit", "--", "qemu-system-x86_64", "-smp", "4294967297"),
			[]string{"-smp 4294967297", "at most 4096"}},
		{"plan -smp as sockets × cores × threads", append(slices.Clone(plan), "--overcommit", "--", "qemu-system-x86_64", "-smp", "sockets=65536,cores=65536,threads=2"),
			[]string{"-smp sockets=65536,cores=65536,threads=2", "at most 4096"}},
		// 2^32 × 2^32 wraps to 0 in 64 bits: it must read as too many, not none.
		{"plan -smp whose product wraps", append(slices.Clone(plan), "--overcommit", "--", "qemu-system-x86_64", "-smp", "sockets=4294967296,cores=4294967296"),
			[]string{"-smp sockets=4294967296,cores=4294967296", "at most 4096"}},
		{"run --emulator-cpus", []string{"run", "--emulator-cpus", "0-4294967297", "--", "qemu-system-x86_64", "-smp", "1", "-m", "64"},
			[]string{`--emulator-cpus "0-4294967297"`, "out of range"}},
		{"run --vcpus with --overcommit", []string{"run", "--vcpus", "4294967297", "--overcommit", "--memory", "64M", "--", "qemu-system-x86_64"},
			[]string{"--vcpus 4294967297", "at most 4096"}},
		{"numactl --physcpubind", []string{"--physcpubind=0-4294967297", "--", "qemu-system-x86_64", "-smp", "1", "-m", "64"},
			[]string{`"0-4294967297"`, "out of range"}},
		{"numactl -smp", []string{"--membind=0", "--", "qemu-system-x86_64", "-smp", "4294967297", "-m", "64"},
			[]string{"-smp 4294967297", "at most 4096"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCaptured(t, tt.args...)
			if code != 2 || stdout != "" {
				t.Errorf("qnuma %q: exit %d, stdout %q; want exit 2 and nothing printed; stderr:\n%s", tt.args, code, stdout, stderr)
			}
			for _, s := range tt.says {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
	// QEMU's own limit is a plan, not a refusal.
	if code, _, stderr := runCaptured(t, append(slices.Clone(plan), "--vcpus", "4096", "--overcommit")...); code != 0 {
		t.Errorf("plan --vcpus 4096 --overcommit: exit %d: %s", code, stderr)
	}
}

// TestQEMUBinaryMissing is issue 11 item 19: a qemu binary that is not
// there (not in $PATH, no such path, not executable) is bad input (exit 2)
// naming the binary and the fix, for run as for plan; only plan, which can
// do without the binary, suggests --qemu-version (run refuses it).
func TestQEMUBinaryMissing(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "qemu-system-x86_64")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bin  string
		says string
	}{
		{"qemu-system-qnumatest-absent", "not found in $PATH: install QEMU (apt-get install qemu-system-x86)"},
		{filepath.Join(dir, "absent", "qemu-system-x86_64"), "no such file or directory: give the path of an installed qemu-system-* binary"},
		{notExec, "permission denied: give the path"},
	} {
		for _, cmd := range []string{"plan", "run"} {
			t.Run(cmd+" "+filepath.Base(tc.bin), func(t *testing.T) {
				args := []string{cmd, "--vcpus", "1", "--memory", "64M", "--", tc.bin, "-display", "none"}
				if cmd == "run" {
					args = slices.Insert(args, 1, "--state-dir", t.TempDir())
				}
				code, stdout, stderr := runCaptured(t, args...)
				if code != 2 || stdout != "" {
					t.Errorf("qnuma %q: exit %d, stdout %q; want 2; stderr:\n%s", args, code, stdout, stderr)
				}
				if !strings.Contains(stderr, "qemu binary "+tc.bin+": ") || !strings.Contains(stderr, tc.says) {
					t.Errorf("stderr does not name %s and say %q:\n%s", tc.bin, tc.says, stderr)
				}
				if hint := strings.Contains(stderr, "--qemu-version"); hint != (cmd == "plan") {
					t.Errorf("qnuma %s: --qemu-version suggested: %v, want %v:\n%s", cmd, hint, cmd == "plan", stderr)
				}
			})
		}
	}
}

// TestPlanNearDeviceFIFO: a --root whose device numa_node is a FIFO is an
// error naming the file (it used to block plan forever in open).
func TestPlanNearDeviceFIFO(t *testing.T) {
	root := topotest.Unpack(t, intel)
	dev := filepath.Join(root, "sys/bus/pci/devices/0000:aa:00.0")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dev, "numa_node"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCaptured(t, "plan", "--root", root, "--qemu-version", "7.2", "--vcpus", "2", "--memory", "1G", "--near-device", "aa:00.0")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "0000:aa:00.0/numa_node") || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 naming the file", code, stdout, stderr)
	}
}

// TestPlanRefusesWhatQnumaCannotSupervise: -daemonize (qnuma supervises
// qemu), -readconfig (its placement options are out of sight) and an
// option missing its value (it would swallow qnuma's own arguments) are
// bad input, exit 2, naming the option (issue 11 items 11 and 20).
func TestPlanRefusesWhatQnumaCannotSupervise(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-smp", "1", "-m", "64M", "-daemonize"}, "-daemonize"},
		{[]string{"-smp", "1", "-m", "64M", "-readconfig", "vm.cfg"}, "-readconfig"},
		{[]string{"-smp", "1", "-m", "64M", "-kernel"}, "-kernel needs a value"},
	} {
		args := append([]string{"plan", "--qemu-version", "7.2", "--state-dir", t.TempDir(), "--", "qemu-system-x86_64"}, tc.args...)
		code, stdout, stderr := runCaptured(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("qnuma %q: exit %d, stdout %q, stderr %q; want 2 naming %q", args, code, stdout, stderr, tc.want)
		}
	}
	// The control: the same line without them plans.
	// Its own ledger: VMs on this host must not decide it.
	if code, _, stderr := runCaptured(t, "plan", "--qemu-version", "7.2", "--state-dir", t.TempDir(), "--", "qemu-system-x86_64", "-smp", "1", "-m", "64M"); code != 0 {
		t.Errorf("control plan: exit %d: %s", code, stderr)
	}
}
