package affinity

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"
)

// Memory policy modes and flags of mbind(2) and set_mempolicy(2), as in
// <linux/mempolicy.h>.
const (
	MPOLDefault       = 0
	MPOLPreferred     = 1
	MPOLBind          = 2
	MPOLInterleave    = 3
	MPOLPreferredMany = 5
)

// Pages moves memory between nodes: the calls qnuma move makes on a
// running qemu. Each works on another process (same user, or root) except
// Mbind, which sets the policy of a range of the caller's own mappings
// (for a shared mapping of a memfd that is the memfd's own policy, which
// every process mapping it follows).
type Pages interface {
	// MovePages moves the pages at addrs of process pid to nodes[i]
	// (move_pages(2)), filling status[i] with the node each page is on
	// after it, or a negative errno (-ENOENT: not present, -EBUSY, ...).
	MovePages(pid int, addrs []uintptr, nodes []int, status []int) error
	// PageNodes fills status[i] with the node the page at addrs[i] of
	// process pid is on, or a negative errno (-ENOENT: not present).
	PageNodes(pid int, addrs []uintptr, status []int) error
	// MigratePages moves every page of pid on a node of from to the node
	// of to at the same position (migrate_pages(2)) and returns how many
	// pages could not be moved.
	MigratePages(pid int, from, to cpuset.CPUSet) (int, error)
	// Mbind sets the policy of [addr, addr+length) of the caller.
	Mbind(addr uintptr, length uintptr, mode int, nodes cpuset.CPUSet) error
}

var _ Pages = Real{}

// movePagesBatch bounds one move_pages call, so that a move of a large
// guest can be paced and interrupted between calls.
const movePagesBatch = 1 << 14

// MovePages calls move_pages(2) in batches of movePagesBatch pages.
func (Real) MovePages(pid int, addrs []uintptr, nodes []int, status []int) error {
	if len(nodes) != len(addrs) || len(status) != len(addrs) {
		return fmt.Errorf("move_pages pid %d: %d addresses, %d nodes, %d status slots", pid, len(addrs), len(nodes), len(status))
	}
	return movePages(pid, addrs, nodes, status)
}

// PageNodes calls move_pages(2) without nodes, which only reports.
func (Real) PageNodes(pid int, addrs []uintptr, status []int) error {
	if len(status) != len(addrs) {
		return fmt.Errorf("move_pages pid %d: %d addresses, %d status slots", pid, len(addrs), len(status))
	}
	return movePages(pid, addrs, nil, status)
}

func movePages(pid int, addrs []uintptr, nodes []int, status []int) error {
	var n32 []int32
	s32 := make([]int32, len(addrs))
	if nodes != nil {
		n32 = make([]int32, len(nodes))
		for i, n := range nodes {
			n32[i] = int32(n)
		}
	}
	for off := 0; off < len(addrs); off += movePagesBatch {
		end := min(off+movePagesBatch, len(addrs))
		var np uintptr
		if n32 != nil {
			np = uintptr(unsafe.Pointer(&n32[off]))
		}
		err := retryEINTR(func() error {
			_, _, e := unix.Syscall6(unix.SYS_MOVE_PAGES, uintptr(pid), uintptr(end-off),
				uintptr(unsafe.Pointer(&addrs[off])), np, uintptr(unsafe.Pointer(&s32[off])), uintptr(unix.MPOL_MF_MOVE))
			if e != 0 {
				return e
			}
			return nil
		})
		if err != nil {
			return os.NewSyscallError("move_pages", err)
		}
	}
	runtime.KeepAlive(addrs)
	runtime.KeepAlive(n32)
	for i := range s32 {
		status[i] = int(s32[i])
	}
	return nil
}

// MigratePages calls migrate_pages(2).
func (Real) MigratePages(pid int, from, to cpuset.CPUSet) (int, error) {
	if from.IsEmpty() || to.IsEmpty() {
		return 0, fmt.Errorf("migrate_pages pid %d: empty node set (from %q, to %q)", pid, from, to)
	}
	// Both masks as long as the larger, as the kernel reads maxnode bits of each.
	words := max(lastWord(from), lastWord(to)) + 1
	f, t := padMask(nodeMask(from), words), padMask(nodeMask(to), words)
	var left uintptr
	err := retryEINTR(func() error {
		r, _, e := unix.Syscall6(unix.SYS_MIGRATE_PAGES, uintptr(pid), uintptr(words*64+1),
			uintptr(unsafe.Pointer(&f[0])), uintptr(unsafe.Pointer(&t[0])), 0, 0)
		if e != 0 {
			return e
		}
		left = r
		return nil
	})
	runtime.KeepAlive(f)
	runtime.KeepAlive(t)
	return int(left), os.NewSyscallError("migrate_pages", err)
}

// Mbind calls mbind(2) without moving pages: the caller moves them.
func (Real) Mbind(addr uintptr, length uintptr, mode int, nodes cpuset.CPUSet) error {
	mask := nodeMask(nodes)
	var ptr unsafe.Pointer
	if len(mask) > 0 {
		ptr = unsafe.Pointer(&mask[0])
	}
	err := retryEINTR(func() error {
		_, _, e := unix.Syscall6(unix.SYS_MBIND, addr, length, uintptr(mode), uintptr(ptr), uintptr(len(mask)*64+1), 0)
		if e != 0 {
			return e
		}
		return nil
	})
	runtime.KeepAlive(mask)
	return os.NewSyscallError("mbind", err)
}

func lastWord(s cpuset.CPUSet) int {
	l := s.List()
	return l[len(l)-1] / 64
}

func padMask(m []uint64, words int) []uint64 {
	for len(m) < words {
		m = append(m, 0)
	}
	return m
}

// Addr is the address of b's first byte, for the calls above on the
// caller's own mappings.
func Addr(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
