package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	entrySuffix = ".json"
	tmpMarker   = ".tmp-"
)

func (l *Ledger) path(name string) string { return filepath.Join(l.dir, name+entrySuffix) }

// read reads one entry file; the file must name itself.
func (l *Ledger) read(name string) (Entry, error) {
	path := l.path(name)
	b, err := os.ReadFile(path)
	if err != nil {
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
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
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

// scanned is the directory as seen under the lock.
type scanned struct {
	live      []Entry
	reclaimed []string
	corrupt   []Corrupt
}

// scan reads every entry, removes dead ones and stale temporary files.
// Callers hold the lock: any temporary file seen then was left by a writer
// that died between create and rename.
func (l *Ledger) scan() (scanned, error) {
	var sc scanned
	des, err := os.ReadDir(l.dir)
	if err != nil {
		return sc, fmt.Errorf("read ledger dir: %w", err)
	}
	for _, de := range des {
		n := de.Name()
		if strings.HasPrefix(n, ".") && strings.Contains(n, tmpMarker) {
			if err := os.Remove(filepath.Join(l.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return sc, fmt.Errorf("remove stale temp file: %w", err)
			}
			continue
		}
		if de.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, entrySuffix) {
			continue
		}
		name := strings.TrimSuffix(n, entrySuffix)
		e, err := l.read(name)
		var c Corrupt
		if errors.As(err, &c) {
			sc.corrupt = append(sc.corrupt, c)
			continue
		}
		if err != nil {
			return sc, fmt.Errorf("read ledger entry: %w", err)
		}
		dead, err := e.dead()
		if err != nil {
			return sc, fmt.Errorf("check vm %s: %w", name, err)
		}
		if dead {
			if err := os.Remove(l.path(name)); err != nil {
				return sc, fmt.Errorf("reclaim vm %s: %w", name, err)
			}
			sc.reclaimed = append(sc.reclaimed, name)
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

// quarantine moves a corrupt entry file to DIR/corrupt/ under a unique name.
func (l *Ledger) quarantine(path string) error {
	dir := filepath.Join(l.dir, "corrupt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("quarantine %s: %w", path, err)
	}
	dst := filepath.Join(dir, filepath.Base(path)+"."+strconv.FormatInt(l.now().UnixNano(), 10))
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("quarantine %s: %w", path, err)
	}
	return nil
}
