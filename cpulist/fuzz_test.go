package cpulist

import (
	"strings"
	"testing"
)

// The seeds are real kernel lists and the error rows of TestParse; they run
// as part of go test, and `go test -fuzz=FuzzParse ./cpulist` explores.
var listSeeds = []string{
	"", "0", "0-3,8\x00\n", "0-7,16-23", "0,2,4,6", "65535", "65536",
	"0-4294967297", "0-2147483647", "0-65535,0-65535", "3-1", "a", "-1",
	"1-", "-", ",", "0,,1", " 0 - 3 ", "0-3\n\x00\x00", "9223372036854775807",
	"0-65535", "00000001", "+1", "0x1",
}

var maskSeeds = []string{
	"00000001,00000101", "ff,0", "", "ffffffff", "0000,00000000,00000101",
	"00000000,00000000\x00\n", "g", "1,", ",1", "fffffffff", "-1",
	strings.Repeat("ffffffff,", 63) + "ffffffff", strings.Repeat("0,", 3000) + "0",
}

// FuzzParse: no panic; a list is refused or gives at most MaxID ids, all in
// range; the set's own string parses back to the same set.
func FuzzParse(f *testing.F) {
	for _, s := range listSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Parse(s)
		if err != nil {
			checkError(t, s, err)
			if !set.IsEmpty() {
				t.Errorf("Parse(%q) gave %s with its error", s, set)
			}
			return
		}
		checkBounded(t, s, set.List())
		back, err := Parse(set.String())
		if err != nil || !back.Equals(set) {
			t.Errorf("Parse(%q) = %s, which reads back as %s, %v", s, set, back, err)
		}
	})
}

// FuzzParseMask: as FuzzParse, for hex masks.
func FuzzParseMask(f *testing.F) {
	for _, s := range maskSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseMask(s)
		if err != nil {
			checkError(t, s, err)
			return
		}
		checkBounded(t, s, set.List())
		back, err := Parse(set.String())
		if err != nil || !back.Equals(set) {
			t.Errorf("ParseMask(%q) = %s, which Parse reads back as %s, %v", s, set, back, err)
		}
	})
}

func checkBounded(t *testing.T, in string, ids []int) {
	t.Helper()
	if len(ids) > MaxID {
		t.Fatalf("%q: %d ids, more than %d", in, len(ids), MaxID)
	}
	for _, id := range ids {
		if id < 0 || id >= MaxID {
			t.Fatalf("%q: id %d out of range", in, id)
		}
	}
}

// checkError: an error message stays short however long the input.
func checkError(t *testing.T, in string, err error) {
	t.Helper()
	if n := len(err.Error()); n > 1024 {
		t.Errorf("%d-byte input: %d-byte error %.80q...", len(in), n, err)
	}
}
