package domxml

import "testing"

func TestMemorySize(t *testing.T) {
	for _, tc := range []struct {
		value, unit string
		want        uint64
		bad         bool
	}{
		{value: "1", unit: "", want: 1024},  // KiB by default
		{value: "1", unit: "b", want: 1024}, // rounded up to a KiB
		{value: "2048", unit: "bytes", want: 2048},
		{value: "3", unit: "byte", want: 1024},
		{value: "1", unit: "KB", want: 1024}, // 1000 rounded up
		{value: "2", unit: "KB", want: 2048},
		{value: "1", unit: "k", want: 1024},
		{value: "1", unit: "KiB", want: 1024},
		{value: "1", unit: "MB", want: 1000448}, // 10^6 rounded up to a KiB
		{value: "1", unit: "M", want: 1 << 20},
		{value: "1", unit: "MiB", want: 1 << 20},
		{value: "1", unit: "GB", want: 1000000512},
		{value: "1", unit: "G", want: 1 << 30},
		{value: "1", unit: "gib", want: 1 << 30}, // case-insensitive, as libvirt
		{value: "1", unit: "TB", want: 1000000000000},
		{value: "1", unit: "T", want: 1 << 40},
		{value: "1", unit: "PiB", want: 1 << 50},
		{value: "1", unit: "E", want: 1 << 60},
		{value: " 4 ", unit: "GiB", want: 4 << 30},
		{value: "16", unit: "EiB", bad: true},                 // 2^64
		{value: "18014398509481984", unit: "KiB", bad: true},  // 2^54 KiB
		{value: "18446744073709551615", unit: "b", bad: true}, // rounds up past 2^64
		{value: "18446744073709551616", unit: "b", bad: true}, // not 64 bits
		{value: "1", unit: "X", bad: true},
		{value: "1", unit: "KiBs", bad: true},
		{value: "1", unit: "Kb2", bad: true},
		{value: "-1", bad: true},
		{value: "+1", bad: true},
		{value: "1.5", unit: "G", bad: true},
		{value: "", bad: true},
		{value: "0x10", bad: true},
	} {
		got, err := memorySize(tc.value, tc.unit)
		if tc.bad {
			if err == nil {
				t.Errorf("memorySize(%q, %q) = %d, want an error", tc.value, tc.unit, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("memorySize(%q, %q) = %d, %v; want %d", tc.value, tc.unit, got, err, tc.want)
		}
	}
}

func TestScaledBytesDefault(t *testing.T) {
	// A cache line is in bytes when no unit is given and is not rounded.
	got, err := scaled("64", "", 1)
	if err != nil || got != 64 {
		t.Errorf("scaled(64, \"\", 1) = %d, %v; want 64", got, err)
	}
}
