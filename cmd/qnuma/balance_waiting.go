package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/qnuma/qnuma/balance"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
)

// waitingFits is balance's Config.WaitingFits: it reads the host and the
// ledger (what each VM's qemu holds too), then asks fitsWithMove.
func waitingFits(stateDir string) func(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error {
	return func(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error {
		host, err := topology.Read("/")
		if err != nil {
			return err
		}
		l, st, err := listLedger(context.Background(), stateDir)
		if err != nil {
			return err
		}
		return fitsWithMove(host, st.Entries, l.Placed(st.Entries), w, moved, to)
	}
}

// fitsWithMove plans the waiting VM w on a hypothetical host and ledger:
// as they are (moved nil), or with moved moved to to as qnuma move would
// (plan.Move against the other VMs; refused, the error says so). It is
// pure. The moved VM's promise goes to its new nodes, its pages there
// stay counted as held, and those on nodes it leaves are free again.
// placed is entries as the planner counts them, in the same order.
func fitsWithMove(host *topology.Host, entries []ledger.Entry, placed []plan.Placed, w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error {
	if moved == nil {
		_, err := plan.Make(host, w.Spec, placed)
		return err
	}
	i := slices.IndexFunc(entries, func(e ledger.Entry) bool { return e.Name == moved.Name })
	if i < 0 {
		return fmt.Errorf("vm %s: %w", moved.Name, ledger.ErrNoVM)
	}
	self := placed[i]
	others := slices.Delete(slices.Clone(placed), i, i+1)
	p, err := plan.Move(host, runningWith(entries[i], self), plan.MoveSpec{To: to}, others)
	if err != nil {
		return fmt.Errorf("move vm %s to %s: %w", moved.Name, balance.FormatLayout(to), err)
	}
	after := entryAfterMove(entries[i], p).Placed()
	after.ResidentBytes = map[int]uint64{}
	h := *host
	h.Nodes = slices.Clone(host.Nodes)
	for n, b := range self.ResidentBytes {
		if _, keeps := after.MemoryBytes[n]; keeps {
			after.ResidentBytes[n] = b
			continue
		}
		for k := range h.Nodes {
			if h.Nodes[k].ID == n {
				h.Nodes[k].MemFree += b
			}
		}
	}
	_, err = plan.Make(&h, w.Spec, append(others, after))
	return err
}

// waitingMover is a Mover that can also plan a waiting VM around a move
// (moveMover; balancetest.Mover with WaitFit set).
type waitingMover interface {
	WaitingFits(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error
}

func (m moveMover) WaitingFits(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error {
	return waitingFits(m.stateDir)(w, moved, to)
}

// waiting lists the ledger's waiting VMs; unreadable waiting files are
// reported with the corrupt entries and left alone.
func (b *balancer) waiting(ctx context.Context) ([]ledger.Waiting, error) {
	ws, corrupt, err := b.ledger.ListWaiting(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range corrupt {
		b.corrupt = append(b.corrupt, c.Error())
	}
	return ws, nil
}

// waitingReport is a waiting VM as --json prints it.
type waitingReport struct {
	Name     string    `json:"name"`
	OwnerPID int       `json:"owner_pid"`
	Since    time.Time `json:"since"`
	VCPUs    int       `json:"vcpus"`
	Memory   uint64    `json:"memory_bytes"`
	Short    string    `json:"short"`
}

func waitingReports(s balance.Sample) []waitingReport {
	out := []waitingReport{}
	for _, w := range s.Waiting {
		out = append(out, waitingReport{Name: w.Label(), OwnerPID: w.Owner.PID, Since: w.Since, VCPUs: w.Spec.VCPUs, Memory: w.Spec.MemoryBytes, Short: w.Short})
	}
	return out
}
