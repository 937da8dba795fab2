package ledger

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// One VM's change lock: a second holder waits, bounded, and is told what it
// waits for; another VM's lock and the ledger's own are free meanwhile; the
// file is private.
func TestLockVM(t *testing.T) {
	l := open(t)
	if _, err := l.Place(context.Background(), "a", fixed(onePlan(0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	unlock, err := l.LockVM(context.Background(), "a", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(l.VMLockPath("a")); err != nil || fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
		t.Errorf("lock file %s: %v %v, want a regular file 0600", l.VMLockPath("a"), fi, err)
	}
	var told []string
	other, _ := Open(l.Dir())
	other.lockNotice = time.Millisecond
	_, err = other.LockVM(context.Background(), "a", 2*time.Second, func(p string) { told = append(told, p) })
	if !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), l.VMLockPath("a")) {
		t.Errorf("second LockVM of a: %v, want ErrLockTimeout naming %s", err, l.VMLockPath("a"))
	}
	if len(told) != 1 || told[0] != l.VMLockPath("a") {
		t.Errorf("onWait told %q, want the lock path once", told)
	}
	ub, err := other.LockVM(context.Background(), "b", 0, nil)
	if err != nil {
		t.Errorf("another VM's lock while a's is held: %v", err)
	} else {
		ub()
	}
	if _, err := other.Update(context.Background(), "a", func(*Entry) error { return nil }); err != nil {
		t.Errorf("Update of a while its change lock is held: %v", err)
	}
	unlock()
	if u, err := other.LockVM(context.Background(), "a", 0, nil); err != nil {
		t.Errorf("LockVM once free: %v", err)
	} else {
		u()
	}
	if _, err := l.LockVM(context.Background(), "../x", 0, nil); err == nil {
		t.Error("LockVM of a bad name: no error")
	}
}

// A change lock that is a symlink, a FIFO or another user's is refused as
// the ledger's own lock is.
func TestLockVMFileRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"symlink", func(t *testing.T, path string) {
			if err := os.Symlink("/etc/passwd", path); err != nil {
				t.Fatal(err)
			}
		}, "symlink as its lock file"},
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"owned by nobody", func(t *testing.T, path string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give the file away")
			}
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := open(t)
			if err := os.MkdirAll(l.Dir(), 0o700); err != nil {
				t.Fatal(err)
			}
			tt.make(t, l.VMLockPath("a"))
			_, err := l.LockVM(context.Background(), "a", 0, nil)
			if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LockVM: %v, want ErrUnsafeDir saying %q", err, tt.want)
			}
		})
	}
}
