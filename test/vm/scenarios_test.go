package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The scenarios of issue 5: qnuma run inside the multi-node test host, each
// asserted from /proc there, each with a negative control (a row whose
// setup differs so that the same check must fail).

var (
	qnumaOnce sync.Once
	qnumaDir  string
	qnumaErr  error
)

// requireQnuma builds qnuma from this checkout (so the scenarios test the
// code, not a stale build/qnuma) and returns the Share that puts it on
// the test host's PATH at /opt/qnuma.
func requireQnuma(t *testing.T) Share {
	t.Helper()
	qnumaOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			qnumaErr = err
			return
		}
		qnumaDir, qnumaErr = os.MkdirTemp("", "qnuma-vm-bin-")
		if qnumaErr != nil {
			return
		}
		// go test puts its own GOROOT/bin first on the test's PATH.
		cmd := exec.Command("go", "build", "-o", filepath.Join(qnumaDir, "qnuma"), "./cmd/qnuma")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			qnumaErr = &buildError{err: err, out: string(out)}
		}
	})
	if qnumaErr != nil {
		t.Fatalf("build qnuma for the test host: %v", qnumaErr)
	}
	return Share{HostPath: qnumaDir, GuestPath: "/opt/qnuma"}
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// scenario is one boot: a topology, a script, and the exit status wanted.
type scenario struct {
	name     string
	topo     Topology
	script   string
	wantExit int
	// wantOutput must all appear in the output (for negative controls:
	// each check failed for the reason it is about).
	wantOutput []string
	timeout    time.Duration
}

func runScenarios(t *testing.T, rows []scenario) {
	Require(t)
	bin := requireQnuma(t)
	for _, sc := range rows {
		t.Run(sc.name, func(t *testing.T) {
			timeout := sc.timeout
			if timeout == 0 {
				timeout = 2 * time.Minute
			}
			res, err := Run(context.Background(), Options{
				Topology: sc.topo,
				Timeout:  timeout,
				Shares:   []Share{bin},
				Env:      map[string]string{"PATH": "/opt/qnuma:/usr/sbin:/usr/bin:/bb"},
			}, "set -u\n"+sc.script)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("exit %d after %s; output:\n%s", res.ExitCode, res.Elapsed.Round(100*time.Millisecond), res.Output)
			if res.ExitCode != sc.wantExit {
				t.Fatalf("exit status %d, want %d", res.ExitCode, sc.wantExit)
			}
			for _, want := range sc.wantOutput {
				if !strings.Contains(res.Output, want) {
					t.Errorf("output lacks %q", want)
				}
			}
		})
	}
}

// pausedVM is a qemu command line for a VM that qnuma places and pins and
// that stays paused (-S): no guest code runs, and --prealloc has put all
// of its RAM in place.
const pausedVM = "-- qemu-system-x86_64 -S -accel tcg -display none -nodefaults"

func TestScenarioHostNodes(t *testing.T) {
	check := `
qnuma_start /tmp/qnuma.log run --host-nodes $NODE --vcpus 2 --memory 256M --prealloc ` + pausedVM + `
echo "guest ram: $(biggest_mapping $qemu_pid)"
check expect_mem_on $qemu_pid 1 256
check expect_vcpus_on $qemu_pid 2-3 2
qnuma_stop
checks_done
`
	runScenarios(t, []scenario{
		{name: "--host-nodes 1 lands on node 1", topo: TwoNodes(), script: "NODE=1\n" + check, wantExit: 0},
		{name: "negative: --host-nodes 0 is not on node 1", topo: TwoNodes(), script: "NODE=0\n" + check, wantExit: 1,
			wantOutput: []string{"MiB on node 1, want >= 256", "may run on 0-1, want 2-3"}},
	})
}

// Auto placement goes to the node with room: with node 1 made busy it
// picks node 0. Negative control: node 0 busy, the same check fails (and
// without any busy node qnuma prefers node 1, which has more room).
func TestScenarioAutoPicksNodeWithRoom(t *testing.T) {
	check := `
hold_node_memory $BUSY 700
qnuma_start /tmp/qnuma.log run --vcpus 2 --memory 384M --prealloc ` + pausedVM + `
check expect_mem_on $qemu_pid 0 384
check expect_vcpus_on $qemu_pid 0-1 2
qnuma_stop
checks_done
`
	runScenarios(t, []scenario{
		{name: "node 1 busy: auto picks node 0", topo: TwoNodes(), script: "BUSY=1\n" + check},
		{name: "negative: node 0 busy", topo: TwoNodes(), script: "BUSY=0\n" + check, wantExit: 1,
			wantOutput: []string{"MiB on node 0, want >= 384", "may run on 2-3, want 0-1"}},
	})
}

// A VM wider than a node (4 vCPUs, nodes of 2 CPUs) gets two guest nodes on
// the two host nodes: RAM split 256+256 MiB and vCPUs pinned 2 per node.
// Memory larger than one node (1280 MiB, nodes of 1 GiB) forces the same
// split with vCPUs that would fit one node. Negative control: a VM that
// fits one node fails the same checks.
func TestScenarioWideVMSpansTwoNodes(t *testing.T) {
	check := func(vcpus int, memory string, ramPerNode int, vcpusPerNode int) string {
		return fmt.Sprintf(`
qnuma_start /tmp/qnuma.log run --vcpus %d --memory %s --prealloc `+pausedVM+`
qemu_args $qemu_pid | grep -E '^memory-backend|^node,|^cpu,'
check expect_mem_on $qemu_pid 0 %d
check expect_mem_on $qemu_pid 1 %d
check expect_vcpu_count_on $qemu_pid 0-1 %d
check expect_vcpu_count_on $qemu_pid 2-3 %d
qnuma_stop
checks_done
`, vcpus, memory, ramPerNode, ramPerNode, vcpusPerNode, vcpusPerNode)
	}
	runScenarios(t, []scenario{
		{name: "4 vCPUs on nodes of 2 CPUs", topo: TwoNodes(), script: check(4, "512M", 256, 2)},
		{name: "1280 MiB on nodes of 1 GiB", topo: TwoNodes(), script: check(2, "1280M", 640, 1)},
		{name: "negative: 2 vCPUs and 512 MiB fit one node", topo: TwoNodes(), script: check(2, "512M", 256, 1), wantExit: 1,
			wantOutput: []string{"MiB on node 0, want >= 256", "vCPUs on 0-1, want 1"}},
	})
}

// A VM placed on node 1 and the memory-only node 2 gets RAM on node 2 and
// no vCPUs on the guest node node 2 backs. Negative control: a qemu started
// without qnuma that puts a vCPU on that guest node.
//
// (Left to the planner, 1200 MiB over these 512 MiB nodes also uses node 2,
// but puts 400 MiB on node 0, which has about 430 MiB free: the prealloc
// was OOM-killed once in a few runs, so the scenario names its nodes.)
func TestScenarioMemoryOnlyNodeGetsNoVCPUs(t *testing.T) {
	check := `
check expect_mem_on $qemu_pid 2 128
check expect_no_vcpus_on_host_node $qemu_pid 2
check expect_vcpus_on $qemu_pid 1 1
checks_done
`
	withQnuma := `
qnuma_start /tmp/qnuma.log run --vcpus 1 --memory 512M --host-nodes 1-2 --allow-memory-only-nodes --prealloc ` + pausedVM + `
qemu_args $qemu_pid | grep -E '^memory-backend|^node,|^cpu,'
` + check
	// Guest node 1 on host node 2 holds vCPU 1: what qnuma must never do.
	handMade := `
qemu-system-x86_64 -S -daemonize -pidfile /tmp/q.pid -display none -nodefaults -accel tcg -name x,debug-threads=on \
	-m 512M -smp 2,sockets=2 \
	-object memory-backend-ram,id=a,size=256M,host-nodes=0,policy=bind,prealloc=on \
	-object memory-backend-ram,id=b,size=256M,host-nodes=2,policy=bind,prealloc=on \
	-numa node,nodeid=0,memdev=a -numa node,nodeid=1,memdev=b \
	-numa cpu,node-id=0,socket-id=0 -numa cpu,node-id=1,socket-id=1 || die "hand-made qemu"
qemu_pid=$(cat /tmp/q.pid)
` + check
	runScenarios(t, []scenario{
		{name: "qnuma puts memory on node 2, vCPUs on node 1", topo: WithMemoryOnlyNode(), script: withQnuma},
		{name: "negative: a vCPU on the memory-only node's guest node", topo: WithMemoryOnlyNode(), script: handMade, wantExit: 1,
			wantOutput: []string{"guest node 1 (on host node 2) has vCPUs", "may run on 0-1, want 1"}},
	})
}

// numactl's syntax: `qnuma --membind=1 -- qemu ...` places the VM's RAM on
// node 1 and pins its vCPUs there. Negative control: --membind=0.
func TestScenarioNumactlSyntax(t *testing.T) {
	check := `
qnuma_start /tmp/qnuma.log --membind=$NODE -- qemu-system-x86_64 -S -accel tcg -display none -nodefaults -m 256M -smp 2 -mem-prealloc
echo "guest ram: $(biggest_mapping $qemu_pid)"
check expect_mem_on $qemu_pid 1 256
check expect_vcpus_on $qemu_pid 2-3 2
qnuma_stop
checks_done
`
	runScenarios(t, []scenario{
		{name: "--membind=1", topo: TwoNodes(), script: "NODE=1\n" + check},
		{name: "negative: --membind=0", topo: TwoNodes(), script: "NODE=0\n" + check, wantExit: 1,
			wantOutput: []string{"MiB on node 1, want >= 256", "want 2-3"}},
	})
}

// qnuma run inside a cgroup whose cpuset allows only node 0 (CPUs 0-1)
// places the VM there, although it would pick node 1 (more room) if free
// to choose. Negative control: the same run outside the cgroup.
func TestScenarioCpusetRestricted(t *testing.T) {
	restrict := `
echo +cpuset >/sys/fs/cgroup/cgroup.subtree_control || die "enable the cpuset controller"
mkdir /sys/fs/cgroup/qnuma-test
echo 0-1 >/sys/fs/cgroup/qnuma-test/cpuset.cpus
echo 0 >/sys/fs/cgroup/qnuma-test/cpuset.mems
echo $$ >/sys/fs/cgroup/qnuma-test/cgroup.procs || die "join the cgroup"
echo "in cgroup $(cat /proc/self/cgroup): cpus $(cpus_allowed self), mems $(mems_allowed self)"
`
	check := `
qnuma_start /tmp/qnuma.log run --vcpus 2 --memory 256M --prealloc ` + pausedVM + `
check expect_mem_on $qemu_pid 0 256
check expect_vcpus_on $qemu_pid 0-1 2
qnuma_stop
checks_done
`
	runScenarios(t, []scenario{
		{name: "cpuset of node 0", topo: TwoNodes(), script: restrict + check},
		{name: "negative: no cpuset", topo: TwoNodes(), script: check, wantExit: 1,
			wantOutput: []string{"MiB on node 0, want >= 256", "want 0-1"}},
	})
}

// The nested guest itself: the tiny guest booted by qnuma run inside the
// test host (under KVM, which the test host's -cpu max offers) prints its
// own /sys/devices/system/node, which must show the planned guest nodes:
// with --host-nodes 0-1, two nodes of one vCPU and 256 MiB each. Negative
// control: --host-nodes 1 gives one guest node, and the check fails.
// The guest's distances are the host nodes' (21). Each boot takes about
// 13 s here on two cores (a TCG test host running KVM; TCG inside TCG was
// about 70 s for the bare tiny guest).
func TestScenarioNestedGuestSeesPlannedNodes(t *testing.T) {
	a := Require(t)
	rel := func(p string) string {
		r, err := filepath.Rel(a.Dir, p)
		if err != nil {
			t.Fatal(err)
		}
		return "/opt/qnuma-vm/" + r
	}
	words := TinyGuestArgs(rel(a.Kernel), rel(a.GuestInitrd))
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	script := `
load_kvm
eval "set -- ` + strings.Join(words, " ") + `"
qnuma run --host-nodes $NODES --vcpus 2 --memory 512M --timeout 150s -- \
	qemu-system-x86_64 -accel kvm -cpu host "$@" >/tmp/console 2>&1
status=$?
grep '^qnuma-guest:' /tmp/console
[ $status -eq 0 ] || { tail -20 /tmp/console >&2; die "qnuma run exited with status $status"; }
grep -q '^` + TinyGuestMarker + `' /tmp/console || die "the tiny guest did not finish booting"
guest_node() { # N CPUS DISTANCES: the guest lists node N with CPUS, 128..256 MiB, DISTANCES
	line=$(grep "^qnuma-guest: node $1 " /tmp/console | tr -d '\r') || die "guest has no node $1"
	[ -n "$line" ] || die "guest has no node $1"
	dist=${line#* distance }
	set -- $1 $2 "$3" $(echo "$line" | awk '{print $5, int($7 / 1024)}')
	[ "$4" = "$2" ] || die "guest node $1 has cpus $4, want $2"
	[ "$5" -ge 128 ] && [ "$5" -le 256 ] || die "guest node $1 has $5 MiB, want 128..256"
	[ "$dist" = "$3" ] || die "guest node $1 has distances $dist, want $3"
}
check guest_node 0 0 "10 21"
check guest_node 1 1 "21 10"
checks_done
`
	vmDir := Share{HostPath: a.Dir, GuestPath: "/opt/qnuma-vm"}
	bin := requireQnuma(t)
	for _, row := range []struct {
		name, nodes string
		wantExit    int
		wantOutput  []string
	}{
		{name: "two host nodes, two guest nodes", nodes: "0-1"},
		{name: "negative: one host node", nodes: "1", wantExit: 1,
			wantOutput: []string{"guest node 0 has cpus 0-1, want 0", "guest has no node 1"}},
	} {
		t.Run(row.name, func(t *testing.T) {
			res, err := Run(context.Background(), Options{
				Topology: TwoNodes(),
				Timeout:  4 * time.Minute,
				Shares:   []Share{bin, vmDir},
				Env:      map[string]string{"PATH": "/opt/qnuma:/usr/sbin:/usr/bin:/bb", "NODES": row.nodes},
			}, script)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("exit %d after %s; output:\n%s", res.ExitCode, res.Elapsed.Round(100*time.Millisecond), res.Output)
			if res.ExitCode != row.wantExit {
				t.Fatalf("exit status %d, want %d", res.ExitCode, row.wantExit)
			}
			for _, want := range row.wantOutput {
				if !strings.Contains(res.Output, want) {
					t.Errorf("output lacks %q", want)
				}
			}
		})
	}
}

// On four nodes with asymmetric distances, the guest's distances are the
// host's between the backing nodes, direction kept (2→3 is 16, 3→2 is 17),
// whether the nodes are given or chosen. Negative control: a qemu started
// without qnuma whose matrix is transposed.
func TestScenarioFourNodesAsymmetric(t *testing.T) {
	given := `
qnuma_start /tmp/qnuma.log run --host-nodes 2-3 --vcpus 2 --memory 512M --prealloc ` + pausedVM + `
qemu_args $qemu_pid | grep -E '^dist,'
check expect_mem_on $qemu_pid 2 256
check expect_mem_on $qemu_pid 3 256
check expect_vcpu_count_on $qemu_pid 2 1
check expect_vcpu_count_on $qemu_pid 3 1
check expect_guest_distances_match $qemu_pid
qnuma_stop
checks_done
`
	auto := `
qnuma_start /tmp/qnuma.log run --vcpus 2 --memory 512M ` + pausedVM + `
guest_host_nodes $qemu_pid
qemu_args $qemu_pid | grep -E '^dist,'
check expect_guest_distances_match $qemu_pid
qnuma_stop
checks_done
`
	transposed := `
qemu-system-x86_64 -S -daemonize -pidfile /tmp/q.pid -display none -nodefaults -accel tcg -m 256M -smp 2,sockets=2 \
	-object memory-backend-ram,id=a,size=128M,host-nodes=2,policy=bind \
	-object memory-backend-ram,id=b,size=128M,host-nodes=3,policy=bind \
	-numa node,nodeid=0,memdev=a -numa node,nodeid=1,memdev=b \
	-numa dist,src=0,dst=1,val=17 -numa dist,src=1,dst=0,val=16 || die "hand-made qemu"
check expect_guest_distances_match $(cat /tmp/q.pid)
checks_done
`
	runScenarios(t, []scenario{
		{name: "--host-nodes 2-3", topo: FourNodesAsymmetric(), script: given},
		{name: "auto", topo: FourNodesAsymmetric(), script: auto},
		{name: "negative: transposed distances", topo: FourNodesAsymmetric(), script: transposed, wantExit: 1,
			wantOutput: []string{"guest distance 0→1 is 17, host distance 2→3 is 16"}},
	})
}
