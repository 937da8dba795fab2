package cpulist

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "", want: nil},
		{in: "0-3,8\x00\n", want: []int{0, 1, 2, 3, 8}},
		{in: "65535", want: []int{65535}},
		{in: "65536", bad: true},
		{in: "0-4294967297", bad: true},    // was an out-of-memory death in cpuset.Parse
		{in: "0-2147483647", bad: true},    // a planted ledger file
		{in: "0-65535,0-65535", bad: true}, // each range within bounds, the list not
		{in: "3-1", bad: true},
		{in: "a", bad: true},
		{in: "-1", bad: true},
	} {
		got, err := Parse(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("Parse(%q) = %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equals(cpuset.New(tc.want...)) {
			t.Errorf("Parse(%q) = %s, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMask(t *testing.T) {
	got, err := ParseMask("00000001,00000101")
	if err != nil || !got.Equals(cpuset.New(0, 8, 32)) {
		t.Errorf("ParseMask = %s, %v", got, err)
	}
	if _, err := ParseMask("ff,0"); err == nil {
		t.Error("ParseMask(ff,0): want an error for a short word")
	}
}

// TestErrorsAreShort: a list read from a file can be a MiB long; the error
// names it by its start and length instead of repeating all of it.
func TestErrorsAreShort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func(string) (cpuset.CPUSet, error)
		in    string
	}{
		{"Parse", Parse, strings.Repeat("1,", 1<<16) + "x"},
		{"ParseMask", ParseMask, strings.Repeat("00000000,", 2047) + "0000000z"},
	} {
		_, err := tc.parse(tc.in)
		if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), fmt.Sprintf("(%d bytes)", len(tc.in))) {
			t.Errorf("%s of %d bytes: error %.200q (%d bytes), want a short one giving the length", tc.name, len(tc.in), err, len(fmt.Sprint(err)))
		}
	}
}
