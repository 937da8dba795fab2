// Package ledger records the VMs qnuma placed on this host, one JSON file per
// VM in a state directory, so that VMs launched at the same moment by
// separate qnuma processes never share a dedicated CPU nor over-promise a
// node's memory.
//
// Trust: the directory is its owner's alone. A user's is made 0700, root's
// 0755 (any user may list root's VMs); one owned by another user, writable
// by group or others, or not a directory is refused (ErrUnsafeDir), so
// nobody else can plant, remove or hide entries. The lock file is 0600, so
// nobody else can hold it.
//
// Every change happens under an exclusive flock on DIR/lock, taken with a
// bounded wait, and every file is written to a temporary name and renamed,
// so readers see whole entries only and List needs no lock: it reads, and
// never creates or changes anything. Entries whose owner and qemu are both
// gone (or whose pids now belong to other processes) are left out by List
// and removed by the next Place.
//
// Corrupt entries: since writes are atomic, a file that does not parse was
// damaged outside qnuma, and qnuma writes nothing but regular files. List
// reports such a file (or a symlink, FIFO, directory or oversized file named
// like an entry) and leaves it; Place moves it to DIR/corrupt/ and reports
// it in Reservation.Quarantined, so one bad file never blocks placement
// (what it promised is then free to be given again). Nothing in the
// directory is ever followed as a symlink.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/qnuma/qnuma/plan"
)

// ErrNameTaken is wrapped when a live VM already has the name asked for.
var ErrNameTaken = errors.New("vm name already in use")

// Ledger is a state directory.
type Ledger struct {
	dir string
	now func() time.Time

	// LockTimeout bounds the wait for the lock (0: DefaultLockTimeout).
	LockTimeout time.Duration
	// OnLockWait, when set, is called once when the lock has been awaited
	// for a second, with the lock's path, so the user learns what qnuma
	// waits for.
	OnLockWait func(lockPath string)
	lockNotice time.Duration // tests: when OnLockWait is told (0: a second)
	// Resident, when set, gives a running qemu's resident bytes per host
	// node (ResidentOf is the real one). Place uses it to count only the
	// part of a VM's promise it has not yet touched (plan.Placed). Without
	// it every promise counts whole.
	Resident func(pid int) (map[int]uint64, error)
}

// DefaultDir is /run/qnuma for root and $XDG_RUNTIME_DIR/qnuma otherwise;
// without XDG_RUNTIME_DIR it is qnuma-UID under the system temp directory.
func DefaultDir() string {
	if os.Geteuid() == 0 {
		return "/run/qnuma"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "qnuma")
	}
	return filepath.Join(os.TempDir(), "qnuma-"+strconv.Itoa(os.Geteuid()))
}

// Open opens the ledger in dir; "" means DefaultDir(). It creates
// nothing: Place makes the directory when it first writes, List reads a
// missing one as empty.
func Open(dir string) (*Ledger, error) {
	if dir == "" {
		dir = DefaultDir()
	}
	return &Ledger{dir: dir, now: time.Now}, nil
}

// Dir is the state directory.
func (l *Ledger) Dir() string { return l.dir }

func (l *Ledger) lockPath() string { return filepath.Join(l.dir, "lock") }

// Reservation is a VM's entry, owned by this process until Release.
type Reservation struct {
	l *Ledger
	// unlock, while not nil, ends PlaceHeld's hold: nothing is written yet.
	unlock func()
	Entry  Entry
	Plan   *plan.Plan
	// Reclaimed names the entries of dead VMs removed while placing.
	Reclaimed []string
	// Quarantined lists corrupt entry files moved to DIR/corrupt/.
	Quarantined []Corrupt
}

// Corrupt is an entry file that cannot be read.
type Corrupt struct {
	Path string
	Err  error
}

func (c Corrupt) Error() string { return fmt.Sprintf("corrupt ledger entry %s: %v", c.Path, c.Err) }

// validName is ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, as a loop: the regexp
// was compiled at every start of qnuma (0.1 ms, 861 allocations).
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// ValidateName checks that name can be a VM's name (it becomes a file name).
func ValidateName(name string) error {
	if !validName(name) {
		return fmt.Errorf("vm name %q: want 1-64 letters, digits, '.', '_' or '-', not starting with a symbol", name)
	}
	return nil
}

// ErrCPUTaken is wrapped when a plan would give a VM a CPU that another
// VM holds: a dedicated CPU to anyone else's threads, or any CPU another
// VM's threads may run on to a dedicated vCPU.
var ErrCPUTaken = errors.New("cpu held by another vm")

// Place reserves room for a VM. Under the lock it reclaims dead entries,
// calls planFn with every live VM, checks the plan gives no CPU that
// another VM holds (ErrCPUTaken), and writes the new entry. An empty name
// becomes vm-N, the smallest N free; a name in use is an error wrapping
// ErrNameTaken. planFn's errors are returned wrapped, so
// plan.ErrDoesNotFit still matches. The state directory is made here when
// missing, and refused (ErrUnsafeDir) when another user could change it.
func (l *Ledger) Place(ctx context.Context, name string, planFn func(placed []plan.Placed) (*plan.Plan, error)) (*Reservation, error) {
	return l.place(ctx, name, planFn, false)
}

// PlaceHeld is Place that keeps the ledger locked and writes nothing yet:
// the caller starts the VM's qemu, then Commit writes the entry once, with
// qemu's pid, and unlocks, so that the write overlaps qemu's own start and
// nobody else places a VM in between. Release without Commit unlocks and
// leaves no entry. Until then every other placement waits, so the caller
// only starts qemu in between.
func (l *Ledger) PlaceHeld(ctx context.Context, name string, planFn func(placed []plan.Placed) (*plan.Plan, error)) (*Reservation, error) {
	return l.place(ctx, name, planFn, true)
}

// begin is how a change to the ledger starts: who is making it (the
// owner its entry records), the directory made and checked, and the lock
// taken; op names the change in errors.
func (l *Ledger) begin(ctx context.Context, op string) (owner Proc, unlock func(), err error) {
	if owner, err = self(); err != nil {
		return Proc{}, nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := makeDir(l.dir); err != nil {
		return Proc{}, nil, fmt.Errorf("%s: %w", op, err)
	}
	if unlock, err = l.lock(ctx); err != nil {
		return Proc{}, nil, fmt.Errorf("%s: %w", op, err)
	}
	return owner, unlock, nil
}

func (l *Ledger) place(ctx context.Context, name string, planFn func(placed []plan.Placed) (*plan.Plan, error), hold bool) (_ *Reservation, err error) {
	op := "place vm " + name
	if name == "" {
		op = "place a new vm"
	} else if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("place vm: %w", err)
	}
	owner, unlock, err := l.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil || !hold {
			unlock()
		}
	}()

	sc, err := l.scan(true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r := &Reservation{l: l, Reclaimed: sc.dead}
	// Waiting VMs hold no room; those whose qnuma is gone are reaped too.
	waiting, err := l.reapWaiting(sc.waiting)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for _, c := range sc.corrupt {
		if err := l.quarantine(c.Path); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		r.Quarantined = append(r.Quarantined, c)
	}
	asked := name
	if name == "" {
		name = freeName(sc.live)
		op = "place vm " + name
	}
	for _, e := range sc.live {
		if e.Name == name {
			return nil, fmt.Errorf("%s: %w (owner pid %d)", op, ErrNameTaken, e.Owner.PID)
		}
	}
	p, err := planFn(l.Placed(sc.live))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if p == nil {
		return nil, fmt.Errorf("%s: planner returned no plan", op)
	}
	e := summarize(p)
	for _, o := range sc.live {
		if err := clash(e, o); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	e.Name, e.Owner, e.Created = name, owner, l.now().UTC()
	r.Entry, r.Plan = e, p
	// Placed now, so no longer waiting (qnuma run --wait): its waiting
	// entry goes under the same lock, never seen beside the VM's.
	if err := l.placedWaiting(waiting, owner, asked); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if hold {
		r.unlock = unlock
		return r, nil
	}
	if err := l.write(e); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return r, nil
}

// clash says how e's CPUs collide with those o holds, nil when they don't.
func clash(e, o Entry) error {
	if both := e.DedicatedCPUs.Intersection(o.threadCPUs()); both.Size() > 0 {
		return fmt.Errorf("%w: plan dedicates cpus %s, where vm %s's threads run", ErrCPUTaken, both, o.Name)
	}
	if both := e.VCPUCPUs.Intersection(o.DedicatedCPUs); both.Size() > 0 {
		return fmt.Errorf("%w: plan puts vcpus on cpus %s that vm %s holds dedicated", ErrCPUTaken, both, o.Name)
	}
	if both := e.EmulatorCPUs.Intersection(o.DedicatedCPUs); both.Size() > 0 {
		return fmt.Errorf("%w: emulator cpus %s are dedicated to vm %s", ErrCPUTaken, both, o.Name)
	}
	return nil
}

// Placed is entries as the planner takes them, each with the memory its
// running qemu already holds per node when Resident is set. A qemu whose
// memory cannot be read (it exited meanwhile, say) counts its whole
// promise: the safe side.
func (l *Ledger) Placed(entries []Entry) []plan.Placed {
	out := make([]plan.Placed, 0, len(entries))
	for _, e := range entries {
		p := e.Placed()
		if l.Resident != nil && e.QEMU.PID > 0 {
			if alive, err := e.QEMU.Alive(); err == nil && alive {
				if res, err := l.Resident(e.QEMU.PID); err == nil {
					p.ResidentBytes = res
				}
			}
		}
		out = append(out, p)
	}
	return out
}

func freeName(live []Entry) string {
	used := map[string]bool{}
	for _, e := range live {
		used[e.Name] = true
	}
	for n := 1; ; n++ {
		if s := "vm-" + strconv.Itoa(n); !used[s] {
			return s
		}
	}
}

// SetQEMU records the VM's qemu process, so that the entry outlives qnuma
// while qemu runs, with what more the caller learnt by then (also, under
// the same lock; they must leave the entry's identity alone).
func (r *Reservation) SetQEMU(pid int, also ...func(*Entry)) error {
	q, err := ProcOf(pid)
	if err != nil {
		return fmt.Errorf("record qemu of vm %s: %w", r.Entry.Name, err)
	}
	return r.update("record qemu", func(e *Entry) {
		e.QEMU = q
		for _, f := range also {
			f(e)
		}
	})
}

// Commit writes a held reservation's entry (PlaceHeld) with the VM's qemu
// process, and what more the caller learnt by then (also), and unlocks the
// ledger. On failure nothing is recorded and the ledger is unlocked too:
// the caller must stop qemu, which would otherwise run with its room held
// nowhere.
func (r *Reservation) Commit(pid int, also ...func(*Entry)) error {
	if r.unlock == nil {
		return fmt.Errorf("record qemu of vm %s: the reservation is not held (PlaceHeld) or already committed", r.Entry.Name)
	}
	unlock := r.unlock
	r.unlock = nil
	defer unlock()
	q, err := ProcOf(pid)
	if err != nil {
		return fmt.Errorf("record qemu of vm %s: %w", r.Entry.Name, err)
	}
	e := r.Entry
	e.QEMU = q
	for _, f := range also {
		f(&e)
	}
	if err := r.l.write(e); err != nil {
		return fmt.Errorf("record qemu of vm %s: %w", r.Entry.Name, err)
	}
	r.Entry = e
	return nil
}

// Release removes the VM's entry, or ends a hold that was never committed
// (no entry was written). Releasing twice, or an entry already reclaimed,
// is not an error.
func (r *Reservation) Release() error {
	if r.unlock != nil {
		r.unlock()
		r.unlock = nil
		return nil
	}
	return r.update("release", nil)
}

// update rewrites (or with a nil change, removes) the entry under the lock,
// if it is still this reservation's.
func (r *Reservation) update(op string, change func(*Entry)) error {
	unlock, err := r.l.lock(context.Background())
	if err != nil {
		return fmt.Errorf("%s vm %s: %w", op, r.Entry.Name, err)
	}
	defer unlock()
	cur, err := r.l.read(r.Entry.Name)
	if errors.Is(err, os.ErrNotExist) && change == nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s vm %s: %w", op, r.Entry.Name, err)
	}
	if cur.Owner != r.Entry.Owner || !cur.Created.Equal(r.Entry.Created) {
		if change == nil {
			return nil // reclaimed and reused by another VM: not ours to remove
		}
		return fmt.Errorf("%s vm %s: entry now belongs to pid %d", op, r.Entry.Name, cur.Owner.PID)
	}
	if change == nil {
		if err := os.Remove(r.l.path(r.Entry.Name)); err != nil {
			return fmt.Errorf("%s vm %s: %w", op, r.Entry.Name, err)
		}
		return nil
	}
	change(&cur)
	if err := r.l.write(cur); err != nil {
		return fmt.Errorf("%s vm %s: %w", op, r.Entry.Name, err)
	}
	r.Entry = cur
	return nil
}

// State is what List found.
type State struct {
	Entries []Entry
	// Dead names the entries of VMs no longer running, left out of
	// Entries; the next Place removes them.
	Dead []string
	// Corrupt entry files, left in place.
	Corrupt []Corrupt
}

// List returns the live entries, by name. It takes no lock and creates or
// changes nothing (entries are replaced by atomic renames, so each is read
// whole), so any user who may read the directory may list it: a directory
// of their own, or root's. A missing directory is an empty ledger.
func (l *Ledger) List(ctx context.Context) (*State, error) {
	if err := checkDir(l.dir, false); errors.Is(err, fs.ErrNotExist) {
		return &State{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	sc, err := l.scan(false)
	if err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	return &State{Entries: sc.live, Dead: sc.dead, Corrupt: sc.corrupt}, nil
}

// Get returns the live entry named name.
func (l *Ledger) Get(ctx context.Context, name string) (Entry, bool, error) {
	st, err := l.List(ctx)
	if err != nil {
		return Entry{}, false, err
	}
	for _, e := range st.Entries {
		if e.Name == name {
			return e, true, nil
		}
	}
	return Entry{}, false, nil
}
