package topology

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/cpulist"
)

// The list and mask parsers are cpulist's, which bounds every id.
var (
	clean        = cpulist.Clean
	parseCPUList = cpulist.Parse
	parseCPUMask = cpulist.ParseMask
	parseID      = cpulist.ParseID
)

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
