package ledger

import (
	"fmt"

	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/procfs"
)

// ResidentOf is a running qemu's guest RAM resident per host node, in
// bytes: the guest RAM mappings of /proc/PID/numa_maps (sized by its
// command line's memory backends or -m), as qnuma stat finds them. It is
// what Ledger.Resident is set to outside tests.
func ResidentOf(pid int) (map[int]uint64, error) {
	cmdline, err := procfs.Read("/", procfs.PID(pid, "cmdline"), procfs.Small)
	if err != nil {
		return nil, fmt.Errorf("resident memory of pid %d: %w", pid, err)
	}
	sizes, err := numastat.RAMSizes(cmdline)
	if err != nil {
		return nil, fmt.Errorf("resident memory of pid %d: %w", pid, err)
	}
	ms, err := numastat.ReadMappings("/", pid)
	if err != nil {
		return nil, fmt.Errorf("resident memory of pid %d: %w", pid, err)
	}
	ram, _ := numastat.GuestRAM(ms, sizes)
	out := map[int]uint64{}
	for _, m := range ram {
		for n, b := range m.NodeBytes() {
			out[n] += b
		}
	}
	return out, nil
}
