package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The register dumps are QEMU 7.2's `info registers -a` for a 2-vCPU VM:
// held with -S, after 0.5 s of SeaBIOS, and booted into Linux.
func TestParseRegisters(t *testing.T) {
	tests := []struct {
		file      string
		wantIP    []uint64
		wantReset []bool
	}{
		{"registers-reset.txt", []uint64{0xfff0, 0xfff0}, []bool{true, true}},
		{"registers-running.txt", []uint64{0xb7b9, 0xfd09a}, []bool{false, false}},
		{"registers-long-mode.txt", []uint64{0xffffffff81a592eb, 0xffffffff812fa521}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			regs, err := parseRegisters(string(readTestdata(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if len(regs) != len(tt.wantIP) {
				t.Fatalf("%d cpus, want %d: %+v", len(regs), len(tt.wantIP), regs)
			}
			for i, r := range regs {
				if r.CPU != i || r.IP != tt.wantIP[i] || r.AtReset() != tt.wantReset[i] {
					t.Errorf("cpu %d: %+v (at reset %v), want ip %#x, at reset %v", i, r, r.AtReset(), tt.wantIP[i], tt.wantReset[i])
				}
			}
		})
	}
}

func TestParseRegistersErrors(t *testing.T) {
	reset := string(readTestdata(t, "registers-reset.txt"))
	tests := []struct{ name, in, want string }{
		{"empty", "", "no CPU#N block"},
		{"an HMP error", "unknown command: 'info registerz'\r\n", "no CPU#N block"},
		{"no instruction pointer", strings.ReplaceAll(reset, "EIP=", "XIP="), "no EIP/RIP or CS line"},
		{"no code segment", strings.ReplaceAll(reset, "CS =", "CX ="), "no EIP/RIP or CS line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseRegisters(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestAtResetNeedsBothIPAndCS(t *testing.T) {
	// IP fff0 in another segment (a real-mode far jump's target) is not the
	// reset vector.
	if (cpuRegs{IP: 0xfff0, CSBase: 0xf0000}).AtReset() {
		t.Error("fff0 in segment f0000 taken for the reset vector")
	}
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"1423155 20160 3\n", 1423155, false},
		{"0 0 0", 0, false},
		{"", 0, true},
		{"12 34", 0, true},
		{"-5 0 1", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSchedstat(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSchedstat(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParsePlanVCPUs(t *testing.T) {
	tests := []struct {
		name, in string
		want     []cpuset.CPUSet
		wantErr  string
	}{
		{"dedicated", `{"vcpus":[{"vcpu":0,"host_cpus":"0"},{"vcpu":1,"host_cpus":"1"}]}`, []cpuset.CPUSet{cpuset.New(0), cpuset.New(1)}, ""},
		{"floating", `{"vcpus":[{"vcpu":0,"host_cpus":"0-3,8"}]}`, []cpuset.CPUSet{cpuset.New(0, 1, 2, 3, 8)}, ""},
		{"no vcpus", `{"vcpus":[]}`, nil, "no vcpus"},
		{"out of order", `{"vcpus":[{"vcpu":1,"host_cpus":"0"}]}`, nil, "vcpu 1 at position 0"},
		{"bad list", `{"vcpus":[{"vcpu":0,"host_cpus":"x"}]}`, nil, `host_cpus "x"`},
		{"not json", `qnuma: vm does not fit`, nil, "parse qnuma plan --json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePlanVCPUs([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if !got[i].Equals(tt.want[i]) {
					t.Errorf("vcpu %d: %s, want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseProbeOutput(t *testing.T) {
	good := "probe: numactl: pid 120, RAM [{1 268435456}]\n" + probeMarker +
		`{"variants":[{"name":"numactl","argv":["numactl"],"samples":[[100],[50]]}]}` + "\n"
	pr, err := parseProbeOutput(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Variants) != 1 || pr.Variants[0].Samples[0][0] != 100 || pr.Variants[0].Samples[1][0] != 50 {
		t.Errorf("parsed %+v", pr)
	}
	for _, bad := range []string{"", "FAIL: no node 1\n", probeMarker + "{", probeMarker + `{"variants":[]}`} {
		if _, err := parseProbeOutput(bad); err == nil {
			t.Errorf("parseProbeOutput(%q) succeeded", bad)
		}
	}
}
