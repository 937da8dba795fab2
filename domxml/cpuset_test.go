package domxml

import (
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

func TestParseCPUSet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "0-3,^2,8", want: []int{0, 1, 3, 8}},
		{in: "1-4,^3,6", want: []int{1, 2, 4, 6}}, // formatdomain.rst's example
		{in: "5", want: []int{5}},
		{in: " 0 - 2 , 4 ", want: []int{0, 1, 2, 4}},
		{in: "^2,0-3", want: []int{0, 1, 2, 3}}, // an exclusion applies to what comes before it
		{in: "0-3,^2,2", want: []int{0, 1, 2, 3}},
		{in: "0,^0", want: []int{}}, // empty: the callers refuse it
		{in: "65535", want: []int{65535}},
		{in: "", bad: true},
		{in: "  ", bad: true},
		{in: "0,,1", bad: true},
		{in: "0,", bad: true},
		{in: "3-1", bad: true},
		{in: "^1-3", bad: true}, // libvirt excludes single ids only
		{in: "^", bad: true},
		{in: "a", bad: true},
		{in: "-1", bad: true},
		{in: "0-", bad: true},
		{in: "1-2-3", bad: true},
		{in: "65536", bad: true},
		{in: "0-4294967297", bad: true},
		{in: "0-65535,0-65535", bad: true}, // more ids in all than cpulist.MaxID
		{in: "0 1", bad: true},
	} {
		got, err := ParseCPUSet(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseCPUSet(%q) = %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equals(cpuset.New(tc.want...)) {
			t.Errorf("ParseCPUSet(%q) = %s, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseCPUSetManyExclusionsIsBounded(t *testing.T) {
	// A list of many exclusions is linear in its length, not in the set's
	// size times the number of items.
	s := "0-65535" + strings.Repeat(",^7", 200000)
	got, err := ParseCPUSet(s)
	if err != nil || got.Size() != 65535 {
		t.Fatalf("ParseCPUSet(0-65535 and 200000 exclusions) = %d ids, %v", got.Size(), err)
	}
}
