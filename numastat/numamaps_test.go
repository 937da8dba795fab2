package numastat

import (
	"os"
	"reflect"
	"testing"

	"k8s.io/utils/cpuset"
)

func TestParseNumaMapsLine(t *testing.T) {
	tests := []struct {
		line    string
		want    Mapping
		wantErr bool
	}{
		{line: "7f775be00000 bind:1 anon=65536 dirty=65536 N1=65536 kernelpagesize_kB=4", want: Mapping{
			Start: 0x7f775be00000, Policy: "bind", PolicyNodes: cpuset.New(1), PageSize: 4096,
			Anon: 65536, Dirty: 65536, Pages: map[int]uint64{1: 65536}}},
		{line: "7f0000000000 prefer:0 anon=10 dirty=10 active=0 N0=6 N1=4 kernelpagesize_kB=4", want: Mapping{
			Start: 0x7f0000000000, Policy: "prefer", PolicyNodes: cpuset.New(0), PageSize: 4096,
			Anon: 10, Dirty: 10, Pages: map[int]uint64{0: 6, 1: 4}}},
		{line: "7f0000000000 interleave:0-1 anon=4 dirty=4 N0=2 N1=2 kernelpagesize_kB=4", want: Mapping{
			Start: 0x7f0000000000, Policy: "interleave", PolicyNodes: cpuset.New(0, 1), PageSize: 4096,
			Anon: 4, Dirty: 4, Pages: map[int]uint64{0: 2, 1: 2}}},
		{line: "7f774c021000 default", want: Mapping{
			Start: 0x7f774c021000, Policy: "default", PolicyNodes: cpuset.New(), PageSize: 4096, Pages: map[int]uint64{}}},
		{line: "55e435295000 default heap anon=1098 dirty=1098 active=0 N0=1098 kernelpagesize_kB=4", want: Mapping{
			Start: 0x55e435295000, Policy: "default", PolicyNodes: cpuset.New(), Heap: true, PageSize: 4096,
			Anon: 1098, Dirty: 1098, Pages: map[int]uint64{0: 1098}}},
		{line: "55e3f730f000 default file=/usr/bin/qemu-system-x86_64 mapped=1270 active=1267 N0=1270 kernelpagesize_kB=4", want: Mapping{
			Start: 0x55e3f730f000, Policy: "default", PolicyNodes: cpuset.New(), File: "/usr/bin/qemu-system-x86_64",
			PageSize: 4096, Mapped: 1270, Pages: map[int]uint64{0: 1270}}},
		{line: `7fa000000000 bind=static:0-1 file=/memfd:mem0\040x\040(deleted) dirty=512 N0=256 N1=256 kernelpagesize_kB=4`, want: Mapping{
			Start: 0x7fa000000000, Policy: "bind", PolicyNodes: cpuset.New(0, 1), File: "/memfd:mem0 x (deleted)",
			PageSize: 4096, Dirty: 512, Pages: map[int]uint64{0: 256, 1: 256}}},
		{line: "7f4a40000000 bind:1 file=/dev/hugepages/qemu_back_mem.m1.XYZ\\040(deleted) huge dirty=512 N1=512 kernelpagesize_kB=2048", want: Mapping{
			Start: 0x7f4a40000000, Policy: "bind", PolicyNodes: cpuset.New(1), File: "/dev/hugepages/qemu_back_mem.m1.XYZ (deleted)",
			Huge: true, PageSize: 2 << 20, Dirty: 512, Pages: map[int]uint64{1: 512}}},
		{line: "7ffd1a2b3000 default stack anon=33 dirty=33 N0=33 kernelpagesize_kB=4", want: Mapping{
			Start: 0x7ffd1a2b3000, Policy: "default", PolicyNodes: cpuset.New(), Stack: true, PageSize: 4096,
			Anon: 33, Dirty: 33, Pages: map[int]uint64{0: 33}}},
		{line: "7f0000000000", wantErr: true},
		{line: "zz00 default", wantErr: true},
		{line: "7f00 bind:1-0", wantErr: true},
		{line: "7f00 :1", wantErr: true},
		{line: "7f00 default anon=x", wantErr: true},
		{line: "7f00 default Nx=3", wantErr: true},
		{line: "7f00 default N-1=3", wantErr: true},
		{line: "7f00 default N65536=3", wantErr: true},                                                    // past any node id
		{line: "7f00 default N0=4503599627370496 kernelpagesize_kB=4", wantErr: true},                     // 2^52 pages of 4 KiB: 2^64 bytes
		{line: "7f00 default N0=2251799813685248 N1=2251799813685248 kernelpagesize_kB=4", wantErr: true}, // 2^63 bytes twice
		{line: "7f00 default kernelpagesize_kB=0", wantErr: true},
		{line: "7f00 default kernelpagesize_kB=18014398509481984", wantErr: true}, // 2^54 KiB
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseNumaMapsLine(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !got.PolicyNodes.Equals(tt.want.PolicyNodes) {
				t.Errorf("policy nodes = %s, want %s", got.PolicyNodes, tt.want.PolicyNodes)
			}
			got.PolicyNodes, tt.want.PolicyNodes = cpuset.New(), cpuset.New()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The files under testdata/qemu-tcg-64M are /proc/PID/{numa_maps,maps,
// cmdline} of the real qemu-system-x86_64 7.2 run that the stat test starts,
// captured on a one-node host.
func TestGuestRAMOfRealQEMU(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/qemu-tcg-64M/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ms, err := ParseNumaMaps(read("numa_maps"))
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := parseMaps(read("maps"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ms {
		if r, ok := ranges[ms[i].Start]; ok {
			ms[i].End, ms[i].Perms = r.end, r.perms
		}
	}
	sizes, err := RAMSizes(read("cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sizes, []uint64{64 << 20}) {
		t.Fatalf("sizes = %v, want [64 MiB]", sizes)
	}
	tests := []struct {
		name  string
		sizes []uint64
		match string
		n     int
	}{
		// TCG's 64 MiB-minus-a-page code buffers (rwx) are left out.
		{"backend size", sizes, MatchExact, 1},
		{"size matching nothing", []uint64{48 << 20}, MatchAtLeast, 1},
		{"unknown sizes", nil, MatchFallback, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ram, how := GuestRAM(ms, tt.sizes)
			if how != tt.match || len(ram) != tt.n {
				t.Fatalf("GuestRAM = %d mappings by %q, want %d by %q", len(ram), how, tt.n, tt.match)
			}
			m := ram[0]
			if m.Size() != 64<<20 || m.Policy != "bind" || !m.PolicyNodes.Equals(cpuset.New(0)) ||
				!reflect.DeepEqual(m.NodeBytes(), map[int]uint64{0: 64 << 20}) {
				t.Errorf("guest RAM mapping = %+v", m)
			}
		})
	}
}

func TestParseMapsErrors(t *testing.T) {
	for _, s := range []string{"7f00 rw-p", "7f00-zz rw-p", "7f10-7f00 rw-p", "7f00-7f10"} {
		if _, err := parseMaps([]byte(s)); err == nil {
			t.Errorf("parseMaps(%q) = nil error", s)
		}
	}
}
