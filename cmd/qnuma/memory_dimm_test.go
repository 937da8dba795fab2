package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/qmp"
)

func TestDIMMNumber(t *testing.T) {
	for _, tt := range []struct {
		id   string
		g    int
		dev  bool
		want int
	}{
		{"qnuma-dimm0-1", 0, true, 1},
		{"qnuma-dimm1-12", 1, true, 12},
		{"qnuma-dimm1-12", 0, true, 0},
		{"qnuma-dimmmem0-3", 0, false, 3},
		{"qnuma-dimmmem0-3", 0, true, 0},
		{"qnuma-dimm0-0", 0, true, 0},
		{"qnuma-dimm0-+1", 0, true, 0},
		{"qnuma-dimm0-01", 0, true, 0},
		{"qnuma-vmem0", 0, true, 0},
		{"dimm", 0, true, 0},
	} {
		if got := dimmNumber(tt.id, tt.g, tt.dev); got != tt.want {
			t.Errorf("dimmNumber(%q, %d, %v) = %d, want %d", tt.id, tt.g, tt.dev, got, tt.want)
		}
	}
}

// dimmDev is a DIMM in query-memory-devices.
type dimmDev struct {
	Type string `json:"type"`
	Data struct {
		ID     string `json:"id"`
		Node   int    `json:"node"`
		Size   uint64 `json:"size"`
		Memdev string `json:"memdev"`
	} `json:"data"`
}

func queryDIMMs(t *testing.T, mon *qmp.Client) (devs []dimmDev, memdevs map[string]memdevInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mon.Execute(ctx, "query-memory-devices", nil, &devs); err != nil {
		t.Fatal(err)
	}
	var ms []memdevInfo
	if err := mon.Execute(ctx, "query-memdev", nil, &ms); err != nil {
		t.Fatal(err)
	}
	memdevs = map[string]memdevInfo{}
	for _, m := range ms {
		memdevs[m.ID] = m
	}
	return devs, memdevs
}

// Issue 15's proof with DIMMs (--memory-hotplug dimm, forced: this QEMU
// has virtio-mem): a guestless 256 MiB VM with --max-memory 512M starts
// with -m slots=,maxmem= and no memory device; qnuma memory 384M adds a
// 128 MiB DIMM in guest node 0 whose backend is bound to that guest
// node's host node, and the memory devices and boot RAM add up to 384
// MiB; beyond the room is refused. Shrinking needs the guest to release
// the DIMM: a paused VM is refused at once (exit 2), a running one without
// a guest OS fails after --wait, saying why, with the DIMM still there.
func TestMemoryDIMMLive(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := []string{"run", "-v", "--state-dir", state, "--name", "d", "--vcpus", "1", "--memory", "256M", "--max-memory", "512M", "--memory-hotplug", "dimm", "--"}
	p := startQnuma(t, []string{bin}, append(args, bareQEMU...)...)
	pn := p.readPins(t, 1)
	mon := vmQMP(t, state, "d")
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pn.qemuPID) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if line := strings.ReplaceAll(string(cmdline), "\x00", " "); !strings.Contains(line, "-m 256M,slots=2,maxmem=512M") || strings.Contains(line, "virtio-mem") || strings.Contains(line, "qnuma-hotmem") {
		t.Errorf("qemu's command line %q: want -m 256M,slots=2,maxmem=512M and no virtio-mem", line)
	}
	l, _ := ledger.Open(state)
	e, _, err := l.Get(context.Background(), "d")
	if err != nil || len(e.MemorySlots) != 1 || e.MemorySlots[0].DIMMBytes != 128*memobj.MiB || len(e.GuestNodes) != 1 {
		t.Fatalf("ledger at start: %+v %v; want one DIMM slot of 128M", e.MemorySlots, err)
	}
	home := e.GuestNodes[0].HostNodes
	total := func() (uint64, []dimmDev) {
		t.Helper()
		devs, memdevs := queryDIMMs(t, mon)
		sum := memdevs["qnuma-ram0"].Size
		for _, d := range devs {
			sum += d.Data.Size
			m, ok := memdevs[strings.TrimPrefix(d.Data.Memdev, "/objects/")]
			if d.Type != "dimm" || d.Data.Node != 0 || !ok || !equalInts(m.HostNodes, home) || m.Policy != "bind" {
				t.Errorf("memory device %+v, backend %+v: want a DIMM on guest node 0 whose backend is bound to host nodes %v", d, m, home)
			}
		}
		return sum, devs
	}
	memory := func(args ...string) (int, string) {
		t.Helper()
		out, err := runQnuma(bin, append(append([]string{"memory"}, args...), "--state-dir", state)...)
		return exitCodeOf(err), out
	}
	// Negative control: no DIMM, 256 MiB.
	if sum, devs := total(); sum != 256*memobj.MiB || len(devs) != 0 {
		t.Fatalf("at start: %s in %d devices, want 256M and none", memobj.FormatSize(sum), len(devs))
	}

	code, out := memory("d", "384M", "--json")
	if code != 0 {
		t.Fatalf("memory d 384M: exit %d\n%s", code, out)
	}
	if sum, devs := total(); sum != 384*memobj.MiB || len(devs) != 1 || devs[0].Data.ID != "qnuma-dimm0-1" {
		t.Errorf("after memory d 384M: %s in %+v; want 384M, one DIMM qnuma-dimm0-1", memobj.FormatSize(sum), devs)
	}
	var rep memoryJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.RequestedBytes != 384*memobj.MiB || rep.PluggedBytes != 384*memobj.MiB ||
		len(rep.Devices) != 1 || len(rep.Devices[0].DIMMs) != 1 {
		t.Errorf("report: %v\n%s", err, out)
	}
	if e, _, err := l.Get(context.Background(), "d"); err != nil || e.MemorySlots[0].RequestedBytes != 128*memobj.MiB {
		t.Errorf("ledger after the growth: %+v %v", e.MemorySlots, err)
	}

	if code, out := memory("d", "640M"); code != 2 || !strings.Contains(out, "at most 512M") {
		t.Errorf("memory d 640M: exit %d\n%s\nwant exit 2", code, out)
	}
	if code, out := memory("d", "448M"); code != 2 || !strings.Contains(out, "multiple of 128M") {
		t.Errorf("memory d 448M: exit %d\n%s\nwant exit 2, whole DIMMs", code, out)
	}
	if sum, _ := total(); sum != 384*memobj.MiB {
		t.Errorf("refused growth changed the VM: %s", memobj.FormatSize(sum))
	}
	code, out = memory("d", "512M", "--node", "0")
	t.Logf("memory d 512M --node 0:\n%s", out)
	if sum, devs := total(); code != 0 || sum != 512*memobj.MiB || len(devs) != 2 || devs[1].Data.ID != "qnuma-dimm0-2" {
		t.Errorf("memory d 512M --node 0: exit %d, %s in %+v\n%s", code, memobj.FormatSize(sum), devs, out)
	}

	if code, out := memory("d", "384M", "--wait", "0"); code != 2 || !strings.Contains(out, "give --wait DURATION") {
		t.Errorf("memory d 384M --wait 0: exit %d\n%s\nwant exit 2", code, out)
	}
	// Paused: refused at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mon.Execute(ctx, "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
	if code, out := memory("d", "384M"); code != 2 || !strings.Contains(out, "not running") {
		t.Errorf("memory d 384M, paused: exit %d\n%s\nwant exit 2", code, out)
	}
	if err := mon.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	// Running without a guest OS: nobody releases the DIMM.
	code, out = memory("d", "384M", "--wait", "2s")
	if code != 1 || !strings.Contains(out, "did not release the DIMM within 2s") || !strings.Contains(out, "remove DIMM qnuma-dimm0-2") {
		t.Errorf("memory d 384M, guestless: exit %d\n%s\nwant exit 1, the last DIMM not released", code, out)
	}
	if sum, devs := total(); sum != 512*memobj.MiB || len(devs) != 2 {
		t.Errorf("after the unreleased shrink: %s in %d DIMMs, want both still there", memobj.FormatSize(sum), len(devs))
	}
	if e, _, err := l.Get(context.Background(), "d"); err != nil || e.MemorySlots[0].RequestedBytes != 256*memobj.MiB {
		t.Errorf("ledger after the unreleased shrink: %+v %v; want 256M still", e.MemorySlots, err)
	}
}

// --memory-hotplug auto is virtio-mem where the QEMU has it, DIMMs where
// not (said in the plan's reasons); the others are as given.
func TestMemoryHotplugMode(t *testing.T) {
	v := func(major, minor int) qemuversion.Version { return qemuversion.Version{Major: major, Minor: minor} }
	argv := func(args ...string) *plan.QEMUArgv {
		a, err := plan.ParseQEMUArgv(append([]string{"qemu-system-x86_64"}, args...))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tt := range []struct {
		name string
		mode string
		v    qemuversion.Version
		user *plan.QEMUArgv
		want plan.MemoryHotplug
		note string
	}{
		{"auto on 7.2", "auto", v(7, 2), nil, plan.MemoryHotplugVirtioMem, ""},
		{"auto on 5.0", "auto", v(5, 0), nil, plan.MemoryHotplugDIMM, "qemu 5.0.0 has no virtio-mem"},
		{"auto on microvm", "auto", v(7, 2), argv("-machine", "microvm"), plan.MemoryHotplugDIMM, "machine microvm has no PCI bus"},
		{"auto on q35", "auto", v(7, 2), argv("-machine", "q35,accel=tcg"), plan.MemoryHotplugVirtioMem, ""},
		{"forced dimm", "dimm", v(7, 2), nil, plan.MemoryHotplugDIMM, ""},
		{"forced virtio-mem", "virtio-mem", v(5, 0), nil, plan.MemoryHotplugVirtioMem, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, note := memoryHotplug(tt.mode, tt.v, tt.user)
			if got != tt.want || (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) {
				t.Errorf("memoryHotplug = %q %q, want %q %q", got, note, tt.want, tt.note)
			}
		})
	}
}
