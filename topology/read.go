package topology

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/procfs"
	"k8s.io/utils/cpuset"
)

// maxFileBytes bounds what is read of one file: sysfs files are at most a
// page (4 KiB), and /proc/self/status, cgroup and mounts files of a real
// host are far under it.
const maxFileBytes = 1 << 20

// errNotRegular is a path that is not a regular file once opened (a FIFO,
// a device, a directory): sysfs and procfs attributes are regular files,
// and a snapshot's /dev/zero or FIFO would read forever or block.
var errNotRegular = errors.New("not a regular file")

// Read reads the host's topology from root/sys and root/proc; root is "/"
// in production and an unpacked snapshot or a test's tree otherwise. It
// lists directories one level at a time and never walks sysfs recursively,
// whose node/cpuN links can point back at their own directory. A snapshot
// is outside input: only regular files are read, at most a MiB each, so a
// FIFO or a link to /dev/zero is an error naming it, not a hang.
func Read(root string) (*Host, error) {
	if root == "" {
		return nil, errors.New("read host topology: empty root (give / or a snapshot's directory)")
	}
	h, err := read(root)
	if err != nil {
		return nil, fmt.Errorf("read host topology: %w", err)
	}
	return h, nil
}

func read(root string) (*Host, error) {
	cpuDir := filepath.Join(root, "sys/devices/system/cpu")
	online, err := readOnline(cpuDir)
	if err != nil {
		return nil, err
	}
	if online.IsEmpty() {
		return nil, fmt.Errorf("no online cpus under %s", cpuDir)
	}
	nodes, err := readNodes(root, online)
	if err != nil {
		return nil, err
	}
	cpus, err := readCPUs(cpuDir, online, nodes)
	if err != nil {
		return nil, err
	}
	h := &Host{Nodes: nodes, OnlineCPUs: online, CPUs: cpus}
	if h.Allowed, err = readAllowed(root, online, cpuset.New(h.NodeIDs()...)); err != nil {
		return nil, err
	}
	return h, nil
}

// readClean reads a small sysfs or procfs file without its trailing NULs
// and whitespace. os errors already name the file.
func readClean(path string) (string, error) {
	b, err := readFile(path)
	if err != nil {
		return "", err
	}
	return clean(string(b)), nil
}

// readFile reads at most maxFileBytes of a regular file. Symlinks are
// followed (sysfs snapshots hold many), but what they lead to must be a
// regular file; O_NONBLOCK keeps the open of a FIFO from waiting for a
// writer. fs.ErrNotExist passes through.
func readFile(path string) ([]byte, error) {
	b, err := procfs.ReadPath(path, maxFileBytes)
	if errors.Is(err, procfs.ErrNotRegular) {
		return nil, fmt.Errorf("%w: %w", errNotRegular, err)
	}
	return b, err
}

// readDir lists a directory sorted by name, as os.ReadDir does, but opens
// it with O_DIRECTORY so that a FIFO in its place fails at once instead of
// blocking in open.
func readDir(path string) ([]fs.DirEntry, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return cmp.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// readSet reads a cpu or node list or mask with parse, naming the file in
// errors; fs.ErrNotExist passes through for callers with a fallback.
func readSet(path string, parse func(string) (cpuset.CPUSet, error)) (cpuset.CPUSet, error) {
	s, err := readClean(path)
	if err != nil {
		return cpuset.CPUSet{}, err
	}
	set, err := parse(s)
	if err != nil {
		return cpuset.CPUSet{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return set, nil
}

// readOnline reads cpu/online, or where it is absent, the cpuN directories
// and their online files. cpu0 often has no online file (it cannot be
// taken offline), and some snapshots leave the file empty: both mean online.
func readOnline(cpuDir string) (cpuset.CPUSet, error) {
	set, err := readSet(filepath.Join(cpuDir, "online"), parseCPUList)
	if !errors.Is(err, fs.ErrNotExist) {
		return set, err
	}
	entries, err := readDir(cpuDir)
	if err != nil {
		return cpuset.CPUSet{}, fmt.Errorf("list cpus: %w", err)
	}
	var ids []int
	for _, e := range entries {
		id, ok, err := parseIndexedName(e.Name(), "cpu")
		if err != nil {
			return cpuset.CPUSet{}, fmt.Errorf("list cpus in %s: %w", cpuDir, err)
		}
		if !ok {
			continue
		}
		path := filepath.Join(cpuDir, e.Name(), "online")
		s, err := readClean(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			s = ""
		case err != nil:
			return cpuset.CPUSet{}, err
		}
		switch s {
		case "", "1":
			ids = append(ids, id)
		case "0":
		default:
			return cpuset.CPUSet{}, fmt.Errorf("parse %s: %q is not 0 or 1", path, s)
		}
	}
	return cpuset.New(ids...), nil
}

// readNodes reads every nodeN directory, in ascending id order. Without a
// node directory the host is one node 0 with all online CPUs and memory.
func readNodes(root string, online cpuset.CPUSet) ([]Node, error) {
	dir := filepath.Join(root, "sys/devices/system/node")
	entries, err := readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var ids []int
	for _, e := range entries {
		id, ok, err := parseIndexedName(e.Name(), "node")
		if err != nil {
			return nil, fmt.Errorf("list nodes in %s: %w", dir, err)
		}
		if ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		n, err := readWholeMachine(root, online)
		if err != nil {
			return nil, err
		}
		return []Node{n}, nil
	}
	// ReadDir sorts by name: node250 comes before node8.
	slices.Sort(ids)
	nodes := make([]Node, len(ids))
	for i, id := range ids {
		n, row, err := readNode(filepath.Join(dir, "node"+strconv.Itoa(id)), id, online)
		if err != nil {
			return nil, fmt.Errorf("read node %d: %w", id, err)
		}
		// Rows list distances in ascending node-id order; a row of another
		// length cannot be matched to ids, so the node gets none.
		if len(row) == len(ids) {
			n.Distances = make(map[int]int, len(ids))
			for j, to := range ids {
				n.Distances[to] = row[j]
			}
		}
		for _, prev := range nodes[:i] {
			if both := prev.CPUs.Intersection(n.CPUs); !both.IsEmpty() {
				return nil, fmt.Errorf("cpus %s are listed by nodes %d and %d", both, prev.ID, id)
			}
		}
		nodes[i] = n
	}
	return nodes, nil
}

// readNode reads one nodeN directory; row is its raw distance row.
func readNode(dir string, id int, online cpuset.CPUSet) (n Node, row []int, err error) {
	n.ID = id
	cpus, err := readSet(filepath.Join(dir, "cpulist"), parseCPUList)
	if errors.Is(err, fs.ErrNotExist) {
		cpus, err = readSet(filepath.Join(dir, "cpumap"), parseCPUMask)
		if errors.Is(err, fs.ErrNotExist) {
			return n, nil, fmt.Errorf("%s has neither cpulist nor cpumap", dir)
		}
	}
	if err != nil {
		return n, nil, err
	}
	// Node lists can name offline CPUs (they keep their node).
	n.CPUs = cpus.Intersection(online)
	if err := readMemory(&n, filepath.Join(dir, "meminfo")); err != nil {
		return n, nil, err
	}
	if n.Hugepages, err = readHugepages(filepath.Join(dir, "hugepages")); err != nil {
		return n, nil, err
	}
	path := filepath.Join(dir, "distance")
	s, err := readClean(path)
	if errors.Is(err, fs.ErrNotExist) {
		return n, nil, nil
	}
	if err != nil {
		return n, nil, err
	}
	if row, err = parseDistances(s); err != nil {
		return n, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, row, nil
}

// readWholeMachine is node 0 of a host without a node directory (a kernel
// built without NUMA): every online CPU, and memory from /proc/meminfo.
func readWholeMachine(root string, online cpuset.CPUSet) (Node, error) {
	n := Node{ID: 0, CPUs: online}
	if err := readMemory(&n, filepath.Join(root, "proc/meminfo")); err != nil {
		return n, fmt.Errorf("read memory of a host without nodes: %w", err)
	}
	hp, err := readHugepages(filepath.Join(root, "sys/kernel/mm/hugepages"))
	if err != nil {
		return n, fmt.Errorf("read hugepages of a host without nodes: %w", err)
	}
	n.Hugepages = hp
	return n, nil
}

// readMemory fills n's memory figures from a meminfo file.
func readMemory(n *Node, path string) error {
	s, err := readClean(path)
	if err != nil {
		return err
	}
	if err := parseNodeMemory(n, s); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// parseNodeMemory fills n's memory figures from meminfo text. MemTotal is
// required. MemFree may be missing (hand-made snapshots): the free memory
// is then unknown and counted as none (MemFreeUnknown), so that no plan
// promises memory nobody said was there. Inactive(file) is absent before
// Linux 2.6.28. A kernel never reports more free or inactive memory than
// the node has; figures that do, or whose sum passes 2^64 bytes, are
// refused rather than wrapped.
func parseNodeMemory(n *Node, s string) error {
	m, err := parseMeminfo(s)
	if err != nil {
		return err
	}
	total, ok := m["MemTotal"]
	if !ok {
		return errors.New("no MemTotal line")
	}
	free, haveFree := m["MemFree"]
	inactive := m["Inactive(file)"]
	for _, f := range []struct {
		key string
		v   uint64
	}{{"MemFree", free}, {"Inactive(file)", inactive}} {
		if f.v > total {
			return fmt.Errorf("%s %d kB is more than MemTotal %d kB", f.key, f.v>>10, total>>10)
		}
	}
	if _, carry := bits.Add64(free, inactive, 0); carry != 0 {
		return errors.New("MemFree + Inactive(file) overflows")
	}
	n.MemTotal, n.MemFree, n.InactiveFile = total, free, inactive
	n.MemFreeUnknown = !haveFree
	return nil
}

// readHugepages reads hugepages-<size>kB/{nr,free}_hugepages under dir,
// ascending by size; nil when the kernel has no hugepages directory.
func readHugepages(dir string) ([]Hugepages, error) {
	entries, err := readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list hugepage sizes: %w", err)
	}
	var pools []Hugepages
	for _, e := range entries {
		size, err := parseHugepageDir(e.Name())
		if err != nil {
			return nil, fmt.Errorf("list hugepage sizes in %s: %w", dir, err)
		}
		hp := Hugepages{SizeBytes: size}
		for _, f := range []struct {
			name string
			dst  *uint64
		}{{"nr_hugepages", &hp.Total}, {"free_hugepages", &hp.Free}} {
			path := filepath.Join(dir, e.Name(), f.name)
			s, err := readClean(path)
			if err != nil {
				return nil, err
			}
			if *f.dst, err = parseCount(s); err != nil {
				return nil, fmt.Errorf("parse %s: %w", path, err)
			}
		}
		pools = append(pools, hp)
	}
	slices.SortFunc(pools, func(a, b Hugepages) int { return cmp.Compare(a.SizeBytes, b.SizeBytes) })
	return pools, nil
}

// ReadDeviceNode reads the NUMA node of the PCI device addr
// ("0000:3b:00.0") from root/sys/bus/pci/devices/ADDR/numa_node: -1 when
// the kernel gives it none. A device that is not there is fs.ErrNotExist.
func ReadDeviceNode(root, addr string) (int, error) {
	if root == "" {
		return 0, errors.New("read pci device node: empty root")
	}
	path := filepath.Join(root, "sys/bus/pci/devices", addr, "numa_node")
	s, err := readClean(path)
	if err != nil {
		return 0, fmt.Errorf("read node of pci device %s: %w", addr, err)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 || n >= cpulist.MaxID {
		return 0, fmt.Errorf("read node of pci device %s: parse %s: %q is not a node id or -1", addr, path, s)
	}
	return n, nil
}
