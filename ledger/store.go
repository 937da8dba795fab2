package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	entrySuffix = ".json"
	tmpMarker   = ".tmp-"
	corruptDir  = "corrupt"
	// maxEntryBytes bounds an entry file: qnuma writes a few KiB even for
	// hundreds of vCPUs, and nothing outside qnuma makes it read more.
	maxEntryBytes = 1 << 20
)

func (l *Ledger) path(name string) string { return filepath.Join(l.dir, name+entrySuffix) }

// read reads one entry file; the file must name itself. It is opened
// without following a symlink and without blocking on a FIFO, and must be a
// regular file of at most maxEntryBytes; anything else is Corrupt.
func (l *Ledger) read(name string) (Entry, error) {
	path := l.path(name)
	b, err := readRegular(path)
	if err != nil {
		var c Corrupt
		if errors.As(err, &c) {
			return Entry{}, c
		}
		return Entry{}, err
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, Corrupt{Path: path, Err: err}
	}
	if e.Name != name {
		return Entry{}, Corrupt{Path: path, Err: fmt.Errorf("holds vm %q", e.Name)}
	}
	if e.Owner.PID <= 0 {
		return Entry{}, Corrupt{Path: path, Err: fmt.Errorf("owner pid %d", e.Owner.PID)}
	}
	return e, nil
}

// readRegular reads path if it is a regular file of at most maxEntryBytes.
func readRegular(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, Corrupt{Path: path, Err: errors.New("is a symlink (never followed)")}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, Corrupt{Path: path, Err: fmt.Errorf("is not a regular file (%s)", fi.Mode().Type())}
	}
	if fi.Size() > maxEntryBytes {
		return nil, Corrupt{Path: path, Err: fmt.Errorf("is %d bytes, more than an entry's %d", fi.Size(), maxEntryBytes)}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxEntryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxEntryBytes {
		return nil, Corrupt{Path: path, Err: fmt.Errorf("grew past an entry's %d bytes", maxEntryBytes)}
	}
	return b, nil
}

// write replaces the entry's file atomically. Callers hold the lock.
func (l *Ledger) write(e Entry) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("encode entry %s: %w", e.Name, err)
	}
	f, err := os.CreateTemp(l.dir, "."+e.Name+entrySuffix+tmpMarker+"*")
	if err != nil {
		return fmt.Errorf("write entry %s: %w", e.Name, err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o644) // readable where the directory is (root's: qnuma ps for all)
	}
	// No fsync: the ledger describes running processes, which a crash ends
	// too, and the rename alone makes each entry whole for readers. A sync
	// here cost 1-10 ms of every launch on a disk-backed /run.
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, l.path(e.Name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write entry %s: %w", e.Name, err)
	}
	return nil
}

// scanned is the directory as seen by one scan.
type scanned struct {
	live []Entry
	// dead are the entries of VMs no longer running: removed when the scan
	// reclaims, else only left out of live.
	dead    []string
	corrupt []Corrupt
	// waiting are the names of the waiting VMs' files (PID.waiting),
	// read by whoever needs them (readWaiting).
	waiting []string
}

// scan reads every entry. With reclaim (callers hold the lock) it removes
// dead entries and stale temporary files: any temporary file seen then was
// left by a writer that died between create and rename. Without, it changes
// nothing, and a missing directory is an empty ledger.
func (l *Ledger) scan(reclaim bool) (scanned, error) {
	var sc scanned
	des, err := os.ReadDir(l.dir)
	if errors.Is(err, fs.ErrNotExist) && !reclaim {
		return sc, nil
	}
	if err != nil {
		return sc, fmt.Errorf("read ledger dir: %w", err)
	}
	for _, de := range des {
		n := de.Name()
		if strings.HasPrefix(n, ".") && strings.Contains(n, tmpMarker) {
			if !reclaim {
				continue
			}
			if err := os.Remove(filepath.Join(l.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return sc, fmt.Errorf("remove stale temp file: %w", err)
			}
			continue
		}
		if de.Type()&fs.ModeSymlink != 0 && n != corruptDir {
			// qnuma makes no symlinks: whatever it is named, it was put
			// there to be followed, and never is.
			sc.corrupt = append(sc.corrupt, Corrupt{Path: filepath.Join(l.dir, n), Err: errors.New("is a symlink (never followed)")})
			continue
		}
		if !strings.HasPrefix(n, ".") && strings.HasSuffix(n, waitingSuffix) {
			sc.waiting = append(sc.waiting, n)
			continue
		}
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, entrySuffix) {
			continue
		}
		name := strings.TrimSuffix(n, entrySuffix)
		e, err := l.read(name)
		var c Corrupt
		if errors.As(err, &c) {
			sc.corrupt = append(sc.corrupt, c)
			continue
		}
		if errors.Is(err, fs.ErrNotExist) && !reclaim {
			continue // released or reclaimed since ReadDir
		}
		if err != nil {
			return sc, fmt.Errorf("read ledger entry: %w", err)
		}
		dead, err := e.dead()
		if err != nil {
			return sc, fmt.Errorf("check vm %s: %w", name, err)
		}
		if dead {
			if reclaim {
				if err := os.Remove(l.path(name)); err != nil {
					return sc, fmt.Errorf("reclaim vm %s: %w", name, err)
				}
			}
			sc.dead = append(sc.dead, name)
			continue
		}
		sc.live = append(sc.live, e)
	}
	sort.Slice(sc.live, func(i, j int) bool { return sc.live[i].Name < sc.live[j].Name })
	return sc, nil
}

// dead: neither the owner nor qemu runs any more. An entry whose qemu still
// runs holds its CPUs and memory even after qnuma died.
func (e Entry) dead() (bool, error) {
	for _, p := range []Proc{e.Owner, e.QEMU} {
		alive, err := p.Alive()
		if err != nil || alive {
			return false, err
		}
	}
	return true, nil
}

// quarantine moves a corrupt entry (a symlink is moved, not followed) to
// DIR/corrupt/ under a unique name.
func (l *Ledger) quarantine(path string) error {
	dir := filepath.Join(l.dir, corruptDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("quarantine %s: %w", path, err)
	}
	if fi, err := os.Lstat(dir); err != nil {
		return fmt.Errorf("quarantine %s: %w", path, err)
	} else if !fi.IsDir() {
		return unsafeDir(l.dir, "has "+dir+", where corrupt entries go, as something other than a directory")
	}
	dst := filepath.Join(dir, filepath.Base(path)+"."+strconv.FormatInt(l.now().UnixNano(), 10))
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("quarantine %s: %w", path, err)
	}
	return nil
}
