package vm

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// cpioEntry is one file, directory or symlink of an initramfs.
type cpioEntry struct {
	Mode uint32 // permission bits; the type comes from which field is set
	Dir  bool
	Link string // symlink target when not empty
	Data []byte // regular file contents
	// Char makes a character device Major:Minor (the kernel needs
	// /dev/console before init mounts devtmpfs).
	Char         bool
	Major, Minor uint32
}

const (
	cpioTypeDir  = 0o040000
	cpioTypeReg  = 0o100000
	cpioTypeLink = 0o120000
	cpioTypeChar = 0o020000
)

// writeCPIO writes entries as a newc ("070701") archive, the format the
// kernel unpacks as an initramfs. Parents are written before children and
// names are sorted, so the same entries always give the same bytes (the
// cache key then says everything about the result).
func writeCPIO(w io.Writer, entries map[string]cpioEntry) error {
	names := make([]string, 0, len(entries))
	for name := range entries {
		if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
			return fmt.Errorf("write cpio entry %q: want a relative path without \"..\"", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	ino := uint32(1)
	for _, name := range names {
		e := entries[name]
		mode := e.Mode & 0o7777
		var body []byte
		switch {
		case e.Dir && e.Link != "":
			return fmt.Errorf("write cpio entry %q: both a directory and a symlink", name)
		case e.Char:
			mode |= cpioTypeChar
		case e.Dir:
			mode |= cpioTypeDir
		case e.Link != "":
			mode = cpioTypeLink | 0o777
			body = []byte(e.Link)
		default:
			mode |= cpioTypeReg
			body = e.Data
		}
		if err := writeCPIORecord(w, name, ino, mode, e.Major, e.Minor, body); err != nil {
			return fmt.Errorf("write cpio entry %q: %w", name, err)
		}
		ino++
	}
	if err := writeCPIORecord(w, "TRAILER!!!", 0, 0, 0, 0, nil); err != nil {
		return fmt.Errorf("write cpio trailer: %w", err)
	}
	return nil
}

func writeCPIORecord(w io.Writer, name string, ino, mode, major, minor uint32, body []byte) error {
	nlink := 1
	if mode&0o170000 == cpioTypeDir {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check. mtime is 0 so the
	// archive is reproducible.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(body), 0, 0, major, minor, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+8+len(body)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, body...)
	buf = pad4(buf)
	_, err := w.Write(buf)
	return err
}

// pad4 pads to a multiple of 4 bytes; each record starts 4-aligned, so
// padding the record alone keeps the whole stream aligned.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
