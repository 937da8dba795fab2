package main

// qnuma's numactl drop-in: `qnuma --membind=1 -- CMD ARGS...` binds and
// execs any command as numactl does; when CMD is a QEMU system emulator it
// also pins every vCPU, as `qnuma run` does, within the nodes given.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/launcher"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemucmd"
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
	for _, w := range o.Warnings {
		fmt.Fprintln(os.Stderr, "qnuma: warning:", w)
	}
	// A command that is not there is the user's to fix: nothing started.
	if _, err := exec.LookPath(o.Argv[0]); err != nil {
		return badInput("execution of %s: %w: nothing was started", o.Argv[0], notFoundReason(err))
	}
	host, err := readHost("/")
	if err != nil {
		return err
	}
	b, err := o.resolve(host)
	if err != nil {
		return badInput("%w", err)
	}
	if !qemucmd.IsSystemEmulator(o.Argv[0]) {
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
	res, err := reserveNumactl(o.StateDir, p)
	if err != nil {
		return err
	}
	if o.Exec {
		err := execQEMU(b, p, q, o.Verbose, res)
		res.Release() // qnuma did not become qemu
		return err
	}
	defer res.Release()
	pl := p.Placement()
	if b.CPUs.Size() > 0 {
		pl.Emulator = b.CPUs
	}
	return launchVM(launcher.Config{
		Argv:           q.Final(nil),
		UserPaused:     q.Paused,
		HasName:        q.HasName,
		Placement:      pl,
		WaitingSockets: q.WaitingSockets,
		Hooks:          launcher.Hooks{OnStarted: recordQEMU(res)},
	}, o.Verbose)
}

// reserveNumactl reserves a VM started with numactl's spelling in the
// ledger, held until its qemu starts and Commit records it, so that `qnuma
// ps` lists it and later VMs are planned around it. Its placement is the
// user's: the ledger only learns of it.
func reserveNumactl(stateDir string, p *plan.Plan) (*ledger.Reservation, error) {
	l, err := ledger.Open(stateDir)
	if err != nil {
		return nil, err
	}
	r, err := l.PlaceHeld(context.Background(), "", func([]plan.Placed) (*plan.Plan, error) { return p, nil })
	if err != nil {
		return nil, err
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(os.Stderr, "qnuma: warning: %v (moved aside; its room is no longer held)\n", q)
	}
	return r, nil
}

// recordQEMU is the OnStarted hook that records the VM in the ledger with
// qemu's pid (the reservation is held until then); a VM it cannot record
// is stopped before its guest runs.
func recordQEMU(r *ledger.Reservation) func(int, string) error {
	return func(pid int, _ string) error { return r.Commit(pid) }
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

// pinHelperArg runs qnuma as the --exec helper (hidden). It trusts nothing
// in its environment: the job comes over an inherited pipe (fd 3), the QMP
// socket as an inherited fd (4) and qemu as a pidfd (5); the socket's peer
// must be the pidfd's process, so a helper run by hand can signal nothing.
const pinHelperArg = "--qnuma-pin-helper"

// The helper's inherited fds, in exec.Cmd.ExtraFiles order.
const (
	pinJobFD   = 3
	pinQMPFD   = 4
	pinPIDFDFD = 5
)

// maxPinJob bounds the job read from the pipe.
const maxPinJob = 1 << 20

// pinJob is what the --exec helper is to do for the qemu qnuma became.
type pinJob struct {
	VCPUs      []string // cpu list per vCPU
	Emulator   string
	UserPaused bool
	Verbose    bool
	QMPTimeout time.Duration
	// WaitingSockets are the user's sockets qemu waits on for a client.
	WaitingSockets []string
}

// execQEMU replaces qnuma by qemu (same pid, like numactl) after starting
// a detached helper that pins qemu's threads over QMP and resumes it. The
// ledger entry res is qemu's from then on: qnuma's pid becomes qemu's.
func execQEMU(b numactlBinding, p *plan.Plan, q *plan.QEMUArgv, verbose bool, res *ledger.Reservation) error {
	path, err := exec.LookPath(q.Binary)
	if err != nil {
		return fmt.Errorf("execution of %s: %w", q.Binary, err)
	}
	pair, err := launcher.NewQMPPair()
	if err != nil {
		return err
	}
	defer pair.Conn.Close()
	defer pair.QEMU.Close() // after a failed exec; qemu keeps it otherwise
	job := pinJob{Emulator: p.EmulatorCPUs.String(), UserPaused: q.Paused, Verbose: verbose,
		QMPTimeout: launcher.DefaultQMPTimeout, WaitingSockets: q.WaitingSockets}
	for _, v := range p.VCPUs {
		job.VCPUs = append(job.VCPUs, v.HostCPUs.String())
	}
	if err := startPinHelper(job, pair.Conn); err != nil {
		return err
	}
	// qemu's end survives the exec at its own number, which no fd handed
	// down to qnuma can have; only now, so that the helper has no copy
	// (it would hide qemu's end of the connection from it).
	qemuFD := int(pair.QEMU.Fd())
	if _, err := unix.FcntlInt(uintptr(qemuFD), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("qmp socket for qemu: %w", os.NewSyscallError("fcntl", err))
	}
	argv := q.Final(nil, launcher.ExtraArgs(qemuFD, "", q.Paused, q.HasName)...)
	if err := res.Commit(os.Getpid()); err != nil {
		return err // not on record: qnuma does not become qemu
	}
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
// to reap once qnuma has become qemu. It hands down the job on a pipe, the
// QMP connection and a pidfd of this process (qemu-to-be).
func startPinHelper(job pinJob, conn net.Conn) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	b, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("start pin helper: qmp connection is a %T, not a unix socket", conn)
	}
	qmpFile, err := uc.File()
	if err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	defer qmpFile.Close()
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fmt.Errorf("start pin helper: %w", os.NewSyscallError("pidfd_open", err))
	}
	pidFile := os.NewFile(uintptr(pidfd), "pidfd")
	defer pidFile.Close()
	jobR, jobW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	defer jobR.Close()
	defer jobW.Close()
	cmd := exec.Command(self, pinHelperArg, "detach")
	cmd.ExtraFiles = []*os.File{jobR, qmpFile, pidFile} // fds 3, 4, 5
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	jobR.Close()
	_, werr := jobW.Write(b)
	jobW.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("start pin helper: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("start pin helper: send job: %w", werr)
	}
	return nil
}

// helperFDs reports whether fds 3-5 were handed down (open, without
// close-on-exec), as only startPinHelper does.
func helperFDs() error {
	for _, fd := range []int{pinJobFD, pinQMPFD, pinPIDFDFD} {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			return fmt.Errorf("fd %d was not handed down: the pin helper is started by qnuma --exec only", fd)
		}
	}
	return nil
}

// runPinHelper is the helper: "detach" starts the real one and returns.
// Whatever it finds wrong, it deletes nothing and signals no one it has
// not verified.
func runPinHelper(args []string) int {
	if err := helperFDs(); err != nil {
		fmt.Fprintln(os.Stderr, "qnuma: pin helper:", err)
		return 1
	}
	if len(args) > 0 && args[0] == "detach" {
		self, err := os.Executable()
		if err == nil {
			cmd := exec.Command(self, pinHelperArg)
			cmd.ExtraFiles = []*os.File{os.NewFile(pinJobFD, "job"), os.NewFile(pinQMPFD, "qmp"), os.NewFile(pinPIDFDFD, "pidfd")}
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
	for _, fd := range []int{pinJobFD, pinQMPFD, pinPIDFDFD} {
		unix.CloseOnExec(fd)
	}
	// The helper's stderr is the user's: a closed pipe there must not kill
	// it and leave qemu paused.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	target, err := launcher.TargetFromFDs(pinQMPFD, pinPIDFDFD, "/")
	if err != nil {
		fmt.Fprintln(os.Stderr, "qnuma: pin helper:", err)
		return 1
	}
	job, err := readPinJob(os.NewFile(pinJobFD, "job"))
	var pl plan.Placement
	if err == nil {
		pl, err = job.placement()
	}
	if err != nil {
		err = fmt.Errorf("pin helper: %w", err)
		// qemu waits paused for a job that will not come: end it so
		// that its status shows the failure.
		unix.PidfdSendSignal(target.PIDFD, unix.SIGKILL, nil, 0)
		fmt.Fprintf(os.Stderr, "qnuma: %v; killed qemu (pid %d)\n", err, target.PID)
		target.Conn.Close()
		unix.Close(target.PIDFD)
		return 1
	}
	cfg := launcher.Config{Placement: pl, UserPaused: job.UserPaused, QMPTimeout: job.QMPTimeout,
		WaitingSockets: job.WaitingSockets, Log: newCLILogger(os.Stderr, job.Verbose)}
	_, err = launcher.Attach(context.Background(), cfg, target)
	if err != nil {
		// Attach killed qemu: its status (137) is what the shell sees.
		fmt.Fprintln(os.Stderr, "qnuma:", err)
		return 1
	}
	return 0
}

// readPinJob reads the job from the pipe startPinHelper wrote it to.
func readPinJob(f *os.File) (pinJob, error) {
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPinJob+1))
	if err != nil {
		return pinJob{}, fmt.Errorf("read job: %w", err)
	}
	if len(b) > maxPinJob {
		return pinJob{}, fmt.Errorf("read job: over %d bytes", maxPinJob)
	}
	var job pinJob
	if err := json.Unmarshal(b, &job); err != nil {
		return pinJob{}, fmt.Errorf("read job: %w", err)
	}
	return job, nil
}

func (j pinJob) placement() (plan.Placement, error) {
	var p plan.Placement
	var err error
	if p.Emulator, err = cpulist.Parse(j.Emulator); err != nil {
		return p, fmt.Errorf("emulator cpus %q: %w", j.Emulator, err)
	}
	for i, s := range j.VCPUs {
		c, err := cpulist.Parse(s)
		if err != nil {
			return p, fmt.Errorf("vcpu %d cpus %q: %w", i, s, err)
		}
		p.VCPUs = append(p.VCPUs, c)
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
	// StateDir is the ledger a QEMU guest is recorded in ("": the default).
	StateDir string
	// Warnings are options accepted but without effect, as numactl warns.
	Warnings []string
	Argv     []string
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
	// As numactl: --strict is for shared memory segments; for a command it
	// is accepted with a warning. --touch needs a segment, which qnuma
	// does not make: an error, as in numactl.
	{"strict", "t", false, func(o *numactlOpts, _ string) error {
		o.Warnings = append(o.Warnings, "--strict applies to shared memory segments only: ignored for the command, as numactl does")
		return nil
	}},
	{"touch", "T", false, func(o *numactlOpts, _ string) error {
		return errors.New("--touch must follow a shared memory segment (--shm, --file), which qnuma does not support")
	}},
	// qnuma's own.
	{"exec", "", false, func(o *numactlOpts, _ string) error { o.Exec = true; return nil }},
	{"verbose", "", false, func(o *numactlOpts, _ string) error { o.Verbose = true; return nil }},
	{"state-dir", "", true, func(o *numactlOpts, v string) error { o.StateDir = v; return nil }},
}

// numactlOnly are numactl's long options that qnuma does not handle: an
// abbreviation is resolved against them too, so it means what it means to
// numactl or is refused.
var numactlOnly = []string{
	"all", "balancing", "preferred-many", "cpubind", "show", "hardware", "shm", "file",
	"offset", "length", "shmmode", "shmid", "huge", "dump", "dump-nodes",
}

// errNotNumactl: the argument is none of numactl's options.
var errNotNumactl = errors.New("not a numactl option")

// lookupOption finds the option an argument starts with, and its attached
// value: "--membind=1" → membind, "1"; "-m1" → membind, "1". Like numactl
// (getopt_long), a long option may be abbreviated to any unambiguous
// prefix: "--memb=0". The error is errNotNumactl for an argument that is
// no numactl option at all.
func lookupOption(arg string) (opt *numactlOption, value string, attached bool, err error) {
	if name, v, eq := strings.Cut(strings.TrimPrefix(arg, "--"), "="); strings.HasPrefix(arg, "--") && name != "" {
		var matches []string
		for i := range numactlOptions {
			o := &numactlOptions[i]
			if name == o.long {
				return o, v, eq, nil
			}
			if strings.HasPrefix(o.long, name) {
				opt = o
				matches = append(matches, "--"+o.long)
			}
		}
		var others []string
		for _, l := range numactlOnly {
			if l == name {
				return nil, "", false, fmt.Errorf("numactl's --%s is not supported by qnuma", l)
			}
			if strings.HasPrefix(l, name) {
				others = append(others, "--"+l)
			}
		}
		switch {
		case len(matches)+len(others) > 1:
			return nil, "", false, fmt.Errorf("option %s is ambiguous; possibilities: %s", arg, strings.Join(append(matches, others...), " "))
		case len(matches) == 1:
			return opt, v, eq, nil
		case len(others) == 1:
			return nil, "", false, fmt.Errorf("option %s is numactl's %s, which qnuma does not support", arg, others[0])
		}
		return nil, "", false, errNotNumactl
	}
	for i := range numactlOptions {
		o := &numactlOptions[i]
		if o.short != "" && strings.HasPrefix(arg, "-"+o.short) && !strings.HasPrefix(arg, "--") {
			rest := arg[len(o.short)+1:]
			if !o.value && rest != "" {
				continue
			}
			return o, rest, rest != "", nil
		}
	}
	return nil, "", false, errNotNumactl
}

// isNumactlSyntax reports whether args use numactl's options
// (qnuma --membind=1 -- CMD), decided from the first argument: one of
// numactl's options, abbreviated or not, even one qnuma refuses.
func isNumactlSyntax(args []string) bool {
	if len(args) == 0 {
		return false
	}
	if args[0] == pinHelperArg {
		return true
	}
	_, _, _, err := lookupOption(args[0])
	return !errors.Is(err, errNotNumactl)
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
		opt, v, attached, err := lookupOption(a)
		if errors.Is(err, errNotNumactl) {
			return o, fmt.Errorf("unknown option %q (numactl syntax: --membind, --interleave, --preferred, --localalloc, --cpunodebind, --physcpubind, --strict, --exec, --verbose, --state-dir)", a)
		}
		if err != nil {
			return o, err
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
		//lint:ignore ST1005 it ends with the usage line's ellipsis, not a full stop
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
