// Package ledger records the VMs qnuma placed on this host, one JSON file per
// VM in a state directory, so that VMs launched at the same moment by
// separate qnuma processes never share a dedicated CPU nor over-promise a
// node's memory.
//
// Every change happens under an exclusive flock on DIR/lock and every file is
// written to a temporary name and renamed, so readers see whole entries only.
// Entries whose owner and qemu are both gone (or whose pids now belong to
// other processes) are reclaimed on the next Place or List.
//
// Corrupt entry files: since writes are atomic, a file that does not parse
// was damaged outside qnuma. List reports it and leaves it; Place moves it to
// DIR/corrupt/ and reports it in Reservation.Quarantined, so one bad file
// never blocks placement (what it promised is then free to be given again).
package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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

// Open opens (creating) the ledger in dir; "" means DefaultDir().
func Open(dir string) (*Ledger, error) {
	if dir == "" {
		dir = DefaultDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create ledger dir: %w", err)
	}
	return &Ledger{dir: dir, now: time.Now}, nil
}

// Dir is the state directory.
func (l *Ledger) Dir() string { return l.dir }

func (l *Ledger) lockPath() string { return filepath.Join(l.dir, "lock") }

// Reservation is a VM's entry, owned by this process until Release.
type Reservation struct {
	l     *Ledger
	Entry Entry
	Plan  *plan.Plan
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

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateName checks that name can be a VM's name (it becomes a file name).
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("vm name %q: want 1-64 letters, digits, '.', '_' or '-', not starting with a symbol", name)
	}
	return nil
}

// Place reserves room for a VM. Under the lock it reclaims dead entries,
// calls planFn with every live VM, checks the plan gives no dedicated CPU
// that another VM holds, and writes the new entry. An empty name becomes
// vm-N, the smallest N free; a name in use is an error wrapping ErrNameTaken.
// planFn's errors are returned wrapped, so plan.ErrDoesNotFit still matches.
func (l *Ledger) Place(ctx context.Context, name string, planFn func(placed []plan.Placed) (*plan.Plan, error)) (*Reservation, error) {
	if name != "" {
		if err := ValidateName(name); err != nil {
			return nil, fmt.Errorf("place vm: %w", err)
		}
	}
	owner, err := self()
	if err != nil {
		return nil, fmt.Errorf("place vm %s: %w", name, err)
	}
	unlock, err := l.lock(ctx)
	if err != nil {
		return nil, fmt.Errorf("place vm %s: %w", name, err)
	}
	defer unlock()

	sc, err := l.scan()
	if err != nil {
		return nil, fmt.Errorf("place vm %s: %w", name, err)
	}
	r := &Reservation{l: l, Reclaimed: sc.reclaimed}
	for _, c := range sc.corrupt {
		if err := l.quarantine(c.Path); err != nil {
			return nil, fmt.Errorf("place vm %s: %w", name, err)
		}
		r.Quarantined = append(r.Quarantined, c)
	}
	if name == "" {
		name = freeName(sc.live)
	}
	placed := make([]plan.Placed, 0, len(sc.live))
	for _, e := range sc.live {
		if e.Name == name {
			return nil, fmt.Errorf("place vm %s: %w (owner pid %d)", name, ErrNameTaken, e.Owner.PID)
		}
		placed = append(placed, e.Placed())
	}
	p, err := planFn(placed)
	if err != nil {
		return nil, fmt.Errorf("place vm %s: %w", name, err)
	}
	if p == nil {
		return nil, fmt.Errorf("place vm %s: planner returned no plan", name)
	}
	e := summarize(p)
	for _, o := range sc.live {
		if both := e.DedicatedCPUs.Intersection(o.DedicatedCPUs); both.Size() > 0 {
			return nil, fmt.Errorf("place vm %s: plan gives cpus %s that vm %s holds", name, both, o.Name)
		}
	}
	e.Name, e.Owner, e.Created = name, owner, l.now().UTC()
	if err := l.write(e); err != nil {
		return nil, fmt.Errorf("place vm %s: %w", name, err)
	}
	r.Entry, r.Plan = e, p
	return r, nil
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
// while qemu runs.
func (r *Reservation) SetQEMU(pid int) error {
	q, err := ProcOf(pid)
	if err != nil {
		return fmt.Errorf("record qemu of vm %s: %w", r.Entry.Name, err)
	}
	return r.update("record qemu", func(e *Entry) { e.QEMU = q })
}

// Release removes the VM's entry. Releasing twice, or an entry already
// reclaimed, is not an error.
func (r *Reservation) Release() error {
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
	// Reclaimed names the dead VMs' entries removed by this List.
	Reclaimed []string
	// Corrupt entry files, left in place.
	Corrupt []Corrupt
}

// List reclaims dead entries and returns the live ones, by name.
func (l *Ledger) List(ctx context.Context) (*State, error) {
	unlock, err := l.lock(ctx)
	if err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	defer unlock()
	sc, err := l.scan()
	if err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	return &State{Entries: sc.live, Reclaimed: sc.reclaimed, Corrupt: sc.corrupt}, nil
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
