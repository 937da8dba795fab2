package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/procfs"
	"github.com/qnuma/qnuma/qmp"
	"github.com/qnuma/qnuma/topology"
)

// PinCmd is `qnuma pin`: live re-pinning of a running VM's threads.
type PinCmd struct {
	VM       string   `arg:"" name:"vm" help:"The VM: its name in the ledger, or its qemu's pid."`
	VCPU     pinFlags `name:"vcpu" placeholder:"N" help:"A vCPU index to pin; the --cpus after it says where. Repeatable."`
	IOThread pinFlags `name:"iothread" placeholder:"ID" help:"An I/O thread (-object iothread,id=ID) to pin; the --cpus after it says where. Repeatable."`
	CPUs     pinFlags `name:"cpus" placeholder:"LIST" help:"Host CPUs for the --vcpu or --iothread before it (e.g. 2,4-5)."`
	Emulator string   `name:"emulator" placeholder:"LIST" help:"Host CPUs for the emulator threads: every thread that is no vCPU (and no I/O thread given with --iothread)."`
	QMP      string   `name:"qmp" placeholder:"PATH" help:"A QMP socket of the VM's qemu, to find its vCPU and I/O threads by asking it (query-cpus-fast, query-iothreads) rather than by their names: for a qemu started without debug-threads=on."`
	Lock     bool     `help:"Lock the VM where it is: qnuma balance leaves it alone, as ESXi leaves VMs with manual affinity. Pinning a ledger VM's threads locks it too; --lock alone changes no pin."`
	Unlock   bool     `help:"Let qnuma balance move the VM again; with pins, pin it without locking it."`
	JSON     bool     `help:"Print JSON."`
	StateDir string   `name:"state-dir" placeholder:"DIR" help:"Ledger directory (default /run/qnuma as root, $XDG_RUNTIME_DIR/qnuma otherwise)."`
}

func (c *PinCmd) Help() string {
	return `Changes where a running VM's threads may run, as virsh vcpupin, emulatorpin and
iothreadpin do. The new CPUs are checked first: each must be one this host lets
qnuma use, and none may be a CPU another VM in the ledger holds as dedicated
(nor, for a VM with dedicated CPUs, one where another VM's threads run); a
refusal changes nothing (exit 2). The VM's ledger entry records the new CPUs.
A pin the kernel refuses puts back the pins already changed (exit 1).

A VM pinned by hand is locked: qnuma balance leaves it where it is (ESXi's rule
for VMs with manual affinity) until qnuma pin VM --unlock; --lock alone locks a
VM without changing its pins, --unlock with pins pins it and leaves it to
balance.

vCPU and I/O threads are found by their names, which QEMU gives them with
-name NAME,debug-threads=on (qnuma run always asks for it); for a qemu started
without it, give its QMP socket with --qmp PATH and qnuma asks qemu instead.

Examples:
  qnuma pin web --vcpu 1 --cpus 3                    vCPU 1 of vm web on CPU 3
  qnuma pin web --vcpu 0 --cpus 2 --vcpu 1 --cpus 3  two vCPUs at once
  qnuma pin web --emulator 0-1                       qemu's other threads
  qnuma pin web --iothread io0 --cpus 4
  qnuma pin 12345 --vcpu 0 --cpus 2 --json           a qemu by pid
  qnuma pin 12345 --qmp /run/vm.qmp --vcpu 0 --cpus 2  without debug-threads
  qnuma pin web --lock                               qnuma balance leaves web alone
  qnuma pin web --unlock                             and may move it again`
}

// pinSeq numbers the --vcpu, --iothread and --cpus values in the order
// kong reads them (left to right), so each --cpus pairs with the flag
// before it. Parsing is single-threaded.
var pinSeq int

type pinArg struct {
	seq int
	val string
}

// pinFlags is a repeatable flag whose values keep their place on the
// command line.
type pinFlags []pinArg

func (f *pinFlags) Decode(ctx *kong.DecodeContext) error {
	var s string
	if err := ctx.Scan.PopValueInto("value", &s); err != nil {
		return err
	}
	pinSeq++
	*f = append(*f, pinArg{seq: pinSeq, val: s})
	return nil
}

// pinRequest is what the flags ask for.
type pinRequest struct {
	VCPUs     map[int]cpuset.CPUSet
	IOThreads map[string]cpuset.CPUSet
	Emulator  *cpuset.CPUSet
}

// parsePinRequest pairs each --cpus with the --vcpu or --iothread just
// before it.
func parsePinRequest(vcpu, iothread, cpus pinFlags, emulator string) (pinRequest, error) {
	req := pinRequest{VCPUs: map[int]cpuset.CPUSet{}, IOThreads: map[string]cpuset.CPUSet{}}
	type target struct {
		pinArg
		flag string
	}
	var targets []target
	for _, a := range vcpu {
		targets = append(targets, target{a, "--vcpu"})
	}
	for _, a := range iothread {
		targets = append(targets, target{a, "--iothread"})
	}
	slices.SortFunc(targets, func(a, b target) int { return a.seq - b.seq })
	paired := map[int]bool{}
	for _, c := range cpus {
		i := -1
		for j, t := range targets {
			if t.seq < c.seq {
				i = j
			}
		}
		if i < 0 || paired[i] {
			return req, badInput("--cpus %s follows no --vcpu N or --iothread ID of its own: write --vcpu N --cpus LIST", c.val)
		}
		paired[i] = true
		t := targets[i]
		set, err := cpulist.Parse(c.val)
		if err != nil || set.Size() == 0 {
			if err == nil {
				err = errors.New("empty")
			}
			return req, badInput("%s %s --cpus %q: %v (want a CPU list such as 2,4-5)", t.flag, t.val, c.val, err)
		}
		switch t.flag {
		case "--vcpu":
			n, err := strconv.Atoi(t.val)
			if err != nil || n < 0 || n >= cpulist.MaxID {
				return req, badInput("--vcpu %q: want a vCPU index, 0 or more", t.val)
			}
			if _, dup := req.VCPUs[n]; dup {
				return req, badInput("--vcpu %d given twice", n)
			}
			req.VCPUs[n] = set
		case "--iothread":
			if t.val == "" || strings.ContainsAny(t.val, " \t\n") {
				return req, badInput("--iothread %q: want the id of an -object iothread", t.val)
			}
			if _, dup := req.IOThreads[t.val]; dup {
				return req, badInput("--iothread %s given twice", t.val)
			}
			req.IOThreads[t.val] = set
		}
	}
	for i, t := range targets {
		if !paired[i] {
			return req, badInput("%s %s has no --cpus LIST after it", t.flag, t.val)
		}
	}
	if emulator != "" {
		set, err := cpulist.Parse(emulator)
		if err != nil || set.Size() == 0 {
			if err == nil {
				err = errors.New("empty")
			}
			return req, badInput("--emulator %q: %v (want a CPU list such as 0-1)", emulator, err)
		}
		req.Emulator = &set
	}
	if len(req.VCPUs) == 0 && len(req.IOThreads) == 0 && req.Emulator == nil {
		return req, badInput("nothing to pin: give --vcpu N --cpus LIST, --iothread ID --cpus LIST or --emulator LIST (or --lock or --unlock alone)")
	}
	return req, nil
}

// CPUs is every CPU the request names.
func (r pinRequest) CPUs() cpuset.CPUSet {
	all := cpuset.New()
	for _, s := range r.VCPUs {
		all = all.Union(s)
	}
	for _, s := range r.IOThreads {
		all = all.Union(s)
	}
	if r.Emulator != nil {
		all = all.Union(*r.Emulator)
	}
	return all
}

// threadPin is one thread to pin: what it is, and its CPUs before and after.
type threadPin struct {
	Kind     string // "vcpu", "iothread" or "emulator"
	VCPU     int    // for Kind vcpu
	IOThread string // for Kind iothread
	TID      int
	Comm     string
	Old, New cpuset.CPUSet
	gone     bool // an emulator thread that exited before it was pinned
}

func (p threadPin) what() string {
	switch p.Kind {
	case "vcpu":
		return "vcpu " + strconv.Itoa(p.VCPU)
	case "iothread":
		return "iothread " + p.IOThread
	}
	return "emulator"
}

// planPins matches the request to the threads of a qemu (as /proc shows
// them), in thread order; pure. ioIDs gives each I/O thread's id by tid
// (from QMP); nil: I/O threads are known by their names.
func planPins(threads []numastat.Thread, ioIDs map[int]string, req pinRequest) ([]threadPin, error) {
	if ioIDs == nil {
		ioIDs = map[int]string{}
		for _, th := range threads {
			if id, ok := numastat.IOThreadID(th.Comm); ok && th.VCPU < 0 {
				ioIDs[th.TID] = id
			}
		}
	}
	vcpuTID := map[int]int{}
	ioTIDs := map[string][]int{}
	for _, th := range threads {
		if th.VCPU >= 0 {
			if _, dup := vcpuTID[th.VCPU]; dup {
				return nil, fmt.Errorf("two threads are named as vcpu %d (%d and %d): cannot tell which is the vCPU", th.VCPU, vcpuTID[th.VCPU], th.TID)
			}
			vcpuTID[th.VCPU] = th.TID
		} else if id, ok := ioIDs[th.TID]; ok {
			ioTIDs[id] = append(ioTIDs[id], th.TID)
		}
	}
	if len(req.VCPUs) > 0 && len(vcpuTID) == 0 {
		return nil, badInput("no thread of this qemu is named as a vCPU (\"CPU N/KVM\"): start qemu with -name NAME,debug-threads=on (qnuma run does), or give its QMP socket with --qmp PATH")
	}
	for n := range req.VCPUs {
		if _, ok := vcpuTID[n]; !ok {
			have := make([]int, 0, len(vcpuTID))
			for i := range vcpuTID {
				have = append(have, i)
			}
			return nil, badInput("--vcpu %d: the VM has vcpus %s", n, cpuset.New(have...))
		}
	}
	// ioTID: the thread of each --iothread, by the name the kernel keeps.
	ioTID, ioSet := map[string]int{}, map[string]cpuset.CPUSet{}
	for id, set := range req.IOThreads {
		// key: the id as known, whole (from QMP) or cut as the kernel
		// keeps a thread's name.
		key := id
		if _, whole := ioTIDs[id]; !whole && len("IO "+id) > numastat.CommLen {
			key = ("IO " + id)[3:numastat.CommLen]
		}
		tids := ioTIDs[key]
		switch len(tids) {
		case 0:
			have := make([]string, 0, len(ioTIDs))
			for i := range ioTIDs {
				have = append(have, i)
			}
			slices.Sort(have)
			return nil, badInput("--iothread %s: no thread of this qemu is named \"IO %s\" (I/O threads found: %s; names need -name NAME,debug-threads=on)", id, key, strings.Join(have, ", "))
		case 1:
			if _, dup := ioTID[key]; dup {
				return nil, badInput("--iothread %s: another --iothread names the same thread \"IO %s\" (the kernel keeps %d bytes of a name)", id, key, numastat.CommLen)
			}
			ioTID[key], ioSet[key] = tids[0], set
		default:
			return nil, badInput("--iothread %s: %d threads carry the name \"IO %s\" (the kernel keeps %d bytes of a name): give ids that differ in their first %d characters", id, len(tids), key, numastat.CommLen, numastat.CommLen-3)
		}
	}
	var out []threadPin
	for _, th := range threads {
		p := threadPin{TID: th.TID, Comm: th.Comm, Old: th.Allowed, VCPU: th.VCPU}
		if th.VCPU >= 0 {
			set, ok := req.VCPUs[th.VCPU]
			if !ok {
				continue
			}
			p.Kind, p.New = "vcpu", set
		} else if id, ok := ioIDs[th.TID]; ok && ioTID[id] == th.TID {
			p.Kind, p.IOThread, p.New = "iothread", id, ioSet[id]
		} else if req.Emulator != nil {
			p.Kind, p.New = "emulator", *req.Emulator
		} else {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// pinnedSets is where the VM's threads may run once pins are applied: the
// union over its vCPU threads and over the others, as the ledger records.
func pinnedSets(threads []numastat.Thread, pins []threadPin) (vcpus, others cpuset.CPUSet) {
	next := map[int]cpuset.CPUSet{}
	for _, p := range pins {
		next[p.TID] = p.New
	}
	vcpus, others = cpuset.New(), cpuset.New()
	for _, th := range threads {
		set, ok := next[th.TID]
		if !ok {
			set = th.Allowed
		}
		if th.VCPU >= 0 {
			vcpus = vcpus.Union(set)
		} else {
			others = others.Union(set)
		}
	}
	return vcpus, others
}

// errThreadGone is wrapped by a check when the thread has exited.
var errThreadGone = errors.New("thread exited")

// applyPins pins each thread, calling check(tid) just before each
// sched_setaffinity (the thread must still be one of the VM's). An
// emulator thread that exited meanwhile (QEMU's worker threads come and
// go) is passed over and marked gone; any other failure puts back, newest
// first, the pins already made, and the error says what failed and
// whether the VM is as it was.
func applyPins(sys affinity.Sys, check func(tid int) error, pins []threadPin) error {
	for i, p := range pins {
		if p.Old.Equals(p.New) {
			continue
		}
		err := check(p.TID)
		if err == nil {
			err = sys.SchedSetaffinity(p.TID, p.New)
		}
		if err == nil {
			continue
		}
		if p.Kind == "emulator" && (errors.Is(err, errThreadGone) || errors.Is(err, syscall.ESRCH)) {
			pins[i].gone = true
			continue
		}
		err = fmt.Errorf("pin %s (tid %d) to cpus %s: %w", p.what(), p.TID, p.New, err)
		return putBack(sys, check, pins[:i], err)
	}
	return nil
}

// putBack restores made pins, newest first, after err.
func putBack(sys affinity.Sys, check func(tid int) error, made []threadPin, err error) error {
	var failed []string
	for j := len(made) - 1; j >= 0; j-- {
		q := made[j]
		if q.Old.Equals(q.New) || q.gone {
			continue
		}
		rerr := check(q.TID)
		if rerr == nil {
			rerr = sys.SchedSetaffinity(q.TID, q.Old)
		}
		if rerr != nil && !(q.Kind == "emulator" && (errors.Is(rerr, errThreadGone) || errors.Is(rerr, syscall.ESRCH))) {
			failed = append(failed, fmt.Sprintf("%s (tid %d) stays on %s, was %s: %v", q.what(), q.TID, q.New, q.Old, rerr))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w; putting back the pins already made failed: %s", err, strings.Join(failed, "; "))
	}
	return fmt.Errorf("%w; the pins already made were put back, the VM is as it was", err)
}

// newEmulatorPins are the pins for threads qemu started since known was
// read (they inherit their creator's old CPUs): every new thread goes to
// emu.
func newEmulatorPins(known map[int]bool, now []numastat.Thread, emu cpuset.CPUSet) []threadPin {
	var out []threadPin
	for _, th := range now {
		if known[th.TID] {
			continue
		}
		known[th.TID] = true
		if !th.Allowed.Equals(emu) {
			out = append(out, threadPin{Kind: "emulator", VCPU: -1, TID: th.TID, Comm: th.Comm, Old: th.Allowed, New: emu})
		}
	}
	return out
}

// pinTarget is the VM a `qnuma pin` acts on.
type pinTarget struct {
	PID   int
	Start uint64        // qemu's start time
	Entry *ledger.Entry // nil: a qemu not in the ledger
}

// findPinTarget resolves a ledger name or a qemu pid to a running qemu.
func findPinTarget(vm string, entries []ledger.Entry) (pinTarget, error) {
	var t pinTarget
	if pid, err := strconv.Atoi(vm); err == nil {
		if pid <= 0 {
			return t, badInput("vm %q: want a ledger name or a qemu pid", vm)
		}
		t.PID = pid
		for i := range entries {
			if entries[i].QEMU.PID == pid {
				t.Entry = &entries[i]
			}
		}
	} else {
		if err := ledger.ValidateName(vm); err != nil {
			return t, badInput("%w", err)
		}
		for i := range entries {
			if entries[i].Name == vm {
				t.Entry = &entries[i]
			}
		}
		if t.Entry == nil {
			return t, badInput("no vm %s in the ledger (see qnuma ps, or give a qemu pid)", vm)
		}
		if t.Entry.QEMU.PID == 0 {
			return t, badInput("vm %s has no qemu yet (still starting): try again once it runs", vm)
		}
		t.PID = t.Entry.QEMU.PID
	}
	id, err := numastat.ReadIdentity("/", t.PID)
	if errors.Is(err, fs.ErrNotExist) {
		return t, badInput("no process %d (vm %s)", t.PID, vm)
	}
	if err != nil {
		return t, err
	}
	if !id.IsQEMU() {
		return t, badInput("pid %d is %s, not a QEMU system emulator", t.PID, id)
	}
	if tgid, err := readTgid(t.PID); err != nil {
		return t, err
	} else if tgid != t.PID {
		return t, badInput("%d is a thread of qemu pid %d, not a process: give the pid", t.PID, tgid)
	}
	now, err := ledger.ProcOf(t.PID)
	if err != nil {
		return t, badInput("pid %d: %w", t.PID, err)
	}
	t.Start = now.StartTime
	if t.Entry != nil && t.Entry.QEMU != now {
		return t, badInput("pid %d is not the qemu vm %s started (it started at tick %d, the ledger's at %d): the pid was reused", t.PID, t.Entry.Name, now.StartTime, t.Entry.QEMU.StartTime)
	}
	return t, nil
}

// readTgid is the process (thread group) that thread id belongs to:
// /proc/ID works for any thread id, not only for processes.
func readTgid(id int) (int, error) {
	b, err := procfs.Read("/", procfs.PID(id, "status"), procfs.Small)
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", id, err)
	}
	tgid, err := parseTgid(b)
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", id, err)
	}
	return tgid, nil
}

// parseTgid reads the Tgid line of /proc/ID/status.
func parseTgid(b []byte) (int, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad Tgid line %q", clipLine(line))
			}
			return n, nil
		}
	}
	return 0, errors.New("no Tgid line")
}

func clipLine(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// pinJSON is `qnuma pin --json`.
type pinJSON struct {
	VM       string `json:"vm,omitempty"` // the ledger name; "" for a qemu not in it
	PID      int    `json:"pid"`
	Recorded bool   `json:"recorded"`
	// Locked: qnuma balance leaves the VM alone (absent for a qemu not in
	// the ledger).
	Locked  *bool           `json:"locked,omitempty"`
	Threads []pinThreadJSON `json:"threads"`
}

type pinThreadJSON struct {
	Kind     string `json:"kind"`
	VCPU     *int   `json:"vcpu,omitempty"`
	IOThread string `json:"iothread,omitempty"`
	TID      int    `json:"tid"`
	Name     string `json:"name"`
	OldCPUs  string `json:"old_cpus"`
	CPUs     string `json:"cpus"`
}

func (c *PinCmd) Run() error {
	return c.run(context.Background(), os.Stdout, os.Stderr, affinity.Real{})
}

func (c *PinCmd) run(ctx context.Context, stdout, stderr io.Writer, sys affinity.Sys) error {
	if c.Lock && c.Unlock {
		return badInput("--lock and --unlock: give one of them")
	}
	if (c.Lock || c.Unlock) && len(c.VCPU) == 0 && len(c.IOThread) == 0 && len(c.CPUs) == 0 && c.Emulator == "" {
		return c.setLock(ctx, stdout)
	}
	req, err := parsePinRequest(c.VCPU, c.IOThread, c.CPUs, c.Emulator)
	if err != nil {
		return err
	}
	host, err := topology.Read("/")
	if err != nil {
		return err
	}
	if bad := req.CPUs().Difference(host.Allowed.CPUs); bad.Size() > 0 {
		return badInput("cpus %s are not among the cpus qnuma may use on this host (%s)", bad, host.Allowed.CPUs)
	}
	l, err := openLedger(c.StateDir)
	if err != nil {
		return err
	}
	st, err := l.List(ctx)
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return badInput("%w", err)
	}
	if err != nil {
		return err
	}
	t, err := findPinTarget(c.VM, st.Entries)
	if err != nil {
		return err
	}
	threads, err := numastat.ReadThreads("/", t.PID)
	if err != nil {
		return err
	}
	var ioIDs map[int]string
	if c.QMP != "" {
		if threads, ioIDs, err = threadsFromQMP(ctx, c.QMP, t.PID, threads); err != nil {
			return err
		}
	}
	pins, err := planPins(threads, ioIDs, req)
	if err != nil {
		return err
	}
	vcpus, others := pinnedSets(threads, pins)
	var restore func() error
	var locked *bool
	if t.Entry != nil {
		old := *t.Entry
		record := func(vcpus, others, dedicated cpuset.CPUSet, lock bool) error {
			_, err := l.Update(ctx, old.Name, func(e *ledger.Entry) error {
				if e.QEMU != old.QEMU {
					return fmt.Errorf("its qemu is now pid %d, not %d", e.QEMU.PID, old.QEMU.PID)
				}
				e.VCPUCPUs, e.EmulatorCPUs, e.DedicatedCPUs, e.Locked = vcpus, others, dedicated, lock
				return nil
			})
			return err
		}
		dedicated := old.DedicatedCPUs
		if dedicated.Size() > 0 {
			dedicated = vcpus
		}
		// Pinned by hand: locked, unless asked not to.
		lock := !c.Unlock
		locked = &lock
		if err := record(vcpus, others, dedicated, lock); err != nil {
			if errors.Is(err, ledger.ErrCPUTaken) || errors.Is(err, ledger.ErrNoVM) {
				return badInput("%w; nothing changed", err)
			}
			if errors.Is(err, fs.ErrPermission) || errors.Is(err, ledger.ErrUnsafeDir) {
				return badInput("%w; nothing changed: vm %s is in another user's ledger, only its owner may pin it", err, old.Name)
			}
			return err
		}
		restore = func() error { return record(old.VCPUCPUs, old.EmulatorCPUs, old.DedicatedCPUs, old.Locked) }
	} else {
		if c.Lock {
			return badInput("pid %d is not in the ledger %s: --lock is a mark in the ledger, which has no entry for it; nothing changed", t.PID, l.Dir())
		}
		e := ledger.Entry{DedicatedCPUs: cpuset.New(), VCPUCPUs: vcpus, EmulatorCPUs: others}
		for _, o := range st.Entries {
			if err := ledger.Clash(e, o); err != nil {
				return badInput("pin qemu pid %d: %w; nothing changed", t.PID, err)
			}
		}
		fmt.Fprintf(stderr, "qnuma: pid %d is not in the ledger %s: the new pins are not recorded there\n", t.PID, l.Dir())
	}
	check := threadCheck(t)
	err = applyPins(sys, check, pins)
	if err == nil && req.Emulator != nil {
		err = pinNewThreads(sys, check, t.PID, threads, &pins, *req.Emulator)
	}
	if err != nil {
		if restore != nil {
			if rerr := restore(); rerr != nil {
				err = fmt.Errorf("%w; the ledger still records the new cpus: %v", err, rerr)
			}
		}
		return err
	}
	return writePins(stdout, c.JSON, t, pins, locked)
}

// setLock locks or unlocks a ledger VM (--lock or --unlock alone): a mark
// in its entry that qnuma balance honours; no thread changes.
func (c *PinCmd) setLock(ctx context.Context, w io.Writer) error {
	l, err := openLedger(c.StateDir)
	if err != nil {
		return err
	}
	st, err := l.List(ctx)
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return badInput("%w", err)
	}
	if err != nil {
		return err
	}
	var e *ledger.Entry
	pid, perr := strconv.Atoi(c.VM)
	if perr != nil {
		if err := ledger.ValidateName(c.VM); err != nil {
			return badInput("%w", err)
		}
	}
	for i := range st.Entries {
		if (perr == nil && st.Entries[i].QEMU.PID == pid) || (perr != nil && st.Entries[i].Name == c.VM) {
			e = &st.Entries[i]
		}
	}
	if e == nil {
		return badInput("no vm %s in the ledger %s (see qnuma ps): only a VM in the ledger can be locked or unlocked", c.VM, l.Dir())
	}
	_, err = l.Update(ctx, e.Name, func(n *ledger.Entry) error {
		if n.QEMU != e.QEMU {
			return fmt.Errorf("its qemu is now pid %d, not %d", n.QEMU.PID, e.QEMU.PID)
		}
		n.Locked = c.Lock
		return nil
	})
	switch {
	case errors.Is(err, ledger.ErrNoVM):
		return badInput("%w; nothing changed", err)
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, ledger.ErrUnsafeDir):
		return badInput("%w; nothing changed: vm %s is in another user's ledger, only its owner may lock it", err, e.Name)
	case err != nil:
		return err
	}
	if c.JSON {
		lock := c.Lock
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(pinJSON{VM: e.Name, PID: e.QEMU.PID, Recorded: true, Locked: &lock, Threads: []pinThreadJSON{}})
	}
	_, err = fmt.Fprintln(w, lockLine(e.Name, c.Lock))
	return err
}

// lockLine says what a lock means.
func lockLine(vm string, locked bool) string {
	if locked {
		return fmt.Sprintf("vm %s locked: qnuma balance leaves it where it is (qnuma pin %s --unlock lets it move the VM again)", vm, vm)
	}
	return fmt.Sprintf("vm %s unlocked: qnuma balance may move it", vm)
}

// pinNewThreads pins the threads qemu started while its emulator threads
// were being pinned, a few rounds until none is new; a failure puts back
// every pin.
func pinNewThreads(sys affinity.Sys, check func(int) error, pid int, threads []numastat.Thread, pins *[]threadPin, emu cpuset.CPUSet) error {
	known := map[int]bool{}
	for _, th := range threads {
		known[th.TID] = true
	}
	for round := 0; round < 3; round++ {
		now, err := numastat.ReadThreads("/", pid)
		if err != nil {
			return putBack(sys, check, *pins, err)
		}
		extra := newEmulatorPins(known, now, emu)
		if len(extra) == 0 {
			return nil
		}
		if err := applyPins(sys, check, extra); err != nil {
			return putBack(sys, check, *pins, err)
		}
		*pins = append(*pins, extra...)
	}
	return nil
}

func writePins(w io.Writer, asJSON bool, t pinTarget, all []threadPin, locked *bool) error {
	var pins []threadPin
	for _, p := range all {
		if !p.gone {
			pins = append(pins, p)
		}
	}
	if asJSON {
		out := pinJSON{PID: t.PID, Recorded: t.Entry != nil, Locked: locked, Threads: []pinThreadJSON{}}
		if t.Entry != nil {
			out.VM = t.Entry.Name
		}
		for _, p := range pins {
			j := pinThreadJSON{Kind: p.Kind, IOThread: p.IOThread, TID: p.TID, Name: p.Comm, OldCPUs: p.Old.String(), CPUs: p.New.String()}
			if p.Kind == "vcpu" {
				v := p.VCPU
				j.VCPU = &v
			}
			out.Threads = append(out.Threads, j)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, p := range pins {
		change := p.Old.String() + " -> " + p.New.String()
		if p.Old.Equals(p.New) {
			change = p.New.String() + " (unchanged)"
		}
		if _, err := fmt.Fprintf(w, "%-12s tid %-7d %-16s %s\n", p.what(), p.TID, p.Comm, change); err != nil {
			return err
		}
	}
	if locked != nil && t.Entry != nil && *locked != t.Entry.Locked {
		if _, err := fmt.Fprintln(w, lockLine(t.Entry.Name, *locked)); err != nil {
			return err
		}
	}
	return nil
}

// qmpTimeout bounds the talk with a user's QMP socket.
const qmpTimeout = 10 * time.Second

// threadsFromQMP asks qemu over its QMP socket which threads are its vCPUs
// and I/O threads, and labels threads so. Every thread id it reports must
// be one of pid's: a socket of another qemu is refused.
func threadsFromQMP(ctx context.Context, path string, pid int, threads []numastat.Thread) ([]numastat.Thread, map[int]string, error) {
	ctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	c, err := qmp.Dial(ctx, path)
	if err != nil {
		return nil, nil, badInput("--qmp %s: %w", path, err)
	}
	defer c.Close()
	cpus, err := c.QueryCPUsFast(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("--qmp %s: %w", path, err)
	}
	ios, err := c.QueryIOThreads(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("--qmp %s: %w", path, err)
	}
	out := slices.Clone(threads)
	at := map[int]int{}
	for i := range out {
		out[i].VCPU = -1
		at[out[i].TID] = i
	}
	for _, cpu := range cpus {
		i, ok := at[cpu.ThreadID]
		if !ok {
			return nil, nil, badInput("--qmp %s: vcpu %d runs in thread %d, which is not one of pid %d's: the socket is another qemu's", path, cpu.CPUIndex, cpu.ThreadID, pid)
		}
		if out[i].VCPU >= 0 {
			return nil, nil, badInput("--qmp %s: vcpus %d and %d share thread %d (single-threaded TCG): vcpus cannot be pinned apart; use -accel tcg,thread=multi or kvm", path, out[i].VCPU, cpu.CPUIndex, cpu.ThreadID)
		}
		out[i].VCPU = cpu.CPUIndex
	}
	ioIDs := map[int]string{}
	for _, io := range ios {
		if _, ok := at[io.ThreadID]; !ok {
			return nil, nil, badInput("--qmp %s: iothread %s runs in thread %d, which is not one of pid %d's: the socket is another qemu's", path, io.ID, io.ThreadID, pid)
		}
		ioIDs[io.ThreadID] = io.ID
	}
	return out, ioIDs, nil
}
