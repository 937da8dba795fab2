package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/topology"
)

// probeMain runs inside the test host: the locality variants, interleaved,
// printing a probeResult line. It returns the exit code.
func probeMain(args []string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	qnuma := fs.String("qnuma", "/bench/qnuma", "the qnuma binary")
	rounds := fs.Int("rounds", 3, "interleaved rounds")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pr, err := probeLocality(context.Background(), *qnuma, *rounds)
	return printProbe("probe", probeMarker, pr, err)
}

// printProbe ends a probe's main inside the test host: its result as one
// marked JSON line on stdout (exit 0), or its error on stderr (exit 1).
func printProbe(name, marker string, result any, err error) int {
	var b []byte
	if err == nil {
		b, err = json.Marshal(result)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	fmt.Println(marker + string(b))
	return 0
}

func probeLocality(ctx context.Context, qnuma string, rounds int) (*probeResult, error) {
	e := &env{qnuma: qnuma}
	var err error
	if e.qemu, err = exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("find qemu: %w", err)
	}
	if e.numactl, err = exec.LookPath("numactl"); err != nil {
		return nil, fmt.Errorf("find numactl: %w", err)
	}
	if e.host, err = topology.Read("/"); err != nil {
		return nil, err
	}
	if _, ok := e.host.Node(probeNode); !ok {
		return nil, fmt.Errorf("no node %d here: nodes %v", probeNode, e.host.NodeIDs())
	}
	if e.dir, err = os.MkdirTemp("", "probe-"); err != nil {
		return nil, err
	}
	defer e.close()
	e.stateDir = filepath.Join(e.dir, "state")
	node := strconv.Itoa(probeNode)
	base := append(append([]string{}, tcgArgs...), "-nodefaults", "-display", "none")
	plain := append(append([]string{e.qemu}, base...), "-smp", "2", "-m", probeMem, "-mem-prealloc", "-name", "bench,debug-threads=on")
	vs := []variant{
		e.localityVariant("numactl --membind="+node+" qemu", append([]string{e.numactl, "--membind=" + node}, plain...)),
		e.localityVariant("qemu (the kernel's choice)", plain),
		e.localityVariant("qnuma run --host-nodes "+node+" --prealloc",
			append(append(e.qnumaRun("--host-nodes", node, "--prealloc", "--vcpus", "2", "--memory", probeMem, "--"), e.qemu), base...)),
	}
	samples, err := interleave(ctx, rounds, false, vs)
	if err != nil {
		return nil, err
	}
	pr := &probeResult{}
	for i, v := range vs {
		pr.Variants = append(pr.Variants, probeVariant{Name: v.name, Argv: v.argv, Samples: samples[i]})
	}
	return pr, nil
}

// localityVariant starts argv, waits for the guest to run (its RAM is
// preallocated by then), samples where the vCPU threads run, then reads
// where the guest RAM is. Metrics: RAM on probeNode (%), vCPU samples on
// probeNode (%).
func (e *env) localityVariant(name string, argv []string) variant {
	return variant{name: name, argv: argv, run: func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		p, pid, tids, err := e.startRunning(ctx, argv, 2)
		if p != nil {
			defer p.kill()
		}
		if err != nil {
			return nil, err
		}
		nodeOf := map[int]int{}
		for _, c := range e.host.CPUs {
			nodeOf[c.ID] = c.Node
		}
		on, total := 0, 0
		for k := 0; k < 5; k++ {
			time.Sleep(200 * time.Millisecond) // the guest runs in between
			for _, tid := range tids {
				st, err := numastat.ReadTaskStat("/", pid, tid)
				if err != nil {
					return nil, err
				}
				total++
				if nodeOf[st.Processor] == probeNode {
					on++
				}
			}
		}
		s, err := numastat.Take("/", e.host, pid, numastat.Home{Nodes: []int{probeNode}})
		if err != nil {
			return nil, err
		}
		if s.RAMMappings == 0 || s.LocalBytes+s.RemoteBytes == 0 {
			return nil, fmt.Errorf("pid %d: no resident guest RAM found (%s)", pid, s.RAMMatch)
		}
		fmt.Fprintf(os.Stderr, "probe: %s: pid %d, RAM %v (%s), %d/%d vcpu samples on node %d\n", name, pid, s.RAM, s.RAMMatch, on, total, probeNode)
		return []float64{s.LocalPercent, 100 * float64(on) / float64(total)}, p.stop()
	}}
}

// threadGroup returns the process a thread belongs to (its Tgid).
func threadGroup(tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0, fmt.Errorf("read process of thread %d: %w", tid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("read process of thread %d: no Tgid", tid)
}

// startRunning starts argv with a QMP socket of the bench's and waits until
// the guest runs with its vcpus threads: the process (nil when it did not
// start; the caller kills it), qemu's pid and the vCPU threads.
func (e *env) startRunning(ctx context.Context, argv []string, vcpus int) (p *proc, pid int, tids []int, err error) {
	sock := e.sock()
	if p, err = startProc(withQMP(argv, sock), sock); err != nil {
		return nil, 0, nil, err
	}
	if _, err = p.waitRunning(ctx); err != nil {
		return p, 0, nil, err
	}
	if tids, err = p.vcpuThreads(ctx, vcpus); err != nil {
		return p, 0, nil, err
	}
	pid, err = threadGroup(tids[0])
	return p, pid, tids, err
}
