package plan

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
	"github.com/qnuma/qnuma/topology"
)

// bindOnlyPlan parses line (after the binary), merges it with --bind-only
// and plans it on h.
func bindOnlyPlan(t *testing.T, h *topology.Host, line string) (*Plan, error) {
	t.Helper()
	return bindOnlyPlanSpec(t, h, Spec{BindOnly: true}, line)
}

func bindOnlyPlanSpec(t *testing.T, h *topology.Host, base Spec, line string) (*Plan, error) {
	t.Helper()
	q, err := ParseQEMUArgv(append([]string{"qemu-system-x86_64"}, strings.Fields(line)...))
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	spec, err := MergeSpec(base, MergeFlags{}, q)
	if err != nil {
		return nil, err
	}
	return Make(h, spec, nil)
}

const twoCells = "-smp 16 -m 2G " +
	"-object memory-backend-ram,id=m0,size=1G,host-nodes=0,policy=bind " +
	"-object memory-backend-ram,id=m1,size=1G,host-nodes=1,policy=bind " +
	"-numa node,nodeid=0,cpus=0-3,cpus=8-11,memdev=m0 " +
	"-numa node,nodeid=1,cpus=4-7,cpus=12-15,memdev=m1"

// --bind-only pins by the user's own cells: vCPUs 8-11 are in the cell
// bound to host node 0 and run on node 0's CPUs, not where an even split
// would put them.
func TestBindOnlyPinsByUserCells(t *testing.T) {
	hosts := map[string]func(t *testing.T) *topology.Host{
		"intel2p": func(*testing.T) *topology.Host { return intel2p() },
		"snapshot 32intel64-2p8co2t+8ve": func(t *testing.T) *topology.Host {
			return readSnapshot(t, "32intel64-2p8co2t+8ve")
		},
	}
	for name, host := range hosts {
		t.Run(name, func(t *testing.T) {
			h := host(t)
			p, err := bindOnlyPlan(t, h, twoCells)
			if err != nil {
				t.Fatal(err)
			}
			n0, _ := h.Node(0)
			n1, _ := h.Node(1)
			for _, v := range p.VCPUs {
				want, g := n1.CPUs.Intersection(h.Allowed.CPUs), 1
				if v.ID < 4 || (v.ID >= 8 && v.ID < 12) {
					want, g = n0.CPUs.Intersection(h.Allowed.CPUs), 0
				}
				if !v.HostCPUs.Equals(want) || v.GuestNode != g {
					t.Errorf("vcpu %d: guest node %d on CPUs %s; want guest node %d on %s", v.ID, v.GuestNode, v.HostCPUs, g, want)
				}
			}
			if !p.BindOnly || len(p.GuestNodes) != 2 || p.GuestNodes[0].MemoryBytes != gib {
				t.Errorf("plan %+v", p.GuestNodes)
			}
			if !hasReason(p, "host-nodes=0 policy=bind was given on its backend m0") {
				t.Errorf("reasons %q: want the given binding said", p.Reasons)
			}
		})
	}
}

// A cell whose backend is unbound gets a host node from the planner (with
// room for its vCPUs and memory) and its vCPUs pinned there; the plan says
// which was given and which chosen.
func TestBindOnlyUnboundCellsGetANode(t *testing.T) {
	h := intel2p() // 8 cores a node
	p, err := bindOnlyPlan(t, h, "-smp 16 -m 2G "+
		"-object memory-backend-ram,id=m0,size=1G,host-nodes=0,policy=bind "+
		"-object memory-backend-ram,id=m1,size=1G "+
		"-numa node,nodeid=0,cpus=0-7,memdev=m0 -numa node,nodeid=1,cpus=8-15,memdev=m1")
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := h.Node(1)
	if got := p.GuestNodes[1].HostNodes; len(got) != 1 || got[0] != 1 {
		t.Fatalf("unbound cell on host nodes %v; node 0's cores are the bound cell's, want node 1", got)
	}
	for _, v := range p.VCPUs[8:] {
		if !v.HostCPUs.Equals(n1.CPUs) {
			t.Errorf("vcpu %d on %s, want node 1's CPUs %s", v.ID, v.HostCPUs, n1.CPUs)
		}
	}
	if !hasReason(p, "backend m1 has no host-nodes, so qnuma chose host node 1") || !hasReason(p, "was given on its backend m0") {
		t.Errorf("reasons %q: want given and chosen said", p.Reasons)
	}
	if !p.Mempolicy.Nodes.Equals(cpuset.New(0, 1)) {
		t.Errorf("process policy on %s, want 0-1", p.Mempolicy.Nodes)
	}
	if len(p.Fill) != 1 || p.Fill[0].ID != "m1" || !p.Fill[0].HostNodes.Equals(cpuset.New(1)) || p.Fill[0].Policy != "bind" {
		t.Errorf("fill %+v, want m1 bound to node 1", p.Fill)
	}
	var out strings.Builder
	if err := p.Describe(&out); err != nil || !strings.Contains(out.String(), "qnuma chose host node 1") {
		t.Errorf("Describe: %v\n%s", err, out.String())
	}

	// --policy interleave: the unbound backend interleaves over every node
	// of the VM.
	p, err = bindOnlyPlanSpec(t, h, Spec{BindOnly: true, Policy: "interleave"}, "-smp 16 -m 2G "+
		"-object memory-backend-ram,id=m0,size=1G,host-nodes=0,policy=bind "+
		"-object memory-backend-ram,id=m1,size=1G "+
		"-numa node,nodeid=0,cpus=0-7,memdev=m0 -numa node,nodeid=1,cpus=8-15,memdev=m1")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Fill) != 1 || !p.Fill[0].HostNodes.Equals(cpuset.New(0, 1)) || p.Fill[0].Policy != "interleave" {
		t.Errorf("interleave fill %+v, want m1 interleaved over 0-1", p.Fill)
	}

	// Two small unbound cells stay together on the roomiest node.
	p, err = bindOnlyPlan(t, h, "-smp 4 -m 2G -object memory-backend-ram,id=a,size=1G -object memory-backend-ram,id=b,size=1G "+
		"-numa node,nodeid=0,cpus=0-1,memdev=a -numa node,nodeid=1,cpus=2-3,memdev=b")
	if err != nil {
		t.Fatal(err)
	}
	if p.GuestNodes[0].HostNodes[0] != 0 || p.GuestNodes[1].HostNodes[0] != 0 {
		t.Errorf("small unbound cells on %v and %v, want both on node 0 (most room, then nearest)", p.GuestNodes[0].HostNodes, p.GuestNodes[1].HostNodes)
	}
}

// Cells that contradict themselves or the host are refused before
// anything starts, naming the conflict.
func TestBindOnlyCellConflicts(t *testing.T) {
	back := "-object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G "
	tests := []struct {
		name, line, want string
		err              error
	}{
		{"vcpu in two cells", "-smp 4 -m 2G " + back + "-numa node,nodeid=0,cpus=0-2,memdev=m0 -numa node,nodeid=1,cpus=2-3,memdev=m1",
			"vCPU 2 is in guest node 0 and in guest node 1", ErrBadSpec},
		{"vcpus in no cell", "-smp 6 -m 2G " + back + "-numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,cpus=2-3,memdev=m1",
			"vCPUs 4-5 are in no guest node", ErrBadSpec},
		{"sizes not -m", "-smp 4 -m 3G " + back + "-numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,cpus=2-3,memdev=m1",
			"adds up to 2G, not -m 3G", ErrBadSpec},
		{"vcpu beyond -smp", "-smp 4 -m 2G " + back + "-numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,cpus=2-4,memdev=m1",
			"guest node 1 lists vCPU 4 (cpus=), beyond the 4 vCPUs", ErrBadSpec},
		{"memdev not a backend", "-smp 2 -m 1G -object memory-backend-ram,id=m0,size=1G -numa node,nodeid=0,cpus=0-1,memdev=m9",
			"memdev=m9, which is not a memory backend", ErrBadSpec},
		{"host node missing", "-smp 2 -m 1G -object memory-backend-ram,id=m0,size=1G,host-nodes=5,policy=bind -numa node,nodeid=0,cpus=0-1,memdev=m0",
			"host node 5 does not exist", ErrBadSpec},
		{"unbound cell too big", "-smp 2 -m 40G -object memory-backend-ram,id=m0,size=40G -numa node,nodeid=0,cpus=0-1,memdev=m0",
			"guest node 0 (vCPUs 0-1, 40 GiB) has an unbound backend, and no usable host node has room", ErrDoesNotFit},
		{"topology qemu refuses", "-smp 2,sockets=1,cores=1,threads=1 -m 1G -object memory-backend-ram,id=m0,size=1G -numa node,nodeid=0,cpus=0-1,memdev=m0",
			"product of the hierarchy must match maxcpus", ErrBadSpec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bindOnlyPlan(t, intel2p(), tc.line)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want %v with %q", err, tc.err, tc.want)
			}
		})
	}
}

// -numa cpu,node-id=,socket-id= places whole sockets: their vCPUs follow
// the user's -smp topology.
func TestBindOnlyNumaCPUBySocket(t *testing.T) {
	p, err := bindOnlyPlan(t, intel2p(), "-smp 8,sockets=2,cores=2,threads=2 -m 2G "+
		"-object memory-backend-ram,id=m0,size=1G,host-nodes=1,policy=bind -object memory-backend-ram,id=m1,size=1G,host-nodes=0,policy=bind "+
		"-numa node,nodeid=0,memdev=m0 -numa node,nodeid=1,memdev=m1 -numa cpu,node-id=0,socket-id=1 -numa cpu,node-id=1,socket-id=0")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range p.VCPUs {
		wantNode := 0
		if v.ID < 4 {
			wantNode = 1
		}
		if v.GuestNode != wantNode || v.Socket != v.ID/4 || v.Core != v.ID/2%2 || v.Thread != v.ID%2 {
			t.Errorf("vcpu %d: guest node %d socket/core/thread %d/%d/%d", v.ID, v.GuestNode, v.Socket, v.Core, v.Thread)
		}
	}
	if p.Sockets != 2 || p.Cores != 2 || p.Threads != 2 {
		t.Errorf("topology %d/%d/%d, want the user's 2/2/2", p.Sockets, p.Cores, p.Threads)
	}
}

// The real QEMU places each vCPU on the guest node the plan pins it for:
// the user's command line started paused, query-cpus-fast's node-id per
// vCPU against the plan.
func TestBindOnlyCellsInQEMU(t *testing.T) {
	qemutest.Require(t)
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"-smp 8 -m 256M " +
			"-object memory-backend-ram,id=m0,size=128M,host-nodes=0,policy=bind " +
			"-object memory-backend-ram,id=m1,size=128M " +
			"-numa node,nodeid=0,cpus=0-1,cpus=4-5,memdev=m0 " +
			"-numa node,nodeid=1,cpus=2-3,cpus=6-7,memdev=m1",
		// No cell lists vCPUs: QEMU's own mapping, socket s on node s mod 2.
		"-smp 8,sockets=4,cores=2 -m 256M " +
			"-object memory-backend-ram,id=m0,size=128M -object memory-backend-ram,id=m1,size=128M " +
			"-numa node,nodeid=0,memdev=m0 -numa node,nodeid=1,memdev=m1",
		// -numa cpu by socket, under the user's own topology.
		"-smp 4,sockets=2,cores=1,threads=2 -m 256M " +
			"-object memory-backend-ram,id=m0,size=128M -object memory-backend-ram,id=m1,size=128M " +
			"-numa node,nodeid=0,memdev=m0 -numa node,nodeid=1,memdev=m1 -numa cpu,node-id=0,socket-id=1 -numa cpu,node-id=1,socket-id=0",
	}
	for _, line := range lines {
		t.Run(line, func(t *testing.T) { checkCellsInQEMU(t, host, line) })
	}
}

// An unbound backend of the user's is bound where its cell was placed: the
// final argv has it in its place with host-nodes and policy filled in (its
// own properties, share=on in the JSON form, kept), and the real QEMU
// reports the binding in query-memdev.
func TestBindOnlyFillsUnboundBackendsInQEMU(t *testing.T) {
	qemutest.Require(t)
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{"qemu-system-x86_64", "-smp", "2", "-m", "256M",
		"-object", "memory-backend-ram,id=m0,size=128M,host-nodes=0,policy=preferred",
		"-object", `{"qom-type":"memory-backend-memfd","id":"m1","size":134217728,"share":true}`,
		"-numa", "node,nodeid=0,cpus=0,memdev=m0", "-numa", "node,nodeid=1,cpus=1,memdev=m1"}
	q, err := ParseQEMUArgv(argv)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := MergeSpec(Spec{BindOnly: true, Overcommit: true}, MergeFlags{}, q)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Make(host, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	args, err := p.Args(RenderOptions{QEMU: qemu72})
	if err != nil {
		t.Fatal(err)
	}
	final := q.Final(args)
	want := slices.Clone(argv)
	want[8] = `{"qom-type":"memory-backend-memfd","id":"m1","size":134217728,"share":true,"host-nodes":[0],"policy":"bind"}`
	if !slices.Equal(final, want) {
		t.Fatalf("final argv\n got %q\nwant %q", final, want)
	}
	if !hasReason(p, "qnuma fills in host-nodes=0,policy=bind on backend m1") {
		t.Errorf("reasons %q: want the fill-in said", p.Reasons)
	}
	vm, err := qemutest.Start(t, final[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := vm.Memdevs()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range devs {
		got[d.ID] = fmt.Sprintf("%v %s share=%v %d", d.HostNodes, d.Policy, d.Share, d.Size)
	}
	wantDevs := map[string]string{"m0": "[0] preferred share=false 134217728", "m1": "[0] bind share=true 134217728"}
	if !maps.Equal(got, wantDevs) {
		t.Errorf("query-memdev %v, want %v", got, wantDevs)
	}
}

func checkCellsInQEMU(t *testing.T, host *topology.Host, line string) {
	// This machine may have 2 CPUs: let the 8 vCPUs share them.
	p, err := bindOnlyPlanSpec(t, host, Spec{BindOnly: true, Overcommit: true}, line)
	if err != nil {
		t.Fatal(err)
	}
	checkVCPUsInQEMU(t, p, strings.Fields(line))
}

// checkVCPUsInQEMU starts args paused and checks query-cpus-fast puts every
// vCPU on its planned guest node, socket, core and thread.
func checkVCPUsInQEMU(t *testing.T, p *Plan, args []string) {
	t.Helper()
	vm, err := qemutest.Start(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var cpus []qmp.CPU
	err = vm.Execute("query-cpus-fast", nil, &cpus)
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) != len(p.VCPUs) {
		t.Fatalf("qemu has %d vcpus, the plan %d", len(cpus), len(p.VCPUs))
	}
	for _, c := range cpus {
		v := p.VCPUs[c.CPUIndex]
		want := p.GuestNodes[v.GuestNode].ID
		if c.Props.NodeID == nil || *c.Props.NodeID != want {
			t.Errorf("vcpu %d: qemu puts it on guest node %v, the plan pins it for guest node %d", c.CPUIndex, c.Props.NodeID, want)
		}
		if c.Props.SocketID == nil || *c.Props.SocketID != v.Socket || *c.Props.CoreID != v.Core || *c.Props.ThreadID != v.Thread {
			t.Errorf("vcpu %d: qemu socket/core/thread %v/%v/%v, plan %d/%d/%d", c.CPUIndex, *c.Props.SocketID, *c.Props.CoreID, *c.Props.ThreadID, v.Socket, v.Core, v.Thread)
		}
	}
}

// --guest-nodes that disagrees with the user's cells, and a bound cell
// whose host node has no usable CPU for its vCPUs, are refused.
func TestBindOnlyCellsRefusedAgainstFlagsAndHost(t *testing.T) {
	line := "-smp 2 -m 2G -object memory-backend-ram,id=m0,size=1G,host-nodes=1,policy=bind -object memory-backend-ram,id=m1,size=1G " +
		"-numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1"
	_, err := bindOnlyPlanSpec(t, intel2p(), Spec{BindOnly: true, GuestNodes: 3}, line)
	if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), "--guest-nodes 3 conflicts with the 2 -numa node cells") {
		t.Errorf("guest nodes 3: err = %v", err)
	}
	h := intel2p()
	n1, _ := h.Node(1)
	h.Allowed.CPUs = h.Allowed.CPUs.Difference(n1.CPUs) // node 1's CPUs not allowed
	_, err = bindOnlyPlan(t, h, line)
	if !errors.Is(err, ErrDoesNotFit) || !strings.Contains(err.Error(), "guest node 0's vCPUs would run on host nodes 1, which have no usable CPU") {
		t.Errorf("node 1 without CPUs: err = %v", err)
	}
}
