// Package cpulist parses CPU and node lists that come from outside qnuma
// (flags, sysfs, /proc, ledger files, QEMU command lines) into sets, with
// every id bounded: cpuset.Parse allocates one entry per id in a range, so
// "0-4294967297" from a user or a corrupt file would exhaust memory.
package cpulist

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// MaxID bounds CPU and node ids: ids run 0..MaxID-1. Linux allows at most
// 8192 CPUs and 1024 nodes.
const MaxID = 1 << 16

// Clean drops the trailing NUL bytes and whitespace that some kernels and
// snapshots leave in sysfs files, and leading whitespace.
func Clean(s string) string {
	return strings.TrimSpace(strings.TrimRight(s, "\x00 \t\r\n"))
}

// Parse parses a kernel cpu or node list such as "0-3,8,10-11". An empty
// list is an empty set.
func Parse(s string) (cpuset.CPUSet, error) {
	s = Clean(s)
	q := clip(s)
	var ids []int
	if s == "" {
		return cpuset.New(), nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := ParseID(lo)
		if err != nil {
			return cpuset.CPUSet{}, fmt.Errorf("cpu list %s: %w", q, err)
		}
		last := first
		if isRange {
			if last, err = ParseID(hi); err != nil {
				return cpuset.CPUSet{}, fmt.Errorf("cpu list %s: %w", q, err)
			}
			if last < first {
				return cpuset.CPUSet{}, fmt.Errorf("cpu list %s: range %s runs backwards", q, clip(part))
			}
		}
		for id := first; id <= last; id++ {
			ids = append(ids, id)
		}
		if len(ids) > MaxID {
			return cpuset.CPUSet{}, fmt.Errorf("cpu list %s: more than %d ids", q, MaxID)
		}
	}
	return cpuset.New(ids...), nil
}

// ParseID parses one CPU or node id.
func ParseID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s is not a cpu or node id", clip(s))
	}
	if n < 0 || n >= MaxID {
		return 0, fmt.Errorf("id %d out of range 0-%d", n, MaxID-1)
	}
	return n, nil
}

// ParseMask parses a kernel hex bitmap such as "0000,00000000,00000101":
// comma-separated 32-bit words, most significant first; every word but the
// first has 8 hex digits.
func ParseMask(s string) (cpuset.CPUSet, error) {
	s = Clean(s)
	if s == "" {
		return cpuset.CPUSet{}, fmt.Errorf("cpu mask is empty")
	}
	q := clip(s)
	words := strings.Split(s, ",")
	if len(words)*32 > MaxID {
		return cpuset.CPUSet{}, fmt.Errorf("cpu mask has %d words, more than the %d cpus supported", len(words), MaxID)
	}
	var ids []int
	for i, w := range words {
		if len(w) == 0 || len(w) > 8 || (i > 0 && len(w) != 8) {
			return cpuset.CPUSet{}, fmt.Errorf("cpu mask %s: word %d %s is not 8 hex digits", q, i, clip(w))
		}
		v, err := strconv.ParseUint(w, 16, 32)
		if err != nil {
			return cpuset.CPUSet{}, fmt.Errorf("cpu mask %s: word %d %q is not hex", q, i, w)
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

// clip quotes s for an error message, cut short: a list from a file can be
// up to a MiB, and an error that repeats it is unreadable.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + fmt.Sprintf("... (%d bytes)", len(s))
}
