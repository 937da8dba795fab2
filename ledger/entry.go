package ledger

import (
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/memobj"
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
	// VCPUHomeNodes[i] are the host nodes that back vCPU i's guest node
	// (i its cpu-index; a VM with hotplug room may have absent slots below
	// a present one: SlotHomeNodes).
	VCPUHomeNodes [][]int
	// HugepageBytes is the page size backing guest RAM (0: none).
	HugepageBytes uint64
	Created       time.Time

	// GuestNodes is the guest's NUMA layout: the host nodes behind each
	// guest node, its vCPUs, memory and backend (qnuma move keeps it).
	GuestNodes []GuestNode
	// Dedicated: each vCPU has host CPUs of its own (--cpus-dedicated).
	Dedicated bool
	// NotMovable says why the VM cannot be moved live ("" when it can).
	NotMovable string
	// Cgroup is the VM's own cpuset cgroup directory ("" when it has none).
	Cgroup string
	// Moves are the VM's live moves, oldest first (qnuma stat's NMIG).
	Moves []Move
	// Locked: the user placed or pinned the VM by hand, and qnuma balance
	// leaves it where it is.
	Locked bool

	// VCPUSlots are every vCPU a VM with hotplug room (--max-vcpus) may
	// have, present at start or not, in plan order: those present at start
	// (ascending ids, possibly of several guest nodes), then the absent
	// ones in the order qnuma vcpus adds them. Each says where qnuma vcpus
	// plugs and pins it (empty: the VM has no vCPU hotplug room).
	VCPUSlots []VCPUSlot
	// MemorySlots are the virtio-mem devices of a VM with memory hotplug
	// room (--max-memory), one per guest node that can grow.
	MemorySlots []MemorySlot
}

// VCPUSlot is one vCPU of a VM with hotplug room.
type VCPUSlot struct {
	ID        int
	GuestNode int
	// HostCPUs are the CPUs its thread is pinned to.
	HostCPUs cpuset.CPUSet
	// SocketID, CoreID and ThreadID are its slot in -smp's topology, as
	// query-hotpluggable-cpus names it.
	SocketID, CoreID, ThreadID int
	// Hotplug: absent at start, so qnuma vcpus may add and remove it.
	Hotplug bool
	// Present: qemu has it now.
	Present bool
}

// MemorySlot is one guest node's virtio-mem device.
type MemorySlot struct {
	GuestNode int    `json:"guest_node"`
	Device    string `json:"device"`
	Memdev    string `json:"memdev"`
	HostNodes []int  `json:"host_nodes"`
	// MaxBytes is its backend's size: the most it can plug.
	MaxBytes uint64 `json:"max_bytes"`
	// RequestedBytes is what qnuma memory last asked the guest to plug.
	RequestedBytes uint64 `json:"requested_bytes"`
	// DIMMBytes, when not 0, says the growth is plugged as DIMMs of that
	// size (plan.DIMMIDs), not by the virtio-mem device (Device and Memdev
	// are then empty).
	DIMMBytes uint64 `json:"dimm_bytes,omitempty"`
}

// vcpuSlotJSON is a VCPUSlot in the file, its CPUs as a cpulist.
type vcpuSlotJSON struct {
	ID        int    `json:"id"`
	GuestNode int    `json:"guest_node"`
	HostCPUs  string `json:"host_cpus"`
	SocketID  int    `json:"socket_id"`
	CoreID    int    `json:"core_id"`
	ThreadID  int    `json:"thread_id"`
	Hotplug   bool   `json:"hotplug,omitempty"`
	Present   bool   `json:"present,omitempty"`
}

// GuestNode is one guest NUMA node of a VM in the ledger.
type GuestNode struct {
	ID          int    `json:"id"`
	HostNodes   []int  `json:"host_nodes"`
	VCPUs       []int  `json:"vcpus,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes"`
	// Backend is the id of its memory backend ("" for none).
	Backend string `json:"backend,omitempty"`
	// Policy is the backend's policy (bind, preferred, interleave).
	Policy string `json:"policy,omitempty"`
}

// Move is one live move of a VM.
type Move struct {
	At time.Time `json:"at"`
	// From and To are the host nodes of each guest node before and after.
	From [][]int `json:"from"`
	To   [][]int `json:"to"`
	// Bytes of guest RAM and of qemu's own memory moved.
	Bytes uint64 `json:"bytes"`
	// Took is how long the move took.
	Took time.Duration `json:"took_ns"`
	// By is what moved it ("qnuma move", "qnuma balance").
	By string `json:"by,omitempty"`
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
		if len(p.HotplugVCPUs) == 0 {
			e.VCPUHomeNodes = append(e.VCPUHomeNodes, append([]int(nil), home...))
		}
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
	bindings := p.Bindings()
	for i, g := range p.GuestNodes {
		gn := GuestNode{ID: g.ID, HostNodes: append([]int(nil), g.HostNodes...), VCPUs: append([]int(nil), g.VCPUs...), MemoryBytes: g.MemoryBytes}
		if i < len(bindings) {
			gn.Backend, gn.Policy = bindings[i].Backend, bindings[i].Policy
		}
		e.GuestNodes = append(e.GuestNodes, gn)
	}
	e.Dedicated = p.Spec.Dedicated
	if len(p.HotplugVCPUs) > 0 {
		// Present at start: the plan's VCPUs, by id (slot), whichever
		// slots they are (a VM over several guest nodes starts with the
		// first slots of each); the slots in plan order, those present
		// first, then the absent ones in the order qnuma vcpus adds them.
		present := map[int]bool{}
		for _, v := range p.VCPUs {
			present[v.ID] = true
		}
		t := memobj.Topology{Sockets: p.Sockets, Dies: 1, Clusters: 1, Cores: p.Cores, Threads: p.Threads}
		for _, v := range append(append([]plan.VCPU(nil), p.VCPUs...), p.HotplugVCPUs...) {
			s, c, th := v.Socket, v.Core, v.Thread
			if p.Sockets > 0 && p.Cores > 0 && p.Threads > 0 { // as -numa cpu maps the slots
				s, _, c, th = t.IDs(v.ID)
			}
			e.VCPUSlots = append(e.VCPUSlots, VCPUSlot{ID: v.ID, GuestNode: v.GuestNode, HostCPUs: v.HostCPUs,
				SocketID: s, CoreID: c, ThreadID: th, Hotplug: !present[v.ID], Present: present[v.ID]})
		}
		e.VCPUHomeNodes = e.SlotHomeNodes()
	}
	for _, m := range p.HotplugMemory {
		dev, memdev := plan.HotplugIDs(m.GuestNode)
		if m.DIMMBytes > 0 {
			dev, memdev = "", ""
		}
		e.MemorySlots = append(e.MemorySlots, MemorySlot{GuestNode: m.GuestNode, Device: dev, Memdev: memdev,
			HostNodes: append([]int(nil), m.HostNodes...), MaxBytes: m.Bytes, DIMMBytes: m.DIMMBytes})
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

// SlotHomeNodes is VCPUHomeNodes for a VM with hotplug room, from its
// slots as they are now: by cpu-index, up to the highest present slot,
// each its guest node's host nodes (an absent slot below it, which has no
// thread, its planned ones). nil without slots.
func (e Entry) SlotHomeNodes() [][]int {
	n := 0
	for _, s := range e.VCPUSlots {
		if s.Present && s.ID >= 0 {
			n = max(n, s.ID+1)
		}
	}
	if n == 0 {
		return nil
	}
	homes := make([][]int, n)
	for _, s := range e.VCPUSlots {
		if s.ID < 0 || s.ID >= n {
			continue
		}
		home := e.HostNodes
		for _, g := range e.GuestNodes {
			if g.ID == s.GuestNode && len(g.HostNodes) > 0 {
				home = g.HostNodes
			}
		}
		homes[s.ID] = append([]int(nil), home...)
	}
	return homes
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
	GuestNodes    []GuestNode    `json:"guest_nodes,omitempty"`
	Dedicated     bool           `json:"dedicated,omitempty"`
	NotMovable    string         `json:"not_movable,omitempty"`
	Cgroup        string         `json:"cgroup,omitempty"`
	Moves         []Move         `json:"moves,omitempty"`
	Locked        bool           `json:"locked,omitempty"`
	VCPUSlots     []vcpuSlotJSON `json:"vcpu_slots,omitempty"`
	MemorySlots   []MemorySlot   `json:"memory_slots,omitempty"`
}

// MarshalJSON writes the entry in the ledger's file format.
func (e Entry) MarshalJSON() ([]byte, error) {
	var slots []vcpuSlotJSON
	for _, v := range e.VCPUSlots {
		slots = append(slots, vcpuSlotJSON{ID: v.ID, GuestNode: v.GuestNode, HostCPUs: v.HostCPUs.String(),
			SocketID: v.SocketID, CoreID: v.CoreID, ThreadID: v.ThreadID, Hotplug: v.Hotplug, Present: v.Present})
	}
	return json.Marshal(entryJSON{
		Version: formatVersion, Name: e.Name, Owner: e.Owner, QEMU: e.QEMU,
		HostNodes: e.HostNodes, MemoryBytes: e.MemoryBytes, VCPUs: e.VCPUs,
		DedicatedCPUs: e.DedicatedCPUs.String(), VCPUCPUs: e.VCPUCPUs.String(),
		EmulatorCPUs: e.EmulatorCPUs.String(), VCPUHomeNodes: e.VCPUHomeNodes,
		HugepageBytes: e.HugepageBytes, Created: e.Created,
		GuestNodes: e.GuestNodes, Dedicated: e.Dedicated, NotMovable: e.NotMovable,
		Cgroup: e.Cgroup, Moves: e.Moves, Locked: e.Locked,
		VCPUSlots: slots, MemorySlots: e.MemorySlots,
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
	var slots []VCPUSlot
	for _, v := range w.VCPUSlots {
		c, err := cpulist.Parse(v.HostCPUs)
		if err != nil {
			return fmt.Errorf("vcpu slot %d host cpus %q: %w", v.ID, clip(v.HostCPUs), err)
		}
		slots = append(slots, VCPUSlot{ID: v.ID, GuestNode: v.GuestNode, HostCPUs: c,
			SocketID: v.SocketID, CoreID: v.CoreID, ThreadID: v.ThreadID, Hotplug: v.Hotplug, Present: v.Present})
	}
	*e = Entry{
		Name: w.Name, Owner: w.Owner, QEMU: w.QEMU, HostNodes: w.HostNodes,
		MemoryBytes: w.MemoryBytes, VCPUs: w.VCPUs, DedicatedCPUs: sets[0],
		VCPUCPUs: sets[1], EmulatorCPUs: sets[2],
		VCPUHomeNodes: w.VCPUHomeNodes, HugepageBytes: w.HugepageBytes, Created: w.Created,
		GuestNodes: w.GuestNodes, Dedicated: w.Dedicated, NotMovable: w.NotMovable,
		Cgroup: w.Cgroup, Moves: w.Moves, Locked: w.Locked,
		VCPUSlots: slots, MemorySlots: w.MemorySlots,
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
	// A guest has at most as many nodes as QEMU allows (MAX_NODES, 128);
	// the move history keeps the latest maxEntryMoves.
	maxEntryGuestNodes = 128
	maxEntryMoves      = 64
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
	if len(w.GuestNodes) > maxEntryGuestNodes || len(w.Moves) > maxEntryMoves {
		return fmt.Errorf("%d guest nodes and %d moves, more than %d and %d", len(w.GuestNodes), len(w.Moves), maxEntryGuestNodes, maxEntryMoves)
	}
	if len(w.VCPUSlots) > maxEntryVCPUs || len(w.MemorySlots) > maxEntryGuestNodes {
		return fmt.Errorf("%d vcpu slots and %d memory slots, more than %d and %d", len(w.VCPUSlots), len(w.MemorySlots), maxEntryVCPUs, maxEntryGuestNodes)
	}
	for _, m := range w.MemorySlots {
		if m.MaxBytes > maxEntryNodeBytes || m.RequestedBytes > m.MaxBytes || len(m.HostNodes) > cpulist.MaxID {
			return fmt.Errorf("memory slot %q out of range", clip(m.Device))
		}
	}
	for _, g := range w.GuestNodes {
		if g.ID < 0 || g.ID >= cpulist.MaxID || g.MemoryBytes > maxEntryNodeBytes || len(g.VCPUs) > maxEntryVCPUs || len(g.HostNodes) > cpulist.MaxID {
			return fmt.Errorf("guest node %d out of range", g.ID)
		}
		for _, n := range g.HostNodes {
			if n < 0 || n >= cpulist.MaxID {
				return fmt.Errorf("guest node %d: host node %d out of range", g.ID, n)
			}
		}
	}
	return nil
}
