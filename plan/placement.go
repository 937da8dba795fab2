package plan

import "k8s.io/utils/cpuset"

// Placement is where a VM's process and threads go, as the launcher, the
// pin helper of the numactl spelling and live re-pinning apply it: the
// memory policy qemu starts under, each vCPU's host CPUs, the CPUs of
// qemu's other threads, and the I/O threads with CPUs of their own. A Plan
// makes one (Plan.Placement); so can anything that knows a running VM's
// threads (the ledger, qnuma move).
type Placement struct {
	Mempolicy Mempolicy
	// VCPUs[i] are vCPU i's host CPUs, for the vCPUs present at start.
	VCPUs []cpuset.CPUSet
	// VCPUIDs[i], when not nil, is the id (QEMU's cpu-index) of the vCPU
	// VCPUs[i] is for: a VM with hotplug room may start with any of its
	// slots. nil: VCPUs[i] is vCPU i's.
	VCPUIDs []int
	// Emulator are the CPUs of qemu's threads that are no vCPU.
	Emulator cpuset.CPUSet
	// IOThreads: those Given CPUs of their own are pinned there after the
	// emulator threads.
	IOThreads []IOThread
}

// Placement is the plan's placement.
func (p *Plan) Placement() Placement {
	pl := Placement{Mempolicy: p.Mempolicy, Emulator: p.EmulatorCPUs, IOThreads: p.IOThreads}
	gaps := false
	for i, v := range p.VCPUs {
		pl.VCPUs = append(pl.VCPUs, v.HostCPUs)
		gaps = gaps || v.ID != i
	}
	if gaps {
		for _, v := range p.VCPUs {
			pl.VCPUIDs = append(pl.VCPUIDs, v.ID)
		}
	}
	return pl
}
