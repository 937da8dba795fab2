package plan

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemutest"
)

func TestParseQEMUArgv(t *testing.T) {
	const bin = "/usr/bin/qemu-system-x86_64"
	tests := []struct {
		name    string
		argv    []string
		want    QEMUArgv // Binary and Args are filled in from argv
		wantErr string
	}{
		{
			name: "plain smp and m in MiB",
			argv: []string{bin, "-smp", "4", "-m", "512"},
			want: QEMUArgv{IsSystemEmulator: true, HasSMP: true, SMP: memobj.SMP{CPUs: 4}, SMPArg: "4", MemoryBytes: 512 * mib, MemoryArg: "512"},
		},
		{
			name: "full smp, suffixed m",
			argv: []string{bin, "-smp", "cpus=4,sockets=2,cores=2,threads=1,maxcpus=8", "-m", "2G"},
			want: QEMUArgv{IsSystemEmulator: true, HasSMP: true, SMP: memobj.SMP{CPUs: 4, Sockets: 2, Cores: 2, Threads: 1, MaxCPUs: 8},
				SMPArg: "cpus=4,sockets=2,cores=2,threads=1,maxcpus=8", MemoryBytes: 2 * gib, MemoryArg: "2G"},
		},
		{
			name: "double dashes, hotplug memory",
			argv: []string{"qemu-kvm", "--smp", "4,sockets=2", "--m", "size=2G,slots=4,maxmem=8G"},
			want: QEMUArgv{IsSystemEmulator: true, HasSMP: true, SMP: memobj.SMP{CPUs: 4, Sockets: 2}, SMPArg: "4,sockets=2",
				MemoryBytes: 2 * gib, MemoryArg: "size=2G,slots=4,maxmem=8G", MaxMemoryBytes: 8 * gib, MemorySlots: 4},
		},
		{
			name: "repeated options merge, later wins",
			argv: []string{bin, "-smp", "2", "-smp", "sockets=2,cores=1,threads=1", "-m", "1G", "-m", "1536"},
			want: QEMUArgv{IsSystemEmulator: true, HasSMP: true, SMP: memobj.SMP{CPUs: 2, Sockets: 2, Cores: 1, Threads: 1}, SMPArg: "sockets=2,cores=1,threads=1",
				MemoryBytes: 1536 * mib, MemoryArg: "1536"},
		},
		{
			name: "topology without cpus",
			argv: []string{bin, "-smp", "sockets=2,cores=4"},
			want: QEMUArgv{IsSystemEmulator: true, HasSMP: true, SMP: memobj.SMP{Sockets: 2, Cores: 4}, SMPArg: "sockets=2,cores=4"},
		},
		{
			name: "flags, numa, backends, monitors",
			argv: []string{bin, "-S", "-nodefaults", "-name", "guest=vm1,debug-threads=on", "-numa", "node,memdev=m0",
				"-object", "memory-backend-ram,id=m0,size=1G", "-qmp", "unix:/tmp/q.sock,server=on,wait=off", "-enable-kvm", "disk.img"},
			want: QEMUArgv{IsSystemEmulator: true, Paused: true, HasName: true, Name: "vm1", DebugThreads: true, HasNUMA: true,
				HasMemoryBackend: true, Backends: []string{"m0"}, HasQMP: true, HasMonitor: true, Accel: "kvm"},
		},
		{
			name: "values that look like options are values",
			argv: []string{bin, "-append", "-smp 8 -m 4G", "-name", "-S", "-kernel", "vmlinuz", "-initrd", "-numa"},
			want: QEMUArgv{IsSystemEmulator: true, HasName: true, Name: "-S"},
		},
		{
			name: "plain name, mon in control mode, accel",
			argv: []string{bin, "-name", "web", "-chardev", "socket,id=c,path=/tmp/m,server=on,wait=off", "-mon", "chardev=c,mode=control", "-accel", "tcg,thread=multi", "-accel", "kvm"},
			want: QEMUArgv{IsSystemEmulator: true, HasName: true, Name: "web", HasQMP: true, HasMonitor: true, Accel: "tcg"},
		},
		{
			name: "hmp monitor is not qmp; machine accel",
			argv: []string{bin, "-monitor", "stdio", "-machine", "q35,accel=kvm:tcg", "-object", "iothread,id=io0"},
			want: QEMUArgv{IsSystemEmulator: true, HasMonitor: true, Accel: "kvm:tcg"},
		},
		{
			name: "comma escaped in a value",
			argv: []string{bin, "-name", "a,,b,debug-threads=off"},
			want: QEMUArgv{IsSystemEmulator: true, HasName: true, Name: "a,b"},
		},
		{
			name: "not a system emulator",
			argv: []string{"qemu-x86_64", "./prog"},
			want: QEMUArgv{},
		},
		{
			name: "not a system emulator: its options are not read",
			argv: []string{"ls", "-l", "-smp=2"},
			want: QEMUArgv{},
		},
		{
			name: "libvirt's JSON backend is a backend",
			argv: []string{bin, "-object", `{"qom-type":"memory-backend-memfd","id":"m0","size":134217728,"share":true}`, "-machine", "memory-backend=m0"},
			want: QEMUArgv{IsSystemEmulator: true, HasMemoryBackend: true, Backends: []string{"m0"}},
		},
		{
			name: "mem-path, mem-prealloc",
			argv: []string{bin, "-mem-path", "/dev/hugepages", "-mem-prealloc", "-m", "1G"},
			want: QEMUArgv{IsSystemEmulator: true, MemPath: "/dev/hugepages", MemPrealloc: true, MemoryBytes: gib, MemoryArg: "1G"},
		},
		{
			name: "sockets that make qemu wait for a client",
			argv: []string{bin, "-qmp", "unix:/tmp/q.sock,server=on", "-qmp", "unix:/tmp/n.sock,server=on,wait=off",
				"-chardev", "socket,id=c,path=/tmp/c,server", "-chardev", "socket,id=d,path=/tmp/d,server=on,wait=off", "-chardev", "socket,id=e,path=/tmp/e"},
			want: QEMUArgv{IsSystemEmulator: true, HasQMP: true, HasMonitor: true,
				WaitingSockets: []string{"-qmp unix:/tmp/q.sock,server=on", "-chardev socket,id=c,path=/tmp/c,server"}},
		},
		{name: "unknown last option without value", argv: []string{bin, "-m", "1G", "-some-new-flag"}, wantErr: "-some-new-flag is last and qnuma does not know whether it takes a value"},
		{name: "known last option without value", argv: []string{bin, "-m", "64M", "-kernel"}, wantErr: "-kernel needs a value"},
		{name: "daemonize", argv: []string{bin, "-m", "64M", "-daemonize"}, wantErr: "has -daemonize: qnuma pins qemu's threads after it starts and supervises it"},
		{name: "readconfig", argv: []string{bin, "-readconfig", "vm.cfg", "-m", "1G"}, wantErr: "has -readconfig vm.cfg: qnuma cannot see the -smp, -m, -numa and memory backends a config file may hold"},
		{name: "malformed JSON backend", argv: []string{bin, "-object", `{"qom-type":"memory-backend-ram","id":"m0","size":"lots"}`}, wantErr: `-object {"qom-type":"memory-backend-ram","id":"m0","size":"lots"}: size: parse size "lots"`},
		{name: "merged smp above max", argv: []string{bin, "-smp", "8", "-smp", "maxcpus=4"}, wantErr: "-smp maxcpus=4: cpus=8 is above maxcpus=4"},
		{name: "option=value", argv: []string{bin, "-smp=2"}, wantErr: "-smp=2: qemu takes the value as the next argument (-smp 2)"},
		{name: "double dash option=value", argv: []string{bin, "-name", "a", "--m=1G"}, wantErr: "--m=1G: qemu takes the value as the next argument (-m 1G)"},
		{name: "empty", argv: nil, wantErr: "no binary"},
		{name: "empty binary", argv: []string{""}, wantErr: "no binary"},
		{name: "smp without value", argv: []string{bin, "-smp"}, wantErr: "-smp needs a value"},
		{name: "m without value", argv: []string{bin, "--m"}, wantErr: "--m needs a value"},
		{name: "smp not a number", argv: []string{bin, "-smp", "four"}, wantErr: `-smp four: cpus="four" is not a positive count`},
		{name: "smp zero", argv: []string{bin, "-smp", "0"}, wantErr: `-smp 0: cpus="0" is not a positive count`},
		{name: "smp negative", argv: []string{bin, "-smp", "4,cores=-2"}, wantErr: `-smp 4,cores=-2: cores="-2"`},
		{name: "smp unknown key", argv: []string{bin, "-smp", "4,books=2"}, wantErr: `-smp 4,books=2: unknown key "books"`},
		{name: "smp bare item", argv: []string{bin, "-smp", "4,2"}, wantErr: `-smp 4,2: item "2" is not key=value`},
		{name: "smp empty key", argv: []string{bin, "-smp", "=4"}, wantErr: `-smp =4: item "=4" has no key`},
		{name: "smp above max", argv: []string{bin, "-smp", "8,maxcpus=4"}, wantErr: "cpus=8 is above maxcpus=4"},
		{name: "m garbage", argv: []string{bin, "-m", "lots"}, wantErr: `-m lots: parse size "lots"`},
		{name: "m zero", argv: []string{bin, "-m", "0"}, wantErr: "-m 0: size is zero"},
		{name: "m bad unit", argv: []string{bin, "-m", "1.5Q"}, wantErr: `-m 1.5Q: parse size "1.5Q": unknown unit`},
		{name: "m unknown key", argv: []string{bin, "-m", "1G,dimms=2"}, wantErr: `-m 1G,dimms=2: unknown key "dimms"`},
		{name: "m bad maxmem", argv: []string{bin, "-m", "1G,maxmem=x"}, wantErr: "-m 1G,maxmem=x: maxmem"},
		{name: "numa bad cpus", argv: []string{bin, "-numa", "node,cpus=0-4294967297"}, wantErr: "-numa node,cpus=0-4294967297: cpus: cpu list"},
		{name: "m bad slots", argv: []string{bin, "-m", "1G,slots=-1"}, wantErr: `slots="-1" is not a count`},
		{name: "m without size", argv: []string{bin, "-m", "slots=2,maxmem=4G"}, wantErr: "-m slots=2,maxmem=4G: no size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseQEMUArgv(tc.argv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseQEMUArgv(%q) = %+v, %v; want error containing %q", tc.argv, got, err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("ParseQEMUArgv returned %+v with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.Binary, want.Args = tc.argv[0], tc.argv[1:]
			g := *got
			if g.Cmdline == nil {
				t.Fatal("no Cmdline")
			}
			g.Cmdline = nil
			if !reflect.DeepEqual(g, want) {
				t.Errorf("ParseQEMUArgv(%q)\n got %+v\nwant %+v", tc.argv, g, want)
			}
		})
	}
}

// jsonBackend is a memory backend in the JSON form libvirt writes.
const jsonBackend = `{"qom-type":"memory-backend-memfd","id":"m0","size":134217728,"share":true}`

func TestMergeSpec(t *testing.T) {
	parse := func(args ...string) *QEMUArgv {
		q, err := ParseQEMUArgv(append([]string{"qemu-system-x86_64"}, args...))
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	tests := []struct {
		name    string
		spec    Spec
		flags   MergeFlags
		user    *QEMUArgv
		want    Spec
		wantErr string
	}{
		{name: "no user argv", spec: Spec{VCPUs: 2, MemoryBytes: gib}, user: nil, want: Spec{VCPUs: 2, MemoryBytes: gib}},
		{name: "user's smp and m serve as the spec", spec: Spec{Prealloc: true}, user: parse("-smp", "4", "-m", "2G"), want: Spec{VCPUs: 4, MemoryBytes: 2 * gib, Prealloc: true}},
		{name: "user's topology counts and is kept", user: parse("-smp", "sockets=2,cores=2,threads=2", "-m", "512"),
			want: Spec{VCPUs: 8, MemoryBytes: 512 * mib, Topology: &memobj.Topology{CPUs: 8, MaxCPUs: 8, Sockets: 2, Dies: 1, Clusters: 1, Cores: 2, Threads: 2}}},
		{name: "a count alone leaves the topology open", user: parse("-smp", "4", "-m", "512"), want: Spec{VCPUs: 4, MemoryBytes: 512 * mib}},
		{name: "a topology qemu refuses is refused", user: parse("-smp", "2,sockets=1,cores=1,threads=1"), wantErr: "-smp 2,sockets=1,cores=1,threads=1: sockets (1) * dies (1) * cores (1) * threads (1) = 1, not maxcpus 2"},
		{name: "flags fill what the user left out", spec: Spec{VCPUs: 8, MemoryBytes: 4 * gib}, flags: MergeFlags{VCPUs: true, Memory: true}, user: parse("-name", "x"), want: Spec{VCPUs: 8, MemoryBytes: 4 * gib}},
		{name: "flag and user agree", spec: Spec{VCPUs: 4, MemoryBytes: 2 * gib}, flags: MergeFlags{VCPUs: true, Memory: true}, user: parse("-smp", "4", "-m", "2048"), want: Spec{VCPUs: 4, MemoryBytes: 2 * gib}},
		{name: "vcpus conflict", spec: Spec{VCPUs: 8}, flags: MergeFlags{VCPUs: true}, user: parse("-smp", "4"), wantErr: "--vcpus 8 conflicts with -smp 4 in the qemu command line: give one"},
		{name: "memory conflict", spec: Spec{MemoryBytes: 4 * gib}, flags: MergeFlags{Memory: true}, user: parse("-m", "2048"), wantErr: "--memory 4G conflicts with -m 2048 in the qemu command line: give one"},
		{name: "unset flag never conflicts", spec: Spec{VCPUs: 8}, user: parse("-smp", "4"), want: Spec{VCPUs: 4}},
		{name: "user numa", spec: Spec{VCPUs: 2, MemoryBytes: gib}, user: parse("-numa", "node"), wantErr: "has its own -numa: pass --bind-only to let qnuma only bind and pin, or drop them"},
		{name: "user backends", user: parse("-object", "memory-backend-memfd,id=m,size=1G"), wantErr: "has its own memory backends (-object memory-backend-*): pass --bind-only"},
		{name: "user both", user: parse("-object", "memory-backend-ram,id=m,size=1G", "-numa", "node,memdev=m"), wantErr: "its own -numa and memory backends"},
		{name: "cpu hotplug is --max-vcpus", user: parse("-smp", "4,maxcpus=8"), want: Spec{VCPUs: 4, MaxVCPUs: 8}},
		{name: "memory hotplug is --max-memory", user: parse("-m", "1G,slots=2,maxmem=4G"), want: Spec{MemoryBytes: gib, MaxMemoryBytes: 4 * gib}},
		{name: "cpu hotplug in a topology", user: parse("-smp", "4,sockets=2,cores=4,maxcpus=8"), wantErr: "-smp 4,sockets=2,cores=4,maxcpus=8 asks for cpu hotplug (maxcpus=8) in a topology of its own"},
		{name: "cpu hotplug conflict", spec: Spec{MaxVCPUs: 6}, user: parse("-smp", "4,maxcpus=8"), wantErr: "--max-vcpus 6 conflicts with -smp 4,maxcpus=8"},
		{name: "memory hotplug conflict", spec: Spec{MaxMemoryBytes: 2 * gib}, user: parse("-m", "1G,maxmem=4G"), wantErr: "--max-memory 2G conflicts with -m 1G,maxmem=4G"},
		{name: "memory slots without maxmem", user: parse("-m", "1G,slots=2"), wantErr: "-m 1G,slots=2 asks for memory hotplug slots without maxmem="},
		{
			name: "bind only takes the user's numa and smp",
			spec: Spec{BindOnly: true}, user: parse("-smp", "4,maxcpus=8", "-m", "2G,slots=2,maxmem=8G", "-object", "memory-backend-ram,id=m,size=2G", "-numa", "node,memdev=m"),
			want: Spec{BindOnly: true, VCPUs: 4, MemoryBytes: 2 * gib,
				// No cell lists vCPUs: QEMU maps every socket to node 0.
				Cells:    []Cell{{ID: 0, VCPUs: []int{0, 1, 2, 3, 4, 5, 6, 7}, MemoryBytes: 2 * gib, Backend: "m"}},
				Topology: &memobj.Topology{CPUs: 4, MaxCPUs: 8, Sockets: 1, Dies: 1, Clusters: 1, Cores: 8, Threads: 1}},
		},
		{name: "user JSON backend", user: parse("-object", jsonBackend, "-machine", "memory-backend=m0"), wantErr: "has its own memory backends (-object memory-backend-*): pass --bind-only"},
		{name: "bind only keeps a JSON backend", spec: Spec{BindOnly: true}, user: parse("-m", "128M", "-object", jsonBackend, "-machine", "memory-backend=m0"), want: Spec{BindOnly: true, VCPUs: 1, MemoryBytes: 128 * mib}},
		{name: "user mem-path", user: parse("-mem-path", "/dev/hugepages", "-m", "1G"), wantErr: "has its own -mem-path: pass --bind-only"},
		{name: "user mem-prealloc preallocates qnuma's backends", user: parse("-mem-prealloc", "-m", "1G"), want: Spec{VCPUs: 0, MemoryBytes: gib, Prealloc: true}},
		{name: "bind only drops no prealloc", spec: Spec{BindOnly: true, Prealloc: true}, user: parse("-m", "1G"), wantErr: "--prealloc with --bind-only: qnuma renders no memory backend, so it has nothing to preallocate; add prealloc=on to your own memory backends, or -mem-prealloc"},
		{name: "bind only prealloc, a backend without it", spec: Spec{BindOnly: true, Prealloc: true},
			user: parse("-object", "memory-backend-ram,id=a,size=1G,prealloc=on", "-object", jsonBackend, "-numa", "node,memdev=a", "-numa", "node,memdev=m0"), wantErr: "--prealloc with --bind-only"},
		{name: "bind only prealloc without a command line", spec: Spec{BindOnly: true, Prealloc: true, VCPUs: 1, MemoryBytes: gib}, user: nil, wantErr: "--prealloc with --bind-only"},
		{name: "bind only prealloc, user's mem-prealloc", spec: Spec{BindOnly: true, Prealloc: true}, user: parse("-mem-prealloc"), want: Spec{BindOnly: true, Prealloc: true, VCPUs: 1, MemoryBytes: 128 * mib}},
		{name: "bind only prealloc, every backend preallocates", spec: Spec{BindOnly: true, Prealloc: true},
			user: parse("-m", "2G", "-object", "memory-backend-ram,id=a,size=1G,prealloc=on", "-object", `{"qom-type":"memory-backend-ram","id":"b","size":1073741824,"prealloc":true}`, "-numa", "node,memdev=a", "-numa", "node,memdev=b"),
			want: Spec{BindOnly: true, Prealloc: true, VCPUs: 1, MemoryBytes: 2 * gib,
				Cells:    []Cell{{ID: 0, VCPUs: []int{0}, MemoryBytes: gib, Backend: "a"}, {ID: 1, VCPUs: []int{}, MemoryBytes: gib, Backend: "b"}},
				Topology: &memobj.Topology{CPUs: 1, MaxCPUs: 1, Sockets: 1, Dies: 1, Clusters: 1, Cores: 1, Threads: 1}}},
		{name: "bind only, qemu defaults", spec: Spec{BindOnly: true}, user: parse("-name", "x"), want: Spec{BindOnly: true, VCPUs: 1, MemoryBytes: 128 * mib}},
		{name: "bind only, flag without smp", spec: Spec{BindOnly: true, VCPUs: 4}, flags: MergeFlags{VCPUs: true}, user: parse("-m", "1G"), wantErr: "--vcpus 4 with --bind-only needs -smp 4 in the qemu command line"},
		{name: "bind only, flag without m", spec: Spec{BindOnly: true, MemoryBytes: 2 * gib}, flags: MergeFlags{Memory: true}, user: parse("-smp", "2"), wantErr: "--memory 2G with --bind-only needs -m 2G"},
		{name: "bind only, conflict", spec: Spec{BindOnly: true, VCPUs: 2}, flags: MergeFlags{VCPUs: true}, user: parse("-smp", "4", "-numa", "node"), wantErr: "--vcpus 2 conflicts with -smp 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MergeSpec(tc.spec, tc.flags, tc.user)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("MergeSpec = %+v, %v; want error containing %q", got, err, tc.wantErr)
				}
				if !errors.Is(err, ErrBadSpec) {
					t.Errorf("error %v does not wrap ErrBadSpec", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range tc.want.Cells {
				// A cell carries its backend as parsed.
				for _, b := range tc.user.Cmdline.Backends() {
					if b.ID == c.Backend {
						tc.want.Cells[i].Object = &b
					}
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("MergeSpec = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFinal(t *testing.T) {
	rendered := []string{"-smp", "2,sockets=1,cores=2,threads=1", "-m", "1G", "-object", "memory-backend-ram,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind", "-machine", "memory-backend=qnuma-ram0"}
	extra := []string{"-S", "-qmp", "unix:/run/q.sock,server=on,wait=off"}
	tests := []struct {
		name     string
		argv     []string
		rendered []string
		want     []string
	}{
		{
			name:     "user's smp and m replaced, the rest kept in order",
			argv:     []string{"qemu-system-x86_64", "-name", "vm", "-smp", "2", "disk.img", "--m", "1024", "-nographic", "-append", "-m 4G"},
			rendered: rendered,
			want: slices.Concat([]string{"qemu-system-x86_64", "-name", "vm", "disk.img", "-nographic", "-append", "-m 4G"},
				rendered, extra),
		},
		{
			name:     "repeated smp all removed",
			argv:     []string{"qemu-system-x86_64", "-smp", "2", "-smp", "sockets=1", "-m", "1G"},
			rendered: rendered,
			want:     slices.Concat([]string{"qemu-system-x86_64"}, rendered, extra),
		},
		{
			name:     "bind only keeps everything",
			argv:     []string{"qemu-system-x86_64", "-smp", "4", "-m", "2G", "-numa", "node"},
			rendered: nil,
			want:     slices.Concat([]string{"qemu-system-x86_64", "-smp", "4", "-m", "2G", "-numa", "node"}, extra),
		},
		{
			name:     "only what rendered replaces",
			argv:     []string{"qemu-system-x86_64", "-smp", "4", "-m", "2G"},
			rendered: []string{"-m", "2G"},
			want:     slices.Concat([]string{"qemu-system-x86_64", "-smp", "4", "-m", "2G"}, extra),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQEMUArgv(tc.argv)
			if err != nil {
				t.Fatal(err)
			}
			got := q.Final(tc.rendered, extra...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Final\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// The whole path on the real QEMU: the user's command line gives the spec,
// a plan is rendered, Final merges them, and QEMU takes the result with the
// planned binding (the user's -m 256 is replaced by the rendered 256M).
func TestFinalInQEMU(t *testing.T) {
	qemutest.Require(t)
	q, err := ParseQEMUArgv([]string{qemutest.Binary, "-smp", "2", "-m", "256", "-name", "guest=merge,debug-threads=on", "-machine", "pc"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := MergeSpec(Spec{Policy: memobj.PolicyPreferred}, MergeFlags{}, q)
	if err != nil {
		t.Fatal(err)
	}
	p := mkPlan(spec, 1, 2, 1, gn{host: []int{0}, vcpus: 2, mem: spec.MemoryBytes, cpus: cpuset.New(0)})
	rendered, err := p.Args(RenderOptions{QEMU: probeQEMU(t)})
	if err != nil {
		t.Fatal(err)
	}
	final := q.Final(rendered)
	if n := strings.Count(strings.Join(final, "\x00")+"\x00", "\x00-m\x00"); n != 1 {
		t.Fatalf("Final has %d -m: %q", n, final)
	}
	vm, err := qemutest.Start(t, final[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := vm.Memdevs()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].ID != "qnuma-ram0" || devs[0].Size != 256*mib || devs[0].Policy != "preferred" || !slices.Equal(devs[0].HostNodes, []int{0}) {
		t.Errorf("query-memdev = %+v; want qnuma-ram0, 256 MiB, preferred on host node 0", devs)
	}
}

// The user's JSON-form backend with --bind-only: qnuma adds nothing, QEMU
// runs the user's backend as written (its share=on kept), and no second
// backend appears.
func TestBindOnlyJSONBackendInQEMU(t *testing.T) {
	qemutest.Require(t)
	q, err := ParseQEMUArgv([]string{qemutest.Binary, "-m", "128M", "-object", jsonBackend, "-machine", "memory-backend=m0", "-machine", "pc"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := MergeSpec(Spec{BindOnly: true, Policy: memobj.PolicyBind}, MergeFlags{}, q)
	if err != nil {
		t.Fatal(err)
	}
	p := mkPlan(spec, 1, 1, 1, gn{host: []int{0}, vcpus: 1, mem: spec.MemoryBytes, cpus: cpuset.New(0)})
	p.BindOnly = true
	rendered, err := p.Args(RenderOptions{QEMU: probeQEMU(t)})
	if err != nil {
		t.Fatal(err)
	}
	final := q.Final(rendered)
	if !slices.Equal(final, q.Cmdline.Argv()) {
		t.Fatalf("Final = %q, want the user's command line as written", final)
	}
	vm, err := qemutest.Start(t, final[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := vm.Memdevs()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].ID != "m0" || !devs[0].Share || devs[0].Size != 128*mib {
		t.Errorf("query-memdev = %+v; want only the user's m0, shared, 128 MiB", devs)
	}
}
