package qemuversion

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    Version
		wantErr string
	}{
		{
			name: "debian 12",
			out:  "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n",
			want: Version{7, 2, 19, "Debian 1:7.2+dfsg-7+deb12u16"},
		},
		{
			name: "upstream",
			out:  "QEMU emulator version 9.2.0\nCopyright (c) 2003-2024 Fabrice Bellard and the QEMU Project developers\n",
			want: Version{9, 2, 0, ""},
		},
		{
			name: "rhel qemu-kvm",
			out:  "QEMU emulator version 2.12.0 (qemu-kvm-ev-2.12.0-44.1.el7_8.1)\n",
			want: Version{2, 12, 0, "qemu-kvm-ev-2.12.0-44.1.el7_8.1"},
		},
		{
			name: "old pc emulator",
			out:  "QEMU PC emulator version 0.12.1 (qemu-kvm-0.12.1.2), Copyright (c) 2003-2008 Fabrice Bellard",
			want: Version{0, 12, 1, "qemu-kvm-0.12.1.2"},
		},
		{
			name: "two components",
			out:  "QEMU emulator version 10.0\n",
			want: Version{10, 0, 0, ""},
		},
		{
			name: "warning first",
			out:  "qemu-system-x86_64: warning: something\nQEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)\n",
			want: Version{8, 2, 2, "Debian 1:8.2.2+ds-0ubuntu1"},
		},
		{name: "empty", out: "", wantErr: "no \"QEMU ... version X.Y\""},
		{name: "garbage", out: "hello world\n", wantErr: `in "hello world"`},
		{name: "no number", out: "QEMU emulator version x.y\n", wantErr: "no \"QEMU"},
		{name: "major only", out: "QEMU emulator version 7\n", wantErr: "no \"QEMU"},
		{name: "not qemu", out: "Python version 3.11.2\n", wantErr: "no \"QEMU"},
		{name: "huge", out: "QEMU emulator version 99999999999999999999.1\n", wantErr: "major"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVersion(tc.out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseVersion = %+v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseVersion = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestVersionCapabilities(t *testing.T) {
	tests := []struct {
		v                                         Version
		distCPU, memfd, threads, machineRAM, tctx bool
	}{
		{Version{Major: 2, Minor: 9}, false, false, false, false, false},
		{Version{Major: 2, Minor: 10}, true, false, false, false, false},
		{Version{Major: 2, Minor: 12}, true, true, false, false, false},
		{Version{Major: 4, Minor: 2, Micro: 1}, true, true, false, false, false},
		{Version{Major: 5, Minor: 0}, true, true, true, true, false},
		{Version{Major: 7, Minor: 1, Micro: 99}, true, true, true, true, false},
		{Version{Major: 7, Minor: 2}, true, true, true, true, true},
		{Version{Major: 10, Minor: 0}, true, true, true, true, true},
	}
	for _, tc := range tests {
		got := []bool{tc.v.HasNUMADistCPU(), tc.v.HasMemfd(), tc.v.HasPreallocThreads(), tc.v.HasMachineMemoryBackend(), tc.v.HasThreadContext()}
		want := []bool{tc.distCPU, tc.memfd, tc.threads, tc.machineRAM, tc.tctx}
		for i, name := range []string{"HasNUMADistCPU", "HasMemfd", "HasPreallocThreads", "HasMachineMemoryBackend", "HasThreadContext"} {
			if got[i] != want[i] {
				t.Errorf("%v.%s() = %v, want %v", tc.v, name, got[i], want[i])
			}
		}
	}
	if !(Version{Major: 8, Minor: 0}).AtLeast(7, 2) || (Version{Major: 7, Minor: 1}).AtLeast(7, 2) || !(Version{Major: 7, Minor: 2}).AtLeast(7, 2) {
		t.Error("AtLeast compares major, then minor")
	}
	if !(Version{}).IsZero() || (Version{Minor: 1}).IsZero() {
		t.Error("IsZero is true only for the zero Version")
	}
}

func TestProbeVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs qemu -version: skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	_, err := ProbeVersion(ctx, filepath.Join(t.TempDir(), "no-such-qemu"))
	if err == nil || !strings.Contains(err.Error(), "no-such-qemu -version") {
		t.Errorf("ProbeVersion(missing binary) error = %v, want one naming the command", err)
	}
	// A binary that prints no version: true(1) prints nothing.
	if tr, lerr := exec.LookPath("true"); lerr == nil {
		if _, err := ProbeVersion(ctx, tr); err == nil || !strings.Contains(err.Error(), "no \"QEMU") {
			t.Errorf("ProbeVersion(true) error = %v, want a parse error", err)
		}
	}

	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skipf("qemu-system-x86_64 not installed (scripts/deps.sh installs it): %v", err)
	}
	v, err := ProbeVersion(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, bin, "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "QEMU emulator version "+v.String()) {
		t.Errorf("ProbeVersion = %v; qemu says %q", v, out)
	}
	if !v.HasNUMADistCPU() {
		t.Errorf("installed qemu %v is older than 2.10, which qnuma needs", v)
	}
}
