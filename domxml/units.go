package domxml

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// scaleUnit is the multiplier libvirt gives a unit suffix (virScaleInteger):
// case-insensitive; "b", "byte", "bytes" are 1; a letter k, m, g, t, p or e
// alone or followed by "iB" is a power of 1024; followed by "B" a power of
// 1000. An empty unit takes def.
func scaleUnit(unit string, def uint64) (uint64, error) {
	if unit == "" {
		return def, nil
	}
	switch strings.ToLower(unit) {
	case "b", "byte", "bytes":
		return 1, nil
	}
	var base uint64
	switch rest := strings.ToLower(unit[1:]); rest {
	case "", "ib":
		base = 1024
	case "b":
		base = 1000
	default:
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	power := strings.IndexByte("kmgtpe", unit[0]|0x20) + 1
	if power == 0 {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	scale := uint64(1)
	for range power {
		scale *= base
	}
	return scale, nil
}

// parseUint parses a non-negative decimal number as libvirt's XML properties
// are written; surrounding spaces are allowed, signs are not.
func parseUint(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "" || t[0] < '0' || t[0] > '9' {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a non-negative integer that fits 64 bits", s)
	}
	return n, nil
}

// scaled is value×unit in bytes, def being the unit's multiplier when unit
// is empty; it fails on overflow.
func scaled(value, unit string, def uint64) (uint64, error) {
	n, err := parseUint(value)
	if err != nil {
		return 0, err
	}
	scale, err := scaleUnit(strings.TrimSpace(unit), def)
	if err != nil {
		return 0, err
	}
	hi, lo := bits.Mul64(n, scale)
	if hi != 0 {
		return 0, fmt.Errorf("%s %s does not fit 64 bits of bytes", value, unit)
	}
	return lo, nil
}

// memorySize is a memory size as libvirt reads one (virDomainParseMemory):
// KiB when unit is empty, rounded up to a whole KiB.
func memorySize(value, unit string) (uint64, error) {
	b, err := scaled(value, unit, 1024)
	if err != nil {
		return 0, err
	}
	if r := b % 1024; r != 0 {
		if b > ^uint64(0)-(1024-r) {
			return 0, fmt.Errorf("%s %s does not fit 64 bits of bytes", value, unit)
		}
		b += 1024 - r
	}
	return b, nil
}
