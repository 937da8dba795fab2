package ledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// ErrNoVM is wrapped when no live VM in the ledger has the name asked for.
var ErrNoVM = errors.New("no such vm in the ledger")

// Update changes the live entry named name under the lock, for a process
// other than the one that placed the VM (qnuma pin re-pins a VM that
// `qnuma run` supervises). change gets the entry as it is now, under the
// lock; its error is returned wrapped and nothing is written. It may change
// what the VM holds (CPU sets, nodes, memory), not who it is: a change to
// Name, Owner, QEMU or Created is refused, so an entry can never be handed
// to another process. The changed entry is checked against every other
// live VM as Place checks a plan (ErrCPUTaken), and written atomically.
// A name with no live entry (never placed, released, or whose owner and
// qemu both died) is ErrNoVM. Update reclaims nothing and makes no
// directory.
func (l *Ledger) Update(ctx context.Context, name string, change func(*Entry) error) (Entry, error) {
	return l.UpdateAmong(ctx, name, func(e *Entry, _ []Entry) error { return change(e) })
}

// UpdateAmong is Update whose change also sees every other live VM, read
// under the same lock: a change that must fit around them (qnuma move's
// plan, checked again against what the ledger holds now) cannot race with
// a VM placed meanwhile.
func (l *Ledger) UpdateAmong(ctx context.Context, name string, change func(e *Entry, others []Entry) error) (Entry, error) {
	op := "update vm " + name
	if err := ValidateName(name); err != nil {
		return Entry{}, fmt.Errorf("update vm: %w", err)
	}
	if err := checkDir(l.dir, true); errors.Is(err, fs.ErrNotExist) {
		return Entry{}, fmt.Errorf("%s: %w (ledger %s is empty)", op, ErrNoVM, l.dir)
	} else if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", op, err)
	}
	unlock, err := l.lock(ctx)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", op, err)
	}
	defer unlock()
	sc, err := l.scan(false)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", op, err)
	}
	var cur *Entry
	for i := range sc.live {
		if sc.live[i].Name == name {
			cur = &sc.live[i]
		}
	}
	if cur == nil {
		return Entry{}, fmt.Errorf("%s: %w (ledger %s)", op, ErrNoVM, l.dir)
	}
	e := clone(*cur)
	var others []Entry
	for _, o := range sc.live {
		if o.Name != name {
			others = append(others, o)
		}
	}
	if err := change(&e, others); err != nil {
		return Entry{}, fmt.Errorf("%s: %w", op, err)
	}
	if e.Name != cur.Name || e.Owner != cur.Owner || e.QEMU != cur.QEMU || !e.Created.Equal(cur.Created) {
		return Entry{}, fmt.Errorf("%s: the change would make it another vm's entry (name, owner, qemu or creation time changed)", op)
	}
	for _, o := range sc.live {
		if o.Name == name {
			continue
		}
		if err := clash(e, o); err != nil {
			return Entry{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := l.write(e); err != nil {
		return Entry{}, fmt.Errorf("%s: %w", op, err)
	}
	return e, nil
}

// Clash says how e's CPUs collide with those another VM o holds (wrapping
// ErrCPUTaken), nil when they don't: e's dedicated CPUs where o's threads
// run, or e's vCPU or emulator threads on o's dedicated CPUs.
func Clash(e, o Entry) error { return clash(e, o) }

// clone copies e deeply enough that a change to the copy's maps and slices
// leaves e as it was.
func clone(e Entry) Entry {
	c := e
	c.HostNodes = append([]int(nil), e.HostNodes...)
	c.MemoryBytes = make(map[int]uint64, len(e.MemoryBytes))
	for k, v := range e.MemoryBytes {
		c.MemoryBytes[k] = v
	}
	c.VCPUs = make(map[int]int, len(e.VCPUs))
	for k, v := range e.VCPUs {
		c.VCPUs[k] = v
	}
	c.VCPUHomeNodes = make([][]int, len(e.VCPUHomeNodes))
	for i, h := range e.VCPUHomeNodes {
		c.VCPUHomeNodes[i] = append([]int(nil), h...)
	}
	c.GuestNodes = make([]GuestNode, len(e.GuestNodes))
	for i, g := range e.GuestNodes {
		g.HostNodes = append([]int(nil), g.HostNodes...)
		g.VCPUs = append([]int(nil), g.VCPUs...)
		c.GuestNodes[i] = g
	}
	c.Moves = append([]Move(nil), e.Moves...)
	c.VCPUSlots = append([]VCPUSlot(nil), e.VCPUSlots...)
	c.MemorySlots = nil
	for _, m := range e.MemorySlots {
		m.HostNodes = append([]int(nil), m.HostNodes...)
		c.MemorySlots = append(c.MemorySlots, m)
	}
	return c
}
