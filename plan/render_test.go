package plan

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/topology"
)

const mib = 1 << 20

var (
	qemu72 = qemuversion.Version{Major: 7, Minor: 2, Micro: 19}
	qemu62 = qemuversion.Version{Major: 6, Minor: 2}
	qemu42 = qemuversion.Version{Major: 4, Minor: 2, Micro: 1}
)

// gn describes one guest node for mkPlan.
type gn struct {
	host  []int
	vcpus int
	mem   uint64
	cpus  cpuset.CPUSet // host CPUs of its vCPUs
}

// mkPlan builds a plan the way QEMU numbers vCPUs: vCPU i is socket
// i/(cores*threads), core (i/threads)%cores, thread i%threads, guest nodes
// taking vCPUs in order. Spec.VCPUs and Spec.MemoryBytes are filled in
// when zero.
func mkPlan(spec Spec, sockets, cores, threads int, nodes ...gn) *Plan {
	p := &Plan{Spec: spec, Sockets: sockets, Cores: cores, Threads: threads, EmulatorCPUs: cpuset.New(0, 1)}
	var sum uint64
	for g, n := range nodes {
		node := GuestNode{ID: g, HostNodes: n.host, MemoryBytes: n.mem}
		for range n.vcpus {
			i := len(p.VCPUs)
			p.VCPUs = append(p.VCPUs, VCPU{ID: i, GuestNode: g, Socket: i / (cores * threads), Core: (i / threads) % cores, Thread: i % threads, HostCPUs: n.cpus})
			node.VCPUs = append(node.VCPUs, i)
		}
		p.GuestNodes = append(p.GuestNodes, node)
		p.HostNodes = append(p.HostNodes, n.host...)
		sum += n.mem
	}
	if p.Spec.VCPUs == 0 {
		p.Spec.VCPUs = len(p.VCPUs)
	}
	if p.Spec.MemoryBytes == 0 {
		p.Spec.MemoryBytes = sum
	}
	return p
}

func TestArgs(t *testing.T) {
	c4 := cpuset.New(0, 1, 2, 3)
	c8 := cpuset.New(8, 9, 10, 11)
	twoNodes := func(spec Spec) *Plan {
		p := mkPlan(spec, 2, 2, 1, gn{host: []int{0}, vcpus: 2, mem: 2 * gib, cpus: c4}, gn{host: []int{1}, vcpus: 2, mem: 2 * gib, cpus: c8})
		p.Distances = [][]int{{10, 21}, {31, 10}}
		return p
	}
	tests := []struct {
		name    string
		plan    *Plan
		opts    RenderOptions
		want    []string
		wantErr string
	}{
		{
			name: "one node on one host node",
			plan: mkPlan(Spec{}, 1, 4, 1, gn{host: []int{0}, vcpus: 4, mem: 4 * gib, cpus: c4}),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "4,sockets=1,cores=4,threads=1",
				"-m", "4G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=4G,host-nodes=0,policy=bind",
				"-machine", "memory-backend=qnuma-ram0",
			},
		},
		{
			name: "one node before machine memory-backend",
			plan: mkPlan(Spec{}, 1, 2, 1, gn{host: []int{1}, vcpus: 2, mem: 1536 * mib, cpus: c8}),
			opts: RenderOptions{QEMU: qemu42},
			want: []string{
				"-smp", "2,sockets=1,cores=2,threads=1",
				"-m", "1536M",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=1536M,host-nodes=1,policy=bind",
				"-numa", "node,nodeid=0,memdev=qnuma-ram0",
			},
		},
		{
			name: "one guest node interleaved over two host nodes",
			plan: mkPlan(Spec{Policy: memobj.PolicyInterleave}, 1, 2, 2, gn{host: []int{0, 1}, vcpus: 4, mem: 8 * gib, cpus: c4.Union(c8)}),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "4,sockets=1,cores=2,threads=2",
				"-m", "8G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=8G,host-nodes=0-1,policy=interleave",
				"-machine", "memory-backend=qnuma-ram0",
			},
		},
		{
			name: "two nodes with asymmetric distances",
			plan: twoNodes(Spec{Policy: memobj.PolicyPreferred}),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "4,sockets=2,cores=2,threads=1",
				"-m", "4G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=2G,host-nodes=0,policy=preferred",
				"-object", "memory-backend-memfd,id=qnuma-ram1,size=2G,host-nodes=1,policy=preferred",
				"-numa", "node,nodeid=0,memdev=qnuma-ram0",
				"-numa", "node,nodeid=1,memdev=qnuma-ram1",
				"-numa", "cpu,node-id=0,socket-id=0",
				"-numa", "cpu,node-id=1,socket-id=1",
				"-numa", "dist,src=0,dst=1,val=21",
				"-numa", "dist,src=1,dst=0,val=31",
			},
		},
		{
			name: "two nodes without host distances",
			plan: func() *Plan { p := twoNodes(Spec{}); p.Distances = nil; return p }(),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "4,sockets=2,cores=2,threads=1",
				"-m", "4G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=2G,host-nodes=0,policy=bind",
				"-object", "memory-backend-memfd,id=qnuma-ram1,size=2G,host-nodes=1,policy=bind",
				"-numa", "node,nodeid=0,memdev=qnuma-ram0",
				"-numa", "node,nodeid=1,memdev=qnuma-ram1",
				"-numa", "cpu,node-id=0,socket-id=0",
				"-numa", "cpu,node-id=1,socket-id=1",
			},
		},
		{
			name: "prealloc in thread contexts on 7.2",
			plan: twoNodes(Spec{Prealloc: true}),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "4,sockets=2,cores=2,threads=1",
				"-m", "4G",
				"-object", "thread-context,id=qnuma-tc0,node-affinity=0",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=2G,host-nodes=0,policy=bind,prealloc=on,prealloc-threads=4,prealloc-context=qnuma-tc0",
				"-object", "thread-context,id=qnuma-tc1,node-affinity=1",
				"-object", "memory-backend-memfd,id=qnuma-ram1,size=2G,host-nodes=1,policy=bind,prealloc=on,prealloc-threads=4,prealloc-context=qnuma-tc1",
				"-numa", "node,nodeid=0,memdev=qnuma-ram0",
				"-numa", "node,nodeid=1,memdev=qnuma-ram1",
				"-numa", "cpu,node-id=0,socket-id=0",
				"-numa", "cpu,node-id=1,socket-id=1",
				"-numa", "dist,src=0,dst=1,val=21",
				"-numa", "dist,src=1,dst=0,val=31",
			},
		},
		{
			name: "prealloc threads without thread-context on 6.2",
			plan: mkPlan(Spec{Prealloc: true}, 1, 2, 1, gn{host: []int{0}, vcpus: 2, mem: gib, cpus: cpuset.New(2, 3)}),
			opts: RenderOptions{QEMU: qemu62},
			want: []string{
				"-smp", "2,sockets=1,cores=2,threads=1",
				"-m", "1G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind,prealloc=on,prealloc-threads=2",
				"-machine", "memory-backend=qnuma-ram0",
			},
		},
		{
			name: "prealloc alone on 4.2",
			plan: mkPlan(Spec{Prealloc: true}, 1, 2, 1, gn{host: []int{0}, vcpus: 2, mem: gib, cpus: cpuset.New(2, 3)}),
			opts: RenderOptions{QEMU: qemu42},
			want: []string{
				"-smp", "2,sockets=1,cores=2,threads=1",
				"-m", "1G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind,prealloc=on",
				"-numa", "node,nodeid=0,memdev=qnuma-ram0",
			},
		},
		{
			name: "hugepages on memfd",
			plan: mkPlan(Spec{HugepageBytes: 2 * mib, Prealloc: true}, 1, 2, 1, gn{host: []int{1}, vcpus: 2, mem: gib, cpus: cpuset.New(8)}),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "2,sockets=1,cores=2,threads=1",
				"-m", "1G",
				"-object", "thread-context,id=qnuma-tc0,node-affinity=1",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=1G,hugetlb=on,hugetlbsize=2M,host-nodes=1,policy=bind,prealloc=on,prealloc-threads=1,prealloc-context=qnuma-tc0",
				"-machine", "memory-backend=qnuma-ram0",
			},
		},
		{
			name: "hugepages on a hugetlbfs file",
			plan: mkPlan(Spec{HugepageBytes: gib}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: 2 * gib, cpus: c4}),
			opts: RenderOptions{QEMU: qemu72, Backend: memobj.BackendFile, MemPath: "/dev/hugepages1G"},
			want: []string{
				"-smp", "1,sockets=1,cores=1,threads=1",
				"-m", "2G",
				"-object", "memory-backend-file,id=qnuma-ram0,size=2G,mem-path=/dev/hugepages1G,host-nodes=0,policy=bind",
				"-machine", "memory-backend=qnuma-ram0",
			},
		},
		{
			name: "memory-only node, uneven split, one socket per vcpu",
			plan: func() *Plan {
				p := mkPlan(Spec{Prealloc: true}, 3, 1, 1,
					gn{host: []int{0}, vcpus: 2, mem: 2 * gib, cpus: c4},
					gn{host: []int{1}, vcpus: 1, mem: gib, cpus: c8},
					gn{host: []int{4}, mem: 8 * gib})
				p.Distances = [][]int{{10, 21, 40}, {21, 10, 40}, {40, 40, 10}}
				return p
			}(),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "3,sockets=3,cores=1,threads=1",
				"-m", "11G",
				"-object", "thread-context,id=qnuma-tc0,node-affinity=0",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=2G,host-nodes=0,policy=bind,prealloc=on,prealloc-threads=4,prealloc-context=qnuma-tc0",
				"-object", "thread-context,id=qnuma-tc1,node-affinity=1",
				"-object", "memory-backend-memfd,id=qnuma-ram1,size=1G,host-nodes=1,policy=bind,prealloc=on,prealloc-threads=4,prealloc-context=qnuma-tc1",
				// No thread-context: host node 4 may have no CPUs.
				"-object", "memory-backend-memfd,id=qnuma-ram2,size=8G,host-nodes=4,policy=bind,prealloc=on,prealloc-threads=2",
				"-numa", "node,nodeid=0,memdev=qnuma-ram0",
				"-numa", "node,nodeid=1,memdev=qnuma-ram1",
				"-numa", "node,nodeid=2,memdev=qnuma-ram2",
				"-numa", "cpu,node-id=0,socket-id=0",
				"-numa", "cpu,node-id=0,socket-id=1",
				"-numa", "cpu,node-id=1,socket-id=2",
				"-numa", "dist,src=0,dst=1,val=21",
				"-numa", "dist,src=0,dst=2,val=40",
				"-numa", "dist,src=1,dst=0,val=21",
				"-numa", "dist,src=1,dst=2,val=40",
				"-numa", "dist,src=2,dst=0,val=40",
				"-numa", "dist,src=2,dst=1,val=40",
			},
		},
		{
			name: "guest node with cpus and no memory",
			plan: mkPlan(Spec{}, 2, 1, 1, gn{host: []int{0}, vcpus: 1, mem: gib, cpus: c4}, gn{host: []int{1}, vcpus: 1, cpus: c8}),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "2,sockets=2,cores=1,threads=1",
				"-m", "1G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind",
				"-numa", "node,nodeid=0,memdev=qnuma-ram0",
				"-numa", "node,nodeid=1",
				"-numa", "cpu,node-id=0,socket-id=0",
				"-numa", "cpu,node-id=1,socket-id=1",
			},
		},
		{
			name: "topology with spare slots gets maxcpus",
			plan: mkPlan(Spec{}, 2, 2, 1, gn{host: []int{0}, vcpus: 2, mem: gib, cpus: c4}, gn{host: []int{1}, vcpus: 1, mem: gib, cpus: c8}),
			opts: RenderOptions{QEMU: qemu72},
			want: []string{
				"-smp", "3,sockets=2,cores=2,threads=1,maxcpus=4",
				"-m", "2G",
				"-object", "memory-backend-memfd,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind",
				"-object", "memory-backend-memfd,id=qnuma-ram1,size=1G,host-nodes=1,policy=bind",
				"-numa", "node,nodeid=0,memdev=qnuma-ram0",
				"-numa", "node,nodeid=1,memdev=qnuma-ram1",
				"-numa", "cpu,node-id=0,socket-id=0",
				"-numa", "cpu,node-id=1,socket-id=1",
			},
		},
		{
			name: "bind only renders nothing",
			plan: func() *Plan { p := twoNodes(Spec{BindOnly: true}); p.BindOnly = true; return p }(),
			opts: RenderOptions{},
			want: nil,
		},

		{name: "version unknown", plan: twoNodes(Spec{}), opts: RenderOptions{}, wantErr: "qemu version not known"},
		{name: "qemu too old", plan: twoNodes(Spec{}), opts: RenderOptions{QEMU: qemuversion.Version{Major: 2, Minor: 9}}, wantErr: "qemu 2.9.0 is too old"},
		{name: "no guest nodes", plan: &Plan{Sockets: 1, Cores: 1, Threads: 1}, opts: RenderOptions{QEMU: qemu72}, wantErr: "no guest nodes"},
		{name: "no vcpus", plan: mkPlan(Spec{}, 1, 1, 1, gn{host: []int{0}, mem: gib}), opts: RenderOptions{QEMU: qemu72}, wantErr: "no vcpus"},
		{
			name:    "memory does not add up",
			plan:    mkPlan(Spec{MemoryBytes: 5 * gib}, 1, 4, 1, gn{host: []int{0}, vcpus: 4, mem: 4 * gib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "guest nodes' memory adds up to 4G, not the VM's 5G",
		},
		{
			name:    "memory not in MiB",
			plan:    mkPlan(Spec{}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: gib + 4096, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "not a multiple of 1 MiB",
		},
		{
			name:    "memory not in hugepages",
			plan:    mkPlan(Spec{HugepageBytes: gib}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: 1536 * mib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "guest node 0 memory 1536M is not a multiple of the hugepage size 1G",
		},
		{
			name:    "only node without memory",
			plan:    mkPlan(Spec{}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "only guest node has no memory",
		},
		{
			name:    "memory without host nodes",
			plan:    mkPlan(Spec{}, 1, 1, 1, gn{vcpus: 1, mem: gib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "guest node 0 has memory and no host nodes",
		},
		{
			name:    "guest node ids out of order",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.GuestNodes[1].ID = 5; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "guest node 1 has id 5",
		},
		{
			name:    "vcpu where qemu will not put it",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.VCPUs[2].Socket = 0; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "vcpu 2 is planned as socket 0 core 0 thread 0, but -smp sockets=2,cores=2,threads=1 makes it socket 1 core 0 thread 0",
		},
		{
			name:    "socket across guest nodes",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.VCPUs[1].GuestNode = 1; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "socket 0 holds vcpus of guest nodes 0 and 1",
		},
		{
			name:    "socket without vcpus",
			plan:    mkPlan(Spec{}, 3, 1, 1, gn{host: []int{0}, vcpus: 1, mem: gib, cpus: c4}, gn{host: []int{1}, vcpus: 1, mem: gib, cpus: c8}),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "socket 2 has no vcpus",
		},
		{
			name:    "more vcpus than topology",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.Cores = 1; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "4 vcpus do not fit 2 sockets × 1 cores × 1 threads",
		},
		{
			name:    "zero threads",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.Threads = 0; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "each must be at least 1",
		},
		{
			name:    "hugepages on ram",
			plan:    mkPlan(Spec{HugepageBytes: 2 * mib}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: gib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72, Backend: memobj.BackendRAM},
			wantErr: "hugepages need a memfd or file backend, not ram",
		},
		{
			name:    "file backend without a directory",
			plan:    mkPlan(Spec{}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: gib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72, Backend: memobj.BackendFile},
			wantErr: "file backend needs a directory",
		},
		{
			name:    "memfd before 2.12",
			plan:    mkPlan(Spec{HugepageBytes: 2 * mib}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: gib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemuversion.Version{Major: 2, Minor: 11}},
			wantErr: "qemu 2.11.0 has no memfd backend",
		},
		{
			name:    "unknown backend",
			plan:    mkPlan(Spec{}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: gib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72, Backend: "pmem"},
			wantErr: `unknown memory backend type "pmem"`,
		},
		{
			name:    "bad policy",
			plan:    mkPlan(Spec{Policy: "strict"}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: gib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: `unknown memory policy "strict"`,
		},
		{
			name:    "host node out of qemu's range",
			plan:    mkPlan(Spec{}, 1, 1, 1, gn{host: []int{300}, vcpus: 1, mem: gib, cpus: c4}),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "node 300 out of range 0-127",
		},
		{
			name:    "distance rows",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.Distances = [][]int{{10, 20}}; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "distances have 1 rows for 2 guest nodes",
		},
		{
			name:    "distance row length",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.Distances = [][]int{{10, 20}, {20}}; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "distance row 1 has 1 entries",
		},
		{
			name:    "local distance not 10",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.Distances = [][]int{{10, 20}, {20, 11}}; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "guest node 1's distance to itself is 11",
		},
		{
			name:    "distance below local",
			plan:    func() *Plan { p := twoNodes(Spec{}); p.Distances = [][]int{{10, 5}, {20, 10}}; return p }(),
			opts:    RenderOptions{QEMU: qemu72},
			wantErr: "numa dist 0->1: distance 5 out of range 10-255",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.plan.Args(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Args = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("Args returned %q with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Args\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// Plans from Make render, and what they render says the same vCPU count and
// memory as the spec, with every ordered distance pair.
func TestArgsOfMadePlans(t *testing.T) {
	h := intel2p()
	for _, spec := range []Spec{
		{VCPUs: 8, MemoryBytes: 16 * gib},
		{VCPUs: 12, MemoryBytes: 8 * gib},
		{VCPUs: 12, MemoryBytes: 8 * gib, PreferHT: true},
		{VCPUs: 8, MemoryBytes: 36 * gib, Prealloc: true},
		{VCPUs: 4, MemoryBytes: 2 * gib, Dedicated: true, PreferHT: true},
		{VCPUs: 9, MemoryBytes: 2 * gib},
		{VCPUs: 2, MemoryBytes: 4 * gib, HugepageBytes: 2 << 20},
		{VCPUs: 6, MemoryBytes: 3 * gib, Spread: true},
	} {
		p, err := Make(h, spec, nil)
		if err != nil {
			t.Fatalf("Make(%+v): %v", spec, err)
		}
		args, err := p.Args(RenderOptions{QEMU: qemu72})
		if err != nil {
			t.Fatalf("%+v: Args: %v", spec, err)
		}
		q, err := ParseQEMUArgv(append([]string{"qemu-system-x86_64"}, args...))
		if err != nil {
			t.Fatalf("%+v: rendered %q does not parse: %v", spec, args, err)
		}
		if q.SMP.VCPUs() != spec.VCPUs || q.MemoryBytes != spec.MemoryBytes {
			t.Errorf("%+v: rendered %q has %d vcpus and %d bytes", spec, args, q.SMP.VCPUs(), q.MemoryBytes)
		}
		n := len(p.GuestNodes)
		if got := countPrefix(args, "dist,"); n > 1 && p.Distances != nil && got != n*(n-1) {
			t.Errorf("%+v: %d -numa dist for %d guest nodes, want %d", spec, got, n, n*(n-1))
		}
		if got := countPrefix(args, "memory-backend-"); got != n {
			t.Errorf("%+v: %d memory backends for %d guest nodes", spec, got, n)
		}
		if q.HasNUMA != (n > 1) {
			t.Errorf("%+v: %d guest nodes, -numa present %v", spec, n, q.HasNUMA)
		}
	}
}

func countPrefix(args []string, prefix string) int {
	n := 0
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			n++
		}
	}
	return n
}

// probeQEMU is the installed QEMU's version (skipping without QEMU).
func probeQEMU(t *testing.T) qemuversion.Version {
	t.Helper()
	bin := qemutest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := qemuversion.ProbeVersion(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// freeHugepages is how many pages of size are free on the host's node id.
func freeHugepages(h *topology.Host, id int, size uint64) uint64 {
	n, ok := h.Node(id)
	if !ok {
		return 0
	}
	for _, hp := range n.Hugepages {
		if hp.SizeBytes == size {
			return hp.Free
		}
	}
	return 0
}

// Rendered plans on the real QEMU: it starts them paused, and query-memdev
// shows each guest node's backend with the planned host nodes, policy,
// size and preallocation. This host may have one node, so hand-made plans
// put every guest node on host node 0; the plans Make builds are for this
// host as it is.
func TestRenderedPlansInQEMU(t *testing.T) {
	v := probeQEMU(t)
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	made := func(spec Spec) func(t *testing.T) *Plan {
		return func(t *testing.T) *Plan {
			p, err := Make(host, spec, nil)
			if err != nil {
				t.Fatalf("Make(%+v) on this host: %v", spec, err)
			}
			return p
		}
	}
	given := func(p *Plan) func(*testing.T) *Plan { return func(*testing.T) *Plan { return p } }
	_, hasNode1 := host.Node(1)
	c0 := cpuset.New(0)
	hp := 2 * uint64(mib)
	tests := []struct {
		name string
		plan func(t *testing.T) *Plan
		// refused: QEMU must exit with this in its message.
		refused string
		skip    string
	}{
		{name: "planned for this host", plan: made(Spec{VCPUs: 2, MemoryBytes: 256 * mib})},
		{name: "planned for this host, prealloc", plan: made(Spec{VCPUs: 1, MemoryBytes: 64 * mib, Prealloc: true, Policy: memobj.PolicyPreferred})},
		{
			name: "two guest nodes with distances",
			plan: given(func() *Plan {
				p := mkPlan(Spec{}, 2, 1, 1, gn{host: []int{0}, vcpus: 1, mem: 128 * mib, cpus: c0}, gn{host: []int{0}, vcpus: 1, mem: 64 * mib, cpus: c0})
				p.Distances = [][]int{{10, 21}, {31, 10}}
				return p
			}()),
		},
		{
			name: "prealloc in thread contexts, a memory-only node, uneven split",
			plan: given(func() *Plan {
				p := mkPlan(Spec{Prealloc: true, Policy: memobj.PolicyInterleave}, 3, 1, 1,
					gn{host: []int{0}, vcpus: 2, mem: 64 * mib, cpus: c0},
					gn{host: []int{0}, vcpus: 1, mem: 32 * mib, cpus: c0},
					gn{host: []int{0}, mem: 32 * mib})
				p.Distances = [][]int{{10, 21, 40}, {21, 10, 40}, {40, 40, 10}}
				return p
			}()),
		},
		{
			// Memory split in whole hugepages may leave a guest node with
			// vCPUs and no memory: QEMU takes such a node.
			name: "a guest node with vcpus and no memory",
			plan: given(mkPlan(Spec{}, 2, 1, 1, gn{host: []int{0}, vcpus: 1, mem: 64 * mib, cpus: c0}, gn{host: []int{0}, vcpus: 1, cpus: c0})),
		},
		{
			name: "smt topology with spare slots",
			plan: given(mkPlan(Spec{}, 2, 2, 2, gn{host: []int{0}, vcpus: 4, mem: 64 * mib, cpus: c0}, gn{host: []int{0}, vcpus: 2, mem: 64 * mib, cpus: c0})),
		},
		{
			name: "hugepages on memfd",
			plan: given(mkPlan(Spec{HugepageBytes: hp, Prealloc: true}, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: 32 * mib, cpus: c0})),
			refused: func() string {
				if freeHugepages(host, 0, hp) >= 16 {
					return ""
				}
				// No free 2 MiB pages here: QEMU must get past the syntax
				// and fail mapping the memory.
				return "unable to map backing store for guest RAM"
			}(),
		},
		{
			name:    "host node this host lacks",
			plan:    given(mkPlan(Spec{}, 1, 1, 1, gn{host: []int{1}, vcpus: 1, mem: 64 * mib, cpus: c0})),
			refused: "cannot bind memory to host NUMA nodes",
			skip:    map[bool]string{true: "this host has node 1"}[hasNode1],
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != "" {
				t.Skip(tc.skip)
			}
			p := tc.plan(t)
			args, err := p.Args(RenderOptions{QEMU: v})
			if err != nil {
				t.Fatal(err)
			}
			vm, err := qemutest.Start(t, args...)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("qemu with %q: err = %v; want it refused with %q", args, err, tc.refused)
				}
				for _, syntax := range []string{"Invalid parameter", "Parameter '", "invalid option", "Property '"} {
					if strings.Contains(err.Error(), syntax) {
						t.Errorf("qemu refused the syntax, not the resource: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			devs, err := vm.Memdevs()
			if err != nil {
				t.Fatal(err)
			}
			policy := string(p.Spec.Policy)
			if policy == "" {
				policy = "bind"
			}
			byID := map[string]int{}
			for i, d := range devs {
				byID[d.ID] = i
			}
			backends := 0
			for _, g := range p.GuestNodes {
				if g.MemoryBytes == 0 {
					continue
				}
				backends++
				i, ok := byID["qnuma-ram"+strconv.Itoa(g.ID)]
				if !ok {
					t.Errorf("guest node %d: no backend qnuma-ram%d in %+v", g.ID, g.ID, devs)
					continue
				}
				d := devs[i]
				if !slices.Equal(d.HostNodes, g.HostNodes) || d.Policy != policy || d.Size != g.MemoryBytes || d.Prealloc != p.Spec.Prealloc {
					t.Errorf("guest node %d: qemu has host-nodes %v policy %s size %d prealloc %v; planned %v %s %d %v",
						g.ID, d.HostNodes, d.Policy, d.Size, d.Prealloc, g.HostNodes, policy, g.MemoryBytes, p.Spec.Prealloc)
				}
			}
			if len(devs) != backends {
				t.Errorf("qemu has %d backends, the plan %d: %+v", len(devs), backends, devs)
			}
		})
	}
}
