package vm

import (
	"testing"
	"time"
)

// The scenarios of issue 12's qnuma move, inside the multi-node test host:
// a VM moved while it runs, checked from /proc (numa_maps, each thread's
// Cpus_allowed_list) and against qnuma ps and stat, each with a negative
// control whose VMs are not moved.

// moveLib is shell for the move scenarios. $MOVE=no skips every qnuma move
// (the negative control: the same checks must then fail).
const moveLib = `
# move VM ARGS...: qnuma move, or nothing when MOVE=no.
move() {
	vm=$1; shift
	[ "$MOVE" = no ] && { echo "(not moving $vm)"; return 0; }
	qnuma move "$vm" "$@"
}

# threads_within PID CPULIST: every thread of PID may run only on CPULIST.
threads_within() {
	want=$(cpulist_expand $2)
	for s in /proc/$1/task/*/status; do
		l=$(awk '/^Cpus_allowed_list/ {print $2}' $s)
		for c in $(cpulist_expand $l); do
			echo "$want" | grep -qx "$c" || die "thread $(basename $(dirname $s)) of pid $1 may run on $l, not only on $2"
		done
	done
	echo "pid $1: every thread within $2"
}

# memfd_policy PID: the policy numa_maps shows for PID's memfd mappings.
memfd_policy() { awk '/memfd:/ {print $2}' /proc/$1/numa_maps | sort -u | tr '\n' ' '; }

# pages_on PID NODE: pages of PID's memfd mappings on NODE.
memfd_pages_on() {
	awk -v want="N$2" '/memfd:/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == want) n += kv[2] } } END { print n + 0 }' /proc/$1/numa_maps
}

# start_as USER LOG ARGS...: qnuma run as USER (a uid) in the background,
# waiting as qnuma_start does; sets $qnuma_pid and $qemu_pid.
start_as() {
	u=$1 log=$2; shift 2
	: >"$log"; chmod 666 "$log"
	# qnuma's own folder is private to root: the user gets a copy.
	[ -x /tmp/bin/qnuma ] || { mkdir -p /tmp/bin && cp "$(command -v qnuma)" /tmp/bin/ && chmod -R 755 /tmp/bin; }
	/usr/bin/setpriv --reuid=$u --regid=$u --clear-groups /tmp/bin/qnuma run -v "$@" >"$log" 2>&1 &
	qnuma_pid=$!
	i=0
	until grep -q 'step cont' "$log"; do
		kill -0 $qnuma_pid 2>/dev/null || { cat "$log" >&2; die "qnuma as $u exited before the VM was running"; }
		i=$((i + 1)); [ $i -le 1200 ] || { cat "$log" >&2; die "qnuma as $u did not start the VM in 120 s"; }
		sleep 0.1
	done
	qemu_pid=$(sed -n 's/.*started qemu pid=\([0-9]*\).*/\1/p' "$log" | head -1)
}
`

func TestScenarioMove(t *testing.T) {
	script := moveLib + `
n1=$(node_cpulist 1)

# A: 192 MiB preallocated on node 0, moved to node 1.
qnuma_start /tmp/a.log run --name a --host-nodes 0 --vcpus 2 --memory 192M --prealloc ` + pausedVM + `
a=$qemu_pid
move a --to-nodes 1 --json >/tmp/move-a.json || die "qnuma move a failed"
cat /tmp/move-a.json | head -12

# B: 64 MiB not preallocated, paused, its own QMP on a pipe: moved, then let
# run, so that the firmware's pages are faulted after the move.
mkfifo /tmp/qmp.in /tmp/qmp.out
qnuma_start /tmp/b.log run --name b --host-nodes 0 --vcpus 1 --memory 64M -- qemu-system-x86_64 -S -accel tcg -display none -nodefaults \
	-chardev pipe,id=uq,path=/tmp/qmp -mon chardev=uq,mode=control
b=$qemu_pid
move b --to-nodes 1 || die "qnuma move b failed"
(cat /tmp/qmp.out >/tmp/qmp.log &)
printf '{"execute":"qmp_capabilities"}\n{"execute":"cont"}\n' >/tmp/qmp.in
i=0; until grep -q RESUME /tmp/qmp.log; do i=$((i + 1)); [ $i -le 300 ] || die "vm b did not resume"; sleep 0.1; done
sleep 5

# C: the same move as an unprivileged user, in its own ledger.
mkdir -p /tmp/u && chown 65534:65534 /tmp/u && chmod 700 /tmp/u
start_as 65534 /tmp/c.log --state-dir /tmp/u/ledger --name c --host-nodes 0 --vcpus 1 --memory 64M --prealloc ` + pausedVM + `
c=$qemu_pid
if [ "$MOVE" != no ]; then
	/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups /tmp/bin/qnuma move c --state-dir /tmp/u/ledger --to-nodes 1 || die "qnuma move c as nobody failed"
fi

# D: a move that does not fit is refused and changes nothing: node 0 is
# filled, and A (192 MiB) asked back there.
free0=$(awk '/MemFree/ {print int($4 / 1024)}' /sys/devices/system/node/node0/meminfo)
hold_node_memory 0 $((free0 - 60))
before=$(memfd_pages_on $a 1)
qnuma move a --to-nodes 0 >/tmp/refused.log 2>&1; st=$?
echo "move back onto a full node: exit $st: $(cat /tmp/refused.log)"

a_moved() {
	expect_ram_mapping_on $a 192 1
	case "$(memfd_policy $a)" in *bind:1*) ;; *) die "vm a: memfd policy $(memfd_policy $a), want bind:1";; esac
	threads_within $a $n1
}
# As root on cgroup v2 the VM has its own cgroup, whose cpuset.mems now
# keeps qemu's own new allocations on node 1 too.
a_cgroup() {
	grep -q '^0::/qnuma/a-' /proc/$a/cgroup || die "vm a's qemu is in cgroup $(cat /proc/$a/cgroup), not its own under /qnuma"
	[ "$(mems_allowed $a)" = 1 ] || die "vm a's qemu may allocate on nodes $(mems_allowed $a), want 1"
}
ps_stat_agree() {
	qnuma ps --json >/tmp/ps.json || die "qnuma ps"
	qnuma stat --json a >/tmp/stat.json || die "qnuma stat a"
	grep -A8 '"name": "a"' /tmp/ps.json | tr -d ' \n' | grep -q '"host_nodes":\[1\]' || die "qnuma ps: vm a not on host node 1: $(grep -A8 '"name": "a"' /tmp/ps.json | tr -d ' \n')"
	[ "$(stat_home /tmp/stat.json)" = 1 ] || die "qnuma stat: vm a's home $(stat_home /tmp/stat.json), want 1"
	[ "$(stat_field /tmp/stat.json local_percent)" = 100 ] || die "qnuma stat: vm a N%L $(stat_field /tmp/stat.json local_percent), want 100"
	[ "$(stat_field /tmp/stat.json nmig)" = 1 ] || die "qnuma stat: vm a NMIG $(stat_field /tmp/stat.json nmig), want 1"
}
b_faults_follow() {
	on0=$(memfd_pages_on $b 0) on1=$(memfd_pages_on $b 1)
	echo "vm b after it ran: $on1 pages on node 1, $on0 on node 0"
	[ "$on1" -gt 0 ] && [ "$on0" -eq 0 ] || die "vm b: pages faulted after the move: $on1 on node 1, $on0 on node 0; want all on node 1"
}
c_moved() {
	expect_ram_mapping_on $c 64 1
	threads_within $c $n1
}
refused() {
	[ "$st" = 2 ] || die "move onto a full node: exit $st, want 2"
	grep -q "does not fit" /tmp/refused.log || die "move onto a full node: no does-not-fit reason"
	[ "$(memfd_pages_on $a 1)" = "$before" ] || die "the refused move changed vm a's pages"
}
check a_moved
check a_cgroup
check ps_stat_agree
check b_faults_follow
check c_moved
check refused
checks_done
`
	runScenarios(t, []scenario{
		{name: "moved to node 1: root, faults after, unprivileged, refusal", topo: TwoNodes(), script: "MOVE=yes\n" + script, timeout: 4 * time.Minute},
		{name: "negative: not moved", topo: TwoNodes(), script: "MOVE=no\n" + script, wantExit: 1, timeout: 4 * time.Minute,
			wantOutput: []string{"has no mapping of 192 MiB all on node 1", "qnuma ps: vm a not on host node 1", "may allocate on nodes 0, want 1", "want all on node 1", "has no mapping of 64 MiB all on node 1"}},
	})
}

// A two-guest-node VM whose guest node 0 alone moves: guest node 1 stays
// where it was (no positional shuffle), each vCPU follows its guest node.
func TestScenarioMoveOneGuestNode(t *testing.T) {
	script := moveLib + `
qnuma_start /tmp/w.log run --name w --host-nodes 0,1 --guest-nodes 2 --vcpus 2 --memory 128M --prealloc ` + pausedVM + `
w=$qemu_pid
move w --map 0:2 || die "qnuma move w failed"
moved() { expect_ram_mapping_on $w 64 2; }
vcpu_followed() { expect_vcpus_within $w 0 $(node_cpulist 2); }
stayed() {
	expect_ram_mapping_on $w 64 1
	expect_vcpus_within $w 1 $(node_cpulist 1)
}
check moved
check vcpu_followed
check stayed
checks_done
`
	runScenarios(t, []scenario{
		{name: "guest node 0 to host node 2, guest node 1 stays on 1", topo: FourNodesAsymmetric(), script: "MOVE=yes\n" + script, timeout: 3 * time.Minute},
		{name: "negative: not moved", topo: FourNodesAsymmetric(), script: "MOVE=no\n" + script, wantExit: 1, timeout: 3 * time.Minute,
			wantOutput: []string{"has no mapping of 64 MiB all on node 2", "may run on"}},
	})
}
