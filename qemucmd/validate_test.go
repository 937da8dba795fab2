package qemucmd

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
)

// renderCase is one row: an option and either its argv or its error.
type renderCase struct {
	name    string
	o       Option
	want    []string
	wantErr string
}

func runRenderCases(t *testing.T, tests []renderCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Render(%+v) = %q, %v; want error containing %q", tc.o, got, err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("Render returned %q with its error; want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render(%+v): %v", tc.o, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Render(%+v)\n got %q\nwant %q", tc.o, got, tc.want)
			}
		})
	}
}

const (
	mib = memobj.MiB
	gib = memobj.GiB
)

func nodes(ids ...int) (cpuset.CPUSet, bool) { return cpuset.New(ids...), true }

func TestValidateBackend(t *testing.T) {
	ram := func(b Backend) Backend {
		if b.Type == "" {
			b.Type = "ram"
		}
		if b.ID == "" {
			b.ID = "m"
		}
		return b
	}
	bound := func(b Backend, ids ...int) Backend {
		b.HostNodes, b.HasHostNodes = nodes(ids...)
		if b.Policy == "" {
			b.Policy = "bind"
		}
		return ram(b)
	}
	runRenderCases(t, []renderCase{
		{name: "ram bound", o: bound(Backend{ID: "qnuma-ram0", Size: 4 * gib}, 0),
			want: []string{"-object", "memory-backend-ram,id=qnuma-ram0,size=4G,host-nodes=0,policy=bind"}},
		{name: "node ranges", o: bound(Backend{Size: 1536 * mib, Policy: "interleave"}, 3, 0, 1, 7, 8, 9),
			want: []string{"-object", "memory-backend-ram,id=m,size=1536M,host-nodes=0-1,host-nodes=3,host-nodes=7-9,policy=interleave"}},
		{name: "no binding", o: ram(Backend{Size: 64 * mib}), want: []string{"-object", "memory-backend-ram,id=m,size=64M"}},
		{name: "prealloc with context", o: bound(Backend{ID: "qnuma-ram1", Size: 2 * gib, Policy: "preferred", Prealloc: ptr(true), PreallocThreads: ptr(4), PreallocContext: "qnuma-tc1"}, 1),
			want: []string{"-object", "memory-backend-ram,id=qnuma-ram1,size=2G,host-nodes=1,policy=preferred,prealloc=on,prealloc-threads=4,prealloc-context=qnuma-tc1"}},
		{name: "memfd hugetlb", o: bound(Backend{Type: "memfd", ID: "h", Size: 2 * gib, HugeTLB: ptr(true), HugeTLBSize: 2 * mib, Prealloc: ptr(true)}, 0),
			want: []string{"-object", "memory-backend-memfd,id=h,size=2G,hugetlb=on,hugetlbsize=2M,host-nodes=0,policy=bind,prealloc=on"}},
		{name: "file with comma in path", o: bound(Backend{Type: "file", ID: "f", Size: gib, MemPath: "/dev/hugepages/a,b", Share: ptr(true)}, 2),
			want: []string{"-object", "memory-backend-file,id=f,size=1G,mem-path=/dev/hugepages/a,,b,share=on,host-nodes=2,policy=bind"}},
		{name: "unknown type", o: ram(Backend{Type: "rom", Size: mib}), wantErr: `unknown memory backend type "rom"`},
		{name: "empty type", o: Backend{ID: "m", Size: mib}, wantErr: "unknown memory backend type"},
		{name: "bad id", o: ram(Backend{ID: "0ram", Size: mib}), wantErr: `id "0ram"`},
		{name: "comma id", o: ram(Backend{ID: "a,b", Size: mib}), wantErr: `id "a,b"`},
		{name: "zero size", o: ram(Backend{}), wantErr: "size is zero"},
		{name: "negative node", o: bound(Backend{Size: mib}, -1), wantErr: "node -1 out of range"},
		{name: "node too big", o: bound(Backend{Size: mib}, 128), wantErr: "node 128 out of range 0-127"},
		{name: "empty host-nodes", o: bound(Backend{Size: mib}), wantErr: "host-nodes is empty"},
		{name: "bad policy", o: bound(Backend{Size: mib, Policy: "strict"}, 0), wantErr: `unknown memory policy "strict"`},
		{name: "preferred-many", o: bound(Backend{Size: mib, Policy: "preferred-many"}, 0, 1), wantErr: "is a process policy"},
		{name: "bind without nodes", o: ram(Backend{Size: mib, Policy: "bind"}), wantErr: "policy bind needs host nodes"},
		{name: "nodes without policy", o: ram(Backend{Size: mib, HostNodes: cpuset.New(0), HasHostNodes: true}), wantErr: "need a policy other than default"},
		{name: "nodes with default policy", o: bound(Backend{Size: mib, Policy: "default"}, 0), wantErr: "need a policy other than default"},
		{name: "threads without prealloc", o: ram(Backend{Size: mib, PreallocThreads: ptr(2)}), wantErr: "without prealloc"},
		{name: "threads with prealloc off", o: ram(Backend{Size: mib, Prealloc: ptr(false), PreallocThreads: ptr(2)}), wantErr: "without prealloc"},
		{name: "context without prealloc", o: ram(Backend{Size: mib, PreallocContext: "tc"}), wantErr: "without prealloc"},
		{name: "negative threads", o: ram(Backend{Size: mib, Prealloc: ptr(true), PreallocThreads: ptr(-1)}), wantErr: "prealloc-threads -1 is negative"},
		{name: "bad context id", o: ram(Backend{Size: mib, Prealloc: ptr(true), PreallocContext: "t c"}), wantErr: `prealloc-context "t c"`},
		{name: "file without path", o: ram(Backend{Type: "file", Size: mib}), wantErr: "mem-path is for, and required by, file backends"},
		{name: "path on ram", o: ram(Backend{Size: mib, MemPath: "/tmp"}), wantErr: "mem-path is for, and required by, file backends"},
		{name: "hugetlb on ram", o: ram(Backend{Size: mib, HugeTLB: ptr(true)}), wantErr: "hugetlb is a memfd option, not ram"},
		{name: "hugetlbsize alone", o: ram(Backend{Type: "memfd", Size: 2 * mib, HugeTLBSize: 2 * mib}), wantErr: "hugetlbsize without hugetlb"},
		{name: "hugetlbsize odd", o: ram(Backend{Type: "memfd", Size: 3 * mib, HugeTLB: ptr(true), HugeTLBSize: 3 * mib}), wantErr: "not a power of two"},
		{name: "size not pages", o: ram(Backend{Type: "memfd", Size: 3 * mib, HugeTLB: ptr(true), HugeTLBSize: 2 * mib}), wantErr: "size 3M is not a multiple of the hugepage size 2M"},
	})
}

func TestValidateThreadContext(t *testing.T) {
	runRenderCases(t, []renderCase{
		{name: "one node", o: ThreadContext{ID: "qnuma-tc0", NodeAffinity: cpuset.New(0), HasNodes: true}, want: []string{"-object", "thread-context,id=qnuma-tc0,node-affinity=0"}},
		{name: "nodes", o: ThreadContext{ID: "tc", NodeAffinity: cpuset.New(2, 0, 1), HasNodes: true}, want: []string{"-object", "thread-context,id=tc,node-affinity=0-2"}},
		{name: "cpus", o: ThreadContext{ID: "tc", CPUAffinity: cpuset.New(0, 1, 2, 3, 8, 10), HasCPUs: true}, want: []string{"-object", "thread-context,id=tc,cpu-affinity=0-3,cpu-affinity=8,cpu-affinity=10"}},
		{name: "neither", o: ThreadContext{ID: "tc"}, wantErr: "exactly one"},
		{name: "empty nodes", o: ThreadContext{ID: "tc", HasNodes: true}, wantErr: "exactly one"},
		{name: "both", o: ThreadContext{ID: "tc", NodeAffinity: cpuset.New(0), HasNodes: true, CPUAffinity: cpuset.New(1), HasCPUs: true}, wantErr: "exactly one"},
		{name: "bad id", o: ThreadContext{ID: "", NodeAffinity: cpuset.New(0), HasNodes: true}, wantErr: `thread-context id ""`},
		{name: "bad node", o: ThreadContext{ID: "tc", NodeAffinity: cpuset.New(200), HasNodes: true}, wantErr: "node 200 out of range"},
	})
}

func TestValidateNUMA(t *testing.T) {
	runRenderCases(t, []renderCase{
		{name: "node with memdev", o: NumaNode{NodeID: ptr(1), Memdev: "qnuma-ram1"}, want: []string{"-numa", "node,nodeid=1,memdev=qnuma-ram1"}},
		{name: "node without memory", o: NumaNode{NodeID: ptr(2)}, want: []string{"-numa", "node,nodeid=2"}},
		{name: "node without id", o: NumaNode{Memdev: "m"}, wantErr: "no nodeid"},
		{name: "node id too big", o: NumaNode{NodeID: ptr(128)}, wantErr: "nodeid out of range"},
		{name: "node negative", o: NumaNode{NodeID: ptr(-1)}, wantErr: "nodeid out of range"},
		{name: "node bad memdev", o: NumaNode{NodeID: ptr(0), Memdev: "-x"}, wantErr: `memdev "-x"`},
		{name: "node memdev and mem", o: NumaNode{NodeID: ptr(0), Memdev: "m", HasMem: true, Mem: mib}, wantErr: "memdev and mem together"},

		{name: "cpu socket", o: NumaCPU{NodeID: ptr(1), SocketID: ptr(1)}, want: []string{"-numa", "cpu,node-id=1,socket-id=1"}},
		{name: "cpu thread", o: NumaCPU{NodeID: ptr(0), SocketID: ptr(0), CoreID: ptr(3), ThreadID: ptr(1)}, want: []string{"-numa", "cpu,node-id=0,socket-id=0,core-id=3,thread-id=1"}},
		{name: "cpu core zero", o: NumaCPU{NodeID: ptr(0), SocketID: ptr(2), CoreID: ptr(0)}, want: []string{"-numa", "cpu,node-id=0,socket-id=2,core-id=0"}},
		{name: "cpu thread without core", o: NumaCPU{NodeID: ptr(0), ThreadID: ptr(0)}, wantErr: "thread-id without core-id"},
		{name: "cpu negative socket", o: NumaCPU{NodeID: ptr(0), SocketID: ptr(-1)}, wantErr: "socket-id -1 is negative"},
		{name: "cpu negative core", o: NumaCPU{NodeID: ptr(0), CoreID: ptr(-2)}, wantErr: "core-id -2 is negative"},
		{name: "cpu bad node", o: NumaCPU{NodeID: ptr(999)}, wantErr: "node-id 999 out of range"},
		{name: "cpu without node", o: NumaCPU{SocketID: ptr(0)}, wantErr: "no node-id"},

		{name: "dist", o: NumaDist{Src: 0, Dst: 1, Val: 21}, want: []string{"-numa", "dist,src=0,dst=1,val=21"}},
		{name: "dist local", o: NumaDist{Src: 1, Dst: 1, Val: 10}, want: []string{"-numa", "dist,src=1,dst=1,val=10"}},
		{name: "dist below 10", o: NumaDist{Src: 0, Dst: 1, Val: 9}, wantErr: "distance 9 out of range 10-255"},
		{name: "dist above 255", o: NumaDist{Src: 0, Dst: 1, Val: 256}, wantErr: "distance 256 out of range"},
		{name: "dist local not 10", o: NumaDist{Src: 2, Dst: 2, Val: 20}, wantErr: "distance to itself must be 10"},
		{name: "dist bad node", o: NumaDist{Src: 0, Dst: 128, Val: 20}, wantErr: "node 128 out of range"},

		{name: "machine ram", o: Machine{MemoryBackend: "qnuma-ram0"}, want: []string{"-machine", "memory-backend=qnuma-ram0"}},
		{name: "machine ram bad id", o: Machine{MemoryBackend: "0x"}, wantErr: "not a valid id"},
		{name: "machine empty", o: Machine{}, wantErr: "nothing to set"},
		{name: "memory", o: Memory{Size: 3 * gib}, want: []string{"-m", "3G"}},
		{name: "memory bytes keep a unit", o: Memory{Size: 1000}, want: []string{"-m", "1000B"}},
		{name: "memory zero", o: Memory{}, wantErr: "memory size is zero"},
	})
}

func TestValidateSMP(t *testing.T) {
	runRenderCases(t, []renderCase{
		{name: "plain", o: SMP{CPUs: 4}, want: []string{"-smp", "4"}},
		{name: "topology", o: SMP{CPUs: 8, Sockets: 2, Cores: 2, Threads: 2}, want: []string{"-smp", "8,sockets=2,cores=2,threads=2"}},
		{name: "uneven split", o: SMP{CPUs: 7, Sockets: 2, Cores: 4, Threads: 1, MaxCPUs: 8}, want: []string{"-smp", "7,sockets=2,cores=4,threads=1,maxcpus=8"}},
		{name: "dies clusters", o: SMP{CPUs: 16, Sockets: 1, Dies: 2, Clusters: 2, Cores: 2, Threads: 2}, want: []string{"-smp", "16,sockets=1,dies=2,clusters=2,cores=2,threads=2"}},
		{name: "zero cpus", o: SMP{Sockets: 1, Cores: 1, Threads: 1}, wantErr: "cpus is zero"},
		{name: "negative", o: SMP{CPUs: 2, Cores: -1}, wantErr: "cores=-1 is negative"},
		{name: "product", o: SMP{CPUs: 3, Sockets: 2, Cores: 2, Threads: 1}, wantErr: "is 4, not maxcpus 3"},
		{name: "partial topology", o: SMP{CPUs: 4, Sockets: 2}, wantErr: "give sockets, cores and threads together"},
		{name: "maxcpus below", o: SMP{CPUs: 4, MaxCPUs: 2}, wantErr: "maxcpus=2 is below cpus=4"},
	})
}

func TestRenderStopsAtFirstError(t *testing.T) {
	got, err := Render(SMP{CPUs: 2}, NumaNode{NodeID: ptr(0)}, NumaDist{Src: 0, Dst: 0, Val: 11})
	if err == nil || got != nil {
		t.Fatalf("Render with an invalid option = %q, %v; want nil and an error", got, err)
	}
	got, err = Render(SMP{CPUs: 2}, Memory{Size: gib}, Name{Guest: "g"})
	if err != nil || !slices.Equal(got, []string{"-smp", "2", "-m", "1G", "-name", "g"}) {
		t.Fatalf("Render = %q, %v", got, err)
	}
}
