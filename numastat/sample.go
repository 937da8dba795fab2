package numastat

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/qnuma/qnuma/procfs"
	"github.com/qnuma/qnuma/topology"
)

// LowLocal is the local percentage under which memory placement hurts
// (esxtop flags N%L under 80).
const LowLocal = 80.0

// Home is where a VM belongs: its host nodes, and per vCPU index the host
// nodes of its guest node. Nil Nodes means "the node with most guest RAM".
type Home struct {
	Nodes []int
	VCPUs [][]int
}

// Sample is one look at a QEMU process.
type Sample struct {
	PID int `json:"pid"`
	// HomeNodes, and whether they came from the caller (the ledger) or were
	// taken as the node holding most guest RAM.
	HomeNodes []int `json:"home_nodes"`
	HomeGiven bool  `json:"home_from_ledger"`
	// RAM is guest RAM resident per node, ascending by node.
	RAM []NodeBytes `json:"guest_ram"`
	// RAMMatch says how the guest RAM mappings were found (Match*), and
	// RAMMappings how many there are.
	RAMMatch    string `json:"guest_ram_match"`
	RAMMappings int    `json:"guest_ram_mappings"`
	// Local and remote bytes against the home nodes (esxtop's NLMEM, NRMEM).
	LocalBytes  uint64 `json:"local_bytes"`
	RemoteBytes uint64 `json:"remote_bytes"`
	// LocalPercent is 100 × local / (local + remote), 100 with no RAM yet.
	LocalPercent float64 `json:"local_percent"`
	LowLocal     bool    `json:"low_local"`
	VCPUs        []VCPU  `json:"vcpus"`
	// Threads is every thread, vCPUs included.
	Threads int `json:"threads"`
	// OutsideNow counts vCPUs whose last CPU is outside their home nodes;
	// OutsideSince (set by Since) those that ran since the previous sample
	// and last ran outside, -1 before there is a previous sample.
	OutsideNow   int `json:"vcpus_outside_now"`
	OutsideSince int `json:"vcpus_ran_outside_since_last"`
}

// NodeBytes is an amount of memory on one node.
type NodeBytes struct {
	Node  int    `json:"node"`
	Bytes uint64 `json:"bytes"`
}

// VCPU is one vCPU thread.
type VCPU struct {
	Thread
	Index     int
	HomeNodes []int
	// LastNode is the node of LastCPU, -1 when no node lists it.
	LastNode int
	Outside  bool
	// Stale: its last CPU is outside the CPUs it may use now, so it has not
	// run since its affinity was set (a paused VM's vCPUs): where it last
	// ran says nothing about where it runs, and it does not count as outside.
	Stale bool
	// RanOutside: it ran since the previous sample and last ran outside.
	RanOutside bool
}

// Take samples pid: guest RAM per node from root/proc/PID/numa_maps (sized
// by the command line's memory backends or -m), and its vCPU threads. host
// maps CPUs to nodes.
func Take(root string, host *topology.Host, pid int, home Home) (*Sample, error) {
	cmdline, err := procfs.Read(root, procfs.PID(pid, "cmdline"), procfs.Small)
	if err != nil {
		return nil, fmt.Errorf("sample pid %d: %w", pid, err)
	}
	sizes, err := RAMSizes(cmdline)
	if err != nil {
		return nil, fmt.Errorf("sample pid %d: %w", pid, err)
	}
	ms, err := ReadMappings(root, pid)
	if err != nil {
		return nil, fmt.Errorf("sample pid %d: %w", pid, err)
	}
	threads, err := ReadThreads(root, pid)
	if err != nil {
		return nil, fmt.Errorf("sample pid %d: %w", pid, err)
	}
	return Build(host, pid, ms, sizes, threads, home), nil
}

// Build makes a sample from what was read; it is pure.
func Build(host *topology.Host, pid int, ms []Mapping, sizes []uint64, threads []Thread, home Home) *Sample {
	s := &Sample{PID: pid, Threads: len(threads), OutsideSince: -1}
	ram, how := GuestRAM(ms, sizes)
	s.RAMMatch, s.RAMMappings = how, len(ram)
	perNode := map[int]uint64{}
	for _, m := range ram {
		for n, b := range m.NodeBytes() {
			perNode[n] += b
		}
	}
	for n, b := range perNode {
		s.RAM = append(s.RAM, NodeBytes{n, b})
	}
	sort.Slice(s.RAM, func(i, j int) bool { return s.RAM[i].Node < s.RAM[j].Node })

	s.HomeNodes, s.HomeGiven = home.Nodes, home.Nodes != nil
	if !s.HomeGiven {
		s.HomeNodes = mostRAM(s.RAM)
	}
	for _, nb := range s.RAM {
		if slices.Contains(s.HomeNodes, nb.Node) {
			s.LocalBytes += nb.Bytes
		} else {
			s.RemoteBytes += nb.Bytes
		}
	}
	s.LocalPercent = 100
	if t := s.LocalBytes + s.RemoteBytes; t > 0 {
		s.LocalPercent = 100 * float64(s.LocalBytes) / float64(t)
	}
	s.LowLocal = s.LocalPercent < LowLocal

	nodeOf := map[int]int{}
	for _, c := range host.CPUs {
		nodeOf[c.ID] = c.Node
	}
	for _, th := range threads {
		if th.VCPU < 0 {
			continue
		}
		v := VCPU{Thread: th, Index: th.VCPU, HomeNodes: s.HomeNodes, LastNode: -1}
		if th.VCPU < len(home.VCPUs) && len(home.VCPUs[th.VCPU]) > 0 {
			v.HomeNodes = home.VCPUs[th.VCPU]
		}
		if n, ok := nodeOf[th.LastCPU]; ok {
			v.LastNode = n
		}
		v.Stale = th.Allowed.Size() > 0 && !th.Allowed.Contains(th.LastCPU)
		v.Outside = !v.Stale && !slices.Contains(v.HomeNodes, v.LastNode)
		if v.Outside {
			s.OutsideNow++
		}
		s.VCPUs = append(s.VCPUs, v)
	}
	sort.Slice(s.VCPUs, func(i, j int) bool { return s.VCPUs[i].Index < s.VCPUs[j].Index })
	return s
}

// mostRAM is the node holding most guest RAM (the lowest id on a tie), or
// none when there is no RAM resident.
func mostRAM(ram []NodeBytes) []int {
	best := -1
	var most uint64
	for _, nb := range ram {
		if nb.Bytes > most {
			best, most = nb.Node, nb.Bytes
		}
	}
	if best < 0 {
		return []int{}
	}
	return []int{best}
}

// Since compares s with the previous sample of the same process: a vCPU
// whose thread ran in between (its ticks grew) and whose last CPU is outside
// its home nodes counts in OutsideSince. A vCPU that left and came back
// between the two samples is not seen: this is a lower bound.
func (s *Sample) Since(prev *Sample) {
	if prev == nil || prev.PID != s.PID {
		return
	}
	before := map[int]VCPU{}
	for _, v := range prev.VCPUs {
		before[v.TID] = v
	}
	s.OutsideSince = 0
	for i := range s.VCPUs {
		v := &s.VCPUs[i]
		p, ok := before[v.TID]
		v.RanOutside = v.Outside && (!ok || v.Ticks > p.Ticks || v.LastCPU != p.LastCPU)
		if v.RanOutside {
			s.OutsideSince++
		}
	}
}

// MarshalJSON writes a vCPU with its CPU set as a cpulist.
func (v VCPU) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Index      int    `json:"vcpu"`
		TID        int    `json:"tid"`
		Comm       string `json:"comm"`
		Allowed    string `json:"allowed_cpus"`
		LastCPU    int    `json:"last_cpu"`
		LastNode   int    `json:"last_node"`
		HomeNodes  []int  `json:"home_nodes"`
		Outside    bool   `json:"outside"`
		Stale      bool   `json:"not_run_since_pinned"`
		RanOutside bool   `json:"ran_outside_since_last"`
	}{v.Index, v.TID, v.Comm, v.Allowed.String(), v.LastCPU, v.LastNode, v.HomeNodes, v.Outside, v.Stale, v.RanOutside})
}
