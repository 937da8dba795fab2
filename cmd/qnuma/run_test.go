package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/launcher"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
	"github.com/qnuma/qnuma/test/vm"
)

// guard bounds waits for a process to reach a point, so that a broken
// launch fails the test instead of hanging it; it is not a timing check.
const guard = 2 * time.Minute

// bareQEMU is a guestless VM: nothing to boot, no devices.
var bareQEMU = []string{qemutest.Binary, "-accel", "tcg,thread=multi", "-nodefaults", "-display", "none"}

// buildQnuma builds this command into a directory any user may read, so
// that the unprivileged test can run it too.
func buildQnuma(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qnuma-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// go test puts its own GOROOT/bin first on the test's PATH.
	bin := filepath.Join(dir, "qnuma")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running qnuma with its stderr read line by line.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuf
	lines  chan string // stderr lines; closed at EOF
	stderr *syncBuf
	done   chan struct{}
	err    error
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startQnuma(t *testing.T, prefix []string, args ...string) *proc {
	t.Helper()
	argv := append(prefix, args...)
	return startCmd(t, exec.Command(argv[0], argv[1:]...))
}

// startCmd starts a qnuma command made by the caller (with ExtraFiles,
// say) as startQnuma does.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR=") // the runtime dir goes to /tmp for any user
	p := &proc{cmd: cmd, stdout: &syncBuf{}, stderr: &syncBuf{}, lines: make(chan string, 1024), done: make(chan struct{})}
	cmd.Stdout = p.stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.stderr.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for lines this late
			}
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitLine returns the submatches of the first stderr line matching re.
func (p *proc) waitLine(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timer := time.NewTimer(guard)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("qnuma ended without printing %q; stderr:\n%s", re, p.stderr)
			}
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timer.C:
			t.Fatalf("qnuma did not print %q; stderr:\n%s", re, p.stderr)
		}
	}
}

// wait returns qnuma's exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(guard):
		t.Fatalf("qnuma did not exit; stderr:\n%s", p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func requireGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("qemu pid %d still exists after qnuma ended (kill 0: %v)", pid, err)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pins reads the -v lines that report the pins, until the launch lets
// the guest run: vCPU index → tid and cpus, and the emulator threads.
type pins struct {
	qemuPID  int
	vcpuTID  map[int]int
	vcpuCPUs map[int]string
	emuCPUs  string
}

func (p *proc) readPins(t *testing.T, vcpus int) pins {
	t.Helper()
	var r pins
	r.qemuPID, _ = strconv.Atoi(p.waitLine(t, `^qnuma: started qemu pid=(\d+)`)[1])
	r.vcpuTID, r.vcpuCPUs = map[int]int{}, map[int]string{}
	for len(r.vcpuTID) < vcpus {
		m := p.waitLine(t, `^qnuma: pinned vcpu vcpu=(\d+) tid=(\d+) cpus=(\S+)`)
		i, _ := strconv.Atoi(m[1])
		r.vcpuTID[i], _ = strconv.Atoi(m[2])
		r.vcpuCPUs[i] = m[3]
	}
	r.emuCPUs = p.waitLine(t, `^qnuma: pinned emulator threads .* cpus=(\S+)`)[1]
	p.waitLine(t, `^qnuma: step cont:`)
	return r
}

// planJSONFor runs `qnuma plan --json` with the same spec, on an empty
// ledger, for the placement run must apply.
func planJSONFor(t *testing.T, bin string, spec ...string) planJSON {
	t.Helper()
	args := append([]string{"plan", "--json", "--state-dir", t.TempDir()}, spec...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("qnuma %q: %v", args, err)
	}
	var p planJSON
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func cpusAllowed(t *testing.T, pid, tid int) string {
	t.Helper()
	s, err := affinity.CPUsAllowed("/", pid, tid)
	if err != nil {
		t.Fatal(err)
	}
	return s.String()
}

// ramPolicies returns the numa_maps policy of each mapping of at least
// minBytes (guest RAM).
func ramPolicies(t *testing.T, pid int, minBytes uint64) []string {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	big := map[string]bool{}
	for _, line := range strings.Split(string(maps), "\n") {
		lo, hi, ok := strings.Cut(strings.Fields(line + " x")[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && b-a >= minBytes {
			big[strings.TrimLeft(lo, "0")] = true
		}
	}
	nm, err := os.ReadFile(fmt.Sprintf("/proc/%d/numa_maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var pols []string
	for _, line := range strings.Split(string(nm), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && big[strings.TrimLeft(f[0], "0")] {
			pols = append(pols, f[1])
		}
	}
	return pols
}

func TestRunBadInputStartsNothing(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no qemu command", []string{"run", "--vcpus", "1", "--memory", "64M"}},
		{"not qemu", []string{"run", "--", "ls", "-l"}},
		{"bad emulator cpus", []string{"run", "--emulator-cpus", "x", "--", qemutest.Binary, "-smp", "1", "-m", "64"}},
		{"negative timeout", []string{"run", "--timeout", "-1s", "--", qemutest.Binary, "-smp", "1", "-m", "64"}},
		{"negative vcpus", []string{"run", "--vcpus", "-1", "--", qemutest.Binary, "-m", "64"}},
		{"does not fit", []string{"run", "--vcpus", "4096", "--memory", "64M", "--", qemutest.Binary}},
		{"conflicting -smp", []string{"run", "--vcpus", "2", "--", qemutest.Binary, "-smp", "3", "-m", "64"}},
		{"snapshot root", []string{"run", "--root", t.TempDir(), "--", qemutest.Binary, "-smp", "1", "-m", "64"}},
		{"numactl: node not on host", []string{"--membind=4095", "--", "true"}},
		{"numactl: no command", []string{"--membind=0"}},
		{"numactl: unknown option", []string{"--membind=0", "--touch", "true"}},
		{"numactl: conflicting policies", []string{"-m0", "-i0", "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(tt.args); got != 2 {
				t.Errorf("qnuma %q exited %d, want 2", tt.args, got)
			}
		})
	}
}

// TestRunPausedVM is the paused-VM acceptance: every vCPU thread's
// Cpus_allowed_list is the plan's, the guest RAM is bound to node 0, -S
// keeps it paused, and SIGTERM to qnuma stops qemu cleanly.
func TestRunPausedVM(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	spec := []string{"--vcpus", "2", "--memory", "64M", "--policy", "bind"}
	want := planJSONFor(t, bin, spec...)
	userSock := filepath.Join(t.TempDir(), "u.sock")
	args := append(append([]string{"run", "-v"}, spec...), "--")
	args = append(append(args, bareQEMU...), "-S", "-qmp", "unix:"+userSock+",server=on,wait=off")
	p := startQnuma(t, []string{bin}, args...)
	got := p.readPins(t, 2)
	for i, v := range want.VCPUs {
		if a := cpusAllowed(t, got.qemuPID, got.vcpuTID[i]); a != v.HostCPUs {
			t.Errorf("vcpu %d (tid %d) Cpus_allowed_list = %s, want the plan's %s", i, got.vcpuTID[i], a, v.HostCPUs)
		}
	}
	if a := cpusAllowed(t, got.qemuPID, got.qemuPID); a != want.EmulatorCPUs {
		t.Errorf("qemu main thread Cpus_allowed_list = %s, want the plan's emulator cpus %s", a, want.EmulatorCPUs)
	}
	pols := ramPolicies(t, got.qemuPID, 64<<20)
	if len(pols) == 0 {
		t.Error("no guest RAM mapping of 64 MiB in numa_maps")
	}
	for _, pol := range pols {
		if pol != "bind:0" {
			t.Errorf("guest RAM numa_maps policy %q, want bind:0", pol)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	mon, err := qmp.Dial(ctx, userSock)
	if err != nil {
		t.Fatalf("the user's own -qmp: %v", err)
	}
	st, err := mon.QueryStatus(ctx)
	mon.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st.Running {
		t.Errorf("vm status %q: -S was given, want paused", st.Status)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("qnuma exited %d after SIGTERM, want qemu's 0; stderr:\n%s", code, p.stderr)
	}
	requireGone(t, got.qemuPID)
}

func TestRunTimeoutExits124(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	args := append([]string{"run", "-v", "--vcpus", "1", "--memory", "64M", "--timeout", "1s", "--grace", "1s", "--"}, bareQEMU...)
	p := startQnuma(t, []string{bin}, args...)
	got := p.readPins(t, 1)
	if code := p.wait(t); code != 124 {
		t.Errorf("qnuma exited %d, want 124; stderr:\n%s", code, p.stderr)
	}
	requireGone(t, got.qemuPID)
}

func TestRunQEMUBadArgument(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	args := append([]string{"run", "-v", "--vcpus", "1", "--memory", "64M", "--"}, bareQEMU...)
	// Not last: qnuma refuses an unknown option it cannot tell the arity of
	// at the end of the line, so it gets a value and qemu refuses it.
	p := startQnuma(t, []string{bin}, append(args, "-no-such-option", "x")...)
	pid, _ := strconv.Atoi(p.waitLine(t, `^qnuma: started qemu pid=(\d+)`)[1])
	if code := p.wait(t); code != 1 {
		t.Errorf("qnuma exited %d, want qemu's 1", code)
	}
	for _, w := range []string{"-no-such-option: invalid option", "wait for qmp", "exited with status 1"} {
		if !strings.Contains(p.stderr.String(), w) {
			t.Errorf("stderr does not say %q:\n%s", w, p.stderr)
		}
	}
	requireGone(t, pid)
}

// TestRunUnprivileged runs qnuma as nobody: nothing in a launch needs root.
func TestRunUnprivileged(t *testing.T) {
	qemutest.Require(t)
	var prefix []string
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root and setpriv (util-linux) is missing to drop to nobody")
		}
		prefix = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"}
	}
	bin := buildQnuma(t)
	// --timeout leaves the checks below time to read qemu's /proc on a
	// loaded machine before it is stopped.
	args := append([]string{"run", "-v", "--vcpus", "2", "--memory", "64M", "--timeout", "8s", "--grace", "1s", "--"}, bareQEMU...)
	p := startQnuma(t, append(prefix, bin), args...)
	got := p.readPins(t, 2)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", got.qemuPID))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && !regexp.MustCompile(`(?m)^Uid:\s+65534\s`).Match(st) {
		t.Errorf("qemu does not run as nobody:\n%s", st)
	}
	for i, tid := range got.vcpuTID {
		if a := cpusAllowed(t, got.qemuPID, tid); a != got.vcpuCPUs[i] {
			t.Errorf("vcpu %d Cpus_allowed_list = %s, want %s", i, a, got.vcpuCPUs[i])
		}
	}
	if code := p.wait(t); code != 124 {
		t.Errorf("qnuma exited %d, want 124; stderr:\n%s", code, p.stderr)
	}
	requireGone(t, got.qemuPID)
}

// TestRunBootsTinyGuest: the guest's console reaches qnuma's stdout and
// its power-off is qnuma's exit status 0.
func TestRunBootsTinyGuest(t *testing.T) {
	qemutest.Require(t)
	vm.Require(t)
	kernel, initrd, err := vm.TinyGuest(context.Background())
	if err != nil {
		t.Skip("tiny guest unavailable: ", err)
	}
	bin := buildQnuma(t)
	args := append([]string{"run", "--vcpus", "2", "--memory", "256M", "--timeout", "5m", "--", qemutest.Binary, "-accel", "tcg,thread=multi"},
		vm.TinyGuestArgs(kernel, initrd)...)
	p := startQnuma(t, []string{bin}, args...)
	if code := p.wait(t); code != 0 {
		t.Errorf("qnuma exited %d, want 0 from the guest's power-off; stderr:\n%s", code, p.stderr)
	}
	out := p.stdout.String()
	if !strings.Contains(out, vm.TinyGuestMarker) {
		t.Errorf("stdout lacks %q:\n%s", vm.TinyGuestMarker, out)
	}
	if !strings.Contains(out, vm.TinyGuestPrefix+" vcpus 0-1") {
		t.Errorf("stdout does not show the guest's 2 vcpus:\n%s", out)
	}
}

func TestNumactlExecsAnyCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts qnuma: skipped under -short")
	}
	bin := buildQnuma(t)
	allowed, err := affinity.Real{}.SchedGetaffinity(0)
	if err != nil {
		t.Fatal(err)
	}
	cpu := allowed.List()[len(allowed.List())-1]
	script := `grep Cpus_allowed_list /proc/self/status; head -1 /proc/self/numa_maps; echo pid $$; exit 3`
	p := startQnuma(t, []string{bin}, "--membind=0", "-C", strconv.Itoa(cpu), "sh", "-c", script)
	if code := p.wait(t); code != 3 {
		t.Errorf("exit %d, want the command's 3; stderr:\n%s", code, p.stderr)
	}
	out := p.stdout.String()
	if want := fmt.Sprintf("Cpus_allowed_list:\t%d\n", cpu); !strings.Contains(out, want) {
		t.Errorf("output %q lacks %q", out, want)
	}
	if !strings.Contains(out, " bind:0 ") {
		t.Errorf("numa_maps in %q does not show bind:0", out)
	}
	// Like numactl, qnuma becomes the command: same pid.
	if want := fmt.Sprintf("pid %d\n", p.cmd.Process.Pid); !strings.Contains(out, want) {
		t.Errorf("output %q lacks %q: the command did not replace qnuma", out, want)
	}

	p = startQnuma(t, []string{bin}, "-m0", "--", "qnuma-no-such-command")
	// numactl exits 1 here; qnuma's rule is that bad input which started
	// nothing exits 2.
	if code := p.wait(t); code != 2 {
		t.Errorf("a missing command exited %d, want 2", code)
	}
	if !strings.Contains(p.stderr.String(), "execution of qnuma-no-such-command") {
		t.Errorf("stderr %q does not name the missing command", p.stderr)
	}
}

func TestNumactlQEMUPinsVCPUs(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	args := append([]string{"--membind", "0", "--verbose", "--state-dir", t.TempDir(), "--"}, bareQEMU...)
	p := startQnuma(t, []string{bin}, append(args, "-smp", "2", "-m", "64", "-S")...)
	got := p.readPins(t, 2)
	for i, tid := range got.vcpuTID {
		a, err := affinity.CPUsAllowed("/", got.qemuPID, tid)
		if err != nil {
			t.Fatal(err)
		}
		if a.String() != got.vcpuCPUs[i] {
			t.Errorf("vcpu %d Cpus_allowed_list = %s, want %s", i, a, got.vcpuCPUs[i])
		}
	}
	for _, pol := range ramPolicies(t, got.qemuPID, 64<<20) {
		if pol != "bind:0" {
			t.Errorf("guest RAM policy %q, want --membind's bind:0", pol)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	requireGone(t, got.qemuPID)
}

// TestNumactlExecQEMU: with --exec qnuma becomes qemu (same pid) and a
// detached helper pins the vCPUs and lets the guest run.
func TestNumactlExecQEMU(t *testing.T) {
	qemutest.Require(t)
	bin := buildQnuma(t)
	userSock := filepath.Join(t.TempDir(), "u.sock")
	args := append([]string{"--exec", "--membind=0", "--state-dir=" + t.TempDir(), "--"}, bareQEMU...)
	p := startQnuma(t, []string{bin}, append(args, "-smp", "2", "-m", "64", "-qmp", "unix:"+userSock+",server=on,wait=off")...)
	pid := p.cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	mon, err := qmp.DialWhenReady(ctx, userSock, p.done)
	if err != nil {
		t.Fatalf("qemu's qmp: %v; stderr:\n%s", err, p.stderr)
	}
	defer mon.Close()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(exe) != qemutest.Binary {
		t.Errorf("pid %d runs %s, want qnuma replaced by %s", pid, exe, qemutest.Binary)
	}
	// The helper resumes the guest once every thread is pinned: wait for
	// the RESUME event, or a status already running.
	st, err := mon.QueryStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for !st.Running {
		select {
		case ev := <-mon.Events():
			st.Running = ev.Name == "RESUME"
		case <-ctx.Done():
			t.Fatalf("the helper never resumed the vm; stderr:\n%s", p.stderr)
		}
	}
	cpus, err := mon.QueryCPUsFast(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node0, err := affinity.Real{}.SchedGetaffinity(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cpus {
		a, err := affinity.CPUsAllowed("/", pid, c.ThreadID)
		if err != nil {
			t.Fatal(err)
		}
		if a.IsEmpty() || !a.IsSubsetOf(node0) {
			t.Errorf("vcpu %d Cpus_allowed_list = %s, want within node 0's %s", c.CPUIndex, a, node0)
		}
	}
	if err := mon.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("qemu exited %d after quit, want 0", code)
	}
}

// TestZeroDurationsDocumented: --grace 0s and --qmp-timeout 0s mean the
// defaults (the launcher's rule); the help says so.
func TestZeroDurationsDocumented(t *testing.T) {
	for _, f := range []struct{ field, want string }{
		{"Grace", "0 means the default, 10s"},
		{"QMPTimeout", "0 means the default, 60s"},
	} {
		sf, ok := reflect.TypeOf(RunCmd{}).FieldByName(f.field)
		if !ok {
			t.Fatalf("RunCmd has no field %s", f.field)
		}
		if help := sf.Tag.Get("help"); !strings.Contains(help, f.want) {
			t.Errorf("help of %s = %q, want %q in it", f.field, help, f.want)
		}
	}
	if launcher.DefaultGrace != 10*time.Second || launcher.DefaultQMPTimeout != 60*time.Second {
		t.Errorf("launcher defaults %v and %v no longer what the help says", launcher.DefaultGrace, launcher.DefaultQMPTimeout)
	}
}
