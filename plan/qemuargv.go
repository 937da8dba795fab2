package plan

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/memobj"
)

// QEMUArgv is the user's QEMU command line, read for what qnuma must know
// and must not contradict. Parsing is pure.
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

	HasNUMA          bool // -numa
	HasMemoryBackend bool // -object memory-backend-*
	Paused           bool // -S
	HasName          bool // -name
	Name             string
	DebugThreads     bool // -name ...,debug-threads=on: threads carry names
	// HasQMP: a QMP monitor (-qmp, -qmp-pretty, -mon mode=control).
	HasQMP bool
	// HasMonitor: any monitor or socket chardev (-monitor, -mon, -chardev
	// socket) that a tool other than qnuma may be driving.
	HasMonitor bool
	// Accel is the first accelerator asked for (-accel, -machine accel=,
	// -enable-kvm); "" when none.
	Accel string

	opts []qopt
}

// qopt is one option in Args: its name without dashes ("" for a
// positional argument, QEMU's disk image), its value, and where it is.
type qopt struct {
	name, value string
	at, n       int // Args[at : at+n]
}

// noArgOptions are QEMU options that take no value (QEMU 7.2's list, plus
// ones older and newer releases have). Every other option takes exactly one.
var noArgOptions = map[string]bool{
	"S": true, "s": true, "h": true, "help": true, "version": true,
	"nodefaults": true, "no-user-config": true, "nodefconfig": true,
	"snapshot": true, "nographic": true, "full-screen": true, "portrait": true,
	"win2k-hack": true, "no-fd-bootchk": true, "no-acpi": true, "no-hpet": true,
	"usb": true, "enable-kvm": true, "no-kvm": true, "no-reboot": true,
	"no-shutdown": true, "daemonize": true, "mem-prealloc": true,
	"singlestep": true, "preconfig": true, "only-migratable": true,
	"enable-sync-profile": true, "async-teardown": true, "audio-help": true,
	"semihosting": true, "xen-attach": true, "xen-domid-restrict": true,
	"alt-grab": true, "ctrl-grab": true, "no-quit": true, "sdl": true,
	"curses": true, "no-frame": true, "enable-fips": true, "perfmap": true,
	"jitdump": true,
}

// ParseQEMUArgv reads argv (argv[0] is the binary). QEMU takes -opt and
// --opt alike, and an option's value as the next argument (never
// -opt=value). Malformed -smp or -m is an error naming the option.
func ParseQEMUArgv(argv []string) (*QEMUArgv, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("parse qemu command line: no binary")
	}
	base := filepath.Base(argv[0])
	q := &QEMUArgv{
		Binary:           argv[0],
		Args:             slices.Clone(argv[1:]),
		IsSystemEmulator: strings.HasPrefix(base, "qemu-system-") || base == "qemu-kvm",
	}
	smp := map[string]string{}
	mem := map[string]string{}
	for i := 0; i < len(q.Args); {
		a := q.Args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			q.opts = append(q.opts, qopt{value: a, at: i, n: 1})
			i++
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if n, v, ok := strings.Cut(name, "="); ok {
			// QEMU refuses this ("invalid option"); say what it wants.
			return nil, fmt.Errorf("parse qemu command line: %s: qemu takes the value as the next argument (-%s %s)", a, n, v)
		}
		if noArgOptions[name] {
			q.opts = append(q.opts, qopt{name: name, at: i, n: 1})
			i++
			continue
		}
		if i+1 >= len(q.Args) {
			if name == "smp" || name == "m" || name == "numa" || name == "object" {
				return nil, fmt.Errorf("parse qemu command line: %s needs a value", a)
			}
			// An option this list does not know may take no value.
			q.opts = append(q.opts, qopt{name: name, at: i, n: 1})
			break
		}
		o := qopt{name: name, value: q.Args[i+1], at: i, n: 2}
		q.opts = append(q.opts, o)
		i += 2
		if err := q.take(o, smp, mem); err != nil {
			return nil, fmt.Errorf("parse qemu command line: %w", err)
		}
	}
	for _, o := range q.opts {
		switch o.name {
		case "S":
			q.Paused = true
		case "enable-kvm":
			if q.Accel == "" {
				q.Accel = "kvm"
			}
		}
	}
	if len(smp) > 0 {
		s, err := smpOf(smp)
		if err != nil {
			return nil, fmt.Errorf("parse qemu command line: -smp %s: %w", q.SMPArg, err)
		}
		q.HasSMP, q.SMP = true, s
	}
	if len(mem) > 0 {
		if err := q.memoryOf(mem); err != nil {
			return nil, fmt.Errorf("parse qemu command line: -m %s: %w", q.MemoryArg, err)
		}
	}
	return q, nil
}

// take reads one option with a value. -smp and -m may repeat: QEMU merges
// their keys, the later winning, so they are gathered into smp and mem.
func (q *QEMUArgv) take(o qopt, smp, mem map[string]string) error {
	switch o.name {
	case "smp":
		kv, err := splitOpts(o.value, "cpus")
		if err != nil {
			return fmt.Errorf("-smp %s: %w", o.value, err)
		}
		q.SMPArg = o.value
		for k, v := range kv {
			smp[k] = v
		}
	case "m":
		kv, err := splitOpts(o.value, "size")
		if err != nil {
			return fmt.Errorf("-m %s: %w", o.value, err)
		}
		q.MemoryArg = o.value
		for k, v := range kv {
			mem[k] = v
		}
	case "numa":
		q.HasNUMA = true
	case "object":
		if strings.HasPrefix(o.value, "memory-backend-") || strings.Contains(o.value, "qom-type=memory-backend-") {
			q.HasMemoryBackend = true
		}
	case "name":
		kv, _ := splitOpts(o.value, "guest")
		q.HasName, q.Name = true, kv["guest"]
		q.DebugThreads = kv["debug-threads"] == "on"
	case "qmp", "qmp-pretty":
		q.HasQMP, q.HasMonitor = true, true
	case "mon":
		kv, _ := splitOpts(o.value, "chardev")
		q.HasMonitor = true
		if kv["mode"] == "control" {
			q.HasQMP = true
		}
	case "monitor":
		q.HasMonitor = true
	case "chardev":
		if strings.HasPrefix(o.value, "socket,") || strings.Contains(o.value, "backend=socket") {
			q.HasMonitor = true
		}
	case "accel":
		if q.Accel == "" {
			kv, _ := splitOpts(o.value, "accel")
			q.Accel = kv["accel"]
		}
	case "machine", "M":
		kv, _ := splitOpts(o.value, "type")
		if a := kv["accel"]; a != "" && q.Accel == "" {
			q.Accel = a
		}
	}
	return nil
}

// splitOpts splits a QEMU "key=value,..." string: ",," is a literal comma,
// and a first item without "=" is the implied key's value. A later item
// without "=" is an error (QEMU reads it as a boolean, never for -smp/-m).
func splitOpts(s, implied string) (map[string]string, error) {
	var items []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			if i+1 < len(s) && s[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			items = append(items, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	items = append(items, cur.String())
	kv := map[string]string{}
	for i, it := range items {
		k, v, ok := strings.Cut(it, "=")
		switch {
		case ok && k == "":
			return nil, fmt.Errorf("item %q has no key", it)
		case ok:
			kv[k] = v
		case i == 0 && implied != "":
			kv[implied] = it
		default:
			return nil, fmt.Errorf("item %q is not key=value", it)
		}
	}
	return kv, nil
}

// smpOf reads merged -smp keys.
func smpOf(kv map[string]string) (memobj.SMP, error) {
	var s memobj.SMP
	fields := map[string]*int{
		"cpus": &s.CPUs, "sockets": &s.Sockets, "dies": &s.Dies, "clusters": &s.Clusters,
		"cores": &s.Cores, "threads": &s.Threads, "maxcpus": &s.MaxCPUs,
	}
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		p, ok := fields[k]
		if !ok {
			return s, fmt.Errorf("unknown key %q (want cpus, sockets, dies, clusters, cores, threads, maxcpus)", k)
		}
		n, err := strconv.Atoi(kv[k])
		if err != nil || n <= 0 {
			return s, fmt.Errorf("%s=%q is not a positive count", k, kv[k])
		}
		*p = n
	}
	if s.MaxCPUs > 0 && s.CPUs > s.MaxCPUs {
		return s, fmt.Errorf("cpus=%d is above maxcpus=%d", s.CPUs, s.MaxCPUs)
	}
	return s, nil
}

// memoryOf reads merged -m keys: size in MiB unless suffixed (QEMU's
// default unit for -m), maxmem in bytes unless suffixed, slots a count.
func (q *QEMUArgv) memoryOf(kv map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		v := kv[k]
		switch k {
		case "size":
			n, err := memobj.ParseSize(v, memobj.MiB)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("size is zero")
			}
			q.MemoryBytes = n
		case "maxmem":
			n, err := memobj.ParseSize(v, 1)
			if err != nil {
				return fmt.Errorf("maxmem: %w", err)
			}
			q.MaxMemoryBytes = n
		case "slots":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("slots=%q is not a count", v)
			}
			q.MemorySlots = n
		default:
			return fmt.Errorf("unknown key %q (want size, slots, maxmem)", k)
		}
	}
	if q.MemoryBytes == 0 {
		return fmt.Errorf("no size")
	}
	return nil
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
// -numa or memory backends is refused unless spec.BindOnly, where qnuma adds
// nothing and so the user's -smp/-m (or QEMU's defaults) are the truth.
// Every error wraps ErrBadSpec.
func MergeSpec(spec Spec, flagsSet MergeFlags, user *QEMUArgv) (Spec, error) {
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
		if len(own) > 0 {
			return spec, badSpec("the qemu command line has its own %s: pass --bind-only to let qnuma only bind and pin, or drop them to let qnuma lay out the guest", strings.Join(own, " and "))
		}
	}

	switch {
	case user.HasSMP:
		n := user.SMP.VCPUs()
		if flagsSet.VCPUs && spec.VCPUs != n {
			return spec, badSpec("--vcpus %d conflicts with -smp %s in the qemu command line: give one", spec.VCPUs, user.SMPArg)
		}
		if !spec.BindOnly && user.SMP.MaxCPUs > n {
			return spec, badSpec("-smp %s asks for cpu hotplug (maxcpus=%d), which qnuma's layout does not cover: drop maxcpus, or pass --bind-only", user.SMPArg, user.SMP.MaxCPUs)
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
		if !spec.BindOnly && (user.MaxMemoryBytes > 0 || user.MemorySlots > 0) {
			return spec, badSpec("-m %s asks for memory hotplug (slots=, maxmem=), which qnuma's layout does not cover: drop them, or pass --bind-only", user.MemoryArg)
		}
		spec.MemoryBytes = user.MemoryBytes
	case spec.BindOnly && flagsSet.Memory && spec.MemoryBytes != qemuDefaultMemory:
		return spec, badSpec("--memory %s with --bind-only needs -m %s in the qemu command line: qnuma adds no -m", memobj.FormatSize(spec.MemoryBytes), memobj.FormatSize(spec.MemoryBytes))
	case spec.BindOnly:
		spec.MemoryBytes = qemuDefaultMemory
	}
	return spec, nil
}

// Final is the command to exec: the binary, the user's arguments (less
// their -smp and -m where rendered has its own), rendered, then extra
// (qnuma's own -S, -qmp, ...).
func (q *QEMUArgv) Final(rendered []string, extra ...string) []string {
	replaces := map[string]bool{}
	for i := 0; i+1 < len(rendered); i += 2 {
		if n := strings.TrimLeft(rendered[i], "-"); n == "smp" || n == "m" {
			replaces[n] = true
		}
	}
	out := make([]string, 0, 1+len(q.Args)+len(rendered)+len(extra))
	out = append(out, q.Binary)
	for _, o := range q.opts {
		if replaces[o.name] {
			continue
		}
		out = append(out, q.Args[o.at:o.at+o.n]...)
	}
	out = append(out, rendered...)
	return append(out, extra...)
}
