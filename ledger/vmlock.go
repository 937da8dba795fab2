package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// vmLockSuffix names a VM's change lock in the ledger directory; the
// ledger reads only *.json there.
const vmLockSuffix = ".lock"

// VMLockPath is the change lock of VM name in the ledger.
func (l *Ledger) VMLockPath(name string) string {
	return filepath.Join(l.dir, name+vmLockSuffix)
}

// LockVM takes VM name's own change lock, DIR/NAME.lock: an exclusive
// flock held while one qnuma changes that VM's vCPUs or memory, so that
// two changes of one VM never pick the same slot or both pass the room
// check, while other VMs are placed and changed meanwhile (the ledger's
// own lock is taken only for each write, as Update does). The file is
// made and checked as the ledger's lock is: 0600, never followed as a
// symlink, this user's and regular, in a directory only its owner can
// change. The wait is bounded by ctx and by bound (0: DefaultLockTimeout);
// onWait, if set, is told the path once it has lasted a second. The
// kernel drops the lock when the process dies. The file stays (an empty
// file per VM name; removing it while held would let two holders in).
func (l *Ledger) LockVM(ctx context.Context, name string, bound time.Duration, onWait func(path string)) (unlock func(), err error) {
	op := "lock vm " + name
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("lock vm: %w", err)
	}
	if err := checkDir(l.dir, true); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	unlock, err = l.lockAt(ctx, l.VMLockPath(name), bound, onWait)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return unlock, nil
}
