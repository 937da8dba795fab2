package vm

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Issue 10's scenarios: the guest layout given by the user (their own
// -numa cells, or a libvirt domain XML) placed by qnuma inside the test
// host, asserted from numa_maps and the vCPU threads' affinity, each with a
// negative control that checks the swapped cell-to-node mapping.

// cellsChecks checks that guest cell 0 (vCPUs 0-1, 256 MiB) is on host
// node $N0 and cell 1 (vCPUs 2-3, 384 MiB) on host node $N1: a mapping of
// the cell's size all on its node, and each of its vCPU threads allowed
// only on that node's CPUs. With SWAP=1 it checks the swapped mapping,
// which must fail.
const cellsChecks = `
[ "$N0" != "$N1" ] || die "cells 0 and 1 are both on host node $N0"
if [ "${SWAP:-0}" = 1 ]; then t=$N0; N0=$N1; N1=$t; echo "negative control: checking the swapped mapping"; fi
echo "checking cell 0 on host node $N0 (CPUs $(node_cpulist $N0)), cell 1 on host node $N1 (CPUs $(node_cpulist $N1))"
check expect_ram_mapping_on $qemu_pid 256 $N0
check expect_ram_mapping_on $qemu_pid 384 $N1
check expect_vcpus_within $qemu_pid 0-1 $(node_cpulist $N0)
check expect_vcpus_within $qemu_pid 2-3 $(node_cpulist $N1)
qnuma_stop
checks_done
`

// userCellsQEMU is a command line with its own two -numa cells whose
// backends leave their binding open (no host-nodes, no policy). Two vCPUs
// per cell on nodes of two CPUs: without --overcommit qnuma must put the
// cells on different host nodes.
const userCellsQEMU = `qemu-system-x86_64 -S -accel tcg -display none -nodefaults \
	-smp 4,sockets=2,cores=2 -m 640M \
	-object memory-backend-ram,id=m0,size=256M,prealloc=on \
	-object memory-backend-ram,id=m1,size=384M,prealloc=on \
	-numa node,nodeid=0,memdev=m0,cpus=0-1 -numa node,nodeid=1,memdev=m1,cpus=2-3`

// TestScenarioCellsUserNumaBindOnly: `qnuma run --bind-only` with the
// user's own unbound cells binds each cell's backend to a host node (read
// back from qemu's command line) and pins the cell's vCPUs there.
func TestScenarioCellsUserNumaBindOnly(t *testing.T) {
	script := `
qnuma_start /tmp/qnuma.log run --bind-only -- ` + userCellsQEMU + `
qemu_args $qemu_pid | grep -E 'memory-backend|^node,'
N0=$(backend_host_nodes $qemu_pid m0)
N1=$(backend_host_nodes $qemu_pid m1)
echo "qnuma bound m0 to host-nodes=$N0, m1 to host-nodes=$N1"
echo "$N0" | grep -qx '[0-9]' || die "qnuma left backend m0 bound to '$N0', want one host node"
echo "$N1" | grep -qx '[0-9]' || die "qnuma left backend m1 bound to '$N1', want one host node"
` + cellsChecks
	runScenarios(t, []scenario{
		{name: "each unbound cell bound to a node, its vCPUs pinned there", topo: TwoNodes(), script: script, timeout: 3 * time.Minute},
		{name: "negative: the swapped mapping", topo: TwoNodes(), script: "SWAP=1\n" + script, wantExit: 1, timeout: 3 * time.Minute,
			wantOutput: []string{"MiB all on node", "not only on"}},
	})
}

// TestScenarioCellsUserNumaGiven: the user's own cells bound as the domain
// XML of TestScenarioCellsDomainXML binds them (cell 0 policy=bind on host
// node 1, cell 1 policy=preferred on host node 0), under --bind-only:
// qnuma keeps the bindings and pins each cell's vCPUs to its node. The
// same checks as the domain XML's, on the command line libvirt would write.
func TestScenarioCellsUserNumaGiven(t *testing.T) {
	script := `
qnuma_start /tmp/qnuma.log run --bind-only -- qemu-system-x86_64 -S -accel tcg -display none -nodefaults \
	-smp 4,sockets=2,cores=2 -m 640M \
	-object memory-backend-ram,id=m0,size=256M,host-nodes=1,policy=bind,prealloc=on \
	-object '{"qom-type":"memory-backend-ram","id":"m1","size":402653184,"host-nodes":[0],"policy":"preferred","prealloc":true}' \
	-numa node,nodeid=0,memdev=m0,cpus=0-1 -numa node,nodeid=1,memdev=m1,cpus=2-3
qemu_args $qemu_pid | grep -E 'memory-backend|^node,'
N0=1
N1=0
` + cellsChecks
	runScenarios(t, []scenario{
		{name: "cell 0 bound to node 1, cell 1 preferring node 0", topo: TwoNodes(), script: script, timeout: 3 * time.Minute},
		{name: "negative: the swapped mapping", topo: TwoNodes(), script: "SWAP=1\n" + script, wantExit: 1, timeout: 3 * time.Minute,
			wantOutput: []string{"MiB all on node", "not only on"}},
	})
}

// TestScenarioCellsDomainXML: a two-cell libvirt domain XML, cell 0 strict
// on host node 1 and cell 1 preferred on host node 0, under `qnuma run
// --domain-xml`: each cell's RAM on its node and its vCPU threads allowed
// only there.
func TestScenarioCellsDomainXML(t *testing.T) {
	Require(t)
	requireQnuma(t)
	xml, err := os.ReadFile(filepath.Join("testdata", "two-cells-strict-preferred.xml"))
	if err != nil {
		t.Fatal(err)
	}
	script := `
cat >/tmp/dom.xml <<'QNUMA_DOMAIN_XML'
` + string(xml) + `QNUMA_DOMAIN_XML
qnuma_start /tmp/qnuma.log run --domain-xml /tmp/dom.xml -- qemu-system-x86_64 -S -accel tcg -display none -nodefaults
qemu_args $qemu_pid | grep -E 'memory-backend|^node,'
N0=1
N1=0
` + cellsChecks
	runScenarios(t, []scenario{
		{name: "cell 0 strict on node 1, cell 1 preferred on node 0", topo: TwoNodes(), script: script, timeout: 3 * time.Minute},
		{name: "negative: the swapped mapping", topo: TwoNodes(), script: "SWAP=1\n" + script, wantExit: 1, timeout: 3 * time.Minute,
			wantOutput: []string{"MiB all on node", "not only on"}},
	})
}
