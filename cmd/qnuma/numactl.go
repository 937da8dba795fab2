package main

// qnuma's numactl drop-in: `qnuma --membind=1 -- CMD ARGS...` binds and
// execs any command as numactl does; when CMD is a QEMU system emulator it
// also pins every vCPU, as `qnuma run` does, within the nodes given.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/launcher"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
)

// runNumactl runs a numactl-style command line and returns the exit code.
func runNumactl(args []string) int {
	if len(args) > 0 && args[0] == pinHelperArg {
		return runPinHelper(args[1:])
	}
	if err := numactl(args); err != nil {
		return report(err)
	}
	return 0
}

func numactl(args []string) error {
	o, err := parseNumactl(args)
	if err != nil {
		return badInput("%w", err)
	}
	host, err := topology.Read("/")
	if err != nil {
		return err
	}
	b, err := o.resolve(host)
	if err != nil {
		return badInput("%w", err)
	}
	if !isQEMUSystem(o.Argv[0]) {
		return execBound(affinity.Real{}, b, o.Argv, os.Environ())
	}
	q, err := plan.ParseQEMUArgv(o.Argv)
	if err != nil {
		return badInput("%w", err)
	}
	p, note, err := numactlPlan(host, b, q)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintln(os.Stderr, "qnuma: warning:", note)
	}
	if o.Exec {
		return execQEMU(b, p, q, o.Verbose)
	}
	return launchVM(launcher.Config{
		Argv:         q.Final(nil),
		UserPaused:   q.Paused,
		HasName:      q.HasName,
		Plan:         p,
		EmulatorCPUs: b.CPUs,
	}, o.Verbose)
}

// numactlPlan places a QEMU guest within the nodes given, keeping the
// user's own -smp, -m and -numa (bind only), and takes the memory policy
// exactly as numactl's options say.
//
// A VM that does not fit the nodes still runs, as under numactl, with its
// vCPUs floating over the nodes' CPUs; note then says so.
func numactlPlan(host *topology.Host, b numactlBinding, q *plan.QEMUArgv) (p *plan.Plan, note string, err error) {
	spec := plan.Spec{BindOnly: true, Policy: b.Policy}
	if b.Nodes.Size() > 0 {
		spec.HostNodes = b.Nodes.List()
	}
	if spec.Policy == "" || spec.Policy == memobj.PolicyDefault {
		spec.Policy = memobj.PolicyBind // for placing only: the real policy is b's
	}
	spec, err = plan.MergeSpec(spec, plan.MergeFlags{}, q)
	if err != nil {
		return nil, "", err
	}
	if err := checkVCPUs("-smp "+q.SMPArg, spec.VCPUs); err != nil {
		return nil, "", err // before planning, which allocates per vCPU
	}
	p, err = plan.Make(host, spec, nil)
	if errors.Is(err, plan.ErrDoesNotFit) {
		// numactl runs whatever it is given: so does its drop-in, with the
		// vCPUs floating over the nodes' CPUs instead of a layout.
		note = fmt.Sprintf("%v\nthe vcpus float over the cpus of nodes %s instead", err, b.Nodes)
		p, err = floatingPlan(host, b, spec), nil
	}
	if err != nil {
		return nil, "", err
	}
	p.Mempolicy = plan.Mempolicy{Mode: b.Policy, Nodes: b.Mem}
	if b.Policy == "" {
		p.Mempolicy.Mode = memobj.PolicyDefault
	}
	if b.CPUs.Size() > 0 {
		p.EmulatorCPUs = b.CPUs
		for i := range p.VCPUs {
			// Within --physcpubind/--cpunodebind; a vCPU planned wholly
			// outside them floats over all of them.
			if in := p.VCPUs[i].HostCPUs.Intersection(b.CPUs); in.Size() > 0 {
				p.VCPUs[i].HostCPUs = in
			} else {
				p.VCPUs[i].HostCPUs = b.CPUs
			}
		}
	}
	return p, note, nil
}

// floatingPlan puts every vCPU and the emulator on all the CPUs of b's
// nodes (all online CPUs when b names none).
func floatingPlan(host *topology.Host, b numactlBinding, spec plan.Spec) *plan.Plan {
	cpus := cpuset.New()
	for _, id := range b.Nodes.List() {
		n, _ := host.Node(id)
		cpus = cpus.Union(n.CPUs)
	}
	if cpus.IsEmpty() {
		cpus = host.OnlineCPUs
	}
	p := &plan.Plan{Spec: spec, HostNodes: b.Nodes.List(), EmulatorCPUs: cpus, BindOnly: true}
	for i := 0; i < spec.VCPUs; i++ {
		p.VCPUs = append(p.VCPUs, plan.VCPU{ID: i, HostCPUs: cpus})
	}
	return p
}

// bindSelf applies b to the calling OS thread, which the caller has locked
// and which then execs: memory policy and CPU affinity survive execve.
func bindSelf(sys affinity.Sys, b numactlBinding) error {
	if b.Policy != "" {
		mode, err := b.Policy.Mode()
		if err != nil {
			return err
		}
		if err := sys.SetMempolicy(mode, b.Mem); err != nil {
			return fmt.Errorf("set memory policy %s nodes %s: %w", b.Policy, b.Mem, err)
		}
	}
	if b.CPUs.Size() > 0 {
		if err := sys.SchedSetaffinity(0, b.CPUs); err != nil {
			return fmt.Errorf("bind to cpus %s: %w", b.CPUs, err)
		}
	}
	return nil
}

// execBound replaces qnuma by argv under b, as numactl does. It returns
// only on failure.
func execBound(sys affinity.Sys, b numactlBinding, argv, env []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("execution of %s: %w", argv[0], err)
	}
	// Never unlocked: after a failed exec this thread's policy must not
	// run other goroutines.
	runtime.LockOSThread()
	if err := bindSelf(sys, b); err != nil {
		return err
	}
	if err := syscall.Exec(path, argv, env); err != nil {
		return fmt.Errorf("execution of %s: %w", path, err)
	}
	return nil
}

// pinHelperArg runs qnuma as the --exec helper (hidden; its job comes in
// pinJobEnv).
const (
	pinHelperArg = "--qnuma-pin-helper"
	pinJobEnv    = "QNUMA_PIN_JOB"
)

// pinJob is what the --exec helper is to do for the qemu qnuma became.
type pinJob struct {
	PID        int
	Socket     string
	Dir        string
	VCPUs      []string // cpu list per vCPU
	Emulator   string
	UserPaused bool
	Verbose    bool
	QMPTimeout time.Duration
}

// execQEMU replaces qnuma by qemu (same pid, like numactl) after starting
// a detached helper that pins qemu's threads over QMP and resumes it.
func execQEMU(b numactlBinding, p *plan.Plan, q *plan.QEMUArgv, verbose bool) error {
	path, err := exec.LookPath(q.Binary)
	if err != nil {
		return fmt.Errorf("execution of %s: %w", q.Binary, err)
	}
	dir, err := launcher.MakeRuntimeDir("")
	if err != nil {
		return err
	}
	sock := filepath.Join(dir, "qmp.sock")
	argv := q.Final(nil, launcher.ExtraArgs(sock, "", q.Paused, q.HasName)...)
	job := pinJob{PID: os.Getpid(), Socket: sock, Dir: dir, Emulator: p.EmulatorCPUs.String(),
		UserPaused: q.Paused, Verbose: verbose, QMPTimeout: launcher.DefaultQMPTimeout}
	for _, v := range p.VCPUs {
		job.VCPUs = append(job.VCPUs, v.HostCPUs.String())
	}
	if err := startPinHelper(job); err != nil {
		os.RemoveAll(dir)
		return err
	}
	// From here on the helper owns dir: it removes it when done, or when
	// this process exits without becoming qemu.
	runtime.LockOSThread()
	if err := bindSelf(affinity.Real{}, b); err != nil {
		return err
	}
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("execution of %s: %w", path, err)
	}
	return nil
}

// startPinHelper starts the helper detached: an intermediate qnuma starts
// it in a new session and exits at once, so the helper is nobody's child
// to reap once qnuma has become qemu.
func startPinHelper(job pinJob) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	b, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	cmd := exec.Command(self, pinHelperArg, "detach")
	cmd.Env = append(os.Environ(), pinJobEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	return nil
}

// runPinHelper is the helper: "detach" starts the real one and returns.
func runPinHelper(args []string) int {
	if len(args) > 0 && args[0] == "detach" {
		self, err := os.Executable()
		if err == nil {
			cmd := exec.Command(self, pinHelperArg)
			cmd.Stderr = os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			err = cmd.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "qnuma: start pin helper:", err)
			return 1
		}
		return 0
	}
	var job pinJob
	if err := json.Unmarshal([]byte(os.Getenv(pinJobEnv)), &job); err != nil {
		fmt.Fprintf(os.Stderr, "qnuma: pin helper: bad %s: %v\n", pinJobEnv, err)
		return 1
	}
	p, err := job.plan()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qnuma: pin helper:", err)
		os.RemoveAll(job.Dir)
		return 1
	}
	cfg := launcher.Config{Plan: p, UserPaused: job.UserPaused, QMPTimeout: job.QMPTimeout,
		Log: newCLILogger(os.Stderr, job.Verbose)}
	_, err = launcher.Attach(context.Background(), cfg, launcher.Target{PID: job.PID, Socket: job.Socket, RuntimeDir: job.Dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "qnuma:", err)
		return 1
	}
	return 0
}

func (j pinJob) plan() (*plan.Plan, error) {
	p := &plan.Plan{}
	var err error
	if p.EmulatorCPUs, err = cpulist.Parse(j.Emulator); err != nil {
		return nil, fmt.Errorf("emulator cpus %q: %w", j.Emulator, err)
	}
	for i, s := range j.VCPUs {
		c, err := cpulist.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("vcpu %d cpus %q: %w", i, s, err)
		}
		p.VCPUs = append(p.VCPUs, plan.VCPU{ID: i, HostCPUs: c})
	}
	return p, nil
}

// numactlOpts is a numactl-style command line: qnuma --membind=1 -- CMD.
type numactlOpts struct {
	// Policy is the memory policy asked ("" when none: the default).
	Policy memobj.Policy
	// Mem, CPUNodes and PhysCPUs are numactl's node and CPU specs as
	// written ("all", "0-1,3"); "" when not given.
	Mem, CPUNodes, PhysCPUs string
	// Exec replaces qnuma by the command (numactl's own behaviour).
	Exec bool
	// Verbose logs the launch's steps.
	Verbose bool
	Argv    []string
}

// numactlOption is one option numactl has (or qnuma adds), by spellings.
type numactlOption struct {
	long, short string
	value       bool
	set         func(o *numactlOpts, v string) error
}

func memPolicy(p memobj.Policy) func(o *numactlOpts, v string) error {
	return func(o *numactlOpts, v string) error {
		if o.Policy != "" && o.Policy != p {
			return fmt.Errorf("conflicting memory policies: --%s and --%s", policyFlag(o.Policy), policyFlag(p))
		}
		o.Policy, o.Mem = p, v
		return nil
	}
}

func policyFlag(p memobj.Policy) string {
	switch p {
	case memobj.PolicyBind:
		return "membind"
	case memobj.PolicyDefault:
		return "localalloc"
	}
	return string(p)
}

var numactlOptions = []numactlOption{
	{"membind", "m", true, memPolicy(memobj.PolicyBind)},
	{"interleave", "i", true, memPolicy(memobj.PolicyInterleave)},
	{"preferred", "p", true, memPolicy(memobj.PolicyPreferred)},
	{"localalloc", "l", false, memPolicy(memobj.PolicyDefault)},
	{"cpunodebind", "N", true, func(o *numactlOpts, v string) error { o.CPUNodes = v; return nil }},
	{"physcpubind", "C", true, func(o *numactlOpts, v string) error { o.PhysCPUs = v; return nil }},
	{"exec", "", false, func(o *numactlOpts, _ string) error { o.Exec = true; return nil }},
	{"verbose", "", false, func(o *numactlOpts, _ string) error { o.Verbose = true; return nil }},
}

// lookupOption finds the option an argument starts with, and its attached
// value: "--membind=1" → membind, "1"; "-m1" → membind, "1".
func lookupOption(arg string) (opt *numactlOption, value string, attached bool) {
	for i := range numactlOptions {
		o := &numactlOptions[i]
		if name, v, eq := strings.Cut(strings.TrimPrefix(arg, "--"), "="); strings.HasPrefix(arg, "--") && name == o.long {
			return o, v, eq
		}
		if o.short != "" && strings.HasPrefix(arg, "-"+o.short) && !strings.HasPrefix(arg, "--") {
			rest := arg[len(o.short)+1:]
			if !o.value && rest != "" {
				continue
			}
			return o, rest, rest != ""
		}
	}
	return nil, "", false
}

// isNumactlSyntax reports whether args use numactl's options
// (qnuma --membind=1 -- CMD), decided from the first argument.
func isNumactlSyntax(args []string) bool {
	if len(args) == 0 {
		return false
	}
	if args[0] == pinHelperArg {
		return true
	}
	o, _, _ := lookupOption(args[0])
	return o != nil
}

// parseNumactl parses numactl's options up to the command: like numactl,
// options end at "--" or at the first argument that is not one.
func parseNumactl(args []string) (numactlOpts, error) {
	var o numactlOpts
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		opt, v, attached := lookupOption(a)
		if opt == nil {
			return o, fmt.Errorf("unknown option %q (numactl syntax: --membind, --interleave, --preferred, --localalloc, --cpunodebind, --physcpubind, --exec)", a)
		}
		if opt.value && !attached {
			if i+1 >= len(args) {
				return o, fmt.Errorf("option %s needs a value", a)
			}
			i++
			v = args[i]
		}
		if !opt.value && attached {
			return o, fmt.Errorf("option --%s takes no value", opt.long)
		}
		if opt.value && v == "" {
			return o, fmt.Errorf("option --%s needs a value", opt.long)
		}
		if err := opt.set(&o, v); err != nil {
			return o, err
		}
	}
	o.Argv = args[i:]
	if len(o.Argv) == 0 {
		return o, fmt.Errorf("no command given: qnuma --membind=NODES [options] -- CMD ARGS...")
	}
	return o, nil
}

// parseSet parses a node or CPU spec: "all" or a list such as "0-3,8".
// numactl's relative (+N) and inverted (!N) forms are refused.
func parseSet(spec string, all cpuset.CPUSet, what string) (cpuset.CPUSet, error) {
	if spec == "all" {
		return all, nil
	}
	if strings.HasPrefix(spec, "+") || strings.HasPrefix(spec, "!") {
		return cpuset.New(), fmt.Errorf("%s %q: relative (+) and inverted (!) forms are not supported", what, spec)
	}
	s, err := cpulist.Parse(spec)
	if err != nil {
		return cpuset.New(), fmt.Errorf("%s %q: %w", what, spec, err)
	}
	if s.Size() == 0 {
		return s, fmt.Errorf("%s %q: empty", what, spec)
	}
	if extra := s.Difference(all); extra.Size() > 0 {
		return s, fmt.Errorf("%s %q: %s not on this host (it has %s)", what, spec, extra, all)
	}
	return s, nil
}

// numactlBinding is a numactl command line resolved against the host.
type numactlBinding struct {
	Policy memobj.Policy
	Mem    cpuset.CPUSet // nodes of the memory policy
	// CPUs the command may run on; empty when not restricted.
	CPUs cpuset.CPUSet
	// Nodes are where a QEMU guest goes: the --cpunodebind nodes, else
	// the memory nodes, else the nodes of --physcpubind's CPUs.
	Nodes cpuset.CPUSet
}

// resolve checks the specs against the host.
func (o numactlOpts) resolve(h *topology.Host) (numactlBinding, error) {
	b := numactlBinding{Policy: o.Policy}
	nodes := cpuset.New(h.NodeIDs()...)
	var err error
	if o.Mem != "" {
		if b.Mem, err = parseSet(o.Mem, nodes, "nodes"); err != nil {
			return b, err
		}
		if o.Policy == memobj.PolicyPreferred && b.Mem.Size() != 1 {
			return b, fmt.Errorf("--preferred takes one node, got %s", b.Mem)
		}
	}
	if o.CPUNodes != "" {
		cn, err := parseSet(o.CPUNodes, nodes, "nodes")
		if err != nil {
			return b, err
		}
		b.Nodes = cn
		for _, id := range cn.List() {
			n, _ := h.Node(id)
			b.CPUs = b.CPUs.Union(n.CPUs)
		}
		if b.CPUs.Size() == 0 {
			return b, fmt.Errorf("--cpunodebind %s: these nodes have no cpus", cn)
		}
	}
	if o.PhysCPUs != "" {
		pc, err := parseSet(o.PhysCPUs, h.OnlineCPUs, "cpus")
		if err != nil {
			return b, err
		}
		if b.CPUs.Size() > 0 {
			if pc = pc.Intersection(b.CPUs); pc.Size() == 0 {
				return b, fmt.Errorf("--physcpubind %s has no cpu on --cpunodebind %s", o.PhysCPUs, o.CPUNodes)
			}
		}
		b.CPUs = pc
	}
	switch {
	case b.Nodes.Size() > 0:
	case b.Mem.Size() > 0:
		b.Nodes = b.Mem
	case b.CPUs.Size() > 0:
		var ids []int
		for _, c := range h.CPUs {
			if b.CPUs.Contains(c.ID) && c.Node >= 0 {
				ids = append(ids, c.Node)
			}
		}
		b.Nodes = cpuset.New(ids...)
	}
	return b, nil
}

// isQEMUSystem reports whether a command is a QEMU system emulator, whose
// vCPUs qnuma pins too.
func isQEMUSystem(cmd string) bool {
	base := filepath.Base(cmd)
	return strings.HasPrefix(base, "qemu-system-") || base == "qemu-kvm"
}
