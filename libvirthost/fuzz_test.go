package libvirthost_test

import (
	"os"
	"testing"

	"github.com/qnuma/qnuma/libvirthost"
)

// FuzzParse feeds the two readers of the daemon's XML: never a panic, and
// a host that parses has every CPU in one node.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/caps-1node.xml", "testdata/caps-2node-smt.xml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<domain><name>a</name><vcpu cpuset='0-3' current='2'>4</vcpu><cputune><vcpupin vcpu='0' cpuset='1'/></cputune><numatune><memory nodeset='0'/></numatune></domain>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if h, err := libvirthost.ParseCapabilities(data); err == nil {
			n := 0
			for _, node := range h.Nodes {
				n += node.CPUs.Size()
			}
			if n != h.OnlineCPUs.Size() {
				t.Errorf("%d cpus in nodes, %d online", n, h.OnlineCPUs.Size())
			}
			h.Cores()
		}
		if s, err := libvirthost.ParseShape(data); err == nil && s.BootBytes() > s.MemoryBytes && len(s.Cells) == 0 {
			t.Errorf("boot memory %d over <memory> %d", s.BootBytes(), s.MemoryBytes)
		}
		if p, err := libvirthost.ParsePins(data); err == nil {
			p.Placed(twoNodes())
		}
	})
}
