package qemucmd

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

const bin = "qemu-system-x86_64"

func ptr[T any](v T) *T { return &v }

// seeds are real command lines: libvirt's (JSON objects and devices), the
// issues' examples, and qnuma's own rendering. They seed FuzzParse too.
var seeds = [][]string{
	{bin, "-smp", "4", "-m", "2G"},
	{bin, "-name", "guest=vm1,debug-threads=on", "-S", "-machine", "pc-q35-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram,hmat=on",
		"-accel", "kvm", "-cpu", "host,migratable=on", "-m", "size=4194304k,slots=16,maxmem=16777216k", "-overcommit", "mem-lock=off",
		"-smp", "4,maxcpus=8,sockets=2,dies=1,clusters=1,cores=2,threads=2",
		"-object", `{"qom-type":"memory-backend-ram","id":"ram-node0","size":2147483648,"host-nodes":[0],"policy":"bind"}`,
		"-numa", "node,nodeid=0,cpus=0-1,cpus=4-5,memdev=ram-node0",
		"-object", `{"qom-type":"memory-backend-memfd","id":"ram-node1","share":true,"prealloc":true,"size":2147483648,"host-nodes":[1,2,3],"policy":"interleave"}`,
		"-numa", "node,nodeid=1,cpus=2-3,cpus=6-7,memdev=ram-node1",
		"-numa", "dist,src=0,dst=1,val=21", "-numa", "cpu,node-id=0,socket-id=0,core-id=0,thread-id=0",
		"-numa", "hmat-lb,initiator=0,target=0,hierarchy=memory,data-type=access-latency,latency=5",
		"-numa", "hmat-lb,initiator=0,target=1,hierarchy=memory,data-type=access-bandwidth,bandwidth=200M",
		"-numa", "hmat-cache,node-id=0,size=10K,level=1,associativity=direct,policy=write-back,line=8",
		"-uuid", "c7a5fdbd-edaf-9455-926a-d65c16db1809", "-no-user-config", "-nodefaults",
		"-chardev", "socket,id=charmonitor,fd=21,server=on,wait=off", "-mon", "chardev=charmonitor,id=monitor,mode=control",
		"-rtc", "base=utc", "-no-shutdown", "-boot", "strict=on",
		"-object", `{"qom-type":"memory-backend-file","id":"memdimm0","mem-path":"/dev/hugepages/libvirt/qemu","discard-data":true,"share":false,"size":536870912,"host-nodes":[0],"policy":"bind"}`,
		"-device", `{"driver":"pc-dimm","node":0,"memdev":"memdimm0","id":"dimm0","slot":0,"addr":4294967296}`,
		"-object", `{"qom-type":"memory-backend-ram","id":"memvirtiomem0","reserve":false,"size":1073741824}`,
		"-device", `{"driver":"virtio-mem-pci","node":1,"block-size":2097152,"requested-size":0,"memdev":"memvirtiomem0","id":"virtiomem0","bus":"pci.0","addr":"0x2"}`,
		"-object", `{"qom-type":"thread-context","id":"tc-ram-node0","node-affinity":[0]}`,
		"-device", `{"driver":"virtio-blk-pci","bus":"pci.0","addr":"0x4","drive":"libvirt-1-format","id":"virtio-disk0","bootindex":1}`,
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", "-msg", "timestamp=on"},
	{bin, "-object", `{"qom-type":"memory-backend-memfd","id":"m0","size":134217728,"share":true}`, "-machine", "memory-backend=m0"},
	{bin, "-object", "memory-backend-memfd,id=m0,size=128M,share=on", "-machine", "memory-backend=m0"},
	{bin, "-smp", "2,sockets=1,cores=2,threads=1", "-m", "1G",
		"-object", "memory-backend-ram,id=qnuma-ram0,size=512M,host-nodes=0,policy=bind,prealloc=on,prealloc-threads=2,prealloc-context=qnuma-tc0",
		"-object", "thread-context,id=qnuma-tc0,node-affinity=0", "-object", "thread-context,id=tc1,cpu-affinity=0-3,cpu-affinity=8",
		"-object", "memory-backend-memfd,id=qnuma-ram1,size=512M,hugetlb=on,hugetlbsize=2M,host-nodes=1,policy=preferred",
		"-numa", "node,nodeid=0,memdev=qnuma-ram0", "-numa", "node,nodeid=1,memdev=qnuma-ram1", "-machine", "memory-backend=qnuma-ram0"},
	{bin, "-mem-path", "/dev/hugepages", "-mem-prealloc", "-m", "1024", "-numa", "node,mem=512", "-numa", "node,mem=512M,cpus=1"},
	{bin, "-qmp", "unix:/tmp/q.sock,server=on,wait=off", "-qmp", "unix:/tmp/w.sock,server", "-monitor", "stdio", "-serial", "tcp::4444,server,nowait",
		"-chardev", "socket,id=c0,path=/tmp/c0,server=on", "-chardev", "socket,id=c1,path=/tmp/c1,server=on,wait=off", "-mon", "c1,mode=control,pretty=on"},
	{bin, "-append", "-smp 8 -m 4G", "-name", "-S", "-kernel", "vmlinuz", "-initrd", "-numa", "disk.img", "-", "--nographic"},
	{bin, "-name", "a,,b,debug-threads=off", "-device", "pc-dimm,id=d0,memdev=m1,node=1", "-device", "virtio-mem-pci,id=vm0,memdev=m2,node=0,requested-size=0",
		"-device", "virtio-net-pci,netdev=n0", "-object", "iothread,id=io0", "-object", "qom-type=memory-backend-file,id=m1,mem-path=/dev/shm/a,,b,size=1G",
		"-M", "q35,accel=kvm:tcg", "-accel", "tcg,thread=multi", "-enable-kvm"},
	{bin, "-daemonize", "-readconfig", "/etc/vm.cfg", "-smp", "sockets=2,cores=4", "-m", "slots=2,maxmem=4G", "-m", "1G"},
}

// Parse keeps every argument as written, in order.
func TestParseRendersVerbatim(t *testing.T) {
	for _, argv := range seeds {
		c, err := Parse(argv)
		if err != nil {
			t.Fatalf("Parse(%q): %v", argv, err)
		}
		if got := c.Argv(); !slices.Equal(got, argv) {
			t.Errorf("Parse(%q).Argv()\n = %q", argv, got)
		}
		again, err := Parse(c.Argv())
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Errorf("Parse(Argv()) = %+v, %v; want %+v", again, err, c)
		}
	}
}

// Each option as written reads into its typed value.
func TestParseOptions(t *testing.T) {
	tests := []struct {
		opt, value string
		want       Option
	}{
		{"smp", "4", SMP{CPUs: 4}},
		{"smp", "cpus=4,maxcpus=8,sockets=2,dies=1,clusters=1,cores=2,threads=2", SMP{CPUs: 4, MaxCPUs: 8, Sockets: 2, Dies: 1, Clusters: 1, Cores: 2, Threads: 2}},
		{"smp", "sockets=2,cores=4", SMP{Sockets: 2, Cores: 4}},
		{"smp", "4,", SMP{CPUs: 4}},
		{"chardev", "pty,id=p,", Chardev{Backend: "pty", ID: "p"}},
		{"m", "2G", Memory{Size: 2 << 30}},
		{"m", "512", Memory{Size: 512 << 20}},
		{"m", "size=4194304k,slots=16,maxmem=16777216k", Memory{Size: 4 << 30, Slots: 16, MaxMem: 16 << 30}},
		{"m", "slots=2,maxmem=4G", Memory{Slots: 2, MaxMem: 4 << 30}},
		{"numa", "node", NumaNode{}},
		{"numa", "node,nodeid=1,cpus=2-3,cpus=6-7,memdev=ram-node1", NumaNode{NodeID: ptr(1), CPUs: cpuset.New(2, 3, 6, 7), HasCPUs: true, Memdev: "ram-node1"}},
		{"numa", "type=node,mem=512,initiator=0", NumaNode{Mem: 512 << 20, HasMem: true, Initiator: ptr(0)}},
		{"numa", "node,mem=0", NumaNode{HasMem: true}},
		{"numa", "cpu,node-id=1,socket-id=0,die-id=0,core-id=1,thread-id=0", NumaCPU{NodeID: ptr(1), SocketID: ptr(0), DieID: ptr(0), CoreID: ptr(1), ThreadID: ptr(0)}},
		{"numa", "dist,src=0,dst=1,val=21", NumaDist{Src: 0, Dst: 1, Val: 21}},
		{"numa", "hmat-lb,initiator=0,target=1,hierarchy=memory,data-type=access-latency,latency=10", NumaHMATLB{Target: 1, Hierarchy: "memory", DataType: "access-latency", Latency: ptr[uint64](10)}},
		{"numa", "hmat-lb,initiator=0,target=0,hierarchy=first-level,data-type=access-bandwidth,bandwidth=200M", NumaHMATLB{Hierarchy: "first-level", DataType: "access-bandwidth", Bandwidth: 200 << 20}},
		{"numa", "hmat-cache,node-id=1,size=10K,level=1,associativity=direct,policy=write-back,line=8", NumaHMATCache{NodeID: 1, Size: 10 << 10, Level: 1, Associativity: "direct", Policy: "write-back", Line: 8}},
		{"object", "memory-backend-ram,id=m0,size=1G,host-nodes=0-1,host-nodes=3,policy=bind,prealloc=on,prealloc-threads=4,prealloc-context=tc,merge=off",
			Backend{Type: "ram", ID: "m0", Size: 1 << 30, HostNodes: cpuset.New(0, 1, 3), HasHostNodes: true, Policy: "bind", Prealloc: ptr(true), PreallocThreads: ptr(4), PreallocContext: "tc", Other: []Prop{{"merge", "off"}}}},
		{"object", `{"qom-type":"memory-backend-memfd","id":"m0","size":134217728,"share":true}`, Backend{JSON: true, Type: "memfd", ID: "m0", Size: 128 << 20, Share: ptr(true)}},
		{"object", `{"qom-type":"memory-backend-file","id":"f","mem-path":"/dev/hugepages","size":"2G","host-nodes":[2,0],"policy":"preferred","discard-data":true}`,
			Backend{JSON: true, Type: "file", ID: "f", MemPath: "/dev/hugepages", Size: 2 << 30, HostNodes: cpuset.New(0, 2), HasHostNodes: true, Policy: "preferred", Other: []Prop{{"discard-data", "true"}}}},
		{"object", "qom-type=memory-backend-memfd,id=h,size=1G,hugetlb=yes,hugetlbsize=2M,share=off", Backend{Type: "memfd", ID: "h", Size: 1 << 30, HugeTLB: ptr(true), HugeTLBSize: 2 << 20, Share: ptr(false)}},
		{"object", "memory-backend-file,id=m1,mem-path=/dev/shm/a,,b,size=1G", Backend{Type: "file", ID: "m1", MemPath: "/dev/shm/a,b", Size: 1 << 30}},
		{"object", "thread-context,id=tc,node-affinity=1", ThreadContext{ID: "tc", NodeAffinity: cpuset.New(1), HasNodes: true}},
		{"object", `{"qom-type":"thread-context","id":"tc","cpu-affinity":[0,1,2]}`, ThreadContext{JSON: true, ID: "tc", CPUAffinity: cpuset.New(0, 1, 2), HasCPUs: true}},
		{"object", "iothread,id=io0", nil},
		{"object", `{"qom-type":"secret","id":"s0","data":"x"}`, nil},
		{"machine", "pc-q35-7.2,usb=off,memory-backend=pc.ram,hmat=on", Machine{Type: "pc-q35-7.2", MemoryBackend: "pc.ram", HMAT: ptr(true), Other: []Prop{{"usb", "off"}}}},
		{"M", "q35,accel=kvm:tcg", Machine{Type: "q35", Accel: "kvm:tcg"}},
		{"machine", "memory-backend=m0", Machine{MemoryBackend: "m0"}},
		{"accel", "tcg,thread=multi", Accel{Type: "tcg", Other: []Prop{{"thread", "multi"}}}},
		{"device", "pc-dimm,id=d0,memdev=m1,node=1", MemoryDevice{Driver: "pc-dimm", ID: "d0", Memdev: "m1", Node: ptr(1)}},
		{"device", `{"driver":"virtio-mem-pci","node":1,"memdev":"mv0","id":"vm0","requested-size":0}`, MemoryDevice{JSON: true, Driver: "virtio-mem-pci", Node: ptr(1), Memdev: "mv0", ID: "vm0", Other: []Prop{{"requested-size", "0"}}}},
		{"device", "virtio-net-pci,netdev=n0", nil},
		{"name", "guest=vm1,debug-threads=on", Name{Guest: "vm1", DebugThreads: ptr(true)}},
		{"name", "a,,b,process=qa", Name{Guest: "a,b", Process: "qa"}},
		{"chardev", "socket,id=c0,path=/tmp/c0,server=on", Chardev{Backend: "socket", ID: "c0", Path: "/tmp/c0", Server: ptr(true)}},
		{"chardev", "socket,id=c1,path=/tmp/c1,server,nowait,logfile=/tmp/l", Chardev{Backend: "socket", ID: "c1", Path: "/tmp/c1", Server: ptr(true), Wait: ptr(false), Other: []Prop{{"logfile", "/tmp/l"}}}},
		{"mon", "c1,mode=control,pretty=on", Mon{Chardev: "c1", Mode: "control", Pretty: ptr(true)}},
		{"qmp", "unix:/tmp/q.sock,server=on,wait=off", CharSpec{Option: "qmp", Kind: "unix", Target: "/tmp/q.sock", HasTarget: true, Server: ptr(true), Wait: ptr(false)}},
		{"serial", "tcp::4444,server", CharSpec{Option: "serial", Kind: "tcp", Target: ":4444", HasTarget: true, Server: ptr(true)}},
		{"monitor", "stdio", CharSpec{Option: "monitor", Kind: "stdio"}},
		{"kernel", "vmlinuz", nil},
	}
	for _, tc := range tests {
		t.Run(tc.opt+" "+tc.value, func(t *testing.T) {
			c, err := Parse([]string{bin, "-" + tc.opt, tc.value})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Args[0].Opt; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("-%s %s\n got %#v\nwant %#v", tc.opt, tc.value, got, tc.want)
			}
		})
	}
}

// A typed value renders to an argument that parses back to it, in both
// forms where QEMU has both.
func TestRenderRoundTrip(t *testing.T) {
	opts := []Option{
		SMP{CPUs: 4}, SMP{CPUs: 4, MaxCPUs: 8, Sockets: 2, Dies: 1, Clusters: 1, Cores: 2, Threads: 2}, SMP{Sockets: 2, Threads: 2},
		Memory{Size: 2 << 30}, Memory{Size: 1<<30 + 4096, Slots: 4, MaxMem: 8 << 30},
		NumaNode{}, NumaNode{NodeID: ptr(3), CPUs: cpuset.New(0, 1, 2, 8, 10, 11), HasCPUs: true, Memdev: "m,3"},
		NumaNode{NodeID: ptr(0), Mem: 0, HasMem: true, Initiator: ptr(1)},
		NumaCPU{NodeID: ptr(0), SocketID: ptr(1), DieID: ptr(0), ClusterID: ptr(0), CoreID: ptr(2), ThreadID: ptr(1)},
		NumaDist{Src: 1, Dst: 0, Val: 31},
		NumaHMATLB{Initiator: 0, Target: 2, Hierarchy: "memory", DataType: "read-latency", Latency: ptr[uint64](0)},
		NumaHMATLB{Initiator: 1, Target: 2, Hierarchy: "memory", DataType: "write-bandwidth", Bandwidth: 5 << 30},
		NumaHMATCache{NodeID: 2, Size: 1 << 20, Level: 2, Associativity: "complex", Policy: "write-through", Line: 64},
		Machine{Type: "q35", MemoryBackend: "m0", HMAT: ptr(false), Accel: "kvm", Other: []Prop{{"usb", "off"}, {"kernel-irqchip", "split"}}},
		Accel{Type: "kvm", Other: []Prop{{"dirty-ring-size", "4096"}}},
		Name{Guest: "web,1", Process: "qemu-web", DebugThreads: ptr(true)},
		Chardev{Backend: "socket", ID: "c", Path: "/run/a,b.sock", Server: ptr(true), Wait: ptr(false), Other: []Prop{{"telnet", "off"}}},
		Mon{Chardev: "c", ID: "mon0", Mode: "control", Pretty: ptr(false)},
		CharSpec{Option: "qmp", Kind: "unix", Target: "/tmp/q", HasTarget: true, Server: ptr(true), Wait: ptr(false)},
		CharSpec{Option: "monitor", Kind: "stdio"},
		CharSpec{Option: "serial", Kind: "tcp", Target: "", HasTarget: true},
	}
	for _, json := range []bool{false, true} {
		opts = append(opts,
			Backend{JSON: json, Type: "ram", ID: "m0", Size: 1 << 30, HostNodes: cpuset.New(0, 1, 3), HasHostNodes: true, Policy: "bind",
				Prealloc: ptr(true), PreallocThreads: ptr(2), PreallocContext: "tc0"},
			Backend{JSON: json, Type: "memfd", ID: "m1", Size: 3 << 20, Share: ptr(true), HugeTLB: ptr(true), HugeTLBSize: 2 << 20},
			Backend{JSON: json, Type: "file", ID: "m2", Size: 4096, MemPath: "/dev/shm/x,y", Share: ptr(false), Policy: "default"},
			ThreadContext{JSON: json, ID: "tc0", NodeAffinity: cpuset.New(1, 2), HasNodes: true},
			ThreadContext{JSON: json, ID: "tc1", CPUAffinity: cpuset.New(0, 4, 5, 6), HasCPUs: true},
			MemoryDevice{JSON: json, Driver: "virtio-mem-pci", ID: "vm0", Memdev: "m3", Node: ptr(2)},
			MemoryDevice{JSON: json, Driver: "pc-dimm", ID: "d0", Memdev: "m4"},
		)
	}
	opts = append(opts, Backend{JSON: true, Type: "ram", ID: "m9", Other: []Prop{{"x-use-canonical-path-for-ramblock-id", "false"}, {"host-nodes-extra", `[1,{"a":2}]`}}})
	for _, o := range opts {
		a := o.Arg()
		c, err := Parse(append([]string{bin}, a.Strings()...))
		if err != nil {
			t.Errorf("%#v renders %q, which does not parse: %v", o, a.Strings(), err)
			continue
		}
		if got := c.Args[0].Opt; !reflect.DeepEqual(got, o) {
			t.Errorf("%#v renders %q, which parses to %#v", o, a.Strings(), got)
		}
		if !reflect.DeepEqual(c.Args[0], a) {
			t.Errorf("Arg() = %#v, parsed %#v", a, c.Args[0])
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		argv    []string
		wantErr string
	}{
		{nil, "no binary"},
		{[]string{""}, "no binary"},
		{[]string{bin, "-smp=2"}, "-smp=2: qemu takes the value as the next argument (-smp 2)"},
		{[]string{bin, "-m", "64M", "-kernel"}, "-kernel needs a value"},
		{[]string{bin, "--smp"}, "--smp needs a value"},
		{[]string{bin, "-m", "1G", "-some-new-flag"}, "-some-new-flag is last and qnuma does not know whether it takes a value"},
		{[]string{bin, "-smp", "four"}, `-smp four: cpus="four" is not a positive count`},
		{[]string{bin, "-smp", "0"}, `cpus="0" is not a positive count`},
		{[]string{bin, "-smp", "4,cores=-2"}, `cores="-2" is not a positive count`},
		{[]string{bin, "-smp", "4,books=2"}, `unknown key "books"`},
		{[]string{bin, "-smp", "4,2"}, `item "2" is not key=value`},
		{[]string{bin, "-smp", "=4"}, `item "=4" has no key`},
		{[]string{bin, "-smp", "4,,"}, `cpus="4," is not a positive count`},
		{[]string{bin, "-smp", "4,,,sockets=1,"}, `cpus="4," is not a positive count`},
		{[]string{bin, "-smp", "8,maxcpus=4"}, "cpus=8 is above maxcpus=4"},
		{[]string{bin, "-m", "lots"}, `-m lots: parse size "lots"`},
		{[]string{bin, "-m", "0"}, "-m 0: size is zero"},
		{[]string{bin, "-m", "1.5Q"}, "unknown unit"},
		{[]string{bin, "-m", "1G,dimms=2"}, `unknown key "dimms"`},
		{[]string{bin, "-m", "1G,maxmem=x"}, "maxmem: parse size"},
		{[]string{bin, "-m", "1G,slots=-1"}, `slots="-1" is not a count`},
		{[]string{bin, "-m", "1G,maxmem=0"}, "maxmem is zero"},
		{[]string{bin, "-m", "slots=0"}, "no size, slots or maxmem"},
		{[]string{bin, "-numa", "nodes"}, `type "nodes": want node, cpu, dist, hmat-lb or hmat-cache`},
		{[]string{bin, "-numa", "node,cpus=3-1"}, "runs backwards"},
		{[]string{bin, "-numa", "node,cpus=0-4294967297"}, "out of range"},
		{[]string{bin, "-numa", "node,cpus="}, "cpus is empty"},
		{[]string{bin, "-numa", "node,nodeid=x"}, `"x" is not a cpu or node id`},
		{[]string{bin, "-numa", "node,memdev=m0,mem=1G"}, "memdev and mem together"},
		{[]string{bin, "-numa", "node,mem=1Q"}, "mem: parse size"},
		{[]string{bin, "-numa", "node,size=1G"}, `unknown key "size"`},
		{[]string{bin, "-numa", "cpu,socket-id=0"}, "no node-id"},
		{[]string{bin, "-numa", "cpu,node-id=0,core-id=-1"}, "out of range"},
		{[]string{bin, "-numa", "dist,src=0,val=20"}, "no dst"},
		{[]string{bin, "-numa", "dist,src=0,dst=1"}, "no val"},
		{[]string{bin, "-numa", "dist,src=0,dst=1,val=x"}, `val="x" is not a count`},
		{[]string{bin, "-numa", "hmat-lb,initiator=0,target=0,hierarchy=memory,data-type=access-latency"}, "give latency or bandwidth"},
		{[]string{bin, "-numa", "hmat-lb,initiator=0,target=0,hierarchy=memory"}, "give hierarchy and data-type"},
		{[]string{bin, "-numa", "hmat-lb,initiator=0,target=0,hierarchy=memory,data-type=access-latency,latency=-1"}, "not a number of nanoseconds"},
		{[]string{bin, "-numa", "hmat-cache,node-id=0,level=1"}, "no size"},
		{[]string{bin, "-numa", "hmat-cache,node-id=0,size=1K"}, "no level"},
		{[]string{bin, "-object", "memory-backend-ram,size=1G"}, "memory backend without id"},
		{[]string{bin, "-object", "memory-backend-ram,id=m,size=1Q"}, "size: parse size"},
		{[]string{bin, "-object", "memory-backend-ram,id=m,size=1G,policy=strict"}, `policy "strict"`},
		{[]string{bin, "-object", "memory-backend-ram,id=m,size=1G,share=maybe"}, "share=maybe: want on or off"},
		{[]string{bin, "-object", "memory-backend-ram,id=m,host-nodes=0-99999"}, "out of range"},
		{[]string{bin, "-object", "memory-backend-ram,id=m,prealloc-threads=-1"}, "is not a count"},
		{[]string{bin, "-object", "memory-backend-ram,,id=m"}, "no qom-type"},
		{[]string{bin, "-object", `{"qom-type":`}, "json"},
		{[]string{bin, "-object", `{"qom-type":"memory-backend-ram","id":"m"} x`}, "text after the object"},
		{[]string{bin, "-object", `{"qom-type":"memory-backend-ram","id":"m","id":"n"}`}, `duplicate key "id"`},
		{[]string{bin, "-object", `{"qom-type":"memory-backend-ram","id":7}`}, "id=7: want a string"},
		{[]string{bin, "-object", `{"qom-type":"memory-backend-ram","id":"m","size":-1}`}, "negative"},
		{[]string{bin, "-object", `{"qom-type":"memory-backend-ram","id":"m","host-nodes":0}`}, "want an array of ids"},
		{[]string{bin, "-object", `{"qom-type":"memory-backend-ram","id":"m","host-nodes":[1.5]}`}, "not a cpu or node id"},
		{[]string{bin, "-object", `{"qom-type":"memory-backend-ram","id":"m","share":"maybe"}`}, "want on or off"},
		{[]string{bin, "-object", "id=x"}, "no qom-type"},
		{[]string{bin, "-object", "thread-context,id=t,node-affinity=0,cpus=1"}, `unknown key "cpus"`},
		{[]string{bin, "-object", "thread-context,node-affinity=0"}, "thread-context without id"},
		{[]string{bin, "-machine", "q35,hmat=sure"}, "hmat=sure: want on or off"},
		{[]string{bin, "-machine", "q35,=x"}, "has no key"},
		{[]string{bin, "-device", "pc-dimm,id=d,node=x"}, "not a cpu or node id"},
		{[]string{bin, "-device", `{"driver":"virtio-mem-pci","node":"x"`}, "json"},
		{[]string{bin, "-name", "vm,debug-threads=maybe"}, "debug-threads=maybe: want on or off"},
		{[]string{bin, "-chardev", "socket,id=c,server=2"}, "server=2: want on or off"},
		{[]string{bin, "-mon", "c,mode=control,colour=on"}, `unknown key "colour"`},
		{[]string{bin, "-qmp", "unix:/q,server=on,wait=perhaps"}, "wait=perhaps: want on or off"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.argv, " "), func(t *testing.T) {
			c, err := Parse(tc.argv)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse(%q) = %+v, %v; want error containing %q", tc.argv, c, err, tc.wantErr)
			}
			if c != nil {
				t.Errorf("Parse returned %+v with its error", c)
			}
		})
	}
}

func TestQueries(t *testing.T) {
	c, err := Parse(seeds[len(seeds)-1])
	if err != nil {
		t.Fatal(err)
	}
	if s, last, ok := c.SMP(); !ok || s != (SMP{Sockets: 2, Cores: 4}) || last != "sockets=2,cores=4" {
		t.Errorf("SMP() = %+v, %q, %v", s, last, ok)
	}
	if m, last, ok := c.Memory(); !ok || m != (Memory{Size: 1 << 30, Slots: 2, MaxMem: 4 << 30}) || last != "1G" {
		t.Errorf("Memory() = %+v, %q, %v: want the two -m merged", m, last, ok)
	}
	if !c.Has("daemonize") || !c.Has("readconfig") || c.Has("S") {
		t.Errorf("Has: daemonize %v, readconfig %v, S %v", c.Has("daemonize"), c.Has("readconfig"), c.Has("S"))
	}

	c, err = Parse([]string{bin, "-M", "pc,accel=tcg", "-machine", "memory-backend=m0,usb=off", "-machine", "hmat=on"})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := c.Machine(); !ok || m.Type != "pc" || m.MemoryBackend != "m0" || m.HMAT == nil || !*m.HMAT || m.Accel != "tcg" || len(m.Other) != 1 {
		t.Errorf("Machine() = %+v, %v", m, ok)
	}

	c, err = Parse(seeds[1])
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range c.Backends() {
		ids = append(ids, b.ID)
	}
	if want := []string{"ram-node0", "ram-node1", "memdimm0", "memvirtiomem0"}; !slices.Equal(ids, want) {
		t.Errorf("Backends() ids = %q, want %q", ids, want)
	}
	if n := c.NumaNodes(); len(n) != 2 || !n[1].CPUs.Equals(cpuset.New(2, 3, 6, 7)) {
		t.Errorf("NumaNodes() = %+v", n)
	}
	if n, d := c.NumaCPUs(), c.NumaDists(); len(n) != 1 || *n[0].NodeID != 0 || len(d) != 1 || d[0] != (NumaDist{Src: 0, Dst: 1, Val: 21}) {
		t.Errorf("NumaCPUs() = %+v, NumaDists() = %+v", n, d)
	}
	if d := c.MemoryDevices(); len(d) != 2 || *d[0].Node != 0 || *d[1].Node != 1 || d[1].Driver != "virtio-mem-pci" {
		t.Errorf("MemoryDevices() = %+v", d)
	}
	if tc := c.ThreadContexts(); len(tc) != 1 || !tc[0].NodeAffinity.Equals(cpuset.New(0)) {
		t.Errorf("ThreadContexts() = %+v", tc)
	}
	if n, ok := c.Name(); !ok || n.Guest != "vm1" || n.DebugThreads == nil || !*n.DebugThreads {
		t.Errorf("Name() = %+v, %v", n, ok)
	}
}

// QEMU waits for a client on a server socket unless wait=off: those are
// listed as written; client sockets, wait=off and non-sockets are not.
func TestWaitingSockets(t *testing.T) {
	c, err := Parse([]string{bin,
		"-qmp", "unix:/tmp/q.sock,server=on,wait=off",
		"-qmp", "unix:/tmp/w.sock,server",
		"-qmp-pretty", "tcp:127.0.0.1:4444,server=on,wait=on",
		"-monitor", "stdio", "-monitor", "unix:/tmp/client.sock",
		"-serial", "telnet::5555,server,nowait",
		"-serial", "tcp::6666,server=on",
		"-chardev", "socket,id=c0,path=/tmp/c0,server=on",
		"-chardev", "socket,id=c1,path=/tmp/c1,server=on,wait=off",
		"-chardev", "socket,id=c2,path=/tmp/c2",
		"-chardev", "socket,id=c3,host=127.0.0.1,port=7777,server,wait=yes",
		"-chardev", "file,id=f,path=/tmp/f,server=on",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-qmp unix:/tmp/w.sock,server",
		"-qmp-pretty tcp:127.0.0.1:4444,server=on,wait=on",
		"-serial tcp::6666,server=on",
		"-chardev socket,id=c0,path=/tmp/c0,server=on",
		"-chardev socket,id=c3,host=127.0.0.1,port=7777,server,wait=yes",
	}
	if got := c.WaitingSockets(); !slices.Equal(got, want) {
		t.Errorf("WaitingSockets()\n got %q\nwant %q", got, want)
	}
}

func TestIsQMP(t *testing.T) {
	c, err := Parse([]string{bin, "-qmp", "unix:/q,server=on,wait=off", "-qmp-pretty", "stdio", "-mon", "c,mode=control", "-mon", "c2", "-monitor", "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, a := range c.Args {
		got = append(got, IsQMP(a))
	}
	if want := []bool{true, true, true, false, false}; !slices.Equal(got, want) {
		t.Errorf("IsQMP = %v, want %v", got, want)
	}
}

// A running QEMU accepted its command line: an option qnuma does not know
// at its end took no value.
func TestParseAccepted(t *testing.T) {
	argv := []string{bin, "-m", "1G", "-some-new-flag"}
	if _, err := Parse(argv); err == nil {
		t.Fatalf("Parse(%q) accepted an unknown last option", argv)
	}
	c, err := ParseAccepted(argv)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Args[len(c.Args)-1]; a.Name != "some-new-flag" || a.HasValue || !slices.Equal(c.Argv(), argv) {
		t.Errorf("ParseAccepted(%q): last %+v, argv %q", argv, a, c.Argv())
	}
	if _, err := ParseAccepted([]string{bin, "-m", "64M", "-kernel"}); err == nil || !strings.Contains(err.Error(), "-kernel needs a value") {
		t.Errorf("ParseAccepted with a known option missing its value: %v", err)
	}
}

// TestRenderImpliedKey: the implied first key is written bare, as people
// and libvirt write it; the JSON form keeps every key; a value that would
// read otherwise bare keeps its key.
func TestRenderImpliedKey(t *testing.T) {
	for _, tc := range []struct {
		o    Option
		want []string
	}{
		{Backend{Type: "ram", ID: "m0", Size: 1 << 30, HostNodes: cpuset.New(0), HasHostNodes: true, Policy: "bind"},
			[]string{"-object", "memory-backend-ram,id=m0,size=1G,host-nodes=0,policy=bind"}},
		{Backend{JSON: true, Type: "ram", ID: "m0", Size: 1 << 30},
			[]string{"-object", `{"qom-type":"memory-backend-ram","id":"m0","size":1073741824}`}},
		{ThreadContext{ID: "tc0", NodeAffinity: cpuset.New(1), HasNodes: true}, []string{"-object", "thread-context,id=tc0,node-affinity=1"}},
		{NumaNode{NodeID: ptr(0), Memdev: "m0"}, []string{"-numa", "node,nodeid=0,memdev=m0"}},
		{NumaCPU{NodeID: ptr(1), SocketID: ptr(1)}, []string{"-numa", "cpu,node-id=1,socket-id=1"}},
		{NumaHMATCache{NodeID: 0, Size: 1 << 20, Level: 1, Associativity: "direct", Policy: "write-back", Line: 8},
			[]string{"-numa", "hmat-cache,node-id=0,size=1M,level=1,associativity=direct,policy=write-back,line=8"}},
		{SMP{CPUs: 4, Sockets: 2}, []string{"-smp", "4,sockets=2"}},
		{SMP{CPUs: 3, Sockets: 2, Cores: 2, Threads: 1, MaxCPUs: 4}, []string{"-smp", "3,sockets=2,cores=2,threads=1,maxcpus=4"}},
		{SMP{Sockets: 2}, []string{"-smp", "sockets=2"}},
		{Memory{Size: 2 << 30}, []string{"-m", "2G"}},
		{Memory{Size: 2 << 30, Slots: 2, MaxMem: 8 << 30}, []string{"-m", "2G,slots=2,maxmem=8G"}},
		{Memory{Slots: 2, MaxMem: 8 << 30}, []string{"-m", "slots=2,maxmem=8G"}},
		{Machine{MemoryBackend: "m0"}, []string{"-machine", "memory-backend=m0"}},
		{Machine{Type: "q35", Accel: "kvm"}, []string{"-machine", "q35,accel=kvm"}},
		{Machine{Type: "a=b"}, []string{"-machine", "type=a=b"}},
		{Chardev{Backend: "socket", ID: "c", Path: "/run/q"}, []string{"-chardev", "socket,id=c,path=/run/q"}},
		{Name{Guest: "{web}"}, []string{"-name", "guest={web}"}},
		{MemoryDevice{Driver: "pc-dimm", ID: "d0", Memdev: "m4", Node: ptr(1)}, []string{"-device", "pc-dimm,id=d0,memdev=m4,node=1"}},
	} {
		a := tc.o.Arg()
		if got := a.Strings(); !slices.Equal(got, tc.want) {
			t.Errorf("%#v renders %q, want %q", tc.o, got, tc.want)
		}
		c, err := Parse(append([]string{bin}, a.Strings()...))
		if err != nil || !reflect.DeepEqual(c.Args[0].Opt, tc.o) {
			t.Errorf("%q parses to %#v, %v; want %#v", a.Strings(), c.Args[0].Opt, err, tc.o)
		}
	}
}
