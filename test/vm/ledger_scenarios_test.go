package vm

import (
	"testing"
	"time"
)

// The scenarios of issue 6: many qnuma run at once sharing one ledger, and
// qnuma stat against /proc/PID/numa_maps, inside the multi-node test host.

// manyRuns starts 20 `qnuma run --cpus-dedicated` released at the same
// moment (each blocks reading a FIFO until the script closes it), waits
// until each has either started its VM or exited, and sets $qemus (the
// running VMs' qemu pids), $running and $cores. $LEDGER=own gives each run
// its own --state-dir. Twenty qemu starting at once under TCG on a shared
// host can take longer than the default 10 s to answer on QMP.
const manyRuns = `
VM="` + pausedVM + `"
cores=$(cat /sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list | sort -u | wc -l)
echo "host: $(nproc) CPUs in $cores cores"
mkfifo /tmp/go || die "mkfifo"
for i in $(seq 1 20); do
	sd=
	[ "$LEDGER" = own ] && sd="--state-dir /tmp/ledger$i"
	(
		touch /tmp/ready.$i
		read -r x </tmp/go
		qnuma run -v $sd --cpus-dedicated --vcpus 1 --memory 32M --qmp-timeout 90s $VM >/tmp/run$i.log 2>&1
		echo $? >/tmp/exit$i
	) &
done
t=0
until [ "$(ls /tmp/ready.* | wc -l)" -eq 20 ]; do
	t=$((t + 1)); [ $t -le 600 ] || die "the 20 runs were not ready in 60 s"; sleep 0.1
done
# Opening the FIFO for writing lets every reader's open finish; closing it,
# once all 20 hold it open, gives them all end-of-file at once.
exec 3>/tmp/go
t=0
until [ "$(ls -l /proc/[0-9]*/fd/0 2>/dev/null | grep -c ' /tmp/go$')" -eq 20 ]; do
	t=$((t + 1)); [ $t -le 600 ] || die "the 20 runs did not open the FIFO in 60 s"; sleep 0.1
done
exec 3>&-
t=0
while :; do
	pending=0
	for i in $(seq 1 20); do
		[ -e /tmp/exit$i ] || grep -q 'step cont' /tmp/run$i.log || pending=$((pending + 1))
	done
	[ $pending -eq 0 ] && break
	t=$((t + 1)); [ $t -le 1800 ] || die "$pending runs neither started their VM nor exited in 180 s"
	sleep 0.1
done
running=0 qemus=
for i in $(seq 1 20); do
	if [ -e /tmp/exit$i ]; then
		st=$(cat /tmp/exit$i)
		echo "run $i: exit $st: $(grep -m1 'does not fit' /tmp/run$i.log)"
		[ "$st" = 2 ] && grep -q 'does not fit' /tmp/run$i.log || { cat /tmp/run$i.log >&2; die "run $i exited $st, want 2 with a does-not-fit message"; }
	else
		p=$(sed -n 's/.*started qemu pid=\([0-9]*\).*/\1/p' /tmp/run$i.log | head -1)
		[ -n "$p" ] || { cat /tmp/run$i.log >&2; die "run $i: no qemu pid in its log"; }
		running=$((running + 1)) qemus="$qemus $p"
	fi
done
echo "$running VMs running:$qemus"
ledgers() {
	if [ "$LEDGER" = own ]; then
		for d in /tmp/ledger*; do qnuma ps --json --state-dir $d; done
	else
		qnuma ps --json
	fi
}
`

// The ledger under 20 runs at once: as many VMs run as the host has cores
// (dedicated CPUs are whole cores), the others exit 2; no two share a CPU;
// no node is promised more memory than it has. Then one qnuma is killed
// with SIGKILL: its qemu dies with it, and the next run reclaims the entry
// and gets its CPU (which a run just before the kill could not). Negative
// control: each run with its own ledger, so all 20 run on shared CPUs.
func TestScenarioLedgerManyRunsAtOnce(t *testing.T) {
	check := manyRuns + `
one_per_core() { [ $running -eq $cores ] || die "$running VMs running, want $cores (one per core)"; }
ledgers_within_nodes() { ledgers | expect_promised_within_nodes; }
check one_per_core
check expect_no_shared_cpus $qemus
check ledgers_within_nodes
checks_done
`
	reclaim := `
qnuma ps --json | ps_vms >/tmp/vms
cat /tmp/vms
victim=${qemus# }
victim=${victim%% *}
set -- $(awk -v p=$victim '$2 == p' /tmp/vms)
[ $# -eq 4 ] || die "qemu pid $victim is not in qnuma ps"
vname=$1 vowner=$3 vcpus=$4
qnuma run --cpus-dedicated --vcpus 1 --memory 32M --qmp-timeout 90s $VM >/tmp/extra.log 2>&1
st=$?
[ $st -eq 2 ] || { cat /tmp/extra.log >&2; die "a run with every core taken exited $st, want 2"; }
echo "a run with every core taken: exit 2"
kill -KILL $vowner
t=0
until proc_gone $victim; do
	t=$((t + 1)); [ $t -le 300 ] || die "qemu $victim outlived its qnuma $vowner by 30 s"; sleep 0.1
done
echo "qnuma $vowner killed: its qemu $victim is gone"
grep -q "\"pid\": $vowner," /run/qnuma/$vname.json || die "no entry of the killed qnuma $vowner left in /run/qnuma/$vname.json"
qnuma_start /tmp/next.log run --cpus-dedicated --vcpus 1 --memory 32M --qmp-timeout 90s $VM
qnuma ps --json | ps_vms >/tmp/vms
cat /tmp/vms
awk -v o=$vowner '$3 == o { exit 1 }' /tmp/vms || die "the killed qnuma's entry is still listed"
check expect_vcpus_on $qemu_pid $vcpus 1
others=$(for p in $qemus; do [ $p = $victim ] || echo $p; done)
check expect_no_shared_cpus $others $qemu_pid
checks_done
`
	runScenarios(t, []scenario{
		{name: "one ledger: one VM per core, reclaimed after SIGKILL", topo: TwoNodes(), timeout: 4 * time.Minute,
			script: "LEDGER=shared\n" + check + reclaim},
		{name: "negative: a ledger per run", topo: TwoNodes(), timeout: 4 * time.Minute,
			script: "LEDGER=own\n" + check, wantExit: 1,
			wantOutput: []string{"20 VMs running, want 4", "is allowed to pid"}},
	})
}

// qnuma stat for a VM placed on node 1 reports home node 1 from the ledger
// and 100% local; for a qemu started without qnuma under numactl
// --interleave=0,1 it reports the kernel's spread (half on each node, so a
// low local percentage). Both are checked against numa_maps read here.
// Negative control: the VM placed on node 0, and the plain qemu's stat
// checked against the placed VM's numa_maps.
func TestScenarioStatReportsPlacement(t *testing.T) {
	script := `
qnuma_start /tmp/placed.log run --host-nodes $PLACE --vcpus 1 --memory 256M --prealloc ` + pausedVM + `
placed=$qemu_pid
numactl --interleave=0,1 qemu-system-x86_64 -S -daemonize -pidfile /tmp/plain.pid -display none -nodefaults \
	-accel tcg -m 256M -mem-prealloc || die "plain qemu failed to start"
plain=$(cat /tmp/plain.pid)
qnuma stat --json $placed >/tmp/placed.json || die "qnuma stat $placed"
qnuma stat --json $plain >/tmp/plain.json || die "qnuma stat $plain"
echo "placed: home $(stat_home /tmp/placed.json) (ledger: $(stat_field /tmp/placed.json home_from_ledger)), N%L $(stat_field /tmp/placed.json local_percent)"
echo "plain: home $(stat_home /tmp/plain.json) (ledger: $(stat_field /tmp/plain.json home_from_ledger)), N%L $(stat_field /tmp/plain.json local_percent), low $(stat_field /tmp/plain.json low_local)"
placed_home() {
	[ "$(stat_home /tmp/placed.json)" = 1 ] && [ "$(stat_field /tmp/placed.json home_from_ledger)" = true ] ||
		die "placed vm: home node(s) $(stat_home /tmp/placed.json), want 1 from the ledger"
}
placed_local() {
	[ "$(stat_field /tmp/placed.json local_percent)" = 100 ] || die "placed vm: N%L $(stat_field /tmp/placed.json local_percent), want 100"
}
plain_spread() {
	# Interleaved over two nodes: each holds about half, so N%L is near 50
	# and flagged; the home node is the one with more, not the ledger's.
	stat_ram_mib /tmp/plain.json | awk '$2 >= 120 { n++ } END { exit n != 2 }' || die "plain qemu: guest RAM $(stat_ram_mib /tmp/plain.json | tr '\n' ' '), want >= 120 MiB on each node"
	[ "$(stat_field /tmp/plain.json low_local)" = true ] && [ "$(stat_field /tmp/plain.json home_from_ledger)" = false ] ||
		die "plain qemu: low_local $(stat_field /tmp/plain.json low_local), home from ledger $(stat_field /tmp/plain.json home_from_ledger)"
}
check placed_home
check placed_local
check expect_stat_matches_maps /tmp/placed.json $placed
check expect_mem_on $placed 1 256
check plain_spread
eval "maps_pid=\$$MAPS_OF"
check expect_stat_matches_maps /tmp/plain.json $maps_pid
checks_done
`
	runScenarios(t, []scenario{
		{name: "placed on node 1; plain qemu interleaved", topo: TwoNodes(),
			script: "PLACE=1 MAPS_OF=plain\n" + script},
		{name: "negative: placed on node 0; numa_maps of another qemu", topo: TwoNodes(),
			script: "PLACE=0 MAPS_OF=placed\n" + script, wantExit: 1,
			wantOutput: []string{"home node(s) 0, want 1", "MiB on node 1, want >= 256", "/tmp/plain.json against pid"}},
	})
}
