package topology

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
)

// Report is the host as `qnuma topology --json` prints it; docs/topology.md
// documents each key. Sets are kernel cpu lists ("0-7,16-23").
type Report struct {
	Nodes      []NodeReport `json:"nodes"`
	OnlineCPUs string       `json:"online_cpus"`
	// Cores counts the distinct thread-sibling sets among online CPUs.
	Cores    int `json:"cores"`
	Packages int `json:"packages"`
	// ThreadsPerCore is the most threads any core has.
	ThreadsPerCore int    `json:"threads_per_core"`
	AllowedCPUs    string `json:"allowed_cpus"`
	// AllowedMems is null when nothing restricts memory nodes (SourceNone).
	AllowedMems   *string     `json:"allowed_mems"`
	AllowedSource string      `json:"allowed_source"`
	CPUs          []CPUReport `json:"cpus"`
}

// NodeReport is one node in a Report.
type NodeReport struct {
	ID               int    `json:"id"`
	CPUs             string `json:"cpus"`
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
	MemoryFreeBytes  uint64 `json:"memory_free_bytes"`
	// MemoryFreeUnknown: meminfo has no MemFree (memory_free_bytes is 0).
	MemoryFreeUnknown bool              `json:"memory_free_unknown,omitempty"`
	InactiveFileBytes uint64            `json:"inactive_file_bytes"`
	Hugepages         []HugepagesReport `json:"hugepages"`
	// Distances is null when the kernel gives none for this node.
	Distances Distances `json:"distances"`
}

// HugepagesReport is one page size's pool on a node.
type HugepagesReport struct {
	SizeBytes uint64 `json:"size_bytes"`
	Total     uint64 `json:"total"`
	Free      uint64 `json:"free"`
}

// CPUReport is one online CPU in a Report.
type CPUReport struct {
	ID       int    `json:"id"`
	Node     int    `json:"node"`
	Package  int    `json:"package"`
	Die      int    `json:"die"`
	Core     int    `json:"core"`
	Siblings string `json:"siblings"`
}

// Distances maps node id to distance. It marshals with keys in ascending
// numeric order (encoding/json would sort "10" before "2"), null when nil.
type Distances map[int]int

// MarshalJSON writes {"0":10,"8":40,"250":80}.
func (d Distances) MarshalJSON() ([]byte, error) {
	if d == nil {
		return []byte("null"), nil
	}
	ids := make([]int, 0, len(d))
	for id := range d {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strconv.Itoa(id))
		b.WriteString(`":`)
		b.WriteString(strconv.Itoa(d[id]))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Report returns the host in the shape of `qnuma topology --json`.
func (h *Host) Report() Report {
	_, most := h.ThreadsPerCore()
	r := Report{
		Nodes:          make([]NodeReport, len(h.Nodes)),
		OnlineCPUs:     h.OnlineCPUs.String(),
		Cores:          len(h.Cores()),
		Packages:       len(h.Packages()),
		ThreadsPerCore: most,
		AllowedCPUs:    h.Allowed.CPUs.String(),
		AllowedSource:  h.Allowed.Source,
		CPUs:           make([]CPUReport, len(h.CPUs)),
	}
	if h.Allowed.Source != SourceNone {
		mems := h.Allowed.Mems.String()
		r.AllowedMems = &mems
	}
	for i, n := range h.Nodes {
		nr := NodeReport{
			ID:                n.ID,
			CPUs:              n.CPUs.String(),
			MemoryTotalBytes:  n.MemTotal,
			MemoryFreeBytes:   n.MemFree,
			MemoryFreeUnknown: n.MemFreeUnknown,
			InactiveFileBytes: n.InactiveFile,
			Hugepages:         []HugepagesReport{},
		}
		if n.Distances != nil {
			nr.Distances = Distances(maps.Clone(n.Distances))
		}
		for _, hp := range n.Hugepages {
			nr.Hugepages = append(nr.Hugepages, HugepagesReport(hp))
		}
		r.Nodes[i] = nr
	}
	for i, c := range h.CPUs {
		r.CPUs[i] = CPUReport{ID: c.ID, Node: c.Node, Package: c.Package, Die: c.Die, Core: c.Core, Siblings: c.Siblings.String()}
	}
	return r
}
