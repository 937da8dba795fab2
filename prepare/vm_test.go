package prepare

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/topology"
)

// twoNodes is a host of two nodes with two CPUs and 8 GiB free each.
func twoNodes() *topology.Host {
	h := &topology.Host{OnlineCPUs: cpuset.New(0, 1, 2, 3)}
	for n := 0; n < 2; n++ {
		h.Nodes = append(h.Nodes, topology.Node{ID: n, CPUs: cpuset.New(2*n, 2*n+1), MemTotal: 16 << 30, MemFree: 8 << 30, Distances: map[int]int{n: 10, 1 - n: 21}})
		for c := 2 * n; c < 2*n+2; c++ {
			h.CPUs = append(h.CPUs, topology.CPU{ID: c, Node: n, Package: n, Core: c, Siblings: cpuset.New(c)})
		}
	}
	h.Allowed = topology.Allowed{CPUs: h.OnlineCPUs, Mems: cpuset.New(0, 1), Source: "online"}
	return h
}

func TestPlanFor(t *testing.T) {
	v72 := qemuversion.Version{Major: 7, Minor: 2}
	for _, tc := range []struct {
		backend, want, notMovable string
	}{
		{"", "memory-backend-memfd,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind", ""},
		{"ram", "memory-backend-ram,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind", "memory-backend-ram"},
	} {
		vm := &VM{Host: twoNodes(), Spec: plan.Spec{VCPUs: 2, MemoryBytes: 1 << 30}, QEMU: v72, Backend: tc.backend, Note: "A note."}
		if err := vm.PlanFor(nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(vm.Argv, " "); !strings.Contains(got, tc.want) {
			t.Errorf("--memory-backend %q: argv %s lacks %s", tc.backend, got, tc.want)
		}
		if (tc.notMovable == "") != (vm.NotMovable == "") || !strings.Contains(vm.NotMovable, tc.notMovable) {
			t.Errorf("--memory-backend %q: NotMovable %q, want %q", tc.backend, vm.NotMovable, tc.notMovable)
		}
		if r := vm.Plan.Reasons; r[len(r)-1] != "A note." {
			t.Errorf("the note is not the plan's last reason: %q", r)
		}
	}
	// Hotplug room: not movable live, with the reason.
	hp := &VM{Host: twoNodes(), Spec: plan.Spec{VCPUs: 2, MaxVCPUs: 4, MemoryBytes: 1 << 30}, QEMU: v72}
	if err := hp.PlanFor(nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hp.NotMovable, "hotplug room") {
		t.Errorf("a VM with --max-vcpus: NotMovable %q, want the hotplug room named", hp.NotMovable)
	}
	// A VM that does not fit is the planner's error, bad input for qnuma.
	vm := &VM{Host: twoNodes(), Spec: plan.Spec{VCPUs: 2, MemoryBytes: 64 << 30}, QEMU: v72}
	if err := vm.PlanFor(nil); !errors.Is(err, plan.ErrDoesNotFit) {
		t.Errorf("64 GiB on 16 GiB free: %v, want ErrDoesNotFit", err)
	}
}

func TestReadDomainBadInput(t *testing.T) {
	_, _, err := ReadDomain(filepath.Join(t.TempDir(), "none.xml"), plan.Spec{}, nil)
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "none.xml") {
		t.Errorf("a missing domain xml: %v, want ErrBadInput naming the file", err)
	}
	if err := Bad("x %d", 1); !errors.Is(err, ErrBadInput) || err.Error() != "x 1" {
		t.Errorf("Bad = %q, want %q wrapping ErrBadInput", err, "x 1")
	}
}
