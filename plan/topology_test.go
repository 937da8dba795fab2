package plan

import (
	"slices"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/topology"
)

// planUser merges the user's line (after the binary) into spec and plans it
// on h, returning the plan and the argv qnuma would exec.
func planUser(t *testing.T, h *topology.Host, spec Spec, line string) (*Plan, []string, error) {
	t.Helper()
	q, err := ParseQEMUArgv(append([]string{"qemu-system-x86_64"}, strings.Fields(line)...))
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	spec, err = MergeSpec(spec, MergeFlags{}, q)
	if err != nil {
		return nil, nil, err
	}
	p, err := Make(h, spec, nil)
	if err != nil {
		return nil, nil, err
	}
	args, err := p.Args(RenderOptions{QEMU: qemu72})
	if err != nil {
		t.Fatalf("Args: %v", err)
	}
	return p, q.Final(args), nil
}

// The user's -smp topology is kept as written, and qnuma's guest nodes are
// whole sockets of it: -smp 2,sockets=2 stays, 8 vCPUs in 2 sockets of 4
// over two nodes split 4+4 by socket, 4 sockets of 3 over two 8-core nodes
// split 6+6; a socket too big for any node is refused, naming the conflict.
func TestUserTopologyKept(t *testing.T) {
	tests := []struct {
		name, line string
		spec       Spec
		smp        string // the -smp in the final argv
		split      []int  // vCPUs per guest node
		err        string
	}{
		{name: "sockets=2 stays as written", line: "-smp 2,sockets=2 -m 1G", smp: "2,sockets=2", split: []int{2}},
		{name: "sockets over two nodes", line: "-smp 8,sockets=2,cores=4 -m 2G", spec: Spec{HostNodes: []int{0, 1}}, smp: "8,sockets=2,cores=4", split: []int{4, 4}},
		{name: "whole sockets of 3", line: "-smp 12,sockets=4,cores=3 -m 2G", smp: "12,sockets=4,cores=3", split: []int{6, 6}},
		{name: "a socket bigger than a node", line: "-smp 12,sockets=1 -m 2G", spec: Spec{HostNodes: []int{0, 1}},
			err: "-smp gives 1 sockets × 12 cores × 1 threads: a guest socket (12 vCPUs) stays on one node, and they have room for 0 whole sockets"},
		{name: "a socket bigger than any node, auto", line: "-smp 12,sockets=1 -m 2G",
			err: "no set of usable nodes holds both 12 vCPUs and 2 GiB in whole guest sockets (-smp gives 1 sockets × 12 cores × 1 threads, kept as written: a socket of 12 vCPUs stays on one node)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, argv, err := planUser(t, intel2p(), tc.spec, tc.line)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v; want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var smps []string
			for i, a := range argv {
				if a == "-smp" {
					smps = append(smps, argv[i+1])
				}
			}
			if !slices.Equal(smps, []string{tc.smp}) {
				t.Errorf("argv %q has -smp %q, want the user's %q only", argv, smps, tc.smp)
			}
			var split []int
			for _, g := range p.GuestNodes {
				split = append(split, len(g.VCPUs))
			}
			if !slices.Equal(split, tc.split) {
				t.Errorf("vCPUs per guest node %v, want %v", split, tc.split)
			}
		})
	}
}

// The real QEMU takes the user's -smp with qnuma's -numa and puts each vCPU
// in the socket, core and thread the plan says, on the planned guest node.
// The plan is made for a two-node host; the backends are moved to this
// host's node 0 to start.
func TestUserTopologyInQEMU(t *testing.T) {
	qemutest.Require(t)
	for _, smp := range []string{"8,sockets=4,cores=1,threads=2", "8,sockets=2,dies=2,cores=2"} {
		t.Run(smp, func(t *testing.T) {
			p, _, err := planUser(t, intel2p(), Spec{HostNodes: []int{0, 1}}, "-smp "+smp+" -m 256M")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.GuestNodes) != 2 {
				t.Fatalf("%d guest nodes, want 2", len(p.GuestNodes))
			}
			for i := range p.GuestNodes {
				p.GuestNodes[i].HostNodes = []int{0}
			}
			args, err := p.Args(RenderOptions{QEMU: qemu72})
			if err != nil {
				t.Fatal(err)
			}
			q, err := ParseQEMUArgv([]string{"qemu-system-x86_64", "-smp", smp, "-m", "256M"})
			if err != nil {
				t.Fatal(err)
			}
			checkVCPUsInQEMU(t, p, q.Final(args)[1:])
		})
	}
}
