package numastat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/memobj"
)

// ReadMappings reads root/proc/PID/numa_maps and joins each mapping with
// its range and permissions from root/proc/PID/maps.
func ReadMappings(root string, pid int) ([]Mapping, error) {
	dir := filepath.Join(root, "proc", strconv.Itoa(pid))
	nm, err := os.ReadFile(filepath.Join(dir, "numa_maps"))
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	mapsB, err := os.ReadFile(filepath.Join(dir, "maps"))
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
// NUL-separated /proc/PID/cmdline): the size of every -object
// memory-backend-*, or, when there is none, -m (default 128 MiB).
func RAMSizes(cmdline []byte) ([]uint64, error) {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	var backends []uint64
	ram := 128 * memobj.MiB
	for i := 0; i < len(args); i++ {
		opt := strings.TrimLeft(args[i], "-") // QEMU takes -m and --m
		if !strings.HasPrefix(args[i], "-") || (opt != "m" && opt != "object") || i+1 == len(args) {
			continue
		}
		i++
		val := args[i]
		if opt == "m" {
			s, err := memSize(val)
			if err != nil {
				return nil, err
			}
			ram = s
			continue
		}
		s, ok, err := backendSize(val)
		if err != nil {
			return nil, err
		}
		if ok {
			backends = append(backends, s)
		}
	}
	if len(backends) > 0 {
		return backends, nil
	}
	return []uint64{ram}, nil
}

// memSize reads -m's value: "64M", "2048" (MiB), "size=4G,slots=2,maxmem=8G".
func memSize(v string) (uint64, error) {
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			val = k
		} else if k != "size" {
			continue
		}
		s, err := memobj.ParseSize(val, memobj.MiB)
		if err != nil {
			return 0, fmt.Errorf("qemu -m %q: %w", v, err)
		}
		return s, nil
	}
	return 0, fmt.Errorf("qemu -m %q: no size", v)
}

// backendSize reads a memory backend's size from -object, in the key=value
// form or the JSON form libvirt writes.
func backendSize(v string) (uint64, bool, error) {
	if strings.HasPrefix(v, "{") {
		var o struct {
			Type string          `json:"qom-type"`
			Size json.RawMessage `json:"size"`
		}
		if err := json.Unmarshal([]byte(v), &o); err != nil {
			return 0, false, fmt.Errorf("qemu -object %q: %w", v, err)
		}
		if !strings.HasPrefix(o.Type, "memory-backend-") {
			return 0, false, nil
		}
		raw := string(bytes.Trim(o.Size, `"`))
		s, err := memobj.ParseSize(raw, 1)
		if err != nil {
			return 0, false, fmt.Errorf("qemu -object %s size: %w", o.Type, err)
		}
		return s, true, nil
	}
	parts := strings.Split(v, ",")
	typ := strings.TrimPrefix(parts[0], "qom-type=")
	if !strings.HasPrefix(typ, "memory-backend-") {
		return 0, false, nil
	}
	for _, kv := range parts[1:] {
		if k, val, _ := strings.Cut(kv, "="); k == "size" {
			s, err := memobj.ParseSize(val, 1)
			if err != nil {
				return 0, false, fmt.Errorf("qemu -object %s size: %w", typ, err)
			}
			return s, true, nil
		}
	}
	return 0, false, fmt.Errorf("qemu -object %q: memory backend without size", v)
}

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
