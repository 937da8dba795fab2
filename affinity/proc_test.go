package affinity

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ThreadStatus
		wantErr bool
	}{
		{
			name: "qemu vcpu thread",
			in:   "Name:\tCPU 0/TCG\nState:\tS (sleeping)\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n",
			want: ThreadStatus{Name: "CPU 0/TCG", CPUsAllowed: cpuset.New(0, 1), MemsAllowed: cpuset.New(0),
				HasCPUsAllowed: true, HasMemsAllowed: true},
		},
		{
			name: "sparse lists",
			in:   "Cpus_allowed_list:\t0,8-9,250\nMems_allowed_list:\t0,8\n",
			want: ThreadStatus{CPUsAllowed: cpuset.New(0, 8, 9, 250), MemsAllowed: cpuset.New(0, 8),
				HasCPUsAllowed: true, HasMemsAllowed: true},
		},
		{name: "no lists", in: "Name:\tx\n", want: ThreadStatus{Name: "x"}},
		{name: "bad cpu list", in: "Cpus_allowed_list:\t0-x\n", wantErr: true},
		{name: "bad mems list", in: "Mems_allowed_list:\t3-1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseStatus succeeded with %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.want.Name || !got.CPUsAllowed.Equals(tt.want.CPUsAllowed) ||
				!got.MemsAllowed.Equals(tt.want.MemsAllowed) || got.HasCPUsAllowed != tt.want.HasCPUsAllowed ||
				got.HasMemsAllowed != tt.want.HasMemsAllowed {
				t.Errorf("ParseStatus = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestThreadsOfThisProcess(t *testing.T) {
	tidc := make(chan int)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		tidc <- unix.Gettid()
		<-release
	}()
	tid := <-tidc
	defer close(release)
	tids, err := Threads("/", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tids, os.Getpid()) || !slices.Contains(tids, tid) {
		t.Fatalf("Threads = %v, want the main thread %d and the locked thread %d", tids, os.Getpid(), tid)
	}
	if !slices.IsSorted(tids) {
		t.Errorf("Threads = %v, not ascending", tids)
	}
}

func TestThreadsErrors(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/7/task/notanumber"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{7, 8} {
		if tids, err := Threads(root, pid); err == nil {
			t.Errorf("Threads(pid %d) = %v, want an error", pid, tids)
		}
	}
	if _, err := CPUsAllowed(root, 8, 8); err == nil {
		t.Error("CPUsAllowed of a missing thread succeeded")
	}
	dir := filepath.Join(root, "proc/9/task/9")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte("Name:\tx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := CPUsAllowed(root, 9, 9); err == nil {
		t.Error("CPUsAllowed without Cpus_allowed_list succeeded")
	}
}
