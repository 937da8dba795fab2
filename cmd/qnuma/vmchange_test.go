package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemutest"
)

// widenChangeWindow makes each of n changes of a VM, once decided, wait
// for the others to have decided too (at most 3 s), before qemu is asked:
// changes that are not serialized then all decide on the same state.
func widenChangeWindow(t *testing.T, n int) {
	t.Helper()
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	changePlanned = func(string) {
		mu.Lock()
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(3 * time.Second):
		}
	}
	t.Cleanup(func() { changePlanned = nil })
}

// concurrently runs each fn at once and returns their errors.
func concurrently(fns ...func() error) []error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errs
}

// Two qnuma vcpus of one VM at once, each deciding while the other could:
// serialized by the VM's change lock, the second sees the first's vCPU and
// has nothing to do; qemu has the one new vCPU, in slot 1, and the ledger
// says so. Without the lock both plug slot 1, and the second fails (qemu:
// Duplicate ID).
func TestVCPUsConcurrent(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := []string{"run", "-v", "--state-dir", state, "--name", "c", "--overcommit", "--vcpus", "1", "--max-vcpus", "3", "--memory", "64M", "--"}
	p := startQnuma(t, []string{bin}, append(args, bareQEMU...)...)
	p.readPins(t, 1)
	mon := vmQMP(t, state, "c")
	widenChangeWindow(t, 2)
	var out [2]bytes.Buffer
	grow := func(i int) func() error {
		return func() error {
			c := &VCPUsCmd{VM: "c", Count: 2, Timeout: 5 * time.Second, StateDir: state}
			return c.run(context.Background(), &out[i], affinity.Real{})
		}
	}
	for i, err := range concurrently(grow(0), grow(1)) {
		if err != nil {
			t.Errorf("vcpus c 2, #%d: %v\n%s", i, err, out[i].String())
		}
	}
	cpus := queryCPUs(t, mon)
	if len(cpus) != 2 {
		t.Errorf("qemu has %d vCPUs, want 2: %+v", len(cpus), cpus)
	}
	l, _ := ledger.Open(state)
	e, _, err := l.Get(context.Background(), "c")
	if err != nil || len(e.VCPUSlots) != 3 || !e.VCPUSlots[1].Present || e.VCPUSlots[2].Present || len(e.VCPUHomeNodes) != 2 {
		t.Errorf("ledger: %+v %v; want slot 1 present, slot 2 not", e.VCPUSlots, err)
	}
}

// Two qnuma memory of one DIMM VM at once, each deciding while the other
// could: serialized, the second sees the first's DIMM and has nothing to
// add; qemu has one 128 MiB DIMM and the ledger 128 MiB. Without the lock
// both add qnuma-dimm0-1 (the second fails, or, numbered apart, the VM
// gets 256 MiB for 384M asked).
func TestMemoryConcurrent(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := []string{"run", "-v", "--state-dir", state, "--name", "c", "--vcpus", "1", "--memory", "256M", "--max-memory", "512M", "--memory-hotplug", "dimm", "--"}
	p := startQnuma(t, []string{bin}, append(args, bareQEMU...)...)
	p.readPins(t, 1)
	mon := vmQMP(t, state, "c")
	widenChangeWindow(t, 2)
	var out [2]bytes.Buffer
	grow := func(i int) func() error {
		return func() error {
			c := &MemoryCmd{VM: "c", Size: "384M", Node: -1, Wait: time.Second, StateDir: state}
			return c.run(context.Background(), &out[i])
		}
	}
	for i, err := range concurrently(grow(0), grow(1)) {
		if err != nil {
			t.Errorf("memory c 384M, #%d: %v\n%s", i, err, out[i].String())
		}
	}
	devs, _ := queryDIMMs(t, mon)
	if len(devs) != 1 || devs[0].Data.Size != 128*memobj.MiB {
		t.Errorf("qemu's memory devices %+v, want one DIMM of 128M", devs)
	}
	l, _ := ledger.Open(state)
	if e, _, err := l.Get(context.Background(), "c"); err != nil || len(e.MemorySlots) != 1 || e.MemorySlots[0].RequestedBytes != 128*memobj.MiB {
		t.Errorf("ledger: %+v %v; want 128M asked", e.MemorySlots, err)
	}
}
