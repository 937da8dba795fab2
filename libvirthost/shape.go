package libvirthost

import (
	"bytes"
	"encoding/xml"
	"fmt"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
)

// Shape is what a domain asks of its host, read leniently from its XML:
// the VM spec `qnuma libvirt place` plans. Elements qnuma does not plan by
// (<cputune><shares>, <seclabel>, devices) are ignored here; Rewrite keeps
// them byte for byte.
type Shape struct {
	Name string
	// VCPUs present at boot, and the most (<vcpu current=>N</vcpu>).
	VCPUs, MaxVCPUs int
	// MemoryBytes is <memory>, which counts the memory devices
	// (DeviceBytes) too.
	MemoryBytes, DeviceBytes uint64
	// Cells are <cpu><numa>'s guest cells (none: the guest is one node).
	Cells []ShapeCell
	// Sockets, Dies, Cores, Threads are <cpu><topology> (all 0 without one).
	Sockets, Dies, Cores, Threads int
	// Hugepages: <memoryBacking><hugepages>; PageSizes its <page size>s in
	// bytes (0 for one without a size: the host's default).
	Hugepages bool
	PageSizes []uint64
	// Immediate: <memoryBacking><allocation mode='immediate'>.
	Immediate bool
	// Mode is <numatune><memory mode> ("" without one).
	Mode string
}

// ShapeCell is one guest cell.
type ShapeCell struct {
	ID          int
	CPUs        cpuset.CPUSet
	MemoryBytes uint64
}

type xShape struct {
	XMLName xml.Name `xml:"domain"`
	Name    string   `xml:"name"`
	Memory  struct {
		Unit  string `xml:"unit,attr"`
		Value uint64 `xml:",chardata"`
	} `xml:"memory"`
	VCPU struct {
		Current *int `xml:"current,attr"`
		Value   int  `xml:",chardata"`
	} `xml:"vcpu"`
	Topology *struct {
		Sockets int `xml:"sockets,attr"`
		Dies    int `xml:"dies,attr"`
		Cores   int `xml:"cores,attr"`
		Threads int `xml:"threads,attr"`
	} `xml:"cpu>topology"`
	Cells []struct {
		ID     *int   `xml:"id,attr"`
		CPUs   string `xml:"cpus,attr"`
		Memory uint64 `xml:"memory,attr"`
		Unit   string `xml:"unit,attr"`
	} `xml:"cpu>numa>cell"`
	Hugepages *struct {
		Pages []struct {
			Size uint64 `xml:"size,attr"`
			Unit string `xml:"unit,attr"`
		} `xml:"page"`
	} `xml:"memoryBacking>hugepages"`
	Allocation *struct {
		Mode string `xml:"mode,attr"`
	} `xml:"memoryBacking>allocation"`
	NUMAMemory *struct {
		Mode string `xml:"mode,attr"`
	} `xml:"numatune>memory"`
	MemoryDevices []struct {
		Size struct {
			Unit  string `xml:"unit,attr"`
			Value uint64 `xml:",chardata"`
		} `xml:"target>size"`
	} `xml:"devices>memory"`
}

// maxShapeVCPUs bounds the vCPU counts read (QEMU's largest x86 machine).
const maxShapeVCPUs = 4096

// ParseShape reads a domain's XML (virsh dumpxml) for its Shape.
func ParseShape(data []byte) (*Shape, error) {
	if len(data) > maxDomainXML {
		return nil, fmt.Errorf("domain xml: larger than %d bytes", maxDomainXML)
	}
	var x xShape
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&x); err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	where := fmt.Sprintf("domain %q", x.Name)
	s := &Shape{Name: x.Name, VCPUs: x.VCPU.Value, MaxVCPUs: x.VCPU.Value, Mode: "", Immediate: x.Allocation != nil && x.Allocation.Mode == "immediate"}
	if x.VCPU.Current != nil {
		s.VCPUs = *x.VCPU.Current
	}
	if s.VCPUs < 1 || s.MaxVCPUs < s.VCPUs || s.MaxVCPUs > maxShapeVCPUs {
		return nil, fmt.Errorf("%s: <vcpu> %d, current %d: want 1 to %d, current at most the count", where, s.MaxVCPUs, s.VCPUs, maxShapeVCPUs)
	}
	u, err := unitBytes(x.Memory.Unit)
	if err != nil {
		return nil, fmt.Errorf("%s: <memory>: %w", where, err)
	}
	s.MemoryBytes = x.Memory.Value * u
	for i, m := range x.MemoryDevices {
		mu, err := unitBytes(m.Size.Unit)
		if err != nil {
			return nil, fmt.Errorf("%s: memory device %d: %w", where, i, err)
		}
		s.DeviceBytes += m.Size.Value * mu
	}
	if t := x.Topology; t != nil {
		s.Sockets, s.Dies, s.Cores, s.Threads = t.Sockets, t.Dies, t.Cores, t.Threads
	}
	for i, c := range x.Cells {
		id := i
		if c.ID != nil {
			id = *c.ID
		}
		cpus := cpuset.New()
		if c.CPUs != "" {
			if cpus, err = cpulist.Parse(c.CPUs); err != nil {
				return nil, fmt.Errorf("%s: <cell id='%d' cpus='%s'>: %w", where, id, c.CPUs, err)
			}
		}
		cu, err := unitBytes(c.Unit)
		if err != nil {
			return nil, fmt.Errorf("%s: <cell id='%d'>: %w", where, id, err)
		}
		s.Cells = append(s.Cells, ShapeCell{ID: id, CPUs: cpus, MemoryBytes: c.Memory * cu})
	}
	if h := x.Hugepages; h != nil {
		s.Hugepages = true
		for _, p := range h.Pages {
			pu, err := unitBytes(p.Unit)
			if err != nil {
				return nil, fmt.Errorf("%s: <hugepages><page>: %w", where, err)
			}
			s.PageSizes = append(s.PageSizes, p.Size*pu)
		}
	}
	if m := x.NUMAMemory; m != nil {
		s.Mode = m.Mode
		if s.Mode == "" {
			s.Mode = "strict" // libvirt's default
		}
	}
	return s, nil
}

// BootBytes is the guest RAM at boot: the cells' sum, else <memory> less
// the memory devices.
func (s *Shape) BootBytes() uint64 {
	if len(s.Cells) > 0 {
		var b uint64
		for _, c := range s.Cells {
			b += c.MemoryBytes
		}
		return b
	}
	return s.MemoryBytes - min(s.MemoryBytes, s.DeviceBytes)
}
