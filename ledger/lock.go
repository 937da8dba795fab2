package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lock takes the ledger's exclusive flock, giving up when ctx ends. The
// kernel drops the lock when the process dies, so a SIGKILLed qnuma never
// leaves the ledger locked.
func (l *Ledger) lock(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(l.lockPath(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open ledger lock: %w", err)
	}
	// flock(LOCK_EX) cannot be interrupted by ctx, so it runs in its own
	// goroutine; if ctx wins, that goroutine closes the file (dropping the
	// lock) as soon as it gets it.
	got := make(chan error, 1)
	go func() { got <- flockRetry(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", l.lockPath(), err)
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		go func() {
			<-got
			f.Close()
		}()
		return nil, fmt.Errorf("lock %s: %w", l.lockPath(), ctx.Err())
	}
}

func flockRetry(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			return os.NewSyscallError("flock", err)
		}
	}
}
