package affinity

import (
	"errors"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"
)

// The page calls on this process's own memory: every host has node 0.
func TestPagesOnSelf(t *testing.T) {
	const size = 16 << 12
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	base := Addr(m)
	if err := (Real{}).Mbind(base, size, MPOLBind, cpuset.New(0)); err != nil {
		t.Fatalf("mbind node 0: %v", err)
	}
	// A node that exists nowhere is refused, not ignored.
	if err := (Real{}).Mbind(base, size, MPOLBind, cpuset.New(4000)); !errors.Is(err, unix.EINVAL) {
		t.Errorf("mbind node 4000 = %v, want EINVAL", err)
	}
	for i := 0; i < 8; i++ {
		m[i<<12] = 1 // pages 0-7 present, 8-15 not
	}
	addrs, nodes, status := make([]uintptr, 16), make([]int, 16), make([]int, 16)
	for i := range addrs {
		addrs[i] = base + uintptr(i<<12)
	}
	if err := (Real{}).MovePages(os.Getpid(), addrs, nodes, status); err != nil {
		t.Fatalf("move_pages: %v", err)
	}
	for i, s := range status {
		want := 0
		if i >= 8 {
			want = -int(unix.ENOENT)
		}
		if s != want {
			t.Errorf("page %d status %d, want %d", i, s, want)
		}
	}
	query := make([]int, 16)
	if err := (Real{}).PageNodes(os.Getpid(), addrs, query); err != nil || !slices.Equal(query, status) {
		t.Errorf("PageNodes = %v, %v; want %v", query, err, status)
	}
	if err := (Real{}).MovePages(os.Getpid(), addrs, nodes[:3], status); err == nil {
		t.Error("MovePages with fewer nodes than addresses: nil error")
	}
	if left, err := (Real{}).MigratePages(os.Getpid(), cpuset.New(0), cpuset.New(0)); err != nil || left != 0 {
		t.Errorf("migrate_pages 0 -> 0 = %d, %v", left, err)
	}
	if _, err := (Real{}).MigratePages(os.Getpid(), cpuset.New(), cpuset.New(0)); err == nil {
		t.Error("migrate_pages from no node: nil error")
	}
}
