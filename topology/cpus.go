package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"k8s.io/utils/cpuset"
)

// readCPUs describes each online CPU from cpuN/topology. Offline CPUs have
// no topology directory, so only online ones are read.
func readCPUs(cpuDir string, online cpuset.CPUSet, nodes []Node) ([]CPU, error) {
	ids := online.List()
	cpus := make([]CPU, len(ids))
	index := make(map[int]int, len(ids))
	for i, id := range ids {
		c, err := readCPU(filepath.Join(cpuDir, "cpu"+strconv.Itoa(id), "topology"), id, online)
		if err != nil {
			return nil, fmt.Errorf("read cpu %d: %w", id, err)
		}
		c.Node = -1
		for _, n := range nodes {
			if n.CPUs.Contains(id) {
				c.Node = n.ID
			}
		}
		cpus[i] = c
		index[id] = i
	}
	if err := assignCores(cpus, index); err != nil {
		return nil, err
	}
	return cpus, nil
}

// readCPU reads one CPU's topology directory. A kernel that has no
// topology for a CPU (some virtual machines, old kernels) gives a package
// of -1 and a core of its own.
func readCPU(dir string, id int, online cpuset.CPUSet) (CPU, error) {
	c := CPU{ID: id}
	var err error
	if c.Package, err = readInt(filepath.Join(dir, "physical_package_id"), -1); err != nil {
		return c, err
	}
	if c.Die, err = readInt(filepath.Join(dir, "die_id"), 0); err != nil {
		return c, err
	}
	sib, err := readSet(filepath.Join(dir, "thread_siblings_list"), parseCPUList)
	if errors.Is(err, fs.ErrNotExist) {
		sib, err = readSet(filepath.Join(dir, "thread_siblings"), parseCPUMask)
		if errors.Is(err, fs.ErrNotExist) {
			sib, err = cpuset.New(id), nil
		}
	}
	if err != nil {
		return c, err
	}
	// Offline siblings are not threads this host can use.
	c.Siblings = sib.Intersection(online).Union(cpuset.New(id))
	return c, nil
}

// readInt reads a decimal integer such as physical_package_id (which can be
// -1 or large and sparse); def is returned when the file is absent.
func readInt(path string, def int) (int, error) {
	s, err := readClean(path)
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %q is not an integer", path, s)
	}
	return n, nil
}

// assignCores numbers the distinct sibling sets by their lowest CPU, the
// order Host.Cores returns them in. core_id is not used: it repeats within
// a package on some machines. Sibling sets must agree, or a CPU would
// belong to two cores.
func assignCores(cpus []CPU, index map[int]int) error {
	core := map[string]int{}
	for i := range cpus {
		c := &cpus[i]
		for _, s := range c.Siblings.List() {
			if other := cpus[index[s]].Siblings; !other.Equals(c.Siblings) {
				return fmt.Errorf("cpu %d has thread siblings %s but cpu %d has %s", c.ID, c.Siblings, s, other)
			}
		}
		k := c.Siblings.String()
		n, ok := core[k]
		if !ok {
			n = len(core)
			core[k] = n
		}
		c.Core = n
	}
	return nil
}
