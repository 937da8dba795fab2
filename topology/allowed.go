package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// Where Allowed came from (Allowed.Source).
const (
	// SourceProcStatus: Cpus_allowed_list and Mems_allowed_list of
	// proc/self/status, which every kernel since 2.6.26 gives.
	SourceProcStatus = "proc-status"
	// SourceCpusetV1: the legacy cpuset filesystem (files cpus, mems).
	SourceCpusetV1 = "cpuset-v1"
	// SourceCgroupV1: the cgroup v1 cpuset controller (cpuset.cpus, cpuset.mems).
	SourceCgroupV1 = "cgroup-v1"
	// SourceCgroupV2: cgroup v2 (cpuset.cpus.effective, cpuset.mems.effective).
	SourceCgroupV2 = "cgroup-v2"
	// SourceNone: nothing says; every online CPU and every node.
	SourceNone = "none (all online cpus)"
)

// readAllowed finds what this process may use: proc/self/status, else the
// cgroup cpuset, else everything. The sets are cut down to the online CPUs
// and the existing nodes.
func readAllowed(root string, online, nodes cpuset.CPUSet) (Allowed, error) {
	a, from, err := allowedFromStatus(root)
	if err == nil && from == "" {
		a, from, err = allowedFromCgroup(root)
	}
	if err != nil {
		return Allowed{}, fmt.Errorf("read allowed cpus and nodes: %w", err)
	}
	if from == "" {
		return Allowed{CPUs: online, Mems: nodes, Source: SourceNone}, nil
	}
	cpus, mems := a.CPUs.Intersection(online), a.Mems.Intersection(nodes)
	if cpus.IsEmpty() {
		return Allowed{}, fmt.Errorf("read allowed cpus: %s allows cpus %q, none of them online (%s)", from, a.CPUs, online)
	}
	if mems.IsEmpty() {
		return Allowed{}, fmt.Errorf("read allowed nodes: %s allows nodes %q, none of them present (%s)", from, a.Mems, nodes)
	}
	return Allowed{CPUs: cpus, Mems: mems, Source: a.Source}, nil
}

// allowedFromStatus reads proc/self/status; from is "" when it is absent
// or has no *_allowed_list lines.
func allowedFromStatus(root string) (a Allowed, from string, err error) {
	path := filepath.Join(root, "proc/self/status")
	s, err := readClean(path)
	if errors.Is(err, fs.ErrNotExist) {
		return a, "", nil
	}
	if err != nil {
		return a, "", err
	}
	cpus, mems, ok := parseStatus(s)
	if !ok {
		return a, "", nil
	}
	if a.CPUs, err = parseCPUList(cpus); err != nil {
		return a, "", fmt.Errorf("parse %s Cpus_allowed_list: %w", path, err)
	}
	if a.Mems, err = parseCPUList(mems); err != nil {
		return a, "", fmt.Errorf("parse %s Mems_allowed_list: %w", path, err)
	}
	a.Source = SourceProcStatus
	return a, path, nil
}

// parseStatus finds Cpus_allowed_list and Mems_allowed_list in
// /proc/PID/status; ok is false unless both are there.
func parseStatus(s string) (cpus, mems string, ok bool) {
	var haveCPUs, haveMems bool
	for _, line := range strings.Split(s, "\n") {
		key, val, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		switch key {
		case "Cpus_allowed_list":
			cpus, haveCPUs = strings.TrimSpace(val), true
		case "Mems_allowed_list":
			mems, haveMems = strings.TrimSpace(val), true
		}
	}
	if !haveCPUs || !haveMems {
		return "", "", false
	}
	return cpus, mems, true
}

// cpusetKind is one way a cpuset can be mounted.
type cpusetKind struct {
	source     string
	cpus, mems string // file names
	v2         bool
}

// The kinds in the order they win: with a hybrid hierarchy, the cpuset
// controller is on v1 when a v1 mount has it.
var cpusetKinds = []cpusetKind{
	{SourceCpusetV1, "cpus", "mems", false},
	{SourceCgroupV1, "cpuset.cpus", "cpuset.mems", false},
	{SourceCgroupV2, "cpuset.cpus.effective", "cpuset.mems.effective", true},
}

// allowedFromCgroup reads this process's cpuset, found through
// proc/self/cgroup (or proc/self/cpuset) and proc/mounts, with mount points
// mapped under root. from is "" when no cpuset could be found.
func allowedFromCgroup(root string) (a Allowed, from string, err error) {
	mountsPath := filepath.Join(root, "proc/mounts")
	s, err := readClean(mountsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return a, "", nil
	}
	if err != nil {
		return a, "", err
	}
	mounts, err := parseMounts(s)
	if err != nil {
		return a, "", fmt.Errorf("parse %s: %w", mountsPath, err)
	}
	v1, v2, err := readCgroupPaths(root)
	if err != nil {
		return a, "", err
	}
	for _, kind := range cpusetKinds {
		mnt, ok := findMount(mounts, kind.source)
		path := v1
		if kind.v2 {
			path = v2
		}
		if !ok || path == "" {
			continue
		}
		a, from, err = readCpuset(filepath.Join(root, mnt), path, kind)
		if err != nil || from != "" {
			return a, from, err
		}
	}
	return a, "", nil
}

// readCpuset reads kind's files in the cgroup at path under the mount
// directory mnt. A v2 cgroup without the cpuset controller enabled has no
// cpuset files and uses its nearest ancestor's.
func readCpuset(mnt, path string, kind cpusetKind) (a Allowed, from string, err error) {
	// A path outside this cgroup namespace ("/../x") cannot be mapped.
	if slices.Contains(strings.Split(path, "/"), "..") {
		return a, "", nil
	}
	for dir := filepath.Join(mnt, path); ; dir = filepath.Dir(dir) {
		cpusPath := filepath.Join(dir, kind.cpus)
		a.CPUs, err = readSet(cpusPath, parseCPUList)
		if err == nil {
			if a.Mems, err = readSet(filepath.Join(dir, kind.mems), parseCPUList); err != nil {
				return a, "", err
			}
			a.Source = kind.source
			return a, cpusPath, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return a, "", err
		}
		if !kind.v2 || dir == mnt || len(dir) <= len(mnt) {
			return a, "", nil
		}
	}
}

// readCgroupPaths finds this process's cgroup: the v1 cpuset controller's
// path and the v2 path from proc/self/cgroup, else for either the path in
// proc/self/cpuset (which older kernels have without proc/self/cgroup).
func readCgroupPaths(root string) (v1, v2 string, err error) {
	path := filepath.Join(root, "proc/self/cgroup")
	s, err := readClean(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	if err == nil {
		if v1, v2, err = parseProcCgroup(s); err != nil {
			return "", "", fmt.Errorf("parse %s: %w", path, err)
		}
	}
	if v1 != "" && v2 != "" {
		return v1, v2, nil
	}
	cs, err := readClean(filepath.Join(root, "proc/self/cpuset"))
	if errors.Is(err, fs.ErrNotExist) {
		return v1, v2, nil
	}
	if err != nil {
		return "", "", err
	}
	if v1 == "" {
		v1 = cs
	}
	if v2 == "" {
		v2 = cs
	}
	return v1, v2, nil
}

// parseProcCgroup parses /proc/PID/cgroup ("6:cpuset:/a" for v1,
// "0::/a" for v2) into the v1 cpuset path and the v2 path.
func parseProcCgroup(s string) (v1, v2 string, err error) {
	for i, line := range strings.Split(clean(s), "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return "", "", fmt.Errorf("line %d %q: want ID:CONTROLLERS:PATH", i+1, line)
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case slices.Contains(strings.Split(parts[1], ","), "cpuset"):
			v1 = parts[2]
		}
	}
	return v1, v2, nil
}

// mount is one line of /proc/mounts.
type mount struct {
	point, fstype string
	options       []string
}

// parseMounts parses /proc/mounts, undoing its octal escapes ("\040" for a
// space in a mount point).
func parseMounts(s string) ([]mount, error) {
	var ms []mount
	for i, line := range strings.Split(clean(s), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("line %d %q: want DEVICE MOUNTPOINT TYPE OPTIONS", i+1, line)
		}
		point, err := unescapeMount(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		ms = append(ms, mount{point: point, fstype: f[2], options: strings.Split(f[3], ",")})
	}
	return ms, nil
}

func unescapeMount(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("mount point %q: short escape", s)
		}
		c, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("mount point %q: bad escape %q", s, s[i:i+4])
		}
		b.WriteByte(byte(c))
		i += 3
	}
	return b.String(), nil
}

// findMount returns the mount point of the last mount of a cpuset kind
// (a later mount hides an earlier one at the same place).
func findMount(ms []mount, source string) (string, bool) {
	point, found := "", false
	for _, m := range ms {
		var match bool
		switch source {
		case SourceCpusetV1:
			match = m.fstype == "cpuset"
		case SourceCgroupV1:
			match = m.fstype == "cgroup" && slices.Contains(m.options, "cpuset")
		case SourceCgroupV2:
			match = m.fstype == "cgroup2"
		}
		if match {
			point, found = m.point, true
		}
	}
	return point, found
}
