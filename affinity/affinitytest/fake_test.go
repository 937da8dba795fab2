package affinitytest

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"
)

func TestFakeRecordsAndRefuses(t *testing.T) {
	f := &Fake{Fail: func(c Call) error {
		if c.Op == "sched_setaffinity" && c.TID == 2 {
			return unix.EINVAL
		}
		return nil
	}}
	if err := f.SetMempolicy(2, cpuset.New(1)); err != nil {
		t.Fatal(err)
	}
	if err := f.SchedSetaffinity(1, cpuset.New(3)); err != nil {
		t.Fatal(err)
	}
	if err := f.SchedSetaffinity(2, cpuset.New(3)); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("refused call returned %v, want EINVAL", err)
	}
	if got, err := f.SchedGetaffinity(1); err != nil || !got.Equals(cpuset.New(3)) {
		t.Fatalf("SchedGetaffinity(1) = %s, %v; want 3", got, err)
	}
	if _, err := f.SchedGetaffinity(2); err == nil {
		t.Fatal("SchedGetaffinity of a refused pin succeeded")
	}
	want := []string{"set_mempolicy", "sched_setaffinity", "sched_setaffinity", "sched_getaffinity", "sched_getaffinity"}
	var got []string
	for _, c := range f.Calls() {
		got = append(got, c.Op)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}
