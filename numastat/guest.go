package numastat

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/procfs"
	"github.com/qnuma/qnuma/qemucmd"
)

// mapsLimit bounds numa_maps and maps: a qemu has a few hundred mappings,
// well under 1 MiB; a file past 64 MiB is no process's.
const mapsLimit = 64 << 20

// ReadMappings reads root/proc/PID/numa_maps and joins each mapping with
// its range and permissions from root/proc/PID/maps.
func ReadMappings(root string, pid int) ([]Mapping, error) {
	dir := filepath.Join(root, "proc", strconv.Itoa(pid))
	nm, err := procfs.Read(dir, "numa_maps", mapsLimit)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	mapsB, err := procfs.Read(dir, "maps", mapsLimit)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	ms, err := ParseNumaMaps(nm)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	ranges, err := parseMaps(mapsB)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	for i := range ms {
		// A mapping that came or went between the two reads keeps End 0
		// and so is never taken for guest RAM.
		if r, ok := ranges[ms[i].Start]; ok {
			ms[i].End, ms[i].Perms = r.end, r.perms
		}
	}
	return ms, nil
}

// RAMSizes reads the guest RAM sizes from a QEMU command line (the
// NUL-separated /proc/PID/cmdline) with qemucmd's model, both forms of
// -object included: the size of every memory backend, or, when there is
// none, -m (default 128 MiB). A binary other than a QEMU system emulator
// has QEMU's default.
func RAMSizes(cmdline []byte) ([]uint64, error) {
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if !qemucmd.IsSystemEmulator(argv[0]) {
		return []uint64{qemuDefaultRAM}, nil
	}
	c, err := qemucmd.ParseAccepted(argv)
	if err != nil {
		return nil, fmt.Errorf("read guest ram sizes: %w", err)
	}
	var backends []uint64
	for _, b := range c.Backends() {
		if b.Size == 0 {
			return nil, fmt.Errorf("read guest ram sizes: memory backend %s has no size", b.ID)
		}
		backends = append(backends, b.Size)
	}
	if len(backends) > 0 {
		return backends, nil
	}
	m, last, ok := c.Memory()
	switch {
	case !ok:
		return []uint64{qemuDefaultRAM}, nil
	case m.Size == 0:
		return nil, fmt.Errorf("read guest ram sizes: -m %s: no size", last)
	}
	return []uint64{m.Size}, nil
}

// qemuDefaultRAM is QEMU's guest RAM without -m (x86 machines).
const qemuDefaultRAM = 128 * memobj.MiB

// fallbackMin is the smallest mapping taken for guest RAM when the sizes
// are not known: bigger than QEMU's own buffers in practice.
const fallbackMin = 256 * memobj.MiB

// How GuestRAM chose, from the most to the least certain.
const (
	MatchExact    = "exact size"                 // a mapping as long as a backend or -m
	MatchAtLeast  = "at least the smallest size" // sizes known, none exact
	MatchFallback = "largest mappings"           // sizes unknown
)

// GuestRAM picks the guest RAM mappings and says how: writable, not
// executable (TCG's code buffers are rwx and often as big as small guests),
// and as long as one of sizes (rounded up to the mapping's page size), each
// size taken as many times as it appears. When none matches exactly it takes
// those at least as big as the smallest size; without sizes, those of at
// least 256 MiB, or else the largest one.
func GuestRAM(ms []Mapping, sizes []uint64) ([]Mapping, string) {
	var cand []Mapping
	for _, m := range ms {
		if m.Size() > 0 && len(m.Perms) >= 3 && m.Perms[1] == 'w' && m.Perms[2] != 'x' {
			cand = append(cand, m)
		}
	}
	want := map[uint64]int{}
	min := uint64(0)
	for _, s := range sizes {
		want[s]++
		if min == 0 || s < min {
			min = s
		}
	}
	var out []Mapping
	for _, m := range cand {
		for s, n := range want {
			if n > 0 && m.Size() == roundUp(s, m.PageSize) {
				out = append(out, m)
				want[s]--
				break
			}
		}
	}
	if len(out) > 0 {
		return out, MatchExact
	}
	if min > 0 {
		for _, m := range cand {
			if m.Size() >= min {
				out = append(out, m)
			}
		}
		return out, MatchAtLeast
	}
	for _, m := range cand {
		if m.Size() >= fallbackMin {
			out = append(out, m)
		}
	}
	if len(out) > 0 || len(cand) == 0 {
		return out, MatchFallback
	}
	sort.SliceStable(cand, func(i, j int) bool { return cand[i].Size() > cand[j].Size() })
	return cand[:1], MatchFallback
}

func roundUp(n, page uint64) uint64 {
	if page == 0 {
		return n
	}
	return (n + page - 1) / page * page
}
