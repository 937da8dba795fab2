// Package affinitytest holds a recording affinity.Sys for tests; it is kept
// out of the affinity package so that it is never compiled into qnuma.
package affinitytest

import (
	"fmt"
	"sync"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
)

// Call is one call recorded by Fake.
type Call struct {
	Op   string // "set_mempolicy", "sched_setaffinity" or "sched_getaffinity"
	Mode int    // set_mempolicy's mode
	TID  int
	Set  cpuset.CPUSet // nodes or CPUs
}

// Fake is a Sys that records calls and can refuse them, for tests.
type Fake struct {
	mu    sync.Mutex
	calls []Call
	// Fail, when set, decides each call's error (nil: succeed).
	Fail func(c Call) error
	// Affinity answers SchedGetaffinity (and records SchedSetaffinity).
	Affinity map[int]cpuset.CPUSet
}

var _ affinity.Sys = (*Fake)(nil)

// Calls returns a copy of the calls so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

func (f *Fake) record(c Call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	if f.Fail != nil {
		return f.Fail(c)
	}
	return nil
}

func (f *Fake) SetMempolicy(mode int, nodes cpuset.CPUSet) error {
	return f.record(Call{Op: "set_mempolicy", Mode: mode, Set: nodes})
}

func (f *Fake) SchedSetaffinity(tid int, cpus cpuset.CPUSet) error {
	if err := f.record(Call{Op: "sched_setaffinity", TID: tid, Set: cpus}); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Affinity == nil {
		f.Affinity = map[int]cpuset.CPUSet{}
	}
	f.Affinity[tid] = cpus
	return nil
}

func (f *Fake) SchedGetaffinity(tid int) (cpuset.CPUSet, error) {
	if err := f.record(Call{Op: "sched_getaffinity", TID: tid}); err != nil {
		return cpuset.New(), err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.Affinity[tid]
	if !ok {
		return cpuset.New(), fmt.Errorf("sched_getaffinity tid %d: no such thread in fake", tid)
	}
	return s, nil
}
