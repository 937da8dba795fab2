package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/test/vm"
	"github.com/qnuma/qnuma/topology"
)

// The rebalancing figure: inside the two-node test host, two VMs on node 0,
// node 0 then filled by another process until it is short of memory while
// node 1 has room; a balancer started at that moment (qnuma balance or
// numad); the time until one VM's guest RAM is on node 1.
const (
	balanceProbeArg = "-probe-balance"
	balanceMarker   = "qnuma-bench-balance: "
	// balanceMem is each VM's guest RAM: over numad's 300 MB floor for the
	// processes it manages (its MEMORY_THRESHOLD, on the resident size).
	balanceMem = "320M"
	// balanceRoomMiB is node 0's MemFree left once it is filled: under
	// 10 % of its 962 MiB, over qnuma's and numad's 85 % target.
	balanceRoomMiB = 70
	// balanceInterval is qnuma balance's --interval: numad's shortest
	// (its -i 5:15 scans every 15 s while nothing moves, 5 s after a move).
	balanceInterval = "5s"
	numadInterval   = "5:15"
	// balanceTarget is the share of a VM's guest RAM on node 1 that counts
	// as moved.
	balanceTarget = 95.0
	// balanceTimeout is how long a balancer has, from node 0 filled; a
	// round that does not balance by then counts this long and says so.
	// Moving 320 MiB takes 20 to 60 s in the test host under TCG.
	balanceTimeout = 150 * time.Second
	// balancePoll is how often the VMs' numa_maps are read: each read
	// walks 320 MiB of page tables under TCG, a load of its own.
	balancePoll = time.Second
	// balanceSettle is how long the balancer keeps running once one VM is
	// on node 1 (a numad scan after a move comes 5 s later), before the
	// locality reached and the VMs moved are read.
	balanceSettle = 6 * time.Second
	balanceFrom   = 0
	balanceTo     = 1
)

// The bench binary, staged into the test host, is the probe when its first
// argument is balanceProbeArg; main's own dispatch is for the locality
// probe.
func init() {
	if len(os.Args) > 1 && os.Args[1] == balanceProbeArg {
		os.Exit(balanceProbeMain(os.Args[2:]))
	}
}

// balanceResult is what the balance probe prints after balanceMarker.
type balanceResult struct {
	// Variants' Samples: seconds from node 0 filled to one VM's guest RAM
	// ≥ balanceTarget % on node 1; the first move's own duration by the
	// balancer's log (s); the difference (s); that VM's guest RAM on node
	// 1 after balanceSettle (%); VMs with ≥ balanceTarget % on node 1 then.
	Variants []probeVariant `json:"variants"`
	// Notes are facts from the runs: which VM moved, the balancers' own
	// lines, timeouts.
	Notes []string `json:"notes,omitempty"`
	// NoNumad says why numad was not measured; empty when it was.
	NoNumad string `json:"no_numad,omitempty"`
}

var balanceMetrics = []struct{ name, unit string }{
	{fmt.Sprintf("node 0 filled until one VM's guest RAM is ≥ %.0f %% on node 1", balanceTarget), "s"},
	{"of which the move itself, as the balancer logs it", "s"},
	{"the rest: the balancer's start, samples and decision (and up to 1 s of polling)", "s"},
	{fmt.Sprintf("that VM's guest RAM on node 1, %.0f s later", balanceSettle.Seconds()), "%"},
	{fmt.Sprintf("VMs with ≥ %.0f %% of their guest RAM on node 1 then (of 2)", balanceTarget), "VMs"},
}

func balanceFigure(ctx context.Context, e *env, f *Figure) error {
	// Two rounds, not three: a round of each variant is about 45 s here
	// (two 320 MiB VMs preallocated, 20 s of page migration under TCG).
	f.Rounds = e.rounds(2, 1)
	stage, err := stageForTestHost(e)
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	script := fmt.Sprintf("/bench/qnuma-bench %s -qnuma /bench/qnuma -rounds %d", balanceProbeArg, f.Rounds)
	topo := vm.TwoNodes()
	res, err := runProbe(ctx, "balance", vm.Options{
		Topology: topo,
		Timeout:  time.Duration(f.Rounds)*2*6*time.Minute + 2*time.Minute,
		Shares:   []vm.Share{{HostPath: stage, GuestPath: "/bench"}},
	}, script)
	if err != nil {
		return err
	}
	br, err := parseBalanceOutput(res.Output)
	if err != nil {
		return err
	}
	base := 0
	if br.NoNumad != "" {
		base = -1
	}
	for j, m := range balanceMetrics {
		var ss []series
		for _, v := range br.Variants {
			ss = append(ss, series{variant: v.Name, argv: v.Argv, samples: v.Samples[j]})
		}
		rows, err := caseRows(m.name, m.unit, ss, base)
		if err != nil {
			return err
		}
		f.Rows = append(f.Rows, rows...)
	}
	if br.NoNumad != "" {
		f.Notes = append(f.Notes, "numad not measured: "+br.NoNumad)
	}
	f.Notes = append(f.Notes,
		fmt.Sprintf("inside the test host (vm.TwoNodes: 2 nodes × %d CPUs, %d MiB, distance 21): two nested TCG VMs of 1 vCPU and %s each, RAM preallocated, their guest spinning in a boot sector (numad manages only processes over 300 MB and half a CPU), both on node 0; node 0 then filled by a paused qemu holding its MemFree less %d MiB, bound there; the balancer started once that memory is held, the clock started with it", topo.Nodes[0].CPUs, topo.Nodes[0].MemoryMiB, balanceMem, balanceRoomMiB),
		fmt.Sprintf("qnuma's VMs: qnuma run --host-nodes 0 --prealloc and qnuma pin NAME --unlock (placed by hand, a VM is locked: balance leaves it alone), then qnuma balance --interval %s (numad's shortest interval; the default is 15 s); numad's VMs: numactl --cpunodebind=0 qemu -mem-prealloc (numad moves a process by its CPU affinity and migrate_pages, which a --membind policy would undo), then numad -i %s -l 6 (its defaults, logging its moves), stopped with numad -i 0", balanceInterval, numadInterval),
		fmt.Sprintf("guest RAM per node from /proc/PID/numa_maps through qnuma's numastat, every %.0f s; a round that did not balance within %.0f s counts %.0f s", balancePoll.Seconds(), balanceTimeout.Seconds(), balanceTimeout.Seconds()),
	)
	f.Notes = append(f.Notes, br.Notes...)
	f.Notes = append(f.Notes, fmt.Sprintf("the test host, its boot and every round, took %.0f s of this figure", res.Elapsed.Seconds()))
	return nil
}

// stageForTestHost copies the bench binary (as qnuma-bench) and qnuma into
// a new directory for the test host's /bench.
func stageForTestHost(e *env) (string, error) {
	stage, err := os.MkdirTemp("", "qnuma-bench-stage-")
	if err != nil {
		return "", fmt.Errorf("stage binaries for the test host: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(stage)
		return "", fmt.Errorf("stage binaries for the test host: %w", err)
	}
	for src, name := range map[string]string{self: "qnuma-bench", e.qnuma: "qnuma"} {
		if err := copyFile(src, filepath.Join(stage, name)); err != nil {
			os.RemoveAll(stage)
			return "", fmt.Errorf("stage binaries for the test host: %w", err)
		}
	}
	return stage, nil
}

// parseBalanceOutput finds the balance probe's result line in the test
// host's output and checks that every variant has every metric.
func parseBalanceOutput(out string) (*balanceResult, error) {
	br, err := probeLine[balanceResult](out, balanceMarker, "balance")
	if err != nil {
		return nil, err
	}
	if len(br.Variants) == 0 {
		return nil, errors.New("parse balance probe result: no variants")
	}
	for _, v := range br.Variants {
		if len(v.Samples) != len(balanceMetrics) {
			return nil, fmt.Errorf("parse balance probe result: %s has %d metrics, want %d", v.Name, len(v.Samples), len(balanceMetrics))
		}
	}
	return br, nil
}

// balanceProbeMain runs inside the test host: the rebalancing variants,
// interleaved, printing a balanceResult line. It returns the exit code.
func balanceProbeMain(args []string) int {
	fs := flag.NewFlagSet("probe-balance", flag.ContinueOnError)
	qnuma := fs.String("qnuma", "/bench/qnuma", "the qnuma binary")
	rounds := fs.Int("rounds", 3, "interleaved rounds")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	br, err := probeBalance(context.Background(), *qnuma, *rounds)
	return printProbe("probe", balanceMarker, br, err)
}

// balanceProbe is the test host's side of the figure.
type balanceProbe struct {
	qnuma, qemu, numactl, numad string
	host                        *topology.Host
	dir                         string
	seq                         int
	notes                       []string
}

func probeBalance(ctx context.Context, qnuma string, rounds int) (*balanceResult, error) {
	b := &balanceProbe{qnuma: qnuma}
	var err error
	if b.qemu, err = exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("find qemu: %w", err)
	}
	if b.numactl, err = exec.LookPath("numactl"); err != nil {
		return nil, fmt.Errorf("find numactl: %w", err)
	}
	if b.host, err = topology.Read("/"); err != nil {
		return nil, err
	}
	for _, id := range []int{balanceFrom, balanceTo} {
		if n, ok := b.host.Node(id); !ok || !n.HasCPUs() || !n.HasMemory() {
			return nil, fmt.Errorf("node %d with CPUs and memory needed: nodes %v", id, b.host.NodeIDs())
		}
	}
	if b.dir, err = os.MkdirTemp("", "probe-balance-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.dir)
	br := &balanceResult{}
	var vs []variant
	if b.numad, err = exec.LookPath("numad"); err != nil {
		br.NoNumad = fmt.Sprintf("no numad binary in the test host (it shares the host's /usr; scripts/deps.sh installs Debian's numad): %v", err)
	} else {
		vs = append(vs, variant{name: "numad -i " + numadInterval, argv: []string{b.numad, "-i", numadInterval, "-l", "6"},
			run: func(ctx context.Context) ([]float64, error) { return b.round(ctx, false) }})
	}
	vs = append(vs, variant{name: "qnuma balance --interval " + balanceInterval,
		argv: []string{b.qnuma, "balance", "--interval", balanceInterval},
		run:  func(ctx context.Context) ([]float64, error) { return b.round(ctx, true) }})
	samples, err := interleave(ctx, rounds, false, vs)
	if err != nil {
		return nil, err
	}
	for i, v := range vs {
		br.Variants = append(br.Variants, probeVariant{Name: v.name, Argv: v.argv, Samples: samples[i]})
	}
	br.Notes = b.notes
	return br, nil
}

// spinSector is a boot sector whose code is `jmp $`: the guest spins, so
// each VM uses a whole CPU (numad ignores processes under half a CPU).
func spinSector() []byte {
	s := make([]byte, 512)
	s[0], s[1] = 0xeb, 0xfe
	s[510], s[511] = 0x55, 0xaa
	return s
}

// balanceVM is one of the two VMs of a round.
type balanceVM struct {
	name string
	p    *proc
	pid  int
}

// round runs the scenario once with qnuma balance (withQnuma) or numad
// and returns the round's metrics.
func (b *balanceProbe) round(ctx context.Context, withQnuma bool) ([]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	b.seq++
	dir := filepath.Join(b.dir, fmt.Sprintf("r%d", b.seq))
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	label := "numad"
	if withQnuma {
		label = "qnuma"
	}

	// Two VMs on node 0.
	var vms []*balanceVM
	defer func() {
		for _, v := range vms {
			v.p.kill()
		}
	}()
	for _, name := range []string{"a", "b"} {
		img := filepath.Join(dir, name+".img")
		if err := os.WriteFile(img, spinSector(), 0o644); err != nil {
			return nil, err
		}
		guest := append(append([]string{b.qemu}, tcgArgs...), "-nodefaults", "-display", "none",
			"-drive", "file="+img+",format=raw,if=ide")
		var argv []string
		if withQnuma {
			argv = append([]string{b.qnuma, "run", "--state-dir", stateDir, "--name", name, "--host-nodes", strconv.Itoa(balanceFrom),
				"--vcpus", "1", "--memory", balanceMem, "--prealloc", "--"}, guest...)
		} else {
			argv = append(append([]string{b.numactl, "--cpunodebind=" + strconv.Itoa(balanceFrom)}, guest...),
				"-smp", "1", "-m", balanceMem, "-mem-prealloc", "-name", name)
		}
		sock := filepath.Join(dir, name+".sock")
		p, err := startProc(withQMP(argv, sock), sock)
		if err != nil {
			return nil, err
		}
		v := &balanceVM{name: name, p: p}
		vms = append(vms, v)
		if _, err := p.waitRunning(ctx); err != nil {
			return nil, err
		}
		tids, err := p.vcpuThreads(ctx, 1)
		if err != nil {
			return nil, err
		}
		if v.pid, err = threadGroup(tids[0]); err != nil {
			return nil, err
		}
		if withQnuma {
			// --host-nodes places it by hand, which locks it (qnuma
			// balance leaves such VMs alone): hand it over, as a user
			// who wants it balanced would.
			if out, err := exec.CommandContext(ctx, b.qnuma, "pin", name, "--unlock", "--state-dir", stateDir).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("qnuma pin %s --unlock: %w: %s", name, err, out)
			}
		}
	}
	for _, v := range vms {
		on, err := b.ramOn(v.pid, balanceFrom)
		if err != nil {
			return nil, err
		}
		if on < balanceTarget {
			return nil, fmt.Errorf("vm %s: %.1f %% of its guest RAM on node %d before the fill, want ≥ %.0f %%", v.name, on, balanceFrom, balanceTarget)
		}
	}

	// Node 0 filled by a process that is not a VM of either balancer: a
	// paused qemu (no CPU use) holding memory bound there.
	free, err := nodeMemFreeMiB(balanceFrom)
	if err != nil {
		return nil, err
	}
	hold := free - balanceRoomMiB
	if hold < 16 {
		return nil, fmt.Errorf("node %d has %d MiB free with both VMs on it: too little to fill", balanceFrom, free)
	}
	holdSock := filepath.Join(dir, "hold.sock")
	hp, err := startProc(withQMP([]string{b.qemu, "-S", "-display", "none", "-nodefaults", "-accel", "tcg",
		"-m", fmt.Sprintf("%dM", hold),
		"-object", fmt.Sprintf("memory-backend-ram,id=hold,size=%dM,host-nodes=%d,policy=bind,prealloc=on", hold, balanceFrom),
		"-numa", "node,nodeid=0,memdev=hold"}, holdSock), holdSock)
	if err != nil {
		return nil, err
	}
	defer hp.kill()
	if err := hp.dial(ctx); err != nil { // QMP answers once the memory is held
		return nil, fmt.Errorf("fill node %d with %d MiB: %w", balanceFrom, hold, err)
	}
	filled := time.Now()

	// The balancer, from then on.
	var stop balancerStop
	if withQnuma {
		stop, err = b.startQnumaBalance(stateDir)
	} else {
		stop, err = b.startNumad()
	}
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	moved, took := -1, balanceTimeout
	tick := time.NewTicker(balancePoll)
	defer tick.Stop()
poll:
	for time.Since(filled) < balanceTimeout {
		for i, v := range vms {
			on, err := b.ramOn(v.pid, balanceTo)
			if err != nil {
				return nil, err
			}
			if on >= balanceTarget {
				moved, took = i, time.Since(filled)
				break poll
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if moved >= 0 {
		select {
		case <-time.After(balanceSettle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	on1 := make([]float64, len(vms))
	onNode1 := 0
	for i, v := range vms {
		if on1[i], err = b.ramOn(v.pid, balanceTo); err != nil {
			return nil, err
		}
		if on1[i] >= balanceTarget {
			onNode1++
		}
	}
	log, moveTook, err := stop()
	stopped = true
	if err != nil {
		return nil, err
	}
	reached := 0.0
	if moved >= 0 {
		reached = on1[moved]
		cpus, err := affinity.CPUsAllowed("/", vms[moved].pid, vms[moved].pid)
		if err != nil {
			return nil, err
		}
		b.note("%s, run %d: vm %s on node %d after %.1f s, %.1f %% of its guest RAM there %.0f s later, qemu's main thread allowed CPUs %s (node %d: %s); the other vm %.1f %% there; %s",
			label, b.seq, vms[moved].name, balanceTo, took.Seconds(), reached, balanceSettle.Seconds(), cpus, balanceTo, b.nodeCPUs(balanceTo), on1[1-moved], log)
	} else {
		b.note("%s, run %d: no vm on node %d within %.0f s (counted %.0f s); %s", label, b.seq, balanceTo, balanceTimeout.Seconds(), balanceTimeout.Seconds(), log)
	}
	for _, v := range vms {
		if err := v.p.stop(); err != nil {
			return nil, err
		}
	}
	vms = nil
	if err := hp.stop(); err != nil {
		return nil, err
	}
	if moved >= 0 && moveTook == 0 {
		b.note("%s, run %d: the balancer logged no move's duration; the move row counts 0 s", label, b.seq)
	}
	rest := 0.0
	if moved >= 0 {
		rest = max(took.Seconds()-moveTook.Seconds(), 0)
	}
	return []float64{took.Seconds(), moveTook.Seconds(), rest, reached, float64(onNode1)}, nil
}

func (b *balanceProbe) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "probe:", s)
	b.notes = append(b.notes, s)
}

func (b *balanceProbe) nodeCPUs(id int) string {
	n, _ := b.host.Node(id)
	return n.CPUs.String()
}

// ramOn is the share of pid's guest RAM on node (%).
func (b *balanceProbe) ramOn(pid, node int) (float64, error) {
	s, err := numastat.Take("/", b.host, pid, numastat.Home{Nodes: []int{node}})
	if err != nil {
		return 0, err
	}
	if s.RAMMappings == 0 || s.LocalBytes+s.RemoteBytes == 0 {
		return 0, fmt.Errorf("pid %d: no resident guest RAM found (%s)", pid, s.RAMMatch)
	}
	return s.LocalPercent, nil
}

// startQnumaBalance starts `qnuma balance` on the round's ledger; stop
// sends it SIGTERM (it finishes the round under way and exits 0) and
// returns its move lines.
// balancerStop stops a balancer and returns a line on what it did and how
// long its first move took by its own log (0: none logged).
type balancerStop func() (summary string, moveTook time.Duration, err error)

func (b *balanceProbe) startQnumaBalance(stateDir string) (balancerStop, error) {
	p, err := startProc([]string{b.qnuma, "balance", "--interval", balanceInterval, "--state-dir", stateDir}, "")
	if err != nil {
		return nil, err
	}
	return func() (string, time.Duration, error) {
		// SIGTERM: it finishes the round under way, a move included.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		t := time.NewTimer(balanceStopGrace)
		defer t.Stop()
		select {
		case <-p.exited:
		case <-t.C:
			p.kill()
			return "", 0, fmt.Errorf("qnuma balance did not exit within %v of SIGTERM: killed: %s", balanceStopGrace, lastLines(p.stderr.text(), 3))
		}
		moves := qnumaMoves(p.stdout.text())
		if p.err != nil {
			return "", 0, fmt.Errorf("qnuma balance: %v: %s", p.err, lastLines(p.stderr.text(), 5))
		}
		if len(moves) == 0 {
			return "qnuma balance moved nothing: " + lastLines(p.stdout.text()+p.stderr.text(), 3), 0, nil
		}
		took, _ := qnumaMoveTook(moves[0])
		return fmt.Sprintf("qnuma balance: %d move(s): %s", len(moves), strings.Join(moves, "; ")), took, nil
	}, nil
}

const (
	numadPidFile = "/var/run/numad.pid"
	numadLog     = "/var/log/numad.log"
	thpScanSleep = "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs"
)

// startNumad starts numad as it ships (it always daemonizes: no
// foreground flag in Debian's 0.5+20150602); stop ends it with numad -i 0,
// as its man page says, puts back the khugepaged scan interval it changes,
// and returns the moves it logged.
func (b *balanceProbe) startNumad() (balancerStop, error) {
	for _, d := range []string{filepath.Dir(numadPidFile), filepath.Dir(numadLog)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("start numad: %w", err)
		}
	}
	os.Remove(numadLog)
	thp, _ := os.ReadFile(thpScanSleep)
	out, err := exec.Command(b.numad, "-i", numadInterval, "-l", "6").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("start numad: %w: %s", err, out)
	}
	pid, err := waitNumadPid()
	if err != nil {
		return nil, err
	}
	return func() (string, time.Duration, error) {
		out, err := exec.Command(b.numad, "-i", "0").CombinedOutput()
		if err != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			return "", 0, fmt.Errorf("stop numad: %w: %s", err, out)
		}
		// numad exits from its message thread; a migrate_pages of its main
		// thread under way finishes first.
		for t0 := time.Now(); alive(pid); time.Sleep(50 * time.Millisecond) {
			if time.Since(t0) > numadStopGrace {
				syscall.Kill(pid, syscall.SIGKILL)
				return "", 0, fmt.Errorf("stop numad: pid %d still there %v after numad -i 0: killed", pid, numadStopGrace)
			}
		}
		if len(thp) > 0 {
			os.WriteFile(thpScanSleep, thp, 0o644)
		}
		lb, err := os.ReadFile(numadLog)
		if err != nil {
			return "", 0, fmt.Errorf("read numad's log: %w", err)
		}
		moves := numadMoves(string(lb))
		var took time.Duration
		if len(moves) > 0 {
			took, _ = numadMoveTook(moves[0])
		}
		return fmt.Sprintf("numad: %d move(s): %s", len(moves), strings.Join(moves, "; ")), took, nil
	}, nil
}

// numadStopGrace and balanceStopGrace are how long numad has to exit
// after numad -i 0 and qnuma balance after SIGTERM: a move under way
// finishes first, and one took 2 minutes in the loaded test host.
const (
	numadStopGrace   = 3 * time.Minute
	balanceStopGrace = 3 * time.Minute
)

// alive says whether pid is a process that has not exited (a zombie has).
func alive(pid int) bool {
	st, err := numastat.ReadProcStat("/", pid)
	return err == nil && st.State != 'Z'
}

// numadMoves are the moves numad logged at -l 6 (log level info): its
// "PID 144 moved to node(s) 1 in 20.61 seconds" lines.
func numadMoves(log string) []string {
	var moves []string
	for _, l := range strings.Split(log, "\n") {
		// Each line starts with ctime's date and ": ".
		_, m, ok := strings.Cut(l, ": PID ")
		if ok && strings.Contains(m, " moved to node") {
			moves = append(moves, "PID "+strings.TrimSpace(m))
		}
	}
	return moves
}

// numadMoveTook is the duration in one of numadMoves' lines ("PID 144
// moved to node(s) 1 in 20.61 seconds").
func numadMoveTook(line string) (time.Duration, error) {
	_, tail, ok := strings.Cut(line, " in ")
	num, ok2 := strings.CutSuffix(tail, " seconds")
	if !ok || !ok2 {
		return 0, fmt.Errorf("numad move line %q: no \"in N seconds\"", line)
	}
	secs, err := strconv.ParseFloat(num, 64)
	if err != nil || secs < 0 {
		return 0, fmt.Errorf("numad move line %q: duration %q", line, num)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// qnumaMoveTook is the duration in one of qnumaMoves' lines ("moved b:
// guest nodes 0:0 -> 0:1, 81920 pages in 16.827s, locality ...").
func qnumaMoveTook(line string) (time.Duration, error) {
	_, tail, ok := strings.Cut(line, " pages in ")
	d, _, ok2 := strings.Cut(tail, ",")
	if !ok || !ok2 {
		return 0, fmt.Errorf("qnuma balance move line %q: no \"pages in D,\"", line)
	}
	took, err := time.ParseDuration(d)
	if err != nil || took < 0 {
		return 0, fmt.Errorf("qnuma balance move line %q: duration %q", line, d)
	}
	return took, nil
}

// qnumaMoves are qnuma balance's move lines ("moved b: guest nodes ...").
func qnumaMoves(out string) []string {
	var moves []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "moved ") {
			moves = append(moves, strings.TrimSpace(l))
		}
	}
	return moves
}

// waitNumadPid waits for numad's daemon to write its pid file.
func waitNumadPid() (int, error) {
	for t0 := time.Now(); time.Since(t0) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(numadPidFile)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			return pid, nil
		}
	}
	lb, _ := os.ReadFile(numadLog)
	return 0, fmt.Errorf("start numad: no pid in %s after 10 s: %s", numadPidFile, lastLines(string(lb), 3))
}

// nodeMemFreeMiB is node id's MemFree in MiB.
func nodeMemFreeMiB(id int) (int, error) {
	path := fmt.Sprintf("/sys/devices/system/node/node%d/meminfo", id)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read node %d's free memory: %w", id, err)
	}
	return parseNodeMemFree(string(b))
}

// parseNodeMemFree reads MemFree (MiB) from a node's meminfo ("Node 0
// MemFree:   944060 kB").
func parseNodeMemFree(s string) (int, error) {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && f[0] == "Node" && f[2] == "MemFree:" && f[4] == "kB" {
			kb, err := strconv.Atoi(f[3])
			if err != nil {
				return 0, fmt.Errorf("parse node meminfo: MemFree %q: %w", f[3], err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("parse node meminfo: no MemFree line")
}
