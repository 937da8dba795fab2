package vm

import (
	"testing"
	"time"
)

// Issue 13's third rule: moving a VM frees room that a waiting plan
// needs. On two nodes of 1.5 GiB, A (256 MiB) on node 0 and B (256 MiB,
// placed by hand, so left alone) on node 1, each node then filled (a
// tmpfs bound to it, written) until about 400 MiB is free on each: waiting C
// (576 MiB on one guest node, qnuma run --wait) fits no node. qnuma
// balance --once moves A to node 1, which leaves node 0 room for C: C
// starts there (its RAM on node 0 in numa_maps). The margins (C over a
// node's room by 176 MiB, A under node 1's by 144) outlast the few tens
// of MiB the processes of the test itself take meanwhile. The negative
// control runs no balance round: C still waits. (Sizes kept small: every
// MiB here is touched under TCG, twice over with the control.)
func TestScenarioBalanceWaiting(t *testing.T) {
	script := moveLib + `
free_mib() { awk '/MemFree|Inactive\(file\)/ {s += $4} END {print int(s / 1024)}' /sys/devices/system/node/node$1/meminfo; }
# hold NODE MIB TAG: MIB MiB of a tmpfs bound to NODE, written: shmem pages
# on that node and nothing else (a holding process would put its own
# memory there too, by a varying amount: a CI run was left 60 MiB short).
hold() {
	mkdir -p /tmp/hold-$3 &&
		mount -t tmpfs -o size=${2}m,mpol=bind:$1 tmpfs /tmp/hold-$3 &&
		dd if=/dev/zero of=/tmp/hold-$3/f bs=1M count=$2 2>/dev/null || die "hold $2 MiB on node $1"
}
qnuma_start /tmp/a.log run --name a --host-nodes 0 --vcpus 1 --memory 256M --prealloc ` + pausedVM + `
a=$qemu_pid
qnuma pin a --unlock >/dev/null || die "qnuma pin a --unlock"
qnuma_start /tmp/b.log run --name b --host-nodes 1 --vcpus 1 --memory 256M --prealloc ` + pausedVM + `
b=$qemu_pid
# About 400 MiB free on each node (a second round for what moved meanwhile).
for i in 1 2; do
	for n in 0 1; do
		f=$(free_mib $n)
		[ "$f" -gt 410 ] && hold $n $((f - 400)) $n-$i
	done
done
echo "free: node 0 $(free_mib 0) MiB, node 1 $(free_mib 1) MiB (planner's count)"

: >/tmp/c.log
qnuma run -v --wait 3m --name c --vcpus 1 --memory 576M --guest-nodes 1 --prealloc ` + pausedVM + ` >/tmp/c.log 2>&1 &
c_qnuma=$!
i=0
until grep -q 'does not fit now' /tmp/c.log; do
	kill -0 $c_qnuma 2>/dev/null || { cat /tmp/c.log; die "vm c did not wait: qnuma exited"; }
	i=$((i + 1)); [ $i -le 600 ] || { cat /tmp/c.log; die "vm c did not say it waits in 60 s"; }
	sleep 0.1
done
grep 'does not fit now' /tmp/c.log
qnuma ps >/tmp/ps.log; cat /tmp/ps.log

if [ "${BALANCE:-yes}" != no ]; then
	qnuma balance --once --interval 1s >/tmp/once.log 2>&1 || { cat /tmp/once.log; die "balance --once failed"; }
	echo "once:"; cat /tmp/once.log
else
	echo "(no balance round)"; : >/tmp/once.log
fi
# c has 30 s to start and preallocate 576M once a is moved; without a
# balance round nothing frees room, and 15 s show that it still waits.
limit=300
[ "${BALANCE:-yes}" != no ] || limit=150
i=0
until grep -q 'step cont' /tmp/c.log; do
	kill -0 $c_qnuma 2>/dev/null || break
	i=$((i + 1)); [ $i -le $limit ] || break
	sleep 0.1
done
echo "c:"; cat /tmp/c.log
echo "free now: node 0 $(free_mib 0) MiB, node 1 $(free_mib 1) MiB"
c=$(sed -n 's/.*started qemu pid=\([0-9]*\).*/\1/p' /tmp/c.log | head -1)

c_waited() { grep -q '^c  *waiting (qnuma' /tmp/ps.log || die "qnuma ps did not show c waiting"; }
a_moved_for_c() {
	grep -q "^moved a: guest nodes 0:0 -> 0:1.*frees room for waiting VM c" /tmp/once.log || die "balance did not move a to node 1 for waiting vm c"
	[ "$(mib_on_node $a 1)" -ge 250 ] || die "vm a has $(mib_on_node $a 1) MiB on node 1, want its 256"
}
c_started_on_0() {
	[ -n "$c" ] || die "vm c did not start"
	grep -q 'got room after waiting' /tmp/c.log || die "vm c did not say it got room"
	expect_ram_mapping_on $c 576 0
}
b_stays() { [ "$(mib_on_node $b 1)" -ge 250 ] || die "vm b left node 1"; }
check c_waited
check a_moved_for_c
check c_started_on_0
check b_stays
kill $c_qnuma 2>/dev/null
checks_done
`
	// Two nodes of 1.5 GiB: room for VMs big enough that the test's own
	// processes do not decide what fits.
	topo := Topology{Nodes: []Node{{CPUs: 2, MemoryMiB: 1536}, {CPUs: 2, MemoryMiB: 1536}}, Distances: [][]int{{10, 21}, {21, 10}}}
	runScenarios(t, []scenario{
		{name: "a moved to node 1 for waiting c, c starts on node 0", topo: topo, script: script, timeout: 4 * time.Minute},
		{name: "negative: no balance round, c still waits", topo: topo, script: "BALANCE=no\n" + script, wantExit: 1, timeout: 4 * time.Minute,
			wantOutput: []string{"balance did not move a to node 1 for waiting vm c", "vm c did not start"}},
	})
}
