package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/control"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qmp"
	"github.com/qnuma/qnuma/topology"
)

// VCPUsCmd is `qnuma vcpus`: hot-add or remove vCPUs of a running VM
// started with hotplug room.
type VCPUsCmd struct {
	VM       string        `arg:"" name:"vm" help:"The VM: its name in the ledger, or its qemu's pid."`
	Count    int           `arg:"" name:"n" help:"How many vCPUs the VM is to have."`
	Timeout  time.Duration `name:"timeout" default:"30s" placeholder:"DURATION" help:"How long the guest may take to release a vCPU being removed."`
	StateDir string        `name:"state-dir" placeholder:"DIR" help:"Ledger directory (default /run/qnuma as root, $XDG_RUNTIME_DIR/qnuma otherwise)."`
}

func (c *VCPUsCmd) Help() string {
	return `Grows or shrinks a running VM started with --max-vcpus (or -smp maxcpus=) to N
vCPUs. Each new vCPU goes into the slot the plan mapped to its guest node
(-numa cpu), in the plan's order (alternating between guest nodes: the
Hotpluggable vCPUs of qnuma plan), and its thread is pinned to its planned
host CPUs as soon as it exists, before the guest can online it; the ledger
records it. Removal takes the vCPUs qnuma added away again, the last first,
and waits for the guest to release each (DEVICE_DELETED): a guest needs an
OS that ejects CPUs (ACPI) for that.

Refused with nothing changed (exit 2): N beyond --max-vcpus or below the
vCPUs the VM started with, a VM without hotplug room, and a new vCPU whose
planned CPUs are now dedicated to another VM or no longer usable here.

qnuma talks to qemu through the control socket of the qnuma run that
supervises the VM (in the ledger directory).

Examples:
  qnuma vcpus web 4     vm web to 4 vCPUs
  qnuma vcpus web 2     and back to 2`
}

func (c *VCPUsCmd) Run() error {
	return c.run(context.Background(), os.Stdout, affinity.Real{})
}

// controlTimeout bounds a grow or shrink command's QMP exchanges over the
// control socket, besides the guest's own time to release what it is asked
// to (--timeout, --wait).
const controlTimeout = 2 * time.Minute

// slotDeviceID is the id of the vCPU device qnuma plugs into slot id (the
// one a VM over several guest nodes has cold-plugged at start has it too).
func slotDeviceID(id int) string { return plan.VCPUDeviceID(id) }

// hotpluggableCPU is one entry of query-hotpluggable-cpus.
type hotpluggableCPU struct {
	Type       string         `json:"type"`
	VCPUsCount int            `json:"vcpus-count"`
	QOMPath    string         `json:"qom-path"`
	Props      map[string]int `json:"props"`
}

// slotMatches: props (QMP's socket-id, core-id, thread-id) name slot s.
func slotMatches(props map[string]int, s ledger.VCPUSlot) bool {
	return props["socket-id"] == s.SocketID && props["core-id"] == s.CoreID && props["thread-id"] == s.ThreadID
}

// vcpuChange is what a qnuma vcpus call is to do.
type vcpuChange struct {
	Add    []ledger.VCPUSlot // in order
	Remove []ledger.VCPUSlot // last first
}

// planVCPUChange decides which slots to plug or unplug to bring vm e from
// the vCPUs present now (by slot id) to want, refusing what may not be
// done before anything changes. The slots are in plan order (those present
// at start, then the absent ones as the plan adds them, alternating
// between guest nodes): the first want of them are to be present, so a
// grow adds the next absent slots in that order and a shrink removes the
// last added first.
func planVCPUChange(e ledger.Entry, want int, present map[int]bool, others []ledger.Entry, usable func(ledger.VCPUSlot) error) (vcpuChange, error) {
	var ch vcpuChange
	if len(e.VCPUSlots) == 0 {
		return ch, badInput("vm %s has no vCPU hotplug room: it was started without --max-vcpus (or -smp maxcpus=); restart it with --max-vcpus N", e.Name)
	}
	boot := 0
	for _, s := range e.VCPUSlots {
		if !s.Hotplug {
			boot++
		}
	}
	switch {
	case want > len(e.VCPUSlots):
		return ch, badInput("vm %s can have at most %d vCPUs (its --max-vcpus), not %d; nothing changed", e.Name, len(e.VCPUSlots), want)
	case want < boot:
		return ch, badInput("vm %s started with %d vCPUs; qnuma vcpus removes only those it added: give at least %d; nothing changed", e.Name, boot, boot)
	}
	for i, s := range e.VCPUSlots {
		if i < want && !present[s.ID] {
			if !s.Hotplug {
				return ch, fmt.Errorf("vm %s: vCPU %d, present at start, is gone from qemu", e.Name, s.ID)
			}
			for _, o := range others {
				if o.Name == e.Name {
					continue
				}
				if taken := s.HostCPUs.Intersection(o.DedicatedCPUs); taken.Size() > 0 {
					return ch, badInput("vm %s: vCPU %d is planned on cpus %s, and cpus %s are now dedicated to vm %s; nothing changed", e.Name, s.ID, s.HostCPUs, taken, o.Name)
				}
			}
			if err := usable(s); err != nil {
				return ch, badInput("vm %s: vCPU %d: %w; nothing changed", e.Name, s.ID, err)
			}
			ch.Add = append(ch.Add, s)
		}
	}
	for i := len(e.VCPUSlots) - 1; i >= want; i-- {
		if present[e.VCPUSlots[i].ID] {
			ch.Remove = append(ch.Remove, e.VCPUSlots[i])
		}
	}
	return ch, nil
}

// presentSlots maps qemu's vCPUs to the entry's slots by their topology
// ids: present and tids (their threads) are by slot id.
func presentSlots(e ledger.Entry, cpus []qmp.CPU) (present map[int]bool, tids map[int]int) {
	present, tids = map[int]bool{}, map[int]int{}
	for _, cpu := range cpus {
		p := map[string]int{}
		for k, v := range map[string]*int{"socket-id": cpu.Props.SocketID, "core-id": cpu.Props.CoreID, "thread-id": cpu.Props.ThreadID} {
			if v != nil {
				p[k] = *v
			}
		}
		for _, s := range e.VCPUSlots {
			if slotMatches(p, s) {
				present[s.ID], tids[s.ID] = true, cpu.ThreadID
			}
		}
	}
	return present, tids
}

// liveVM finds vm (a name or a qemu pid) in the ledger and checks that its
// qemu is the one recorded.
func liveVM(ctx context.Context, vm, stateDir string) (*ledger.Ledger, ledger.Entry, []ledger.Entry, error) {
	l, err := openLedger(stateDir)
	if err != nil {
		return nil, ledger.Entry{}, nil, err
	}
	st, err := l.List(ctx)
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return nil, ledger.Entry{}, nil, badInput("%w", err)
	}
	if err != nil {
		return nil, ledger.Entry{}, nil, err
	}
	t, err := findPinTarget(vm, st.Entries)
	if err != nil {
		return nil, ledger.Entry{}, nil, err
	}
	if t.Entry == nil {
		return nil, ledger.Entry{}, nil, badInput("qemu pid %d is not in the ledger %s: only a VM qnuma run started can grow", t.PID, l.Dir())
	}
	return l, *t.Entry, st.Entries, nil
}

func (c *VCPUsCmd) run(ctx context.Context, stdout io.Writer, sys affinity.Sys) error {
	if c.Count < 1 {
		return badInput("n %d: a VM needs at least one vCPU", c.Count)
	}
	l, e, others, err := liveVM(ctx, c.VM, c.StateDir)
	if err != nil {
		return err
	}
	if len(e.VCPUSlots) == 0 { // before dialling: says why at once
		_, err := planVCPUChange(e, c.Count, nil, nil, nil)
		return err
	}
	unlock, err := lockChange(ctx, l, e.Name, os.Stderr)
	if err != nil {
		return err
	}
	defer unlock()
	// Every wait is bounded: the QMP exchanges, and each removal's own
	// --timeout on top.
	ctx, cancel := context.WithTimeout(ctx, controlTimeout+time.Duration(len(e.VCPUSlots))*c.Timeout)
	defer cancel()
	host, err := topology.Read("/")
	if err != nil {
		return err
	}
	mon, err := control.Dial(ctx, l.Dir(), e)
	if err != nil {
		return err
	}
	defer mon.Close()
	cpus, err := mon.QueryCPUsFast(ctx)
	if err != nil {
		return err
	}
	present, _ := presentSlots(e, cpus)
	ch, err := planVCPUChange(e, c.Count, present, others, func(s ledger.VCPUSlot) error {
		if bad := s.HostCPUs.Difference(host.Allowed.CPUs); bad.Size() > 0 {
			return fmt.Errorf("its planned cpus %s are not among those qnuma may use here now (%s)", bad, host.Allowed.CPUs)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if changePlanned != nil {
		changePlanned(e.Name)
	}
	for _, s := range ch.Add {
		tid, err := plugVCPU(ctx, mon, sys, e, s)
		if err != nil {
			return err
		}
		if err := recordSlot(ctx, l, e, s.ID, true); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "vm %s: vCPU %d added in guest node %d, thread %d pinned to cpus %s\n", e.Name, s.ID, s.GuestNode, tid, s.HostCPUs)
	}
	for _, s := range ch.Remove {
		if err := unplugVCPU(ctx, mon, e, s, c.Timeout); err != nil {
			return err
		}
		if err := recordSlot(ctx, l, e, s.ID, false); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "vm %s: vCPU %d removed from guest node %d\n", e.Name, s.ID, s.GuestNode)
	}
	fmt.Fprintf(stdout, "vm %s: %d vCPUs (at most %d)\n", e.Name, c.Count, len(e.VCPUSlots))
	return nil
}

// plugVCPU plugs slot s, finds its new thread, checks it is qemu's, and
// pins it before anything else. A vCPU that cannot be pinned is unplugged
// again (the guest has not onlined it yet).
func plugVCPU(ctx context.Context, mon *qmp.Client, sys affinity.Sys, e ledger.Entry, s ledger.VCPUSlot) (int, error) {
	op := fmt.Sprintf("add vCPU %d to vm %s", s.ID, e.Name)
	var hp []hotpluggableCPU
	if err := mon.Execute(ctx, "query-hotpluggable-cpus", nil, &hp); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	var slot *hotpluggableCPU
	for i := range hp {
		if slotMatches(hp[i].Props, s) {
			slot = &hp[i]
		}
	}
	if slot == nil {
		return 0, fmt.Errorf("%s: qemu has no cpu slot socket-id=%d core-id=%d thread-id=%d", op, s.SocketID, s.CoreID, s.ThreadID)
	}
	if n, ok := slot.Props["node-id"]; ok && n != s.GuestNode {
		return 0, fmt.Errorf("%s: qemu maps its slot to guest node %d, the plan to %d", op, n, s.GuestNode)
	}
	id := slotDeviceID(s.ID)
	args := map[string]any{"driver": slot.Type, "id": id}
	for k, v := range slot.Props {
		args[k] = v
	}
	if err := mon.Execute(ctx, "device_add", args, nil); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	tid, err := pinNewVCPU(ctx, mon, sys, e, s, id)
	if err != nil {
		// Not onlined by the guest yet: take it back rather than leave it
		// unpinned. Its release is the guest's; say so if it fails.
		if derr := mon.Execute(ctx, "device_del", map[string]any{"id": id}, nil); derr != nil {
			err = fmt.Errorf("%w; removing it again failed too: %v", err, derr)
		}
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return tid, nil
}

// pinNewVCPU finds device id's thread and pins it to s.HostCPUs.
func pinNewVCPU(ctx context.Context, mon *qmp.Client, sys affinity.Sys, e ledger.Entry, s ledger.VCPUSlot, id string) (int, error) {
	cpus, err := mon.QueryCPUsFast(ctx)
	if err != nil {
		return 0, err
	}
	path := "/machine/peripheral/" + id
	tid := 0
	for _, c := range cpus {
		if c.QOMPath == path {
			tid = c.ThreadID
		}
	}
	if tid == 0 {
		return 0, fmt.Errorf("query-cpus-fast lists no vCPU at %s", path)
	}
	if err := threadOf(e.QEMU, tid); err != nil {
		return 0, err
	}
	if err := sys.SchedSetaffinity(tid, s.HostCPUs); err != nil {
		return 0, fmt.Errorf("pin vCPU %d (tid %d) to cpus %s: %w", s.ID, tid, s.HostCPUs, err)
	}
	return tid, nil
}

// threadOf checks that tid is a thread of qemu, the process the ledger
// recorded (same start time), so that a pin never lands elsewhere.
func threadOf(qemu ledger.Proc, tid int) error {
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(qemu.PID), "task", strconv.Itoa(tid))); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("thread %d is not one of qemu pid %d's", tid, qemu.PID)
	} else if err != nil {
		return fmt.Errorf("check thread %d of qemu pid %d: %w", tid, qemu.PID, err)
	}
	if ok, err := qemu.Alive(); err != nil || !ok {
		return fmt.Errorf("qemu pid %d exited", qemu.PID)
	}
	return nil
}

// unplugVCPU asks the guest to release slot s and waits for QEMU to say
// the vCPU is gone.
func unplugVCPU(ctx context.Context, mon *qmp.Client, e ledger.Entry, s ledger.VCPUSlot, timeout time.Duration) error {
	op := fmt.Sprintf("remove vCPU %d from vm %s", s.ID, e.Name)
	id := slotDeviceID(s.ID)
	if err := mon.Execute(ctx, "device_del", map[string]any{"id": id}, nil); err != nil {
		var qe *qmp.Error
		if errors.As(err, &qe) && strings.Contains(qe.Desc, "not supported device type") {
			// QEMU's legacy CPU hotplug interface, which the guest's ACPI
			// switches from once an OS runs, cannot unplug.
			err = fmt.Errorf("%w (the guest has not taken up ACPI CPU hotplug: it needs a running OS that supports CPU removal)", err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var seen []string // for the error: what qemu said meanwhile
	for {
		select {
		case ev, ok := <-mon.Events():
			if !ok {
				return fmt.Errorf("%s: %w", op, mon.Err())
			}
			if len(seen) < 8 {
				seen = append(seen, ev.Name+" "+string(ev.Data))
			}
			// QEMU 7.2 sends DEVICE_DELETED for the vCPU's lapic but not
			// always for the vCPU itself: after any device or ACPI event,
			// ask whether qemu still lists it.
			if ev.Name != "DEVICE_DELETED" && ev.Name != "ACPI_DEVICE_OST" {
				continue
			}
			var d struct {
				Device string `json:"device"`
			}
			if ev.Name == "DEVICE_DELETED" && json.Unmarshal(ev.Data, &d) == nil && d.Device == id {
				return nil
			}
			cpus, err := mon.QueryCPUsFast(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			gone := true
			for _, c := range cpus {
				gone = gone && c.QOMPath != "/machine/peripheral/"+id
			}
			if gone {
				return nil
			}
		case <-wctx.Done():
			err := fmt.Errorf("%s: the guest did not release it within %s (it needs an OS that ejects CPUs); qemu still has it", op, timeout)
			if len(seen) > 0 {
				err = fmt.Errorf("%w (qemu's events meanwhile: %s)", err, strings.Join(seen, "; "))
			}
			return err
		}
	}
}

// recordSlot marks slot id present or not in the ledger.
func recordSlot(ctx context.Context, l *ledger.Ledger, old ledger.Entry, id int, present bool) error {
	_, err := l.Update(ctx, old.Name, func(e *ledger.Entry) error {
		if e.QEMU != old.QEMU {
			return fmt.Errorf("its qemu is now pid %d, not %d", e.QEMU.PID, old.QEMU.PID)
		}
		for i, s := range e.VCPUSlots {
			if s.ID != id {
				continue
			}
			e.VCPUSlots[i].Present = present
		}
		// qnuma stat's home of each vCPU, by cpu-index.
		e.VCPUHomeNodes = e.SlotHomeNodes()
		return nil
	})
	if err != nil {
		return fmt.Errorf("record vCPU %d of vm %s: %w (qemu has the change)", id, old.Name, err)
	}
	return nil
}
