package ledger

import (
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/plan"
)

// formatVersion is written into every entry file; a reader refuses other
// versions rather than misreading them.
const formatVersion = 1

// Proc names one process for good: a pid alone is reused by the kernel, a
// pid with its start time (/proc/PID/stat field 22) is not.
type Proc struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// Entry is one VM in the ledger: who placed it, its qemu once started, and
// what its plan takes from the host.
type Entry struct {
	Name string
	// Owner is the qnuma process that placed the VM.
	Owner Proc
	// QEMU is zero until Reservation.SetQEMU.
	QEMU Proc
	// HostNodes used, ascending.
	HostNodes []int
	// MemoryBytes promised per host node id.
	MemoryBytes map[int]uint64
	// VCPUs per host node id.
	VCPUs map[int]int
	// DedicatedCPUs are host CPUs given to this VM alone (empty for shared
	// vCPUs).
	DedicatedCPUs cpuset.CPUSet
	// VCPUCPUs are the host CPUs its vCPU threads may run on (the union).
	VCPUCPUs cpuset.CPUSet
	// EmulatorCPUs are the host CPUs its other threads (main loop, I/O
	// threads) may run on.
	EmulatorCPUs cpuset.CPUSet
	// VCPUHomeNodes[i] are the host nodes that back vCPU i's guest node.
	VCPUHomeNodes [][]int
	// HugepageBytes is the page size backing guest RAM (0: none).
	HugepageBytes uint64
	Created       time.Time
}

// Placed is the entry as the planner takes it.
func (e Entry) Placed() plan.Placed {
	return plan.Placed{
		Name:          e.Name,
		MemoryBytes:   e.MemoryBytes,
		VCPUs:         e.VCPUs,
		DedicatedCPUs: e.DedicatedCPUs,
		CPUs:          e.threadCPUs(),
		HugepageBytes: e.HugepageBytes,
	}
}

// threadCPUs is every host CPU one of the VM's threads may run on.
func (e Entry) threadCPUs() cpuset.CPUSet {
	return e.DedicatedCPUs.Union(e.VCPUCPUs).Union(e.EmulatorCPUs)
}

// TotalMemory is the memory promised over all nodes.
func (e Entry) TotalMemory() uint64 {
	var t uint64
	for _, b := range e.MemoryBytes {
		t += b
	}
	return t
}

// TotalVCPUs is the number of vCPUs over all nodes.
func (e Entry) TotalVCPUs() int {
	t := 0
	for _, n := range e.VCPUs {
		t += n
	}
	return t
}

// summarize is what a plan takes from the host. A guest node backed by
// several host nodes (interleave) is counted as spread evenly over them.
func summarize(p *plan.Plan) Entry {
	e := Entry{
		HostNodes:     append([]int(nil), p.HostNodes...),
		MemoryBytes:   map[int]uint64{},
		VCPUs:         map[int]int{},
		DedicatedCPUs: cpuset.New(),
		VCPUCPUs:      cpuset.New(),
		EmulatorCPUs:  p.EmulatorCPUs,
		HugepageBytes: p.Spec.HugepageBytes,
	}
	spread := func(total uint64, nodes []int) {
		if len(nodes) == 0 {
			return
		}
		share := total / uint64(len(nodes))
		for i, n := range nodes {
			b := share
			if i == 0 {
				b += total - share*uint64(len(nodes))
			}
			e.MemoryBytes[n] += b
		}
	}
	if len(p.GuestNodes) == 0 {
		spread(p.Spec.MemoryBytes, p.HostNodes)
	}
	for _, g := range p.GuestNodes {
		spread(g.MemoryBytes, g.HostNodes)
	}
	for _, v := range p.VCPUs {
		home := p.HostNodes
		if v.GuestNode >= 0 && v.GuestNode < len(p.GuestNodes) && len(p.GuestNodes[v.GuestNode].HostNodes) > 0 {
			home = p.GuestNodes[v.GuestNode].HostNodes
		}
		e.VCPUHomeNodes = append(e.VCPUHomeNodes, append([]int(nil), home...))
		if len(home) > 0 {
			e.VCPUs[home[v.ID%len(home)]]++
		}
		e.VCPUCPUs = e.VCPUCPUs.Union(v.HostCPUs)
		if p.Spec.Dedicated {
			e.DedicatedCPUs = e.DedicatedCPUs.Union(v.HostCPUs)
		}
	}
	// The hotplug room is promised too: the growth was planned on these
	// nodes, and a VM placed later must not take it.
	for _, m := range p.HotplugMemory {
		spread(m.Bytes, m.HostNodes)
	}
	for _, v := range p.HotplugVCPUs {
		home := p.HostNodes
		if v.GuestNode >= 0 && v.GuestNode < len(p.GuestNodes) && len(p.GuestNodes[v.GuestNode].HostNodes) > 0 {
			home = p.GuestNodes[v.GuestNode].HostNodes
		}
		if len(home) > 0 {
			e.VCPUs[home[v.ID%len(home)]]++
		}
		e.VCPUCPUs = e.VCPUCPUs.Union(v.HostCPUs)
		if p.Spec.Dedicated {
			e.DedicatedCPUs = e.DedicatedCPUs.Union(v.HostCPUs)
		}
	}
	return e
}

// entryJSON is the file format: sets as cpulist strings, a version number.
type entryJSON struct {
	Version       int            `json:"version"`
	Name          string         `json:"name"`
	Owner         Proc           `json:"owner"`
	QEMU          Proc           `json:"qemu"`
	HostNodes     []int          `json:"host_nodes"`
	MemoryBytes   map[int]uint64 `json:"memory_bytes"`
	VCPUs         map[int]int    `json:"vcpus"`
	DedicatedCPUs string         `json:"dedicated_cpus"`
	VCPUCPUs      string         `json:"vcpu_cpus,omitempty"`
	EmulatorCPUs  string         `json:"emulator_cpus,omitempty"`
	VCPUHomeNodes [][]int        `json:"vcpu_home_nodes,omitempty"`
	HugepageBytes uint64         `json:"hugepage_bytes,omitempty"`
	Created       time.Time      `json:"created"`
}

// MarshalJSON writes the entry in the ledger's file format.
func (e Entry) MarshalJSON() ([]byte, error) {
	return json.Marshal(entryJSON{
		Version: formatVersion, Name: e.Name, Owner: e.Owner, QEMU: e.QEMU,
		HostNodes: e.HostNodes, MemoryBytes: e.MemoryBytes, VCPUs: e.VCPUs,
		DedicatedCPUs: e.DedicatedCPUs.String(), VCPUCPUs: e.VCPUCPUs.String(),
		EmulatorCPUs: e.EmulatorCPUs.String(), VCPUHomeNodes: e.VCPUHomeNodes,
		HugepageBytes: e.HugepageBytes, Created: e.Created,
	})
}

// UnmarshalJSON reads the ledger's file format.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var w entryJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Version != formatVersion {
		return fmt.Errorf("entry format version %d, want %d", w.Version, formatVersion)
	}
	var sets [3]cpuset.CPUSet
	for i, f := range []struct{ what, s string }{
		{"dedicated cpus", w.DedicatedCPUs}, {"vcpu cpus", w.VCPUCPUs}, {"emulator cpus", w.EmulatorCPUs},
	} {
		c, err := cpulist.Parse(f.s)
		if err != nil {
			return fmt.Errorf("%s %q: %w", f.what, clip(f.s), err)
		}
		sets[i] = c
	}
	if err := w.checkCounts(); err != nil {
		return err
	}
	*e = Entry{
		Name: w.Name, Owner: w.Owner, QEMU: w.QEMU, HostNodes: w.HostNodes,
		MemoryBytes: w.MemoryBytes, VCPUs: w.VCPUs, DedicatedCPUs: sets[0],
		VCPUCPUs: sets[1], EmulatorCPUs: sets[2],
		VCPUHomeNodes: w.VCPUHomeNodes, HugepageBytes: w.HugepageBytes, Created: w.Created,
	}
	return nil
}

// clip shortens a string from a file for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Bounds on what an entry may claim: a node id as cpulist bounds it, a
// node's memory under 2^50 bytes (1 PiB), a node's vCPUs within QEMU's
// most. A file claiming more is corrupt: its sums would wrap and make a
// full node look free.
const (
	maxEntryNodeBytes = 1 << 50
	maxEntryVCPUs     = 4096
)

func (w entryJSON) checkCounts() error {
	var total uint64
	for n, b := range w.MemoryBytes {
		if n < 0 || n >= cpulist.MaxID {
			return fmt.Errorf("memory_bytes: node %d out of range", n)
		}
		if b > maxEntryNodeBytes {
			return fmt.Errorf("memory_bytes: node %d holds %d bytes, more than %d", n, b, uint64(maxEntryNodeBytes))
		}
		total += b
	}
	if total > maxEntryNodeBytes {
		return fmt.Errorf("memory_bytes: %d bytes in all, more than %d", total, uint64(maxEntryNodeBytes))
	}
	vcpus := 0
	for n, c := range w.VCPUs {
		if n < 0 || n >= cpulist.MaxID || c < 0 || c > maxEntryVCPUs {
			return fmt.Errorf("vcpus: node %d has %d vcpus", n, c)
		}
		vcpus += c
	}
	if vcpus > maxEntryVCPUs {
		return fmt.Errorf("vcpus: %d in all, more than %d", vcpus, maxEntryVCPUs)
	}
	for _, n := range w.HostNodes {
		if n < 0 || n >= cpulist.MaxID {
			return fmt.Errorf("host_nodes: node %d out of range", n)
		}
	}
	if w.HugepageBytes > maxEntryNodeBytes {
		return fmt.Errorf("hugepage_bytes %d out of range", w.HugepageBytes)
	}
	return nil
}
