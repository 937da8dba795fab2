package numastat

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseProcStat(t *testing.T) {
	real, err := os.ReadFile("testdata/qemu-tcg-64M/task_stat")
	if err != nil {
		t.Fatal(err)
	}
	// The same line with a comm holding ") (" and spaces.
	tricky := strings.Replace(string(real), "(CPU 1/TCG)", "(a) (b c)", 1)
	// Field N holds N, except utime (14) and stime (15).
	f := []string{"9", "(x)", "R"}
	for n := 4; n <= 52; n++ {
		f = append(f, strconv.Itoa(n))
	}
	f[13], f[14] = "5", "7"
	synthetic := strings.Join(f, " ")
	tests := []struct {
		name    string
		line    string
		want    ProcStat
		wantErr bool
	}{
		{name: "qemu vcpu thread", line: string(real), want: ProcStat{PID: 23758, Comm: "CPU 1/TCG", State: 'S', StartTime: 348611, Processor: 0}},
		{name: "parentheses in comm", line: tricky, want: ProcStat{PID: 23758, Comm: "a) (b c", State: 'S', StartTime: 348611, Processor: 0}},
		{name: "times and processor", line: synthetic, want: ProcStat{PID: 9, Comm: "x", State: 'R', UTime: 5, STime: 7, StartTime: 22, Processor: 39}},
		{name: "no comm", line: "12 S 1 2", wantErr: true},
		{name: "bad pid", line: "x (a) S 1", wantErr: true},
		{name: "short", line: "12 (a) S 1 2 3", wantErr: true},
		{name: "bad start time", line: strings.Replace(string(real), " 348611 ", " x ", 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestReadProcStatOfThisProcess reads real stat files. It used to want
// state R of the whole process, whose main thread is often asleep while a
// test runs on another thread: a flake. A thread reading its own stat is
// running as it reads, so the locked thread's task stat says R every time;
// the process's says the pid, the comm its threads inherit, and a start
// time no later than theirs.
func TestReadProcStatOfThisProcess(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := os.Getpid(), unix.Gettid()
	task, err := ReadTaskStat("/", pid, tid)
	if err != nil {
		t.Fatal(err)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	if err != nil {
		t.Fatal(err)
	}
	if task.PID != tid || task.State != 'R' || task.Comm != strings.TrimSuffix(string(comm), "\n") {
		t.Errorf("this thread (tid %d, comm %q): %+v, want its tid, comm and state R", tid, comm, task)
	}
	proc, err := ReadProcStat("/", pid)
	if err != nil {
		t.Fatal(err)
	}
	if proc.PID != pid || proc.StartTime == 0 || !strings.ContainsRune("RSDTtWXZIP", rune(proc.State)) {
		t.Errorf("this process (pid %d): %+v", pid, proc)
	}
	if proc.Comm != task.Comm || proc.StartTime > task.StartTime {
		t.Errorf("process comm %q started %d, its thread comm %q started %d", proc.Comm, proc.StartTime, task.Comm, task.StartTime)
	}
	if _, err := ReadProcStat(t.TempDir(), 1); err == nil {
		t.Error("reading stat under an empty root succeeded")
	}
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		id     Identity
		isQEMU bool
		str    string
	}{
		{Identity{Exe: "/usr/bin/qemu-system-x86_64", Argv0: "qemu-system-x86_64", Comm: "qemu-system-x86"}, true, "qemu-system-x86 (/usr/bin/qemu-system-x86_64)"},
		{Identity{Exe: "/usr/libexec/qemu-kvm", Comm: "qemu-kvm"}, true, "qemu-kvm (/usr/libexec/qemu-kvm)"},
		{Identity{Argv0: "/opt/q/bin/qemu-system-aarch64", Comm: "qemu-system-aar"}, true, "qemu-system-aar (/opt/q/bin/qemu-system-aarch64)"},
		{Identity{Exe: "/usr/bin/sleep", Argv0: "sleep", Comm: "sleep"}, false, "sleep (/usr/bin/sleep)"},
		{Identity{Exe: "/usr/bin/qemu-img", Argv0: "qemu-img", Comm: "qemu-img"}, false, "qemu-img (/usr/bin/qemu-img)"},
		{Identity{Comm: "kthreadd"}, false, "kthreadd"},
		{Identity{}, false, "unknown"},
	}
	for _, tt := range tests {
		if got := tt.id.IsQEMU(); got != tt.isQEMU {
			t.Errorf("%+v: IsQEMU = %v, want %v", tt.id, got, tt.isQEMU)
		}
		if got := tt.id.String(); got != tt.str {
			t.Errorf("%+v: String = %q, want %q", tt.id, got, tt.str)
		}
	}
	self, err := ReadIdentity("/", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if exe, _ := os.Executable(); self.Exe != exe || self.Comm == "" || self.Argv0 != os.Args[0] || self.IsQEMU() {
		t.Errorf("this test process: %+v (executable %s, argv[0] %s)", self, exe, os.Args[0])
	}
	if _, err := ReadIdentity(t.TempDir(), 1); err == nil {
		t.Error("identity under an empty root: no error")
	}
}
