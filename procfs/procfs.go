// Package procfs reads small files of /proc and /sys under a root (a
// snapshot's directory, or "/"), bounded and safely: regular files only,
// opened without blocking (a FIFO planted in a snapshot fails at once),
// never more than a caller's limit.
package procfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotRegular is wrapped when a path is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped when a file is larger than its limit.
var ErrTooLarge = errors.New("file larger than its limit")

// Small is the limit for one-value files (sysfs attributes, status).
const Small = 1 << 20

// Read reads root/rel, at most limit bytes. fs.ErrNotExist passes through.
func Read(root, rel string, limit int64) ([]byte, error) {
	if root == "" {
		root = "/"
	}
	return ReadPath(filepath.Join(root, rel), limit)
}

// ReadPath is Read of a whole path (a snapshot's file named by its
// reader). Symlinks are followed (sysfs snapshots hold many), but what
// they lead to must be a regular file.
func ReadPath(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: %w (%s)", path, ErrNotRegular, fileKind(fi.Mode()))
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: %w: larger than %d bytes, which no sysfs or procfs file is", path, ErrTooLarge, limit)
	}
	return b, nil
}

// fileKind names what a path that is not a regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "mode " + m.String()
}

// PID is the path of a process's file under /proc: PID(42, "maps") is
// "proc/42/maps".
func PID(pid int, file string) string { return filepath.Join("proc", fmt.Sprint(pid), file) }
