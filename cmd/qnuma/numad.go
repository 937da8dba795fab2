package main

// qnuma numad -w VCPUS[:MB] (issue 14): numad's advice mode, which libvirt
// runs once at a domain's start for <vcpu placement='auto'> and
// <numatune><memory placement='auto'> (numad -w VCPUS:MiB; it reads a
// node list such as "0-1" from stdout and needs exit 0). qnuma's planner
// answers instead of numad's score, around the VMs in qnuma's ledger.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
)

// maxNumadMiB bounds -w's MB (16 EiB in bytes would overflow).
const maxNumadMiB = 1 << 40

// NumadCmd is `qnuma numad`.
type NumadCmd struct {
	Workload string `name:"workload" short:"w" required:"" placeholder:"VCPUS[:MB]" help:"The workload to advise on, as numad -w takes it: VCPUS CPUs and MB MiB of memory (what libvirt passes for placement='auto'). Prints the node list and exits 0."`
	Strict   bool   `name:"strict" help:"Exit 2 when the workload fits on no set of nodes, instead of advising every node as numad does."`
	Root     string `name:"root" default:"/" placeholder:"DIR" help:"Advise for the host whose /sys and /proc snapshot is under DIR instead of this one (its ledger is then read only when --state-dir is given)."`
	StateDir string `name:"state-dir" placeholder:"DIR" help:"Ledger of the VMs qnuma placed, whose room they hold (default: /run/qnuma for root, else $XDG_RUNTIME_DIR/qnuma)."`
}

// Help is shown by `qnuma numad --help`.
func (c *NumadCmd) Help() string {
	return `Answers as numad -w does: the host nodes a workload of VCPUS CPUs and MB MiB
should run on, one line such as 0 or 0-1, exit 0. libvirt runs
/usr/bin/numad -w VCPUS:MiB once when it starts a domain whose <vcpu> or
<numatune><memory> has placement='auto', and binds the domain's memory and
CPUs to that nodeset. Make it ask qnuma with a wrapper in numad's place:

  #!/bin/sh
  exec /usr/local/bin/qnuma numad "$@"

The nodes are what qnuma plan --vcpus VCPUS --memory MB chooses (the fewest
nodes with room for both, around the VMs in qnuma's ledger). Where they do
not fit without sharing cores, vCPUs are let share them (--overcommit);
where the memory fits nowhere, every node is advised, as numad does, and
stderr says why (--strict exits 2 instead). Nothing is started or written.

Examples:
  qnuma numad -w 4:8192
  qnuma numad -w 32:65536 --root /snapshots/host7`
}

func (c *NumadCmd) Run() error {
	return c.advise(context.Background(), os.Stdout, os.Stderr)
}

// parseWorkload reads numad's -w NCPUS[:MB].
func parseWorkload(s string) (vcpus int, mib uint64, err error) {
	cpus, mb, hasMB := strings.Cut(s, ":")
	vcpus, err = strconv.Atoi(cpus)
	if err != nil || vcpus < 1 || vcpus > maxVCPUs {
		return 0, 0, badInput("-w %q: want VCPUS[:MB], VCPUS from 1 to %d", s, maxVCPUs)
	}
	if hasMB {
		mib, err = strconv.ParseUint(mb, 10, 64)
		if err != nil || mib > maxNumadMiB {
			return 0, 0, badInput("-w %q: want VCPUS[:MB], MB a whole number of MiB up to %d", s, uint64(maxNumadMiB))
		}
	}
	return vcpus, mib, nil
}

func (c *NumadCmd) advise(ctx context.Context, w, warn io.Writer) error {
	vcpus, mib, err := parseWorkload(c.Workload)
	if err != nil {
		return err
	}
	if err := checkRoot(c.Root); err != nil {
		return err
	}
	host, err := topology.Read(c.Root)
	if err != nil {
		return err
	}
	var placed []plan.Placed
	if c.Root == "/" || c.StateDir != "" {
		pc := &PlanCmd{SpecFlags: SpecFlags{Root: "/"}, StateDir: c.StateDir}
		if placed, err = pc.placed(ctx); err != nil {
			return err
		}
	}
	// No MB: CPUs alone, as numad plans them; the planner's granule stands
	// in for the memory.
	spec := plan.Spec{VCPUs: vcpus, MemoryBytes: max(mib, 1) << 20, Policy: memobj.PolicyBind}
	nodes, note, err := numadNodes(host, spec, placed)
	if err != nil {
		if c.Strict || !errors.Is(err, plan.ErrDoesNotFit) {
			return err
		}
		nodes = host.Allowed.Mems
		note = fmt.Sprintf("advising every node, as numad does (--strict exits 2 instead), for %v", err)
	}
	if note != "" {
		fmt.Fprintf(warn, "qnuma numad: %s\n", note)
	}
	_, err = fmt.Fprintln(w, nodes.String())
	return err
}

// numadNodes is the host nodes the planner chooses for spec: as asked,
// else with vCPUs sharing cores (note says so).
func numadNodes(host *topology.Host, spec plan.Spec, placed []plan.Placed) (cpuset.CPUSet, string, error) {
	p, err := plan.Make(host, spec, placed)
	if errors.Is(err, plan.ErrDoesNotFit) {
		spec.Overcommit = true
		if p, err = plan.Make(host, spec, placed); err == nil {
			return cpuset.New(p.HostNodes...), fmt.Sprintf("%d vCPUs fit no nodes' free cores: advising node(s) %s, where they share cores", spec.VCPUs, cpuset.New(p.HostNodes...)), nil
		}
	}
	if err != nil {
		return cpuset.New(), "", err
	}
	return cpuset.New(p.HostNodes...), "", nil
}
