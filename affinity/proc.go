package affinity

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/procfs"
	"k8s.io/utils/cpuset"
)

// Threads lists the thread ids of process pid from root/proc/PID/task,
// ascending. root is "/" in production.
func Threads(root string, pid int) ([]int, error) {
	dir := filepath.Join(root, "proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list threads of pid %d: %w", pid, err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			return nil, fmt.Errorf("list threads of pid %d: bad task entry %q", pid, e.Name())
		}
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	return tids, nil
}

// ThreadStatus is what qnuma reads from /proc/PID/task/TID/status.
type ThreadStatus struct {
	Name           string
	CPUsAllowed    cpuset.CPUSet
	MemsAllowed    cpuset.CPUSet
	HasCPUsAllowed bool
	HasMemsAllowed bool
}

// ReadThreadStatus reads root/proc/PID/task/TID/status.
func ReadThreadStatus(root string, pid, tid int) (ThreadStatus, error) {
	p := filepath.Join(root, "proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "status")
	b, err := procfs.Read("/", p, procfs.Small)
	if err != nil {
		return ThreadStatus{}, fmt.Errorf("read status of thread %d of pid %d: %w", tid, pid, err)
	}
	st, err := ParseStatus(b)
	if err != nil {
		return ThreadStatus{}, fmt.Errorf("parse %s: %w", p, err)
	}
	return st, nil
}

// CPUsAllowed returns a thread's Cpus_allowed_list.
func CPUsAllowed(root string, pid, tid int) (cpuset.CPUSet, error) {
	st, err := ReadThreadStatus(root, pid, tid)
	if err != nil {
		return cpuset.New(), err
	}
	if !st.HasCPUsAllowed {
		return cpuset.New(), fmt.Errorf("status of thread %d of pid %d: no Cpus_allowed_list", tid, pid)
	}
	return st.CPUsAllowed, nil
}

// ParseStatus parses the fields qnuma needs from a /proc status file.
func ParseStatus(b []byte) (ThreadStatus, error) {
	var st ThreadStatus
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			st.Name = val
		case "Cpus_allowed_list":
			s, err := cpulist.Parse(val)
			if err != nil {
				return ThreadStatus{}, fmt.Errorf("status field Cpus_allowed_list %q: %w", val, err)
			}
			st.CPUsAllowed, st.HasCPUsAllowed = s, true
		case "Mems_allowed_list":
			s, err := cpulist.Parse(val)
			if err != nil {
				return ThreadStatus{}, fmt.Errorf("status field Mems_allowed_list %q: %w", val, err)
			}
			st.MemsAllowed, st.HasMemsAllowed = s, true
		}
	}
	if err := sc.Err(); err != nil {
		return ThreadStatus{}, err
	}
	return st, nil
}
