package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/launcher"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/qmp"
	"github.com/qnuma/qnuma/topology"
	"github.com/qnuma/qnuma/topology/topotest"
)

// vcpuLayout is where qemu has each vCPU: cpu-index to guest node
// (query-cpus-fast's node-id, -1 without one).
func vcpuLayout(cpus []qmp.CPU) map[int]int {
	out := map[int]int{}
	for _, c := range cpus {
		n := -1
		if c.Props.NodeID != nil {
			n = *c.Props.NodeID
		}
		out[c.CPUIndex] = n
	}
	return out
}

// checkVCPULayout says how qemu's vCPUs differ from want (cpu-index: guest
// node) and from where their threads should be allowed (cpu-index: host
// CPUs); nil when they match.
func checkVCPULayout(t *testing.T, pid int, cpus []qmp.CPU, want map[int]int, pins map[int]string) error {
	t.Helper()
	if got := vcpuLayout(cpus); !maps.Equal(got, want) {
		return fmt.Errorf("vCPUs (cpu-index: guest node) %v, want %v", got, want)
	}
	for _, c := range cpus {
		if got := cpusAllowed(t, pid, c.ThreadID); got != pins[c.CPUIndex] {
			return fmt.Errorf("vCPU %d (tid %d) allowed on cpus %s, want %s", c.CPUIndex, c.ThreadID, got, pins[c.CPUIndex])
		}
	}
	return nil
}

// Issue 15, the vNUMA layout kept from the start: a guestless VM of two
// guest nodes with --vcpus 2 --max-vcpus 4 (planned on the two-node
// snapshot, each guest node's vCPUs then put on one CPU of this host: guest
// node 0's on CPU 0, guest node 1's on CPU 1, their memory on node 0)
// starts with one vCPU in each guest node, slot 0 and slot 2 (cold-plugged
// by -device), each thread pinned to its own guest node's CPU by qnuma's
// launcher; qnuma vcpus grows it one guest node after the other (slot 1 in
// guest node 0, then slot 3 in guest node 1), each new thread pinned at
// once, and its shrink takes the last added first. The old layout (vCPUs
// 0-1, both in guest node 0) is the negative control: the same check
// against it fails.
func TestVCPUsKeepGuestNodes(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	snap, err := topology.Read(topotest.Unpack(t, intel))
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Make(snap, plan.Spec{VCPUs: 2, MaxVCPUs: 4, MemoryBytes: 128 << 20, HostNodes: []int{0, 1}, Dedicated: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.GuestNodes) != 2 {
		t.Fatalf("guest nodes %+v: want two", p.GuestNodes)
	}
	// This host: one node, CPUs 0-1.
	for i := range p.GuestNodes {
		p.GuestNodes[i].HostNodes = []int{0}
	}
	onCPU := func(vs []plan.VCPU) {
		for i := range vs {
			vs[i].HostCPUs = cpuset.New(vs[i].GuestNode)
		}
	}
	onCPU(p.VCPUs)
	onCPU(p.HotplugVCPUs)
	p.HostNodes, p.EmulatorCPUs = []int{0}, cpuset.New(0, 1)
	p.Mempolicy.Nodes = cpuset.New(0)
	v, err := qemuversion.ProbeVersion(ctx, qemutest.Binary)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := p.Args(plan.RenderOptions{QEMU: v})
	if err != nil {
		t.Fatal(err)
	}
	user, err := plan.ParseQEMUArgv(bareQEMU)
	if err != nil {
		t.Fatal(err)
	}
	argv := user.Final(rendered)
	if line := strings.Join(argv, " "); !strings.Contains(line, "-smp 1,sockets=2,cores=2,threads=1,maxcpus=4") ||
		!strings.Contains(line, "-device qemu64-x86_64-cpu,id=qnuma-vcpu2,socket-id=1,core-id=0,thread-id=0") {
		t.Fatalf("argv %s: want -smp 1 of maxcpus=4 and slot 2 cold-plugged", line)
	}

	// Placed and started as qnuma run does: the ledger entry, the launch,
	// the control socket.
	state := t.TempDir()
	l, err := ledger.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.PlaceHeld(ctx, "g", func([]plan.Placed) (*plan.Plan, error) { return p, nil })
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	cfg := launcher.Config{Argv: argv, Name: "g", Placement: p.Placement(), QMPTimeout: 30 * time.Second, Signals: sigs}
	cfg.Hooks.OnStarted = func(pid int, _ string) error { return r.Commit(pid) }
	serveControl(&cfg, l.Dir(), "g")
	type launched struct {
		res launcher.Result
		err error
	}
	done := make(chan launched, 1)
	go func() {
		res, err := launcher.Launch(context.Background(), cfg)
		done <- launched{res, err}
	}()
	t.Cleanup(func() {
		sigs <- syscall.SIGTERM
		select {
		case d := <-done:
			if d.err != nil {
				t.Errorf("launch: %v", d.err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("qemu did not stop on SIGTERM")
		}
		r.Release()
	})
	// Recorded once qemu has started (OnStarted), served once it runs.
	for {
		if _, ok, err := l.Get(ctx, "g"); err != nil || ok {
			break
		}
		select {
		case d := <-done:
			done <- d // for the cleanup
			t.Fatalf("launch ended early: %+v %v", d.res, d.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	mon := vmQMP(t, state, "g")
	e, _, err := l.Get(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	pid := e.QEMU.PID

	// At start: slots 0 and 2, one per guest node, each on its CPU.
	cpus := queryCPUs(t, mon)
	pins := map[int]string{0: "0", 1: "0", 2: "1", 3: "1"}
	if err := checkVCPULayout(t, pid, cpus, map[int]int{0: 0, 2: 1}, pins); err != nil {
		t.Errorf("at start: %v", err)
	}
	// Negative control: the old layout (vCPUs 0-1 in guest node 0).
	if err := checkVCPULayout(t, pid, cpus, map[int]int{0: 0, 1: 0}, pins); err == nil {
		t.Errorf("at start: the old layout's check passes too: %v", vcpuLayout(cpus))
	}
	if got := []int{e.VCPUSlots[0].ID, e.VCPUSlots[1].ID, e.VCPUSlots[2].ID, e.VCPUSlots[3].ID}; !slices.Equal(got, []int{0, 2, 1, 3}) ||
		!e.VCPUSlots[0].Present || !e.VCPUSlots[1].Present || e.VCPUSlots[2].Present || e.VCPUSlots[3].Present {
		t.Errorf("ledger slots at start %+v: want 0 and 2 present, then 1 and 3 in that order", e.VCPUSlots)
	}

	grow := func(n int) string {
		t.Helper()
		var out bytes.Buffer
		c := VCPUsCmd{VM: "g", Count: n, Timeout: 5 * time.Second, StateDir: state}
		if err := c.run(ctx, &out, affinity.Real{}); err != nil {
			t.Fatalf("vcpus g %d: %v\n%s", n, err, out.String())
		}
		return out.String()
	}
	// One more: guest node 0's next slot.
	out := grow(3)
	if !strings.Contains(out, "vCPU 1 added in guest node 0") || strings.Contains(out, "vCPU 3") {
		t.Errorf("vcpus g 3:\n%s\nwant vCPU 1 added in guest node 0 alone", out)
	}
	if err := checkVCPULayout(t, pid, queryCPUs(t, mon), map[int]int{0: 0, 1: 0, 2: 1}, pins); err != nil {
		t.Errorf("after vcpus g 3: %v", err)
	}
	// And guest node 1's.
	out = grow(4)
	if !strings.Contains(out, "vCPU 3 added in guest node 1") {
		t.Errorf("vcpus g 4:\n%s\nwant vCPU 3 added in guest node 1", out)
	}
	cpus = queryCPUs(t, mon)
	if err := checkVCPULayout(t, pid, cpus, map[int]int{0: 0, 1: 0, 2: 1, 3: 1}, pins); err != nil {
		t.Errorf("after vcpus g 4: %v", err)
	}
	e, _, err = l.Get(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range e.VCPUSlots {
		if !s.Present {
			t.Errorf("ledger after vcpus g 4: slot %d not present: %+v", s.ID, e.VCPUSlots)
		}
	}
	if want := [][]int{{0}, {0}, {0}, {0}}; !slices.EqualFunc(e.VCPUHomeNodes, want, slices.Equal) {
		t.Errorf("ledger vCPU homes %v, want %v", e.VCPUHomeNodes, want)
	}

	// The shrink asks for the last added first (vCPU 3); a guestless VM
	// cannot release a vCPU (QEMU's legacy CPU hotplug until an OS takes
	// up ACPI's), so it stops there with nothing removed and the ledger
	// unchanged.
	var sout bytes.Buffer
	err = (&VCPUsCmd{VM: "g", Count: 2, Timeout: 2 * time.Second, StateDir: state}).run(ctx, &sout, affinity.Real{})
	if err == nil || !strings.Contains(err.Error(), "remove vCPU 3 from vm g") {
		t.Errorf("vcpus g 2 on a guestless VM: %v\n%s\nwant it to ask for vCPU 3 first, and fail", err, sout.String())
	}
	if n := len(queryCPUs(t, mon)); n != 4 {
		t.Errorf("after the refused shrink: %d vCPUs, want 4", n)
	}
}
