package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/launcher"
)

// The launch log lines of `qnuma run -v` that the placement figure times.
const (
	logStarted = "qnuma: started qemu "
	logPinned  = "qnuma: pinned vcpu "
	logLeft    = "qnuma: left paused"
	logCont    = "qnuma: step " + launcher.StepCont + ":"
)

func placementFigure(ctx context.Context, e *env, f *Figure) error {
	f.Rounds = e.rounds(9, 2)
	base := append(append([]string{}, tcgArgs...), "-nodefaults", "-display", "none")
	q, note, err := e.qnumaVariant(ctx, 2, "256M", base)
	if err != nil {
		return err
	}
	if note != "" {
		f.Notes = append(f.Notes, note)
	}
	if !strings.HasPrefix(q.name, "qnuma run") {
		return fmt.Errorf("%w: qnuma run does not fit a 2-vCPU VM on this host", errSkip)
	}
	vmArgs := append(append([]string{}, base...), "-smp", "2", "-m", "256M")
	run := append(append([]string{}, q.argv[:2]...), append([]string{"-v"}, q.argv[2:]...)...)
	vs := []variant{
		e.pinAfterStart(append([]string{e.qemu}, vmArgs...), q.planned),
		e.qnumaPinned(q.name+" -v", run, q.planned, false),
		e.qnumaPinned(q.name+" -v, user's -S (held)", append(run, "-S"), q.planned, true),
		versionProbe(e.qemu),
	}
	samples, err := interleave(ctx, f.Rounds, !e.quick, vs)
	if err != nil {
		return err
	}
	pick := func(j int, idx ...int) []series {
		var ss []series
		for _, i := range idx {
			ss = append(ss, series{variant: vs[i].name, argv: vs[i].argv, samples: samples[i][j]})
		}
		return ss
	}
	plannedStr := make([]string, len(q.planned))
	for i, c := range q.planned {
		plannedStr[i] = fmt.Sprintf("%d→%s", i, c)
	}
	cases := []struct {
		name, unit string
		ss         []series
	}{
		{"qemu's start → last vCPU pinned (vCPU " + strings.Join(plannedStr, ", ") + ")", "ms", pick(0, 0, 1, 2)},
		{"vCPU threads' CPU time when the last was pinned", "ms", append(pick(1, 0), pick(1, 2)...)},
		{"rounds with vCPU 0 still at the reset vector when pinned", "%", append(pick(2, 0), pick(2, 2)...)},
	}
	for _, c := range cases {
		rows, err := caseRows(c.name, c.unit, c.ss, 0)
		if err != nil {
			return err
		}
		f.Rows = append(f.Rows, rows...)
	}
	// Where qnuma run's start-up time goes, from the same runs.
	steps := []string{"exec → qemu started (topology, QEMU version probe, plan, ledger)", "qemu started → last vCPU pinned", "last vCPU pinned → guest running"}
	var stepSeries []series
	for j, s := range steps {
		stepSeries = append(stepSeries, series{variant: s, argv: vs[1].argv, samples: samples[1][j+3]})
		if j == 0 {
			stepSeries = append(stepSeries, series{variant: "  within it, measured alone: " + vs[3].name, argv: vs[3].argv, samples: samples[3][0]})
		}
	}
	rows, err := caseRows("qnuma run, its start-up by step", "ms", stepSeries, -1)
	if err != nil {
		return err
	}
	f.Rows = append(f.Rows, rows...)
	f.Notes = append(f.Notes,
		"pin after start is what a script around plain qemu does: start it, ask QMP for the vCPU threads (query-cpus-fast), sched_setaffinity each; the guest is already running",
		"qnuma's delay is between its -v lines `started qemu` and the last `pinned vcpu`, timed as they arrive; the guest cannot run in between because qnuma starts qemu with -S and sends cont after pinning",
		"held rounds (the user's own -S: qnuma pins and leaves the VM paused) show the state at pinning: QMP status prelaunch, every vCPU thread on its planned CPUs, and info registers with vCPU 0 at the reset vector (CS base ffff0000, EIP fff0), so no guest instruction ran before the pins; the other vCPUs wait for vCPU 0's start-up IPI",
	)
	return nil
}

// pinAfterStart starts plain qemu and pins its vCPUs from outside as soon
// as QMP answers. Metrics: delay (ms), vCPU CPU time at the pin (ms),
// vCPU 0 at the reset vector (100 or 0).
func (e *env) pinAfterStart(argv []string, planned []cpuset.CPUSet) variant {
	return variant{name: "pin after start (QMP + sched_setaffinity)", argv: argv, run: func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, runTimeout)
		defer cancel()
		sock := e.sock()
		p, err := startProc(withQMP(argv, sock), sock)
		if err != nil {
			return nil, err
		}
		defer p.kill()
		if err := p.dial(ctx); err != nil {
			return nil, err
		}
		tids, err := p.vcpuThreads(ctx, len(planned))
		if err != nil {
			return nil, err
		}
		var sys affinity.Real
		for i, tid := range tids {
			if err := sys.SchedSetaffinity(tid, planned[i]); err != nil {
				return nil, fmt.Errorf("pin vcpu %d (tid %d) to cpus %s: %w", i, tid, planned[i], err)
			}
		}
		delay := time.Since(p.start)
		cpu, reset, err := p.guestProgress(ctx, tids)
		if err != nil {
			return nil, err
		}
		if err := p.checkPlaced(ctx, planned); err != nil {
			return nil, err
		}
		return []float64{ms(delay), cpu, reset}, p.stop()
	}}
}

// qnumaPinned runs `qnuma run -v` and times its log. Metrics: delay from
// qemu's start to the last pin (ms); when held, the vCPU CPU time and
// reset-vector check as pinAfterStart; else the three steps of qnuma's
// start-up (exec → started, started → pinned, pinned → running).
func (e *env) qnumaPinned(name string, argv []string, planned []cpuset.CPUSet, held bool) variant {
	return variant{name: name, argv: argv, run: func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, runTimeout)
		defer cancel()
		sock := e.sock()
		p, err := startProc(withQMP(argv, sock), sock)
		if err != nil {
			return nil, err
		}
		defer p.kill()
		started, err := p.stderr.waitLine(ctx, func(s string) bool { return strings.HasPrefix(s, logStarted) })
		if err != nil {
			return nil, fmt.Errorf("qnuma -v: no %q line: %w: %s", logStarted, err, lastLines(p.stderr.text(), 5))
		}
		if !held {
			// Connected while qnuma works, as qnuma's own monitor is: the
			// status asked after cont is then one round trip away.
			if err := p.dial(ctx); err != nil {
				return nil, err
			}
		}
		last := logCont
		if held {
			last = logLeft
		}
		if _, err := p.stderr.waitLine(ctx, func(s string) bool { return strings.HasPrefix(s, last) }); err != nil {
			return nil, fmt.Errorf("qnuma -v: no %q line: %w: %s", last, err, lastLines(p.stderr.text(), 5))
		}
		lines, _, _ := p.stderr.snapshot()
		var pinned timedLine
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l.text, logPinned) {
				pinned, n = l, n+1
			}
		}
		if n != len(planned) {
			return nil, fmt.Errorf("qnuma -v logged %d pinned vcpus, want %d: %s", n, len(planned), lastLines(p.stderr.text(), 8))
		}
		delay := ms(pinned.at - started.at)
		var out []float64
		if held {
			if err := p.dial(ctx); err != nil {
				return nil, err
			}
			tids, err := p.vcpuThreads(ctx, len(planned))
			if err != nil {
				return nil, err
			}
			cpu, reset, err := p.guestProgress(ctx, tids)
			if err != nil {
				return nil, err
			}
			if reset != 100 {
				return nil, fmt.Errorf("held vm: vcpu 0 left the reset vector before cont")
			}
			if st, err := p.mon.QueryStatus(ctx); err != nil || st.Running {
				return nil, fmt.Errorf("held vm: status %+v (%v), want not running", st, err)
			}
			out = []float64{delay, cpu, reset}
		} else {
			running, err := p.waitRunning(ctx)
			if err != nil {
				return nil, err
			}
			out = []float64{delay, 0, 0, ms(started.at), delay, ms(running - pinned.at)}
		}
		if err := p.checkPlaced(ctx, planned); err != nil {
			return nil, err
		}
		return out, p.stop()
	}}
}

// guestProgress says how far the guest got: the vCPU threads' CPU time
// (ms) and whether vCPU 0 is still at the reset vector (100) or not (0).
func (p *proc) guestProgress(ctx context.Context, tids []int) (cpuMS, reset float64, err error) {
	var total uint64
	for _, tid := range tids {
		ns, err := threadCPUTime(tid)
		if err != nil {
			return 0, 0, err
		}
		total += ns
	}
	var out string
	if err := p.mon.Execute(ctx, "human-monitor-command", map[string]string{"command-line": "info registers -a"}, &out); err != nil {
		return 0, 0, fmt.Errorf("info registers: %w", err)
	}
	regs, err := parseRegisters(out)
	if err != nil {
		return 0, 0, err
	}
	if len(regs) != len(tids) || regs[0].CPU != 0 {
		return 0, 0, fmt.Errorf("info registers: %d cpus, want %d from cpu 0", len(regs), len(tids))
	}
	// A VM let run can still be at the reset vector: its vCPU thread had
	// not run the first instruction yet, which a script that pins right
	// after QMP answers catches now and then.
	if regs[0].AtReset() {
		reset = 100
	}
	return float64(total) / 1e6, reset, nil
}

// versionProbe times what qnuma run does before planning to learn QEMU's
// version: run `qemu -version` (measured alone here, in the same rounds).
func versionProbe(qemu string) variant {
	argv := []string{qemu, "-version"}
	return variant{name: "QEMU version probe (qemu -version)", argv: argv, run: func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, runTimeout)
		defer cancel()
		t0 := time.Now()
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s -version: %w: %s", qemu, err, out)
		}
		return []float64{ms(time.Since(t0))}, nil
	}}
}
