package domxml

import (
	"fmt"
	"strings"

	"github.com/qnuma/qnuma/cpulist"
	"k8s.io/utils/cpuset"
)

// ParseCPUSet parses a CPU or node set in libvirt's syntax (virBitmapParse),
// as in <vcpu cpuset>, <vcpupin cpuset> and <numatune nodeset>:
// comma-separated items, each an id N, a range N-M, or ^N, which removes N
// from what the items before it set ("0-3,^2,8" is 0,1,3,8). Ids are bounded
// by cpulist.MaxID, and so is the number of ids the items set in all, so
// "0-65535,0-65535,..." is refused like cpulist.Parse refuses it.
func ParseCPUSet(s string) (cpuset.CPUSet, error) {
	set, _, err := parseCPUSet(s)
	return set, err
}

// parseCPUSet is ParseCPUSet that also says how many ids its ranges named
// (the work done), which Parse bounds over the whole domain.
func parseCPUSet(s string) (cpuset.CPUSet, int, error) {
	if strings.TrimSpace(s) == "" {
		return cpuset.CPUSet{}, 0, fmt.Errorf("cpuset %q is empty", s)
	}
	// A bitmap grown to the highest id, and the ids in the order set, so
	// the cost is the ids named plus the highest id / 64, per list.
	var bits []uint64
	var added []int
	total := 0
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if excl, ok := strings.CutPrefix(item, "^"); ok {
			id, err := cpulist.ParseID(excl)
			if err != nil {
				return cpuset.CPUSet{}, 0, fmt.Errorf("cpuset %q: exclusion %q: %w", s, item, err)
			}
			if id/64 < len(bits) {
				bits[id/64] &^= 1 << (id % 64)
			}
			continue
		}
		if item == "" {
			return cpuset.CPUSet{}, 0, fmt.Errorf("cpuset %q: empty item", s)
		}
		lo, hi, isRange := strings.Cut(item, "-")
		if isRange {
			// cpulist.Parse trims spaces around the whole item only.
			item = strings.TrimSpace(lo) + "-" + strings.TrimSpace(hi)
		}
		part, err := cpulist.Parse(item)
		if err != nil {
			return cpuset.CPUSet{}, 0, fmt.Errorf("cpuset %q: %w", s, err)
		}
		if total += part.Size(); total > cpulist.MaxID {
			return cpuset.CPUSet{}, 0, fmt.Errorf("cpuset %q: more than %d ids", s, cpulist.MaxID)
		}
		for _, id := range part.UnsortedList() {
			if id/64 >= len(bits) {
				bits = append(bits, make([]uint64, id/64+1-len(bits))...)
			}
			bits[id/64] |= 1 << (id % 64)
			added = append(added, id)
		}
	}
	var ids []int
	for _, id := range added {
		if bits[id/64]&(1<<(id%64)) != 0 {
			ids = append(ids, id)
			bits[id/64] &^= 1 << (id % 64) // once each
		}
	}
	return cpuset.New(ids...), total, nil
}
