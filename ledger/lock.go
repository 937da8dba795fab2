package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLockTimeout is wrapped when the ledger's lock stayed held by another
// process for longer than Ledger.LockTimeout.
var ErrLockTimeout = errors.New("ledger lock still held")

const (
	// DefaultLockTimeout bounds the wait for the ledger's lock: Place holds
	// it for a plan and a file write, well under a second.
	DefaultLockTimeout = 30 * time.Second
	// lockNoticeAfter is how long a wait goes on before OnLockWait is told.
	lockNoticeAfter = time.Second
)

// openLock opens DIR/lock, creating it 0600: only the ledger's owner may
// open it, so nobody else can take the flock and freeze every qnuma of
// that user. It is never followed as a symlink, and one that another user
// owns or others may open is refused.
func (l *Ledger) openLock(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if errors.Is(err, unix.ELOOP) {
		return nil, unsafeDir(l.dir, "has a symlink as its lock file "+path)
	}
	if err != nil {
		return nil, fmt.Errorf("open ledger lock %s: %w", path, os.NewSyscallError("open", err))
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open ledger lock %s: %w", path, err)
	}
	uid := fi.Sys().(*syscall.Stat_t).Uid
	switch {
	case !fi.Mode().IsRegular():
		err = unsafeDir(l.dir, "has a lock "+path+" that is not a regular file")
	case uid != uint32(os.Geteuid()):
		err = unsafeDir(l.dir, "has a lock "+path+" owned by "+userName(uid))
	case fi.Mode().Perm()&0o077 != 0:
		// A lock made by an older qnuma (0644): ours, so make it private.
		if cerr := f.Chmod(0o600); cerr != nil {
			err = fmt.Errorf("make ledger lock %s private: %w", path, cerr)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lock takes the ledger's exclusive flock. The wait is bounded: after a
// second OnLockWait (if set) is told what is awaited, and after LockTimeout
// (or when ctx ends) it gives up with an error naming the lock. The kernel
// drops the lock when the process dies, so a SIGKILLed qnuma never leaves
// the ledger locked.
func (l *Ledger) lock(ctx context.Context) (unlock func(), err error) {
	return l.lockAt(ctx, l.lockPath(), l.LockTimeout, l.OnLockWait)
}

// lockAt is lock for the lock file path, waiting at most bound (0:
// DefaultLockTimeout) and telling onWait (if set) after a second.
func (l *Ledger) lockAt(ctx context.Context, path string, bound time.Duration, onWait func(string)) (unlock func(), err error) {
	f, err := l.openLock(path)
	if err != nil {
		return nil, err
	}
	if err := flockRetry(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		return func() { f.Close() }, nil
	} else if !errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// flock(LOCK_EX) cannot be interrupted by ctx, so it runs in its own
	// goroutine; if the wait is given up, that goroutine closes the file
	// (dropping the lock) as soon as it gets it.
	got := make(chan error, 1)
	go func() { got <- flockRetry(int(f.Fd()), unix.LOCK_EX) }()
	if bound <= 0 {
		bound = DefaultLockTimeout
	}
	giveUp := time.NewTimer(bound)
	defer giveUp.Stop()
	after := lockNoticeAfter
	if l.lockNotice > 0 {
		after = l.lockNotice
	}
	notice := time.NewTimer(after)
	defer notice.Stop()
	for {
		select {
		case err := <-got:
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			return func() { f.Close() }, nil
		case <-notice.C:
			if onWait != nil {
				onWait(path)
			}
			continue
		case <-giveUp.C:
			err = fmt.Errorf("lock %s: %w after %s: another process holds it (fuser -v %s names it)", path, ErrLockTimeout, bound, path)
		case <-ctx.Done():
			err = fmt.Errorf("lock %s: %w", path, ctx.Err())
		}
		go func() {
			<-got
			f.Close()
		}()
		return nil, err
	}
}

func flockRetry(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return os.NewSyscallError("flock", err)
		}
	}
}
