package plan

import (
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// layout is how a node set holds the VM: vCPUs and memory per node, in the
// set's order.
type layout struct {
	vcpus     []int
	mem       []uint64
	memByRoom bool // memory split by room because an even split does not fit
}

// fit lays the VM out on set, or says why it does not fit.
func fit(set []*nodeRoom, spec Spec) (*layout, string) {
	caps := make([]int, len(set))
	memCaps := make([]uint64, len(set))
	cpus, cpuNodes := 0, 0
	var mem uint64
	for i, r := range set {
		if !r.MemoryOnly {
			caps[i] = r.CPUs
			cpus += r.CPUs
			cpuNodes++
		}
		memCaps[i] = r.memCap
		mem += r.memCap
	}
	switch {
	case cpuNodes == 0:
		return nil, "none of them has a usable CPU for the vCPUs"
	case cpus < spec.VCPUs:
		return nil, fmt.Sprintf("%d vCPUs asked, they have %d %s", spec.VCPUs, cpus, cpuUnit(spec))
	case mem < spec.MemoryBytes:
		return nil, fmt.Sprintf("%s asked, they have %s free", sizeString(spec.MemoryBytes), sizeString(mem))
	}
	lay := &layout{vcpus: splitVCPUs(caps, spec.VCPUs)}
	lay.mem, lay.memByRoom = splitMemory(memCaps, spec.MemoryBytes, granule(spec))
	for i, m := range lay.mem {
		if m == 0 {
			return nil, fmt.Sprintf("%s is too little to give each of %d nodes a share (node %d gets none)", sizeString(spec.MemoryBytes), len(set), set[i].Node)
		}
	}
	return lay, ""
}

// splitVCPUs fills nodes evenly up to their caps (water-filling); the
// remainder goes to the first nodes. The caps must add up to at least n.
func splitVCPUs(caps []int, n int) []int {
	level := func(l int) int {
		s := 0
		for _, c := range caps {
			s += min(c, l)
		}
		return s
	}
	// The highest level whose fill does not exceed n.
	lo, hi := 0, 0
	for _, c := range caps {
		hi = max(hi, c)
	}
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if level(mid) <= n {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	shares := make([]int, len(caps))
	left := n
	for i, c := range caps {
		shares[i] = min(c, lo)
		left -= shares[i]
	}
	for i, c := range caps {
		if left == 0 {
			break
		}
		if c > shares[i] {
			shares[i]++
			left--
		}
	}
	return shares
}

// splitMemory splits total in granules g: evenly when every node has room
// for an even share, else in proportion to each node's room. The shares add
// up to total exactly. The caps (multiples of g) must add up to at least total.
func splitMemory(caps []uint64, total, g uint64) (shares []uint64, byRoom bool) {
	k := uint64(len(caps))
	n := total / g
	shares = make([]uint64, len(caps))
	even := true
	for i, c := range caps {
		s := n / k
		if uint64(i) < n%k {
			s++
		}
		shares[i] = s
		if s*g > c {
			even = false
		}
	}
	if !even {
		var sum uint64
		for _, c := range caps {
			sum += c / g
		}
		var given uint64
		rem := make([]uint64, len(caps))
		for i, c := range caps {
			hi, lo := bits.Mul64(n, c/g)
			shares[i], rem[i] = bits.Div64(hi, lo, sum) // n <= sum, so no overflow
			given += shares[i]
		}
		// The granules left go to the largest fractions, as in rounding.
		order := make([]int, len(caps))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return rem[order[a]] > rem[order[b]] })
		for _, i := range order {
			if given == n {
				break
			}
			if shares[i] < caps[i]/g {
				shares[i]++
				given++
			}
		}
	}
	for i := range shares {
		shares[i] *= g
	}
	return shares, !even
}

// build turns the chosen node set into the Plan.
func build(spec Spec, all []*nodeRoom, c *choice) *Plan {
	p := &Plan{Spec: spec, BindOnly: spec.BindOnly}
	for _, r := range all {
		p.Rooms = append(p.Rooms, r.Room)
	}
	// Guest nodes: those with vCPUs first (guest node i is socket i), each
	// group in host node order.
	order := make([]int, len(c.set))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		va, vb := c.lay.vcpus[order[a]] > 0, c.lay.vcpus[order[b]] > 0
		if va != vb {
			return va
		}
		return c.set[order[a]].Node < c.set[order[b]].Node
	})

	shares := []int{}
	for _, i := range order {
		if c.lay.vcpus[i] > 0 {
			shares = append(shares, c.lay.vcpus[i])
		}
	}
	threads := 1
	if spec.Dedicated && spec.PreferHT && pairable(c, order) {
		threads = 2
	}
	evenSplit := true
	for _, s := range shares {
		if s != shares[0] {
			evenSplit = false
		}
	}
	if evenSplit {
		p.Sockets, p.Cores, p.Threads = len(shares), shares[0]/threads, threads
	} else {
		// -smp must multiply out and guest sockets must not straddle
		// nodes, so each vCPU is its own socket.
		p.Sockets, p.Cores, p.Threads = spec.VCPUs, 1, 1
	}

	used := cpuset.New()
	vcpu := 0
	for g, i := range order {
		r := c.set[i]
		gn := GuestNode{ID: g, HostNodes: []int{r.Node}, MemoryBytes: c.lay.mem[i]}
		p.HostNodes = append(p.HostNodes, r.Node)
		for l := 0; l < c.lay.vcpus[i]; l++ {
			v := VCPU{ID: vcpu, GuestNode: g, HostCPUs: hostCPUs(r, spec, l)}
			if evenSplit {
				v.Socket, v.Core, v.Thread = g, l/threads, l%threads
			} else {
				v.Socket = vcpu
			}
			if spec.Dedicated {
				used = used.Union(v.HostCPUs)
			}
			gn.VCPUs = append(gn.VCPUs, vcpu)
			p.VCPUs = append(p.VCPUs, v)
			vcpu++
		}
		p.GuestNodes = append(p.GuestNodes, gn)
	}
	sort.Ints(p.HostNodes)

	nodeCPUs := cpuset.New()
	for _, r := range c.set {
		nodeCPUs = nodeCPUs.Union(r.FreeCPUs)
	}
	// A dedicated VM's other threads share its own dedicated CPUs (libvirt
	// and Nova's "share" policy): on the node's spare CPUs they would run
	// where a later dedicated VM's vCPUs are placed.
	p.EmulatorCPUs = nodeCPUs
	emuShared := spec.Dedicated
	if emuShared {
		p.EmulatorCPUs = used
	}
	p.Mempolicy = Mempolicy{Mode: spec.Policy, Nodes: cpuset.New(p.HostNodes...)}
	p.Distances = guestDistances(c.set, order)

	p.Reasons = append(p.Reasons, fmt.Sprintf("Asked for %d vCPUs and %s; a node's CPU room counts its free %s%s.",
		spec.VCPUs, sizeString(spec.MemoryBytes), map[bool]string{false: "physical cores (--prefer-ht counts threads)", true: "SMT threads (--prefer-ht)"}[spec.PreferHT],
		map[bool]string{false: "", true: fmt.Sprintf(", at most %d per node", spec.MaxVCPUsPerNode)}[spec.MaxVCPUsPerNode > 0]))
	p.Reasons = append(p.Reasons, c.reasons...)
	p.Reasons = append(p.Reasons, layoutReasons(p, spec, c, order, evenSplit, emuShared)...)
	return p
}

// pairable reports whether every vCPU node's share is even and lands on
// whole sibling pairs, so guest thread pairs can be host sibling pairs.
func pairable(c *choice, order []int) bool {
	for _, i := range order {
		n := c.lay.vcpus[i]
		if n == 0 {
			continue
		}
		if n%2 != 0 || len(c.set[i].cores) < n/2 {
			return false
		}
		for _, co := range c.set[i].cores[:n/2] {
			if len(co.threads) != 2 {
				return false
			}
		}
	}
	return true
}

// hostCPUs is where the l-th vCPU on node r runs: all of the node's usable
// CPUs when shared; when dedicated, its own core (its own thread with
// PreferHT, siblings taken in pairs).
func hostCPUs(r *nodeRoom, spec Spec, l int) cpuset.CPUSet {
	if !spec.Dedicated {
		return r.FreeCPUs
	}
	if !spec.PreferHT {
		return cpuset.New(r.cores[l].threads...)
	}
	for _, co := range r.cores {
		if l < len(co.threads) {
			return cpuset.New(co.threads[l])
		}
		l -= len(co.threads)
	}
	panic("plan: vcpu beyond the node's threads") // fit() checked the room
}

// guestDistances mirrors the host distances between the guest nodes' host
// nodes; nil for one guest node or when the host gives no distances.
func guestDistances(set []*nodeRoom, order []int) [][]int {
	if len(set) < 2 {
		return nil
	}
	d := make([][]int, len(order))
	for gi, i := range order {
		d[gi] = make([]int, len(order))
		for gj, j := range order {
			if i == j {
				d[gi][gj] = 10
				continue
			}
			v, ok := set[i].dist[set[j].Node]
			if !ok {
				return nil
			}
			d[gi][gj] = v
		}
	}
	return d
}

// layoutReasons explains the vCPU split, memory split, pinning and policy.
func layoutReasons(p *Plan, spec Spec, c *choice, order []int, evenSplit, emuShared bool) []string {
	var out []string
	if len(p.GuestNodes) > 1 {
		var parts []string
		for _, g := range p.GuestNodes {
			parts = append(parts, strconv.Itoa(len(g.VCPUs)))
		}
		split := strings.Join(parts, "+")
		if evenSplit {
			out = append(out, fmt.Sprintf("The guest gets one NUMA node per host node, vCPUs split %s; guest node i is guest socket i (-smp sockets=%d,cores=%d,threads=%d).", split, p.Sockets, p.Cores, p.Threads))
		} else {
			out = append(out, fmt.Sprintf("The guest gets one NUMA node per host node, vCPUs split %s; as that split is uneven, each vCPU is its own guest socket so that -smp multiplies out.", split))
		}
		var mem []string
		for _, g := range p.GuestNodes {
			mem = append(mem, fmt.Sprintf("%s on node %d", sizeString(g.MemoryBytes), g.HostNodes[0]))
		}
		if c.lay.memByRoom {
			out = append(out, fmt.Sprintf("Memory is split by room, as an even split would not fit: %s.", strings.Join(mem, ", ")))
		} else {
			out = append(out, fmt.Sprintf("Memory is split evenly: %s.", strings.Join(mem, ", ")))
		}
	}
	switch {
	case spec.Overcommit:
		out = append(out, "vCPUs are shared and may outnumber the CPUs (--overcommit): each floats over its host node's usable CPUs.")
	case !spec.Dedicated:
		out = append(out, "vCPUs are shared: each floats over its host node's usable CPUs.")
	case p.Threads == 2:
		out = append(out, "Each vCPU has its own host thread (--cpus-dedicated --prefer-ht); guest thread pairs are host sibling pairs.")
	case spec.PreferHT:
		out = append(out, "Each vCPU has its own host thread (--cpus-dedicated --prefer-ht); the shares do not fall on whole sibling pairs, so the guest sees one thread per core.")
	default:
		out = append(out, "Each vCPU has its own host core (--cpus-dedicated), siblings included, so no other vCPU shares it.")
	}
	if emuShared {
		out = append(out, fmt.Sprintf("qemu's other threads share the vCPUs' dedicated CPUs (%s), so they never run on a CPU another VM is given (--emulator-cpus to choose).", p.EmulatorCPUs))
	} else {
		out = append(out, fmt.Sprintf("qemu's other threads run on CPUs %s of the chosen nodes.", p.EmulatorCPUs))
	}
	out = append(out, fmt.Sprintf("qemu starts under the %s memory policy on %s.", p.Mempolicy.Mode, nodesPhrase(p.Mempolicy.Nodes)))
	return out
}
