package memobj

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		unit    uint64
		want    uint64
		wantErr string
	}{
		{in: "2G", unit: MiB, want: 2 * GiB},
		{in: "512M", unit: MiB, want: 512 * MiB},
		{in: "1T", unit: MiB, want: TiB},
		{in: "4096K", unit: MiB, want: 4 * MiB},
		{in: "1024", unit: MiB, want: GiB},
		{in: "1024", unit: 1, want: 1024},
		{in: "2g", unit: MiB, want: 2 * GiB},
		{in: "2GiB", unit: 1, want: 2 * GiB},
		{in: "8kib", unit: 1, want: 8 * KiB},
		{in: "100B", unit: MiB, want: 100},
		{in: "1.5G", unit: 1, want: 3 * GiB / 2},
		{in: "0.5", unit: MiB, want: MiB / 2},
		{in: "2P", unit: 1, want: 2 << 50},
		{in: "15E", unit: 1, want: 15 << 60},
		{in: "0", unit: MiB, want: 0},
		{in: "abc", unit: MiB, wantErr: "unknown unit"},
		{in: "", unit: MiB, wantErr: "not a number"},
		{in: "-1", unit: MiB, wantErr: "negative"},
		{in: "1.5Q", unit: MiB, wantErr: `unknown unit "Q"`},
		{in: "2GB", unit: MiB, wantErr: "unknown unit"},
		{in: "G", unit: MiB, wantErr: "not a number"},
		{in: "1.", unit: MiB, wantErr: "not a number"},
		{in: "1.2.3", unit: MiB, wantErr: "fraction"},
		{in: "16E", unit: 1, wantErr: "too large"},
		{in: "18446744073709551616", unit: 1, wantErr: "out of range"},
		{in: "17179869184G", unit: 1, wantErr: "too large"},
		{in: "0.3B", unit: 1, wantErr: "not a whole number of bytes"},
		{in: "1.0000001K", unit: 1, wantErr: "not a whole number of bytes"},
		{in: "2 G", unit: MiB, wantErr: "unknown unit"},
		{in: "15.5E", unit: 1, want: 31 << 59},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in, tc.unit)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSize(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.in) {
					t.Errorf("error %q does not name the input %q", err, tc.in)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSize(%q, %d) = %d, %v; want %d", tc.in, tc.unit, got, err, tc.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{
		{2 * GiB, "2G"},
		{1536 * MiB, "1536M"},
		{4 * KiB, "4K"},
		{TiB, "1T"},
		{1000, "1000B"},
		{0, "0B"},
		{GiB + KiB, "1048577K"},
	}
	for _, tc := range tests {
		got := FormatSize(tc.in)
		if got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := ParseSize(got, MiB)
		if err != nil || back != tc.in {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v: not a round trip", tc.in, got, back, err)
		}
	}
}
