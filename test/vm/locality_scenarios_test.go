package vm

import (
	"testing"
	"time"
)

// Issue 13's locality rule, per guest node: a VM of two guest nodes, one
// on each host node, whose guest node 0's pages are moved to host node 1
// behind qnuma's back (migratepages). As a whole it is still 100% local
// (host node 1 is one of its nodes), but guest node 0 is not: qnuma
// balance --once moves it in place, and guest node 0's pages are back on
// host node 0. The negative control leaves the pages where qnuma put
// them: nothing moves.
func TestScenarioBalanceGuestNodeLocality(t *testing.T) {
	script := moveLib + `
# bound_pages PID BIND NODE: pages on NODE of PID's memfd mappings bound to BIND.
bound_pages() {
	awk -v bind="bind:$2" -v want="N$3" '/memfd:/ && $2 == bind { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == want) n += kv[2] } } END { print n + 0 }' /proc/$1/numa_maps
}
qnuma_start /tmp/a.log run --name a --host-nodes 0,1 --guest-nodes 2 --vcpus 2 --memory 256M --prealloc ` + pausedVM + `
a=$qemu_pid
qnuma pin a --unlock >/dev/null || die "qnuma pin a --unlock"
if [ "$STRAY" = yes ]; then
	migratepages $a 0 1 || die "migratepages"
fi
echo "guest node 0 (bound to node 0): $(bound_pages $a 0 0) pages on node 0, $(bound_pages $a 0 1) on node 1"
qnuma balance --once --json --interval 1s >/tmp/once.json 2>/tmp/once.err || { cat /tmp/once.err; die "balance --once failed"; }
tr -d ' \n' </tmp/once.json | head -c 3000; echo
echo "after: guest node 0 $(bound_pages $a 0 0) pages on node 0, $(bound_pages $a 0 1) on node 1; guest node 1 $(bound_pages $a 1 1) on node 1"

whole_local_guest_node_not() {
	grep -q '"local_percent":100,"guest_node_locality":\[{"guest_node":0,"home_nodes":\[0\],"ram_bytes":{[^}]*},"local_percent":[0-9.]*}' /tmp/once.json || die "the round did not see vm a 100% local as a whole"
	grep -q '"guest_node":0,"home_nodes":\[0\],"ram_bytes":{[^}]*},"local_percent":\([0-9]\|[1-8][0-9]\)\(\.[0-9]\)\?}' /tmp/once.json || die "the round did not see guest node 0 under 90% local"
}
moved_in_place() {
	grep -q '"move":{"vm":"a".*"to":{"0":\[0\],"1":\[1\]},"kind":"locality","why":"guest node 0 has' /tmp/once.json || die "balance did not move vm a in place for guest node 0"
	[ "$(bound_pages $a 0 0)" -ge 32000 ] || die "guest node 0 has $(bound_pages $a 0 0) pages on host node 0, want its 32768"
	[ "$(bound_pages $a 1 1)" -ge 32000 ] || die "guest node 1 left host node 1"
}
check whole_local_guest_node_not
check moved_in_place
checks_done
`
	runScenarios(t, []scenario{
		{name: "guest node 0's pages on host node 1: moved in place", topo: TwoNodes(), script: "STRAY=yes\n" + script, timeout: 4 * time.Minute},
		{name: "negative: pages where qnuma put them, nothing moves", topo: TwoNodes(), script: "STRAY=no\n" + script, wantExit: 1, timeout: 4 * time.Minute,
			wantOutput: []string{"the round did not see guest node 0 under 90% local", "balance did not move vm a in place for guest node 0"}},
	})
}
