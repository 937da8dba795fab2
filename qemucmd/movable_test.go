package qemucmd

import (
	"strings"
	"testing"
)

func TestNotMovable(t *testing.T) {
	tests := []struct {
		name string
		argv string
		want string // "" movable, else a part of the reason
	}{
		{"memfd machine ram", "qemu-system-x86_64 -m 1G -object memory-backend-memfd,id=m0,size=1G,host-nodes=0,policy=bind -machine memory-backend=m0", ""},
		{"memfd numa nodes", "qemu-system-x86_64 -m 2G -object memory-backend-memfd,id=a,size=1G -object memory-backend-memfd,id=b,size=1G -numa node,memdev=a -numa node,memdev=b", ""},
		{"ram backend", "qemu-system-x86_64 -m 1G -object memory-backend-ram,id=m0,size=1G -machine memory-backend=m0", "m0 is memory-backend-ram"},
		{"hugepages", "qemu-system-x86_64 -m 1G -object memory-backend-memfd,id=m0,size=1G,hugetlb=on,hugetlbsize=2M -machine memory-backend=m0", "hugepages"},
		{"private memfd", "qemu-system-x86_64 -m 1G -object memory-backend-memfd,id=m0,size=1G,share=off -machine memory-backend=m0", "share=off"},
		{"plain -m", "qemu-system-x86_64 -m 1G", "anonymous memory"},
		{"legacy mem=", "qemu-system-x86_64 -m 1G -numa node,mem=1G", "-numa node,mem="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(strings.Fields(tt.argv))
			if err != nil {
				t.Fatal(err)
			}
			got := c.NotMovable()
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("NotMovable() = %q, want %q", got, tt.want)
			}
		})
	}
}
