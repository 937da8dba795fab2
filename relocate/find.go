// Package relocate moves a running qemu's guest RAM to other host NUMA
// nodes, guest node by guest node, while the guest runs.
//
// qnuma starts guest RAM in memfd backends (memory-backend-memfd), one per
// guest node. A memfd is shmem, and the memory policy of shmem belongs to
// the memfd itself, not to a process's mapping of it: so qnuma maps qemu's
// memfd of a guest node (opened through /proc/PID/fd, which needs the
// rights of ptrace read: qemu's own user, or root) and mbinds that mapping
// to the new nodes. Every later fault of qemu in that memory — the guest
// touching a new page, a refault after reclaim, a THP collapse — follows
// the new policy. Then it moves the pages already there with move_pages(2)
// on qemu's own mapping, in batches, at a bounded rate if asked. Each
// guest node is moved by its own range, so moving one never shuffles
// another (the kernel's cpuset rebind and migrate_pages(2) map node sets
// by position).
//
// What relocate cannot move this way: anonymous guest RAM (memory-backend-
// ram: its policy is qemu's mapping's, which only qemu can change) and
// hugetlb memory (hugetlbfs keeps the policy per mapping too). qemu's own
// memory (its heap, TCG's code buffer) moves with migrate_pages(2); its
// later allocations follow qemu's task policy, which only a cpuset cgroup
// can change from outside (vmcgroup).
package relocate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/procfs"
)

// ErrNotMovable is wrapped when a VM's guest RAM cannot be moved live.
var ErrNotMovable = errors.New("guest ram cannot be moved live")

// memfdPrefix is how /proc shows a memfd: "/memfd:NAME (deleted)".
const memfdPrefix = "/memfd:"

// mapsLimit bounds /proc/PID/maps and numa_maps: a qemu has a few hundred
// mappings (well under 1 MiB); 64 MiB is far past any.
const mapsLimit = 64 << 20

// Backend is one of qemu's guest RAM memfds as /proc shows it.
type Backend struct {
	// FD is qemu's descriptor of it (/proc/PID/fd/FD); Dev and Inode name
	// the memfd.
	FD         int
	Dev, Inode uint64
	// Size is the memfd's size.
	Size uint64
	// Ranges are qemu's mappings of it, by start address.
	Ranges []Range
	// Policy and PolicyNodes are its memory policy as numa_maps shows it
	// (bind, prefer, interleave, ...), from its first mapping.
	Policy      string
	PolicyNodes []int
	// Pages present per host node, over its mappings.
	Pages    map[int]uint64
	PageSize uint64
}

// Range is one mapping of a memfd in qemu: [Start, End) shows the memfd
// from Offset.
type Range struct {
	Start, End, Offset uint64
}

// Find lists the memfds qemu pid maps shared, with where their pages are.
// root is where /proc is ("/" on the host).
func Find(root string, pid int) ([]Backend, error) {
	fdDir := filepath.Join(root, "proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, fmt.Errorf("list fds of qemu pid %d: %w", pid, err)
	}
	var out []Backend
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil || !strings.HasPrefix(link, memfdPrefix) {
			continue // closed meanwhile, or not a memfd
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(fdDir, e.Name()), &st); err != nil {
			continue
		}
		out = append(out, Backend{FD: fd, Dev: uint64(st.Dev), Inode: st.Ino, Size: uint64(st.Size)})
	}
	raw, err := procfs.Read(root, procfs.PID(pid, "maps"), mapsLimit)
	if err != nil {
		return nil, fmt.Errorf("read mappings of qemu pid %d: %w", pid, err)
	}
	maps, err := parseMaps(raw)
	if err != nil {
		return nil, fmt.Errorf("read mappings of qemu pid %d: %w", pid, err)
	}
	ms, err := numastat.ReadMappings(root, pid)
	if err != nil {
		return nil, err
	}
	byStart := map[uint64]numastat.Mapping{}
	for _, m := range ms {
		byStart[m.Start] = m
	}
	var found []Backend
	for _, b := range out {
		b.Pages = map[int]uint64{}
		for _, m := range maps {
			if m.inode != b.Inode || !m.shared || m.dev != devString(b.Dev) {
				continue
			}
			b.Ranges = append(b.Ranges, Range{Start: m.start, End: m.end, Offset: m.offset})
			nm, ok := byStart[m.start]
			if !ok {
				continue
			}
			if b.Policy == "" {
				b.Policy, b.PolicyNodes = nm.Policy, nm.PolicyNodes.List()
			}
			b.PageSize = nm.PageSize
			for n, p := range nm.Pages {
				b.Pages[n] += p
			}
		}
		if len(b.Ranges) == 0 {
			continue // a memfd qemu holds but does not map (not guest RAM)
		}
		if b.PageSize == 0 {
			b.PageSize = uint64(os.Getpagesize())
		}
		found = append(found, b)
	}
	slices.SortFunc(found, func(a, b Backend) int { return int(a.Ranges[0].Start>>12) - int(b.Ranges[0].Start>>12) })
	return found, nil
}

// mapsLine is one line of /proc/PID/maps.
type mapsLine struct {
	start, end, offset uint64
	shared             bool
	dev                string // "MAJ:MIN" in hex, as maps writes it
	inode              uint64
}

// parseMaps reads /proc/PID/maps.
func parseMaps(b []byte) ([]mapsLine, error) {
	var out []mapsLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			return nil, fmt.Errorf("maps line %q: too few fields", clip(sc.Text()))
		}
		a, z, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps line %q: no range", clip(sc.Text()))
		}
		var l mapsLine
		var err error
		if l.start, err = strconv.ParseUint(a, 16, 64); err == nil {
			if l.end, err = strconv.ParseUint(z, 16, 64); err == nil {
				if l.offset, err = strconv.ParseUint(f[2], 16, 64); err == nil {
					l.inode, err = strconv.ParseUint(f[4], 10, 64)
				}
			}
		}
		if err != nil || l.end < l.start || len(f[1]) != 4 {
			return nil, fmt.Errorf("maps line %q: bad field", clip(sc.Text()))
		}
		l.shared, l.dev = f[1][3] == 's', f[3]
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// devString writes a device number as /proc/PID/maps does ("00:01").
func devString(dev uint64) string {
	major := (dev >> 8) & 0xfff
	minor := (dev & 0xff) | ((dev >> 12) & 0xfff00)
	return fmt.Sprintf("%02x:%02x", major, minor)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
