package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemucmd"
)

// QEMUArgv is the user's QEMU command line, read for what qnuma must know
// and must not contradict: a view of the one command-line model,
// qemucmd.Cmdline. Parsing is pure.
type QEMUArgv struct {
	// Binary is argv[0]; Args the rest, verbatim.
	Binary string
	Args   []string
	// IsSystemEmulator: the binary is qemu-system-* or qemu-kvm.
	IsSystemEmulator bool

	// SMP is the merged -smp options (zero when none); SMPArg the last
	// -smp as written, for messages.
	HasSMP bool
	SMP    memobj.SMP
	SMPArg string

	// MemoryBytes is -m's size (0 when no -m); MemoryArg the last -m as
	// written. MaxMemoryBytes and MemorySlots are for memory hotplug.
	MemoryBytes    uint64
	MemoryArg      string
	MaxMemoryBytes uint64
	MemorySlots    int

	HasNUMA bool // -numa
	// HasMemoryBackend: -object memory-backend-*, in the key=value or the
	// JSON form; Backends are their ids.
	HasMemoryBackend bool
	Backends         []string
	// MemPath is -mem-path's value ("" when none); MemPrealloc is
	// -mem-prealloc.
	MemPath     string
	MemPrealloc bool
	Paused      bool // -S
	HasName     bool // -name
	Name        string
	// DebugThreads: -name ...,debug-threads=on: threads carry names.
	DebugThreads bool
	// HasQMP: a QMP monitor (-qmp, -qmp-pretty, -mon mode=control).
	HasQMP bool
	// HasMonitor: any monitor or socket chardev (-monitor, -mon, -chardev
	// socket) that a tool other than qnuma may be driving.
	HasMonitor bool
	// Accel is the first accelerator asked for (-accel, -machine accel=,
	// -enable-kvm); "" when none.
	Accel string
	// WaitingSockets are the user's server sockets that make QEMU wait for
	// a client before it starts (server=on without wait=off), each as
	// written ("-qmp unix:/tmp/q.sock,server=on"): QEMU answers nothing,
	// qnuma's QMP included, until someone connects.
	WaitingSockets []string

	// Cmdline is the model all of the above is read from.
	Cmdline *qemucmd.Cmdline
}

// ParseQEMUArgv reads argv (argv[0] is the binary) with qemucmd.Parse:
// an option missing its value, -opt=value and malformed placement options
// are errors naming the option. -daemonize and -readconfig are refused
// (wrapping ErrBadSpec): qnuma must supervise QEMU, and must see every
// option that bears on placement.
//
// A binary other than a system emulator (qemu-x86_64, or not QEMU at all)
// is returned with its arguments unread: they are not QEMU's options.
func ParseQEMUArgv(argv []string) (*QEMUArgv, error) {
	if len(argv) > 0 && argv[0] != "" && !qemucmd.IsSystemEmulator(argv[0]) {
		c := &qemucmd.Cmdline{Binary: argv[0]}
		for _, a := range argv[1:] {
			c.Args = append(c.Args, qemucmd.Arg{Value: a})
		}
		return &QEMUArgv{Binary: argv[0], Args: slices.Clone(argv[1:]), Cmdline: c}, nil
	}
	c, err := qemucmd.Parse(argv)
	if err != nil {
		return nil, err
	}
	if c.Has("daemonize") {
		return nil, badSpec("the qemu command line has -daemonize: qnuma pins qemu's threads after it starts and supervises it, which a daemon that leaves qnuma cannot have; drop -daemonize (run qnuma itself in the background instead)")
	}
	if a := c.Find("readconfig"); len(a) > 0 {
		return nil, badSpec("the qemu command line has -readconfig %s: qnuma cannot see the -smp, -m, -numa and memory backends a config file may hold, and could place the VM against them; give those options on the command line instead", a[0].Value)
	}
	q := &QEMUArgv{
		Binary:           c.Binary,
		Args:             slices.Clone(argv[1:]),
		IsSystemEmulator: c.IsSystemEmulator(),
		WaitingSockets:   c.WaitingSockets(),
		Cmdline:          c,
	}
	if s, last, ok := c.SMP(); ok {
		q.HasSMP, q.SMPArg = true, last
		q.SMP = memobj.SMP{CPUs: s.CPUs, Sockets: s.Sockets, Dies: s.Dies, Clusters: s.Clusters, Cores: s.Cores, Threads: s.Threads, MaxCPUs: s.MaxCPUs}
		if s.MaxCPUs > 0 && s.CPUs > s.MaxCPUs {
			return nil, fmt.Errorf("parse qemu command line: -smp %s: cpus=%d is above maxcpus=%d", last, s.CPUs, s.MaxCPUs)
		}
	}
	if m, last, ok := c.Memory(); ok {
		if m.Size == 0 {
			return nil, fmt.Errorf("parse qemu command line: -m %s: no size", last)
		}
		q.MemoryArg, q.MemoryBytes, q.MaxMemoryBytes, q.MemorySlots = last, m.Size, m.MaxMem, m.Slots
	}
	for _, b := range c.Backends() {
		q.HasMemoryBackend = true
		q.Backends = append(q.Backends, b.ID)
	}
	if n, ok := c.Name(); ok {
		q.HasName, q.Name = true, n.Guest
		q.DebugThreads = n.DebugThreads != nil && *n.DebugThreads
	}
	for _, a := range c.Args {
		switch o := a.Opt.(type) {
		case qemucmd.Chardev:
			if o.Backend == "socket" {
				q.HasMonitor = true
			}
		case qemucmd.Mon, qemucmd.CharSpec:
			if a.Name != "serial" && a.Name != "parallel" && a.Name != "debugcon" {
				q.HasMonitor = true
			}
		case qemucmd.Accel:
			q.setAccel(o.Type)
		case qemucmd.Machine:
			q.setAccel(o.Accel)
		}
		q.HasQMP = q.HasQMP || qemucmd.IsQMP(a)
		switch a.Name {
		case "numa":
			q.HasNUMA = true
		case "S":
			q.Paused = true
		case "enable-kvm":
			q.setAccel("kvm")
		case "mem-path":
			q.MemPath = a.Value
		case "mem-prealloc":
			q.MemPrealloc = true
		}
	}
	return q, nil
}

func (q *QEMUArgv) setAccel(a string) {
	if q.Accel == "" {
		q.Accel = a
	}
}

// preallocates says every byte of the user's guest RAM is preallocated by
// their own options: -mem-prealloc, or prealloc=on on every backend.
func (q *QEMUArgv) preallocates() bool {
	if q.MemPrealloc {
		return true
	}
	bs := q.Cmdline.Backends()
	for _, b := range bs {
		if b.Prealloc == nil || !*b.Prealloc {
			return false
		}
	}
	return len(bs) > 0
}

// MergeFlags says which spec values were given on qnuma's own command line
// (--vcpus, --memory).
type MergeFlags struct {
	VCPUs, Memory bool
}

// QEMU's defaults when -smp or -m is absent (x86 machines).
const (
	qemuDefaultVCPUs  = 1
	qemuDefaultMemory = 128 * memobj.MiB
)

// MergeSpec merges the user's QEMU command line into spec: their -smp and
// -m stand in for --vcpus and --memory when those are absent, and both
// given and different is an error naming both. A command line with its own
// -numa, memory backends (either form) or -mem-path is refused unless
// spec.BindOnly, where qnuma adds nothing and so the user's -smp/-m (or
// QEMU's defaults) are the truth; the user's -mem-prealloc then means
// qnuma's backends are preallocated. --prealloc with --bind-only is refused
// unless the user's own options preallocate: qnuma has no backend to
// preallocate. Every error wraps ErrBadSpec.
func MergeSpec(spec Spec, flagsSet MergeFlags, user *QEMUArgv) (Spec, error) {
	if spec.BindOnly && spec.Prealloc && (user == nil || !user.preallocates()) {
		return spec, badSpec("--prealloc with --bind-only: qnuma renders no memory backend, so it has nothing to preallocate; add prealloc=on to your own memory backends, or -mem-prealloc, to the qemu command line")
	}
	if user == nil {
		return spec, nil
	}
	if !spec.BindOnly {
		var own []string
		if user.HasNUMA {
			own = append(own, "-numa")
		}
		if user.HasMemoryBackend {
			own = append(own, "memory backends (-object memory-backend-*)")
		}
		if user.MemPath != "" {
			own = append(own, "-mem-path")
		}
		if len(own) > 0 {
			return spec, badSpec("the qemu command line has its own %s: pass --bind-only to let qnuma only bind and pin, or drop them to let qnuma lay out the guest", strings.Join(own, " and "))
		}
		// qnuma's backends replace QEMU's default RAM, which is what
		// -mem-prealloc preallocates: preallocate qnuma's instead.
		spec.Prealloc = spec.Prealloc || user.MemPrealloc
	}

	if user.HasSMP {
		// The user's -smp is kept as written: refuse what QEMU refuses
		// rather than rewrite it, and plan by its topology when it gives one.
		t, err := user.SMP.Resolve()
		if err != nil {
			return spec, badSpec("%v", err)
		}
		if u := user.SMP; u.Sockets > 0 || u.Dies > 0 || u.Clusters > 0 || u.Cores > 0 || u.Threads > 0 {
			spec.Topology = &t
		}
	}
	switch {
	case user.HasSMP:
		n := user.SMP.VCPUs()
		if flagsSet.VCPUs && spec.VCPUs != n {
			return spec, badSpec("--vcpus %d conflicts with -smp %s in the qemu command line: give one", spec.VCPUs, user.SMPArg)
		}
		if !spec.BindOnly && user.SMP.MaxCPUs > n && spec.Topology == nil {
			// -smp N,maxcpus=M is --max-vcpus M: qnuma renders the -smp.
			if spec.MaxVCPUs != 0 && spec.MaxVCPUs != user.SMP.MaxCPUs {
				return spec, badSpec("--max-vcpus %d conflicts with -smp %s in the qemu command line: give one", spec.MaxVCPUs, user.SMPArg)
			}
			spec.MaxVCPUs = user.SMP.MaxCPUs
		}
		if !spec.BindOnly && user.SMP.MaxCPUs > n && spec.Topology != nil {
			return spec, badSpec("-smp %s asks for cpu hotplug (maxcpus=%d) in a topology of its own, which qnuma's layout does not cover: give -smp %d,maxcpus=%d without sockets, cores or threads (or --max-vcpus), or pass --bind-only", user.SMPArg, user.SMP.MaxCPUs, n, user.SMP.MaxCPUs)
		}
		spec.VCPUs = n
	case spec.BindOnly && flagsSet.VCPUs && spec.VCPUs != qemuDefaultVCPUs:
		return spec, badSpec("--vcpus %d with --bind-only needs -smp %d in the qemu command line: qnuma adds no -smp", spec.VCPUs, spec.VCPUs)
	case spec.BindOnly:
		spec.VCPUs = qemuDefaultVCPUs
	}

	switch {
	case user.MemoryBytes > 0:
		if flagsSet.Memory && spec.MemoryBytes != user.MemoryBytes {
			return spec, badSpec("--memory %s conflicts with -m %s in the qemu command line: give one", memobj.FormatSize(spec.MemoryBytes), user.MemoryArg)
		}
		if !spec.BindOnly && user.MaxMemoryBytes > 0 {
			// -m X,maxmem=Y is --max-memory Y: qnuma renders the -m, with
			// slots of its own.
			if spec.MaxMemoryBytes != 0 && spec.MaxMemoryBytes != user.MaxMemoryBytes {
				return spec, badSpec("--max-memory %s conflicts with -m %s in the qemu command line: give one", memobj.FormatSize(spec.MaxMemoryBytes), user.MemoryArg)
			}
			spec.MaxMemoryBytes = user.MaxMemoryBytes
		} else if !spec.BindOnly && user.MemorySlots > 0 {
			return spec, badSpec("-m %s asks for memory hotplug slots without maxmem=: give maxmem= (or --max-memory), or pass --bind-only", user.MemoryArg)
		}
		spec.MemoryBytes = user.MemoryBytes
	case spec.BindOnly && flagsSet.Memory && spec.MemoryBytes != qemuDefaultMemory:
		return spec, badSpec("--memory %s with --bind-only needs -m %s in the qemu command line: qnuma adds no -m", memobj.FormatSize(spec.MemoryBytes), memobj.FormatSize(spec.MemoryBytes))
	case spec.BindOnly:
		spec.MemoryBytes = qemuDefaultMemory
	}
	if spec.BindOnly && user.HasNUMA {
		smp := user.SMP
		if !user.HasSMP {
			smp = memobj.SMP{CPUs: spec.VCPUs}
		}
		t, err := smp.Resolve()
		if err != nil {
			return spec, badSpec("%v", err)
		}
		if spec.Dedicated {
			return spec, badSpec("--cpus-dedicated with the qemu command line's own -numa cells: qnuma pins each cell's vCPUs over its host nodes' CPUs and does not yet give each its own; drop --cpus-dedicated")
		}
		if spec.Cells, err = userCells(user, t, spec.MemoryBytes); err != nil {
			return spec, err
		}
		if spec.GuestNodes > 0 && len(spec.Cells) > 0 && spec.GuestNodes != len(spec.Cells) {
			return spec, badSpec("--guest-nodes %d conflicts with the %d -numa node cells of the qemu command line: give one", spec.GuestNodes, len(spec.Cells))
		}
		spec.Topology = &t
	}
	return spec, nil
}

// Final is the command to exec: the binary, the user's arguments (less
// their -smp and -m where rendered has its own; a user's memory backend
// whose id rendered also has is replaced in its place by rendered's, which
// fills in what the user left open), the rest of rendered, then extra
// (qnuma's own -S, -qmp, ...).
func (q *QEMUArgv) Final(rendered []string, extra ...string) []string {
	replaces := map[string]bool{}
	fills := map[string][]string{}
	var rest []string
	for i := 0; i < len(rendered); i++ {
		if i+1 < len(rendered) {
			n := strings.TrimLeft(rendered[i], "-")
			if n == "smp" || n == "m" {
				replaces[n] = true
			}
			if n == "object" && q.hasBackend(rendered[i+1]) {
				fills[backendID(rendered[i+1])] = rendered[i : i+2]
				i++
				continue
			}
		}
		rest = append(rest, rendered[i])
	}
	out := make([]string, 0, 1+len(q.Args)+len(rendered)+len(extra))
	out = append(out, q.Binary)
	for _, a := range q.Cmdline.Args {
		if a.Flag != "" && replaces[a.Name] {
			continue
		}
		if b, ok := a.Opt.(qemucmd.Backend); ok && fills[b.ID] != nil {
			out = append(out, fills[b.ID]...)
			continue
		}
		out = append(out, a.Strings()...)
	}
	out = append(out, rest...)
	return append(out, extra...)
}

// backendID is the id of a rendered -object memory backend ("" if none).
func backendID(v string) string {
	c, err := qemucmd.Parse([]string{"qemu-system-x86_64", "-object", v})
	if err != nil || len(c.Args) != 1 {
		return ""
	}
	b, _ := c.Args[0].Opt.(qemucmd.Backend)
	return b.ID
}

// hasBackend says the user's command line has a memory backend with the
// id of the rendered -object v.
func (q *QEMUArgv) hasBackend(v string) bool {
	id := backendID(v)
	if id == "" || q.Cmdline == nil {
		return false
	}
	for _, b := range q.Cmdline.Backends() {
		if b.ID == id {
			return true
		}
	}
	return false
}

// CPUType is the QOM type of the user's vCPUs, for the ones a plan with
// hotplug room cold-plugs with -device (RenderOptions.CPUType): the model
// of the last -cpu ("host" is host-x86_64-cpu; qemu-system-i386's end in
// -i386-cpu), "" without one (QEMU's default, DefaultCPUType).
func (q *QEMUArgv) CPUType() string {
	if q == nil || q.Cmdline == nil {
		return ""
	}
	cpus := q.Cmdline.Find("cpu")
	if len(cpus) == 0 {
		return ""
	}
	model, _, _ := strings.Cut(cpus[len(cpus)-1].Value, ",")
	if model == "" {
		return ""
	}
	arch := "x86_64"
	if strings.HasSuffix(q.Binary, "qemu-system-i386") {
		arch = "i386"
	}
	return model + "-" + arch + "-cpu"
}
