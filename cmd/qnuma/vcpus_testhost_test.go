package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/test/vm"
)

// growScript runs inside the two-node test host: it boots the grown tiny
// guest (under KVM, which the test host's -cpu max offers) as a VM of two
// guest nodes on host nodes 0 and 1 that starts with one vCPU in each
// (slot 0 in guest node 0, slot 2 in guest node 1, cold-plugged), with room
// for one more vCPU per guest node (slots 1 and 3) and 128 MiB more per
// guest node, grows it by $VCPUS and $MEMORY ($MEMFLAGS), and checks from
// the host's /proc that each vCPU thread runs only on its planned CPU of
// its guest node's host node, that the guest sees one CPU per node at boot
// and two after, and that the pages the guest put in each guest node's new
// memory are on that guest node's host node (numa_maps of qemu's 128 MiB
// virtio-mem backends), then shrinks it back.
const growScript = `
load_kvm
eval "set -- $GUEST"
qnuma run -v --name g --host-nodes 0-1 --cpus-dedicated --vcpus 2 --max-vcpus 4 --memory 512M --max-memory 768M --timeout 300s -- \
	qemu-system-x86_64 -accel kvm -cpu host "$@" >/tmp/console 2>/tmp/qnuma.log &
run_pid=$!
wait_console() {
	i=0
	until grep -q "qnuma-guest: $1" /tmp/console; do
		kill -0 $run_pid 2>/dev/null || { cat /tmp/qnuma.log /tmp/console >&2; die "qnuma run ended before the guest said $1"; }
		i=$((i + 1))
		[ $i -le 1800 ] || { tail -20 /tmp/console >&2; die "the guest did not say $1 in 180 s"; }
		sleep 0.1
	done
}
wait_console ready
qemu_pid=$(sed -n 's/.*started qemu pid=\([0-9]*\).*/\1/p' /tmp/qnuma.log | head -1)
qnuma vcpus g $VCPUS || die "qnuma vcpus g $VCPUS"
qnuma memory g $MEMORY $MEMFLAGS --wait 60s || die "qnuma memory g $MEMORY"
wait_console grown
grep '^qnuma-guest:' /tmp/console

# expect_vcpu N CPUS NODE: vCPU N's thread may run on exactly CPUS, of host node NODE.
expect_vcpu() {
	tid=$(vcpu_tids $qemu_pid | awk -v v=$1 '$1 == v {print $2}')
	[ -n "$tid" ] || die "vCPU $1: no thread"
	got=$(cpus_allowed $tid)
	echo "vCPU $1 (tid $tid) on cpus $got; host node $3 has $(node_cpulist $3)"
	[ "$got" = "$2" ] || die "vCPU $1 on cpus $got, want $2"
}
# expect_guest WHEN NODE CPUS: the guest listed CPUS in its node NODE (WHEN: before, after).
expect_guest() {
	grep -q "^qnuma-guest: $1 node $2 cpus $3 " /tmp/console || die "the guest does not list cpus $3 in its node $2 $1 the growth"
}
# hot_mapping NODE: the numa_maps line of qemu's 128 MiB backend bound to NODE.
hot_mapping() {
	while read -r range rest; do
		s=${range%-*} e=${range#*-}
		[ $((0x$e - 0x$s)) -eq 134217728 ] && grep -E "^$s bind:$1( |$)" /proc/$qemu_pid/numa_maps # untouched: nothing after the policy
	done </proc/$qemu_pid/maps
}
# mib_of LINE NODE: MiB of a numa_maps line's pages on NODE.
mib_of() { echo "$1" | awk -v want="N$2" '{ kb = 4; n = 0; for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "kernelpagesize_kB") kb = kv[2]; if (kv[1] == want) n = kv[2] } print int(n * kb / 1024) }'; }
# expect_hot NODE OTHER MIB: the new memory of guest node NODE has at least MIB MiB on host node NODE, none on OTHER.
expect_hot() {
	line=$(hot_mapping $1)
	[ -n "$line" ] || die "no 128 MiB backend bound to node $1"
	on=$(mib_of "$line" $1) off=$(mib_of "$line" $2)
	echo "hot memory of guest node $1: $on MiB on host node $1, $off MiB on host node $2"
	[ "$on" -ge "$3" ] && [ "$off" -eq 0 ] || die "hot memory of guest node $1: $on MiB on node $1 (want >= $3), $off on node $2 (want 0)"
}
check expect_vcpu 0 0 0
check expect_vcpu 2 2 1
check expect_vcpu 1 1 0
check expect_vcpu 3 3 1
check expect_hot 0 1 32
check expect_hot 1 0 32
# The guest's own cpu numbers: the boot vCPUs first (slots 0 and 2), the
# ones plugged later after them (slot 1, then slot 3).
check expect_guest before 0 0
check expect_guest before 1 1
check expect_guest after 0 0,2
check expect_guest after 1 1,3

qnuma vcpus g 2 --timeout 60s || die "qnuma vcpus g 2"
qnuma memory g 512M --wait 60s || die "qnuma memory g 512M"
wait $run_pid
grep '^qnuma-guest: shrunk' /tmp/console
checks_done
`

// Issue 15's multi-node proof, in the two-node test host; the negative
// control grows only one vCPU (guest node 0's) and puts all the memory on
// guest node 0, and the same checks fail.
func TestVCPUsAndMemoryInTestHost(t *testing.T) {
	a := vm.Require(t)
	kernel, tiny, err := vm.TinyGuest(context.Background())
	if err != nil {
		t.Skip("tiny guest unavailable: ", err)
	}
	growDir, err := os.MkdirTemp("", "qnuma-grow-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(growDir) })
	os.Chmod(growDir, 0o755)
	initrd := growInitrd(t, a, tiny)
	b, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(growDir, "grow.cpio"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(a.Dir, kernel)
	if err != nil {
		t.Fatal(err)
	}
	// The guest's wait for each change: the host's steps allow 60 s; the
	// negative row, whose changes partly never come, keeps 30 s.
	guest := func(wait int) string {
		args := []string{"-kernel", "/opt/qnuma-vm/" + rel, "-initrd", "/opt/grow/grow.cpio",
			"-append", growAppend(fmt.Sprintf("qnuma.cpus=2,3 qnuma.grow=0:122880,1:122880 qnuma.fill=0,1 qnuma.shrink=1 qnuma.wait=%d", wait)),
			"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio"}
		for i, w := range args {
			args[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		return strings.Join(args, " ")
	}
	bin := filepath.Dir(buildQnuma(t))
	for _, row := range []struct {
		name, vcpus, memory, memflags string
		wait                          int
		wantExit                      int
		wantOutput                    []string
	}{
		{name: "one vCPU and 128 MiB more per guest node", vcpus: "4", memory: "768M", wait: 60,
			wantOutput: []string{"vCPU 1 (tid", "vCPU 2 (tid", "vCPU 3 (tid", "all checks passed"}},
		{name: "negative: one vCPU, the memory on guest node 0 only", vcpus: "3", memory: "640M", memflags: "--node 0", wait: 30, wantExit: 1,
			wantOutput: []string{"vCPU 1 (tid", "vCPU 3: no thread", "hot memory of guest node 1: 0 MiB on node 1", "cpus 1,3 in its node 1 after"}},
	} {
		t.Run(row.name, func(t *testing.T) {
			res, err := vm.Run(context.Background(), vm.Options{
				Topology: vm.TwoNodes(),
				Timeout:  6 * time.Minute,
				Shares: []vm.Share{{HostPath: bin, GuestPath: "/opt/qnuma"}, {HostPath: a.Dir, GuestPath: "/opt/qnuma-vm"},
					{HostPath: growDir, GuestPath: "/opt/grow"}},
				Env: map[string]string{"PATH": "/opt/qnuma:/usr/sbin:/usr/bin:/bb", "GUEST": guest(row.wait),
					"VCPUS": row.vcpus, "MEMORY": row.memory, "MEMFLAGS": row.memflags},
			}, growScript)
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
