// Package numastat finds where a process's memory and threads are: its
// mappings per NUMA node from /proc/PID/numa_maps, the guest RAM among them,
// and each thread's allowed CPUs and the CPU it last ran on. Any QEMU process
// will do, whether qnuma started it or not.
package numastat

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/cpulist"
	"k8s.io/utils/cpuset"
)

// Mapping is one line of /proc/PID/numa_maps, joined (by start address)
// with its line in /proc/PID/maps for the size and permissions.
type Mapping struct {
	Start uint64
	// End and Perms come from /proc/PID/maps; End is 0 when unknown.
	End   uint64
	Perms string
	// Policy is the kernel's mode name (default, bind, prefer, interleave,
	// local, ...); PolicyNodes its nodes, empty when it names none.
	Policy      string
	PolicyNodes cpuset.CPUSet
	// File is the mapped file (memfd mappings read "/memfd:NAME (deleted)").
	File        string
	Heap, Stack bool
	// Huge marks a hugetlbfs mapping.
	Huge bool
	// PageSize in bytes (kernelpagesize_kB).
	PageSize uint64
	// Anon, Dirty and Mapped are page counts.
	Anon, Dirty, Mapped uint64
	// Pages present per node id.
	Pages map[int]uint64
}

// Size is the mapping's length in bytes, 0 when /proc/PID/maps was not read.
func (m Mapping) Size() uint64 {
	if m.End <= m.Start {
		return 0
	}
	return m.End - m.Start
}

// NodeBytes is the mapping's resident bytes per node.
func (m Mapping) NodeBytes() map[int]uint64 {
	out := make(map[int]uint64, len(m.Pages))
	for n, p := range m.Pages {
		out[n] = p * m.PageSize
	}
	return out
}

// ParseNumaMaps parses the whole of /proc/PID/numa_maps.
func ParseNumaMaps(b []byte) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		m, err := ParseNumaMapsLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("numa_maps line %d: %w", n, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read numa_maps: %w", err)
	}
	return out, nil
}

// ParseNumaMapsLine parses one line, such as
// "7f2c00000000 bind:1 anon=65536 dirty=65536 N1=65536 kernelpagesize_kB=4".
func ParseNumaMapsLine(line string) (Mapping, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return Mapping{}, fmt.Errorf("%q: want an address and a policy", line)
	}
	var m Mapping
	var err error
	if m.Start, err = strconv.ParseUint(f[0], 16, 64); err != nil {
		return Mapping{}, fmt.Errorf("%q: address: %w", line, err)
	}
	if m.Policy, m.PolicyNodes, err = parsePolicy(f[1]); err != nil {
		return Mapping{}, fmt.Errorf("%q: %w", line, err)
	}
	m.PageSize = 4096 // the kernel omits nothing today; a sane default otherwise
	m.Pages = map[int]uint64{}
	for _, kv := range f[2:] {
		key, val, ok := strings.Cut(kv, "=")
		if !ok {
			switch kv {
			case "heap":
				m.Heap = true
			case "stack":
				m.Stack = true
			case "huge":
				m.Huge = true
			}
			continue // other flags carry nothing qnuma uses
		}
		if key == "file" {
			m.File = unescape(val)
			continue
		}
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return Mapping{}, fmt.Errorf("%q: %s: %w", line, key, err)
		}
		switch {
		case key == "anon":
			m.Anon = n
		case key == "dirty":
			m.Dirty = n
		case key == "mapped":
			m.Mapped = n
		case key == "kernelpagesize_kB":
			if n == 0 || n > math.MaxUint64>>10 {
				return Mapping{}, fmt.Errorf("%q: kernelpagesize_kB=%d", line, n)
			}
			m.PageSize = n << 10
		case len(key) > 1 && key[0] == 'N':
			node, err := cpulist.ParseID(key[1:])
			if err != nil {
				return Mapping{}, fmt.Errorf("%q: node key %q: %w", line, key, err)
			}
			m.Pages[node] = n
		}
	}
	// Bytes are pages × page size: refuse figures that would wrap.
	var total uint64
	for node, pages := range m.Pages {
		hi, b := bits.Mul64(pages, m.PageSize)
		var carry uint64
		total, carry = bits.Add64(total, b, 0)
		if hi != 0 || carry != 0 {
			return Mapping{}, fmt.Errorf("%q: %d pages on node %d of %d bytes overflow", line, pages, node, m.PageSize)
		}
	}
	return m, nil
}

// parsePolicy reads "default", "bind:1", "interleave:0-1", "prefer:0",
// "bind=static:0-1", "prefer (many):0-1".
func parsePolicy(s string) (string, cpuset.CPUSet, error) {
	mode, nodes, hasNodes := strings.Cut(s, ":")
	mode, _, _ = strings.Cut(mode, "=") // =static, =relative flags
	if mode == "" {
		return "", cpuset.New(), fmt.Errorf("policy %q: no mode", s)
	}
	if !hasNodes {
		return mode, cpuset.New(), nil
	}
	set, err := cpulist.Parse(nodes)
	if err != nil {
		return "", cpuset.New(), fmt.Errorf("policy %q: nodes: %w", s, err)
	}
	return mode, set, nil
}

// unescape undoes the kernel's octal escapes (\040 for a space) in paths.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mapsLine is one line of /proc/PID/maps.
type mapsLine struct {
	start, end uint64
	perms      string
}

// parseMaps reads the ranges and permissions of /proc/PID/maps, by start.
func parseMaps(b []byte) (map[uint64]mapsLine, error) {
	out := map[uint64]mapsLine{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("maps line %d: %q", n, sc.Text())
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end < start {
			return nil, fmt.Errorf("maps line %d: range %q", n, f[0])
		}
		out[start] = mapsLine{start: start, end: end, perms: f[1]}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read maps: %w", err)
	}
	return out, nil
}
