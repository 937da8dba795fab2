package launcher

import (
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/qmp"
)

func TestExtraArgs(t *testing.T) {
	tests := []struct {
		name              string
		vm                string
		userPaused, named bool
		want              []string
	}{
		{"defaults", "web", false, false,
			[]string{"-chardev", "socket,id=qnuma-qmp,fd=4,server=off", "-mon", "chardev=qnuma-qmp,mode=control", "-S", "-name", "qnuma-web,debug-threads=on"}},
		{"no name", "", false, false,
			[]string{"-chardev", "socket,id=qnuma-qmp,fd=4,server=off", "-mon", "chardev=qnuma-qmp,mode=control", "-S", "-name", "qnuma,debug-threads=on"}},
		{"user paused", "web", true, false,
			[]string{"-chardev", "socket,id=qnuma-qmp,fd=4,server=off", "-mon", "chardev=qnuma-qmp,mode=control", "-name", "qnuma-web,debug-threads=on"}},
		{"user named", "web", false, true,
			[]string{"-chardev", "socket,id=qnuma-qmp,fd=4,server=off", "-mon", "chardev=qnuma-qmp,mode=control", "-S"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ExtraArgs(4, tt.vm, tt.userPaused, tt.named)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ExtraArgs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVCPUThreads(t *testing.T) {
	tests := []struct {
		name    string
		cpus    []qmp.CPU
		planned int
		want    []int
		wantErr string
	}{
		{"in order", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}, {CPUIndex: 1, ThreadID: 11}}, 2, []int{10, 11}, ""},
		{"out of order", []qmp.CPU{{CPUIndex: 1, ThreadID: 11}, {CPUIndex: 0, ThreadID: 10}}, 2, []int{10, 11}, ""},
		{"shared thread", []qmp.CPU{{CPUIndex: 0, ThreadID: 7}, {CPUIndex: 1, ThreadID: 7}}, 2, []int{7, 7}, ""},
		{"fewer than planned", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}}, 2, nil, "qemu has 1 vcpus, the plan has 2"},
		{"duplicate index", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}, {CPUIndex: 0, ThreadID: 11}}, 2, nil, "unexpected cpu-index 0"},
		{"index out of range", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}, {CPUIndex: 5, ThreadID: 11}}, 2, nil, "unexpected cpu-index 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VCPUThreads(tt.cpus, tt.planned)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("VCPUThreads error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("VCPUThreads = %v, want %v", got, tt.want)
			}
		})
	}
}

// A VM with hotplug room may start with slots 0-1 and 6-7 (one guest
// node's first slots each): each thread goes to its plan's vCPU by
// cpu-index, and an index the plan lacks, or one twice, is refused.
func TestVCPUThreadsOf(t *testing.T) {
	tests := []struct {
		name    string
		cpus    []qmp.CPU
		ids     []int
		want    []int
		wantErr string
	}{
		{"slots of two guest nodes", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}, {CPUIndex: 1, ThreadID: 11}, {CPUIndex: 6, ThreadID: 16}, {CPUIndex: 7, ThreadID: 17}},
			[]int{0, 1, 6, 7}, []int{10, 11, 16, 17}, ""},
		{"out of order", []qmp.CPU{{CPUIndex: 7, ThreadID: 17}, {CPUIndex: 0, ThreadID: 10}, {CPUIndex: 6, ThreadID: 16}, {CPUIndex: 1, ThreadID: 11}},
			[]int{0, 1, 6, 7}, []int{10, 11, 16, 17}, ""},
		{"shared thread", []qmp.CPU{{CPUIndex: 0, ThreadID: 7}, {CPUIndex: 2, ThreadID: 7}}, []int{0, 2}, []int{7, 7}, ""},
		{"nil ids are 0 to n-1", []qmp.CPU{{CPUIndex: 1, ThreadID: 11}, {CPUIndex: 0, ThreadID: 10}}, nil, []int{10, 11}, ""},
		// The old layout's vCPUs (0-3) where the plan has 0-1 and 6-7.
		{"index the plan lacks", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}, {CPUIndex: 1, ThreadID: 11}, {CPUIndex: 2, ThreadID: 12}, {CPUIndex: 3, ThreadID: 13}},
			[]int{0, 1, 6, 7}, nil, "unexpected cpu-index 2 among 4 vcpus (the plan's are 0-1,6-7)"},
		{"index twice", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}, {CPUIndex: 6, ThreadID: 16}, {CPUIndex: 6, ThreadID: 17}}, []int{0, 1, 6}, nil, "unexpected cpu-index 6"},
		{"fewer than planned", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}}, []int{0, 6}, nil, "qemu has 1 vcpus, the plan has 2"},
		{"plan lists one twice", []qmp.CPU{{CPUIndex: 0, ThreadID: 10}, {CPUIndex: 6, ThreadID: 16}}, []int{6, 6}, nil, "plan lists vcpu 6 twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			planned := len(tt.ids)
			if tt.ids == nil {
				planned = len(tt.cpus)
			}
			got, err := VCPUThreadsOf(tt.cpus, tt.ids, planned)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("VCPUThreadsOf error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("VCPUThreadsOf = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := VCPUThreadsOf(nil, []int{0}, 2); err == nil || !strings.Contains(err.Error(), "2 vcpus and 1 vcpu ids") {
		t.Errorf("ids not matching the plan's count: err = %v", err)
	}
}

func TestVCPUPins(t *testing.T) {
	c := cpuset.New
	tests := []struct {
		name    string
		tids    []int
		cpus    []cpuset.CPUSet
		want    []ThreadPin
		wantErr string
	}{
		{"one thread per vcpu", []int{10, 11}, []cpuset.CPUSet{c(0), c(1)},
			[]ThreadPin{{10, []int{0}, c(0)}, {11, []int{1}, c(1)}}, ""},
		{"single tcg thread gets the union", []int{7, 7, 7}, []cpuset.CPUSet{c(0), c(1), c(4, 5)},
			[]ThreadPin{{7, []int{0, 1, 2}, c(0, 1, 4, 5)}}, ""},
		{"mixed", []int{7, 8, 7}, []cpuset.CPUSet{c(0), c(1), c(2)},
			[]ThreadPin{{7, []int{0, 2}, c(0, 2)}, {8, []int{1}, c(1)}}, ""},
		{"count mismatch", []int{7}, []cpuset.CPUSet{c(0), c(1)}, nil, "1 vcpu threads for 2 planned vcpus"},
		{"empty plan for a vcpu", []int{7, 8}, []cpuset.CPUSet{c(0), c()}, nil, "vcpu 1 has no planned cpus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VCPUPins(tt.tids, tt.cpus)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("VCPUPins error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("VCPUPins = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i].TID != tt.want[i].TID || !slices.Equal(got[i].VCPUs, tt.want[i].VCPUs) || !got[i].CPUs.Equals(tt.want[i].CPUs) {
					t.Errorf("pin %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestEmulatorThreads(t *testing.T) {
	got := EmulatorThreads([]int{100, 101, 102, 103, 104}, []int{103, 104},
		[]qmp.IOThread{{ID: "io0", ThreadID: 102}, {ID: "io1", ThreadID: 109}})
	if want := []int{100, 101, 102, 109}; !slices.Equal(got, want) {
		t.Errorf("EmulatorThreads = %v, want %v", got, want)
	}
}

func TestRingTail(t *testing.T) {
	r := newRing(16)
	r.Write([]byte("first line\nsecond\n"))
	r.Write([]byte("third\n"))
	if got, want := r.Tail(2), "second\nthird"; got != want {
		t.Errorf("Tail(2) = %q, want %q", got, want)
	}
	if got, want := r.Tail(10), "ne\nsecond\nthird"; got != want {
		t.Errorf("Tail(10) after overflow = %q, want %q", got, want)
	}
}

// TestInheritedFD: an fd without close-on-exec (handed down for qemu) is
// kept for qemu; qnuma's own fds (Go opens them close-on-exec) are not.
func TestInheritedFD(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if inheritedFD(fd) {
		t.Errorf("fd %d opened by Go (close-on-exec) reported as inherited", fd)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	if !inheritedFD(fd) {
		t.Errorf("fd %d without close-on-exec not reported as inherited", fd)
	}
	if inheritedFD(1 << 20) {
		t.Error("a closed fd reported as inherited")
	}
}
