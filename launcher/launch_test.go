package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/affinity/affinitytest"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

// hostCPUs are the CPUs this test may use, at least one.
func hostCPUs(t *testing.T) []int {
	t.Helper()
	s, err := affinity.Real{}.SchedGetaffinity(0)
	if err != nil {
		t.Fatal(err)
	}
	return s.List()
}

// testPlan puts n vCPUs on the host CPUs round-robin, the emulator on the
// last CPU, and binds memory to node 0.
func testPlan(t *testing.T, n int) *plan.Plan {
	cpus := hostCPUs(t)
	p := &plan.Plan{
		HostNodes:    []int{0},
		EmulatorCPUs: cpuset.New(cpus[len(cpus)-1]),
		Mempolicy:    plan.Mempolicy{Mode: memobj.PolicyBind, Nodes: cpuset.New(0)},
	}
	for i := 0; i < n; i++ {
		p.VCPUs = append(p.VCPUs, plan.VCPU{ID: i, HostCPUs: cpuset.New(cpus[i%len(cpus)])})
	}
	return p
}

// qemuArgv is a guestless VM: nothing to boot, no devices, tiny RAM.
func qemuArgv(vcpus int, extra ...string) []string {
	return append([]string{qemutest.Binary, "-accel", "tcg,thread=multi", "-machine", "pc",
		"-smp", strconv.Itoa(vcpus), "-m", "64M", "-nodefaults", "-display", "none"}, extra...)
}

func baseConfig(t *testing.T, argv []string, p *plan.Plan) Config {
	return Config{
		Argv:       argv,
		Name:       "test",
		Placement:  p.Placement(),
		QMPTimeout: 20 * time.Second, // TCG under a loaded 2-CPU host starts slowly
		Grace:      3 * time.Second,
		Stderr:     &testWriter{t: t},
	}
}

// shortTempDir is a temp dir with a short path: a unix socket's path must
// fit in 107 bytes, and t.TempDir's names grow with the test's name.
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "qn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// testWriter passes qemu's stderr to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("qemu stderr: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// requireGone fails unless pid has exited and been reaped.
func requireGone(t *testing.T, pid int) {
	t.Helper()
	if pid == 0 {
		return
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("qemu pid %d still exists after the launch (kill 0: %v)", pid, err)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// guestRAMPolicy returns the numa_maps policy of qemu's largest mapping of
// at least minBytes: the guest RAM.
func guestRAMPolicy(t *testing.T, pid int, minBytes uint64) string {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var start string
	var best uint64
	for _, line := range strings.Split(string(maps), "\n") {
		rng, _, _ := strings.Cut(line, " ")
		lo, hi, ok := strings.Cut(rng, "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if b-a >= minBytes && b-a > best {
			best, start = b-a, lo
		}
	}
	if start == "" {
		t.Fatalf("no mapping of %d bytes or more in /proc/%d/maps", minBytes, pid)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/numa_maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.TrimLeft(fields[0], "0") == strings.TrimLeft(start, "0") {
			return fields[1]
		}
	}
	t.Fatalf("mapping %s not in /proc/%d/numa_maps", start, pid)
	return ""
}

func TestLaunchPausedVMIsBoundAndPinned(t *testing.T) {
	qemutest.Require(t)
	const vcpus = 2
	p := testPlan(t, vcpus)
	userSock := filepath.Join(shortTempDir(t), "user.sock")
	cfg := baseConfig(t, qemuArgv(vcpus, "-S", "-qmp", "unix:"+userSock+",server=on,wait=off"), p)
	cfg.UserPaused = true
	sigs := make(chan os.Signal, 1)
	cfg.Signals = sigs
	checked := false
	cfg.Hooks.OnRunning = func(pid int, tids []int) {
		defer func() { sigs <- syscall.SIGTERM }() // then stop it as a user would
		checked = true
		if len(tids) != vcpus {
			t.Errorf("OnRunning got %d vcpu threads, want %d", len(tids), vcpus)
			return
		}
		for i, tid := range tids {
			got, err := affinity.CPUsAllowed("/", pid, tid)
			if err != nil {
				t.Error(err)
				continue
			}
			if want := p.VCPUs[i].HostCPUs; !got.Equals(want) {
				t.Errorf("vcpu %d (tid %d) Cpus_allowed_list = %s, want %s", i, tid, got, want)
			}
		}
		all, err := affinity.Threads("/", pid)
		if err != nil {
			t.Error(err)
			return
		}
		for _, tid := range EmulatorThreads(all, tids, nil) {
			got, err := affinity.CPUsAllowed("/", pid, tid)
			if err != nil {
				continue // a short-lived worker may have ended
			}
			if !got.Equals(p.EmulatorCPUs) {
				t.Errorf("emulator thread %d Cpus_allowed_list = %s, want %s", tid, got, p.EmulatorCPUs)
			}
		}
		if pol := guestRAMPolicy(t, pid, 64<<20); pol != "bind:0" {
			t.Errorf("guest RAM numa_maps policy = %q, want bind:0", pol)
		}
		// The user's own -qmp works, and the VM stayed paused as -S asked.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		mon, err := qmp.Dial(ctx, userSock)
		if err != nil {
			t.Errorf("user's own qmp socket: %v", err)
			return
		}
		defer mon.Close()
		st, err := mon.QueryStatus(ctx)
		if err != nil {
			t.Error(err)
		} else if st.Running {
			t.Errorf("vm runs (status %q) although the user gave -S", st.Status)
		}
	}
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("OnRunning was not called")
	}
	if res.ExitCode != 0 || res.TimedOut {
		t.Errorf("result = %+v, want exit 0 after SIGTERM", res)
	}
	requireGone(t, res.PID)
}

func TestLaunchRunsAndTimesOut(t *testing.T) {
	qemutest.Require(t)
	userSock := filepath.Join(shortTempDir(t), "user.sock")
	cfg := baseConfig(t, qemuArgv(1, "-qmp", "unix:"+userSock+",server=on,wait=off"), testPlan(t, 1))
	cfg.Timeout = time.Second
	cfg.Grace = time.Second // no guest OS: the powerdown is ignored, qemu gets killed
	running := false
	cfg.Hooks.OnRunning = func(int, []int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		mon, err := qmp.Dial(ctx, userSock)
		if err != nil {
			t.Errorf("user's own qmp socket: %v", err)
			return
		}
		defer mon.Close()
		st, err := mon.QueryStatus(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		running = st.Running
	}
	var exited *Result
	cfg.Hooks.OnExit = func(r Result) { exited = &r }
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !running {
		t.Error("the vm was not running after the launch (no cont?)")
	}
	if res.ExitCode != 124 || !res.TimedOut || res.Signal != syscall.SIGKILL {
		t.Errorf("result = %+v, want exit 124, timed out, qemu killed", res)
	}
	if exited == nil || exited.ExitCode != 124 {
		t.Errorf("OnExit got %+v, want the result", exited)
	}
	requireGone(t, res.PID)
}

func TestLaunchFailures(t *testing.T) {
	qemutest.Require(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	refuse := &affinitytest.Fake{Fail: func(c affinitytest.Call) error {
		if c.Op == "sched_setaffinity" {
			return os.NewSyscallError("sched_setaffinity", unix.EINVAL)
		}
		return nil
	}}
	tests := []struct {
		name     string
		argv     []string
		env      []string
		sys      affinity.Sys
		plan     func(*plan.Plan)
		started  func(pid int) error
		qmpWait  time.Duration
		wantErr  []string
		wantCode int
	}{
		{
			name:     "bad argument to qemu",
			argv:     qemuArgv(1, "-no-such-option"),
			wantErr:  []string{"wait for qmp", "exited with status 1", "-no-such-option: invalid option"},
			wantCode: 1,
		},
		{
			name:     "qemu not found",
			argv:     []string{"qemu-system-nonexistent"},
			wantErr:  []string{"find qemu", "qemu-system-nonexistent"},
			wantCode: 1,
		},
		{
			name:     "qemu killed while qmp is being read",
			argv:     []string{self},
			env:      []string{fakeQEMUEnv + "=die-mid-reply"},
			wantErr:  []string{"query vcpus", "killed by signal 9 (SIGKILL)", "exit status 137", "query-cpus-fast"},
			wantCode: 137,
		},
		{
			name:     "real qemu killed before qmp answers",
			argv:     qemuArgv(1),
			started:  func(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) },
			wantErr:  []string{"wait for qmp", "killed by signal 9 (SIGKILL)", "OOM killer", "exit status 137"},
			wantCode: 137,
		},
		{
			name:     "qmp socket that never answers",
			argv:     []string{self},
			env:      []string{fakeQEMUEnv + "=silent"},
			qmpWait:  500 * time.Millisecond,
			wantErr:  []string{"wait for qmp", "did not answer", "within 500ms"},
			wantCode: 1,
		},
		{
			name:     "pin refused by the kernel (fake)",
			argv:     qemuArgv(2),
			sys:      refuse,
			wantErr:  []string{"pin vcpus", "pin vcpu 0 (tid ", "invalid argument"},
			wantCode: 1,
		},
		{
			name:     "pin to a cpu outside the allowed set (real kernel)",
			argv:     qemuArgv(2),
			plan:     func(p *plan.Plan) { p.VCPUs[1].HostCPUs = cpuset.New(4000) },
			wantErr:  []string{"pin vcpus", "pin vcpu 1 (tid ", "to cpus 4000", "invalid argument"},
			wantCode: 1,
		},
		{
			name:     "mempolicy on a node that does not exist",
			argv:     qemuArgv(1),
			plan:     func(p *plan.Plan) { p.Mempolicy.Nodes = cpuset.New(1000) },
			wantErr:  []string{"start", "set mempolicy bind nodes 1000"},
			wantCode: 1,
		},
		{
			name:     "qemu started but not on record (the ledger's write failed)",
			argv:     qemuArgv(2),
			started:  func(int) error { return errors.New("record qemu of vm test: disk full") },
			wantErr:  []string{"cont", "started: record qemu of vm test: disk full"},
			wantCode: 1,
		},
		{
			name:     "plan with more vcpus than qemu",
			argv:     qemuArgv(1),
			wantErr:  []string{"query vcpus", "qemu has 1 vcpus, the plan has 2"},
			wantCode: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPlan(t, 2)
			if tt.plan != nil {
				tt.plan(p)
			}
			cfg := baseConfig(t, tt.argv, p)
			if tt.env != nil {
				cfg.Env = append(os.Environ(), tt.env...)
			}
			cfg.Sys = tt.sys
			if tt.qmpWait > 0 {
				cfg.QMPTimeout = tt.qmpWait
			}
			cfg.Hooks.OnStarted = func(pid int, _ string) error {
				if tt.started != nil {
					return tt.started(pid)
				}
				return nil
			}
			ranGuest := false
			cfg.Hooks.OnRunning = func(int, []int) { ranGuest = true }
			res, err := Launch(context.Background(), cfg)
			if err == nil {
				t.Fatalf("Launch succeeded (%+v), want an error", res)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if res.ExitCode != tt.wantCode {
				t.Errorf("exit code = %d, want %d", res.ExitCode, tt.wantCode)
			}
			if ranGuest {
				t.Error("the guest was let run after a failure")
			}
			requireGone(t, res.PID)
		})
	}
}

func TestLaunchBestEffortRunsDespiteRefusedPin(t *testing.T) {
	qemutest.Require(t)
	p := testPlan(t, 1)
	p.VCPUs[0].HostCPUs = cpuset.New(4000)
	cfg := baseConfig(t, qemuArgv(1), p)
	cfg.BestEffort = true
	sigs := make(chan os.Signal, 1)
	cfg.Signals = sigs
	cfg.Hooks.OnRunning = func(int, []int) { sigs <- syscall.SIGTERM }
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Launch with best effort failed: %v", err)
	}
	found := false
	for _, w := range res.Warnings {
		found = found || strings.Contains(w, "pin vcpu 0") && strings.Contains(w, "--best-effort")
	}
	if !found {
		t.Errorf("warnings %q do not report the refused pin", res.Warnings)
	}
	requireGone(t, res.PID)
}

func TestLaunchSingleTCGThreadPinnedToUnion(t *testing.T) {
	qemutest.Require(t)
	cpus := hostCPUs(t)
	if len(cpus) < 2 {
		t.Skip("needs 2 usable CPUs to tell a union from one CPU")
	}
	p := testPlan(t, 2)
	argv := qemuArgv(2, "-S")
	argv[2] = "tcg,thread=single"
	cfg := baseConfig(t, argv, p)
	cfg.UserPaused = true
	sigs := make(chan os.Signal, 1)
	cfg.Signals = sigs
	cfg.Hooks.OnRunning = func(pid int, tids []int) {
		defer func() { sigs <- syscall.SIGTERM }()
		if len(tids) != 2 || tids[0] != tids[1] {
			t.Errorf("vcpu threads %v, want one shared thread", tids)
			return
		}
		got, err := affinity.CPUsAllowed("/", pid, tids[0])
		if err != nil {
			t.Error(err)
			return
		}
		if want := p.VCPUs[0].HostCPUs.Union(p.VCPUs[1].HostCPUs); !got.Equals(want) {
			t.Errorf("shared vcpu thread Cpus_allowed_list = %s, want %s", got, want)
		}
	}
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "share one thread") {
		t.Errorf("warnings = %q, want one about the shared thread", res.Warnings)
	}
	requireGone(t, res.PID)
}

// TestPreferredManyFallsBack: a plan preferring several nodes asks for
// MPOL_PREFERRED_MANY; a kernel without it (before 5.15: EINVAL) gets the
// plan's fallback, MPOL_PREFERRED on the first node, with a warning, and
// the VM starts. The control: a refusal of another kind fails the launch.
func TestPreferredManyFallsBack(t *testing.T) {
	qemutest.Require(t)
	for _, tc := range []struct {
		name    string
		refuse  error
		wantErr bool
	}{
		{"einval falls back", syscall.EINVAL, false},
		{"eperm is an error", syscall.EPERM, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &affinitytest.Fake{Fail: func(c affinitytest.Call) error {
				if c.Op == "set_mempolicy" && c.Mode == unix.MPOL_PREFERRED_MANY {
					return tc.refuse
				}
				return nil
			}}
			p := testPlan(t, 1)
			p.Mempolicy = plan.Mempolicy{Mode: memobj.PolicyPreferredMany, Nodes: cpuset.New(0, 1)}
			cfg := baseConfig(t, qemuArgv(1), p)
			cfg.Sys = fake
			cfg.Timeout = 100 * time.Millisecond
			cfg.Grace = time.Second
			res, err := Launch(context.Background(), cfg)
			var modes []int
			for _, c := range fake.Calls() {
				if c.Op == "set_mempolicy" {
					modes = append(modes, c.Mode)
				}
			}
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "set mempolicy") {
					t.Fatalf("Launch = %v, want a mempolicy error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Launch: %v", err)
			}
			if !slices.Equal(modes, []int{unix.MPOL_PREFERRED_MANY, unix.MPOL_PREFERRED}) {
				t.Errorf("set_mempolicy modes %v, want preferred-many then preferred", modes)
			}
			if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), "MPOL_PREFERRED_MANY") {
				t.Errorf("warnings %q do not say the kernel lacks MPOL_PREFERRED_MANY", res.Warnings)
			}
		})
	}
}
