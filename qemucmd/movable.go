package qemucmd

import (
	"fmt"
	"strings"
)

// NotMovable says why this command line's guest RAM could not be moved to
// other host nodes while the VM runs, or "" when it can: every memory
// backend is a memfd (shmem, mapped shared, not hugetlb) and guest RAM is
// in backends only. A memfd's memory policy belongs to the memfd, so
// another process that maps it (qnuma move) can re-bind it, and every
// later fault of qemu follows; the policy of qemu's own anonymous or
// hugetlb mappings can only be changed by qemu itself.
func (c *Cmdline) NotMovable() string {
	var bad []string
	for _, b := range c.Backends() {
		switch {
		case b.Type != "memfd":
			bad = append(bad, fmt.Sprintf("%s is memory-backend-%s", b.ID, b.Type))
		case b.HugeTLB != nil && *b.HugeTLB:
			bad = append(bad, fmt.Sprintf("%s is on hugepages (hugetlb=on), whose policy stays where qemu set it", b.ID))
		case b.Share != nil && !*b.Share:
			bad = append(bad, fmt.Sprintf("%s has share=off (a private copy of the memfd)", b.ID))
		}
	}
	if len(bad) > 0 {
		return "its guest RAM must be in memory-backend-memfd backends without hugepages: " + strings.Join(bad, "; ")
	}
	m, _ := c.Machine()
	nodes := c.NumaNodes()
	if m.MemoryBackend != "" {
		return ""
	}
	if len(nodes) == 0 {
		return "its guest RAM is qemu's own anonymous memory (-m without -machine memory-backend= or -numa node,memdev=)"
	}
	for i, n := range nodes {
		if n.Memdev == "" && n.HasMem {
			return fmt.Sprintf("guest node %d's RAM is qemu's own anonymous memory (-numa node,mem=)", i)
		}
	}
	return ""
}
