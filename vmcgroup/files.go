package vmcgroup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// maxMountinfo bounds /proc/self/mountinfo: a host with 20,000 mounts
	// (containers) lists about 4 MiB.
	maxMountinfo = 4 << 20
	// maxSmall bounds one-line control files and /proc/PID/cgroup.
	maxSmall = 64 << 10
	// maxProcs bounds cgroup.procs: 4 MiB is 500,000 pids.
	maxProcs = 4 << 20
)

// readFile reads a regular file of at most limit bytes, without following
// a final symlink and without blocking on a FIFO. /proc and cgroup files
// report size 0, so the limit is enforced on what is read.
func readFile(path string, limit int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return readFD(fd, path, limit)
}

// readAt is readFile for name inside the directory dir.
func readAt(dir *os.File, name string, limit int64) ([]byte, error) {
	path := filepath.Join(dir.Name(), name)
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return readFD(fd, path, limit)
}

func readFD(fd int, path string, limit int64) ([]byte, error) {
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: more than %d bytes", path, limit)
	}
	return b, nil
}

// writeAt writes value to the control file name inside dir, in one write
// as the kernel wants it. The file must exist (O_CREAT is never given: a
// control file that is missing is a cgroup that is not what it should be).
func writeAt(dir *os.File, name, value string) error {
	path := filepath.Join(dir.Name(), name)
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("write %q to %s: not a regular file (%s)", value, path, fi.Mode().Type())
	}
	if _, err := f.Write([]byte(value)); err != nil {
		// The kernel's EINVAL, EBUSY or ENOSPC comes back from the write.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

// openDir opens the directory path, where a final symlink is refused.
func openDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, dirErr(path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openDirAt opens the directory name inside dir without following a
// symlink.
func openDirAt(dir *os.File, name string) (*os.File, error) {
	path := filepath.Join(dir.Name(), name)
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, dirErr(path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

func dirErr(path string, err error) error {
	// With O_DIRECTORY a symlink fails as ENOTDIR, not ELOOP: Lstat tells
	// which it was, for the message only.
	fi, lerr := os.Lstat(path)
	switch {
	case errors.Is(err, unix.ELOOP), lerr == nil && fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symlink (never followed)", ErrUnsafe, path)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafe, path)
	}
	return &fs.PathError{Op: "open", Path: path, Err: err}
}

// checkOwner checks that the open directory d is owned by owner (root,
// outside tests) and writable by no one else: otherwise its owner could
// plant cgroups or move processes that root would then act on.
func checkOwner(d *os.File, owner uint32) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", d.Name(), err)
	}
	if st.Uid != owner {
		return fmt.Errorf("%w: %s is owned by uid %d, not by uid %d: its owner could plant or move processes in it", ErrUnsafe, d.Name(), st.Uid, owner)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o)", ErrUnsafe, d.Name(), st.Mode&0o7777)
	}
	return nil
}

// parseProcs parses cgroup.procs: one pid per line.
func parseProcs(b []byte) ([]int, error) {
	var pids []int
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		pid, err := strconv.Atoi(l)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("cgroup.procs: bad pid %.20q", l)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// procsOf reads the pids in the cgroup directory d.
func procsOf(d *os.File) ([]int, error) {
	b, err := readAt(d, "cgroup.procs", maxProcs)
	if err != nil {
		return nil, err
	}
	pids, err := parseProcs(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name(), err)
	}
	return pids, nil
}
