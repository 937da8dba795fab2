// Package balancetest gives tests of qnuma balance a host to sample (a
// topotest machine with /proc/stat and qemu processes written as the
// kernel shows them) and a Mover that records what it is asked.
package balancetest

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/balance"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology/topotest"
)

// Machine is a host of nodes × cpusPerNode CPUs (no SMT), each node of
// totalGiB with freeGiB of it free (MemFree; Inactive(file) 0), CPUs
// numbered node by node. It is written with Write.
func Machine(nodes, cpusPerNode int, totalGiB uint64, freeGiB ...uint64) topotest.Machine {
	m := topotest.Machine{Possible: nodes * cpusPerNode, Offline: cpuset.New(), Topology: func(cpu int) map[string]string {
		return map[string]string{
			"physical_package_id":  fmt.Sprint(cpu / cpusPerNode),
			"core_id":              fmt.Sprint(cpu % cpusPerNode),
			"thread_siblings_list": fmt.Sprint(cpu),
			"thread_siblings":      topotest.Mask(cpuset.New(cpu), nodes*cpusPerNode),
		}
	}}
	for n := 0; n < nodes; n++ {
		free := totalGiB
		if n < len(freeGiB) {
			free = freeGiB[n]
		}
		m.Nodes = append(m.Nodes, topotest.MachineNode{ID: n, CPUs: topotest.Range(n*cpusPerNode, (n+1)*cpusPerNode), TotalKB: totalGiB << 20, FreeKB: free << 20})
		row := make([]int, nodes)
		for j := range row {
			row[j] = 21
			if j == n {
				row[j] = 10
			}
		}
		m.Distance = append(m.Distance, row)
	}
	return m
}

// WriteCPUTimes writes root/proc/stat with each CPU's busy and idle ticks.
func WriteCPUTimes(t testing.TB, root string, times map[int]balance.CPUTime) {
	t.Helper()
	var b strings.Builder
	b.WriteString("cpu  0 0 0 0 0 0 0 0 0 0\n")
	for _, c := range slices.Sorted(maps.Keys(times)) {
		ct := times[c]
		// user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice
		fmt.Fprintf(&b, "cpu%d %d 0 0 %d 0 0 0 0 %d 0\n", c, ct.Busy, ct.Idle, ct.Busy/2)
	}
	b.WriteString("intr 0\nctxt 0\nbtime 1700000000\n")
	topotest.WriteTree(t, root, map[string]string{"proc/stat": b.String()})
}

// QEMU is a qemu process as /proc shows it: one guest RAM mapping of
// the sum of RAM's sizes, resident on each node as RAM says, and a thread
// per vCPU with its run time.
type QEMU struct {
	PID       int
	StartTime uint64
	RAM       map[int]uint64 // bytes resident per host node
	// VCPUTicks are each vCPU thread's utime+stime; VCPUCPUs where it may run.
	VCPUTicks []uint64
	VCPUCPUs  cpuset.CPUSet
	// GuestNodes, when set, stand for RAM: a memory-backend-memfd per
	// guest node, mapped shared, bound to its host nodes.
	GuestNodes []GuestNode
}

// GuestNode is one guest node's memfd: its size, the host nodes its
// policy binds it to, and its pages resident per host node.
type GuestNode struct {
	Size      uint64
	HostNodes []int
	RAM       map[int]uint64
}

// Proc is q as the ledger names it.
func (q QEMU) Proc() ledger.Proc { return ledger.Proc{PID: q.PID, StartTime: q.StartTime} }

// Write writes q under root/proc/PID.
func (q QEMU) Write(t testing.TB, root string) {
	t.Helper()
	var size uint64
	for _, b := range q.RAM {
		size += b
	}
	const start = 0x7f0000000000
	dir := filepath.Join("proc", fmt.Sprint(q.PID))
	pages := func(ram map[int]uint64) string {
		var b strings.Builder
		for _, n := range slices.Sorted(maps.Keys(ram)) {
			fmt.Fprintf(&b, " N%d=%d", n, ram[n]/4096)
		}
		return b.String()
	}
	argv := []string{"qemu-system-x86_64", "-m", fmt.Sprintf("%dM", size>>20)}
	numaMaps := "55d000000000 default file=/usr/bin/qemu-system-x86_64 mapped=10 N0=10 kernelpagesize_kB=4\n"
	mapsFile := "55d000000000-55d000010000 r-xp 00000000 fe:00 1 /usr/bin/qemu-system-x86_64\n"
	if len(q.GuestNodes) == 0 {
		numaMaps += fmt.Sprintf("%x default anon=%d dirty=%d%s kernelpagesize_kB=4\n", start, size/4096, size/4096, pages(q.RAM))
		mapsFile += fmt.Sprintf("%x-%x rw-p 00000000 00:00 0\n", start, start+size)
	}
	at := uint64(start)
	var total uint64
	for i, g := range q.GuestNodes {
		total += g.Size
		hs := make([]string, len(g.HostNodes))
		for j, h := range g.HostNodes {
			hs[j] = fmt.Sprint(h)
		}
		nodes := strings.Join(hs, ",")
		argv = append(argv, "-object", fmt.Sprintf("memory-backend-memfd,id=m%d,size=%d,host-nodes=%s,policy=bind", i, g.Size, nodes))
		var resident uint64
		for _, b := range g.RAM {
			resident += b
		}
		numaMaps += fmt.Sprintf("%x bind:%s file=/memfd:memory-backend-memfd\\040(deleted) dirty=%d mapped=%d%s kernelpagesize_kB=4\n", at, nodes, resident/4096, resident/4096, pages(g.RAM))
		mapsFile += fmt.Sprintf("%x-%x rw-s 00000000 00:01 %d /memfd:memory-backend-memfd (deleted)\n", at, at+g.Size, 1000+i)
		at += g.Size + 1<<20
	}
	if total > 0 {
		argv[2] = fmt.Sprintf("%dM", total>>20)
	}
	argv = append(argv, "-name", "vm,debug-threads=on", "")
	f := map[string]string{
		dir + "/cmdline":   strings.Join(argv, "\x00"),
		dir + "/numa_maps": numaMaps,
		dir + "/maps":      mapsFile,
		dir + "/stat":      stat(q.PID, "qemu-system-x86", 0, q.StartTime, 0),
	}
	cpus := q.VCPUCPUs.String()
	f[dir+fmt.Sprintf("/task/%d/stat", q.PID)] = stat(q.PID, "qemu-system-x86", 0, q.StartTime, 0)
	f[dir+fmt.Sprintf("/task/%d/status", q.PID)] = fmt.Sprintf("Name:\tqemu-system-x86\nCpus_allowed_list:\t%s\n", cpus)
	for i, ticks := range q.VCPUTicks {
		tid := q.PID + 1 + i
		comm := fmt.Sprintf("CPU %d/KVM", i)
		f[dir+fmt.Sprintf("/task/%d/stat", tid)] = stat(tid, comm, ticks, q.StartTime, q.VCPUCPUs.List()[0])
		f[dir+fmt.Sprintf("/task/%d/status", tid)] = fmt.Sprintf("Name:\t%s\nCpus_allowed_list:\t%s\n", comm, cpus)
	}
	topotest.WriteTree(t, root, f)
}

// stat is a /proc/PID/stat line: ticks in utime, start time in field 22,
// the last CPU in field 39.
func stat(pid int, comm string, ticks, start uint64, cpu int) string {
	f := make([]string, 52)
	for i := range f {
		f[i] = "0"
	}
	f[0], f[1], f[2] = fmt.Sprint(pid), "("+comm+")", "S"
	f[13], f[21], f[38] = fmt.Sprint(ticks), fmt.Sprint(start), fmt.Sprint(cpu)
	return strings.Join(f, " ") + "\n"
}

// Mover is a balance.Mover that records its calls. Fit and Err, when
// set, answer Fits and Move, WaitFit WaitingFits (unset: no waiting VM
// fits); Result is what a move returns.
type Mover struct {
	mu      sync.Mutex
	Fit     func(vm ledger.Entry, to map[int][]int) error
	WaitFit func(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error
	Err     error
	Result  balance.MoveResult
	// Asked are the Fits calls ("vm 0:1"); Moved the moves made.
	Asked []string
	Moved []balance.MoveRequest
}

var _ balance.Mover = (*Mover)(nil)

func (m *Mover) Fits(vm ledger.Entry, to map[int][]int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Asked = append(m.Asked, vm.Name+" "+balance.FormatLayout(to))
	if m.Fit != nil {
		return m.Fit(vm, to)
	}
	return nil
}

// WaitingFits answers with WaitFit (Config.WaitingFits).
func (m *Mover) WaitingFits(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error {
	if m.WaitFit != nil {
		return m.WaitFit(w, moved, to)
	}
	return fmt.Errorf("%w: balancetest.Mover has no WaitFit", plan.ErrDoesNotFit)
}

func (m *Mover) Move(ctx context.Context, req balance.MoveRequest) (balance.MoveResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Err != nil {
		return balance.MoveResult{}, m.Err
	}
	m.Moved = append(m.Moved, req)
	return m.Result, nil
}

// Moves returns the moves made so far.
func (m *Mover) Moves() []balance.MoveRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.Moved)
}
