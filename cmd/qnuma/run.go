package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/launcher"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
	"github.com/qnuma/qnuma/vmcgroup"
)

// RunCmd is `qnuma run`: plan, start qemu bound and paused, pin every
// thread, let the guest run, and supervise it.
type RunCmd struct {
	SpecFlags `embed:""`
	WaitFlags `embed:""`

	Name         string        `name:"name" placeholder:"NAME" help:"VM name, for -name qnuma-NAME when the QEMU command line has no -name."`
	Timeout      time.Duration `name:"timeout" placeholder:"DURATION" help:"Stop the VM after it has run this long (powerdown, then kill after --grace) and exit 124."`
	Grace        time.Duration `name:"grace" default:"10s" placeholder:"DURATION" help:"How long a powerdown (--timeout) may take before qemu is killed; 0 means the default, 10s."`
	BestEffort   bool          `name:"best-effort" help:"Run the VM even when binding memory or pinning a thread fails, with a warning; by default such a VM is stopped."`
	EmulatorCPUs string        `name:"emulator-cpus" placeholder:"LIST" help:"Host CPUs for qemu's non-vCPU threads (main loop, I/O threads); default: the planned nodes' CPUs."`
	QMPTimeout   time.Duration `name:"qmp-timeout" default:"60s" placeholder:"DURATION" help:"How long qemu may take to answer on its QMP monitor, and then each QMP command. It answers after preallocating guest RAM, which takes seconds for large guests; a qemu that exits is noticed at once. 0 means the default, 60s."`
	Verbose      bool          `name:"verbose" short:"v" help:"Show each launch step with its timing."`
	prepared     *Prepared
	cgroupDir    string        // the VM's cgroup, once made
	emu          cpuset.CPUSet // --emulator-cpus

	StateDir string `name:"state-dir" placeholder:"DIR" help:"Ledger of the VMs qnuma placed on this host: this VM is planned around them and recorded there until it exits (default: /run/qnuma for root, else $XDG_RUNTIME_DIR/qnuma)."`
}

func (c *RunCmd) Run() error {
	trace.Mark("parsed flags")
	ctx := context.Background()
	cfg, err := c.config(ctx)
	if err != nil {
		return err
	}
	res, err := c.reserve(ctx, &cfg)
	if c.Wait != 0 && errors.Is(err, plan.ErrDoesNotFit) {
		res, err = c.waitForRoom(ctx, &cfg, err) // wait.go
	}
	if err != nil {
		return err
	}
	defer res.Release()
	if g := c.vmCgroup(ctx, res.Entry.Name); g != nil {
		cfg.Cgroup = g
		defer func() {
			if err := g.Remove(context.Background()); err != nil {
				fmt.Fprintf(os.Stderr, "qnuma: warning: remove the cgroup of vm %s: %v\n", res.Entry.Name, err)
			}
			g.Close()
		}()
		c.cgroupDir = g.Dir() // recorded with qemu's pid (reserve's OnStarted)
		trace.Mark("made the vm's cgroup " + c.cgroupDir)
	}
	return launchVM(cfg, c.Verbose)
}

// memoryNodes counts the host's nodes with memory: with one, a VM has
// nowhere to move (and its cgroup would cost a join for nothing).
func memoryNodes(h *topology.Host) int {
	n := 0
	for _, node := range h.Nodes {
		if node.MemTotal > 0 {
			n++
		}
	}
	return n
}

// vmCgroup gives a VM that can be moved its own cpuset cgroup, on a host
// of several nodes with memory, where the host has one for root (cgroup v2 with cpuset, a v1 cpuset hierarchy, or a
// systemd scope): its cpuset.mems then bounds qemu's own memory, which qnuma
// move can change later. nil where there is none (not root, no cpuset
// controller): the VM runs under its process mempolicy, and qnuma move says
// what it cannot guarantee. A cgroup that cannot be made is a warning, not
// a failure.
func (c *RunCmd) vmCgroup(ctx context.Context, name string) *vmcgroup.Group {
	pr := c.prepared
	if pr.NotMovable != "" || os.Geteuid() != 0 || memoryNodes(pr.Host) < 2 {
		return nil // nowhere to move it, or no cgroup to make
	}
	h, err := vmcgroup.Detect("/")
	if err != nil || h.Kind == vmcgroup.None {
		return nil
	}
	h.ReapStale(ctx) // the cgroups of qnuma runs killed outright
	mems := cpuset.New(pr.Plan.HostNodes...)
	if pr.Plan.Mempolicy.Mode == memobj.PolicyPreferred || pr.Plan.Mempolicy.Mode == memobj.PolicyPreferredMany {
		mems = pr.Host.Allowed.Mems // preferred: other nodes when those are full
	}
	// The VM's name and qnuma's pid: two ledgers (--state-dir) may hold
	// VMs of one name.
	g, err := h.Create(ctx, fmt.Sprintf("%s-%d", name, os.Getpid()), pr.Host.Allowed.CPUs, mems)
	if err != nil {
		fmt.Fprintf(os.Stderr, "qnuma: warning: vm %s runs without a cgroup of its own (%v): qnuma move can still move its guest RAM, not bound qemu's own new allocations\n", name, err)
		return nil
	}
	return g
}

// reserve plans the VM around the VMs in the ledger, under its lock, and
// records it there once qemu has started (the lock held until then): two
// qnuma run started at once never get the same dedicated CPUs or the same
// memory. The entry records every CPU the VM's
// threads may run on, --emulator-cpus included; emulator CPUs on another
// VM's dedicated CPUs are refused (exit 2). The caller releases the entry
// when qemu has exited.
func (c *RunCmd) reserve(ctx context.Context, cfg *launcher.Config) (*ledger.Reservation, error) {
	l, err := openLedger(c.StateDir)
	if err != nil {
		return nil, err
	}
	trace.Mark("opened ledger")
	r, err := c.prepared.Place(ctx, l, c.Name, c.emu, trace.Mark)
	if errors.Is(err, ledger.ErrCPUTaken) && c.emu.Size() > 0 {
		return nil, badInput("--emulator-cpus %s: %w", c.emu, err)
	}
	if errors.Is(err, ledger.ErrNameTaken) || errors.Is(err, ledger.ErrCPUTaken) || errors.Is(err, ledger.ErrUnsafeDir) {
		return nil, badInput("%w", err)
	}
	if err != nil {
		return nil, err
	}
	trace.Mark("reserved in ledger, held until qemu starts")
	pr := c.prepared
	for _, q := range r.Quarantined {
		fmt.Fprintf(os.Stderr, "qnuma: warning: %v (moved aside; its room is no longer held)\n", q)
	}
	cfg.Argv, cfg.Placement, cfg.Name = pr.Argv, pr.Plan.Placement(), r.Entry.Name
	notMovable := pr.NotMovable
	// Placed by hand (host nodes, pins, the emulator's CPUs given): qnuma
	// balance leaves it where the user put it, as ESXi leaves VMs with
	// manual affinity (qnuma pin --unlock hands it over).
	byHand := pr.Spec.HostNodes != nil || len(pr.Spec.VCPUPins) > 0 || pr.Spec.EmulatorPin != nil || c.emu.Size() > 0
	// Written once, with qemu's pid, while qemu starts up; the ledger
	// stays locked until then. A VM that cannot be recorded is stopped
	// before its guest runs: nobody would know its room is taken.
	cfg.Hooks.OnStarted = func(pid int, _ string) error {
		return r.Commit(pid, func(e *ledger.Entry) { e.NotMovable, e.Cgroup, e.Locked = notMovable, c.cgroupDir, byHand })
	}
	serveControl(cfg, l.Dir(), r.Entry.Name)
	return r, nil
}

// config checks the flags and prepares the plan: every bad input is
// found here, before anything starts (exit 2).
func (c *RunCmd) config(ctx context.Context) (launcher.Config, error) {
	var cfg launcher.Config
	var emu cpuset.CPUSet
	if c.EmulatorCPUs != "" {
		s, err := cpulist.Parse(c.EmulatorCPUs)
		if err != nil {
			return cfg, badInput("--emulator-cpus %q: %w; want a CPU list such as 0-1,8", c.EmulatorCPUs, err)
		}
		if s.IsEmpty() {
			return cfg, badInput("--emulator-cpus %q: want a CPU list such as 0-1,8", c.EmulatorCPUs)
		}
		emu = s
		c.emu = s
	}
	if c.Timeout < 0 || c.Grace < 0 || c.QMPTimeout < 0 {
		return cfg, badInput("--timeout, --grace and --qmp-timeout take positive durations")
	}
	if c.QEMUVersion != "" {
		return cfg, badInput("--qemu-version is for planning only: qnuma run asks the qemu it starts")
	}
	if c.Root != "/" {
		return cfg, badInput("--root is for planning only: qnuma run starts qemu on this host")
	}
	if n := argvLen(c.QEMU); n == 0 {
		return cfg, badInput("give the QEMU command line after --: qnuma run [flags] -- qemu-system-x86_64 ...")
	}
	if c.Name != "" {
		if err := ledger.ValidateName(c.Name); err != nil {
			return cfg, badInput("--name: %w", err)
		}
	}
	c.starting = true
	pr, err := c.Gather(ctx)
	if err != nil {
		return cfg, err
	}
	c.prepared = pr
	if emu.Size() > 0 {
		if extra := emu.Difference(pr.Host.OnlineCPUs); extra.Size() > 0 {
			return cfg, badInput("--emulator-cpus %s: cpus %s are not online on this host", emu, extra)
		}
	}
	return launcher.Config{
		UserPaused: pr.User.Paused,
		HasName:    pr.User.HasName,
		QMPTimeout: c.QMPTimeout,
		Timeout:    c.Timeout,
		Grace:      c.Grace,
		BestEffort: c.BestEffort,
		// qemu waits for a client on these before it answers qnuma.
		WaitingSockets: pr.User.WaitingSockets,
	}, nil
}

// argvLen counts the QEMU command line's words, less kong's "--".
func argvLen(q []string) int {
	if len(q) > 0 && q[0] == "--" {
		return len(q) - 1
	}
	return len(q)
}

// launchVM runs cfg with qnuma's own stdio and signals, and turns the
// result into qnuma's exit: qemu's status, 124 on --timeout, or the error.
func launchVM(cfg launcher.Config, verbose bool) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// A closed stderr (qnuma run ... 2>&1 | head) must not kill qnuma, and
	// with it (Pdeathsig) the VM: with SIGPIPE caught, writes fail with
	// EPIPE instead. Caught, not ignored, so that qemu starts with the
	// default disposition.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	cfg.Signals = sigs
	cfg.Stdin, cfg.Stdout, cfg.Stderr = os.Stdin, os.Stdout, os.Stderr
	cfg.Log = newCLILogger(os.Stderr, verbose)
	res, err := launcher.Launch(context.Background(), cfg)
	if err != nil {
		return &ExitError{Code: res.ExitCode, Err: err}
	}
	if res.ExitCode != 0 {
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}

// newCLILogger writes launch steps (with -v) and warnings as plain lines:
// "qnuma: step start took=1.2ms", "qnuma: warning: ...".
// With QNUMA_TRACE set, every line (steps too) is a trace line instead.
func newCLILogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose || trace.on() {
		level = slog.LevelInfo
	}
	h := &cliHandler{w: w, level: level, mu: &sync.Mutex{}}
	if trace.on() {
		h.trace = trace
	}
	return slog.New(h)
}

type cliHandler struct {
	w     io.Writer
	level slog.Level
	mu    *sync.Mutex
	attrs []slog.Attr
	trace *tracer // nil: plain lines
}

func (h *cliHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *cliHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if h.trace == nil {
		b.WriteString("qnuma: ")
	}
	if r.Level >= slog.LevelWarn {
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		if a.Key == "name" { // a step's name reads as part of the message
			fmt.Fprintf(&b, " %s:", a.Value)
			return true
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if h.trace != nil {
		h.trace.Mark(b.String())
		return nil
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *cliHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *cliHandler) WithGroup(string) slog.Handler { return h }
