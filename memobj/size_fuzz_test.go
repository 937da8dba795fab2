package memobj

import (
	"strings"
	"testing"
)

// FuzzParseSize: no panic; an error for what is not a size; a size that
// parses renders with FormatSize to a string that parses back to it, in
// either default unit; fractions never round.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{
		"2G", "512M", "1T", "4096K", "1024", "2g", "2GiB", "8kib", "100B", "1.5G", "0.5", "2P", "15E", "0",
		"abc", "", "-1", "1.5Q", "2GB", "G", "1.", "1.2.3", "16E", "18446744073709551616", "17179869184G",
		"0.3B", "1.0000001K", "2 G", "15.5E", "0.0000000000000000001E", "1.9999999999999999999E", ".5G", "+1G",
		"1e3", "0x10", "1_000", "١٢", "16383P", "16384P",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, bytes bool) {
		unit := MiB
		if bytes {
			unit = 1
		}
		n, err := ParseSize(s, unit)
		if err != nil {
			if n != 0 {
				t.Errorf("ParseSize(%q) = %d with error %v", s, n, err)
			}
			if len(err.Error()) > 10*len(s)+200 { // the input, quoted at most twice
				t.Errorf("ParseSize(%q): error of %d bytes", s, len(err.Error()))
			}
			return
		}
		if s == "" || strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\n") {
			t.Errorf("ParseSize(%q) = %d, want an error", s, n)
		}
		f := FormatSize(n)
		for _, u := range []uint64{1, MiB} {
			back, err := ParseSize(f, u)
			if err != nil || back != n {
				t.Errorf("ParseSize(%q) = %d, FormatSize = %q, which parses back (unit %d) as %d, %v", s, n, f, u, back, err)
			}
		}
	})
}
