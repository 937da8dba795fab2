// Package affinity binds memory and pins threads: a small Sys interface
// over set_mempolicy and sched_{set,get}affinity, its real implementation,
// a recording fake for tests, and readers for a process's threads in /proc.
package affinity

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"
)

// Sys is the kernel as the launcher uses it. SetMempolicy applies to the
// calling OS thread only: callers lock the goroutine to its thread first.
type Sys interface {
	SetMempolicy(mode int, nodes cpuset.CPUSet) error
	SchedSetaffinity(tid int, cpus cpuset.CPUSet) error
	SchedGetaffinity(tid int) (cpuset.CPUSet, error)
}

// Real is Sys over the Linux system calls.
type Real struct{}

var _ Sys = Real{}

// mpolDefault is MPOL_DEFAULT, which takes no node mask.
const mpolDefault = 0

// SetMempolicy calls set_mempolicy(2) for the calling thread.
func (Real) SetMempolicy(mode int, nodes cpuset.CPUSet) error {
	if mode == mpolDefault && nodes.Size() > 0 {
		return fmt.Errorf("set_mempolicy: mode default takes no nodes, got %s", nodes)
	}
	mask := nodeMask(nodes)
	var ptr unsafe.Pointer
	if len(mask) > 0 {
		ptr = unsafe.Pointer(&mask[0])
	}
	// maxnode counts bits and the kernel reads maxnode-1 of them, hence +1.
	// x/sys's SetMemPolicyDynamic passes a byte count here, which would drop
	// high nodes, so the call is made directly.
	maxnode := uintptr(len(mask)*64 + 1)
	err := retryEINTR(func() error {
		_, _, e := unix.Syscall(unix.SYS_SET_MEMPOLICY, uintptr(mode), uintptr(ptr), maxnode)
		if e != 0 {
			return e
		}
		return nil
	})
	runtime.KeepAlive(mask)
	return os.NewSyscallError("set_mempolicy", err)
}

// SchedSetaffinity calls sched_setaffinity(2) for one thread (0: the caller).
func (Real) SchedSetaffinity(tid int, cpus cpuset.CPUSet) error {
	if cpus.Size() == 0 {
		return fmt.Errorf("sched_setaffinity tid %d: empty cpu set", tid)
	}
	list := cpus.List()
	set := unix.NewCPUSet(list[len(list)-1] + 1)
	for _, c := range list {
		set.Set(c)
	}
	err := retryEINTR(func() error { return unix.SchedSetaffinityDynamic(tid, set) })
	return os.NewSyscallError("sched_setaffinity", err)
}

// SchedGetaffinity calls sched_getaffinity(2) for one thread (0: the caller),
// growing the mask until the kernel's fits.
func (Real) SchedGetaffinity(tid int) (cpuset.CPUSet, error) {
	for n := 1024; ; n *= 2 {
		set := unix.NewCPUSet(n)
		err := retryEINTR(func() error { return unix.SchedGetaffinityDynamic(tid, set) })
		if errors.Is(err, unix.EINVAL) && n < 1<<20 {
			continue // the kernel's mask is larger than ours
		}
		if err != nil {
			return cpuset.New(), os.NewSyscallError("sched_getaffinity", err)
		}
		var cpus []int
		for c := 0; c < n; c++ {
			if set.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
		return cpuset.New(cpus...), nil
	}
}

// nodeMask is the kernel's unsigned long bitmap for a node set.
func nodeMask(nodes cpuset.CPUSet) []uint64 {
	list := nodes.List()
	if len(list) == 0 {
		return nil
	}
	mask := make([]uint64, list[len(list)-1]/64+1)
	for _, n := range list {
		mask[n/64] |= 1 << (uint(n) % 64)
	}
	return mask
}

func retryEINTR(f func() error) error {
	for {
		err := f()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
