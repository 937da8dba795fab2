package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/balance"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
)

// BalanceCmd is `qnuma balance`: numad's and ESXi's rebalancing of the
// ledger's running VMs, with qnuma's planner.
type BalanceCmd struct {
	Once        bool          `help:"One round, then exit: two samples --interval apart, at most one move (for cron and tests)."`
	DryRun      bool          `name:"dry-run" help:"Print the move each round would make, and make none."`
	JSON        bool          `help:"Print one JSON object per round: each node's room, each VM's locality and home, the move chosen and why, or why none."`
	Interval    time.Duration `default:"15s" placeholder:"D" help:"Time between samples, 100ms to 1h. Default ${default}: numad scans every 5 to 15 s; after a move the next round comes 5 s later, as numad's (or --interval when shorter)."`
	Locality    float64       `default:"90" placeholder:"P" help:"Locality target in percent, 1 to 100: a VM with a guest node that has less of its RAM on the host nodes the ledger plans for it (the VM's RAM on its home nodes, where its guest nodes cannot be told apart), two samples in a row, gets it back. Default ${default}: numad's target (esxtop flags N%L under 80)."`
	NodeUse     float64       `name:"node-use" default:"85" placeholder:"P" help:"Node use target in percent, 1 to 100, of its memory (MemFree + Inactive(file) counted free) or of its CPUs' time: a node over it two samples in a row sheds a VM, and no move may push a node over it. Default ${default}: numad's target."`
	MinInterval time.Duration `name:"min-interval" default:"300s" placeholder:"D" help:"Least time between two moves of one VM, 0 to 24h, counted from its last move in the ledger or its last try. Default ${default}: numad reconsiders a process at most every 300 s."`
	MinGain     float64       `name:"min-gain" default:"10" placeholder:"P" help:"Least gain for a move, in percentage points, 0 to 100: the use gap between the node left and the node taken must narrow by this much, or the VM's locality rise by it. Default ${default}: ESXi's Numa.MigImbalanceThreshold (10%)."`
	Budget      int           `default:"262144" placeholder:"PAGES/S" help:"Migration rate bound handed to qnuma move, in pages per second; 0: unbounded. Default ${default}: 1 GiB/s of 4 KiB pages (ESXi migrates at a bounded rate; numad does not bound it)."`
	StateDir    string        `name:"state-dir" placeholder:"DIR" help:"Ledger directory (default /run/qnuma as root, $XDG_RUNTIME_DIR/qnuma otherwise)."`

	// root is the host to sample: "/" but in tests.
	root string
}

func (c *BalanceCmd) Help() string {
	return `Keeps the ledger's running VMs on host nodes with room for them, as numad and
ESXi's NUMA scheduler do, but with qnuma's planner and the guest's own NUMA
layout kept: a move replaces one host node by another in the VM's layout.

Each round samples every node's free memory (MemFree + Inactive(file), as the
planner counts it) and CPU use (/proc/stat, over the interval), and each VM's
guest RAM per node (numa_maps) and vCPU run time, then makes at most one move
(numad's rule):
  - a node over --node-use (memory or CPU), in this sample and the one before,
    sends one of its VMs to a node that stays under it, when that narrows the
    gap between the two nodes' use by --min-gain points;
  - a VM with a guest node that has less than --locality of its RAM on the host
    nodes the ledger plans for it (its memfd's pages in numa_maps; the VM's
    RAM on its home nodes where its guest nodes cannot be told apart), in this
    sample and the one before, has its memory brought home (a move in place),
    or, for a VM on one node, moves to the node holding most of it: whichever
    moves fewer pages;
  - only when neither moves anything: a VM waiting for room (qnuma run --wait)
    that fits no node gets the move after which the planner fits it (asked on
    a hypothetical ledger, nothing changed), the one moving the fewest guest
    RAM pages; oldest waiting VM first. The line says "frees room for waiting
    VM NAME", and the waiting VM's qnuma starts it.
The planner must accept the new layout (room, distances, other VMs' dedicated
CPUs, hugepages) before anything moves; the move itself is qnuma move's.

Left where they are: VMs locked with qnuma pin --lock (ESXi leaves VMs with
manual affinity alone), VMs that cannot be moved live, VMs whose qemu is not
sampled, and each VM for --min-interval after it was moved or a move of it was
tried. A load that comes and goes between two samples moves nothing.

Output: a line per move (VM, guest nodes from and to, pages, time, locality
before and after); with --once or --dry-run also a line saying why nothing
moved. --json prints one object per round, each VM's locality per guest node too. SIGTERM or ^C ends it after the
round under way (a move is never cut short): exit 0.

Examples:
  qnuma balance --once --dry-run          what one round would do now
  qnuma balance --once --json --interval 2s
  qnuma balance                            as a service (contrib/qnuma-balance.service)`
}

// moveMover is qnuma move's work for qnuma balance: Fits plans the move
// (plan.Move against the ledger), Move makes it.
type moveMover struct {
	stateDir string
	stderr   io.Writer
}

func (m moveMover) Fits(vm ledger.Entry, to map[int][]int) error {
	host, err := topology.Read("/")
	if err != nil {
		return err
	}
	l, st, err := listLedger(context.Background(), m.stateDir)
	if err != nil {
		return err
	}
	_, err = planMove(l, st.Entries, host, vm, to)
	return err
}

func (m moveMover) Move(ctx context.Context, req balance.MoveRequest) (balance.MoveResult, error) {
	host, err := topology.Read("/")
	if err != nil {
		return balance.MoveResult{}, err
	}
	l, st, err := listLedger(ctx, m.stateDir)
	if err != nil {
		return balance.MoveResult{}, err
	}
	t, err := findPinTarget(req.VM, st.Entries)
	if err != nil {
		return balance.MoveResult{}, err
	}
	if t.Entry.QEMU != req.QEMU {
		return balance.MoveResult{}, fmt.Errorf("vm %s: %w (its qemu is now pid %d, not %d)", req.VM, ledger.ErrNoVM, t.Entry.QEMU.PID, req.QEMU.PID)
	}
	if err := checkMovable(*t.Entry); err != nil {
		return balance.MoveResult{}, err
	}
	lm, err := planLiveMove(l, st.Entries, host, t, req.To)
	if err != nil {
		return balance.MoveResult{}, err
	}
	rate := uint64(req.PagesPerSecond) * uint64(os.Getpagesize())
	res, err := lm.run(ctx, affinity.Real{}, affinity.Real{}, rate, req.By, m.stderr)
	if err != nil {
		return balance.MoveResult{}, err
	}
	out := balance.MoveResult{PagesPerNode: map[int]uint64{}, Took: res.Took}
	for i, pr := range res.Parts {
		var n uint64
		for _, c := range pr.Moved {
			n += c
		}
		out.Pages += n
		if to := lm.parts[i].To; len(to) > 0 {
			out.PagesPerNode[to[0]] += n
		}
	}
	if lm.before != nil {
		out.LocalityBefore = lm.before.LocalPercent
	}
	if lm.after != nil {
		out.LocalityAfter = lm.after.LocalPercent
	}
	return out, nil
}

func (c *BalanceCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.run(ctx, os.Stdout, moveMover{stateDir: c.StateDir, stderr: os.Stderr})
}

// Bounds of the flags: under 100 ms a round's sampling (numa_maps of every
// VM) is the load; over an hour or a day is a typo.
const (
	minBalanceInterval = 100 * time.Millisecond
	maxBalanceInterval = time.Hour
	maxMinInterval     = 24 * time.Hour
)

// config checks the flags and makes balance's Config.
func (c *BalanceCmd) config(m balance.Mover) (balance.Config, error) {
	cfg := balance.Config{NodeUse: c.NodeUse, Locality: c.Locality, MinInterval: c.MinInterval, MinGain: c.MinGain, PagesPerSecond: c.Budget, Fits: m.Fits}
	if wm, ok := m.(waitingMover); ok {
		cfg.WaitingFits = wm.WaitingFits // balance_waiting.go
	}
	percent := func(flag string, v, lo float64) error {
		if math.IsNaN(v) || v < lo || v > 100 {
			return badInput("%s %v: want a percentage from %v to 100", flag, v, lo)
		}
		return nil
	}
	for _, err := range []error{
		percent("--locality", c.Locality, 1), percent("--node-use", c.NodeUse, 1), percent("--min-gain", c.MinGain, 0),
	} {
		if err != nil {
			return cfg, err
		}
	}
	if c.Interval < minBalanceInterval || c.Interval > maxBalanceInterval {
		return cfg, badInput("--interval %s: want %s to %s", c.Interval, minBalanceInterval, maxBalanceInterval)
	}
	if c.MinInterval < 0 || c.MinInterval > maxMinInterval {
		return cfg, badInput("--min-interval %s: want 0 to %s", c.MinInterval, maxMinInterval)
	}
	if c.Budget < 0 {
		return cfg, badInput("--budget %d: want pages per second, 0 (unbounded) or more", c.Budget)
	}
	return cfg, nil
}

func (c *BalanceCmd) run(ctx context.Context, w io.Writer, m balance.Mover) error {
	cfg, err := c.config(m)
	if err != nil {
		return err
	}
	root := c.root
	if root == "" {
		root = "/"
	}
	l, err := openLedger(c.StateDir)
	if err != nil {
		return err
	}
	b := &balancer{cmd: c, cfg: cfg, ledger: l, mover: m, sampler: &balance.Sampler{Root: root}, out: w}
	// The first sample only starts the interval that CPU use is measured
	// over, and is the "previous sample" of the first round.
	first, err := b.sample(ctx)
	if err != nil {
		return err
	}
	b.history.Observe(first)
	wait := c.Interval
	for round := 1; ; round++ {
		if !sleep(ctx, wait) {
			return nil // asked to stop between rounds
		}
		moved, err := b.round(ctx, round)
		if err != nil {
			return err
		}
		if c.Once || ctx.Err() != nil {
			return nil
		}
		wait = c.Interval
		if moved {
			wait = min(wait, balance.DefaultIntervalAfterMove)
		}
	}
}

// sleep waits d, false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// balancer is the state of a `qnuma balance` between rounds.
type balancer struct {
	cmd     *BalanceCmd
	cfg     balance.Config
	ledger  *ledger.Ledger
	mover   balance.Mover
	sampler *balance.Sampler
	history balance.History
	out     io.Writer
	// corrupt are the ledger's unreadable entries at the last sample, and
	// reported those last said in text.
	corrupt, reported []string
}

// sample lists the ledger and samples the host and its VMs.
func (b *balancer) sample(ctx context.Context) (balance.Sample, error) {
	st, err := b.ledger.List(ctx)
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return balance.Sample{}, badInput("%w", err)
	}
	if err != nil {
		return balance.Sample{}, err
	}
	b.corrupt = b.corrupt[:0]
	for _, c := range st.Corrupt {
		b.corrupt = append(b.corrupt, c.Error())
	}
	s, err := b.sampler.Sample(st.Entries, time.Now())
	if err != nil {
		return balance.Sample{}, err
	}
	if s.Waiting, err = b.waiting(ctx); err != nil { // balance_waiting.go
		return balance.Sample{}, err
	}
	return s, nil
}

// round samples, decides and moves; moved says whether a VM moved. A move
// runs to its end even when ctx ends meanwhile (SIGTERM finishes the
// round). A move the mover refuses (it no longer fits, the VM is gone) is
// reported and the next round goes on; other faults end balance.
func (b *balancer) round(ctx context.Context, n int) (moved bool, err error) {
	s, err := b.sample(ctx)
	if err != nil {
		return false, err
	}
	d := balance.Decide(s, b.history, b.cfg)
	b.history.Observe(s)
	r := roundReport{Round: n, At: d.At, DryRun: b.cmd.DryRun, Nodes: d.Nodes, VMs: d.VMs, Waiting: waitingReports(s), Why: d.Why, Corrupt: slices.Clone(b.corrupt)}
	if r.Nodes == nil {
		r.Nodes = []balance.NodeState{}
	}
	if r.VMs == nil {
		r.VMs = []balance.VMState{}
	}
	if d.Move != nil {
		r.Move = &moveReport{Move: d.Move}
		if !b.cmd.DryRun {
			b.history.Record(d.Move.VM, d.Move.QEMU, d.At)
			res, err := b.mover.Move(context.WithoutCancel(ctx), d.Move.Request())
			switch {
			case err == nil:
				r.Move.Result, moved = &res, true
			case errors.Is(err, plan.ErrDoesNotFit) || errors.Is(err, ledger.ErrNoVM):
				r.Move.Err = err.Error()
			default:
				if perr := b.print(r); perr != nil {
					return false, perr
				}
				return false, fmt.Errorf("move vm %s to %s: %w", d.Move.VM, balance.FormatLayout(d.Move.To), err)
			}
		}
	}
	return moved, b.print(r)
}

// roundReport is one round, as --json prints it.
type roundReport struct {
	Round  int                 `json:"round"`
	At     time.Time           `json:"at"`
	DryRun bool                `json:"dry_run"`
	Nodes  []balance.NodeState `json:"nodes"`
	VMs    []balance.VMState   `json:"vms"`
	// Waiting are the VMs waiting for room (qnuma run --wait).
	Waiting []waitingReport `json:"waiting"`
	Move    *moveReport     `json:"move"`
	// Why the move, or why none.
	Why string `json:"why"`
	// Corrupt are ledger entries that could not be read: VMs balance
	// cannot see, and leaves alone.
	Corrupt []string `json:"corrupt_entries,omitempty"`
}

// moveReport is the move chosen, and what came of it.
type moveReport struct {
	*balance.Move
	Result *balance.MoveResult
	Err    string
}

func (m moveReport) MarshalJSON() ([]byte, error) {
	type result struct {
		Pages          uint64         `json:"pages"`
		PagesPerNode   map[int]uint64 `json:"pages_per_node"`
		TookNS         time.Duration  `json:"took_ns"`
		LocalityBefore float64        `json:"locality_before"`
		LocalityAfter  float64        `json:"locality_after"`
	}
	out := struct {
		VM             string        `json:"vm"`
		PID            int           `json:"pid"`
		From           map[int][]int `json:"from"`
		To             map[int][]int `json:"to"`
		Kind           string        `json:"kind"`
		Why            string        `json:"why"`
		Bytes          uint64        `json:"bytes"`
		Pages          uint64        `json:"pages"`
		PagesPerSecond int           `json:"pages_per_second"`
		Gain           float64       `json:"gain_points"`
		LocalityBefore float64       `json:"locality_before"`
		ForWaiting     string        `json:"for_waiting_vm,omitempty"`
		Done           bool          `json:"done"`
		Result         *result       `json:"result,omitempty"`
		Error          string        `json:"error,omitempty"`
	}{
		VM: m.VM, PID: m.QEMU.PID, From: m.From, To: m.To, Kind: m.Kind, Why: m.Why, Bytes: m.Bytes, Pages: m.Pages,
		PagesPerSecond: m.PagesPerSecond, Gain: m.Gain, LocalityBefore: math.Round(m.LocalityBefore*10) / 10, ForWaiting: m.ForWaiting,
		Done: m.Result != nil, Error: m.Err,
	}
	if r := m.Result; r != nil {
		out.Result = &result{r.Pages, r.PagesPerNode, r.Took, r.LocalityBefore, r.LocalityAfter}
	}
	return json.Marshal(out)
}

// print writes a round: a JSON line, or a line per move (and, with --once
// or --dry-run, a line saying why nothing moved).
func (b *balancer) print(r roundReport) error {
	if b.cmd.JSON {
		return json.NewEncoder(b.out).Encode(r)
	}
	if !slices.Equal(r.Corrupt, b.reported) {
		for _, c := range r.Corrupt {
			if _, err := fmt.Fprintf(b.out, "%s: left alone\n", c); err != nil {
				return err
			}
		}
		b.reported = r.Corrupt
	}
	var err error
	switch m := r.Move; {
	case m == nil:
		if b.cmd.Once || b.cmd.DryRun {
			_, err = fmt.Fprintln(b.out, r.Why)
		}
	case r.DryRun:
		_, err = fmt.Fprintf(b.out, "would move %s: guest nodes %s -> %s, about %d pages, locality %.1f%% now: %s\n",
			m.VM, balance.FormatLayout(m.From), balance.FormatLayout(m.To), m.Pages, m.LocalityBefore, m.Why)
	case m.Result == nil:
		_, err = fmt.Fprintf(b.out, "did not move %s to %s: %s (%s)\n", m.VM, balance.FormatLayout(m.To), m.Err, m.Why)
	default:
		res := m.Result
		_, err = fmt.Fprintf(b.out, "moved %s: guest nodes %s -> %s, %d pages in %s, locality %.1f%% -> %.1f%%: %s\n",
			m.VM, balance.FormatLayout(m.From), balance.FormatLayout(m.To), res.Pages, res.Took.Round(time.Millisecond), res.LocalityBefore, res.LocalityAfter, m.Why)
	}
	return err
}
