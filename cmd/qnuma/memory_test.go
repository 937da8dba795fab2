package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/topology"
)

func TestSplitMemory(t *testing.T) {
	const M = memobj.MiB
	two := func(req0, req1 uint64) []memSlot {
		return []memSlot{
			{MemorySlot: ledger.MemorySlot{GuestNode: 0, Device: "qnuma-vmem0", HostNodes: []int{0}, MaxBytes: 256 * M}, Block: 2 * M, Requested: req0},
			{MemorySlot: ledger.MemorySlot{GuestNode: 1, Device: "qnuma-vmem1", HostNodes: []int{1}, MaxBytes: 128 * M}, Block: 2 * M, Requested: req1},
		}
	}
	tests := []struct {
		name  string
		size  uint64
		slots []memSlot
		node  int
		want  []uint64
		usage string
	}{
		{name: "spread as the room is split", size: 512*M + 96*M, slots: two(0, 0), node: -1, want: []uint64{64 * M, 32 * M}},
		{name: "rounding left a block over", size: 512*M + 6*M, slots: two(0, 0), node: -1, want: []uint64{4 * M, 2 * M}},
		{name: "all of the room", size: 512*M + 384*M, slots: two(0, 0), node: -1, want: []uint64{256 * M, 128 * M}},
		{name: "back to the start", size: 512 * M, slots: two(64*M, 32*M), node: -1, want: []uint64{0, 0}},
		{name: "one node takes the change", size: 512*M + 128*M, slots: two(64*M, 32*M), node: 1, want: []uint64{64 * M, 64 * M}},
		{name: "one node shrinks", size: 512*M + 64*M, slots: two(32*M, 64*M), node: 1, want: []uint64{32 * M, 32 * M}},
		{name: "one node past its room", size: 512*M + 200*M, slots: two(0, 0), node: 1, usage: "outside 0-128M"},
		{name: "no such node", size: 520 * M, slots: two(0, 0), node: 3, usage: "guest nodes 0,1 only"},
		{name: "beyond the room", size: 512*M + 386*M, slots: two(0, 0), node: -1, usage: "at most 896M"},
		{name: "below the start", size: 500 * M, slots: two(0, 0), node: -1, usage: "at least 512M"},
		{name: "not whole blocks", size: 513 * M, slots: two(0, 0), node: -1, usage: "multiple of 2M"},
		{name: "no room", size: 600 * M, node: -1, usage: "no memory hotplug room"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitMemory("vm", tt.size, 512*M, tt.slots, tt.node)
			if tt.usage != "" {
				if !IsUsage(err) || !strings.Contains(err.Error(), tt.usage) {
					t.Fatalf("err = %v; want bad input with %q", err, tt.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalU64(got, tt.want) {
				t.Errorf("split = %v, want %v", got, tt.want)
			}
		})
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHostLacks(t *testing.T) {
	const M = memobj.MiB
	host := &topology.Host{Nodes: []topology.Node{{ID: 0, MemFree: 100 * M, InactiveFile: 28 * M}, {ID: 1, MemFree: 10 * M}}}
	slots := []memSlot{
		{MemorySlot: ledger.MemorySlot{GuestNode: 0, HostNodes: []int{0}, MaxBytes: 256 * M}, Requested: 64 * M},
		{MemorySlot: ledger.MemorySlot{GuestNode: 1, HostNodes: []int{1}, MaxBytes: 256 * M}},
	}
	for _, tt := range []struct {
		name   string
		target []uint64
		want   string
	}{
		{"fits in free and inactive file", []uint64{192 * M, 10 * M}, ""},
		{"shrinking needs nothing", []uint64{0, 0}, ""},
		{"node 0 short", []uint64{194 * M, 0}, "host node 0 has 128M free now, the growth needs 130M"},
		{"node 1 short", []uint64{64 * M, 12 * M}, "host node 1 has 10M free"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := hostLacks(host, slots, tt.target)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("hostLacks = %q, want %q", got, tt.want)
			}
		})
	}
	gone := []memSlot{{MemorySlot: ledger.MemorySlot{HostNodes: []int{7}}}}
	if got := hostLacks(host, gone, []uint64{2 * M}); !strings.Contains(got, "node 7 is not on this host") {
		t.Errorf("a host node gone: %q", got)
	}
}

// Issue 15's proof: a guestless 256 MiB VM with --max-memory 512M asked
// for 384M: QEMU's memory devices are asked for the 128 MiB above the boot
// RAM, which with the boot backend adds up to 384 MiB; beyond the room is
// refused with nothing changed; shrinking back asks for nothing again.
// A guestless VM plugs nothing: virtio-mem's size stays 0 while its
// requested-size changes, and that is what is checked (and reported).
func TestMemoryLive(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := []string{"run", "-v", "--state-dir", state, "--name", "m", "--vcpus", "1", "--memory", "256M", "--max-memory", "512M", "--"}
	p := startQnuma(t, []string{bin}, append(args, bareQEMU...)...)
	p.readPins(t, 1)
	mon := vmQMP(t, state, "m")
	type dev struct {
		Type string `json:"type"`
		Data struct {
			ID            string `json:"id"`
			Node          int    `json:"node"`
			Size          uint64 `json:"size"`
			RequestedSize uint64 `json:"requested-size"`
		} `json:"data"`
	}
	// total is the boot backends' size plus what the memory devices are
	// asked for, and what they have plugged.
	total := func() (asked, plugged uint64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		memdevs, err := mon.QueryMemdev(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range memdevs {
			if strings.HasPrefix(m.ID, "qnuma-ram") {
				asked += m.Size
			}
		}
		plugged = asked
		var devs []dev
		if err := mon.Execute(ctx, "query-memory-devices", nil, &devs); err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			if d.Type != "virtio-mem" || d.Data.Node != 0 {
				t.Errorf("memory device %+v: want virtio-mem on guest node 0", d)
			}
			asked += d.Data.RequestedSize
			plugged += d.Data.Size
		}
		return asked, plugged
	}
	memory := func(args ...string) (int, string) {
		t.Helper()
		out, err := runQnuma(bin, append(append([]string{"memory"}, args...), "--state-dir", state)...)
		return exitCodeOf(err), out
	}
	// Negative control: 256 MiB before.
	if a, _ := total(); a != 256*memobj.MiB {
		t.Fatalf("at start: %s asked, want 256M", memobj.FormatSize(a))
	}

	code, out := memory("m", "384M", "--wait", "0", "--json")
	if code != 0 {
		t.Fatalf("memory m 384M: exit %d\n%s", code, out)
	}
	if a, pl := total(); a != 384*memobj.MiB || pl != 256*memobj.MiB {
		t.Errorf("after memory m 384M: %s asked, %s plugged; want 384M asked, and the guestless VM's 256M plugged", memobj.FormatSize(a), memobj.FormatSize(pl))
	}
	var rep memoryJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.RequestedBytes != 384*memobj.MiB || rep.PluggedBytes != 256*memobj.MiB || len(rep.Devices) != 1 {
		t.Errorf("report: %v\n%s", err, out)
	}
	l, _ := ledger.Open(state)
	if e, _, err := l.Get(context.Background(), "m"); err != nil || len(e.MemorySlots) != 1 || e.MemorySlots[0].RequestedBytes != 128*memobj.MiB {
		t.Errorf("ledger after the growth: %+v %v", e.MemorySlots, err)
	}

	if code, out := memory("m", "640M"); code != 2 || !strings.Contains(out, "at most 512M") {
		t.Errorf("memory m 640M: exit %d\n%s\nwant exit 2", code, out)
	}
	if a, _ := total(); a != 384*memobj.MiB {
		t.Errorf("refused growth changed the VM: %s asked", memobj.FormatSize(a))
	}

	if code, out := memory("m", "256M", "--wait", "0"); code != 0 {
		t.Fatalf("memory m 256M: exit %d\n%s", code, out)
	}
	if a, _ := total(); a != 256*memobj.MiB {
		t.Errorf("after shrinking back: %s asked, want 256M", memobj.FormatSize(a))
	}
}
