package memobj

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Size units (IEC).
const (
	KiB uint64 = 1 << 10
	MiB uint64 = 1 << 20
	GiB uint64 = 1 << 30
	TiB uint64 = 1 << 40
)

// sizeUnits maps a suffix letter to its multiplier, as QEMU reads them.
var sizeUnits = map[byte]uint64{
	'B': 1, 'K': KiB, 'M': MiB, 'G': GiB, 'T': TiB, 'P': 1 << 50, 'E': 1 << 60,
}

// ParseSize reads a size such as "2G", "512M", "1T", "4096K", "1.5G" or
// "1024". Suffixes are IEC (K = 1024) and case-insensitive, optionally
// followed by "iB" ("2GiB"); a bare number is in defaultUnit (QEMU's -m
// counts MiB, its size= properties bytes). The result must be whole bytes.
func ParseSize(s string, defaultUnit uint64) (uint64, error) {
	if defaultUnit == 0 {
		return 0, fmt.Errorf("parse size %q: default unit is zero", s)
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("parse size %q: negative", s)
	}
	num, unit := s, defaultUnit
	if i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); i >= 0 {
		num = s[:i]
		suffix := strings.ToUpper(s[i:])
		if len(suffix) == 3 && suffix[0] != 'B' && suffix[1:] == "IB" {
			suffix = suffix[:1]
		}
		u, ok := sizeUnits[suffix[0]]
		if len(suffix) != 1 || !ok {
			return 0, fmt.Errorf("parse size %q: unknown unit %q (want B, K, M, G, T, P or E)", s, s[i:])
		}
		unit = u
	}
	whole, frac, hasFrac := strings.Cut(num, ".")
	if whole == "" || (hasFrac && frac == "") {
		return 0, fmt.Errorf("parse size %q: not a number", s)
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse size %q: %w", s, err)
	}
	hi, total := bits.Mul64(w, unit)
	if hi != 0 {
		return 0, fmt.Errorf("parse size %q: too large", s)
	}
	if hasFrac {
		f, err := fraction(frac, unit)
		if err != nil {
			return 0, fmt.Errorf("parse size %q: %w", s, err)
		}
		var carry uint64
		total, carry = bits.Add64(total, f, 0)
		if carry != 0 {
			return 0, fmt.Errorf("parse size %q: too large", s)
		}
	}
	return total, nil
}

// fraction returns 0.digits × unit, which must be a whole number of bytes.
func fraction(digits string, unit uint64) (uint64, error) {
	if len(digits) > 18 {
		return 0, fmt.Errorf("fraction %q has too many digits", digits)
	}
	f, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("fraction %q: %w", digits, err)
	}
	den := uint64(1)
	for range digits {
		den *= 10
	}
	hi, lo := bits.Mul64(f, unit)
	if hi >= den {
		return 0, fmt.Errorf("fraction %q overflows", digits)
	}
	q, r := bits.Div64(hi, lo, den)
	if r != 0 {
		return 0, fmt.Errorf("fraction .%s of %d bytes is not a whole number of bytes", digits, unit)
	}
	return q, nil
}

// FormatSize writes n with the largest IEC suffix that divides it exactly
// ("2G", "1536M", "4K"), or in bytes with a "B" suffix. The suffix is always
// there because a bare number means MiB to QEMU's -m.
func FormatSize(n uint64) string {
	for _, u := range []struct {
		suffix string
		size   uint64
	}{{"E", 1 << 60}, {"P", 1 << 50}, {"T", TiB}, {"G", GiB}, {"M", MiB}, {"K", KiB}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatUint(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}
