package numastat

import (
	"reflect"
	"strings"
	"testing"
)

func TestRAMSizes(t *testing.T) {
	const M = 1 << 20
	tests := []struct {
		args    string
		want    []uint64
		wantErr bool
	}{
		{"qemu-system-x86_64 -nodefaults", []uint64{128 * M}, false},
		{"qemu-system-x86_64 -m 2048", []uint64{2048 * M}, false},
		{"qemu-system-x86_64 -m 2G -smp 2", []uint64{2048 * M}, false},
		{"qemu-system-x86_64 -m size=4G,slots=2,maxmem=8G", []uint64{4096 * M}, false},
		{"qemu-system-x86_64 --m 1G", []uint64{1024 * M}, false},
		{"qemu-system-x86_64 -m 3G -object memory-backend-ram,id=m0,size=1G,host-nodes=0,policy=bind -object memory-backend-memfd,id=m1,size=2G -object iothread,id=io0",
			[]uint64{1024 * M, 2048 * M}, false},
		{"qemu-system-x86_64 -object qom-type=memory-backend-file,id=m0,mem-path=/dev/hugepages,size=512M", []uint64{512 * M}, false},
		{`qemu-system-x86_64 -object {"qom-type":"memory-backend-ram","id":"ram-node0","size":1073741824,"host-nodes":[0],"policy":"bind"} -object {"qom-type":"thread-context","id":"tc0"}`,
			[]uint64{1024 * M}, false},
		{`qemu-system-x86_64 -object {"qom-type":"memory-backend-memfd","id":"m0","size":134217728,"share":true} -machine memory-backend=m0`, []uint64{128 * M}, false},
		{`qemu-system-x86_64 -object {"qom-type":"memory-backend-file","id":"f","size":"1G","mem-path":"/dev/hugepages"}`, []uint64{1024 * M}, false},
		{"qemu-system-x86_64 -name -m -m 512M", []uint64{512 * M}, false},
		{"qemu-system-x86_64 -m 1G -m slots=2,maxmem=4G", []uint64{1024 * M}, false},
		{"qemu-system-x86_64 -m 1G -some-flag-of-a-newer-qemu", []uint64{1024 * M}, false},
		{"/usr/libexec/qemu-kvm -m 768", []uint64{768 * M}, false},
		{"sleep 100 -m 5G", []uint64{128 * M}, false},
		{"qemu-system-x86_64 -m 1G -object memory-backend-ram,id=m0,size=1G,host-nodes=0-99999", nil, true},
		{"qemu-system-x86_64 -m lots", nil, true},
		{"qemu-system-x86_64 -m slots=2", nil, true},
		{"qemu-system-x86_64 -object memory-backend-ram,id=m0", nil, true},
		{"qemu-system-x86_64 -object memory-backend-ram,id=m0,size=1Q", nil, true},
		{`qemu-system-x86_64 -object {"qom-type":`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			got, err := RAMSizes([]byte(strings.ReplaceAll(tt.args, " ", "\x00") + "\x00"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("RAMSizes = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGuestRAMChoice(t *testing.T) {
	const M = 1 << 20
	m := func(size uint64, perms string, page uint64) Mapping {
		return Mapping{Start: 1 << 40, End: 1<<40 + size, Perms: perms, PageSize: page}
	}
	tests := []struct {
		name  string
		ms    []Mapping
		sizes []uint64
		want  []uint64 // sizes of the chosen mappings
		match string
	}{
		{"two backends of one size", []Mapping{m(64*M, "rw-p", 4096), m(64*M, "rw-p", 4096), m(64*M, "rw-p", 4096)},
			[]uint64{64 * M, 64 * M}, []uint64{64 * M, 64 * M}, MatchExact},
		{"executable buffers left out", []Mapping{m(64*M, "rwxp", 4096), m(64*M, "rw-p", 4096)},
			[]uint64{64 * M}, []uint64{64 * M}, MatchExact},
		{"hugepage backend rounded up to its page", []Mapping{m(4*M, "rw-s", 2*M)},
			[]uint64{3 * M}, []uint64{4 * M}, MatchExact},
		{"read-only left out", []Mapping{m(64*M, "r--p", 4096)}, []uint64{64 * M}, nil, MatchAtLeast},
		{"none exact, bigger taken", []Mapping{m(8*M, "rw-p", 4096), m(66*M, "rw-p", 4096)},
			[]uint64{64 * M}, []uint64{66 * M}, MatchAtLeast},
		{"unknown sizes, big ones", []Mapping{m(8*M, "rw-p", 4096), m(512*M, "rw-p", 4096), m(1024*M, "rw-p", 4096)},
			nil, []uint64{512 * M, 1024 * M}, MatchFallback},
		{"unknown sizes, largest", []Mapping{m(8*M, "rw-p", 4096), m(32*M, "rw-p", 4096)},
			nil, []uint64{32 * M}, MatchFallback},
		{"nothing", nil, nil, nil, MatchFallback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, how := GuestRAM(tt.ms, tt.sizes)
			var sizes []uint64
			for _, g := range got {
				sizes = append(sizes, g.Size())
			}
			if !reflect.DeepEqual(sizes, tt.want) || how != tt.match {
				t.Errorf("GuestRAM = %v by %q, want %v by %q", sizes, how, tt.want, tt.match)
			}
		})
	}
}
