package plan

import (
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
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
	lay := &layout{}
	if t := spec.Topology; t != nil && len(spec.Cells) == 0 {
		// The user's -smp is kept: each guest node takes whole sockets, so
		// the vCPUs are split in sockets.
		per := t.Dies * t.Cores * t.Threads
		socketCaps := make([]int, len(caps))
		room := 0
		for i, c := range caps {
			socketCaps[i] = c / per
			room += socketCaps[i]
		}
		if room < t.Sockets {
			return nil, fmt.Sprintf("%s: a guest socket (%d vCPUs) stays on one node, and they have room for %d whole sockets", topologyPhrase(*t), per, room)
		}
		lay.vcpus = splitVCPUs(socketCaps, t.Sockets)
		for i := range lay.vcpus {
			lay.vcpus[i] *= per
		}
	} else {
		lay.vcpus = splitVCPUs(caps, spec.VCPUs)
	}
	lay.mem, lay.memByRoom = splitMemory(memCaps, spec.MemoryBytes, granule(spec))
	for i, m := range lay.mem {
		// Memory is split in whole granules (hugepages): with fewer
		// granules than nodes a node with vCPUs may get none, and its guest
		// node is CPUs only (layoutReasons says so). A node holding
		// neither is no part of the VM.
		if m == 0 && lay.vcpus[i] == 0 {
			return nil, fmt.Sprintf("%s in %s granules leaves node %d neither memory nor vCPUs", sizeString(spec.MemoryBytes), sizeString(granule(spec)), set[i].Node)
		}
	}
	if spec.Policy == memobj.PolicyInterleave && lay.memByRoom {
		return nil, fmt.Sprintf("--policy interleave spreads %s evenly over the %d nodes, and %s", sizeString(spec.MemoryBytes), len(set), shortNode(set, spec))
	}
	return lay, ""
}

// shortNode names the first node of set without room for an even share of
// the memory.
func shortNode(set []*nodeRoom, spec Spec) string {
	g := granule(spec)
	n := spec.MemoryBytes / g
	k := uint64(len(set))
	for i, r := range set {
		share := n / k
		if uint64(i) < n%k {
			share++
		}
		if share*g > r.memCap {
			return fmt.Sprintf("node %d has room for %s of its %s", r.Node, sizeString(r.memCap), sizeString(share*g))
		}
	}
	return "a node is short"
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
	t := spec.Topology
	if t != nil {
		evenSplit = true // every guest node is whole sockets of the user's
	}
	switch {
	case t != nil:
		p.Sockets, p.Cores, p.Threads = t.Sockets, t.Cores, t.Threads
	case evenSplit:
		p.Sockets, p.Cores, p.Threads = len(shares), shares[0]/threads, threads
	default:
		// -smp must multiply out and guest sockets must not straddle
		// nodes, so each vCPU is its own socket.
		p.Sockets, p.Cores, p.Threads = spec.VCPUs, 1, 1
	}

	var used []int // the dedicated CPUs; one set at the end (a Union per vCPU is quadratic)
	vcpu := 0
	for g, i := range order {
		r := c.set[i]
		gn := GuestNode{ID: g, HostNodes: []int{r.Node}, MemoryBytes: c.lay.mem[i]}
		p.HostNodes = append(p.HostNodes, r.Node)
		for l := 0; l < c.lay.vcpus[i]; l++ {
			v := VCPU{ID: vcpu, GuestNode: g, HostCPUs: hostCPUs(r, spec, l)}
			if t != nil {
				v.Socket, _, v.Core, v.Thread = t.IDs(vcpu)
			} else if evenSplit {
				v.Socket, v.Core, v.Thread = g, l/threads, l%threads
			} else {
				v.Socket = vcpu
			}
			if spec.Dedicated {
				used = append(used, v.HostCPUs.UnsortedList()...)
			}
			gn.VCPUs = append(gn.VCPUs, vcpu)
			p.VCPUs = append(p.VCPUs, v)
			vcpu++
		}
		p.GuestNodes = append(p.GuestNodes, gn)
	}
	sort.Ints(p.HostNodes)
	if spec.Policy == memobj.PolicyInterleave {
		// The user asked for interleave: each guest node's backend spreads
		// its pages over every chosen node (its vCPUs stay on their own
		// node), so the VM's RAM is interleaved as a whole.
		for i := range p.GuestNodes {
			p.GuestNodes[i].HostNodes = slices.Clone(p.HostNodes)
		}
	}

	free := make([]cpuset.CPUSet, 0, len(c.set))
	for _, r := range c.set {
		free = append(free, r.FreeCPUs)
	}
	nodeCPUs := cpuset.New().Union(free...)
	// A dedicated VM's other threads share its own dedicated CPUs (libvirt
	// and Nova's "share" policy): on the node's spare CPUs they would run
	// where a later dedicated VM's vCPUs are placed.
	p.EmulatorCPUs = nodeCPUs
	emuShared := spec.Dedicated
	if emuShared {
		p.EmulatorCPUs = cpuset.New(used...)
	}
	p.Mempolicy = Mempolicy{Mode: spec.Policy, Nodes: cpuset.New(p.HostNodes...)}
	if spec.Policy == memobj.PolicyPreferred && len(p.HostNodes) > 1 {
		// MPOL_PREFERRED takes only the first node of a set: preferring
		// them all is MPOL_PREFERRED_MANY.
		p.Mempolicy.Mode = memobj.PolicyPreferredMany
	}
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
		if t := spec.Topology; t != nil {
			out = append(out, fmt.Sprintf("The guest gets one NUMA node per host node, vCPUs split %s in whole sockets of the user's own topology (%s, kept as written).", split, topologyPhrase(*t)))
		} else if evenSplit {
			out = append(out, fmt.Sprintf("The guest gets one NUMA node per host node, vCPUs split %s; guest node i is guest socket i (-smp sockets=%d,cores=%d,threads=%d).", split, p.Sockets, p.Cores, p.Threads))
		} else {
			out = append(out, fmt.Sprintf("The guest gets one NUMA node per host node, vCPUs split %s; as that split is uneven, each vCPU is its own guest socket so that -smp multiplies out.", split))
		}
		out = append(out, memoryReason(p, c, order))
	}
	if r := cpuOnlyReason(p, spec); r != "" {
		out = append(out, r)
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
	out = append(out, policyReasons(p)...)
	return out
}

// memoryReason says how guest memory is split over the host nodes.
func memoryReason(p *Plan, c *choice, order []int) string {
	var mem []string
	for i, g := range p.GuestNodes {
		m := sizeString(g.MemoryBytes)
		if g.MemoryBytes == 0 {
			m = "none"
		}
		mem = append(mem, fmt.Sprintf("%s on node %d", m, c.set[order[i]].Node))
	}
	how := "evenly"
	if c.lay.memByRoom {
		how = "by room, as an even split would not fit"
	}
	if p.Spec.Policy == memobj.PolicyInterleave {
		return fmt.Sprintf("Guest memory is split %s (%s), and each guest node's backend interleaves its pages over every chosen node (%s, --policy interleave), so each host node holds about 1/%d of the VM's RAM.",
			how, strings.Join(mem, ", "), nodesPhrase(cpuset.New(p.HostNodes...)), len(p.HostNodes))
	}
	return fmt.Sprintf("Memory is split %s: %s.", how, strings.Join(mem, ", "))
}

// cpuOnlyReason explains guest nodes with vCPUs and no memory: the memory
// is split in whole granules and has fewer of them than the nodes.
func cpuOnlyReason(p *Plan, spec Spec) string {
	var none []int
	for _, g := range p.GuestNodes {
		if g.MemoryBytes == 0 && len(g.VCPUs) > 0 {
			none = append(none, g.ID)
		}
	}
	if len(none) == 0 {
		return ""
	}
	g := granule(spec)
	unit := "MiB"
	if spec.HugepageBytes > oneMiB {
		unit = sizeString(spec.HugepageBytes) + " hugepage"
	}
	which := "guest node " + idList(none) + " has"
	if len(none) > 1 {
		which = "guest nodes " + idList(none) + " have"
	}
	return fmt.Sprintf("%s is %d whole %ss, fewer than the %d nodes the vCPUs need, so %s vCPUs and no memory: their vCPUs reach the other nodes' memory.",
		sizeString(spec.MemoryBytes), spec.MemoryBytes/g, unit, len(p.GuestNodes), which)
}

// policyReasons says what memory policy each part of the VM gets.
func policyReasons(p *Plan) []string {
	m := p.Mempolicy
	switch {
	case m.Mode == memobj.PolicyPreferredMany && p.BindOnly:
		fb, _ := m.Fallback()
		return []string{fmt.Sprintf("qemu starts preferring %s as a set (MPOL_PREFERRED_MANY, Linux 5.15 or newer); where the kernel refuses that mode, the fallback is MPOL_PREFERRED on %s only. The user's backends keep their own policies.",
			nodesPhrase(m.Nodes), nodesPhrase(fb.Nodes))}
	case m.Mode == memobj.PolicyPreferredMany:
		fb, _ := m.Fallback()
		return []string{fmt.Sprintf("Guest RAM: each guest node's backend prefers its own host node (policy=preferred, one node each). qemu's own allocations prefer %s as a set (MPOL_PREFERRED_MANY, Linux 5.15 or newer); where the kernel refuses that mode, the fallback is MPOL_PREFERRED on %s only.",
			nodesPhrase(m.Nodes), nodesPhrase(fb.Nodes))}
	case m.Mode == memobj.PolicyPreferred:
		return []string{fmt.Sprintf("qemu starts under the preferred memory policy on %s; guest RAM backends prefer it too.", nodesPhrase(m.Nodes))}
	}
	return []string{fmt.Sprintf("qemu starts under the %s memory policy on %s.", m.Mode, nodesPhrase(m.Nodes))}
}

// Fallback is the policy to apply where the kernel refuses m (EINVAL):
// MPOL_PREFERRED_MANY (Linux 5.15) falls back to MPOL_PREFERRED on the
// first of its nodes, which is what the kernel's MPOL_PREFERRED takes of a
// node set anyway. ok is false when m needs no fallback.
func (m Mempolicy) Fallback() (fb Mempolicy, ok bool) {
	if m.Mode != memobj.PolicyPreferredMany || m.Nodes.IsEmpty() {
		return Mempolicy{}, false
	}
	return Mempolicy{Mode: memobj.PolicyPreferred, Nodes: cpuset.New(m.Nodes.List()[0])}, true
}

// knownDistances reports whether the host gives a distance (either way)
// between every two nodes of set: without one, sets are not told apart by
// distance (every pair counts 20) and a reason must not cite a distance.
func knownDistances(set []*nodeRoom) bool {
	for i, a := range set {
		for _, b := range set[i+1:] {
			_, ab := a.dist[b.Node]
			_, ba := b.dist[a.Node]
			if !ab && !ba {
				return false
			}
		}
	}
	return true
}

// topologyPhrase is the user's -smp as resolved, for sentences.
func topologyPhrase(t memobj.Topology) string {
	dies := ""
	if t.Dies > 1 {
		dies = fmt.Sprintf(" × %d dies", t.Dies)
	}
	return fmt.Sprintf("-smp gives %d sockets%s × %d cores × %d threads", t.Sockets, dies, t.Cores, t.Threads)
}

// topologyNote is what the user's own topology adds to a "does not fit":
// each guest node must be whole sockets of it.
func topologyNote(spec Spec) string {
	t := spec.Topology
	if t == nil || len(spec.Cells) > 0 {
		return ""
	}
	return fmt.Sprintf(" in whole guest sockets (%s, kept as written: a socket of %d vCPUs stays on one node)", topologyPhrase(*t), t.Dies*t.Cores*t.Threads)
}
