package affinity

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"
)

func TestNodeMask(t *testing.T) {
	tests := []struct {
		nodes cpuset.CPUSet
		want  []uint64
	}{
		{cpuset.New(), nil},
		{cpuset.New(0), []uint64{1}},
		{cpuset.New(0, 3), []uint64{9}},
		{cpuset.New(63), []uint64{1 << 63}},
		{cpuset.New(64), []uint64{0, 1}},
		{cpuset.New(1, 130), []uint64{2, 0, 4}},
	}
	for _, tt := range tests {
		if got := nodeMask(tt.nodes); !slices.Equal(got, tt.want) {
			t.Errorf("nodeMask(%s) = %v, want %v", tt.nodes, got, tt.want)
		}
	}
}

// onLockedThread runs f on a fresh OS thread that is thrown away afterwards,
// so the per-thread state f changes never leaks into other tests.
func onLockedThread(t *testing.T, f func(tid int)) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f(unix.Gettid())
	}()
	<-done
}

func TestRealSchedAffinity(t *testing.T) {
	online, err := Real{}.SchedGetaffinity(0)
	if err != nil {
		t.Fatal(err)
	}
	first := online.List()[0]
	tests := []struct {
		name    string
		cpus    cpuset.CPUSet
		wantErr error
	}{
		{"first allowed cpu", cpuset.New(first), nil},
		{"every allowed cpu", online, nil},
		{"cpu that does not exist", cpuset.New(4095), unix.EINVAL},
		{"empty set", cpuset.New(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			onLockedThread(t, func(tid int) {
				err := Real{}.SchedSetaffinity(tid, tt.cpus)
				if tt.cpus.Size() == 0 || tt.wantErr != nil {
					if err == nil {
						t.Fatalf("SchedSetaffinity(%s) succeeded, want an error", tt.cpus)
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Fatalf("SchedSetaffinity(%s) = %v, want %v", tt.cpus, err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got, err := Real{}.SchedGetaffinity(tid)
				if err != nil {
					t.Fatal(err)
				}
				if !got.Equals(tt.cpus) {
					t.Errorf("sched_getaffinity = %s, want %s", got, tt.cpus)
				}
				fromProc, err := CPUsAllowed("/", os.Getpid(), tid)
				if err != nil {
					t.Fatal(err)
				}
				if !fromProc.Equals(tt.cpus) {
					t.Errorf("Cpus_allowed_list = %s, want %s", fromProc, tt.cpus)
				}
			})
		})
	}
}

// getMempolicy returns the calling thread's policy mode and nodes.
func getMempolicy(t *testing.T) (int, cpuset.CPUSet) {
	var mode int32
	mask := make([]uint64, 16)
	_, _, e := unix.Syscall6(unix.SYS_GET_MEMPOLICY, uintptr(unsafe.Pointer(&mode)),
		uintptr(unsafe.Pointer(&mask[0])), uintptr(len(mask)*64), 0, 0, 0)
	if e != 0 {
		t.Fatalf("get_mempolicy: %v", e)
	}
	var nodes []int
	for i := 0; i < len(mask)*64; i++ {
		if mask[i/64]&(1<<(uint(i)%64)) != 0 {
			nodes = append(nodes, i)
		}
	}
	return int(mode), cpuset.New(nodes...)
}

func TestRealSetMempolicy(t *testing.T) {
	tests := []struct {
		name    string
		mode    int
		nodes   cpuset.CPUSet
		wantErr bool
	}{
		{"bind node 0", 2, cpuset.New(0), false},
		{"interleave node 0", 3, cpuset.New(0), false},
		{"preferred node 0", 1, cpuset.New(0), false},
		{"default", 0, cpuset.New(), false},
		{"default with nodes", 0, cpuset.New(0), true},
		{"bind to a node that does not exist", 2, cpuset.New(1000), true},
		{"bind to no node", 2, cpuset.New(), true},
		{"unknown mode", 77, cpuset.New(0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			onLockedThread(t, func(int) {
				err := Real{}.SetMempolicy(tt.mode, tt.nodes)
				if tt.wantErr {
					if err == nil {
						t.Fatalf("SetMempolicy(%d, %s) succeeded, want an error", tt.mode, tt.nodes)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				mode, nodes := getMempolicy(t)
				if mode != tt.mode || !nodes.Equals(tt.nodes) {
					t.Errorf("get_mempolicy = %d %s, want %d %s", mode, nodes, tt.mode, tt.nodes)
				}
			})
		})
	}
}
