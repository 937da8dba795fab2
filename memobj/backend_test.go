package memobj

import "testing"

func TestSMPVCPUs(t *testing.T) {
	for _, tc := range []struct {
		s    SMP
		want int
	}{
		{SMP{CPUs: 4}, 4},
		{SMP{CPUs: 4, MaxCPUs: 8}, 4},
		{SMP{MaxCPUs: 8}, 8},
		{SMP{Sockets: 2, Cores: 3}, 6},
		{SMP{Sockets: 2, Dies: 2, Cores: 2, Threads: 2}, 16},
		{SMP{}, 1},
	} {
		if got := tc.s.VCPUs(); got != tc.want {
			t.Errorf("%+v.VCPUs() = %d, want %d", tc.s, got, tc.want)
		}
	}
}

func TestParseBackendType(t *testing.T) {
	for _, s := range []string{"ram", "memfd", "file"} {
		if got, err := ParseBackendType(s); err != nil || string(got) != s {
			t.Errorf("ParseBackendType(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseBackendType("hugepages"); err == nil {
		t.Error("ParseBackendType(hugepages) accepted an unknown type")
	}
}
