package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/qemutest"
)

// qnuma move on this one-node host, with a real qemu under qnuma run: the
// refusals change nothing (exit 2), and a move to the node the VM is on
// re-pins its threads, moves no page, and is recorded (NMIG 1). The
// moves between nodes are proven in the test host (test/vm).
func TestMoveLive(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	bin := buildQnuma(t)
	top, err := os.MkdirTemp("", "qnuma-move-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	state := filepath.Join(top, "qnuma")
	args := []string{"run", "-v", "--state-dir", state, "--name", "m", "--vcpus", "2", "--memory", "64M", "--prealloc", "--"}
	p := startQnuma(t, []string{bin}, append(append(args, bareQEMU...), "-S")...)
	pn := p.readPins(t, 2)
	fixed := startQnuma(t, []string{bin}, append([]string{"run", "-v", "--state-dir", state, "--name", "f", "--vcpus", "1", "--memory", "64M", "--memory-backend", "ram", "--"}, append(bareQEMU, "-S")...)...)
	fixed.readPins(t, 1)
	move := func(args ...string) (int, string) {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"move", "--state-dir", state}, args...)...).CombinedOutput()
		return exitCodeOf(err), string(out)
	}
	before := threadCPUs(t, pn.qemuPID)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"m", "--to-nodes", "1"}, "this host has no node 1"},
		{[]string{"m"}, "give --to-nodes LIST or --map"},
		{[]string{"m", "--to-nodes", "0", "--map", "0:0"}, "one of them"},
		{[]string{"m", "--map", "3:0"}, "has no guest node 3"},
		{[]string{"m", "--map", "0:x"}, "guest:host pairs"},
		{[]string{"m", "--to-nodes", "0", "--rate", "fast"}, "--rate"},
		{[]string{"f", "--to-nodes", "0"}, "memory-backend-ram"},
		{[]string{"nosuch", "--to-nodes", "0"}, "no vm nosuch"},
	} {
		code, out := move(tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("qnuma move %q: exit %d, want 2 naming %q:\n%s", tc.args, code, tc.want, out)
		}
	}
	if now := threadCPUs(t, pn.qemuPID); fmt.Sprint(now) != fmt.Sprint(before) {
		t.Errorf("refused moves changed the threads: %v, were %v", now, before)
	}

	code, out := move("m", "--to-nodes", "0", "--json")
	var res moveJSON
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("qnuma move m --to-nodes 0 --json: exit %d\n%s", code, out)
	}
	if res.VM != "m" || res.PID != pn.qemuPID || res.BytesMoved != 0 || !res.NothingMoved || len(res.GuestNodes) != 1 || res.GuestNodes[0].PagesAbsent != 0 {
		t.Errorf("move in place = %+v, want vm m, nothing moved, its one guest node all present", res)
	}
	vcpus := 0
	for _, th := range res.Threads {
		if th.Kind == "vcpu" {
			vcpus++
		}
	}
	if vcpus != 2 {
		t.Errorf("%d vcpu threads re-pinned, want 2: %+v", vcpus, res.Threads)
	}
	// qnuma ps says which can be moved, and how often each was.
	if e := psEntry(t, bin, state, "m"); !e.Movable || e.NMIG != 1 || e.NotMovable != "" {
		t.Errorf("qnuma ps: vm m movable %v, nmig %d, %q; want movable, moved once", e.Movable, e.NMIG, e.NotMovable)
	}
	if e := psEntry(t, bin, state, "f"); e.Movable || !strings.Contains(e.NotMovable, "memory-backend-ram") || e.NMIG != 0 {
		t.Errorf("qnuma ps: vm f movable %v (%q), nmig %d; want not movable, naming its ram backend", e.Movable, e.NotMovable, e.NMIG)
	}
	// The ledger records the move: qnuma stat's NMIG.
	st, err := exec.Command(bin, "stat", "--state-dir", state, "--json", "m").Output()
	if err != nil {
		t.Fatal(err)
	}
	var sv []statVM
	if err := json.Unmarshal(st, &sv); err != nil || len(sv) != 1 || sv[0].NMIG != 1 || sv[0].Moves[0].By != "qnuma move" {
		t.Errorf("qnuma stat after one move: %s (%v)", st, err)
	}
}
