package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/test/vm"
)

// runTimeout bounds one measured launch.
const runTimeout = 90 * time.Second

// startupVCPUs are the no-kernel VMs measured: the largest that fits
// qnuma's plan on a small host, and the sizes issue 7 names.
var startupVCPUs = []int{2, 4, 64}

// tcgArgs are the arguments every measured VM shares: no /dev/kvm here,
// one host thread per vCPU.
var tcgArgs = []string{"-accel", "tcg,thread=multi"}

func startupFigure(ctx context.Context, e *env, f *Figure) error {
	f.Rounds = e.rounds(15, 2)
	for _, n := range startupVCPUs {
		name := fmt.Sprintf("%d vCPUs, 256 MiB, no kernel", n)
		base := append(append([]string{}, tcgArgs...), "-nodefaults", "-display", "none")
		q, note, err := e.qnumaVariant(ctx, n, "256M", base)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if note != "" {
			f.Notes = append(f.Notes, name+": "+note)
		}
		if e.plansEverywhere(q.planned) {
			f.Notes = append(f.Notes, fmt.Sprintf("%s: every vCPU's planned CPUs are all of this host's CPUs (%s), which is also where plain qemu's threads may run: the placement check holds but cannot tell a pinned thread from an unpinned one here", name, e.host.OnlineCPUs))
		}
		vmArgs := append(append([]string{}, base...), "-smp", strconv.Itoa(n), "-m", "256M")
		vs := []variant{
			e.runningVariant("qemu", append([]string{e.qemu}, vmArgs...), nil),
			e.runningVariant(fmt.Sprintf("numactl --membind=%d qemu", e.node), append([]string{e.numactl, "--membind=" + strconv.Itoa(e.node), e.qemu}, vmArgs...), nil),
			e.runningVariant(q.name, q.argv, q.planned),
		}
		rows, err := timeCase(ctx, name, f.Rounds, !e.quick, vs)
		if err != nil {
			return err
		}
		if e.bareStartMS == 0 {
			e.bareStartMS = rows[0].Summary.Median
		}
		f.Rows = append(f.Rows, rows...)
	}
	return tinyGuestCase(ctx, e, f)
}

// qnumaVM is how qnuma runs a VM of a given size on this host.
type qnumaVM struct {
	name    string
	argv    []string // up to and including the qemu binary and base args
	planned []cpuset.CPUSet
}

// qnumaVariant chooses qnuma's command for a VM of n vCPUs on e.node:
// `qnuma run` with each vCPU on its own core when that fits (the plan then
// differs from qemu's default affinity, so the placement check means
// something even on a one-node host), `qnuma run` with floating vCPUs
// next, then with vCPUs sharing the node's CPUs (--overcommit), and the
// numactl drop-in (which runs what does not fit, its vCPUs
// floating over the node's CPUs) last. note says which and why.
func (e *env) qnumaVariant(ctx context.Context, n int, mem string, qemuArgs []string) (qnumaVM, string, error) {
	node := strconv.Itoa(e.node)
	spec := []string{"--host-nodes", node, "--vcpus", strconv.Itoa(n), "--memory", mem}
	qemu := append([]string{e.qemu}, qemuArgs...)
	var refusals []string
	for _, extra := range [][]string{{"--cpus-dedicated"}, nil, {"--overcommit"}} {
		flags := append(append([]string{}, extra...), spec...)
		planned, err := e.plannedVCPUs(ctx, append(flags, append([]string{"--"}, qemu...)...)...)
		if errors.Is(err, errNoFit) {
			refusals = append(refusals, err.Error())
			continue
		}
		if err != nil {
			return qnumaVM{}, "", err
		}
		name := "qnuma run " + strings.Join(extra, " ")
		argv := append(append(e.qnumaRun(flags...), "--"), qemu...)
		return qnumaVM{name: strings.TrimSpace(name), argv: argv, planned: planned}, "", nil
	}
	all := e.nodeCPUs(e.node)
	planned := make([]cpuset.CPUSet, n)
	for i := range planned {
		planned[i] = all
	}
	argv := append([]string{e.qnuma, "--membind=" + node, "--state-dir=" + e.stateDir, "--"}, qemu...)
	argv = append(argv, "-smp", strconv.Itoa(n), "-m", mem)
	note := fmt.Sprintf("qnuma run refuses it on this host (%s), so the qnuma row is the numactl drop-in, which pins every vCPU to node %d's CPUs (%s)",
		refusals[len(refusals)-1], e.node, all)
	return qnumaVM{name: "qnuma --membind=" + node + " (drop-in)", argv: argv, planned: planned}, note, nil
}

// runningVariant measures argv from launch until QEMU reports the guest
// running, then checks (untimed) that every vCPU thread is on its planned
// CPUs; planned nil checks nothing (the alternatives place no vCPU).
func (e *env) runningVariant(name string, argv []string, planned []cpuset.CPUSet) variant {
	return variant{name: name, argv: argv, run: func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, runTimeout)
		defer cancel()
		sock := e.sock()
		p, err := startProc(withQMP(argv, sock), sock)
		if err != nil {
			return nil, err
		}
		d, err := p.waitRunning(ctx)
		if err == nil && planned != nil {
			err = p.checkPlaced(ctx, planned)
		}
		if err != nil {
			p.kill()
			return nil, err
		}
		if err := p.stop(); err != nil {
			return nil, err
		}
		return []float64{ms(d)}, nil
	}}
}

// tinyGuestCase measures qnuma's tiny guest (a Linux kernel and a small
// init under TCG) from launch to the first line its init prints.
func tinyGuestCase(ctx context.Context, e *env, f *Figure) error {
	const name = "tiny guest, 2 vCPUs, to its first console line"
	kernel, initrd, err := vm.TinyGuest(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	base := append(append([]string{}, tcgArgs...), vm.TinyGuestArgs(kernel, initrd)...)
	q, note, err := e.qnumaVariant(ctx, 2, "256M", base)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if note != "" {
		f.Notes = append(f.Notes, name+": "+note)
	}
	vmArgs := append(append([]string{}, base...), "-smp", "2", "-m", "256M")
	vs := []variant{
		bootVariant("qemu", append([]string{e.qemu}, vmArgs...)),
		bootVariant(fmt.Sprintf("numactl --membind=%d qemu", e.node), append([]string{e.numactl, "--membind=" + strconv.Itoa(e.node), e.qemu}, vmArgs...)),
		bootVariant(q.name, q.argv),
	}
	rows, err := timeCase(ctx, name, e.rounds(3, 1), false, vs)
	if err != nil {
		return err
	}
	f.Rows = append(f.Rows, rows...)
	f.Notes = append(f.Notes, fmt.Sprintf("%s: %s (a boot takes seconds under TCG)", name, plural(e.rounds(3, 1), "round")))
	return nil
}

// bootVariant measures argv from launch to the tiny guest's first line,
// then waits for the guest to power off and qemu (and qnuma) to exit 0.
func bootVariant(name string, argv []string) variant {
	return variant{name: name, argv: argv, run: func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, runTimeout)
		defer cancel()
		p, err := startProc(argv, "")
		if err != nil {
			return nil, err
		}
		first, err := p.stdout.waitLine(ctx, func(s string) bool { return strings.HasPrefix(s, vm.TinyGuestPrefix) })
		if err == nil {
			_, err = p.stdout.waitLine(ctx, func(s string) bool { return strings.HasPrefix(s, vm.TinyGuestMarker) })
		}
		if err != nil {
			p.kill()
			return nil, fmt.Errorf("tiny guest: %w; stderr: %s; console: %s", err, lastLines(p.stderr.text(), 3), lastLines(p.stdout.text(), 3))
		}
		select {
		case <-p.exited:
		case <-ctx.Done():
			p.kill()
			return nil, fmt.Errorf("tiny guest did not power off: %w", ctx.Err())
		}
		if p.err != nil {
			return nil, fmt.Errorf("tiny guest: %s: %v: %s", argv[0], p.err, lastLines(p.stderr.text(), 3))
		}
		return []float64{ms(first.at)}, nil
	}}
}

// plansEverywhere reports whether every vCPU may run on every online CPU.
func (e *env) plansEverywhere(planned []cpuset.CPUSet) bool {
	for _, c := range planned {
		if !c.Equals(e.host.OnlineCPUs) {
			return false
		}
	}
	return true
}
