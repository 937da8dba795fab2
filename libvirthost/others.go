package libvirthost

import (
	"bytes"
	"encoding/xml"
	"fmt"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
)

// maxDomainXML bounds a domain XML read from the daemon.
const maxDomainXML = 16 << 20

// Pins is where a running domain is held, from its live XML: what other
// placements must count as taken.
type Pins struct {
	Name  string
	VCPUs int
	// VCPUPins per vCPU id (<vcpupin>, else <vcpu cpuset>); absent ids float.
	VCPUPins map[int]cpuset.CPUSet
	Emulator cpuset.CPUSet
	// IOThreadPins per I/O thread id.
	IOThreadPins map[int]cpuset.CPUSet
	// Mode and Nodes are <numatune><memory>; Nodes empty without one.
	Mode  string
	Nodes cpuset.CPUSet
	// CellNodes is each <memnode>'s host nodes, by guest cell id, and
	// CellMemory the cells' sizes in bytes.
	CellNodes  map[int]cpuset.CPUSet
	CellMemory map[int]uint64
	// MemoryBytes is <memory>.
	MemoryBytes uint64
}

type xPinDomain struct {
	XMLName xml.Name `xml:"domain"`
	Name    string   `xml:"name"`
	Memory  struct {
		Unit  string `xml:"unit,attr"`
		Value uint64 `xml:",chardata"`
	} `xml:"memory"`
	VCPU struct {
		CPUSet  string `xml:"cpuset,attr"`
		Current *int   `xml:"current,attr"`
		Value   int    `xml:",chardata"`
	} `xml:"vcpu"`
	VCPUPins []struct {
		VCPU   int    `xml:"vcpu,attr"`
		CPUSet string `xml:"cpuset,attr"`
	} `xml:"cputune>vcpupin"`
	EmulatorPin *struct {
		CPUSet string `xml:"cpuset,attr"`
	} `xml:"cputune>emulatorpin"`
	IOThreadPins []struct {
		IOThread int    `xml:"iothread,attr"`
		CPUSet   string `xml:"cpuset,attr"`
	} `xml:"cputune>iothreadpin"`
	NUMAMemory *struct {
		Mode    string `xml:"mode,attr"`
		Nodeset string `xml:"nodeset,attr"`
	} `xml:"numatune>memory"`
	MemNodes []struct {
		CellID  int    `xml:"cellid,attr"`
		Nodeset string `xml:"nodeset,attr"`
	} `xml:"numatune>memnode"`
	Cells []struct {
		ID     int    `xml:"id,attr"`
		Memory uint64 `xml:"memory,attr"`
		Unit   string `xml:"unit,attr"`
	} `xml:"cpu>numa>cell"`
}

// ParsePins reads a running domain's XML (virsh dumpxml) for its pins and
// memory binding only; every other element is ignored, so a domain qnuma
// could not plan still counts.
func ParsePins(data []byte) (*Pins, error) {
	if len(data) > maxDomainXML {
		return nil, fmt.Errorf("domain xml: larger than %d bytes", maxDomainXML)
	}
	var x xPinDomain
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&x); err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	where := fmt.Sprintf("domain %q", x.Name)
	list := func(s, elem string) (cpuset.CPUSet, error) {
		if s == "" {
			return cpuset.New(), nil
		}
		c, err := cpulist.Parse(s)
		if err != nil {
			return c, fmt.Errorf("%s: %s %q: %w", where, elem, s, err)
		}
		return c, nil
	}
	u, err := unitBytes(x.Memory.Unit)
	if err != nil {
		return nil, fmt.Errorf("%s: <memory>: %w", where, err)
	}
	p := &Pins{Name: x.Name, VCPUs: x.VCPU.Value, MemoryBytes: x.Memory.Value * u,
		VCPUPins: map[int]cpuset.CPUSet{}, IOThreadPins: map[int]cpuset.CPUSet{},
		CellNodes: map[int]cpuset.CPUSet{}, CellMemory: map[int]uint64{}, Nodes: cpuset.New(), Emulator: cpuset.New()}
	if x.VCPU.Current != nil {
		p.VCPUs = *x.VCPU.Current
	}
	if p.VCPUs < 0 || p.VCPUs > 1<<16 {
		return nil, fmt.Errorf("%s: <vcpu> %d out of range", where, p.VCPUs)
	}
	all, err := list(x.VCPU.CPUSet, "<vcpu cpuset>")
	if err != nil {
		return nil, err
	}
	if !all.IsEmpty() {
		for v := 0; v < p.VCPUs; v++ {
			p.VCPUPins[v] = all
		}
		p.Emulator = all
	}
	for _, vp := range x.VCPUPins {
		if p.VCPUPins[vp.VCPU], err = list(vp.CPUSet, fmt.Sprintf("<vcpupin vcpu='%d'>", vp.VCPU)); err != nil {
			return nil, err
		}
	}
	if x.EmulatorPin != nil {
		if p.Emulator, err = list(x.EmulatorPin.CPUSet, "<emulatorpin>"); err != nil {
			return nil, err
		}
	}
	for _, ip := range x.IOThreadPins {
		if p.IOThreadPins[ip.IOThread], err = list(ip.CPUSet, fmt.Sprintf("<iothreadpin iothread='%d'>", ip.IOThread)); err != nil {
			return nil, err
		}
	}
	if m := x.NUMAMemory; m != nil {
		p.Mode = m.Mode
		if p.Nodes, err = list(m.Nodeset, "<numatune><memory nodeset>"); err != nil {
			return nil, err
		}
	}
	for _, mn := range x.MemNodes {
		if p.CellNodes[mn.CellID], err = list(mn.Nodeset, fmt.Sprintf("<memnode cellid='%d'>", mn.CellID)); err != nil {
			return nil, err
		}
	}
	for _, c := range x.Cells {
		cu, err := unitBytes(c.Unit)
		if err != nil {
			return nil, fmt.Errorf("%s: <cell id='%d'>: %w", where, c.ID, err)
		}
		p.CellMemory[c.ID] = c.Memory * cu
	}
	return p, nil
}

// Placed is the domain as plan.Make counts another VM on host h:
//   - CPUs: every host CPU its pins name (vCPUs, emulator, I/O threads), so
//     no dedicated vCPU is given one of them;
//   - VCPUs: each pinned vCPU on the node of the lowest CPU of its pin; an
//     unpinned vCPU on the first node of its nodeset, or on no node when
//     it has none (it floats over the whole host);
//   - MemoryBytes: each bound cell's memory (else all of it) split evenly
//     over its host nodes; a domain bound nowhere promises nothing (what
//     it touched is already gone from the nodes' free memory).
//
// The whole promise counts (ResidentBytes nil) unless the caller knows
// what its qemu already holds (a local daemon: /proc/PID/numa_maps).
func (p *Pins) Placed(h *topology.Host) plan.Placed {
	out := plan.Placed{Name: "libvirt:" + p.Name, MemoryBytes: map[int]uint64{}, VCPUs: map[int]int{}, DedicatedCPUs: cpuset.New()}
	cpus := p.Emulator
	nodeOf := func(c int) int {
		for _, hc := range h.CPUs {
			if hc.ID == c {
				return hc.Node
			}
		}
		return -1
	}
	for v := 0; v < p.VCPUs; v++ {
		pin, ok := p.VCPUPins[v]
		switch {
		case ok && !pin.IsEmpty():
			cpus = cpus.Union(pin)
			if n := nodeOf(pin.List()[0]); n >= 0 {
				out.VCPUs[n]++
			}
		case !p.Nodes.IsEmpty():
			out.VCPUs[p.Nodes.List()[0]]++
		}
	}
	for _, io := range p.IOThreadPins {
		cpus = cpus.Union(io)
	}
	out.CPUs = cpus.Intersection(h.OnlineCPUs)
	spread := func(size uint64, nodes cpuset.CPUSet) {
		if nodes.IsEmpty() {
			return
		}
		each := size / uint64(nodes.Size())
		for _, n := range nodes.List() {
			out.MemoryBytes[n] += each
		}
	}
	var bound uint64
	for id, nodes := range p.CellNodes {
		if size, ok := p.CellMemory[id]; ok && !nodes.IsEmpty() {
			spread(size, nodes)
			bound += size
		}
	}
	if bound < p.MemoryBytes {
		spread(p.MemoryBytes-bound, p.Nodes)
	}
	return out
}
