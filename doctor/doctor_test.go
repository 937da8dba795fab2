package doctor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/topology/topotest"
)

const (
	cpuDir  = "sys/devices/system/cpu/"
	nodeDir = "sys/devices/system/node/"
	absent  = "\x00absent"
)

// tree is a 4-cpu host, cpus 0-3, in `packages` packages and `nodes` nodes
// (1 or 2), 1 GiB per node, this process allowed everything, nothing else
// running, KSM off, balancing off, THP madvise.
func tree(nodes, packages int) map[string]string {
	f := map[string]string{
		cpuDir + "online":                                  "0-3\n",
		"proc/self/status":                                 "Name:\tqnuma\nCpus_allowed_list:\t0-3\nMems_allowed_list:\t0-" + fmt.Sprint(nodes-1) + "\n",
		"proc/1/comm":                                      "init\n",
		"sys/kernel/mm/ksm/run":                            "0\n",
		"sys/kernel/mm/ksm/merge_across_nodes":             "1\n",
		"proc/sys/kernel/numa_balancing":                   "0\n",
		"sys/kernel/mm/transparent_hugepage/enabled":       "always [madvise] never\n",
		"sys/kernel/mm/transparent_hugepage/shmem_enabled": "always within_size [advise] never deny force\n",
		"dev/kvm":          "",
		nodeDir + "online": "0-" + fmt.Sprint(nodes-1) + "\n",
		nodeDir + "node0/hugepages/hugepages-2048kB/nr_hugepages":   "512\n",
		nodeDir + "node0/hugepages/hugepages-2048kB/free_hugepages": "512\n",
	}
	perNode := 4 / nodes
	for n := 0; n < nodes; n++ {
		f[fmt.Sprintf("%snode%d/cpulist", nodeDir, n)] = fmt.Sprintf("%d-%d\n", n*perNode, n*perNode+perNode-1)
		f[fmt.Sprintf("%snode%d/meminfo", nodeDir, n)] = fmt.Sprintf("Node %d MemTotal: 1048576 kB\nNode %d MemFree: 524288 kB\n", n, n)
	}
	for cpu := 0; cpu < 4; cpu++ {
		dir := fmt.Sprintf("%scpu%d/topology/", cpuDir, cpu)
		f[dir+"physical_package_id"] = fmt.Sprint(cpu*packages/4, "\n")
		f[dir+"core_id"] = fmt.Sprint(cpu, "\n")
		f[dir+"thread_siblings_list"] = fmt.Sprint(cpu, "\n")
	}
	return f
}

func write(t *testing.T, base, edits map[string]string) string {
	t.Helper()
	files := map[string]string{}
	for k, v := range base {
		files[k] = v
	}
	for k, v := range edits {
		if v == absent {
			delete(files, k)
		} else {
			files[k] = v
		}
	}
	root := t.TempDir()
	topotest.WriteTree(t, root, files)
	return root
}

func find(t *testing.T, rs []Result, name string) Result {
	t.Helper()
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s check in %+v", name, rs)
	return Result{}
}

func qemuSays(out string, err error) func() (string, error) {
	return func() (string, error) { return out, err }
}

func hugeVM(node int, mem uint64) ledger.Entry {
	return ledger.Entry{Name: "h", MemoryBytes: map[int]uint64{node: mem}, HugepageBytes: 2 << 20}
}

// Each check both ways: a tree where it passes and one where it does not.
func TestChecks(t *testing.T) {
	tests := []struct {
		check  string
		nodes  int
		pkgs   int
		edits  map[string]string
		env    Env
		status Status
		found  string
	}{
		{"numa-nodes", 2, 2, nil, Env{}, OK, "2 NUMA node(s) on 2 socket(s)"},
		{"numa-nodes", 1, 1, nil, Env{}, OK, "every VM is local"},
		{"numa-nodes", 1, 2, nil, Env{}, Warn, "1 NUMA node(s) on 2 socket(s)"},
		{"numa-nodes", 1, 1, map[string]string{cpuDir + "online": "x\n"}, Env{}, Error, "cannot read the host topology"},

		{"ksm", 2, 2, nil, Env{}, OK, "not running"},
		{"ksm", 2, 2, map[string]string{"sys/kernel/mm/ksm/run": "1\n"}, Env{}, Warn, "merge_across_nodes=1"},
		{"ksm", 2, 2, map[string]string{"sys/kernel/mm/ksm/run": "1\n", "sys/kernel/mm/ksm/merge_across_nodes": "0\n"}, Env{}, OK, "within a node"},
		{"ksm", 1, 1, map[string]string{"sys/kernel/mm/ksm/run": "1\n"}, Env{}, OK, "harmless on one node"},
		{"ksm", 2, 2, map[string]string{"sys/kernel/mm/ksm/run": absent}, Env{}, OK, "not in this kernel"},

		{"numa-balancing", 2, 2, nil, Env{}, OK, "=0"},
		{"numa-balancing", 2, 2, map[string]string{"proc/sys/kernel/numa_balancing": "1\n"}, Env{}, Warn, "kernel.numa_balancing=1"},
		{"numa-balancing", 1, 1, map[string]string{"proc/sys/kernel/numa_balancing": "1\n"}, Env{}, OK, "one node"},

		{"numad", 2, 2, nil, Env{}, OK, "not running"},
		{"numad", 2, 2, map[string]string{"proc/4242/comm": "numad\n"}, Env{}, Warn, "pid 4242"},

		{"irqbalance", 2, 2, nil, Env{}, OK, "not running"},
		{"irqbalance", 2, 2, map[string]string{"proc/77/comm": "irqbalance\n", "proc/78/comm": "irqbalance2\n"}, Env{}, Warn, "(pid 77)"},

		{"transparent-hugepages", 2, 2, nil, Env{}, OK, "madvise"},
		{"transparent-hugepages", 2, 2, map[string]string{"sys/kernel/mm/transparent_hugepage/enabled": "[always] madvise never\n"}, Env{}, OK, "always"},
		{"transparent-hugepages", 2, 2, map[string]string{"sys/kernel/mm/transparent_hugepage/enabled": "always madvise [never]\n"}, Env{}, Warn, "never"},
		{"transparent-hugepages", 2, 2, map[string]string{"sys/kernel/mm/transparent_hugepage/enabled": absent}, Env{}, Warn, "not in this kernel"},
		{"shmem-hugepages", 2, 2, nil, Env{}, OK, "mode advise"},
		{"shmem-hugepages", 2, 2, map[string]string{"sys/kernel/mm/transparent_hugepage/shmem_enabled": "always within_size advise [never] deny force\n"}, Env{}, Warn, "mode never"},
		{"shmem-hugepages", 2, 2, map[string]string{"sys/kernel/mm/transparent_hugepage/shmem_enabled": absent}, Env{}, Warn, "no shmem transparent hugepages"},

		{"hugepages", 2, 2, nil, Env{}, OK, "node 0: 512×2M (512 free)"},
		{"hugepages", 2, 2, nil, Env{VMs: []ledger.Entry{hugeVM(0, 1<<30)}}, OK, "node 0: VMs ask 512×2M, the pool holds 512"},
		{"hugepages", 2, 2, nil, Env{VMs: []ledger.Entry{hugeVM(0, 1<<30), hugeVM(0, 2<<20)}}, Error, "VMs ask 513×2M, the pool holds 512"},
		{"hugepages", 2, 2, nil, Env{VMs: []ledger.Entry{hugeVM(1, 2<<20)}}, Error, "node 1: VMs ask 1×2M, the pool holds 0"},

		{"kvm", 2, 2, map[string]string{"dev/kvm": absent}, Env{}, Warn, "absent: VMs run under TCG, which works"},
		{"kvm", 2, 2, nil, Env{}, OK, "present (not opened"},
		{"kvm", 2, 2, nil, Env{KVMAPIVersion: func(string) (int, error) { return 12, nil }}, OK, "usable (API version 12)"},
		{"kvm", 2, 2, nil, Env{KVMAPIVersion: func(string) (int, error) { return 0, os.ErrPermission }}, Error, "unusable: permission denied"},
		{"kvm", 2, 2, nil, Env{KVMAPIVersion: func(string) (int, error) { return 11, nil }}, Error, "API version 11"},

		{"qemu", 2, 2, nil, Env{QEMUVersion: qemuSays("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n", nil)}, OK, "QEMU 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3): thread-context supported"},
		{"qemu", 2, 2, nil, Env{QEMUVersion: qemuSays("QEMU emulator version 6.2.0 (Debian 1:6.2+dfsg-2ubuntu6)\n", nil)}, Warn, "no thread-context"},
		{"qemu", 2, 2, nil, Env{QEMUVersion: qemuSays("", exec.ErrNotFound)}, Error, "executable file not found"},
		{"qemu", 2, 2, nil, Env{QEMUVersion: qemuSays("hello\n", nil)}, Error, "parse qemu version"},
		{"qemu", 2, 2, nil, Env{}, OK, "not run: the root is not /"},

		{"cpuset", 2, 2, nil, Env{}, OK, "cpus 0-3 of online 0-3 and nodes 0-1"},
		{"cpuset", 2, 2, map[string]string{"proc/self/status": "Cpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n"}, Env{}, Warn, "cpus 0-1 of online 0-3 and nodes 0"},
	}
	for _, tt := range tests {
		t.Run(tt.check+"/"+string(tt.status)+"/"+tt.found, func(t *testing.T) {
			env := tt.env
			env.Root = write(t, tree(tt.nodes, tt.pkgs), tt.edits)
			r := find(t, Run(env), tt.check)
			if r.Status != tt.status || !strings.Contains(r.Found, tt.found) {
				t.Errorf("%s = %s %q, want %s containing %q", tt.check, r.Status, r.Found, tt.status, tt.found)
			}
			if r.Status != OK && r.Why == "" && !strings.Contains(r.Found, "cannot read") {
				t.Errorf("%s %s without a why: %+v", tt.check, r.Status, r)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	tests := []struct {
		in   []Status
		want Status
	}{
		{nil, OK}, {[]Status{OK, OK}, OK}, {[]Status{OK, Warn, OK}, Warn}, {[]Status{Warn, Error, Warn}, Error},
	}
	for _, tt := range tests {
		var rs []Result
		for _, s := range tt.in {
			rs = append(rs, Result{Status: s})
		}
		if got := Worst(rs); got != tt.want {
			t.Errorf("Worst(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// Doctor on this machine, at root "/": what it reports must be what is true
// here, read independently.
func TestDoctorHere(t *testing.T) {
	if testing.Short() {
		t.Skip("runs qemu-system-x86_64 -version")
	}
	rs := Run(Env{Root: "/"})
	nodes, err := os.ReadDir("/sys/devices/system/node")
	if err != nil {
		t.Skipf("no /sys/devices/system/node here: %v", err)
	}
	n := 0
	for _, d := range nodes {
		if strings.HasPrefix(d.Name(), "node") {
			n++
		}
	}
	if r := find(t, rs, "numa-nodes"); !strings.HasPrefix(r.Found, fmt.Sprintf("%d NUMA node(s)", n)) {
		t.Errorf("numa-nodes = %+v, this host has %d node(s)", r, n)
	}
	r := find(t, rs, "kvm")
	if _, err := os.Stat("/dev/kvm"); errors.Is(err, os.ErrNotExist) {
		if r.Status != Warn || !strings.Contains(r.Found, "absent") || !strings.Contains(r.Found, "TCG") {
			t.Errorf("kvm = %+v, and /dev/kvm is absent here", r)
		}
	} else if r.Status == Warn {
		t.Errorf("kvm = %+v, and /dev/kvm exists here", r)
	}
	q := find(t, rs, "qemu")
	out, err := exec.Command("qemu-system-x86_64", "-version").Output()
	if err != nil {
		if q.Status != Error {
			t.Errorf("qemu = %+v, and running it fails here: %v", q, err)
		}
		return
	}
	first := strings.Fields(strings.SplitN(string(out), "\n", 2)[0]) // QEMU emulator version X.Y.Z (...)
	if len(first) < 4 || !strings.Contains(q.Found, "QEMU "+first[3]) {
		t.Errorf("qemu = %+v, and qemu says %q", q, out)
	}
	t.Logf("doctor here:")
	for _, r := range rs {
		t.Logf("  %-22s %-5s %s", r.Name, r.Status, r.Found)
	}
}
