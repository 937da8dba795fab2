package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/test/vm"
)

// Issue 15's guest proof with DIMMs: the tiny guest, booted with
// --memory-hotplug dimm and room for 256 MiB more, sees node 0's memory
// grow by the 128 MiB DIMM qnuma memory adds (its ACPI memory hotplug
// onlines it movable), and shrinking back removes it: the guest ejects
// the DIMM (DEVICE_DELETED), qnuma frees its backend, and node 0 has
// what it started with (the control: before, it had none of it).
func TestMemoryDIMMInTinyGuest(t *testing.T) {
	qemutest.Require(t)
	a := vm.Require(t)
	kernel, tiny, err := vm.TinyGuest(context.Background())
	if err != nil {
		t.Skip("tiny guest unavailable: ", err)
	}
	initrd := growInitrd(t, a, tiny)
	bin := buildQnuma(t)
	state := t.TempDir()
	guest := []string{"-kernel", kernel, "-initrd", initrd,
		"-append", growAppend("qnuma.grow=0:122880 qnuma.shrink=1 qnuma.wait=300"),
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio"}
	args := append([]string{"run", "-v", "--state-dir", state, "--name", "td", "--timeout", "8m",
		"--vcpus", "1", "--memory", "256M", "--max-memory", "512M", "--memory-hotplug", "dimm", "--",
		qemutest.Binary, "-accel", "tcg,thread=multi", "-cpu", "max"}, guest...)
	p := startQnuma(t, []string{bin}, args...)
	defer func() {
		if t.Failed() {
			t.Logf("qnuma run stderr:\n%s\nstdout tail:\n%s", p.stderr.String(), tailStr(p.stdout.String(), 3000))
		}
	}()
	waitStdout(t, p, "qnuma-guest: ready", 5*time.Minute)

	out, err := runQnuma(bin, "memory", "td", "384M", "--state-dir", state)
	if err != nil || !strings.Contains(out, "1 DIMMs of 128M: qnuma-dimm0-1") {
		t.Fatalf("memory td 384M: %v\n%s", err, out)
	}
	t.Log(out)
	waitStdout(t, p, "qnuma-guest: grown", 5*time.Minute)

	out, err = runQnuma(bin, "memory", "td", "256M", "--wait", "3m", "--state-dir", state)
	if err != nil || !strings.Contains(out, "0 DIMMs of 128M: none") {
		t.Errorf("memory td 256M: %v\n%s\nwant the guest to have released the DIMM", err, out)
	}
	t.Log(out)
	mon := vmQMP(t, state, "td")
	devs, memdevs := queryDIMMs(t, mon)
	if len(devs) != 0 || len(memdevs) != 1 {
		t.Errorf("after the shrink: memory devices %+v, backends %+v; want none, and only the boot RAM", devs, memdevs)
	}
	if l, err := ledger.Open(state); err == nil {
		if e, _, err := l.Get(context.Background(), "td"); err != nil || e.MemorySlots[0].RequestedBytes != 0 {
			t.Errorf("ledger after the shrink: %+v %v; want nothing asked", e.MemorySlots, err)
		}
	}
	mon.Close()
	waitStdout(t, p, "qnuma-guest: done", 5*time.Minute)
	if code := p.wait(t); code != 0 {
		t.Errorf("qnuma run exited %d, want 0 from the guest's power-off", code)
	}
	console := p.stdout.String()
	mem := map[string]int{}
	for _, m := range guestNodeLine.FindAllStringSubmatch(console, -1) {
		mem[m[1]], _ = strconv.Atoi(m[4])
	}
	if grew := mem["after"] - mem["before"]; grew < 120*1024 || grew > 136*1024 {
		t.Errorf("guest node 0 MemTotal grew by %d kB (from %d), want about %s\n%s", grew, mem["before"], memobj.FormatSize(128*memobj.MiB), console)
	}
	if mem["shrunk"] == 0 || mem["shrunk"]-mem["before"] > 8*1024 {
		t.Errorf("after shrinking back: guest node 0 MemTotal %d kB (%d at start); want the start's\n%s", mem["shrunk"], mem["before"], console)
	}
}
