package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/plan"
)

// Waiting is a VM that did not fit when its qnuma run --wait asked, and
// waits for room: it holds none (no plan counts it), but qnuma balance
// may move another VM to make room for it, and qnuma ps shows it. Its
// file is DIR/PID.waiting, PID its qnuma's.
type Waiting struct {
	// Name is the name asked for ("" when qnuma chooses one at start).
	Name string
	// Owner is the waiting qnuma.
	Owner Proc
	// Since is when it began to wait.
	Since time.Time
	// Spec is what the planner needs to place it.
	Spec plan.Spec
	// Short is what was short when it last tried.
	Short string
}

// Label names w in messages: its name, or its qnuma's pid.
func (w Waiting) Label() string {
	if w.Name != "" {
		return w.Name
	}
	return fmt.Sprintf("(unnamed, qnuma pid %d)", w.Owner.PID)
}

const waitingSuffix = ".waiting"

func (l *Ledger) waitingPath(pid int) string {
	return filepath.Join(l.dir, strconv.Itoa(pid)+waitingSuffix)
}

// placedWaiting removes owner's waiting entry for the VM named name ("":
// a free name), among the live waiting VMs ws, as that VM is placed; the
// lock is held.
func (l *Ledger) placedWaiting(ws []Waiting, owner Proc, name string) error {
	for _, w := range ws {
		if w.Owner != owner || w.Name != name {
			continue // another's, or another VM's: not this placement's to remove
		}
		if err := os.Remove(l.waitingPath(owner.PID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove its waiting entry: %w", err)
		}
	}
	return nil
}

// WaitTicket is this process's waiting entry, until Remove.
type WaitTicket struct {
	l *Ledger
	w Waiting
}

// Entry is the waiting entry as written.
func (t *WaitTicket) Entry() Waiting { return t.w }

// Wait records that this process waits to place a VM of spec (name ""
// for any), short saying what it lacks. The entry holds no room.
func (l *Ledger) Wait(ctx context.Context, name string, spec plan.Spec, short string) (*WaitTicket, error) {
	op := "record waiting vm " + name
	if name != "" {
		if err := ValidateName(name); err != nil {
			return nil, fmt.Errorf("record waiting vm: %w", err)
		}
	}
	owner, unlock, err := l.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	defer unlock()
	w := Waiting{Name: name, Owner: owner, Since: l.now().UTC(), Spec: spec, Short: short}
	if err := l.writeWaiting(w); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &WaitTicket{l: l, w: w}, nil
}

// SetShort records what the VM lacks now, when it changed.
func (t *WaitTicket) SetShort(short string) error {
	if short == t.w.Short {
		return nil
	}
	unlock, err := t.l.lock(context.Background())
	if err != nil {
		return fmt.Errorf("update waiting vm %s: %w", t.w.Label(), err)
	}
	defer unlock()
	w := t.w
	w.Short = short
	if err := t.l.writeWaiting(w); err != nil {
		return fmt.Errorf("update waiting vm %s: %w", t.w.Label(), err)
	}
	t.w = w
	return nil
}

// Remove removes the waiting entry; removing it twice is not an error.
func (t *WaitTicket) Remove() error {
	unlock, err := t.l.lock(context.Background())
	if err != nil {
		return fmt.Errorf("remove waiting vm %s: %w", t.w.Label(), err)
	}
	defer unlock()
	if err := os.Remove(t.l.waitingPath(t.w.Owner.PID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove waiting vm %s: %w", t.w.Label(), err)
	}
	return nil
}

// ListWaiting returns the waiting VMs whose qnuma still runs, oldest
// first. Like List it takes no lock and changes nothing; corrupt waiting
// files are returned apart.
func (l *Ledger) ListWaiting(ctx context.Context) ([]Waiting, []Corrupt, error) {
	if err := checkDir(l.dir, false); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("list waiting vms: %w", err)
	}
	live, _, corrupt, err := l.scanWaiting()
	if err != nil {
		return nil, nil, fmt.Errorf("list waiting vms: %w", err)
	}
	return live, corrupt, nil
}

// reapWaiting removes the waiting entries among files (names in the
// ledger's directory, from Place's scan) whose qnuma is gone (killed
// outright: one that ends otherwise removes its own), as Place reclaims
// dead VMs, and returns the live ones. Callers hold the lock.
func (l *Ledger) reapWaiting(files []string) ([]Waiting, error) {
	live, dead, _, err := l.readWaiting(files)
	if err != nil {
		return nil, fmt.Errorf("reap waiting vms: %w", err)
	}
	for _, w := range dead {
		if err := os.Remove(l.waitingPath(w.Owner.PID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reap waiting vm %s: %w", w.Label(), err)
		}
	}
	return live, nil
}

// scanWaiting reads every waiting file: those whose qnuma runs, oldest
// first, those whose qnuma is gone, and those that cannot be read.
func (l *Ledger) scanWaiting() (live, dead []Waiting, corrupt []Corrupt, err error) {
	des, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, nil, nil, err
	}
	var files []string
	for _, de := range des {
		if n := de.Name(); !strings.HasPrefix(n, ".") && strings.HasSuffix(n, waitingSuffix) {
			files = append(files, n)
		}
	}
	return l.readWaiting(files)
}

// readWaiting reads the waiting files named files (PID.waiting in the
// ledger's directory), as scanWaiting says.
func (l *Ledger) readWaiting(files []string) (live, dead []Waiting, corrupt []Corrupt, err error) {
	for _, n := range files {
		pid, perr := strconv.Atoi(strings.TrimSuffix(n, waitingSuffix))
		path := filepath.Join(l.dir, n)
		if perr != nil || pid <= 0 {
			corrupt = append(corrupt, Corrupt{Path: path, Err: errors.New("not named PID.waiting")})
			continue
		}
		b, err := readRegular(path)
		var c Corrupt
		switch {
		case errors.As(err, &c):
			corrupt = append(corrupt, c)
			continue
		case errors.Is(err, fs.ErrNotExist):
			continue // removed since ReadDir
		case err != nil:
			return nil, nil, nil, err
		}
		var w Waiting
		if err := json.Unmarshal(b, &w); err != nil {
			corrupt = append(corrupt, Corrupt{Path: path, Err: err})
			continue
		}
		if w.Owner.PID != pid {
			corrupt = append(corrupt, Corrupt{Path: path, Err: fmt.Errorf("holds the waiting vm of pid %d", w.Owner.PID)})
			continue
		}
		alive, err := w.Owner.Alive()
		if err != nil {
			return nil, nil, nil, err
		}
		if alive {
			live = append(live, w)
		} else {
			dead = append(dead, w)
		}
	}
	sort.SliceStable(live, func(i, j int) bool {
		if !live[i].Since.Equal(live[j].Since) {
			return live[i].Since.Before(live[j].Since)
		}
		return live[i].Owner.PID < live[j].Owner.PID
	})
	return live, dead, corrupt, nil
}

// writeWaiting replaces w's file atomically. Callers hold the lock.
func (l *Ledger) writeWaiting(w Waiting) error {
	b, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return fmt.Errorf("encode waiting vm %s: %w", w.Label(), err)
	}
	name := strconv.Itoa(w.Owner.PID) + waitingSuffix
	f, err := os.CreateTemp(l.dir, "."+name+tmpMarker+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, l.waitingPath(w.Owner.PID))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// waitingJSON is the file format. The spec is plan.Spec's own fields but
// for its CPU sets (pins), written as cpulists apart, and the cells'
// parsed backends, which only rendering needs.
type waitingJSON struct {
	Version     int                `json:"version"`
	Name        string             `json:"name"`
	Owner       Proc               `json:"owner"`
	Since       time.Time          `json:"since"`
	Short       string             `json:"short"`
	Spec        plan.Spec          `json:"spec"`
	VCPUPins    map[int]pinJSON    `json:"vcpu_pins,omitempty"`
	EmulatorPin *pinJSON           `json:"emulator_pin,omitempty"`
	IOThreads   map[string]pinJSON `json:"io_thread_pins,omitempty"`
}

type pinJSON struct {
	CPUs string `json:"cpus"`
	From string `json:"from,omitempty"`
}

func pinOut(p plan.Pin) pinJSON { return pinJSON{CPUs: p.CPUs.String(), From: p.From} }

func (p pinJSON) in(what string) (plan.Pin, error) {
	c, err := cpulist.Parse(p.CPUs)
	if err != nil {
		return plan.Pin{}, fmt.Errorf("%s cpus %q: %w", what, clip(p.CPUs), err)
	}
	return plan.Pin{CPUs: c, From: p.From}, nil
}

// MarshalJSON writes the waiting entry in its file format.
func (w Waiting) MarshalJSON() ([]byte, error) {
	out := waitingJSON{Version: formatVersion, Name: w.Name, Owner: w.Owner, Since: w.Since, Short: w.Short, Spec: w.Spec}
	s := &out.Spec
	if len(s.VCPUPins) > 0 {
		out.VCPUPins = map[int]pinJSON{}
		for v, p := range s.VCPUPins {
			out.VCPUPins[v] = pinOut(p)
		}
	}
	if s.EmulatorPin != nil {
		p := pinOut(*s.EmulatorPin)
		out.EmulatorPin = &p
	}
	s.VCPUPins, s.EmulatorPin = nil, nil
	if len(s.IOThreads) > 0 {
		out.IOThreads = map[string]pinJSON{}
		threads := make([]plan.IOThreadSpec, len(s.IOThreads))
		for i, t := range s.IOThreads {
			out.IOThreads[t.ID] = pinOut(t.Pin)
			threads[i] = plan.IOThreadSpec{ID: t.ID, Pin: plan.Pin{From: t.Pin.From}}
		}
		s.IOThreads = threads
	}
	if len(s.Cells) > 0 {
		cells := make([]plan.Cell, len(s.Cells))
		for i, c := range s.Cells {
			c.Object = nil
			cells[i] = c
		}
		s.Cells = cells
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads the file format.
func (w *Waiting) UnmarshalJSON(b []byte) error {
	var in waitingJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	if in.Version != formatVersion {
		return fmt.Errorf("waiting entry format version %d, want %d", in.Version, formatVersion)
	}
	if in.Name != "" && !validName(in.Name) {
		return fmt.Errorf("waiting vm name %q", clip(in.Name))
	}
	s := in.Spec
	if s.VCPUs < 0 || s.VCPUs > maxEntryVCPUs || s.MaxVCPUs < 0 || s.MaxVCPUs > maxEntryVCPUs || s.MemoryBytes > maxEntryNodeBytes || s.MaxMemoryBytes > maxEntryNodeBytes ||
		len(s.Cells) > maxEntryGuestNodes || s.GuestNodes < 0 || s.GuestNodes > maxEntryGuestNodes || len(in.VCPUPins) > maxEntryVCPUs {
		return fmt.Errorf("waiting vm %s: spec out of range", clip(in.Name))
	}
	for _, n := range s.HostNodes {
		if n < 0 || n >= cpulist.MaxID {
			return fmt.Errorf("waiting vm %s: host node %d out of range", clip(in.Name), n)
		}
	}
	if len(in.VCPUPins) > 0 {
		s.VCPUPins = map[int]plan.Pin{}
		for v, p := range in.VCPUPins {
			pin, err := p.in(fmt.Sprintf("vcpu %d pin", v))
			if err != nil {
				return err
			}
			s.VCPUPins[v] = pin
		}
	}
	if in.EmulatorPin != nil {
		pin, err := in.EmulatorPin.in("emulator pin")
		if err != nil {
			return err
		}
		s.EmulatorPin = &pin
	}
	for i, t := range s.IOThreads {
		pin, err := in.IOThreads[t.ID].in("io thread " + clip(t.ID) + " pin")
		if err != nil {
			return err
		}
		s.IOThreads[i].Pin = pin
	}
	*w = Waiting{Name: in.Name, Owner: in.Owner, Since: in.Since, Short: in.Short, Spec: s}
	if w.Owner.PID <= 0 {
		return fmt.Errorf("waiting vm %s: owner pid %d", clip(in.Name), w.Owner.PID)
	}
	return nil
}

// Changes tells of changes to the ledger directory (an entry written,
// released, reclaimed; a waiting entry come or gone) through inotify, as
// soon as they are made: a waiting qnuma re-plans then. Close stops it.
type Changes struct {
	C  <-chan struct{}
	f  *os.File
	ch chan struct{}
}

// Watch watches the ledger directory, which must exist.
func (l *Ledger) Watch() (*Changes, error) {
	fd, err := inotifyInit()
	if err != nil {
		return nil, fmt.Errorf("watch ledger %s: %w", l.dir, err)
	}
	if err := inotifyAdd(fd, l.dir); err != nil {
		closeFD(fd)
		return nil, fmt.Errorf("watch ledger %s: %w", l.dir, err)
	}
	ch := make(chan struct{}, 1)
	c := &Changes{C: ch, f: os.NewFile(uintptr(fd), "inotify:"+l.dir), ch: ch}
	go c.read()
	return c, nil
}

func (c *Changes) read() {
	buf := make([]byte, 4096)
	for {
		if _, err := c.f.Read(buf); err != nil {
			return // closed
		}
		select {
		case c.ch <- struct{}{}:
		default: // one pending is enough: the reader re-plans once
		}
	}
}

// Close stops watching.
func (c *Changes) Close() error { return c.f.Close() }

// inotifyInit makes a non-blocking inotify descriptor (the runtime's poller
// then wakes the reader, and Close ends its Read).
func inotifyInit() (int, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	return fd, os.NewSyscallError("inotify_init1", err)
}

// inotifyAdd watches dir for entries made, renamed in or out, and removed:
// every change of the ledger is one of those (files are renamed into
// place). Not IN_CLOSE_WRITE: every lock taken would be one.
func inotifyAdd(fd int, dir string) error {
	_, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_ONLYDIR)
	return os.NewSyscallError("inotify_add_watch", err)
}

func closeFD(fd int) { unix.Close(fd) }
