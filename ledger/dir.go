package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// ErrUnsafeDir is wrapped when the state directory or its lock could let
// another user change the ledger (plant entries, remove them, or hold the
// lock), or is not a directory at all. Nothing is read from or written to
// such a directory.
var ErrUnsafeDir = errors.New("unsafe ledger directory")

// fixHint is what a user can do about a refused state directory.
const fixHint = "remove it, set XDG_RUNTIME_DIR to a directory of your own, or give --state-dir"

// dirMode is the mode a new state directory gets: root's may be read by
// everyone (qnuma ps as any user), a user's only by that user.
func dirMode(euid int) os.FileMode {
	if euid == 0 {
		return 0o755
	}
	return 0o700
}

// unsafeDir is an ErrUnsafeDir error naming the directory and what is wrong.
func unsafeDir(dir, what string) error {
	return fmt.Errorf("%w: %s %s; %s", ErrUnsafeDir, dir, what, fixHint)
}

// userName is "uid N (name)", or "uid N" when the name is unknown.
func userName(uid uint32) string {
	s := "uid " + strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		s += " (" + u.Username + ")"
	}
	return s
}

// checkDir checks that dir is a directory that only its owner can change.
// For writing the owner must be this user; for reading, root will do too,
// so that any user can list root's VMs. A final symlink is followed only
// when the link itself is this user's or root's. A missing dir returns an
// error wrapping fs.ErrNotExist.
func checkDir(dir string, forWrite bool) error {
	euid := uint32(os.Geteuid())
	lst, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("ledger dir %s: %w", dir, err)
	}
	st := lst
	if lst.Mode()&fs.ModeSymlink != 0 {
		if uid := lst.Sys().(*syscall.Stat_t).Uid; uid != euid && uid != 0 {
			return unsafeDir(dir, "is a symlink owned by "+userName(uid))
		}
		target, _ := os.Readlink(dir)
		st, err = os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return unsafeDir(dir, fmt.Sprintf("is a dangling symlink (to %s)", target))
		}
		if err != nil {
			return fmt.Errorf("ledger dir %s: %w", dir, err)
		}
	}
	if !st.IsDir() {
		return unsafeDir(dir, "is not a directory")
	}
	uid := st.Sys().(*syscall.Stat_t).Uid
	switch {
	case uid == euid:
	case uid == 0 && !forWrite:
	default:
		return unsafeDir(dir, fmt.Sprintf("is owned by %s, not by you (%s): its owner could plant or remove entries", userName(uid), userName(euid)))
	}
	if st.Mode().Perm()&0o022 != 0 {
		return unsafeDir(dir, fmt.Sprintf("is writable by group or others (mode %04o): they could plant or remove entries", st.Mode().Perm()))
	}
	return nil
}

// makeDir creates the state directory when missing (its parents 0755, as
// MkdirAll would) and checks it for writing.
func makeDir(dir string) error {
	if err := checkDir(dir, true); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("create ledger dir: %w", err)
		}
	}
	if err := os.Mkdir(dir, dirMode(os.Geteuid())); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create ledger dir: %w", err)
	}
	return checkDir(dir, true)
}
