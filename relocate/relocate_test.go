package relocate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/qemutest"
)

func TestParseMaps(t *testing.T) {
	b := []byte(`7f0078000000-7f0080000000 rw-s 00000000 00:01 1025                       /memfd:memory-backend-memfd (deleted)
7f0080000000-7f0080021000 rw-p 00000000 00:00 0
55d4c0a00000-55d4c0c00000 r-xp 00100000 fd:01 262315                     /usr/bin/qemu-system-x86_64
`)
	ls, err := parseMaps(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 3 {
		t.Fatalf("%d lines, want 3", len(ls))
	}
	if l := ls[0]; l.start != 0x7f0078000000 || l.end != 0x7f0080000000 || !l.shared || l.dev != "00:01" || l.inode != 1025 {
		t.Errorf("memfd line = %+v", l)
	}
	if l := ls[2]; l.shared || l.offset != 0x100000 || l.dev != "fd:01" {
		t.Errorf("binary line = %+v", l)
	}
	for _, bad := range []string{"7f00-7e00 rw-s 0 00:01 1", "nonsense", "7f00 rw-s 0 00:01 1", "1000-2000 rw-s zz 00:01 1"} {
		if _, err := parseMaps([]byte(bad)); err == nil {
			t.Errorf("parseMaps(%q) = nil error", bad)
		}
	}
	if got := devString(0xfd01); got != "fd:01" {
		t.Errorf("devString(0xfd01) = %q", got)
	}
}

func TestMatch(t *testing.T) {
	const m = 1 << 20
	found := []Backend{
		{FD: 10, Size: 64 * m, Policy: "bind", PolicyNodes: []int{0}},
		{FD: 11, Size: 32 * m, Policy: "bind", PolicyNodes: []int{1}},
		{FD: 12, Size: 16 * m, Policy: "bind", PolicyNodes: []int{1}}, // a hotplug backend
	}
	nodes := []GuestNode{{ID: 0, MemoryBytes: 64 * m, HostNodes: []int{0}}, {ID: 1, MemoryBytes: 32 * m, HostNodes: []int{1}}}
	parts, rest, err := Match(nodes, found, map[int][]int{0: {2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].GuestNode != 0 || parts[0].Backend.FD != 10 || parts[0].To[0] != 2 || parts[0].From[0] != 0 || parts[0].Mode != affinity.MPOLBind {
		t.Errorf("parts = %+v, want guest node 0's fd 10 to node 2", parts)
	}
	if len(rest) != 1 || rest[0].FD != 12 {
		t.Errorf("rest = %+v, want fd 12 (no guest node's)", rest)
	}
	// Interleave over two nodes.
	il := []GuestNode{{ID: 0, MemoryBytes: 64 * m, HostNodes: []int{0}, Policy: "interleave"}}
	if _, _, err := Match(il, found, map[int][]int{0: {1, 2}}); !errors.Is(err, ErrNotMovable) {
		t.Errorf("interleave guest node against a bind memfd = %v, want ErrNotMovable", err)
	}
	// Anonymous guest RAM: no memfd at all.
	if _, _, err := Match(nodes, nil, map[int][]int{0: {1}}); !errors.Is(err, ErrNotMovable) || !strings.Contains(err.Error(), "guest node 0") {
		t.Errorf("no memfds = %v, want ErrNotMovable naming guest node 0", err)
	}
	// Two guest nodes alike going to different nodes cannot be told apart.
	twin := []Backend{{FD: 1, Size: 8 * m, Policy: "bind", PolicyNodes: []int{0}}, {FD: 2, Size: 8 * m, Policy: "bind", PolicyNodes: []int{0}}}
	alike := []GuestNode{{ID: 0, MemoryBytes: 8 * m, HostNodes: []int{0}}, {ID: 1, MemoryBytes: 8 * m, HostNodes: []int{0}}}
	if _, _, err := Match(alike, twin, map[int][]int{0: {1}}); !errors.Is(err, ErrNotMovable) {
		t.Errorf("alike guest nodes split = %v, want ErrNotMovable", err)
	}
	if parts, _, err := Match(alike, twin, map[int][]int{0: {1}, 1: {1}}); err != nil || len(parts) != 2 || parts[0].Backend.FD == parts[1].Backend.FD {
		t.Errorf("alike guest nodes together = %+v, %v; want both, one memfd each", parts, err)
	}
}

// failPages fails move_pages after n calls; the rest is the kernel's.
type failPages struct {
	affinity.Real
	moves, failAt int
	mbinds        [][]int
}

func (f *failPages) MovePages(pid int, addrs []uintptr, nodes []int, status []int) error {
	f.moves++
	if f.moves == f.failAt {
		return errors.New("move_pages: injected failure")
	}
	return f.Real.MovePages(pid, addrs, nodes, status)
}

func (f *failPages) PageNodes(pid int, addrs []uintptr, status []int) error {
	for i := range status {
		status[i] = 5
	}
	return nil
}

func (f *failPages) Mbind(addr, length uintptr, mode int, nodes cpuset.CPUSet) error {
	f.mbinds = append(f.mbinds, nodes.List())
	return f.Real.Mbind(addr, length, mode, nodes)
}

// A real qemu's memfd guest RAM is found with its size, policy and pages;
// a move to the node it is on sets the policy and moves nothing.
func TestFindAndRunOnQEMU(t *testing.T) {
	pid := qemutest.StartPID(t, "-m", "64M", "-object", "memory-backend-memfd,id=m0,size=64M,host-nodes=0,policy=bind,prealloc=on", "-machine", "memory-backend=m0")
	found, err := Find("/", pid)
	if err != nil {
		t.Fatal(err)
	}
	var ram *Backend
	for i := range found {
		if found[i].Size == 64<<20 {
			ram = &found[i]
		}
	}
	if ram == nil {
		t.Fatalf("no 64 MiB memfd among %+v", found)
	}
	if ram.Policy != "bind" || len(ram.PolicyNodes) != 1 || ram.PolicyNodes[0] != 0 || ram.Pages[0] < 16000 {
		t.Errorf("guest RAM memfd = policy %s %v, pages %v; want bind 0, 16384 pages on node 0", ram.Policy, ram.PolicyNodes, ram.Pages)
	}
	parts, _, err := Match([]GuestNode{{ID: 0, MemoryBytes: 64 << 20, HostNodes: []int{0}}}, found, map[int][]int{0: {0}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), affinity.Real{}, Job{PID: pid, Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Parts) != 1 || res.MovedBytes() != 0 || res.Parts[0].Absent != 0 {
		t.Errorf("move to the node it is on: %+v, want nothing moved, nothing absent", res.Parts)
	}

	// A failure of move_pages puts the policy back and says the VM is as
	// it was: the fake says every page is on node 5, so a move is tried,
	// and the first move_pages fails.
	fp := &failPages{failAt: 1}
	_, err = Run(context.Background(), fp, Job{PID: pid, Parts: parts})
	if err == nil || !strings.Contains(err.Error(), "injected failure") || !strings.Contains(err.Error(), "policies were put back") {
		t.Errorf("Run with move_pages failing = %v, want the failure and the policies put back", err)
	}
	if len(fp.mbinds) != 2 || fp.mbinds[0][0] != 0 || fp.mbinds[1][0] != 0 {
		t.Errorf("mbind calls %v, want the new policy then the old one back", fp.mbinds)
	}
	// A memfd closed and replaced since Find is refused before any change.
	gone := parts
	gone[0].Backend.Inode++
	if _, err := Run(context.Background(), fp, Job{PID: pid, Parts: gone}); err == nil || !strings.Contains(err.Error(), "no longer the memfd") || !strings.Contains(err.Error(), "as it was") {
		t.Errorf("Run with a stale inode = %v, want a refusal that changed nothing", err)
	}
}
