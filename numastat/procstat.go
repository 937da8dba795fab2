package numastat

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/procfs"
)

// ProcStat is the part of /proc/PID/stat (or /proc/PID/task/TID/stat) that
// qnuma uses.
type ProcStat struct {
	PID   int
	Comm  string
	State byte
	// UTime and STime are clock ticks spent in user and kernel mode (fields
	// 14 and 15); a change between samples means the thread ran.
	UTime, STime uint64
	// StartTime is field 22, clock ticks after boot: together with the pid
	// it names one process, even after the pid is reused.
	StartTime uint64
	// Processor is field 39, the CPU the task last ran on.
	Processor int
}

// ParseProcStat parses one stat line. The comm field may hold spaces and
// parentheses ("CPU 0/TCG", "a) b"), so fields are counted from the last ')'.
func ParseProcStat(b []byte) (ProcStat, error) {
	var s ProcStat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return s, fmt.Errorf("parse stat %q: no (comm)", clip(b))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("parse stat pid: %w", err)
	}
	s.PID = pid
	s.Comm = string(b[open+1 : end])
	rest := bytes.Fields(b[end+1:])
	// rest[0] is field 3; field N is rest[N-3].
	if len(rest) < 39-2 {
		return s, fmt.Errorf("parse stat of pid %d: %d fields after comm, want at least 37", pid, len(rest))
	}
	if len(rest[0]) != 1 {
		return s, fmt.Errorf("parse stat of pid %d: state %q", pid, rest[0])
	}
	s.State = rest[0][0]
	nums := []struct {
		field int
		dst   *uint64
	}{{14, &s.UTime}, {15, &s.STime}, {22, &s.StartTime}}
	for _, n := range nums {
		v, err := strconv.ParseUint(string(rest[n.field-3]), 10, 64)
		if err != nil {
			return s, fmt.Errorf("parse stat of pid %d field %d: %w", pid, n.field, err)
		}
		*n.dst = v
	}
	cpu, err := strconv.Atoi(string(rest[39-3]))
	if err != nil {
		return s, fmt.Errorf("parse stat of pid %d field 39: %w", pid, err)
	}
	s.Processor = cpu
	return s, nil
}

// ReadProcStat reads root/proc/PID/stat.
func ReadProcStat(root string, pid int) (ProcStat, error) {
	return readStat(filepath.Join(root, "proc", strconv.Itoa(pid), "stat"))
}

// ReadTaskStat reads root/proc/PID/task/TID/stat.
func ReadTaskStat(root string, pid, tid int) (ProcStat, error) {
	return readStat(filepath.Join(root, "proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "stat"))
}

func readStat(path string) (ProcStat, error) {
	b, err := procfs.Read("/", path, procfs.Small)
	if err != nil {
		return ProcStat{}, err
	}
	s, err := ParseProcStat(b)
	if err != nil {
		return ProcStat{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// Identity is what a process says it is: the executable /proc/PID/exe
// links to ("" when it cannot be read, as for another user's process
// without privilege), argv[0] of its cmdline, and its comm.
type Identity struct {
	Exe, Argv0, Comm string
}

// ReadIdentity reads root/proc/PID/{exe,cmdline,comm}. Only a process that
// has gone is an error (fs.ErrNotExist); what cannot be read stays "".
func ReadIdentity(root string, pid int) (Identity, error) {
	dir := filepath.Join(root, "proc", strconv.Itoa(pid))
	var id Identity
	if _, err := os.Stat(dir); err != nil {
		return id, fmt.Errorf("identify pid %d: %w", pid, err)
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		id.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if b, err := readBounded(filepath.Join(dir, "cmdline"), 1<<16); err == nil {
		id.Argv0, _, _ = strings.Cut(string(b), "\x00")
	}
	if b, err := readBounded(filepath.Join(dir, "comm"), 64); err == nil {
		id.Comm = strings.TrimSpace(string(b))
	}
	return id, nil
}

// IsQEMU reports whether the executable or argv[0] is a QEMU system
// emulator (qemu-system-*, or qemu-kvm as some distributions name it).
func (id Identity) IsQEMU() bool {
	for _, p := range []string{id.Exe, id.Argv0} {
		if base := filepath.Base(p); p != "" && (strings.HasPrefix(base, "qemu-system-") || base == "qemu-kvm") {
			return true
		}
	}
	return false
}

// String names the process for messages: "sleep (/usr/bin/sleep)".
func (id Identity) String() string {
	name, path := id.Comm, id.Exe
	if path == "" {
		path = id.Argv0
	}
	switch {
	case name == "" && path == "":
		return "unknown"
	case name == "":
		return path
	case path == "" || path == name:
		return name
	}
	return fmt.Sprintf("%s (%s)", name, path)
}

// readBounded reads at most limit bytes of path.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
