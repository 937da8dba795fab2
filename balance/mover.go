// Package balance keeps running VMs on host nodes that have room for them,
// as numad and ESXi's NUMA scheduler do, with qnuma's planner and ledger:
// a round samples the nodes and the ledger's VMs (Sampler), decides at
// most one move (Decide, pure), and hands it to a Mover (qnuma move).
package balance

import (
	"context"
	"time"

	"github.com/qnuma/qnuma/ledger"
)

// Mover moves a running VM to other host nodes, keeping its guest NUMA
// layout: what `qnuma move` does. qnuma balance only decides; a Mover
// does the work and keeps the ledger.
type Mover interface {
	// Fits says whether vm, its guest nodes moved to the host nodes of
	// to (guest node id → host nodes; key 0 for a VM without guest
	// nodes), fits the host now: room, distances, the dedicated CPUs of
	// other VMs, hugepages. nil: it fits; an error says why not (wrapping
	// plan.ErrDoesNotFit when it is a matter of room). It changes nothing.
	Fits(vm ledger.Entry, to map[int][]int) error
	// Move moves the VM as req says and records it in the ledger (a
	// ledger.Move with By req.By). It refuses, changing nothing, a VM
	// whose qemu is no longer req.QEMU or a move that does not fit.
	Move(ctx context.Context, req MoveRequest) (MoveResult, error)
}

// MoveRequest is one move for a Mover.
type MoveRequest struct {
	// VM is the ledger name; QEMU the process it must still be.
	VM   string
	QEMU ledger.Proc
	// To maps each guest node id to its new host nodes (key 0 for a VM
	// without guest nodes). Every guest node of the VM is in To; those
	// whose host nodes do not change keep them, and their pages that
	// strayed to other nodes come home (a locality move sends To equal
	// to the VM's layout now).
	To map[int][]int
	// PagesPerSecond bounds the migration rate (0: as fast as the kernel
	// moves them).
	PagesPerSecond int
	// By is what asked for the move, for the ledger ("qnuma balance").
	By string
}

// MoveResult is what a move did.
type MoveResult struct {
	// Pages moved, in all and per host node they went to.
	Pages        uint64
	PagesPerNode map[int]uint64
	// Took is how long the move took.
	Took time.Duration
	// Locality of the VM's guest RAM (percent on its home nodes) before
	// and after the move, as the mover measured it.
	LocalityBefore, LocalityAfter float64
}
