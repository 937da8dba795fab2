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
	var in []bool // in[id]: id is in the set so far
	total := 0
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if excl, ok := strings.CutPrefix(item, "^"); ok {
			id, err := cpulist.ParseID(excl)
			if err != nil {
				return cpuset.CPUSet{}, 0, fmt.Errorf("cpuset %q: exclusion %q: %w", s, item, err)
			}
			if id < len(in) {
				in[id] = false
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
			if id >= len(in) {
				in = append(in, make([]bool, id+1-len(in))...)
			}
			in[id] = true
		}
	}
	var ids []int
	for id, ok := range in {
		if ok {
			ids = append(ids, id)
		}
	}
	return cpuset.New(ids...), total, nil
}
