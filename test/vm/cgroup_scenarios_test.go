package vm

import (
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Package vmcgroup on cgroup v2 in the test host (hostinit mounts cgroup2
// at /sys/fs/cgroup; no systemd runs there, so the group is a plain
// directory and the process is born inside it with CLONE_INTO_CGROUP), and
// on a v1 cpuset hierarchy mounted there (the process moved in by pid).
// vmcgroup/internal/cgtool runs each step of vmcgroup from the script, so
// that the script checks /proc in between.

var (
	cgtoolOnce sync.Once
	cgtoolErr  error
)

// requireCgtool builds cgtool next to the qnuma the scenarios share, so it
// is on the test host's PATH too.
func requireCgtool(t *testing.T) {
	t.Helper()
	Require(t)
	bin := requireQnuma(t)
	cgtoolOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			cgtoolErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin.HostPath, "cgtool"), "./vmcgroup/internal/cgtool")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cgtoolErr = &buildError{err: err, out: string(out)}
		}
	})
	if cgtoolErr != nil {
		t.Fatalf("build cgtool for the test host: %v", cgtoolErr)
	}
}

// A process that allocated 64 MiB on node 0 inside its group: SetMems({1})
// moves its pages to node 1, and the 32 MiB it allocates after the move
// land there too. Remove is refused while it runs; a user (uid 65534) is
// refused with the reason, nothing made. Negative controls:
// without SetMems the pages stay on node 0 (3 checks fail); migratepages
// alone, in a group allowed both nodes, moves the pages that exist but not
// the later allocation (2 checks fail: the 90 MiB and the allowed nodes).
func TestScenarioCgroupSetMemsMovesPages(t *testing.T) {
	requireCgtool(t)
	script := `
expect_mems_allowed() {
	got=$(mems_allowed $1)
	[ "$got" = "$2" ] || die "pid $1 may use nodes $got, want $2"
	echo "pid $1 may use nodes $2"
}
expect_remove_refused() {
	cgtool remove vm1 2>/tmp/rm.err && die "removed vm1 while pid $pid is in it"
	grep -q 'cgroup in use' /tmp/rm.err || die "remove: $(cat /tmp/rm.err)"
	echo "remove refused while pid $pid is in vm1"
}
expect_user_refused() {
	cp "$(command -v cgtool)" /tmp/cgtool-user && chmod 755 /tmp/cgtool-user || die "copy cgtool"
	/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups /tmp/cgtool-user create vm2 0 0 2>/tmp/user.err &&
		die "uid 65534 made a cgroup"
	grep -q 'not root (uid 65534)' /tmp/user.err || die "as uid 65534: $(cat /tmp/user.err)"
	[ ! -e $CG/qnuma/vm2 ] || die "uid 65534 left $CG/qnuma/vm2"
	echo "uid 65534 refused: $(cat /tmp/user.err)"
}
check expect_user_refused
cgtool create vm1 0-1 $MEMS || die "create"
pid=$(cgtool run vm1 64) || die "run"
echo "pid $pid in $(cat /proc/$pid/cgroup), nodes $(mems_allowed $pid)"
grep -q ":/qnuma/vm1\$" /proc/$pid/cgroup || die "pid $pid is not in /qnuma/vm1"
check expect_mem_on $pid 0 60
case $MOVE in
cgroup) cgtool setmems vm1 1 || die "setmems" ;;
migratepages) migratepages $pid 0 1 || die "migratepages" ;;
esac
check expect_mem_on $pid 1 60
kill -USR1 $pid
i=0
until [ -e /tmp/more.$pid ]; do
	i=$((i + 1))
	[ $i -le 300 ] || die "pid $pid did not allocate more in 30 s"
	sleep 0.1
done
echo "after 32 MiB more: node 0 $(mib_on_node $pid 0) MiB, node 1 $(mib_on_node $pid 1) MiB"
check expect_mem_on $pid 1 90
check expect_mems_allowed $pid 1
cgtool of $pid || die "of"
check expect_remove_refused
kill $pid
i=0
until proc_gone $pid; do
	i=$((i + 1))
	[ $i -le 300 ] || die "pid $pid did not exit in 30 s"
	sleep 0.1
done
cgtool remove vm1 || die "remove"
[ ! -e $CG/qnuma/vm1 ] || die "$CG/qnuma/vm1 is still there"
checks_done
`
	// The cpuset controller, not yet used on cgroup v2, can be bound to a
	// v1 hierarchy instead: v2 then lists it no more, as on a v1 hybrid host.
	v1 := `CG=/tmp/cpuset
mkdir -p $CG && mount -t cgroup -o cpuset cpuset $CG || die "mount a v1 cpuset hierarchy"
grep -qw cpuset /sys/fs/cgroup/cgroup.controllers && die "cgroup v2 still has cpuset"
`
	v2 := "CG=/sys/fs/cgroup\n"
	runScenarios(t, []scenario{
		{name: "SetMems moves pages and later allocations to node 1", topo: TwoNodes(),
			script:     v2 + "MEMS=0 MOVE=cgroup\n" + script,
			wantOutput: []string{"0::/qnuma/vm1, nodes 0", "vm1: moved to nodes 1 in", "may use nodes 1", "remove refused", "uid 65534 refused: ", "all checks passed"}},
		{name: "negative: without SetMems the pages stay on node 0", topo: TwoNodes(),
			script: v2 + "MEMS=0 MOVE=none\n" + script, wantExit: 1,
			wantOutput: []string{"MiB on node 1, want >= 60", "MiB on node 1, want >= 90", "may use nodes 0, want 1", "3 check(s) failed"}},
		{name: "negative: migratepages moves the pages, not later allocations", topo: TwoNodes(),
			script: v2 + "MEMS=0-1 MOVE=migratepages\n" + script, wantExit: 1,
			wantOutput: []string{"MiB on node 1, want >= 90", "may use nodes 0-1, want 1", "2 check(s) failed"}},
		{name: "v1 cpuset hierarchy: SetMems moves pages (memory_migrate)", topo: TwoNodes(),
			script:     v1 + "MEMS=0 MOVE=cgroup\n" + script,
			wantOutput: []string{":cpuset:/qnuma/vm1", "cgroup v1 cpuset at /tmp/cpuset", "vm1: moved to nodes 1 in", "may use nodes 1", "all checks passed"}},
		{name: "negative: v1 without SetMems", topo: TwoNodes(),
			script: v1 + "MEMS=0 MOVE=none\n" + script, wantExit: 1,
			wantOutput: []string{":cpuset:/qnuma/vm1", "MiB on node 1, want >= 60", "3 check(s) failed"}},
	})
}

// What the kernel does to bound memory when cpuset.mems changes, for
// `qnuma move` to design around (three regions, as a VM's guest nodes:
// 48 MiB mbind'd to node 0, 24 MiB to node 1, 16 MiB to node 1 with
// MPOL_F_STATIC_NODES). To disjoint nodes {2,3} each region goes to the
// node in the same position (0 to 2, 1 to 3). To overlapping nodes {1,2}
// the layout is lost: every page ends on node 2, while the policies say
// 1, 2 and static 1 (the kernel rebinds the policies by position, then
// migrates node by node, so pages moved 0 to 1 move on 1 to 2; the static
// flag keeps the policy, not the pages). Negative control: after the
// disjoint move no region is where it was.
func TestScenarioCgroupRebindIsPositional(t *testing.T) {
	requireCgtool(t)
	script := `
cgtool create vm1 0-3 0-1 || die "create"
pid=$(cgtool run vm1 48@0 24@1 16@1/static) || die "run"
check expect_ram_mapping_on $pid 48 0
check expect_ram_mapping_on $pid 24 1
check expect_ram_mapping_on $pid 16 1
cgtool setmems vm1 $TO || die "setmems"
grep bind /proc/$pid/numa_maps
check expect_ram_mapping_on $pid 48 $WANT48
check expect_ram_mapping_on $pid 24 $WANT24
check expect_ram_mapping_on $pid 16 $WANT16
kill $pid
i=0
until proc_gone $pid; do
	i=$((i + 1))
	[ $i -le 300 ] || die "pid $pid did not exit in 30 s"
	sleep 0.1
done
cgtool remove vm1 || die "remove"
checks_done
`
	runScenarios(t, []scenario{
		{name: "to disjoint nodes each region keeps its position", topo: FourNodesAsymmetric(),
			script:     "TO=2-3 WANT48=2 WANT24=3 WANT16=3\n" + script,
			wantOutput: []string{"bind:2 anon=12288", "bind:3 anon=6144", "all checks passed"}},
		{name: "to overlapping nodes every page ends on node 2", topo: FourNodesAsymmetric(),
			script:     "TO=1-2 WANT48=2 WANT24=2 WANT16=2\n" + script,
			wantOutput: []string{"bind:1 anon=12288", "bind:2 anon=6144", "bind=static:1 anon=4096", "all checks passed"}},
		{name: "negative: after the disjoint move no region is where it was", topo: FourNodesAsymmetric(),
			script: "TO=2-3 WANT48=0 WANT24=1 WANT16=1\n" + script, wantExit: 1,
			wantOutput: []string{"no mapping of 48 MiB all on node 0", "no mapping of 24 MiB all on node 1", "no mapping of 16 MiB all on node 1", "3 check(s) failed"}},
	})
}
