package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/relocate"
	"github.com/qnuma/qnuma/topology"
	"github.com/qnuma/qnuma/vmcgroup"
)

// MoveCmd is `qnuma move`: a running VM to other host nodes.
type MoveCmd struct {
	VM       string `arg:"" name:"vm" help:"The VM: its name in the ledger, or its qemu's pid."`
	ToNodes  string `name:"to-nodes" placeholder:"LIST" help:"Host nodes to move to: guest node i goes to the i-th node of LIST (one node: every guest node goes there)."`
	Map      string `name:"map" placeholder:"G:H,..." help:"Where each guest node goes, as guest:host pairs (0:2,1:3); guest nodes not named stay."`
	Rate     string `name:"rate" placeholder:"SIZE" help:"Move at most SIZE of guest RAM per second (256M); default: as fast as the kernel moves pages."`
	JSON     bool   `name:"json" help:"Print JSON: each guest node's move (pages per node, time), qemu's own memory, threads re-pinned, locality before and after."`
	StateDir string `name:"state-dir" placeholder:"DIR" help:"Ledger directory (default /run/qnuma as root, $XDG_RUNTIME_DIR/qnuma otherwise)."`
}

func (c *MoveCmd) Help() string {
	return `Moves a running VM to other host NUMA nodes while the guest runs, keeping the
guest's own NUMA layout: each guest node's memory, and its vCPUs, go to the
host node given for it; qemu's other threads follow to the VM's new CPUs.

The move is planned first, as qnuma run plans: each target node must have room
for what moves there (free memory, counting the other VMs' promises in the
ledger; free cores for dedicated vCPUs). What does not fit is refused, exit 2,
nothing changed. Then, for each guest node, qnuma sets the memory policy of its
memfd to the new node (from then on every page the guest touches lands there,
refaults and THP collapses too), re-pins the threads, and moves the pages
already present with move_pages(2), guest node by guest node, so that moving
one never shuffles another. A failure puts the VM back as it was and says so.

What can be moved: a VM started by qnuma with its guest RAM in memfd backends
(the default, --memory-backend memfd; qnuma plan says "Live move: yes"). VMs on
hugepages or anonymous memory are refused with the reason. Guest RAM moves, and
its later faults follow, as root or as the VM's own user alike. qemu's own
memory: as root on a host with a cpuset cgroup (v2, v1 or systemd) the VM runs
in a cgroup of its own, whose nodes the move changes, so qemu's pages and its
later allocations follow too; as the VM's user its pages move, but its later
allocations keep the policy qemu started under, which no other process can
change: the move says so.

Examples:
  qnuma move web --to-nodes 1            every guest node of web to host node 1
  qnuma move big --to-nodes 2,3          guest node 0 to host node 2, 1 to 3
  qnuma move big --map 0:2               guest node 0 to host node 2; 1 stays
  qnuma move web --to-nodes 1 --rate 512M --json`
}

func (c *MoveCmd) Run() error {
	return c.run(context.Background(), os.Stdout, os.Stderr, affinity.Real{}, affinity.Real{})
}

// moveJSON is `qnuma move --json`.
type moveJSON struct {
	VM           string          `json:"vm"`
	PID          int             `json:"pid"`
	GuestNodes   []moveGuestJSON `json:"guest_nodes"`
	HostNodes    []int           `json:"host_nodes"`
	BytesMoved   uint64          `json:"bytes_moved"`
	Seconds      float64         `json:"seconds"`
	QEMUOwnLeft  int             `json:"qemu_own_pages_left"`
	QEMUPolicy   string          `json:"qemu_own_policy_note,omitempty"`
	Threads      []pinThreadJSON `json:"threads"`
	LocalBefore  float64         `json:"local_percent_before"`
	LocalAfter   float64         `json:"local_percent_after"`
	Unmatched    []string        `json:"memfds_not_moved,omitempty"`
	NothingMoved bool            `json:"nothing_moved"`
}

type moveGuestJSON struct {
	GuestNode   int            `json:"guest_node"`
	From        []int          `json:"from"`
	To          []int          `json:"to"`
	PagesMoved  map[int]uint64 `json:"pages_moved_from"`
	PagesLeft   uint64         `json:"pages_left"`
	PagesAbsent uint64         `json:"pages_absent"`
	PageSize    uint64         `json:"page_size"`
	Seconds     float64        `json:"seconds"`
}

func (c *MoveCmd) run(ctx context.Context, stdout, stderr io.Writer, sys affinity.Sys, pages affinity.Pages) error {
	host, err := topology.Read("/")
	if err != nil {
		return err
	}
	var rate uint64
	if c.Rate != "" {
		if rate, err = memobj.ParseSize(c.Rate, 1<<20); err != nil || rate == 0 {
			return badInput("--rate %q: want a size per second such as 256M", c.Rate)
		}
	}
	l, st, err := listLedger(ctx, c.StateDir)
	if err != nil {
		return err
	}
	t, err := findPinTarget(c.VM, st.Entries)
	if err != nil {
		return err
	}
	if t.Entry == nil {
		return badInput("qemu pid %d is not in the ledger: qnuma moves only VMs it placed (it needs their guest layout)", t.PID)
	}
	if err := checkMovable(*t.Entry); err != nil {
		return err
	}
	to, err := c.targets(*t.Entry, host)
	if err != nil {
		return err
	}
	m, err := planLiveMove(l, st.Entries, host, t, to)
	if err != nil {
		return err
	}
	res, err := m.run(ctx, sys, pages, rate, "qnuma move", stderr)
	if err != nil {
		return err
	}
	return writeMove(stdout, c.JSON, m.e, t.PID, m.p, res, m.pins, m.rest, m.before, m.after)
}

// listLedger opens the ledger and lists its live VMs.
func listLedger(ctx context.Context, stateDir string) (*ledger.Ledger, *ledger.State, error) {
	l, err := openLedger(stateDir)
	if err != nil {
		return nil, nil, err
	}
	st, err := l.List(ctx)
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return nil, nil, badInput("%w", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return l, st, nil
}

// checkMovable refuses a VM that cannot be moved live, with the reason.
func checkMovable(e ledger.Entry) error {
	if e.NotMovable != "" {
		return badInput("vm %s cannot be moved: %s; nothing changed", e.Name, e.NotMovable)
	}
	if len(e.GuestNodes) == 0 {
		return badInput("vm %s has no guest layout in the ledger (placed by an older qnuma): restart it to make it movable; nothing changed", e.Name)
	}
	return nil
}

// running is the VM of entry e as plan.Move takes it.
func running(l *ledger.Ledger, e ledger.Entry) plan.Running {
	return runningWith(e, l.Placed([]ledger.Entry{e})[0])
}

// runningWith is running with e as the planner counts it already read.
func runningWith(e ledger.Entry, self plan.Placed) plan.Running {
	r := plan.Running{Name: e.Name, VCPUs: e.TotalVCPUs(), Dedicated: e.Dedicated, HugepageBytes: e.HugepageBytes, Self: self}
	for _, g := range e.GuestNodes {
		r.GuestNodes = append(r.GuestNodes, plan.GuestNode{ID: g.ID, HostNodes: g.HostNodes, VCPUs: g.VCPUs, MemoryBytes: g.MemoryBytes})
		if g.Policy != "" {
			r.Policy = memobj.Policy(g.Policy)
		}
	}
	return r
}

// planMove plans e's move against every other live VM of entries.
func planMove(l *ledger.Ledger, entries []ledger.Entry, host *topology.Host, e ledger.Entry, to map[int][]int) (*plan.Plan, error) {
	var others []ledger.Entry
	for _, o := range entries {
		if o.Name != e.Name {
			others = append(others, o)
		}
	}
	p, err := plan.Move(host, running(l, e), plan.MoveSpec{To: to}, l.Placed(others))
	if err != nil {
		return nil, badInput("move vm %s: %w; nothing changed", e.Name, err)
	}
	return p, nil
}

// liveMove is one running VM's move, planned and checked, nothing changed
// yet.
type liveMove struct {
	to      map[int][]int
	l       *ledger.Ledger
	e       ledger.Entry
	t       pinTarget
	p       *plan.Plan
	parts   []relocate.Part
	rest    []relocate.Backend
	threads []numastat.Thread
	pins    []threadPin
	emu     cpuset.CPUSet
	host    *topology.Host

	before, after *numastat.Sample
}

// planLiveMove plans the move of t's VM (in the ledger) to to, finds each
// guest node's memfd in its qemu and the threads to re-pin. Every guest
// node named in to has its policy set and its pages brought to its nodes,
// those that do not change too (pages that strayed come home).
func planLiveMove(l *ledger.Ledger, entries []ledger.Entry, host *topology.Host, t pinTarget, to map[int][]int) (*liveMove, error) {
	e := *t.Entry
	p, err := planMove(l, entries, host, e, to)
	if err != nil {
		return nil, err
	}
	found, err := relocate.Find("/", t.PID)
	if err != nil {
		return nil, err
	}
	var gns []relocate.GuestNode
	moveTo := map[int][]int{}
	for i, g := range e.GuestNodes {
		gns = append(gns, relocate.GuestNode{ID: g.ID, MemoryBytes: g.MemoryBytes, HostNodes: g.HostNodes, Policy: g.Policy})
		if _, named := to[g.ID]; named {
			moveTo[g.ID] = p.GuestNodes[i].HostNodes
		}
	}
	parts, rest, err := relocate.Match(gns, found, moveTo)
	if err != nil {
		return nil, badInput("move vm %s: %w; nothing changed", e.Name, err)
	}
	threads, err := numastat.ReadThreads("/", t.PID)
	if err != nil {
		return nil, err
	}
	req := pinRequest{VCPUs: map[int]cpuset.CPUSet{}}
	for _, v := range p.VCPUs {
		req.VCPUs[v.ID] = v.HostCPUs
	}
	emu := p.EmulatorCPUs
	req.Emulator = &emu
	pins, err := planPins(threads, nil, req)
	if err != nil {
		return nil, err
	}
	return &liveMove{to: to, l: l, e: e, t: t, p: p, parts: parts, rest: rest, threads: threads, pins: pins, emu: emu, host: host}, nil
}

// run makes the move: it records the new home first (the ledger checks no
// other VM holds its CPUs), pins, then moves the memory; each failure
// undoes the steps before it. by names the mover in the move history.
func (m *liveMove) run(ctx context.Context, sys affinity.Sys, pages affinity.Pages, rate uint64, by string, stderr io.Writer) (*relocate.Result, error) {
	e, t, p, l := m.e, m.t, m.p, m.l
	// Locality against the home of the moment: the old one before.
	m.before, _ = numastat.Take("/", m.host, t.PID, numastat.Home{Nodes: e.HostNodes, VCPUs: e.VCPUHomeNodes})
	old := e
	next := entryAfterMove(e, p)
	record := func(want ledger.Entry) error {
		_, err := l.Update(ctx, old.Name, func(cur *ledger.Entry) error {
			if cur.QEMU != old.QEMU {
				return fmt.Errorf("its qemu is now pid %d, not %d", cur.QEMU.PID, old.QEMU.PID)
			}
			*cur = want
			return nil
		})
		return err
	}
	// The new home is recorded under the ledger's lock only if the plan
	// still fits around the VMs the ledger holds now: one placed since the
	// plan was made may have taken the room.
	_, err := l.UpdateAmong(ctx, old.Name, func(cur *ledger.Entry, others []ledger.Entry) error {
		if cur.QEMU != old.QEMU {
			return fmt.Errorf("its qemu is now pid %d, not %d", cur.QEMU.PID, old.QEMU.PID)
		}
		again, err := plan.Move(m.host, running(l, *cur), plan.MoveSpec{To: m.to}, l.Placed(others))
		if err != nil {
			return fmt.Errorf("%w (the ledger changed while the move was planned)", err)
		}
		if !samePlacement(again, p) {
			return fmt.Errorf("%w: the ledger changed while the move was planned; try again", plan.ErrDoesNotFit)
		}
		*cur = next
		return nil
	})
	if err != nil {
		if errors.Is(err, ledger.ErrCPUTaken) || errors.Is(err, ledger.ErrNoVM) || errors.Is(err, plan.ErrDoesNotFit) {
			return nil, badInput("%w; nothing changed", err)
		}
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, ledger.ErrUnsafeDir) {
			return nil, badInput("%w; nothing changed: vm %s is in another user's ledger, only its owner may move it", err, old.Name)
		}
		return nil, err
	}
	check := threadCheck(t)
	undoLedger := func(err error) error {
		if rerr := record(old); rerr != nil {
			return fmt.Errorf("%w; the ledger still records the new home: %v", err, rerr)
		}
		return err
	}
	if err := applyPins(sys, check, m.pins); err != nil {
		return nil, undoLedger(err)
	}
	if err := pinNewThreads(sys, check, t.PID, m.threads, &m.pins, m.emu); err != nil {
		return nil, undoLedger(err)
	}
	job := relocate.Job{PID: t.PID, Parts: m.parts, BytesPerSecond: rate,
		Alive: func() error { return check(t.PID) }}
	oldNodes, newNodes := cpuset.New(e.HostNodes...), cpuset.New(p.HostNodes...)
	job.QEMUFrom, job.QEMUTo = oldNodes.Difference(newNodes), newNodes
	// The VM's cgroup, where it has one, first lets qemu's memory be on
	// both the old and the new nodes (widening moves no page), and at the
	// end keeps it to the new ones: the kernel then moves what is left of
	// qemu's own memory and bounds its new allocations there.
	var g *vmcgroup.Group
	if e.Cgroup != "" {
		var err error
		if g, err = vmcgroup.Of("/", t.PID); err != nil || g.Dir() != e.Cgroup {
			err = fmt.Errorf("vm %s's qemu is not in the cgroup the ledger records (%s): %v", e.Name, e.Cgroup, err)
			return nil, undoLedger(putBack(sys, check, m.pins, err))
		}
		defer g.Close()
		if !g.Mems().Equals(oldNodes) {
			g = nil // it allows more than the VM's nodes (--policy preferred): nothing to change
		} else if _, err := g.SetMems(ctx, oldNodes.Union(newNodes)); err != nil {
			return nil, undoLedger(putBack(sys, check, m.pins, fmt.Errorf("widen the cpuset.mems of vm %s's cgroup: %w", e.Name, err)))
		} else {
			job.QEMUFrom = cpuset.New() // the cgroup moves qemu's own memory
		}
	}
	res, err := relocate.Run(ctx, pages, job)
	if err != nil {
		if g != nil {
			g.SetMems(context.Background(), oldNodes)
		}
		return nil, undoLedger(putBack(sys, check, m.pins, err))
	}
	if g != nil {
		if _, err := g.SetMems(ctx, newNodes); err != nil {
			fmt.Fprintf(stderr, "qnuma: warning: vm %s moved, but its cgroup still allows nodes %s for qemu's own memory: %v\n", e.Name, g.Mems(), err)
		}
	}
	// The move history, with what it moved.
	next.Moves = append(next.Moves, ledger.Move{At: time.Now().UTC(), From: layoutOf(e.GuestNodes), To: layoutOf(next.GuestNodes), Bytes: res.MovedBytes(), Took: res.Took, By: by})
	if n := len(next.Moves); n > maxMoves {
		next.Moves = next.Moves[n-maxMoves:]
	}
	if err := record(next); err != nil {
		fmt.Fprintf(stderr, "qnuma: warning: vm %s moved, but its move history was not recorded: %v\n", e.Name, err)
	}
	m.after, _ = numastat.Take("/", m.host, t.PID, numastat.Home{Nodes: p.HostNodes, VCPUs: homes(p)})
	return res, nil
}

// samePlacement reports whether two plans put every guest node and vCPU
// in the same place.
func samePlacement(a, b *plan.Plan) bool {
	if len(a.GuestNodes) != len(b.GuestNodes) || len(a.VCPUs) != len(b.VCPUs) || !a.EmulatorCPUs.Equals(b.EmulatorCPUs) {
		return false
	}
	for i := range a.GuestNodes {
		if !slices.Equal(a.GuestNodes[i].HostNodes, b.GuestNodes[i].HostNodes) {
			return false
		}
	}
	for i := range a.VCPUs {
		if !a.VCPUs[i].HostCPUs.Equals(b.VCPUs[i].HostCPUs) {
			return false
		}
	}
	return true
}

// maxMoves is how much move history an entry keeps (the ledger refuses
// more than 64).
const maxMoves = 32

// targets reads --to-nodes or --map into each guest node's new host nodes.
func (c *MoveCmd) targets(e ledger.Entry, host *topology.Host) (map[int][]int, error) {
	if (c.ToNodes == "") == (c.Map == "") {
		return nil, badInput("say where to: give --to-nodes LIST or --map G:H,... (one of them)")
	}
	exists := cpuset.New(host.NodeIDs()...)
	out := map[int][]int{}
	if c.ToNodes != "" {
		set, err := cpulist.Parse(c.ToNodes)
		if err != nil || set.IsEmpty() {
			return nil, badInput("--to-nodes %q: want a node list such as 1 or 2-3", c.ToNodes)
		}
		if bad := set.Difference(exists); !bad.IsEmpty() {
			return nil, badInput("--to-nodes %s: this host has no node %s (nodes %s)", set, bad, exists)
		}
		list := set.List()
		if len(list) != 1 && len(list) != len(e.GuestNodes) {
			return nil, badInput("--to-nodes %s: vm %s has %d guest nodes; give one host node for all, or one per guest node, or say which goes where with --map", set, e.Name, len(e.GuestNodes))
		}
		for i, g := range e.GuestNodes {
			out[g.ID] = []int{list[min(i, len(list)-1)]}
		}
		return out, nil
	}
	for _, pair := range strings.Split(c.Map, ",") {
		gs, hs, ok := strings.Cut(strings.TrimSpace(pair), ":")
		g, gerr := strconv.Atoi(gs)
		h, herr := strconv.Atoi(hs)
		if !ok || gerr != nil || herr != nil || g < 0 || h < 0 {
			return nil, badInput("--map %q: want guest:host pairs such as 0:2,1:3", c.Map)
		}
		if !exists.Contains(h) {
			return nil, badInput("--map %s: this host has no node %d (nodes %s)", c.Map, h, exists)
		}
		if !slices.ContainsFunc(e.GuestNodes, func(x ledger.GuestNode) bool { return x.ID == g }) {
			return nil, badInput("--map %s: vm %s has no guest node %d", c.Map, e.Name, g)
		}
		if _, dup := out[g]; dup {
			return nil, badInput("--map %s: guest node %d given twice", c.Map, g)
		}
		out[g] = []int{h}
	}
	return out, nil
}

// entryAfterMove is the VM's ledger entry once moved as p says.
func entryAfterMove(e ledger.Entry, p *plan.Plan) ledger.Entry {
	n := e
	n.HostNodes = slices.Clone(p.HostNodes)
	n.MemoryBytes, n.VCPUs = map[int]uint64{}, map[int]int{}
	n.GuestNodes = nil
	for i, g := range p.GuestNodes {
		gn := e.GuestNodes[i]
		gn.HostNodes = slices.Clone(g.HostNodes)
		n.GuestNodes = append(n.GuestNodes, gn)
		for _, h := range g.HostNodes {
			n.MemoryBytes[h] += g.MemoryBytes / uint64(len(g.HostNodes))
		}
	}
	n.VCPUCPUs, n.VCPUHomeNodes = cpuset.New(), nil
	for _, v := range p.VCPUs {
		home := p.GuestNodes[v.GuestNode].HostNodes
		n.VCPUs[home[0]]++
		n.VCPUCPUs = n.VCPUCPUs.Union(v.HostCPUs)
		n.VCPUHomeNodes = append(n.VCPUHomeNodes, slices.Clone(home))
	}
	n.EmulatorCPUs = p.EmulatorCPUs
	if e.Dedicated {
		n.DedicatedCPUs = n.VCPUCPUs
	}
	n.Moves = slices.Clone(e.Moves)
	return n
}

func layoutOf(gs []ledger.GuestNode) [][]int {
	out := make([][]int, len(gs))
	for i, g := range gs {
		out[i] = slices.Clone(g.HostNodes)
	}
	return out
}

// homes is each vCPU's home nodes in p.
func homes(p *plan.Plan) [][]int {
	var out [][]int
	for _, v := range p.VCPUs {
		out = append(out, p.GuestNodes[v.GuestNode].HostNodes)
	}
	return out
}

// threadCheck is what applyPins calls before each pin: the thread must
// still be one of the VM's qemu, and qemu the same process.
func threadCheck(t pinTarget) func(tid int) error {
	return func(tid int) error {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(t.PID), "task", strconv.Itoa(tid))); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("thread %d is no longer one of qemu pid %d's: %w", tid, t.PID, errThreadGone)
		} else if err != nil {
			return fmt.Errorf("check thread %d of qemu pid %d: %w", tid, t.PID, err)
		}
		now, err := ledger.ProcOf(t.PID)
		if err != nil || now.StartTime != t.Start {
			return fmt.Errorf("qemu pid %d exited", t.PID)
		}
		return nil
	}
}

func writeMove(w io.Writer, asJSON bool, e ledger.Entry, pid int, p *plan.Plan, res *relocate.Result, pins []threadPin, rest []relocate.Backend, before, after *numastat.Sample) error {
	out := moveJSON{VM: e.Name, PID: pid, HostNodes: p.HostNodes, BytesMoved: res.MovedBytes(), Seconds: res.Took.Seconds(),
		QEMUOwnLeft: res.QEMUPagesLeft, Threads: []pinThreadJSON{}, GuestNodes: []moveGuestJSON{}, NothingMoved: res.MovedBytes() == 0 && slices.Equal(e.HostNodes, p.HostNodes)}
	if e.Cgroup == "" {
		out.QEMUPolicy = "qemu's own later allocations (not guest RAM) follow the memory policy it started under, on nodes " + cpuset.New(e.HostNodes...).String() + ": qnuma cannot change another process's policy without a cgroup"
	}
	if before != nil {
		out.LocalBefore = before.LocalPercent
	}
	if after != nil {
		out.LocalAfter = after.LocalPercent
	}
	from := map[int][]int{}
	for _, g := range e.GuestNodes {
		from[g.ID] = g.HostNodes
	}
	for _, pr := range res.Parts {
		to := p.GuestNodes[slices.IndexFunc(p.GuestNodes, func(g plan.GuestNode) bool { return g.ID == pr.GuestNode })].HostNodes
		out.GuestNodes = append(out.GuestNodes, moveGuestJSON{GuestNode: pr.GuestNode, From: from[pr.GuestNode], To: to, PagesMoved: pr.Moved,
			PagesLeft: pr.Left, PagesAbsent: pr.Absent, PageSize: pr.PageSize, Seconds: pr.Took.Seconds()})
	}
	for _, b := range rest {
		out.Unmatched = append(out.Unmatched, fmt.Sprintf("memfd fd %d (%d bytes, %s %s)", b.FD, b.Size, b.Policy, cpuset.New(b.PolicyNodes...)))
	}
	for _, t := range pins {
		if t.gone {
			continue
		}
		j := pinThreadJSON{Kind: t.Kind, IOThread: t.IOThread, TID: t.TID, Name: t.Comm, OldCPUs: t.Old.String(), CPUs: t.New.String()}
		if t.Kind == "vcpu" {
			v := t.VCPU
			j.VCPU = &v
		}
		out.Threads = append(out.Threads, j)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	var b strings.Builder
	if out.NothingMoved {
		fmt.Fprintf(&b, "vm %s: every guest node is already where asked; threads re-pinned to %s\n", e.Name, p.EmulatorCPUs)
	}
	for _, g := range out.GuestNodes {
		var moved uint64
		for _, n := range g.PagesMoved {
			moved += n
		}
		fmt.Fprintf(&b, "vm %s guest node %d: host node %s -> %s, %s moved in %.2fs", e.Name, g.GuestNode, cpuset.New(g.From...), cpuset.New(g.To...), sizeText(moved*g.PageSize), g.Seconds)
		if g.PagesLeft > 0 {
			fmt.Fprintf(&b, ", %d pages could not move (busy or shared)", g.PagesLeft)
		}
		b.WriteString("\n")
	}
	vcpus := 0
	for _, t := range out.Threads {
		if t.Kind == "vcpu" {
			vcpus++
		}
	}
	fmt.Fprintf(&b, "threads: %d vCPUs and %d others re-pinned; guest RAM local %.1f%% before, %.1f%% after; %s in %.2fs\n",
		vcpus, len(out.Threads)-vcpus, out.LocalBefore, out.LocalAfter, sizeText(out.BytesMoved), out.Seconds)
	for _, u := range out.Unmatched {
		fmt.Fprintf(&b, "note: %s is not a guest node's RAM and was left where it is\n", u)
	}
	if out.QEMUPolicy != "" {
		fmt.Fprintf(&b, "note: %s\n", out.QEMUPolicy)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// sizeText writes bytes as MiB or GiB.
func sizeText(b uint64) string {
	if b >= 10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
