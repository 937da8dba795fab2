package plan

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemucmd"
)

// Cell is one of the user's own guest NUMA nodes (-numa node), as written.
type Cell struct {
	// ID is the guest node id (nodeid=, else QEMU's next one).
	ID int
	// VCPUs are its vCPU indexes (cpus= and -numa cpu), ascending.
	VCPUs []int
	// MemoryBytes is its backend's size (memdev=) or mem=; 0 for none.
	MemoryBytes uint64
	// Backend is the memdev id; "" for mem= or a node without memory.
	Backend string
	// HostNodes are the backend's host-nodes= with Policy: the binding the
	// user gave. Nil: unbound, qnuma chooses a host node for the vCPUs.
	HostNodes []int
	Policy    string
	// Object is the user's backend as parsed (nil for mem= or none): an
	// unbound one is rendered back with the chosen host-nodes and policy
	// filled in, in its place on the command line.
	Object *qemucmd.Backend
	// Given, when not "", says in the plan's reasons where the cell and its
	// binding were given (a domain XML's <memnode>), in place of the
	// backend's host-nodes; Note adds a sentence about it.
	Given, Note string
}

// userCells reads the user's -numa cells for spec (vCPUs and memory
// already merged), refusing cells that do not cover every vCPU, a vCPU in
// two cells, a memdev that is not a backend of the line, and sizes that do
// not add up to -m. Every error wraps ErrBadSpec.
func userCells(user *QEMUArgv, t memobj.Topology, memory uint64) ([]Cell, error) {
	c := user.Cmdline
	if len(c.NumaNodes()) == 0 {
		return nil, nil // -numa dist or hmat alone: no cells to keep
	}
	backends := map[string]qemucmd.Backend{}
	for _, b := range c.Backends() {
		backends[b.ID] = b
	}
	var cells []Cell
	index := map[int]int{} // guest node id -> cells index
	for _, n := range c.NumaNodes() {
		cell := Cell{ID: len(cells)}
		if n.NodeID != nil {
			cell.ID = *n.NodeID
		}
		if _, dup := index[cell.ID]; dup {
			return nil, badSpec("-numa node,nodeid=%d is given twice", cell.ID)
		}
		switch {
		case n.Memdev != "":
			b, ok := backends[n.Memdev]
			if !ok {
				return nil, badSpec("-numa node,nodeid=%d has memdev=%s, which is not a memory backend of the qemu command line", cell.ID, n.Memdev)
			}
			cell.Backend, cell.MemoryBytes, cell.Policy, cell.Object = b.ID, b.Size, b.Policy, &b
			if b.HasHostNodes && !b.HostNodes.IsEmpty() {
				cell.HostNodes = b.HostNodes.List()
			}
		case n.HasMem:
			cell.MemoryBytes = n.Mem
		}
		cell.VCPUs = n.CPUs.List()
		index[cell.ID] = len(cells)
		cells = append(cells, cell)
	}
	owner := map[int]int{} // vCPU -> guest node id
	add := func(cell *Cell, v int, how string) error {
		if v >= t.MaxCPUs {
			return badSpec("guest node %d lists vCPU %d (%s), beyond the %d vCPUs -smp gives (0-%d)", cell.ID, v, how, t.MaxCPUs, t.MaxCPUs-1)
		}
		if o, ok := owner[v]; ok && o != cell.ID {
			return badSpec("vCPU %d is in guest node %d and in guest node %d: a vCPU belongs to one -numa node", v, o, cell.ID)
		}
		owner[v] = cell.ID
		return nil
	}
	for i := range cells {
		for _, v := range cells[i].VCPUs {
			if err := add(&cells[i], v, "cpus="); err != nil {
				return nil, err
			}
		}
	}
	for _, nc := range c.NumaCPUs() {
		i, ok := index[*nc.NodeID]
		if !ok {
			return nil, badSpec("-numa cpu,node-id=%d names a guest node no -numa node gives", *nc.NodeID)
		}
		for _, f := range []struct {
			key string
			p   *int
		}{{"cluster-id", nc.ClusterID}, {"module-id", nc.ModuleID}, {"book-id", nc.BookID}, {"drawer-id", nc.DrawerID}} {
			if f.p != nil {
				return nil, badSpec("-numa cpu,node-id=%d,%s=%d: x86 machines have no %s level", *nc.NodeID, f.key, *f.p, strings.TrimSuffix(f.key, "-id"))
			}
		}
		for v := 0; v < t.MaxCPUs; v++ {
			s, d, co, th := t.IDs(v)
			if match(nc.SocketID, s) && match(nc.DieID, d) && match(nc.CoreID, co) && match(nc.ThreadID, th) {
				if err := add(&cells[i], v, "-numa cpu"); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(owner) == 0 {
		// No cell lists a vCPU: QEMU maps them itself, x86 socket s to
		// guest node s mod the number of nodes (x86_get_default_cpu_node_id).
		for v := 0; v < t.MaxCPUs; v++ {
			s, _, _, _ := t.IDs(v)
			id := s % len(cells)
			i, ok := index[id]
			if !ok {
				return nil, badSpec("no -numa node lists vCPUs, so QEMU puts socket %d on guest node %d, which no -numa node gives: give the nodes ids 0-%d, or each its cpus=", s, id, len(cells)-1)
			}
			if err := add(&cells[i], v, "QEMU's default mapping"); err != nil {
				return nil, err
			}
		}
	}
	var missing []int
	for v := 0; v < t.CPUs; v++ {
		if _, ok := owner[v]; !ok {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return nil, badSpec("vCPUs %s are in no guest node: the -numa node cells (cpus=, or -numa cpu) must give every vCPU of -smp a node", idList(missing))
	}
	var sum uint64
	var sizes []string
	for i := range cells {
		vs := []int{}
		for v, id := range owner {
			if id == cells[i].ID {
				vs = append(vs, v)
			}
		}
		sort.Ints(vs)
		cells[i].VCPUs = vs
		sum += cells[i].MemoryBytes
		sizes = append(sizes, fmt.Sprintf("node %d %s", cells[i].ID, memobj.FormatSize(cells[i].MemoryBytes)))
	}
	if sum != memory {
		return nil, badSpec("the guest nodes' memory (%s) adds up to %s, not -m %s: QEMU insists they match", strings.Join(sizes, ", "), memobj.FormatSize(sum), memobj.FormatSize(memory))
	}
	return cells, nil
}

func match(want *int, got int) bool { return want == nil || *want == got }

// cellPlan places the user's own cells: a cell bound by its backend's
// host-nodes keeps them and its vCPUs run on their CPUs; an unbound cell
// gets the host node with room for its vCPUs and memory nearest to the
// nodes already used (then the roomiest), and its vCPUs run there.
func cellPlan(spec Spec, all []*nodeRoom) (*Plan, error) {
	p := &Plan{Spec: spec, BindOnly: spec.BindOnly}
	for _, r := range all {
		p.Rooms = append(p.Rooms, r.Room)
	}
	usedCPUs := map[int]int{}
	usedMem := map[int]uint64{}
	chosen := make([][]int, len(spec.Cells))
	inUse := map[int]bool{}
	for i, c := range spec.Cells {
		if c.HostNodes == nil {
			continue
		}
		for _, id := range c.HostNodes {
			r := roomOf(all, id)
			if r == nil {
				return nil, badSpec("guest node %d's backend %s has host-nodes=%s: host node %d does not exist (this host has nodes %s)", c.ID, c.Backend, idList(c.HostNodes), id, idList(nodeIDs(all)))
			}
			if spec.HostNodes != nil && !slices.Contains(spec.HostNodes, id) {
				return nil, badSpec("guest node %d's backend %s has host-nodes=%s, outside --host-nodes %s", c.ID, c.Backend, idList(c.HostNodes), idList(spec.HostNodes))
			}
			usedMem[id] += c.MemoryBytes / uint64(len(c.HostNodes))
			inUse[id] = true
		}
		usedCPUs[c.HostNodes[0]] += len(c.VCPUs)
		chosen[i] = c.HostNodes
	}
	var reasons []string
	for i, c := range spec.Cells {
		if chosen[i] != nil {
			r := fmt.Sprintf("Guest node %d (vCPUs %s, %s): host-nodes=%s policy=%s was given on its backend %s; its vCPUs run on those nodes' CPUs.",
				c.ID, vcpuPhrase(c.VCPUs), sizeString(c.MemoryBytes), idList(c.HostNodes), c.Policy, c.Backend)
			if c.Given != "" {
				r = fmt.Sprintf("Guest node %d (vCPUs %s, %s): %s gives host nodes %s; its vCPUs run on those nodes' CPUs.",
					c.ID, vcpuPhrase(c.VCPUs), sizeString(c.MemoryBytes), c.Given, idList(c.HostNodes))
			}
			reasons = append(reasons, withNote(r, c.Note))
			continue
		}
		var best *nodeRoom
		why := "nearest the other guest nodes' nodes, then the most room"
		if r := pinnedNode(all, spec, c); r != nil && usedMem[r.Node]+c.MemoryBytes <= r.memCap {
			// Its vCPUs are all pinned to one node's CPUs: its memory goes
			// there too.
			best, why = r, "every vCPU of it is pinned to CPUs of that node"
		}
		if best == nil {
			best = nearestRoom(all, spec, c, usedCPUs, usedMem, inUse)
		}
		if best == nil {
			return nil, fitError(spec, all, "guest node %d (vCPUs %s, %s) has an unbound backend, and no usable host node has room for it besides the other guest nodes", c.ID, vcpuPhrase(c.VCPUs), sizeString(c.MemoryBytes))
		}
		chosen[i] = []int{best.Node}
		usedCPUs[best.Node] += len(c.VCPUs)
		usedMem[best.Node] += c.MemoryBytes
		inUse[best.Node] = true
		fill := strconv.Itoa(best.Node)
		if cellPolicy(spec) == memobj.PolicyInterleave {
			fill = "(every node of the VM)"
		}
		what, mem := "its backend "+c.Backend+" has no host-nodes", fmt.Sprintf("qnuma fills in host-nodes=%s,policy=%s on backend %s, left open on the command line", fill, cellPolicy(spec), c.Backend)
		if c.Object == nil {
			what, mem = "it has no memory backend (mem= or none)", "its memory follows qemu's process memory policy, as it has no backend to bind"
		}
		if c.Given != "" {
			what = c.Given
			mem = fmt.Sprintf("qnuma renders host-nodes=%s,policy=%s on its backend %s", fill, cellPolicy(spec), c.Backend)
		}
		reasons = append(reasons, withNote(fmt.Sprintf("Guest node %d (vCPUs %s, %s): %s, so qnuma chose host node %d (room %d %s, %s free; %s) and pins its vCPUs there; %s.",
			c.ID, vcpuPhrase(c.VCPUs), sizeString(c.MemoryBytes), what, best.Node, best.CPUs, cpuUnit(spec), sizeString(best.memCap), why, mem), c.Note))
	}

	t := *spec.Topology
	p.Sockets, p.Cores, p.Threads = t.Sockets, t.Cores, t.Threads
	nodes := cpuset.New()
	// Hotpluggable vCPUs (-smp maxcpus=) are placed too, in
	// Plan.HotplugVCPUs; one in no cell is left out.
	total := max(spec.VCPUs, t.MaxCPUs)
	owner := make([]int, total)
	for v := range owner {
		owner[v] = -1
	}
	for i := range spec.Cells {
		nodes = nodes.Union(cpuset.New(chosen[i]...))
	}
	for i, c := range spec.Cells {
		mem := chosen[i]
		if c.HostNodes == nil && c.Object != nil {
			b := *c.Object
			if cellPolicy(spec) == memobj.PolicyInterleave {
				// --policy interleave: over every node of the VM.
				mem = nodes.List()
			}
			b.HostNodes, b.HasHostNodes, b.Policy = cpuset.New(mem...), true, string(cellPolicy(spec))
			p.Fill = append(p.Fill, b)
		}
		p.GuestNodes = append(p.GuestNodes, GuestNode{ID: c.ID, HostNodes: mem, VCPUs: slices.Clone(c.VCPUs), MemoryBytes: c.MemoryBytes})
		for _, v := range c.VCPUs {
			if v < total {
				owner[v] = i
			}
		}
	}
	p.HostNodes = nodes.List()
	vmCPUs := cpuset.New()
	for v := 0; v < total; v++ {
		g := owner[v]
		if g < 0 {
			continue
		}
		cpus := cpuset.New()
		for _, id := range chosen[g] {
			cpus = cpus.Union(roomOf(all, id).FreeCPUs)
		}
		if cpus.IsEmpty() {
			c := spec.Cells[g]
			return nil, fitError(spec, all, "guest node %d's vCPUs would run on host nodes %s, which have no usable CPU (offline, not allowed, or dedicated to other VMs)", c.ID, idList(chosen[g]))
		}
		if pin, ok := spec.VCPUPins[v]; ok {
			if err := checkPin(all, pin, fmt.Sprintf("vCPU %d", v)); err != nil {
				return nil, err
			}
			cpus = pin.CPUs
		}
		s, _, co, th := t.IDs(v)
		vc := VCPU{ID: v, GuestNode: g, Socket: s, Core: co, Thread: th, HostCPUs: cpus}
		if v >= spec.VCPUs {
			p.HotplugVCPUs = append(p.HotplugVCPUs, vc)
			continue
		}
		p.VCPUs = append(p.VCPUs, vc)
		vmCPUs = vmCPUs.Union(cpus)
	}
	p.EmulatorCPUs = vmCPUs
	if e := spec.EmulatorPin; e != nil {
		if err := checkPin(all, *e, "the emulator"); err != nil {
			return nil, err
		}
		p.EmulatorCPUs = e.CPUs
	}
	for _, io := range spec.IOThreads {
		t := IOThread{ID: io.ID, HostCPUs: p.EmulatorCPUs}
		if !io.Pin.CPUs.IsEmpty() {
			if err := checkPin(all, io.Pin, "I/O thread "+io.ID); err != nil {
				return nil, err
			}
			t.HostCPUs, t.Given = io.Pin.CPUs, true
		}
		p.IOThreads = append(p.IOThreads, t)
	}
	p.Distances = spec.GuestDistances
	p.Mempolicy = Mempolicy{Mode: spec.Policy, Nodes: nodes}
	if spec.Policy == memobj.PolicyPreferred && nodes.Size() > 1 {
		p.Mempolicy.Mode = memobj.PolicyPreferredMany
	}
	if spec.CellsFrom != "" {
		nodes := fmt.Sprintf("%d guest nodes", len(spec.Cells))
		if len(spec.Cells) == 1 {
			nodes = "one guest node"
		}
		p.Reasons = append(p.Reasons, fmt.Sprintf("%s gives %s, kept as given: each guest node's vCPUs are pinned to the CPUs of the host nodes its memory is bound to, unless pinned themselves.", spec.CellsFrom, nodes))
	} else {
		p.Reasons = append(p.Reasons, fmt.Sprintf("The qemu command line gives its own %d guest nodes (-numa node) and --bind-only keeps them: each guest node's vCPUs are pinned to the CPUs of the host nodes its memory is bound to.", len(spec.Cells)))
	}
	p.Reasons = append(p.Reasons, reasons...)
	p.Reasons = append(p.Reasons, pinReasons(spec, p, all)...)
	if len(spec.VCPUPins) < spec.VCPUs {
		p.Reasons = append(p.Reasons, "vCPUs are shared: each floats over its guest node's host CPUs.")
	}
	if e := spec.EmulatorPin; e != nil {
		p.Reasons = append(p.Reasons, fmt.Sprintf("qemu's other threads run on CPUs %s, as %s gives.", p.EmulatorCPUs, e.From))
	} else {
		p.Reasons = append(p.Reasons, fmt.Sprintf("qemu's other threads run on CPUs %s of the chosen nodes.", p.EmulatorCPUs))
	}
	p.Reasons = append(p.Reasons, policyReasons(p)...)
	return p, nil
}

// nearestRoom is the usable host node with room for cell c's vCPUs and
// memory nearest the nodes in use, then with the most memory left; nil
// when none has room.
func nearestRoom(all []*nodeRoom, spec Spec, c Cell, usedCPUs map[int]int, usedMem map[int]uint64, inUse map[int]bool) *nodeRoom {
	var best *nodeRoom
	bestDist := 0
	for _, r := range all {
		if !r.usable() || (spec.HostNodes != nil && !slices.Contains(spec.HostNodes, r.Node)) {
			continue
		}
		if len(c.VCPUs) > 0 && (r.MemoryOnly || (!spec.Overcommit && usedCPUs[r.Node]+len(c.VCPUs) > r.CPUs)) {
			continue
		}
		if usedMem[r.Node]+c.MemoryBytes > r.memCap {
			continue
		}
		d := 0
		for id := range inUse {
			d += distance(r, roomOf(all, id))
		}
		if best == nil || d < bestDist || (d == bestDist && r.memCap-usedMem[r.Node] > best.memCap-usedMem[best.Node]) {
			best, bestDist = r, d
		}
	}
	return best
}

// pinnedNode is the one usable host node whose CPUs hold the pins of every
// vCPU of cell c, when each has a pin (Spec.VCPUPins); nil otherwise.
func pinnedNode(all []*nodeRoom, spec Spec, c Cell) *nodeRoom {
	if len(c.VCPUs) == 0 {
		return nil
	}
	cpus := cpuset.New()
	for _, v := range c.VCPUs {
		pin, ok := spec.VCPUPins[v]
		if !ok {
			return nil
		}
		cpus = cpus.Union(pin.CPUs)
	}
	for _, r := range all {
		if r.usable() && !r.FreeCPUs.IsEmpty() && cpus.IsSubsetOf(r.FreeCPUs) && (spec.HostNodes == nil || slices.Contains(spec.HostNodes, r.Node)) {
			return r
		}
	}
	return nil
}

// checkPin refuses a pin on a CPU this VM may not use: offline, not
// allowed to qnuma, or dedicated to another VM.
func checkPin(all []*nodeRoom, pin Pin, who string) error {
	usable := cpuset.New()
	for _, r := range all {
		usable = usable.Union(r.FreeCPUs)
	}
	if pin.CPUs.IsEmpty() {
		return badSpec("%s gives %s no host CPU", pin.From, who)
	}
	if out := pin.CPUs.Difference(usable); !out.IsEmpty() {
		return badSpec("%s pins %s to host CPUs %s, and CPUs %s are not ones this VM may use (usable: %s; the others are offline, not allowed to qnuma, or dedicated to another VM)", pin.From, who, pin.CPUs, out, usable)
	}
	return nil
}

// pinReasons says which threads run where they were pinned, and where a
// vCPU's pin leaves its guest node's host nodes.
func pinReasons(spec Spec, p *Plan, all []*nodeRoom) []string {
	var out []string
	for _, v := range p.VCPUs {
		pin, ok := spec.VCPUPins[v.ID]
		if !ok {
			continue
		}
		r := fmt.Sprintf("vCPU %d runs on host CPUs %s, as %s gives", v.ID, pin.CPUs, pin.From)
		var off []int
		for _, r := range all {
			if !r.FreeCPUs.Intersection(pin.CPUs).IsEmpty() && !slices.Contains(p.GuestNodes[v.GuestNode].HostNodes, r.Node) {
				off = append(off, r.Node)
			}
		}
		if len(off) > 0 {
			r += fmt.Sprintf(" (on host nodes %s, away from its guest node %d's memory on %s)", idList(off), v.GuestNode, idList(p.GuestNodes[v.GuestNode].HostNodes))
		}
		out = append(out, r+".")
	}
	for i, io := range spec.IOThreads {
		from := "no pin is given, so it runs with the emulator threads"
		if !io.Pin.CPUs.IsEmpty() {
			from = "as " + io.Pin.From + " gives"
		}
		out = append(out, fmt.Sprintf("I/O thread %s runs on host CPUs %s, %s.", io.ID, p.IOThreads[i].HostCPUs, from))
	}
	return out
}

func withNote(s, note string) string {
	if note == "" {
		return s
	}
	return s + " " + note
}

func vcpuPhrase(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	return cpuset.New(v...).String()
}

func nodeIDs(all []*nodeRoom) []int {
	var ids []int
	for _, r := range all {
		ids = append(ids, r.Node)
	}
	return ids
}

// cellPolicy is the policy qnuma fills in on an unbound backend: --policy,
// bind by default.
func cellPolicy(spec Spec) memobj.Policy {
	if spec.Policy == "" || spec.Policy == memobj.PolicyPreferredMany {
		return memobj.PolicyBind
	}
	return spec.Policy
}
