package main

import (
	"time"

	"github.com/qnuma/qnuma/ledger"
)

// States of a VM in qnuma ps.
const (
	stateRunning  = "running"
	stateStarting = "starting"
	stateWaiting  = "waiting"
)

// entryState is a ledger entry's state: running once its qemu is recorded.
func entryState(e ledger.Entry) string {
	if e.QEMU.PID == 0 {
		return stateStarting
	}
	return stateRunning
}

// waitingVMs are the waiting VMs as qnuma ps lists them: what they ask
// for, since when they wait, and what was short.
func waitingVMs(ws []ledger.Waiting, now time.Time) []psVM {
	out := make([]psVM, 0, len(ws))
	for _, w := range ws {
		nodes := w.Spec.HostNodes
		if nodes == nil {
			nodes = []int{}
		}
		out = append(out, psVM{
			Name: w.Name, OwnerPID: w.Owner.PID, HostNodes: nodes, VCPUs: w.Spec.VCPUs, MemoryBytes: w.Spec.MemoryBytes,
			NodeMemory: map[int]uint64{}, NodeVCPUs: map[int]int{},
			Created: w.Since, AgeSeconds: int64(now.Sub(w.Since) / time.Second),
			Movable: false, NotMovable: "waiting: not started yet", State: stateWaiting, WaitingFor: w.Short,
		})
	}
	return out
}
