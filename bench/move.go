package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/test/vm"
	"github.com/qnuma/qnuma/topology"
)

// The move figure: a running VM's guest RAM moved from node 0 to node 1
// inside the test host, by `qnuma move` and by numactl's `migratepages`,
// with qemu's main loop watched over QMP meanwhile.
const (
	// moveProbeArg runs the bench as the move probe inside the test host.
	moveProbeArg = "-probe-move"
	moveMarker   = "qnuma-bench-move: "
	moveFrom     = 0
	moveTo       = 1
	// moveMinPercent is the share of the guest RAM that must be on the
	// node it should be on, before and after, for a round to count.
	moveMinPercent = 95
	// movePingGap is the pause between two query-status round trips: a
	// main loop held up longer than that holds up a round trip. Asked
	// back to back (a round trip is about 10 ms in the test host), the
	// asking itself took CPU from the move that the blocked main loop
	// under migratepages never asked for.
	movePingGap = 50 * time.Millisecond
	// moveRunTimeout bounds one variant's round: start, move, control.
	moveRunTimeout = 3 * time.Minute
)

// moveTopology is the test host of the move figure: two nodes with room
// for the guest on either, and over 512 MiB to spare.
func moveTopology() vm.Topology {
	n := vm.Node{CPUs: 2, MemoryMiB: 1024}
	return vm.Topology{Nodes: []vm.Node{n, n}, Distances: [][]int{{10, 21}, {21, 10}}}
}

// moveCase is one guest size moved: how many rounds, and whether each
// round also watches the VM as long again with nothing moving (the stall's
// control, which doubles the round).
type moveCase struct {
	MiB     int  `json:"mib"`
	Rounds  int  `json:"rounds"`
	Control bool `json:"control"`
}

// moveCases are the sizes moved: one, 256 MiB, with the stall's control.
// Every page copy and TLB flush of the test host's kernel is emulated
// under TCG, so larger guests only take longer: 512 MiB and 1 GiB cases
// moved at the same GiB/s and cost a quarter of make bench's time.
func moveCases(quick bool) []moveCase {
	if quick {
		return []moveCase{{MiB: 256, Rounds: 1, Control: true}}
	}
	return []moveCase{{MiB: 256, Rounds: 3, Control: true}}
}

// String is the case as the probe's -cases flag takes it: 256x3c, 512x2 (no c: no control).
func (c moveCase) String() string {
	s := fmt.Sprintf("%dx%d", c.MiB, c.Rounds)
	if c.Control {
		s += "c"
	}
	return s
}

// parseMoveCases reads the probe's -cases flag: MIBxROUNDS, with c for the
// control, comma-separated.
func parseMoveCases(s string) ([]moveCase, error) {
	var out []moveCase
	for _, w := range strings.Split(s, ",") {
		c := moveCase{}
		w, c.Control = strings.CutSuffix(w, "c")
		mib, rounds, ok := strings.Cut(w, "x")
		var err1, err2 error
		c.MiB, err1 = strconv.Atoi(mib)
		c.Rounds, err2 = strconv.Atoi(rounds)
		if !ok || err1 != nil || err2 != nil || c.MiB <= 0 || c.Rounds <= 0 {
			return nil, fmt.Errorf("-cases %q: want MIBxROUNDS[c],... such as 256x3c,512x2", s)
		}
		out = append(out, c)
	}
	return out, nil
}

// The metrics of one move round, in this order.
const (
	// mRate: GiB/s, guest RAM that left node 0 (numa_maps) over the move
	// command's wall time, from exec to exit.
	mRate = iota
	// mOwnRate: GiB/s, qnuma move's own bytes_moved over its seconds
	// (--json: the page moves alone); 0 for migratepages, which says
	// nothing.
	mOwnRate
	// mWorstMove: ms, the longest query-status round trip while the move
	// command ran.
	mWorstMove
	// mWorstIdle: ms, the same, in the same VM right after, for as long,
	// with no move (the control).
	mWorstIdle
	// mWall: s, the move command's wall time.
	mWall
	// mMovedMiB: MiB of guest RAM that left node 0.
	mMovedMiB
	// mPings: query-status round trips during the move.
	mPings
	nMoveMetrics
)

// moveProbeResult is what the move probe prints, after moveMarker.
type moveProbeResult struct {
	Sizes []moveSizeResult `json:"sizes"`
}

// moveSizeResult is one guest size: the variants in the order
// migratepages (the baseline), qnuma move; Samples[metric][round]. Without
// Control, mWorstIdle is 0.
type moveSizeResult struct {
	moveCase
	Variants []probeVariant `json:"variants"`
}

func moveFigure(ctx context.Context, e *env, f *Figure) error {
	cases := moveCases(e.quick)
	f.Rounds = cases[0].Rounds
	stage, err := os.MkdirTemp("", "qnuma-bench-stage-")
	if err != nil {
		return fmt.Errorf("stage binaries for the test host: %w", err)
	}
	defer os.RemoveAll(stage)
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("stage binaries for the test host: %w", err)
	}
	for src, name := range map[string]string{self: "qnuma-bench", e.qnuma: "qnuma"} {
		if err := copyFile(src, filepath.Join(stage, name)); err != nil {
			return fmt.Errorf("stage binaries for the test host: %w", err)
		}
	}
	list := make([]string, len(cases))
	units := 0 // quarter-GiB moves, controls counted as moves
	for i, c := range cases {
		list[i] = c.String()
		n := c.Rounds * 2 * max(1, c.MiB/256)
		if c.Control {
			n *= 2
		}
		units += n
	}
	script := fmt.Sprintf("/bench/qnuma-bench %s -qnuma /bench/qnuma -cases %s", moveProbeArg, strings.Join(list, ","))
	topo := moveTopology()
	res, err := runProbe(ctx, "move", vm.Options{
		Topology: topo,
		// A generous bound: 256 MiB takes about 8 s to move here under
		// load, and as long to start and preallocate.
		Timeout: time.Duration(units)*30*time.Second + 3*time.Minute,
		Shares:  []vm.Share{{HostPath: stage, GuestPath: "/bench"}},
	}, script)
	if err != nil {
		return err
	}
	pr, err := parseMoveOutput(res.Output)
	if err != nil {
		return err
	}
	if f.Rows, err = moveRows(pr); err != nil {
		return err
	}
	for _, c := range cases[1:] {
		if c.Rounds != f.Rounds {
			f.Notes = append(f.Notes, fmt.Sprintf("%s: %s (each move takes tens of seconds under TCG here)", sizeName(c.MiB), plural(c.Rounds, "interleaved round")))
		}
	}
	f.Notes = append(f.Notes,
		fmt.Sprintf("inside the test host (2 nodes × %d CPUs, %d MiB each, distance 21), a nested TCG VM of 2 vCPUs with its guest RAM preallocated on node 0 and running (no guest OS: the firmware finds nothing to boot and idles), moved to node 1", topo.Nodes[0].CPUs, topo.Nodes[0].MemoryMiB),
		"qnuma: `qnuma run --host-nodes 0 --prealloc --vcpus 2 --memory SIZE`, then `qnuma move NAME --to-nodes 1 --json` (guest RAM by move_pages in batches, threads re-pinned, qemu's own memory through its cgroup); baseline: `numactl --membind=0 --cpunodebind=0 qemu -object memory-backend-memfd,prealloc=on` (the same kind of pages), then `migratepages PID 0 1` (every page of the process, threads left where they are)",
		fmt.Sprintf("GiB/s is guest RAM that left node 0 (numa_maps, before and after) over the command's wall time from exec to exit; a round counts only with at least %d%% of the guest RAM on node 0 before and on node 1 after", moveMinPercent),
		fmt.Sprintf("worst round trip: query-status asked over and over (%v apart, so that the asking costs the move little CPU) on a QMP socket of the bench's own while the command runs: a command is answered by qemu's main loop, so this is how long the main loop was held up (and the mover's CPU use on these 2 shared CPUs); a hold-up shorter than the gap may be missed", movePingGap),
		"before the rounds, the free memory of node 1 is written once (numactl --membind=1 memhog): the test host's RAM is backed by this machine only once touched, which would otherwise slow the first moves onto node 1",
		"a vCPU's own stall is not measured: the guest runs no OS that could time itself, so an idle firmware cannot show whether a vCPU waited for a page in migration",
		"the no-move control (the same VM watched as long again right after) is run for the sizes whose rounds say so; a size without it compares the worst round trip during qnuma move with the one during migratepages, round by round",
		fmt.Sprintf("the test host's boot and every VM's start and preallocation are in this figure's %.0f s", res.Elapsed.Seconds()),
	)
	return nil
}

// moveRows makes the figure's rows from the probe's samples.
func moveRows(pr *moveProbeResult) ([]Row, error) {
	var rows []Row
	for _, s := range pr.Sizes {
		if len(s.Variants) != 2 {
			return nil, fmt.Errorf("move probe: %d MiB: %d variants, want migratepages and qnuma move", s.MiB, len(s.Variants))
		}
		for _, v := range s.Variants {
			if len(v.Samples) != nMoveMetrics {
				return nil, fmt.Errorf("move probe: %d MiB, %s: %d metrics, want %d", s.MiB, v.Name, len(v.Samples), nMoveMetrics)
			}
		}
		mp, q := s.Variants[0], s.Variants[1]
		size := sizeName(s.MiB)
		ser := func(v probeVariant, name string, j int) series {
			return series{variant: name, argv: v.Argv, samples: v.Samples[j]}
		}
		type rowCase struct {
			name, unit string
			ss         []series
			detail     bool
		}
		cases := []rowCase{
			{size + " guest RAM moved, node 0 → 1", "GiB/s", []series{
				ser(mp, mp.Name, mRate),
				ser(q, q.Name, mRate),
				ser(q, "  its page moves alone (--json bytes_moved / seconds)", mOwnRate),
			}, false},
			{size + ": the move command's wall time", "s", []series{ser(mp, mp.Name, mWall), ser(q, q.Name, mWall)}, true},
			{size + ": guest RAM that left node 0", "MiB", []series{ser(mp, mp.Name, mMovedMiB), ser(q, q.Name, mMovedMiB)}, true},
			{size + ": query-status round trips during the move", "", []series{ser(mp, mp.Name, mPings), ser(q, q.Name, mPings)}, true},
		}
		if s.Control {
			cases = append(cases, []rowCase{
				{size + ": worst query-status round trip, numactl's VM", "ms", []series{
					ser(mp, "no move (same VM, as long, after)", mWorstIdle),
					ser(mp, "during "+mp.Name, mWorstMove),
				}, false},
				{size + ": worst query-status round trip, qnuma's VM", "ms", []series{
					ser(q, "no move (same VM, as long, after)", mWorstIdle),
					ser(q, "during "+q.Name, mWorstMove),
				}, false},
			}...)
		} else {
			// No control: the two movers against each other, round by
			// round.
			cases = append(cases, rowCase{size + ": worst query-status round trip during the move", "ms", []series{
				ser(mp, "during "+mp.Name, mWorstMove), ser(q, "during "+q.Name, mWorstMove),
			}, false})
		}
		for _, c := range cases {
			rs, err := caseRows(c.name, c.unit, c.ss, 0)
			if err != nil {
				return nil, err
			}
			for i := range rs {
				rs[i].Detail = c.detail
			}
			rows = append(rows, rs...)
		}
	}
	return rows, nil
}

// sizeName is mib as the README writes sizes.
func sizeName(mib int) string {
	if mib >= 1024 && mib%1024 == 0 {
		return fmt.Sprintf("%d GiB", mib/1024)
	}
	return fmt.Sprintf("%d MiB", mib)
}

// parseMoveOutput finds the move probe's result line in the test host's
// output.
func parseMoveOutput(out string) (*moveProbeResult, error) {
	pr, err := probeLine[moveProbeResult](out, moveMarker, "move")
	if err != nil {
		return nil, err
	}
	if len(pr.Sizes) == 0 {
		return nil, errors.New("parse move probe result: no sizes")
	}
	return pr, nil
}

// moveProbeMain runs inside the test host: for each size, the two movers
// in interleaved rounds, printing a moveProbeResult line. It returns the
// exit code.
func moveProbeMain(args []string) int {
	fs := flag.NewFlagSet("probe-move", flag.ContinueOnError)
	qnuma := fs.String("qnuma", "/bench/qnuma", "the qnuma binary")
	list := fs.String("cases", "256x1c", "guest RAM sizes moved: MIBxROUNDS, c for the no-move control, comma-separated")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cases, err := parseMoveCases(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe-move:", err)
		return 2
	}
	pr, err := probeMove(context.Background(), *qnuma, cases)
	return printProbe("probe-move", moveMarker, pr, err)
}

func probeMove(ctx context.Context, qnuma string, cases []moveCase) (*moveProbeResult, error) {
	e := &env{qnuma: qnuma}
	var err error
	if e.qemu, err = exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("find qemu: %w", err)
	}
	if e.numactl, err = exec.LookPath("numactl"); err != nil {
		return nil, fmt.Errorf("find numactl: %w", err)
	}
	migratepages, err := exec.LookPath("migratepages")
	if err != nil {
		return nil, fmt.Errorf("find migratepages (numactl): %w", err)
	}
	if e.host, err = topology.Read("/"); err != nil {
		return nil, err
	}
	for _, n := range []int{moveFrom, moveTo} {
		if _, ok := e.host.Node(n); !ok {
			return nil, fmt.Errorf("no node %d here: nodes %v", n, e.host.NodeIDs())
		}
	}
	if e.dir, err = os.MkdirTemp("", "probe-move-"); err != nil {
		return nil, err
	}
	defer e.close()
	e.stateDir = filepath.Join(e.dir, "state")
	// Both movers' binaries into the page cache, so that the first round
	// does not read them over 9p. migratepages without arguments prints
	// its usage and exits 1: only the reading matters here.
	_ = exec.CommandContext(ctx, migratepages).Run()
	if out, err := exec.CommandContext(ctx, qnuma, "move", "--help").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s move --help: %w: %s", qnuma, err, lastLines(string(out), 3))
	}
	if err := touchNode(ctx, e.numactl, moveTo); err != nil {
		return nil, err
	}
	from, to := strconv.Itoa(moveFrom), strconv.Itoa(moveTo)
	base := append(append([]string{}, tcgArgs...), "-nodefaults", "-display", "none")
	pr := &moveProbeResult{}
	for _, c := range cases {
		mib := c.MiB
		size := strconv.Itoa(mib) + "M"
		plain := append(append([]string{e.numactl, "--membind=" + from, "--cpunodebind=" + from, e.qemu}, base...),
			"-smp", "2", "-m", size,
			"-object", "memory-backend-memfd,id=ram0,size="+size+",prealloc=on",
			"-machine", "memory-backend=ram0", "-name", "bench,debug-threads=on")
		vs := []variant{
			e.moveVariant("migratepages PID 0 1", c, plain, func(pid, _ string) []string {
				return []string{migratepages, pid, from, to}
			}, nil),
			e.moveVariant("qnuma move --to-nodes 1", c, nil, func(_, name string) []string {
				return []string{e.qnuma, "move", name, "--state-dir", e.stateDir, "--to-nodes", to, "--json"}
			}, parseMoveRate),
		}
		samples, err := interleave(ctx, c.Rounds, false, vs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sizeName(mib), err)
		}
		sr := moveSizeResult{moveCase: c}
		for i, v := range vs {
			sr.Variants = append(sr.Variants, probeVariant{Name: v.name, Argv: v.argv, Samples: samples[i]})
		}
		pr.Sizes = append(pr.Sizes, sr)
	}
	return pr, nil
}

// touchNode writes once to the free memory of node (all but 128 MiB of
// it): the test host's RAM is backed by the machine only where it was
// touched, so without this the first pages moved onto a node would also pay
// for the machine's first touch of them, a cost of the test host and not
// of the move.
func touchNode(ctx context.Context, numactl string, node int) error {
	b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/node/node%d/meminfo", node))
	if err != nil {
		return fmt.Errorf("touch node %d's memory: %w", node, err)
	}
	free, err := nodeMemFreeKiB(string(b))
	if err != nil {
		return fmt.Errorf("touch node %d's memory: %w", node, err)
	}
	mib := free/1024 - 128
	if mib <= 0 {
		return fmt.Errorf("touch node %d's memory: only %d KiB free", node, free)
	}
	n := strconv.Itoa(node)
	out, err := exec.CommandContext(ctx, numactl, "--membind="+n, "memhog", strconv.Itoa(mib)+"m").CombinedOutput()
	if err != nil {
		return fmt.Errorf("touch node %d's memory: numactl --membind=%s memhog %dm: %w: %s", node, n, mib, err, lastLines(string(out), 3))
	}
	return nil
}

// nodeMemFreeKiB reads MemFree from a node's meminfo ("Node 1 MemFree:
// 1234 kB").
func nodeMemFreeKiB(meminfo string) (int, error) {
	for _, line := range strings.Split(meminfo, "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && f[2] == "MemFree:" && f[4] == "kB" {
			return strconv.Atoi(f[3])
		}
	}
	return 0, errors.New("no MemFree in the node's meminfo")
}

// moveVariant starts a VM of mib on moveFrom (argv; nil: qnuma run with
// a fresh name), waits until the guest runs, then times the command
// mover gives while asking query-status over and over, checks where the
// guest RAM is before and after, and asks as long again with nothing
// moving. own, when set, reads the mover's own rate from its stdout.
func (e *env) moveVariant(name string, c moveCase, argv []string, mover func(pid, vmName string) []string, own func([]byte) (float64, error)) variant {
	mib := c.MiB
	return variant{name: name, argv: mover("PID", "NAME"), run: func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, moveRunTimeout)
		defer cancel()
		vmArgv := argv
		e.seq++
		vmName := fmt.Sprintf("mv%d", e.seq)
		if vmArgv == nil {
			vmArgv = append(append(e.qnumaRun("--name", vmName, "--host-nodes", strconv.Itoa(moveFrom), "--prealloc",
				"--vcpus", "2", "--memory", strconv.Itoa(mib)+"M", "--", e.qemu), tcgArgs...), "-nodefaults", "-display", "none")
		}
		p, pid, _, err := e.startRunning(ctx, vmArgv, 2)
		if p != nil {
			defer p.kill()
		}
		if err != nil {
			return nil, err
		}
		before, err := e.guestRAMOn(pid, moveFrom, mib, "before the move")
		if err != nil {
			return nil, err
		}
		pg := pinger{query: func(ctx context.Context) error { _, err := p.mon.QueryStatus(ctx); return err }, now: time.Now, gap: movePingGap}

		mv := mover(strconv.Itoa(pid), vmName)
		cmd := exec.CommandContext(ctx, mv[0], mv[1:]...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		stop := make(chan struct{})
		type pinged struct {
			worst time.Duration
			n     int
			err   error
		}
		done := make(chan pinged, 1)
		go func() {
			w, n, err := pg.worst(ctx, stop)
			done <- pinged{w, n, err}
		}()
		t0 := time.Now()
		runErr := cmd.Run()
		wall := time.Since(t0)
		close(stop)
		during := <-done
		if runErr != nil {
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(mv, " "), runErr, lastLines(stderr.String(), 5))
		}
		if during.err != nil {
			return nil, fmt.Errorf("query-status during the move: %w", during.err)
		}
		after, err := e.guestRAMOn(pid, moveTo, mib, "after "+strings.Join(mv, " "))
		if err != nil {
			return nil, err
		}
		// The control: the same VM, as long, nothing moving.
		var idleWorst time.Duration
		if c.Control {
			idleStop := make(chan struct{})
			timer := time.AfterFunc(wall, func() { close(idleStop) })
			idleWorst, _, err = pg.worst(ctx, idleStop)
			timer.Stop()
			if err != nil {
				return nil, fmt.Errorf("query-status with no move: %w", err)
			}
		}
		left := bytesOn(before, moveFrom) - min(bytesOn(before, moveFrom), bytesOn(after, moveFrom))
		ownRate := 0.0
		if own != nil {
			if ownRate, err = own(stdout.Bytes()); err != nil {
				return nil, err
			}
		}
		gib := float64(left) / (1 << 30)
		fmt.Fprintf(os.Stderr, "probe-move: %s, %s: pid %d, %.0f MiB left node %d in %.3f s; worst query-status %.2f ms moving (%d asked), %.2f ms not (0: no control)\n",
			sizeName(mib), name, pid, gib*1024, moveFrom, wall.Seconds(), ms(during.worst), during.n, ms(idleWorst))
		m := make([]float64, nMoveMetrics)
		m[mRate] = gib / wall.Seconds()
		m[mOwnRate] = ownRate
		m[mWorstMove] = ms(during.worst)
		m[mWorstIdle] = ms(idleWorst)
		m[mWall] = wall.Seconds()
		m[mMovedMiB] = gib * 1024
		m[mPings] = float64(during.n)
		return m, p.stop()
	}}
}

// guestRAMOn samples pid's guest RAM and fails unless at least
// moveMinPercent of a preallocated mib is resident on node.
func (e *env) guestRAMOn(pid, node, mib int, when string) (*numastat.Sample, error) {
	s, err := numastat.Take("/", e.host, pid, numastat.Home{Nodes: []int{node}})
	if err != nil {
		return nil, err
	}
	if s.RAMMappings == 0 {
		return nil, fmt.Errorf("pid %d %s: no guest RAM mapping found (%s)", pid, when, s.RAMMatch)
	}
	if on, want := bytesOn(s, node), uint64(mib)<<20*moveMinPercent/100; on < want {
		return nil, fmt.Errorf("pid %d %s: %d MiB of guest RAM on node %d (%v), want at least %d%% of %d MiB", pid, when, on>>20, node, s.RAM, moveMinPercent, mib)
	}
	return s, nil
}

// bytesOn is s's guest RAM resident on node.
func bytesOn(s *numastat.Sample, node int) uint64 {
	for _, nb := range s.RAM {
		if nb.Node == node {
			return nb.Bytes
		}
	}
	return 0
}

// parseMoveRate reads `qnuma move --json`: bytes_moved over seconds, in
// GiB/s, its page moves alone.
func parseMoveRate(b []byte) (float64, error) {
	var m struct {
		BytesMoved *uint64  `json:"bytes_moved"`
		Seconds    *float64 `json:"seconds"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("parse qnuma move --json: %w", err)
	}
	if m.BytesMoved == nil || m.Seconds == nil {
		return 0, errors.New("parse qnuma move --json: no bytes_moved or seconds")
	}
	if *m.BytesMoved == 0 || *m.Seconds <= 0 {
		return 0, fmt.Errorf("parse qnuma move --json: %d bytes moved in %v s: nothing to measure", *m.BytesMoved, *m.Seconds)
	}
	return float64(*m.BytesMoved) / (1 << 30) / *m.Seconds, nil
}

// pinger asks qemu something (query-status) again and again, gap apart,
// timing each round trip.
type pinger struct {
	query func(context.Context) error
	now   func() time.Time
	gap   time.Duration
}

// worst asks until stop is closed (the round trip in flight finishes) and
// returns the longest round trip and how many it made; the first error
// ends it.
func (pg pinger) worst(ctx context.Context, stop <-chan struct{}) (time.Duration, int, error) {
	var worst time.Duration
	n := 0
	for {
		select {
		case <-stop:
			return worst, n, nil
		default:
		}
		t0 := pg.now()
		if err := pg.query(ctx); err != nil {
			return worst, n, err
		}
		worst = max(worst, pg.now().Sub(t0))
		n++
		select {
		case <-stop:
			return worst, n, nil
		case <-ctx.Done():
			return worst, n, ctx.Err()
		case <-time.After(pg.gap):
		}
	}
}
