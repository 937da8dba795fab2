package balance

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/procfs"
	"github.com/qnuma/qnuma/topology"
)

// Sample is one look at the host and the ledger's VMs.
type Sample struct {
	At time.Time
	// CPUKnown: CPU use was measured over an interval (every sample but a
	// Sampler's first).
	CPUKnown bool
	Nodes    []Node
	VMs      []VM
	// Waiting are the ledger's waiting VMs (qnuma run --wait), which the
	// caller lists: the Sampler does not.
	Waiting []ledger.Waiting
}

// Node is one host node as a sample saw it.
type Node struct {
	ID   int
	CPUs int // online CPUs
	// TotalBytes, and FreeBytes as the planner counts free memory:
	// MemFree + Inactive(file), numad's count too.
	TotalBytes, FreeBytes uint64
	// CPUPercent is the node's CPUs' busy time over the interval, 0-100
	// (0 when the sample has no interval).
	CPUPercent float64
	Distances  map[int]int
}

// MemPercent is the share of the node's memory in use, 0-100 (0 for a node
// without memory).
func (n Node) MemPercent() float64 {
	if n.TotalBytes == 0 || n.FreeBytes >= n.TotalBytes {
		return 0
	}
	return 100 * float64(n.TotalBytes-n.FreeBytes) / float64(n.TotalBytes)
}

// Use is the node's use as numad's target counts it: the larger of its
// memory and CPU use, in percent.
func (n Node) Use() float64 { return max(n.MemPercent(), n.CPUPercent) }

// VM is one ledger VM as a sample saw it.
type VM struct {
	Entry ledger.Entry
	// RAM is its guest RAM resident per host node (numa_maps).
	RAM map[int]uint64
	// LocalPercent is the share of RAM on its home nodes (the ledger's
	// host nodes), 100 with none resident.
	LocalPercent float64
	// GuestNodes is each guest node's RAM and locality against the host
	// nodes the ledger plans for it (MatchGuestNodes); nil when they could
	// not be told apart, and GuestNodesNote says why.
	GuestNodes     []GuestNodeRAM
	GuestNodesNote string
	// VCPUUse is its vCPU threads' run time over the interval, in CPUs
	// (1.5: one and a half CPUs busy); 0 without an interval.
	VCPUUse float64
	// NotSampled says why it could not be looked at ("" when it was): its
	// qemu exited or is not the ledger's any more.
	NotSampled string
}

// RAMBytes is all of its resident guest RAM.
func (v VM) RAMBytes() uint64 {
	var t uint64
	for _, b := range v.RAM {
		t += b
	}
	return t
}

// Sampler takes samples of a root ("/" in production), keeping what it
// needs to measure use between two of them.
type Sampler struct {
	Root string

	prevCPU map[int]CPUTime
	// prevTicks is each VM's vCPU ticks at the previous sample, by its
	// qemu (a VM restarted under the same name starts over).
	prevTicks map[ledger.Proc]uint64
}

// Sample looks at the host's nodes and at each VM of entries. A VM whose
// qemu is gone or is another process now is kept with NotSampled set;
// any other failure to read is an error.
func (s *Sampler) Sample(entries []ledger.Entry, now time.Time) (Sample, error) {
	host, err := topology.Read(s.Root)
	if err != nil {
		return Sample{}, fmt.Errorf("sample host: %w", err)
	}
	cpu, err := ReadCPUTimes(s.Root)
	if err != nil {
		return Sample{}, fmt.Errorf("sample host: %w", err)
	}
	out := Sample{At: now, CPUKnown: s.prevCPU != nil}
	// elapsed is the interval in ticks, as the CPUs counted it: the mean
	// of their total time's growth, so that no clock of ours is mixed in.
	var elapsed float64
	if out.CPUKnown {
		var sum float64
		n := 0
		for id, t := range cpu {
			if p, ok := s.prevCPU[id]; ok && t.Total() >= p.Total() {
				sum += float64(t.Total() - p.Total())
				n++
			}
		}
		if n > 0 {
			elapsed = sum / float64(n)
		}
		out.CPUKnown = elapsed > 0
	}
	for _, hn := range host.Nodes {
		n := Node{ID: hn.ID, CPUs: hn.CPUs.Size(), TotalBytes: hn.MemTotal, FreeBytes: hn.MemFree + hn.InactiveFile, Distances: hn.Distances}
		if n.FreeBytes > n.TotalBytes {
			n.FreeBytes = n.TotalBytes
		}
		if out.CPUKnown {
			n.CPUPercent = busyPercent(hn.CPUs.List(), s.prevCPU, cpu)
		}
		out.Nodes = append(out.Nodes, n)
	}
	ticks := map[ledger.Proc]uint64{}
	for _, e := range entries {
		v, t, err := s.sampleVM(host, e)
		if err != nil {
			return Sample{}, err
		}
		if v.NotSampled == "" {
			ticks[e.QEMU] = t
			if p, ok := s.prevTicks[e.QEMU]; ok && out.CPUKnown && t >= p {
				v.VCPUUse = float64(t-p) / elapsed
			}
		}
		out.VMs = append(out.VMs, v)
	}
	sort.Slice(out.VMs, func(i, j int) bool { return out.VMs[i].Entry.Name < out.VMs[j].Entry.Name })
	s.prevCPU, s.prevTicks = cpu, ticks
	return out, nil
}

// busyPercent is the busy share of cpus' time between two readings.
func busyPercent(cpus []int, prev, now map[int]CPUTime) float64 {
	var busy, total uint64
	for _, c := range cpus {
		p, ok1 := prev[c]
		t, ok2 := now[c]
		if !ok1 || !ok2 || t.Busy < p.Busy || t.Idle < p.Idle {
			continue // came online in between, or the counters went back
		}
		busy += t.Busy - p.Busy
		total += t.Total() - p.Total()
	}
	if total == 0 {
		return 0
	}
	return 100 * float64(busy) / float64(total)
}

// sampleVM reads one VM's guest RAM per node and its vCPUs' ticks.
func (s *Sampler) sampleVM(host *topology.Host, e ledger.Entry) (VM, uint64, error) {
	v := VM{Entry: e}
	if e.QEMU.PID == 0 {
		v.NotSampled = "its qemu has not started yet"
		return v, 0, nil
	}
	st, err := numastat.ReadProcStat(s.Root, e.QEMU.PID)
	if gone(err) {
		v.NotSampled = fmt.Sprintf("its qemu (pid %d) has exited", e.QEMU.PID)
		return v, 0, nil
	}
	if err != nil {
		return v, 0, fmt.Errorf("sample vm %s: %w", e.Name, err)
	}
	if st.StartTime != e.QEMU.StartTime {
		v.NotSampled = fmt.Sprintf("pid %d is no longer its qemu (started at tick %d, the ledger's at %d)", e.QEMU.PID, st.StartTime, e.QEMU.StartTime)
		return v, 0, nil
	}
	// numastat.Take's reads, kept: the mappings also tell the guest nodes
	// apart.
	smp, ms, err := take(s.Root, host, e)
	if gone(err) {
		v.NotSampled = fmt.Sprintf("its qemu (pid %d) has exited", e.QEMU.PID)
		return v, 0, nil
	}
	if err != nil {
		return v, 0, fmt.Errorf("sample vm %s: %w", e.Name, err)
	}
	v.GuestNodes, v.GuestNodesNote = MatchGuestNodes(e, ms)
	v.RAM = map[int]uint64{}
	for _, nb := range smp.RAM {
		v.RAM[nb.Node] = nb.Bytes
	}
	v.LocalPercent = smp.LocalPercent
	// Without named vCPU threads (no debug-threads=on), the whole
	// process's time stands in for its vCPUs'.
	ticks := st.UTime + st.STime
	if len(smp.VCPUs) > 0 {
		ticks = 0
		for _, c := range smp.VCPUs {
			ticks += c.Ticks
		}
	}
	return v, ticks, nil
}

// take is numastat.Take of e's qemu, with the mappings it read.
func take(root string, host *topology.Host, e ledger.Entry) (*numastat.Sample, []numastat.Mapping, error) {
	pid := e.QEMU.PID
	cmdline, err := procfs.Read(root, procfs.PID(pid, "cmdline"), procfs.Small)
	if err != nil {
		return nil, nil, err
	}
	sizes, err := numastat.RAMSizes(cmdline)
	if err != nil {
		return nil, nil, err
	}
	ms, err := numastat.ReadMappings(root, pid)
	if err != nil {
		return nil, nil, err
	}
	threads, err := numastat.ReadThreads(root, pid)
	if err != nil {
		return nil, nil, err
	}
	home := numastat.Home{Nodes: slices.Clone(e.HostNodes), VCPUs: e.VCPUHomeNodes}
	return numastat.Build(host, pid, ms, sizes, threads, home), ms, nil
}

// gone: the process exited while being read.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
