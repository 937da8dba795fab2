// Command qnuma launches QEMU virtual machines placed on the right NUMA
// nodes of the host: it plans, binds memory, pins every vCPU before the
// guest runs, and supervises the VM.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/alecthomas/kong"
)

const description = `qnuma places QEMU virtual machines on the host's NUMA nodes.

It reads the host's topology, chooses the node(s) with room for the VM's
vCPUs and memory, gives the guest a matching NUMA layout, starts QEMU bound
to those nodes and paused, pins every vCPU thread to its planned CPUs, then
lets the guest run.

Examples:
  qnuma topology                                  what this host is
  qnuma plan --vcpus 8 --memory 16G               where such a VM would go
  qnuma run --vcpus 4 --memory 2G -- qemu-system-x86_64 -nographic ...
  qnuma --membind=1 -- qemu-system-x86_64 ...     numactl's syntax, vCPUs pinned too
  qnuma plan --domain-xml dom.xml                 a libvirt domain's placement
  qnuma pin web --vcpu 1 --cpus 6                 re-pin a running VM's vCPU
  qnuma move web --to-nodes 1                     move a running VM to node 1, live
  qnuma balance --once --dry-run                  what rebalancing would move now
  qnuma vcpus web 4                               hot-add vCPUs (started with --max-vcpus)
  qnuma libvirt place dom --live                  place a running libvirt domain`

// CLI is qnuma's command line; each command lives in its own file.
type CLI struct {
	Topology TopologyCmd `cmd:"" help:"Show the host's NUMA nodes, CPUs, memory, hugepages and distances."`
	Plan     PlanCmd     `cmd:"" help:"Show where a VM would be placed and the QEMU command line, without starting anything."`
	Run      RunCmd      `cmd:"" help:"Start QEMU placed, pinned and supervised."`
	Ps       PsCmd       `cmd:"" help:"List the VMs qnuma placed on this host."`
	Stat     StatCmd     `cmd:"" help:"Show where each VM's memory and vCPUs really are."`
	Doctor   DoctorCmd   `cmd:"" help:"Check what on this host hurts NUMA placement."`
	Libvirt  LibvirtCmd  `cmd:"" help:"qnuma's placement for libvirt domains: print or rewrite their placement XML."`
	Pin      PinCmd      `cmd:"" help:"Re-pin a running VM's vCPU, emulator or I/O threads to other host CPUs."`
	Move     MoveCmd     `cmd:"" help:"Move a running VM to other host NUMA nodes: its memory, vCPUs and other threads, guest layout kept."`
	Balance  BalanceCmd  `cmd:"" help:"Keep running VMs on nodes with room, as numad and ESXi do: at most one live move per round."`
	VCPUs    VCPUsCmd    `cmd:"" name:"vcpus" help:"Hot-add or remove vCPUs of a running VM started with --max-vcpus, each in its planned guest node and pinned."`
	Memory   MemoryCmd   `cmd:"" help:"Grow or shrink a running VM's RAM started with --max-memory, through each guest node's virtio-mem device or DIMMs."`
	Numad    NumadCmd    `cmd:"" help:"numad's advice mode (numad -w VCPUS:MB), for libvirt's placement='auto': the nodes qnuma's planner chooses."`
}

// runOnly is CLI with `qnuma run` alone, which is all `qnuma run` needs:
// kong.New reflects over every command's flags and help texts (0.7 ms of
// the few that qnuma adds to a VM's start-up), and half of that is the
// other commands'. Help, usage and errors are the same as CLI's
// (TestRunOnlyParsesAsCLI).
type runOnly struct {
	Run RunCmd `cmd:"" help:"Start QEMU placed, pinned and supervised."`
}

// model is what kong parses args into.
func model(args []string) any {
	if len(args) > 0 && args[0] == "run" {
		return &runOnly{}
	}
	return &CLI{}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run parses args and runs the command, returning the process exit code.
func run(args []string) int {
	startEarly(args)
	if isNumactlSyntax(args) {
		return runNumactl(args)
	}
	parser, err := newParser(model(args))
	if err != nil {
		fmt.Fprintln(os.Stderr, "qnuma:", err)
		return 1
	}
	if len(args) == 0 {
		// No command: show what there is to run, as bad input.
		parse(parser, []string{"--help"})
		return 2
	}
	code, done := parse(parser, args)
	if done {
		return code
	}
	return 0
}

func newParser(cli any, opts ...kong.Option) (*kong.Kong, error) {
	return kong.New(cli, append([]kong.Option{
		kong.Name("qnuma"),
		kong.Description(description),
		kong.UsageOnError(),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
	}, opts...)...)
}

// exitCode carries kong's exit requests (after --help) out of Parse.
type exitCode int

func parse(parser *kong.Kong, args []string) (code int, done bool) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code, done = int(c), true
		}
	}()
	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qnuma:", err)
		return 2, true
	}
	if err := ctx.Run(); err != nil {
		return report(err), true
	}
	return 0, true
}

// report prints err and chooses the exit code: 2 for bad input (nothing was
// started), the wrapped code for an *ExitError, 1 otherwise.
func report(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(os.Stderr, "qnuma:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(os.Stderr, "qnuma:", err)
	if IsUsage(err) {
		return 2
	}
	return 1
}
