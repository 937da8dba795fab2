package qemutest

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestStartPausedWithMemdev(t *testing.T) {
	vm := MustStart(t, "-m", "64M", "-object", "memory-backend-ram,id=m0,size=64M", "-machine", "pc,memory-backend=m0")
	var st struct {
		Running bool   `json:"running"`
		Status  string `json:"status"`
	}
	if err := vm.Execute("query-status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Running || st.Status != "prelaunch" {
		t.Errorf("query-status = %+v, want a VM paused before it ran (prelaunch)", st)
	}
	devs, err := vm.Memdevs()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].ID != "m0" || devs[0].Size != 64<<20 {
		t.Errorf("query-memdev = %+v, want m0 of 64 MiB", devs)
	}
}

func TestStartRefusedSaysWhy(t *testing.T) {
	Require(t)
	_, err := Start(t, "-object", "memory-backend-ram,id=m0,size=12x")
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "size") {
		t.Fatalf("Start with a bad size = %v, want QEMU's exit and its message about the size", err)
	}
}

func TestExecuteKeepsQMPError(t *testing.T) {
	vm := MustStart(t)
	err := vm.Execute("no-such-command", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "CommandNotFound") {
		t.Fatalf("Execute(no-such-command) = %v, want QEMU's CommandNotFound", err)
	}
}

func TestStoppedWhenTestEnds(t *testing.T) {
	Require(t)
	var pid int
	t.Run("vm", func(t *testing.T) { pid = StartPID(t) })
	if pid == 0 {
		t.Fatal("no VM started")
	}
	// Reaped by the subtest's cleanup: the pid names no process now.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) after the test = %v, want ESRCH: qemu outlived its test", pid, err)
	}
}
