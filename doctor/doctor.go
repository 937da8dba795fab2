// Package doctor checks what on a host works against NUMA placement: hidden
// nodes, KSM merging across nodes, automatic NUMA balancing, numad,
// transparent hugepages, hugepage pools, /dev/kvm, QEMU's version, cgroup
// cpuset limits and irqbalance. Like topology.Read it reads through a root:
// "/" in production, a tree in tests; things that must run or be opened
// (qemu -version, the KVM ioctl) are done only at "/" or through Env's hooks.
package doctor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/procfs"
	"github.com/qnuma/qnuma/topology"
)

// Status is a check's verdict.
type Status string

const (
	OK    Status = "ok"
	Warn  Status = "warn"
	Error Status = "error"
)

// Result is one check: what it found, why that matters and what to do.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Found  string `json:"found"`
	Why    string `json:"why,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Env is what the checks read.
type Env struct {
	// Root is "/" or a copy of /sys, /proc and /dev.
	Root string
	// QEMUVersion returns what `qemu-system-x86_64 -version` prints. Nil
	// runs it when Root is "/" and skips the check otherwise.
	QEMUVersion func() (string, error)
	// KVMAPIVersion opens the KVM device at path and returns
	// KVM_GET_API_VERSION. Nil does so when Root is "/"; otherwise a
	// present device is only reported.
	KVMAPIVersion func(path string) (int, error)
	// VMs are the ledger's entries, for the hugepages they ask.
	VMs []ledger.Entry
}

func (e Env) live() bool { return filepath.Clean(e.Root) == "/" }

// check is one check; host is nil when the topology could not be read.
type check func(e Env, host *topology.Host, hostErr error) Result

var checks = []check{
	numaNodes, ksm, numaBalancing, numad, transparentHugepages, shmemHugepages, hugepages, kvm, qemu, cpusetLimits, irqbalance,
}

// Run runs every check, in a fixed order.
func Run(e Env) []Result {
	host, err := topology.Read(e.Root)
	out := make([]Result, 0, len(checks))
	for _, c := range checks {
		out = append(out, c(e, host, err))
	}
	return out
}

// Worst is the most serious status among rs.
func Worst(rs []Result) Status {
	w := OK
	for _, r := range rs {
		switch {
		case r.Status == Error:
			return Error
		case r.Status == Warn:
			w = Warn
		}
	}
	return w
}

// readTrim reads a small file without surrounding space and NULs.
func readTrim(root, rel string) (string, error) {
	b, err := procfs.Read(root, rel, procfs.Small)
	if err != nil {
		return "", err
	}
	return strings.Trim(string(b), " \t\n\x00"), nil
}

// processes returns the pids whose comm is name, from root/proc/*/comm.
func processes(root, name string) ([]int, error) {
	des, err := os.ReadDir(filepath.Join(root, "proc"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue // not a process directory
		}
		comm, err := readTrim(root, filepath.Join("proc", de.Name(), "comm"))
		if err != nil {
			continue // exited while being read, or a kernel thread we may not see
		}
		if comm == name {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
