package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/alecthomas/kong"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity/affinitytest"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/qemutest"
)

// parsePin parses a `qnuma pin` command line as main does.
func parsePin(t *testing.T, args ...string) (*PinCmd, error) {
	t.Helper()
	var cli CLI
	p, err := kong.New(&cli, kong.Name("qnuma"), kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(append([]string{"pin", "vm"}, args...)); err != nil {
		return nil, err
	}
	return &cli.Pin, nil
}

func TestParsePinRequest(t *testing.T) {
	emu := cpuset.New(0, 1)
	for _, tt := range []struct {
		name    string
		args    []string
		want    pinRequest
		wantErr string
	}{
		{"one vcpu", []string{"--vcpu", "1", "--cpus", "3"},
			pinRequest{VCPUs: map[int]cpuset.CPUSet{1: cpuset.New(3)}}, ""},
		{"pairs in order", []string{"--vcpu", "0", "--cpus", "2", "--iothread", "io0", "--cpus", "4-5", "--vcpu=1", "--cpus=3"},
			pinRequest{VCPUs: map[int]cpuset.CPUSet{0: cpuset.New(2), 1: cpuset.New(3)}, IOThreads: map[string]cpuset.CPUSet{"io0": cpuset.New(4, 5)}}, ""},
		{"emulator alone", []string{"--emulator", "0-1"},
			pinRequest{Emulator: &emu}, ""},
		{"cpus first", []string{"--cpus", "1", "--vcpu", "0"}, pinRequest{}, "--cpus 1 follows no --vcpu"},
		{"two cpus for one vcpu", []string{"--vcpu", "0", "--cpus", "1", "--cpus", "0"}, pinRequest{}, "--cpus 0 follows no --vcpu"},
		{"vcpu without cpus", []string{"--vcpu", "0", "--cpus", "1", "--vcpu", "1"}, pinRequest{}, "--vcpu 1 has no --cpus"},
		{"iothread without cpus", []string{"--iothread", "io0", "--vcpu", "1", "--cpus", "0"}, pinRequest{}, "--iothread io0 has no --cpus"},
		{"vcpu twice", []string{"--vcpu", "0", "--cpus", "1", "--vcpu", "0", "--cpus", "0"}, pinRequest{}, "--vcpu 0 given twice"},
		{"bad vcpu", []string{"--vcpu", "x", "--cpus", "1"}, pinRequest{}, `--vcpu "x"`},
		{"negative vcpu", []string{"--vcpu=-1", "--cpus", "1"}, pinRequest{}, `--vcpu "-1"`},
		{"bad cpus", []string{"--vcpu", "0", "--cpus", "1-"}, pinRequest{}, `--vcpu 0 --cpus "1-"`},
		{"huge cpu", []string{"--vcpu", "0", "--cpus", "99999999"}, pinRequest{}, `--cpus "99999999"`},
		{"bad emulator", []string{"--emulator", "a"}, pinRequest{}, `--emulator "a"`},
		{"nothing", nil, pinRequest{}, "nothing to pin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parsePin(t, tt.args...)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got, err := parsePinRequest(c.VCPU, c.IOThread, c.CPUs, c.Emulator)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !IsUsage(err) {
					t.Fatalf("error %v, want bad input containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.VCPUs) != fmt.Sprint(orEmpty(tt.want.VCPUs)) || fmt.Sprint(got.IOThreads) != fmt.Sprint(orEmptyS(tt.want.IOThreads)) ||
				(got.Emulator == nil) != (tt.want.Emulator == nil) || (got.Emulator != nil && !got.Emulator.Equals(*tt.want.Emulator)) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func orEmpty(m map[int]cpuset.CPUSet) map[int]cpuset.CPUSet {
	if m == nil {
		return map[int]cpuset.CPUSet{}
	}
	return m
}

func orEmptyS(m map[string]cpuset.CPUSet) map[string]cpuset.CPUSet {
	if m == nil {
		return map[string]cpuset.CPUSet{}
	}
	return m
}

// qemuThreads is a 2-vCPU qemu with an I/O thread, as /proc shows it with
// debug-threads=on.
func qemuThreads() []numastat.Thread {
	all := cpuset.New(0, 1, 2, 3)
	return []numastat.Thread{
		{TID: 100, Comm: "qemu-system-x86", VCPU: -1, Allowed: all},
		{TID: 101, Comm: "call_rcu", VCPU: -1, Allowed: all},
		{TID: 102, Comm: "IO io0", VCPU: -1, Allowed: all},
		{TID: 103, Comm: "IO averyverylon", VCPU: -1, Allowed: all}, // id=averyverylongid, cut by the kernel
		{TID: 104, Comm: "CPU 0/KVM", VCPU: 0, Allowed: cpuset.New(0)},
		{TID: 105, Comm: "CPU 1/KVM", VCPU: 1, Allowed: cpuset.New(1)},
	}
}

func TestPlanPins(t *testing.T) {
	emu := cpuset.New(3)
	got, err := planPins(qemuThreads(), nil, pinRequest{
		VCPUs:     map[int]cpuset.CPUSet{1: cpuset.New(2)},
		IOThreads: map[string]cpuset.CPUSet{"averyverylongid": cpuset.New(0)},
		Emulator:  &emu,
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range got {
		lines = append(lines, fmt.Sprintf("%s %d %s->%s", p.what(), p.TID, p.Old, p.New))
	}
	want := "emulator 100 0-3->3|emulator 101 0-3->3|emulator 102 0-3->3|iothread averyverylon 103 0-3->0|vcpu 1 105 1->2"
	if s := strings.Join(lines, "|"); s != want {
		t.Errorf("pins:\n%s\nwant\n%s", s, want)
	}
	vcpus, others := pinnedSets(qemuThreads(), got)
	if vcpus.String() != "0,2" || others.String() != "0,3" {
		t.Errorf("pinned sets: vcpus %s, others %s; want 0,2 and 0,3", vcpus, others)
	}

	noNames := qemuThreads()
	for i := range noNames {
		noNames[i].Comm, noNames[i].VCPU = "qemu-system-x86", -1
	}
	for _, tt := range []struct {
		name    string
		threads []numastat.Thread
		req     pinRequest
		wantErr string
	}{
		{"no thread names", noNames, pinRequest{VCPUs: map[int]cpuset.CPUSet{0: cpuset.New(1)}}, "debug-threads=on"},
		{"vcpu out of range", qemuThreads(), pinRequest{VCPUs: map[int]cpuset.CPUSet{2: cpuset.New(1)}}, "--vcpu 2: the VM has vcpus 0-1"},
		{"unknown iothread", qemuThreads(), pinRequest{IOThreads: map[string]cpuset.CPUSet{"io1": cpuset.New(1)}}, `no thread of this qemu is named "IO io1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := planPins(tt.threads, nil, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !IsUsage(err) {
				t.Errorf("error %v, want bad input containing %q", err, tt.wantErr)
			}
		})
	}
}

// A pin the kernel refuses puts back every pin already made, newest first,
// and says so; a thread that left the VM is never pinned.
func TestApplyPinsRestoresOnFailure(t *testing.T) {
	pins := []threadPin{
		{Kind: "vcpu", VCPU: 0, TID: 10, Old: cpuset.New(0), New: cpuset.New(2)},
		{Kind: "vcpu", VCPU: 1, TID: 11, Old: cpuset.New(1), New: cpuset.New(1)}, // unchanged: not touched
		{Kind: "vcpu", VCPU: 2, TID: 12, Old: cpuset.New(2), New: cpuset.New(3)},
		{Kind: "vcpu", VCPU: 3, TID: 13, Old: cpuset.New(3), New: cpuset.New(0)},
	}
	start := map[int]cpuset.CPUSet{10: cpuset.New(0), 11: cpuset.New(1), 12: cpuset.New(2), 13: cpuset.New(3)}
	ok := func(int) error { return nil }
	einval := errors.New("invalid argument")

	t.Run("refused", func(t *testing.T) {
		fake := &affinitytest.Fake{Affinity: clone(start)}
		fake.Fail = func(c affinitytest.Call) error {
			if c.TID == 13 {
				return einval
			}
			return nil
		}
		err := applyPins(fake, ok, pins)
		if !errors.Is(err, einval) || !strings.Contains(err.Error(), "pin vcpu 3 (tid 13) to cpus 0") || !strings.Contains(err.Error(), "the VM is as it was") {
			t.Fatalf("error %v, want vcpu 3's refusal and the VM as it was", err)
		}
		for tid, want := range start {
			if got := fake.Affinity[tid]; !got.Equals(want) {
				t.Errorf("tid %d on %s after the failure, want %s as before", tid, got, want)
			}
		}
		var order []string
		for _, c := range fake.Calls() {
			order = append(order, fmt.Sprintf("%d:%s", c.TID, c.Set))
		}
		if s := strings.Join(order, " "); s != "10:2 12:3 13:0 12:2 10:0" {
			t.Errorf("calls %s, want pins of 10, 12, 13 then 12 and 10 put back", s)
		}
	})
	t.Run("restore refused too", func(t *testing.T) {
		fake := &affinitytest.Fake{Affinity: clone(start)}
		fake.Fail = func(c affinitytest.Call) error {
			if c.TID == 13 || (c.TID == 10 && c.Set.Equals(cpuset.New(0))) {
				return einval
			}
			return nil
		}
		err := applyPins(fake, ok, pins)
		if err == nil || !strings.Contains(err.Error(), "vcpu 0 (tid 10) stays on 2, was 0") {
			t.Errorf("error %v, want it to say vcpu 0 stays on cpu 2", err)
		}
	})
	t.Run("emulator thread gone", func(t *testing.T) {
		// A worker thread that exited is passed over, not a failure.
		fake := &affinitytest.Fake{Affinity: clone(start)}
		emu := []threadPin{
			{Kind: "emulator", VCPU: -1, TID: 10, Old: cpuset.New(0), New: cpuset.New(1)},
			{Kind: "emulator", VCPU: -1, TID: 12, Old: cpuset.New(2), New: cpuset.New(1)},
			{Kind: "emulator", VCPU: -1, TID: 13, Old: cpuset.New(3), New: cpuset.New(1)},
		}
		err := applyPins(fake, func(tid int) error {
			if tid == 12 {
				return fmt.Errorf("tid 12: %w", errThreadGone)
			}
			return nil
		}, emu)
		if err != nil || !emu[1].gone || emu[0].gone || emu[2].gone {
			t.Fatalf("error %v, gone %v %v %v; want no error and only tid 12 gone", err, emu[0].gone, emu[1].gone, emu[2].gone)
		}
		if got := fake.Affinity[13]; !got.Equals(cpuset.New(1)) {
			t.Errorf("tid 13 on %s, want 1", got)
		}
		// A new thread since the first read goes to the emulator CPUs too.
		known := map[int]bool{10: true, 12: true, 13: true}
		extra := newEmulatorPins(known, []numastat.Thread{
			{TID: 10, VCPU: -1, Allowed: cpuset.New(1)},
			{TID: 14, Comm: "worker", VCPU: -1, Allowed: cpuset.New(0)},
			{TID: 15, Comm: "worker", VCPU: -1, Allowed: cpuset.New(1)},
		}, cpuset.New(1))
		if len(extra) != 1 || extra[0].TID != 14 || !known[15] {
			t.Errorf("new emulator pins %+v, want only tid 14", extra)
		}
	})
	t.Run("thread gone", func(t *testing.T) {
		fake := &affinitytest.Fake{Affinity: clone(start)}
		gone := errors.New("thread 12 is no longer one of qemu's")
		err := applyPins(fake, func(tid int) error {
			if tid == 12 {
				return gone
			}
			return nil
		}, pins)
		if !errors.Is(err, gone) {
			t.Fatalf("error %v, want %v", err, gone)
		}
		for _, c := range fake.Calls() {
			if c.TID == 12 {
				t.Errorf("thread 12 was pinned after its check failed: %+v", c)
			}
		}
		if got := fake.Affinity[10]; !got.Equals(cpuset.New(0)) {
			t.Errorf("tid 10 on %s, want 0 put back", got)
		}
	})
}

func clone(m map[int]cpuset.CPUSet) map[int]cpuset.CPUSet {
	c := map[int]cpuset.CPUSet{}
	for k, v := range m {
		c[k] = v
	}
	return c
}

// psEntry is vm name's entry in `qnuma ps --json`.
func psEntry(t *testing.T, bin, state, name string) psVM {
	t.Helper()
	out, err := exec.Command(bin, "ps", "--json", "--state-dir", state).Output()
	if err != nil {
		t.Fatalf("qnuma ps: %v", err)
	}
	var vms []psVM
	if err := json.Unmarshal(out, &vms); err != nil {
		t.Fatalf("qnuma ps --json: %v\n%s", err, out)
	}
	for _, v := range vms {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vm %s in qnuma ps:\n%s", name, out)
	return psVM{}
}

// plantEntry writes a ledger entry owned by this test process (alive), as
// another qnuma would have.
func plantEntry(t *testing.T, state, name string, qemu ledger.Proc, dedicated string) string {
	t.Helper()
	self, err := ledger.ProcOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	e := fmt.Sprintf(`{"version":1,"name":%q,"owner":{"pid":%d,"start_time":%d},"qemu":{"pid":%d,"start_time":%d},"host_nodes":[0],"memory_bytes":{"0":67108864},"vcpus":{"0":1},"dedicated_cpus":%q,"vcpu_cpus":%q,"created":"2026-01-01T00:00:00Z"}`,
		name, self.PID, self.StartTime, qemu.PID, qemu.StartTime, dedicated, dedicated)
	path := filepath.Join(state, name+".json")
	if err := os.WriteFile(path, []byte(e), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPinLive re-pins a paused VM that `qnuma run` supervises, from
// another qnuma process: exactly the threads asked for move, the ledger
// records it, and what the ledger or the host forbids is refused with
// nothing changed.
func TestPinLive(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	bin := buildQnuma(t)
	top, err := os.MkdirTemp("", "qnuma-pin-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(top, "qnuma") // made 0755 by root's run, like /run/qnuma
	args := []string{"run", "-v", "--state-dir", state, "--name", "s", "--vcpus", "2", "--memory", "64M", "--"}
	p := startQnuma(t, []string{bin}, append(append(args, bareQEMU...), "-S")...)
	pn := p.readPins(t, 2)
	if pn.vcpuCPUs[1] != "0-1" {
		t.Fatalf("shared vcpu 1 on %s, want it floating over 0-1", pn.vcpuCPUs[1])
	}
	pin := func(args ...string) (int, string) {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"pin", "--state-dir", state}, args...)...).CombinedOutput()
		return exitCodeOf(err), string(out)
	}
	before := threadCPUs(t, pn.qemuPID)

	code, out := pin("s", "--vcpu", "1", "--cpus", "0")
	if code != 0 || !strings.Contains(out, "vcpu 1") || !strings.Contains(out, "0-1 -> 0") {
		t.Fatalf("qnuma pin s --vcpu 1 --cpus 0: exit %d\n%s", code, out)
	}
	// Pinned by hand: locked, so qnuma balance leaves it alone.
	if !lockedInLedger(t, state, "s") || !strings.Contains(out, "vm s locked") {
		t.Errorf("pinned vm s not locked in the ledger:\n%s", out)
	}
	for tid, cpus := range threadCPUs(t, pn.qemuPID) {
		want := before[tid]
		if tid == pn.vcpuTID[1] {
			want = "0"
		}
		if cpus != want {
			t.Errorf("thread %d Cpus_allowed_list %s after pinning vcpu 1 (tid %d), want %s", tid, cpus, pn.vcpuTID[1], want)
		}
	}

	// By pid, vcpu 0 and the emulator threads too: the ledger records
	// where every thread now runs.
	code, out = pin(strconv.Itoa(pn.qemuPID), "--vcpu", "0", "--cpus", "0", "--emulator", "0", "--json")
	var res pinJSON
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.VM != "s" || !res.Recorded {
		t.Fatalf("qnuma pin PID --vcpu 0 --cpus 0 --emulator 0 --json: exit %d\n%s", code, out)
	}
	for tid, cpus := range threadCPUs(t, pn.qemuPID) {
		if cpus != "0" {
			t.Errorf("thread %d on %s, want 0", tid, cpus)
		}
	}
	if e := psEntry(t, bin, state, "s"); e.VCPUCPUs != "0" || e.EmulatorCPUs != "0" {
		t.Errorf("ledger after the pins: vcpu_cpus %q, emulator_cpus %q; want 0 and 0", e.VCPUCPUs, e.EmulatorCPUs)
	}
	pinned := threadCPUs(t, pn.qemuPID)
	unchanged := func(what string) {
		t.Helper()
		if now := threadCPUs(t, pn.qemuPID); fmt.Sprint(now) != fmt.Sprint(pinned) {
			t.Errorf("%s changed the threads: %v, were %v", what, now, pinned)
		}
		if e := psEntry(t, bin, state, "s"); e.VCPUCPUs != "0" || e.EmulatorCPUs != "0" {
			t.Errorf("%s changed the ledger: vcpu_cpus %q, emulator_cpus %q", what, e.VCPUCPUs, e.EmulatorCPUs)
		}
	}

	// Another user may read root's ledger and qemu's threads, not pin them.
	if os.Geteuid() == 0 {
		if runuser, err := exec.LookPath("runuser"); err == nil {
			out, err := exec.Command(runuser, "-u", "nobody", "--", bin, "pin", "s", "--state-dir", state, "--vcpu", "1", "--cpus", "1").CombinedOutput()
			if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "another user's ledger") {
				t.Errorf("qnuma pin as nobody on root's vm: exit %d\n%s\nwant exit 2, another user's", code, out)
			}
			unchanged("a pin by another user")
		}
	}

	// CPU 1 dedicated to another VM: refused, nothing changed.
	planted := plantEntry(t, state, "d", ledger.Proc{}, "1")
	code, out = pin("s", "--vcpu", "1", "--cpus", "1")
	if code != 2 || !strings.Contains(out, "dedicated") || !strings.Contains(out, "vm d") {
		t.Errorf("pin onto vm d's dedicated cpu: exit %d\n%s\nwant exit 2 naming vm d", code, out)
	}
	unchanged("a pin onto another vm's dedicated cpu")
	code, out = pin("s", "--emulator", "0-1")
	if code != 2 {
		t.Errorf("emulator threads onto vm d's dedicated cpu: exit %d\n%s\nwant exit 2", code, out)
	}
	unchanged("emulator threads onto another vm's dedicated cpu")

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bad vcpu index", []string{"s", "--vcpu", "2", "--cpus", "0"}, "the VM has vcpus 0-1"},
		{"cpu the host lacks", []string{"s", "--vcpu", "0", "--cpus", "7"}, "cpus 7 are not among"},
		{"unknown vm", []string{"nosuch", "--vcpu", "0", "--cpus", "0"}, "no vm nosuch"},
		{"vm without qemu", []string{"d", "--vcpu", "0", "--cpus", "0"}, "no qemu yet"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := pin(tt.args...)
			if code != 2 || !strings.Contains(out, tt.want) {
				t.Errorf("qnuma pin %q: exit %d\n%s\nwant exit 2 saying %q", tt.args, code, out, tt.want)
			}
			unchanged(tt.name)
		})
	}

	// A pid that is not QEMU, and a ledger entry whose qemu pid now
	// belongs to another process (start time differs): refused.
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	code, out = pin(strconv.Itoa(pn.vcpuTID[0]), "--vcpu", "0", "--cpus", "0")
	if code != 2 || !strings.Contains(out, "is a thread of qemu pid "+strconv.Itoa(pn.qemuPID)) {
		t.Errorf("qnuma pin on a vcpu thread id: exit %d\n%s\nwant exit 2, a thread", code, out)
	}
	code, out = pin(strconv.Itoa(sleep.Process.Pid), "--vcpu", "0", "--cpus", "0")
	if code != 2 || !strings.Contains(out, "not a QEMU") {
		t.Errorf("qnuma pin on a sleep pid: exit %d\n%s\nwant exit 2, not a QEMU", code, out)
	}
	other := qemutest.StartPID(t, "-smp", "2")
	otherStart, err := ledger.ProcOf(other)
	if err != nil {
		t.Fatal(err)
	}
	reused := plantEntry(t, state, "r", ledger.Proc{PID: other, StartTime: otherStart.StartTime + 1}, "")
	code, out = pin("r", "--vcpu", "0", "--cpus", "0")
	if code != 2 || !strings.Contains(out, "reused") {
		t.Errorf("qnuma pin on an entry whose qemu pid was reused: exit %d\n%s\nwant exit 2, reused", code, out)
	}
	os.Remove(reused)
	// A qemu without debug-threads names no vCPU thread.
	code, out = pin(strconv.Itoa(other), "--vcpu", "0", "--cpus", "0")
	if code != 2 || !strings.Contains(out, "debug-threads=on") {
		t.Errorf("qnuma pin on a qemu without thread names: exit %d\n%s\nwant exit 2 naming debug-threads=on", code, out)
	}

	// Control: without vm d the same pin goes through.
	if err := os.Remove(planted); err != nil {
		t.Fatal(err)
	}
	if code, out = pin("s", "--vcpu", "1", "--cpus", "1", "--unlock"); code != 0 {
		t.Errorf("pin onto cpu 1 once vm d is gone: exit %d\n%s", code, out)
	}
	if lockedInLedger(t, state, "s") || !strings.Contains(out, "vm s unlocked") {
		t.Errorf("pin --unlock left vm s locked:\n%s", out)
	}
	if got := cpusAllowed(t, pn.qemuPID, pn.vcpuTID[1]); got != "1" {
		t.Errorf("vcpu 1 on %s, want 1", got)
	}
	if e := psEntry(t, bin, state, "s"); e.VCPUCPUs != "0-1" {
		t.Errorf("ledger vcpu_cpus %q, want 0-1", e.VCPUCPUs)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("qnuma exited %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
}

// With --qmp, a qemu started without debug-threads is re-pinned: qnuma asks
// it over its QMP socket which threads are vCPU 1 and I/O thread io0, and
// pins exactly those; a socket of another qemu is refused, nothing changed.
func TestPinQMP(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	vm := qemutest.MustStart(t, "-smp", "2", "-object", "iothread,id=io0")
	other := qemutest.MustStart(t, "-smp", "2")
	var cpus []struct {
		Index int `json:"cpu-index"`
		TID   int `json:"thread-id"`
	}
	if err := vm.Execute("query-cpus-fast", nil, &cpus); err != nil {
		t.Fatal(err)
	}
	var ios []struct {
		ID  string `json:"id"`
		TID int    `json:"thread-id"`
	}
	if err := vm.Execute("query-iothreads", nil, &ios); err != nil || len(ios) != 1 {
		t.Fatalf("query-iothreads: %v %v", ios, err)
	}
	want := threadCPUs(t, vm.PID())
	for _, c := range cpus {
		if c.Index == 1 {
			want[c.TID] = "0"
		}
	}
	want[ios[0].TID] = "1"
	pid := strconv.Itoa(vm.PID())

	out, err := exec.Command(bin, "pin", pid, "--state-dir", state, "--qmp", other.Socket(), "--vcpu", "1", "--cpus", "0").CombinedOutput()
	if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "another qemu's") {
		t.Errorf("qnuma pin with another qemu's qmp socket: exit %d\n%s\nwant exit 2", code, out)
	}
	if got := threadCPUs(t, vm.PID()); got[ios[0].TID] != "0-1" {
		t.Errorf("refused pin changed the threads: %v", got)
	}

	out, err = exec.Command(bin, "pin", pid, "--state-dir", state, "--qmp", vm.Socket(), "--vcpu", "1", "--cpus", "0", "--iothread", "io0", "--cpus", "1").CombinedOutput()
	if code := exitCodeOf(err); code != 0 {
		t.Fatalf("qnuma pin --qmp: exit %d\n%s", code, out)
	}
	if got := threadCPUs(t, vm.PID()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("threads after qnuma pin --qmp: %v, want %v", got, want)
	}
}

// A pin the kernel refuses midway leaves the threads and the ledger as
// they were (exit 1, not bad input); one that goes through is recorded.
// The kernel is a fake here, the qemu and the ledger are real.
func TestPinRestoresLedgerOnFailure(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	vm := qemutest.MustStart(t, "-smp", "2", "-name", "p,debug-threads=on")
	q, err := ledger.ProcOf(vm.PID())
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	plantEntry(t, state, "p", q, "")
	l, err := ledger.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	entry := func() ledger.Entry {
		t.Helper()
		e, ok, err := l.Get(context.Background(), "p")
		if err != nil || !ok {
			t.Fatalf("get p: %v %v", ok, err)
		}
		return e
	}
	// plantEntry records vcpu_cpus as the dedicated list: none here.
	if _, err := l.Update(context.Background(), "p", func(e *ledger.Entry) error {
		e.VCPUCPUs = cpuset.New(0, 1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := entry()
	c, err := parsePin(t, "--state-dir", state, "--vcpu", "0", "--cpus", "0", "--vcpu", "1", "--cpus", "0")
	if err != nil {
		t.Fatal(err)
	}
	c.VM = "p"
	threads, err := numastat.ReadThreads("/", vm.PID())
	if err != nil {
		t.Fatal(err)
	}
	var vcpu1 int
	fake := &affinitytest.Fake{Affinity: map[int]cpuset.CPUSet{}}
	for _, th := range threads {
		fake.Affinity[th.TID] = th.Allowed
		if th.VCPU == 1 {
			vcpu1 = th.TID
		}
	}
	start := clone(fake.Affinity)
	einval := errors.New("invalid argument")
	fake.Fail = func(c affinitytest.Call) error {
		if c.TID == vcpu1 {
			return einval
		}
		return nil
	}
	var out, errOut strings.Builder
	err = c.run(context.Background(), &out, &errOut, fake)
	if !errors.Is(err, einval) || IsUsage(err) || !strings.Contains(err.Error(), "as it was") {
		t.Fatalf("pin refused by the kernel: %v, want the refusal, exit 1, the VM as it was", err)
	}
	if fmt.Sprint(fake.Affinity) != fmt.Sprint(start) {
		t.Errorf("threads after the refused pin: %v, want %v", fake.Affinity, start)
	}
	if got := entry(); !got.VCPUCPUs.Equals(before.VCPUCPUs) || !got.EmulatorCPUs.Equals(before.EmulatorCPUs) {
		t.Errorf("ledger after the refused pin: vcpu cpus %s, emulator cpus %s; want %s and %s as before", got.VCPUCPUs, got.EmulatorCPUs, before.VCPUCPUs, before.EmulatorCPUs)
	}

	fake.Fail = nil
	if err := c.run(context.Background(), &out, &errOut, fake); err != nil {
		t.Fatalf("pin: %v", err)
	}
	if got := entry(); got.VCPUCPUs.String() != "0" {
		t.Errorf("ledger after the pin: vcpu cpus %s, want 0", got.VCPUCPUs)
	}
}

// A dedicated VM moved to the other CPU gives its old CPU back: the ledger
// records the move, so the next dedicated VM is planned on the CPU it
// left.
func TestPinDedicatedRecorded(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	bin := buildQnuma(t)
	state := t.TempDir()
	args := []string{"run", "-v", "--state-dir", state, "--name", "a", "--cpus-dedicated", "--vcpus", "1", "--memory", "64M", "--"}
	p := startQnuma(t, []string{bin}, append(append(args, bareQEMU...), "-S")...)
	pa := p.readPins(t, 1)
	from := pa.vcpuCPUs[0]
	to := map[string]string{"0": "1", "1": "0"}[from]
	if to == "" {
		t.Fatalf("dedicated vcpu on %s, want one cpu", from)
	}
	nextDedicated := func() string {
		t.Helper()
		out, err := exec.Command(bin, "plan", "--json", "--state-dir", state, "--cpus-dedicated", "--vcpus", "1", "--memory", "64M").Output()
		if err != nil {
			t.Fatalf("qnuma plan: %v", err)
		}
		var pl planJSON
		if err := json.Unmarshal(out, &pl); err != nil || len(pl.VCPUs) != 1 {
			t.Fatalf("qnuma plan --json: %v\n%s", err, out)
		}
		return pl.VCPUs[0].HostCPUs
	}
	if got := nextDedicated(); got != to {
		t.Fatalf("before the pin, the next dedicated vm is planned on %s, want %s", got, to)
	}
	out, err := exec.Command(bin, "pin", "a", "--state-dir", state, "--vcpu", "0", "--cpus", to, "--emulator", to).CombinedOutput()
	if code := exitCodeOf(err); code != 0 {
		t.Fatalf("qnuma pin a: exit %d\n%s", code, out)
	}
	for tid, cpus := range threadCPUs(t, pa.qemuPID) {
		if cpus != to {
			t.Errorf("vm a's thread %d on %s after the pin, want %s", tid, cpus, to)
		}
	}
	if e := psEntry(t, bin, state, "a"); e.DedicatedCPUs != to || e.VCPUCPUs != to || e.EmulatorCPUs != to {
		t.Errorf("ledger: dedicated %q, vcpu %q, emulator %q; want all %s", e.DedicatedCPUs, e.VCPUCPUs, e.EmulatorCPUs, to)
	}
	if got := nextDedicated(); got != from {
		t.Errorf("after the pin, the next dedicated vm is planned on %s, want the cpu a left, %s", got, from)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("qnuma exited %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
}

func TestParseTgid(t *testing.T) {
	for in, want := range map[string]int{
		"Name:\tqemu\nTgid:\t42\nPid:\t43\n": 42,
		"Tgid:\t7":                           7,
		"Name:\tx\n":                         -1,
		"Tgid:\tx\n":                         -1,
		"Tgid:\t0\n":                         -1,
	} {
		got, err := parseTgid([]byte(in))
		if (err != nil) != (want < 0) || (want > 0 && got != want) {
			t.Errorf("parseTgid(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// lockedInLedger reads whether vm name's entry is locked.
func lockedInLedger(t *testing.T, state, name string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var e ledger.Entry
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e.Locked
}

// TestPinLock: --lock and --unlock alone mark a ledger VM for qnuma
// balance and touch no thread; what is not in the ledger is refused.
func TestPinLock(t *testing.T) {
	state := t.TempDir()
	plantEntry(t, state, "w", ledger.Proc{PID: 1, StartTime: 1}, "")
	pinLock := func(args ...string) (string, error) {
		t.Helper()
		var cli CLI
		p, err := kong.New(&cli, kong.Name("qnuma"), kong.Exit(func(int) { t.Fatal("kong exited") }))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Parse(append([]string{"pin", "--state-dir", state}, args...)); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		sys := &affinitytest.Fake{}
		err = cli.Pin.run(context.Background(), &out, &out, sys)
		if len(sys.Calls()) != 0 {
			t.Errorf("qnuma pin %q made syscalls: %v", args, sys.Calls())
		}
		return out.String(), err
	}
	if lockedInLedger(t, state, "w") {
		t.Fatal("a new entry is locked")
	}
	for _, tt := range []struct {
		args   []string
		locked bool
		out    string
	}{
		{[]string{"w", "--lock"}, true, "vm w locked: qnuma balance leaves it where it is"},
		{[]string{"w", "--lock"}, true, "vm w locked"},
		{[]string{"w", "--unlock"}, false, "vm w unlocked: qnuma balance may move it"},
		{[]string{"1", "--lock", "--json"}, true, `"locked": true`}, // by its qemu's pid
		{[]string{"w", "--unlock", "--json"}, false, `"locked": false`},
	} {
		out, err := pinLock(tt.args...)
		if err != nil || !strings.Contains(out, tt.out) || lockedInLedger(t, state, "w") != tt.locked {
			t.Errorf("qnuma pin %q: %v, output %q, locked %v; want %q, locked %v", tt.args, err, out, lockedInLedger(t, state, "w"), tt.out, tt.locked)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"w", "--lock", "--unlock"}, "--lock and --unlock: give one"},
		{[]string{"nosuch", "--lock"}, "no vm nosuch in the ledger"},
		{[]string{"2147483646", "--unlock"}, "no vm 2147483646 in the ledger"},
		{[]string{"bad/name", "--lock"}, "bad/name"},
	} {
		_, err := pinLock(tt.args...)
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("qnuma pin %q: %v, want bad input saying %q", tt.args, err, tt.want)
		}
		if lockedInLedger(t, state, "w") {
			t.Errorf("qnuma pin %q locked vm w", tt.args)
		}
	}
}
