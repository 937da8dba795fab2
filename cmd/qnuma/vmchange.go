package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/qnuma/qnuma/ledger"
)

// changePlanned, when set (tests only), is called by qnuma vcpus and
// qnuma memory once the change is decided and before qemu is asked: the
// window in which a second change of the same VM, unserialized, would
// decide on the same state.
var changePlanned func(vm string)

// lockChange takes vm's change lock (ledger.LockVM) for the rest of a
// qnuma vcpus or memory, so that a second change of the same VM waits for
// this one to finish and then sees what it did; changes of other VMs and
// placements go on meanwhile. The wait is bounded by controlTimeout and
// told on stderr after a second.
func lockChange(ctx context.Context, l *ledger.Ledger, vm string, stderr io.Writer) (unlock func(), err error) {
	unlock, err = l.LockVM(ctx, vm, controlTimeout, func(path string) {
		fmt.Fprintf(stderr, "qnuma: waiting for another qnuma vcpus or memory of vm %s to finish (lock %s)\n", vm, path)
	})
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return nil, badInput("%w", err)
	}
	return unlock, err
}
