package libvirthost

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/topology"
)

// maxCapsSize bounds the capabilities XML read (a 1,000-CPU host's is
// about 200 KiB).
const maxCapsSize = 16 << 20

type xCaps struct {
	XMLName xml.Name `xml:"capabilities"`
	Cells   []xCell  `xml:"host>topology>cells>cell"`
}

type xCell struct {
	ID     int `xml:"id,attr"`
	Memory struct {
		Unit  string `xml:"unit,attr"`
		Value uint64 `xml:",chardata"`
	} `xml:"memory"`
	Pages []struct {
		Unit  string `xml:"unit,attr"`
		Size  uint64 `xml:"size,attr"`
		Count uint64 `xml:",chardata"`
	} `xml:"pages"`
	Siblings []struct {
		ID    int `xml:"id,attr"`
		Value int `xml:"value,attr"`
	} `xml:"distances>sibling"`
	CPUs []struct {
		ID       int    `xml:"id,attr"`
		Socket   *int   `xml:"socket_id,attr"`
		Die      *int   `xml:"die_id,attr"`
		Siblings string `xml:"siblings,attr"`
	} `xml:"cpus>cpu"`
}

// unitBytes is libvirt's unit attribute in bytes (KiB when absent).
func unitBytes(unit string) (uint64, error) {
	switch unit {
	case "", "KiB", "k", "K":
		return 1 << 10, nil
	case "b", "bytes":
		return 1, nil
	case "MiB", "M":
		return 1 << 20, nil
	case "GiB", "G":
		return 1 << 30, nil
	}
	return 0, fmt.Errorf("unit %q", unit)
}

// ParseCapabilities is the host a libvirt capabilities XML describes
// (<host><topology><cells>): nodes with their CPUs, memory, hugepage pools
// and distances; CPUs with their socket, die and thread siblings. Free
// memory is not in it: nodes come back MemFreeUnknown, and hugepages'
// Free 0, until FillFree sets them. Allowed is every CPU and node (libvirt
// gives domains its whole host). A host without cells (libvirt on a
// machine without NUMA reports none) is an error naming it.
func ParseCapabilities(data []byte) (*topology.Host, error) {
	if len(data) > maxCapsSize {
		return nil, fmt.Errorf("libvirt capabilities: larger than %d bytes", maxCapsSize)
	}
	var x xCaps
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&x); err != nil {
		return nil, fmt.Errorf("libvirt capabilities: %w", err)
	}
	if len(x.Cells) == 0 {
		return nil, fmt.Errorf("libvirt capabilities: no <host><topology><cells>: the daemon describes no NUMA cells")
	}
	h := &topology.Host{}
	var online []int
	seen := map[int]bool{}
	for _, c := range x.Cells {
		if c.ID < 0 || c.ID > cpulist.MaxID || seen[c.ID] {
			return nil, fmt.Errorf("libvirt capabilities: cell id %d: out of range or repeated", c.ID)
		}
		seen[c.ID] = true
		u, err := unitBytes(c.Memory.Unit)
		if err != nil {
			return nil, fmt.Errorf("libvirt capabilities: cell %d memory: %w", c.ID, err)
		}
		n := topology.Node{ID: c.ID, MemTotal: c.Memory.Value * u, MemFreeUnknown: true}
		var ids []int
		for _, cpu := range c.CPUs {
			if cpu.ID < 0 || cpu.ID > cpulist.MaxID {
				return nil, fmt.Errorf("libvirt capabilities: cell %d: cpu id %d out of range", c.ID, cpu.ID)
			}
			ids = append(ids, cpu.ID)
		}
		n.CPUs = cpuset.New(ids...)
		for _, p := range c.Pages {
			pu, err := unitBytes(p.Unit)
			if err != nil {
				return nil, fmt.Errorf("libvirt capabilities: cell %d pages: %w", c.ID, err)
			}
			if size := p.Size * pu; size > 4096 {
				n.Hugepages = append(n.Hugepages, topology.Hugepages{SizeBytes: size, Total: p.Count})
			}
		}
		slices.SortFunc(n.Hugepages, func(a, b topology.Hugepages) int { return int(a.SizeBytes>>12) - int(b.SizeBytes>>12) })
		if len(c.Siblings) > 0 {
			n.Distances = map[int]int{}
			for _, s := range c.Siblings {
				n.Distances[s.ID] = s.Value
			}
		}
		h.Nodes = append(h.Nodes, n)
		for _, cpu := range c.CPUs {
			if slices.Contains(online, cpu.ID) {
				return nil, fmt.Errorf("libvirt capabilities: cpu %d is in two cells", cpu.ID)
			}
			online = append(online, cpu.ID)
			sib := cpuset.New(cpu.ID)
			if cpu.Siblings != "" {
				s, err := cpulist.Parse(cpu.Siblings)
				if err != nil {
					return nil, fmt.Errorf("libvirt capabilities: cpu %d siblings %q: %w", cpu.ID, cpu.Siblings, err)
				}
				sib = s.Union(sib)
			}
			tc := topology.CPU{ID: cpu.ID, Node: c.ID, Package: -1, Siblings: sib}
			if cpu.Socket != nil {
				tc.Package = *cpu.Socket
			}
			if cpu.Die != nil {
				tc.Die = *cpu.Die
			}
			h.CPUs = append(h.CPUs, tc)
		}
	}
	for i := range h.Nodes {
		for id := range h.Nodes[i].Distances {
			if !seen[id] {
				return nil, fmt.Errorf("libvirt capabilities: cell %d has a distance to cell %d, which there is not", h.Nodes[i].ID, id)
			}
		}
		if len(h.Nodes[i].Distances) != len(h.Nodes) {
			h.Nodes[i].Distances = nil // as topology.Read: a row that does not match the node count
		}
	}
	slices.SortFunc(h.Nodes, func(a, b topology.Node) int { return a.ID - b.ID })
	slices.SortFunc(h.CPUs, func(a, b topology.CPU) int { return a.ID - b.ID })
	h.OnlineCPUs = cpuset.New(online...)
	// Sibling sets cut to the host's CPUs; cores numbered as Host.Cores
	// orders them.
	for i := range h.CPUs {
		h.CPUs[i].Siblings = h.CPUs[i].Siblings.Intersection(h.OnlineCPUs)
	}
	cores := h.Cores()
	for i := range h.CPUs {
		for j, core := range cores {
			if core.Equals(h.CPUs[i].Siblings) {
				h.CPUs[i].Core = j
			}
		}
		for _, s := range h.CPUs[i].Siblings.List() {
			if k := slices.IndexFunc(h.CPUs, func(c topology.CPU) bool { return c.ID == s }); !h.CPUs[k].Siblings.Equals(h.CPUs[i].Siblings) {
				return nil, fmt.Errorf("libvirt capabilities: cpus %d and %d disagree on their siblings (%s, %s)", h.CPUs[i].ID, s, h.CPUs[i].Siblings, h.CPUs[k].Siblings)
			}
		}
	}
	h.Allowed = topology.Allowed{CPUs: h.OnlineCPUs, Mems: cpuset.New(h.NodeIDs()...), Source: "libvirt capabilities (all cpus and nodes)"}
	return h, nil
}

// FillFree sets each node's free memory and free hugepages from the
// daemon (virNodeGetCellsFreeMemory, virNodeGetFreePages), cell by cell
// (cell ids may be sparse).
func FillFree(c Conn, h *topology.Host) error {
	for i := range h.Nodes {
		n := &h.Nodes[i]
		free, err := c.CellFreeMemory(n.ID)
		if err != nil {
			return err
		}
		n.MemFree, n.MemFreeUnknown = free, false
		if len(n.Hugepages) == 0 {
			continue
		}
		sizes := make([]uint32, len(n.Hugepages))
		for j, hp := range n.Hugepages {
			sizes[j] = uint32(hp.SizeBytes >> 10)
		}
		counts, err := c.FreePages(sizes, n.ID, 1)
		if err != nil {
			return err
		}
		if len(counts) != len(sizes) {
			return fmt.Errorf("libvirt free pages of cell %d: %d counts for %d sizes", n.ID, len(counts), len(sizes))
		}
		for j := range n.Hugepages {
			n.Hugepages[j].Free = counts[j]
		}
	}
	return nil
}
