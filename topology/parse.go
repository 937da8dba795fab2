package topology

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// maxID bounds CPU and node ids read from files, so that a corrupt range
// such as "0-4000000000" is an error instead of a huge allocation. Linux
// allows at most 8192 CPUs and 1024 nodes.
const maxID = 1 << 16

// clean drops the trailing NUL bytes and whitespace that some kernels and
// snapshots leave in sysfs files, and leading whitespace.
func clean(s string) string {
	return strings.TrimSpace(strings.TrimRight(s, "\x00 \t\r\n"))
}

// parseCPUList parses a kernel cpu or node list such as "0-3,8,10-11".
// An empty list is an empty set.
func parseCPUList(s string) (cpuset.CPUSet, error) {
	s = clean(s)
	var ids []int
	if s == "" {
		return cpuset.New(), nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := parseID(lo)
		if err != nil {
			return cpuset.CPUSet{}, fmt.Errorf("cpu list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = parseID(hi); err != nil {
				return cpuset.CPUSet{}, fmt.Errorf("cpu list %q: %w", s, err)
			}
			if last < first {
				return cpuset.CPUSet{}, fmt.Errorf("cpu list %q: range %q runs backwards", s, part)
			}
		}
		for id := first; id <= last; id++ {
			ids = append(ids, id)
		}
	}
	return cpuset.New(ids...), nil
}

// parseID parses one CPU or node id.
func parseID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a cpu or node id", s)
	}
	if n < 0 || n >= maxID {
		return 0, fmt.Errorf("id %d out of range 0-%d", n, maxID-1)
	}
	return n, nil
}

// parseCPUMask parses a kernel hex bitmap such as "0000,00000000,00000101":
// comma-separated 32-bit words, most significant first; every word but the
// first has 8 hex digits.
func parseCPUMask(s string) (cpuset.CPUSet, error) {
	s = clean(s)
	if s == "" {
		return cpuset.CPUSet{}, fmt.Errorf("cpu mask is empty")
	}
	words := strings.Split(s, ",")
	if len(words)*32 > maxID {
		return cpuset.CPUSet{}, fmt.Errorf("cpu mask has %d words, more than the %d cpus supported", len(words), maxID)
	}
	var ids []int
	for i, w := range words {
		if len(w) == 0 || len(w) > 8 || (i > 0 && len(w) != 8) {
			return cpuset.CPUSet{}, fmt.Errorf("cpu mask %q: word %d %q is not 8 hex digits", s, i, w)
		}
		v, err := strconv.ParseUint(w, 16, 32)
		if err != nil {
			return cpuset.CPUSet{}, fmt.Errorf("cpu mask %q: word %d %q is not hex", s, i, w)
		}
		base := 32 * (len(words) - 1 - i)
		for bit := 0; bit < 32; bit++ {
			if v&(1<<bit) != 0 {
				ids = append(ids, base+bit)
			}
		}
	}
	return cpuset.New(ids...), nil
}

// parseMeminfo parses /proc/meminfo or a node's meminfo ("Node 3 MemTotal:
// 16775084 kB") into bytes by key. Values without a unit (HugePages_Total)
// are kept as they are.
func parseMeminfo(s string) (map[string]uint64, error) {
	m := map[string]uint64{}
	for i, line := range strings.Split(clean(s), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Node "); ok {
			_, after, found := strings.Cut(rest, " ")
			if !found {
				return nil, fmt.Errorf("meminfo line %d %q: no key after the node id", i+1, line)
			}
			line = strings.TrimSpace(after)
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok || key == "" {
			return nil, fmt.Errorf("meminfo line %d %q: want \"Key: value\"", i+1, line)
		}
		fields := strings.Fields(val)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("meminfo line %d %q: want a number and an optional unit", i+1, line)
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("meminfo line %d %q: %q is not a number", i+1, line, fields[0])
		}
		if len(fields) == 2 {
			if fields[1] != "kB" {
				return nil, fmt.Errorf("meminfo line %d %q: unknown unit %q", i+1, line, fields[1])
			}
			if n > ^uint64(0)/1024 {
				return nil, fmt.Errorf("meminfo line %d %q: value overflows", i+1, line)
			}
			n *= 1024
		}
		m[key] = n
	}
	return m, nil
}

// parseDistances parses a node's distance row ("10 16 16 22"). An empty
// row is no row.
func parseDistances(s string) ([]int, error) {
	fields := strings.Fields(clean(s))
	if len(fields) == 0 {
		return nil, nil
	}
	row := make([]int, len(fields))
	for i, f := range fields {
		d, err := strconv.Atoi(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("distance row %q: entry %d %q is not a positive number", clean(s), i, f)
		}
		row[i] = d
	}
	return row, nil
}

// parseHugepageDir parses a hugepages directory name ("hugepages-2048kB")
// into the page size in bytes.
func parseHugepageDir(name string) (uint64, error) {
	kb, ok := strings.CutPrefix(name, "hugepages-")
	if ok {
		kb, ok = strings.CutSuffix(kb, "kB")
	}
	if !ok {
		return 0, fmt.Errorf("hugepages directory %q: want hugepages-<size>kB", name)
	}
	n, err := strconv.ParseUint(kb, 10, 64)
	if err != nil || n == 0 || n > ^uint64(0)/1024 {
		return 0, fmt.Errorf("hugepages directory %q: bad size %q", name, kb)
	}
	return n * 1024, nil
}

// parseCount parses a non-negative decimal count such as nr_hugepages.
func parseCount(s string) (uint64, error) {
	n, err := strconv.ParseUint(clean(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a count", clean(s))
	}
	return n, nil
}

// parseIndexedName parses names such as "node8" or "cpu12" into the id
// after prefix; ok is false for other names (cpufreq, cpuidle, ...).
func parseIndexedName(name, prefix string) (id int, ok bool, err error) {
	digits, ok := strings.CutPrefix(name, prefix)
	if !ok || digits == "" {
		return 0, false, nil
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, false, nil
		}
	}
	id, err = parseID(digits)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", name, err)
	}
	return id, true, nil
}
