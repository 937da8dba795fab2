package domxml

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes Parse panic or return an error that is neither
// ErrInvalid nor ErrUnsupported, and what it accepts keeps the invariants
// the planner relies on. The testdata domains are the seeds.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata/*.xml: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(dom(base + twoCells + "<numatune><memnode cellid='1' nodeset='0-3,^2'/></numatune>"))
	f.Add(dom("<vcpu cpuset='0-65535,^7'>2</vcpu><memory unit='EiB'>15</memory>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps neither ErrInvalid nor ErrUnsupported: %v", err)
			}
			return
		}
		_ = d.Summary()
		if d.VCPU.Max < 1 || d.VCPU.Current < 1 || d.VCPU.Current > d.VCPU.Max {
			t.Fatalf("accepted vcpus %d of %d", d.VCPU.Current, d.VCPU.Max)
		}
		covered := 0
		for i, c := range d.Cells {
			if c.ID != i {
				t.Fatalf("cell %d has id %d", i, c.ID)
			}
			for _, v := range c.CPUs.UnsortedList() {
				if v >= d.VCPU.Max {
					t.Fatalf("cell %d has vCPU %d of %d", i, v, d.VCPU.Max)
				}
			}
			covered += c.CPUs.Size()
			_ = d.Binding(i)
			_, _ = d.PageSize(i)
		}
		if len(d.Cells) > 0 && covered != d.VCPU.Max {
			t.Fatalf("cells cover %d of %d vCPUs", covered, d.VCPU.Max)
		}
		for _, p := range d.CPUTune.VCPUPins {
			if p.VCPU >= d.VCPU.Max || p.CPUs.IsEmpty() {
				t.Fatalf("accepted vcpupin %d to %q", p.VCPU, p.CPUs)
			}
		}
		for _, n := range d.NUMATune.memNodes() {
			if n.CellID >= len(d.Cells) || n.Nodes.IsEmpty() {
				t.Fatalf("accepted memnode cell %d nodes %q", n.CellID, n.Nodes)
			}
		}
	})
}

func (t *NUMATune) memNodes() []MemNode {
	if t == nil {
		return nil
	}
	return t.MemNodes
}
