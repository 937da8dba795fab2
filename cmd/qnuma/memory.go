package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/qnuma/qnuma/control"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qmp"
	"github.com/qnuma/qnuma/topology"
)

// MemoryCmd is `qnuma memory`: grow or shrink a running VM's RAM through
// the virtio-mem devices its plan gave each guest node, or the DIMMs it
// plugs there (--memory-hotplug dimm).
type MemoryCmd struct {
	VM       string        `arg:"" name:"vm" help:"The VM: its name in the ledger, or its qemu's pid."`
	Size     string        `arg:"" name:"size" help:"The guest RAM the VM is to have in all: the memory it started with plus what virtio-mem or the DIMMs plug (e.g. 384M)."`
	Node     int           `name:"node" default:"-1" placeholder:"N" help:"Put the whole change on guest node N; by default it is spread over the guest nodes as the plan split the room."`
	Wait     time.Duration `name:"wait" default:"10s" placeholder:"DURATION" help:"How long to wait for the guest to plug or unplug what was asked before reporting (0: do not wait), and for it to release each DIMM removed."`
	JSON     bool          `name:"json" help:"Print JSON."`
	StateDir string        `name:"state-dir" placeholder:"DIR" help:"Ledger directory (default /run/qnuma as root, $XDG_RUNTIME_DIR/qnuma otherwise)."`
}

func (c *MemoryCmd) Help() string {
	return `Grows or shrinks the RAM of a running VM started with --max-memory (or
-m ...,maxmem=). SIZE is the VM's RAM in all; what is above the memory it
started with is asked of each guest node's virtio-mem device (requested-size),
spread over the guest nodes as the plan split the room (or all on --node N),
in whole blocks. Each device's memory comes from its own guest node's host
nodes. qnuma then reports what the guest has really plugged (a guest needs a
virtio-mem driver: one without it, or a VM with no guest at all, plugs
nothing, and QEMU keeps the request).

A VM started with --memory-hotplug dimm (or auto on a QEMU without
virtio-mem) grows by DIMMs instead: each a pc-dimm in its guest node with
a backend of its own, like that node's RAM and bound to its host nodes,
in pieces of the size its plan chose (128M unless the room is large); they
are plugged at once (query-memory-devices says so; the guest OS onlines
them). Shrinking removes the last added first and waits up to --wait for
the guest to release each: only a running guest OS with ACPI memory
hot-remove does, so on a VM without one (or a paused VM: refused, exit 2)
shrinking fails with the DIMM still there.

Refused with nothing changed (exit 2): beyond the room the VM was started
with, below the memory it started with, a VM without room, a size that is no
whole number of blocks (or DIMMs), and growth the host nodes have no free
memory for now.

Examples:
  qnuma memory web 6G            vm web to 6 GiB
  qnuma memory web 4G --node 1   the change on guest node 1 only`
}

func (c *MemoryCmd) Run() error {
	return c.run(context.Background(), os.Stdout)
}

// memoryDevice is one virtio-mem device or DIMM in query-memory-devices.
type memoryDevice struct {
	Type string `json:"type"`
	Data struct {
		ID            string `json:"id"`
		Node          int    `json:"node"`
		Size          uint64 `json:"size"`
		RequestedSize uint64 `json:"requested-size"`
		MaxSize       uint64 `json:"max-size"`
		BlockSize     uint64 `json:"block-size"`
		Memdev        string `json:"memdev"` // a DIMM's: /objects/ID
	} `json:"data"`
}

// memSlot is one guest node's device as qnuma memory plans with it.
type memSlot struct {
	ledger.MemorySlot
	Block     uint64 // the device's block size, or the DIMMs' size
	Requested uint64 // what qemu has been asked for now
	Plugged   uint64 // what the guest has plugged now
	DIMMs     []dimm // with DIMMs: those qemu has now, by number
}

// splitMemory decides each device's requested size for a VM of size bytes
// whose boot memory is boot: node < 0 spreads the growth in proportion to
// each device's room, in whole blocks; node >= 0 puts the whole change
// from what is requested now on that guest node's device. Refusals are bad
// input.
func splitMemory(name string, size, boot uint64, slots []memSlot, node int) ([]uint64, error) {
	if len(slots) == 0 {
		return nil, badInput("vm %s has no memory hotplug room: it was started without --max-memory (or -m ...,maxmem=); restart it with --max-memory SIZE", name)
	}
	var room, now, block uint64
	for _, s := range slots {
		room += s.MaxBytes
		now += s.Requested
		block = max(block, s.Block)
	}
	switch {
	case size < boot:
		return nil, badInput("vm %s started with %s; qnuma memory takes away only what it plugged: give at least %s; nothing changed", name, memobj.FormatSize(boot), memobj.FormatSize(boot))
	case size-boot > room:
		return nil, badInput("vm %s can grow to at most %s (%s it started with and %s of room, its --max-memory), not %s; nothing changed", name, memobj.FormatSize(boot+room), memobj.FormatSize(boot), memobj.FormatSize(room), memobj.FormatSize(size))
	case (size-boot)%block != 0:
		return nil, badInput("size %s is %s above the %s vm %s started with: give a multiple of %s (the virtio-mem block size, or the size of its DIMMs) above it; nothing changed", memobj.FormatSize(size), memobj.FormatSize(size-boot), memobj.FormatSize(boot), name, memobj.FormatSize(block))
	}
	growth := size - boot
	out := make([]uint64, len(slots))
	if node >= 0 {
		at := -1
		var nodes []string
		for i, s := range slots {
			out[i] = s.Requested
			nodes = append(nodes, fmt.Sprint(s.GuestNode))
			if s.GuestNode == node {
				at = i
			}
		}
		if at < 0 {
			return nil, badInput("--node %d: vm %s has memory hotplug room on guest nodes %s only", node, name, strings.Join(nodes, ","))
		}
		want := int64(slots[at].Requested) + int64(growth) - int64(now)
		if want < 0 || uint64(want) > slots[at].MaxBytes {
			return nil, badInput("--node %d: guest node %d's device would need %d bytes, outside 0-%s (the other nodes hold %s now); nothing changed",
				node, node, want, memobj.FormatSize(slots[at].MaxBytes), memobj.FormatSize(now-slots[at].Requested))
		}
		if uint64(want)%slots[at].Block != 0 {
			return nil, badInput("--node %d: %d bytes is no multiple of the device's %s blocks", node, want, memobj.FormatSize(slots[at].Block))
		}
		out[at] = uint64(want)
		return out, nil
	}
	var sum uint64
	for i, s := range slots {
		share := growth / memobj.MiB * (s.MaxBytes / memobj.MiB) / (room / memobj.MiB) * memobj.MiB
		share -= share % block
		out[i] = share
		sum += share
	}
	// What rounding left goes a block at a time to the devices with room.
	for left := growth - sum; left > 0; {
		placed := false
		for i := range slots {
			if left > 0 && out[i]+block <= slots[i].MaxBytes {
				out[i] += block
				left -= block
				placed = true
			}
		}
		if !placed {
			return nil, fmt.Errorf("split %s over the devices of vm %s: %s left over", memobj.FormatSize(growth), name, memobj.FormatSize(left))
		}
	}
	return out, nil
}

// hostLacks says which host node has too little free memory for the
// growth asked of it now, "" when all have enough. Each device's growth is
// counted evenly over its host nodes.
func hostLacks(host *topology.Host, slots []memSlot, target []uint64) string {
	need := map[int]uint64{}
	for i, s := range slots {
		if target[i] <= s.Requested || len(s.HostNodes) == 0 {
			continue
		}
		d := target[i] - s.Requested
		for _, n := range s.HostNodes {
			need[n] += d / uint64(len(s.HostNodes))
		}
	}
	for _, n := range host.Nodes {
		if b, ok := need[n.ID]; ok && n.MemFree+n.InactiveFile < b {
			return fmt.Sprintf("host node %d has %s free now, the growth needs %s there", n.ID, memobj.FormatSize(n.MemFree+n.InactiveFile), memobj.FormatSize(b))
		}
		delete(need, n.ID)
	}
	for n := range need {
		return fmt.Sprintf("host node %d is not on this host now", n)
	}
	return ""
}

// memoryJSON is --json's report.
type memoryJSON struct {
	VM             string          `json:"vm"`
	BootBytes      uint64          `json:"boot_bytes"`
	RequestedBytes uint64          `json:"requested_bytes"`
	PluggedBytes   uint64          `json:"plugged_bytes"`
	Devices        []memoryDevJSON `json:"devices"`
}

type memoryDevJSON struct {
	GuestNode      int    `json:"guest_node"`
	Device         string `json:"device"`
	HostNodes      []int  `json:"host_nodes"`
	RequestedBytes uint64 `json:"requested_bytes"`
	PluggedBytes   uint64 `json:"plugged_bytes"`
	MaxBytes       uint64 `json:"max_bytes"`
	// DIMMBytes and DIMMs: the guest node grows by DIMMs of that size;
	// those qemu has now (device ids).
	DIMMBytes uint64   `json:"dimm_bytes,omitempty"`
	DIMMs     []string `json:"dimms,omitempty"`
}

func (c *MemoryCmd) run(ctx context.Context, stdout io.Writer) error {
	size, err := memobj.ParseSize(c.Size, memobj.MiB)
	if err != nil {
		return badInput("size %q: %w (want a size such as 384M or 6G)", c.Size, err)
	}
	l, e, _, err := liveVM(ctx, c.VM, c.StateDir)
	if err != nil {
		return err
	}
	var boot uint64
	for _, g := range e.GuestNodes {
		boot += g.MemoryBytes
	}
	if len(e.MemorySlots) == 0 {
		_, err := splitMemory(e.Name, size, boot, nil, c.Node)
		return err
	}
	unlock, err := lockChange(ctx, l, e.Name, os.Stderr)
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, controlTimeout+max(c.Wait, 0))
	defer cancel()
	mon, err := control.Dial(ctx, l.Dir(), e)
	if err != nil {
		return err
	}
	defer mon.Close()
	slots, err := memSlots(ctx, mon, e)
	if err != nil {
		return err
	}
	target, err := splitMemory(e.Name, size, boot, slots, c.Node)
	if err != nil {
		return err
	}
	host, err := topology.Read("/")
	if err != nil {
		return err
	}
	if why := hostLacks(host, slots, target); why != "" {
		return badInput("vm %s to %s: %s; nothing changed", e.Name, memobj.FormatSize(size), why)
	}
	dimms, err := prepareDIMMs(ctx, mon, e, slots, target, c.Wait)
	if err != nil {
		return err
	}
	if changePlanned != nil {
		changePlanned(e.Name)
	}
	for i, s := range slots {
		if target[i] == s.Requested {
			continue
		}
		if s.DIMMBytes > 0 {
			err := resizeDIMMs(ctx, mon, e, s, s.DIMMs, target[i], dimms[i], c.Wait, func(plugged uint64) error {
				return recordMemory(ctx, l, e, s.GuestNode, plugged)
			})
			if err != nil {
				return err
			}
			continue
		}
		args := map[string]any{"path": "/machine/peripheral/" + s.Device, "property": "requested-size", "value": target[i]}
		if err := mon.Execute(ctx, "qom-set", args, nil); err != nil {
			return fmt.Errorf("vm %s: ask guest node %d's %s for %s: %w", e.Name, s.GuestNode, s.Device, memobj.FormatSize(target[i]), err)
		}
		if err := recordMemory(ctx, l, e, s.GuestNode, target[i]); err != nil {
			return err
		}
	}
	if slots, err = waitPlugged(ctx, mon, e, c.Wait); err != nil {
		return err
	}
	return writeMemory(stdout, c.JSON, e.Name, boot, slots)
}

// memSlots are the entry's devices as qemu has them now.
func memSlots(ctx context.Context, mon *qmp.Client, e ledger.Entry) ([]memSlot, error) {
	var devs []memoryDevice
	if err := mon.Execute(ctx, "query-memory-devices", nil, &devs); err != nil {
		return nil, fmt.Errorf("vm %s: %w", e.Name, err)
	}
	var out []memSlot
	for _, m := range e.MemorySlots {
		s := memSlot{MemorySlot: m}
		if m.DIMMBytes > 0 {
			// DIMMs are plugged when added: asked is what qemu has.
			s.Block, s.DIMMs = m.DIMMBytes, dimmsOf(devs, m.GuestNode)
			for _, d := range s.DIMMs {
				s.Plugged += d.Bytes
			}
			s.Requested = s.Plugged
			out = append(out, s)
			continue
		}
		found := false
		for _, d := range devs {
			if d.Type == "virtio-mem" && d.Data.ID == m.Device {
				found = true
				s.Block, s.Requested, s.Plugged = d.Data.BlockSize, d.Data.RequestedSize, d.Data.Size
				if d.Data.MaxSize < m.MaxBytes {
					s.MaxBytes = d.Data.MaxSize
				}
			}
		}
		if !found || s.Block == 0 {
			return nil, fmt.Errorf("vm %s: qemu has no virtio-mem device %s (guest node %d) with a block size", e.Name, m.Device, m.GuestNode)
		}
		out = append(out, s)
	}
	return out, nil
}

// waitPlugged waits, up to wait, until the guest has plugged what each
// device was asked for (MEMORY_DEVICE_SIZE_CHANGE), and returns the
// devices as they are then.
func waitPlugged(ctx context.Context, mon *qmp.Client, e ledger.Entry, wait time.Duration) ([]memSlot, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		slots, err := memSlots(ctx, mon, e)
		if err != nil {
			return nil, err
		}
		done := true
		for _, s := range slots {
			done = done && s.Plugged == s.Requested
		}
		if done || wait <= 0 {
			return slots, nil
		}
		select {
		case _, ok := <-mon.Events(): // any event may be the size change; ask again
			if !ok {
				return nil, fmt.Errorf("vm %s: %w", e.Name, mon.Err())
			}
		case <-wctx.Done():
			return slots, nil
		}
	}
}

// recordMemory keeps guest node g's requested size in the ledger.
func recordMemory(ctx context.Context, l *ledger.Ledger, old ledger.Entry, g int, bytes uint64) error {
	_, err := l.Update(ctx, old.Name, func(e *ledger.Entry) error {
		if e.QEMU != old.QEMU {
			return fmt.Errorf("its qemu is now pid %d, not %d", e.QEMU.PID, old.QEMU.PID)
		}
		for i := range e.MemorySlots {
			if e.MemorySlots[i].GuestNode == g {
				e.MemorySlots[i].RequestedBytes = bytes
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record guest node %d's memory of vm %s: %w (qemu has the change)", g, old.Name, err)
	}
	return nil
}

func writeMemory(w io.Writer, asJSON bool, name string, boot uint64, slots []memSlot) error {
	r := memoryJSON{VM: name, BootBytes: boot, RequestedBytes: boot, PluggedBytes: boot}
	for _, s := range slots {
		r.RequestedBytes += s.Requested
		r.PluggedBytes += s.Plugged
		d := memoryDevJSON{GuestNode: s.GuestNode, Device: s.Device, HostNodes: s.HostNodes,
			RequestedBytes: s.Requested, PluggedBytes: s.Plugged, MaxBytes: s.MaxBytes, DIMMBytes: s.DIMMBytes}
		for _, m := range s.DIMMs {
			d.DIMMs = append(d.DIMMs, m.ID)
		}
		r.Devices = append(r.Devices, d)
	}
	if asJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	how, dimms := "virtio-mem", false
	for _, d := range r.Devices {
		if d.DIMMBytes > 0 {
			dimms = true
			fmt.Fprintf(w, "guest node %d (%d DIMMs of %s: %s; host nodes %s): plugged %s, of %s\n", d.GuestNode, len(d.DIMMs), memobj.FormatSize(d.DIMMBytes),
				orNone(strings.Join(d.DIMMs, ",")), idsString(d.HostNodes), memobj.FormatSize(d.PluggedBytes), memobj.FormatSize(d.MaxBytes))
			continue
		}
		fmt.Fprintf(w, "guest node %d (%s, host nodes %s): asked %s, plugged %s, of %s\n", d.GuestNode, d.Device, idsString(d.HostNodes),
			memobj.FormatSize(d.RequestedBytes), memobj.FormatSize(d.PluggedBytes), memobj.FormatSize(d.MaxBytes))
	}
	if dimms {
		how = "DIMMs"
	}
	fmt.Fprintf(w, "vm %s: %s asked (%s at start + %s %s), plugged %s of the %s so far (query-memory-devices)\n", name,
		memobj.FormatSize(r.RequestedBytes), memobj.FormatSize(boot), memobj.FormatSize(r.RequestedBytes-boot), how,
		memobj.FormatSize(r.PluggedBytes-boot), memobj.FormatSize(r.RequestedBytes-boot))
	if dimms && r.PluggedBytes > boot {
		fmt.Fprintf(w, "qnuma: the DIMMs are in the guest's memory map; a guest OS onlines them (a VM without one uses none of it), and only a running guest OS with ACPI memory hot-remove gives them back\n")
	}
	if r.PluggedBytes != r.RequestedBytes {
		fmt.Fprintf(w, "qnuma: the guest has not plugged all of it yet: a guest without a virtio-mem driver (or no guest) plugs nothing; qemu keeps the request\n")
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func idsString(ids []int) string {
	s := make([]string, len(ids))
	for i, n := range ids {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
