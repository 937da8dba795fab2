package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
)

// placeOne puts a VM with dedicated cpus on one node into the ledger in dir,
// owned by this test process.
func placeOne(t *testing.T, dir, name string, node int, mem uint64, cpus ...int) *ledger.Reservation {
	t.Helper()
	l, err := ledger.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{
		Spec:       plan.Spec{VCPUs: len(cpus), MemoryBytes: mem, Dedicated: true},
		HostNodes:  []int{node},
		GuestNodes: []plan.GuestNode{{HostNodes: []int{node}, MemoryBytes: mem}},
	}
	for i, c := range cpus {
		p.VCPUs = append(p.VCPUs, plan.VCPU{ID: i, HostCPUs: cpuset.New(c)})
	}
	p.EmulatorCPUs = cpuset.New(cpus...)
	r, err := l.Place(context.Background(), name, func([]plan.Placed) (*plan.Plan, error) { return p, nil })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPs(t *testing.T) {
	dir := t.TempDir()
	a := placeOne(t, dir, "db", 1, 2<<30, 8, 9)
	if err := a.SetQEMU(os.Getppid()); err != nil { // a live process stands in for qemu
		t.Fatal(err)
	}
	placeOne(t, dir, "", 0, 512<<20, 2)
	now := a.Entry.Created.Add(90 * time.Second)

	var out bytes.Buffer
	if err := (&PsCmd{JSON: true, StateDir: dir}).write(&out, now); err != nil {
		t.Fatal(err)
	}
	var got []psVM
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if len(got) != 2 {
		t.Fatalf("ps --json = %s", out.String())
	}
	db := got[0]
	if db.Name != "db" || db.PID != os.Getppid() || db.OwnerPID != os.Getpid() || !reflect.DeepEqual(db.HostNodes, []int{1}) ||
		db.VCPUs != 2 || db.MemoryBytes != 2<<30 || db.DedicatedCPUs != "8-9" || db.VCPUCPUs != "8-9" || db.EmulatorCPUs != "8-9" || db.AgeSeconds != 90 {
		t.Errorf("db = %+v", db)
	}
	if got[1].Name != "vm-1" || got[1].PID != 0 {
		t.Errorf("second vm = %+v, want vm-1 still starting", got[1])
	}

	out.Reset()
	if err := (&PsCmd{StateDir: dir}).write(&out, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!reflect.DeepEqual(strings.Fields(lines[1]), []string{"db", itoa(os.Getppid()), "1", "2", "8-9", "2G", "1m30s"}) ||
		!strings.Contains(lines[2], "starting (qnuma ") {
		t.Errorf("ps table:\n%s", out.String())
	}
}

func TestPsReportsCorruptEntries(t *testing.T) {
	dir := t.TempDir()
	placeOne(t, dir, "ok", 0, 1<<30, 1)
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := (&PsCmd{StateDir: dir}).write(&out, time.Now())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("err = %v, want exit 1 naming bad.json", err)
	}
	if !strings.Contains(out.String(), "ok") {
		t.Errorf("the readable vm is not listed:\n%s", out.String())
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// ps and plan read the ledger and create nothing: no state dir, no lock
// (issue 11, item 24).
func TestPsAndPlanCreateNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	var out bytes.Buffer
	if err := (&PsCmd{JSON: true, StateDir: dir}).write(&out, time.Now()); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("ps of a missing ledger printed %s, want []", out.String())
	}
	cmd, err := parsePlan(t, "--state-dir", dir, "--qemu-version", "7.2", "--vcpus", "1", "--memory", "64M")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.placed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ps or plan made the state dir: %v", err)
	}
}

// A --state-dir that is a dangling symlink is bad input that says so, not
// "file exists" (issue 11, item 24).
func TestPsDanglingStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Symlink(dir+"-gone", dir); err != nil {
		t.Fatal(err)
	}
	err := (&PsCmd{StateDir: dir}).write(io.Discard, time.Now())
	if !IsUsage(err) || !strings.Contains(err.Error(), "is a dangling symlink") || strings.Contains(err.Error(), "file exists") {
		t.Errorf("ps --state-dir DANGLING: %v, want bad input saying it is a dangling symlink", err)
	}
}

// A symlink among the entries is reported, with the readable VMs listed,
// not followed and not fatal (issue 11, item 16).
func TestPsReportsSymlinkEntry(t *testing.T) {
	dir := t.TempDir()
	placeOne(t, dir, "ok", 0, 1<<30, 1)
	if err := os.Symlink("/nonexistent.json", filepath.Join(dir, "x.json")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := (&PsCmd{StateDir: dir}).write(&out, time.Now())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(err.Error(), "x.json") || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("err = %v, want exit 1 naming the symlink x.json", err)
	}
	if !strings.Contains(out.String(), "ok") {
		t.Errorf("the readable vm is not listed:\n%s", out.String())
	}
}

// Any user can list root's ledger: ps takes no lock and writes nothing
// (issue 11, item 24).
func TestPsRootLedgerAsNobody(t *testing.T) {
	if testing.Short() {
		t.Skip("builds qnuma: skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, to make a root ledger and run ps as nobody")
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		t.Skip("needs runuser (util-linux), to run ps as nobody")
	}
	top, err := os.MkdirTemp("", "qnuma-ps-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(top, "qnuma") // made 0755 by root's Place, like /run/qnuma
	placeOne(t, state, "db", 0, 1<<30, 1)
	bin := buildQnuma(t)
	out, err := exec.Command(runuser, "-u", "nobody", "--", bin, "ps", "--json", "--state-dir", state).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"name": "db"`) {
		t.Errorf("qnuma ps as nobody on root's ledger: %v\n%s\nwant vm db listed", err, out)
	}
	// plan reads it too, and neither leaves anything behind.
	out, err = exec.Command(runuser, "-u", "nobody", "--", bin, "plan", "--state-dir", state, "--qemu-version", "7.2", "--vcpus", "1", "--memory", "64M").CombinedOutput()
	if err != nil {
		t.Errorf("qnuma plan as nobody on root's ledger: %v\n%s", err, out)
	}
	des, _ := os.ReadDir(state)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if strings.Join(names, " ") != "db.json lock" {
		t.Errorf("root's ledger holds %v after nobody's ps and plan, want db.json and lock", names)
	}
}

// TestPsWaiting: a waiting VM (qnuma run --wait) is listed after the
// ledger's VMs, state waiting, with what it asks for and what was short.
func TestPsWaiting(t *testing.T) {
	dir := t.TempDir()
	a := placeOne(t, dir, "a", 0, 1<<30, 1)
	l, err := ledger.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := l.Wait(context.Background(), "c", plan.Spec{VCPUs: 2, MemoryBytes: 3 << 30}, "no node has 3 GiB free")
	if err != nil {
		t.Fatal(err)
	}
	now := tk.Entry().Since.Add(5 * time.Second)
	var out bytes.Buffer
	if err := (&PsCmd{JSON: true, StateDir: dir}).write(&out, now); err != nil {
		t.Fatal(err)
	}
	var got []psVM
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if len(got) != 2 || got[0].Name != "a" || got[0].State != "starting" {
		t.Fatalf("ps --json = %s", out.String())
	}
	if c := got[1]; c.Name != "c" || c.State != "waiting" || c.OwnerPID != os.Getpid() || c.VCPUs != 2 || c.MemoryBytes != 3<<30 || c.AgeSeconds != 5 || c.WaitingFor != "no node has 3 GiB free" || c.PID != 0 {
		t.Errorf("waiting vm = %+v", c)
	}
	out.Reset()
	if err := (&PsCmd{StateDir: dir}).write(&out, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !reflect.DeepEqual(strings.Fields(lines[2]), []string{"c", "waiting", "(qnuma", itoa(os.Getpid()) + ")", "-", "2", "-", "3G", "5s"}) {
		t.Errorf("ps table:\n%s", out.String())
	}
	// Control: once it stops waiting, ps lists a alone.
	if err := tk.Remove(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := (&PsCmd{StateDir: dir}).write(&out, now); err != nil || strings.Contains(out.String(), "waiting") {
		t.Errorf("after the wait: %v\n%s", err, out.String())
	}
	a.Release()
}
