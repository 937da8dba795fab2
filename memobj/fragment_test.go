package memobj

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

func intp(n int) *int { return &n }

// fragmentCase is one row: a fragment and either its argv or its error.
type fragmentCase struct {
	name    string
	f       Fragment
	want    []string
	wantErr string
}

func runFragmentCases(t *testing.T, tests []fragmentCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Render(%+v) = %q, %v; want error containing %q", tc.f, got, err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("Render returned %q with its error; want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render(%+v): %v", tc.f, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Render(%+v)\n got %q\nwant %q", tc.f, got, tc.want)
			}
		})
	}
}

func TestMemoryBackend(t *testing.T) {
	runFragmentCases(t, []fragmentCase{
		{
			name: "ram bound",
			f:    MemoryBackend{Type: BackendRAM, ID: "qnuma-ram0", SizeBytes: 4 * GiB, HostNodes: []int{0}, Policy: PolicyBind},
			want: []string{"-object", "memory-backend-ram,id=qnuma-ram0,size=4G,host-nodes=0,policy=bind"},
		},
		{
			name: "node ranges and repeats",
			f:    MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: 1536 * MiB, HostNodes: []int{3, 0, 1, 7, 8, 9}, Policy: PolicyInterleave},
			want: []string{"-object", "memory-backend-ram,id=m,size=1536M,host-nodes=0-1,host-nodes=3,host-nodes=7-9,policy=interleave"},
		},
		{
			name: "no binding",
			f:    MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: 64 * MiB},
			want: []string{"-object", "memory-backend-ram,id=m,size=64M"},
		},
		{
			name: "prealloc with context",
			f: MemoryBackend{Type: BackendRAM, ID: "qnuma-ram1", SizeBytes: 2 * GiB, HostNodes: []int{1}, Policy: PolicyPreferred,
				Prealloc: true, PreallocThreads: 4, PreallocContext: "qnuma-tc1"},
			want: []string{"-object", "memory-backend-ram,id=qnuma-ram1,size=2G,host-nodes=1,policy=preferred,prealloc=on,prealloc-threads=4,prealloc-context=qnuma-tc1"},
		},
		{
			name: "memfd hugetlb",
			f: MemoryBackend{Type: BackendMemfd, ID: "h", SizeBytes: 2 * GiB, HostNodes: []int{0}, Policy: PolicyBind,
				Hugetlb: true, HugetlbSize: 2 * MiB, Prealloc: true},
			want: []string{"-object", "memory-backend-memfd,id=h,size=2G,hugetlb=on,hugetlbsize=2M,host-nodes=0,policy=bind,prealloc=on"},
		},
		{
			name: "file with comma in path",
			f:    MemoryBackend{Type: BackendFile, ID: "f", SizeBytes: GiB, MemPath: "/dev/hugepages/a,b", Share: true, HostNodes: []int{2}, Policy: PolicyBind},
			want: []string{"-object", "memory-backend-file,id=f,size=1G,mem-path=/dev/hugepages/a,,b,share=on,host-nodes=2,policy=bind"},
		},
		{name: "unknown type", f: MemoryBackend{Type: "rom", ID: "m", SizeBytes: MiB}, wantErr: `unknown memory backend type "rom"`},
		{name: "empty type", f: MemoryBackend{ID: "m", SizeBytes: MiB}, wantErr: "unknown memory backend type"},
		{name: "bad id", f: MemoryBackend{Type: BackendRAM, ID: "0ram", SizeBytes: MiB}, wantErr: `id "0ram"`},
		{name: "comma id", f: MemoryBackend{Type: BackendRAM, ID: "a,b", SizeBytes: MiB}, wantErr: `id "a,b"`},
		{name: "zero size", f: MemoryBackend{Type: BackendRAM, ID: "m"}, wantErr: "size is zero"},
		{name: "negative node", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, HostNodes: []int{-1}, Policy: PolicyBind}, wantErr: "node -1 out of range"},
		{name: "node too big", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, HostNodes: []int{128}, Policy: PolicyBind}, wantErr: "node 128 out of range 0-127"},
		{name: "node twice", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, HostNodes: []int{1, 1}, Policy: PolicyBind}, wantErr: "node 1 listed twice"},
		{name: "bad policy", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, HostNodes: []int{0}, Policy: "strict"}, wantErr: `unknown memory policy "strict"`},
		{name: "bind without nodes", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, Policy: PolicyBind}, wantErr: "policy bind needs host nodes"},
		{name: "nodes without policy", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, HostNodes: []int{0}}, wantErr: "need a policy other than default"},
		{name: "nodes with default policy", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, HostNodes: []int{0}, Policy: PolicyDefault}, wantErr: "need a policy other than default"},
		{name: "threads without prealloc", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, PreallocThreads: 2}, wantErr: "without prealloc"},
		{name: "context without prealloc", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, PreallocContext: "tc"}, wantErr: "without prealloc"},
		{name: "negative threads", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, Prealloc: true, PreallocThreads: -1}, wantErr: "prealloc-threads -1 is negative"},
		{name: "bad context id", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, Prealloc: true, PreallocContext: "t c"}, wantErr: `prealloc-context "t c"`},
		{name: "file without path", f: MemoryBackend{Type: BackendFile, ID: "m", SizeBytes: MiB}, wantErr: "mem-path is for, and required by, file backends"},
		{name: "path on ram", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, MemPath: "/tmp"}, wantErr: "mem-path is for, and required by, file backends"},
		{name: "hugetlb on ram", f: MemoryBackend{Type: BackendRAM, ID: "m", SizeBytes: MiB, Hugetlb: true}, wantErr: "hugetlb is a memfd option, not ram"},
		{name: "hugetlbsize alone", f: MemoryBackend{Type: BackendMemfd, ID: "m", SizeBytes: 2 * MiB, HugetlbSize: 2 * MiB}, wantErr: "hugetlbsize without hugetlb"},
		{name: "hugetlbsize odd", f: MemoryBackend{Type: BackendMemfd, ID: "m", SizeBytes: 3 * MiB, Hugetlb: true, HugetlbSize: 3 * MiB}, wantErr: "not a power of two"},
		{name: "size not pages", f: MemoryBackend{Type: BackendMemfd, ID: "m", SizeBytes: 3 * MiB, Hugetlb: true, HugetlbSize: 2 * MiB}, wantErr: "size 3M is not a multiple of the hugepage size 2M"},
	})
}

func TestThreadContext(t *testing.T) {
	runFragmentCases(t, []fragmentCase{
		{name: "one node", f: ThreadContext{ID: "qnuma-tc0", NodeAffinity: []int{0}}, want: []string{"-object", "thread-context,id=qnuma-tc0,node-affinity=0"}},
		{name: "nodes", f: ThreadContext{ID: "tc", NodeAffinity: []int{2, 0, 1}}, want: []string{"-object", "thread-context,id=tc,node-affinity=0-2"}},
		{name: "cpus", f: ThreadContext{ID: "tc", CPUAffinity: cpuset.New(0, 1, 2, 3, 8, 10)}, want: []string{"-object", "thread-context,id=tc,cpu-affinity=0-3,cpu-affinity=8,cpu-affinity=10"}},
		{name: "neither", f: ThreadContext{ID: "tc"}, wantErr: "exactly one"},
		{name: "both", f: ThreadContext{ID: "tc", NodeAffinity: []int{0}, CPUAffinity: cpuset.New(1)}, wantErr: "exactly one"},
		{name: "bad id", f: ThreadContext{ID: "", NodeAffinity: []int{0}}, wantErr: `thread-context id ""`},
		{name: "bad node", f: ThreadContext{ID: "tc", NodeAffinity: []int{200}}, wantErr: "node 200 out of range"},
	})
}

func TestNUMAFragments(t *testing.T) {
	runFragmentCases(t, []fragmentCase{
		{name: "node with memdev", f: NumaNode{NodeID: 1, Memdev: "qnuma-ram1"}, want: []string{"-numa", "node,nodeid=1,memdev=qnuma-ram1"}},
		{name: "node without memory", f: NumaNode{NodeID: 2}, want: []string{"-numa", "node,nodeid=2"}},
		{name: "node id too big", f: NumaNode{NodeID: 128}, wantErr: "nodeid out of range"},
		{name: "node negative", f: NumaNode{NodeID: -1}, wantErr: "nodeid out of range"},
		{name: "node bad memdev", f: NumaNode{NodeID: 0, Memdev: "-x"}, wantErr: `memdev "-x"`},

		{name: "cpu socket", f: NumaCPU{NodeID: 1, SocketID: 1}, want: []string{"-numa", "cpu,node-id=1,socket-id=1"}},
		{name: "cpu thread", f: NumaCPU{NodeID: 0, SocketID: 0, CoreID: intp(3), ThreadID: intp(1)}, want: []string{"-numa", "cpu,node-id=0,socket-id=0,core-id=3,thread-id=1"}},
		{name: "cpu core zero", f: NumaCPU{NodeID: 0, SocketID: 2, CoreID: intp(0)}, want: []string{"-numa", "cpu,node-id=0,socket-id=2,core-id=0"}},
		{name: "cpu thread without core", f: NumaCPU{NodeID: 0, ThreadID: intp(0)}, wantErr: "thread-id without core-id"},
		{name: "cpu negative socket", f: NumaCPU{NodeID: 0, SocketID: -1}, wantErr: "socket-id -1 is negative"},
		{name: "cpu negative core", f: NumaCPU{NodeID: 0, CoreID: intp(-2)}, wantErr: "core-id -2 is negative"},
		{name: "cpu bad node", f: NumaCPU{NodeID: 999}, wantErr: "node-id 999 out of range"},

		{name: "dist", f: NumaDist{Src: 0, Dst: 1, Val: 21}, want: []string{"-numa", "dist,src=0,dst=1,val=21"}},
		{name: "dist local", f: NumaDist{Src: 1, Dst: 1, Val: 10}, want: []string{"-numa", "dist,src=1,dst=1,val=10"}},
		{name: "dist below 10", f: NumaDist{Src: 0, Dst: 1, Val: 9}, wantErr: "distance 9 out of range 10-255"},
		{name: "dist above 255", f: NumaDist{Src: 0, Dst: 1, Val: 256}, wantErr: "distance 256 out of range"},
		{name: "dist local not 10", f: NumaDist{Src: 2, Dst: 2, Val: 20}, wantErr: "distance to itself must be 10"},
		{name: "dist bad node", f: NumaDist{Src: 0, Dst: 128, Val: 20}, wantErr: "node 128 out of range"},

		{name: "machine ram", f: MachineMemoryBackend{ID: "qnuma-ram0"}, want: []string{"-machine", "memory-backend=qnuma-ram0"}},
		{name: "machine ram bad id", f: MachineMemoryBackend{}, wantErr: "not a valid id"},
		{name: "memory", f: Memory{SizeBytes: 3 * GiB}, want: []string{"-m", "3G"}},
		{name: "memory bytes keep a unit", f: Memory{SizeBytes: 1000}, want: []string{"-m", "1000B"}},
		{name: "memory zero", f: Memory{}, wantErr: "memory size is zero"},
	})
}

func TestSMP(t *testing.T) {
	runFragmentCases(t, []fragmentCase{
		{name: "plain", f: SMP{CPUs: 4}, want: []string{"-smp", "4"}},
		{name: "topology", f: SMP{CPUs: 8, Sockets: 2, Cores: 2, Threads: 2}, want: []string{"-smp", "8,sockets=2,cores=2,threads=2"}},
		{name: "uneven split", f: SMP{CPUs: 7, Sockets: 2, Cores: 4, Threads: 1, MaxCPUs: 8}, want: []string{"-smp", "7,sockets=2,cores=4,threads=1,maxcpus=8"}},
		{name: "dies clusters", f: SMP{CPUs: 16, Sockets: 1, Dies: 2, Clusters: 2, Cores: 2, Threads: 2}, want: []string{"-smp", "16,sockets=1,dies=2,clusters=2,cores=2,threads=2"}},
		{name: "zero cpus", f: SMP{Sockets: 1, Cores: 1, Threads: 1}, wantErr: "cpus is zero"},
		{name: "negative", f: SMP{CPUs: 2, Cores: -1}, wantErr: "cores=-1 is negative"},
		{name: "product", f: SMP{CPUs: 3, Sockets: 2, Cores: 2, Threads: 1}, wantErr: "is 4, not maxcpus 3"},
		{name: "partial topology", f: SMP{CPUs: 4, Sockets: 2}, wantErr: "give sockets, cores and threads together"},
		{name: "maxcpus below", f: SMP{CPUs: 4, MaxCPUs: 2}, wantErr: "maxcpus=2 is below cpus=4"},
	})
}

func TestSMPVCPUs(t *testing.T) {
	for _, tc := range []struct {
		s    SMP
		want int
	}{
		{SMP{CPUs: 4}, 4},
		{SMP{CPUs: 4, MaxCPUs: 8}, 4},
		{SMP{MaxCPUs: 8}, 8},
		{SMP{Sockets: 2, Cores: 3}, 6},
		{SMP{Sockets: 2, Dies: 2, Cores: 2, Threads: 2}, 16},
		{SMP{}, 1},
	} {
		if got := tc.s.VCPUs(); got != tc.want {
			t.Errorf("%+v.VCPUs() = %d, want %d", tc.s, got, tc.want)
		}
	}
}

func TestRenderStopsAtFirstError(t *testing.T) {
	got, err := Render(SMP{CPUs: 2}, NumaNode{NodeID: 0}, NumaDist{Src: 0, Dst: 0, Val: 11})
	if err == nil || got != nil {
		t.Fatalf("Render with an invalid fragment = %q, %v; want nil and an error", got, err)
	}
	got, err = Render(SMP{CPUs: 2}, Memory{SizeBytes: GiB})
	if err != nil || !slices.Equal(got, []string{"-smp", "2", "-m", "1G"}) {
		t.Fatalf("Render = %q, %v", got, err)
	}
}

func TestParseBackendType(t *testing.T) {
	for _, s := range []string{"ram", "memfd", "file"} {
		if got, err := ParseBackendType(s); err != nil || string(got) != s {
			t.Errorf("ParseBackendType(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseBackendType("hugepages"); err == nil {
		t.Error("ParseBackendType(hugepages) accepted an unknown type")
	}
}
