package plan

import (
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

// Bindings says per guest node what the user gave and what qnuma chose;
// HotplugVCPUs places the vCPUs maxcpus leaves room for by their cells.
// The cells come in the order nodeid=1, nodeid=0, so that a guest node's
// index and id differ.
func TestBindingsAndHotplugVCPUs(t *testing.T) {
	h := intel2p()
	p, err := bindOnlyPlan(t, h, "-smp 4,sockets=2,cores=2,maxcpus=8 -m 2G "+
		"-object memory-backend-ram,id=given,size=1G,host-nodes=1,policy=bind "+
		"-object memory-backend-ram,id=open,size=1G "+
		"-numa node,nodeid=1,memdev=given,cpus=0-1,cpus=4-5 "+
		"-numa node,nodeid=0,memdev=open,cpus=2-3,cpus=6-7")
	if err != nil {
		t.Fatal(err)
	}
	b := p.Bindings()
	if len(b) != 2 || p.GuestNodes[0].ID != 1 || p.GuestNodes[1].ID != 0 {
		t.Fatalf("guest nodes %+v, bindings %+v", p.GuestNodes, b)
	}
	if !b[0].Given || b[0].Backend != "given" || b[0].Policy != "bind" || !strings.HasPrefix(b[0].Reason, "given: backend given host-nodes=1 policy=bind") {
		t.Errorf("guest node 1 binding %+v, want given: backend given on host node 1", b[0])
	}
	chosen := cpuset.New(p.GuestNodes[1].HostNodes...)
	if b[1].Given || b[1].Backend != "open" || b[1].Policy != "bind" || chosen.Size() != 1 ||
		!strings.Contains(b[1].Reason, "filled in host-nodes="+chosen.String()+" policy=bind") {
		t.Errorf("guest node 0 binding %+v (host nodes %s), want chosen with the filled host-nodes", b[1], chosen)
	}
	cpusOf := func(gi int) cpuset.CPUSet {
		for _, v := range p.VCPUs {
			if v.GuestNode == gi {
				return v.HostCPUs
			}
		}
		t.Fatalf("no present vcpu on guest node index %d", gi)
		return cpuset.New()
	}
	hp := p.HotplugVCPUs
	want := map[int]int{4: 1, 5: 1, 6: 0, 7: 0} // vCPU -> guest node id
	if len(hp) != len(want) {
		t.Fatalf("hotplug vcpus %+v, want 4-7", hp)
	}
	for _, v := range hp {
		id := p.GuestNodeID(v)
		if want[v.ID] != id || !v.HostCPUs.Equals(cpusOf(v.GuestNode)) || v.Socket != 1 {
			t.Errorf("hotplug vcpu %d: guest node %d on %s socket %d; want guest node %d on its cell's CPUs %s, socket 1",
				v.ID, id, v.HostCPUs, v.Socket, want[v.ID], cpusOf(v.GuestNode))
		}
	}
	for _, v := range p.VCPUs {
		if v.ID < 2 && p.GuestNodeID(v) != 1 {
			t.Errorf("vcpu %d on guest node id %d, want 1", v.ID, p.GuestNodeID(v))
		}
	}

	// qnuma's own layout: chosen, its own backends, no hotplug room.
	own, err := Make(h, Spec{VCPUs: 4, MemoryBytes: 2 * gib}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range own.Bindings() {
		if b.Given || b.Backend != "qnuma-ram0" || b.Policy != "bind" {
			t.Errorf("own layout binding %+v, want chosen qnuma-ram0 bind", b)
		}
	}
	if hp := own.HotplugVCPUs; hp != nil {
		t.Errorf("own layout hotplug vcpus %+v", hp)
	}
}
