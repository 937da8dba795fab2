package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/qnuma/qnuma/topology"
)

func hostError(name string, err error) Result {
	return Result{Name: name, Status: Error, Found: fmt.Sprintf("cannot read the host topology: %v", err),
		Why: "qnuma places VMs from the topology in /sys/devices/system", Fix: "check that /sys is mounted and readable"}
}

func unreadable(name, what string, err error) Result {
	return Result{Name: name, Status: Error, Found: fmt.Sprintf("cannot read %s: %v", what, err)}
}

func numaNodes(_ Env, h *topology.Host, err error) Result {
	const name = "numa-nodes"
	if h == nil {
		return hostError(name, err)
	}
	nodes, pkgs := len(h.Nodes), len(h.Packages())
	found := fmt.Sprintf("%d NUMA node(s) on %d socket(s)", nodes, pkgs)
	if nodes == 1 && pkgs > 1 {
		return Result{Name: name, Status: Warn, Found: found,
			Why: "a multi-socket host showing one node has node interleaving on in the firmware: memory is striped over the sockets and no placement can make it local",
			Fix: "turn node interleaving off (NUMA on) in the firmware setup"}
	}
	if nodes == 1 {
		found += ": every VM is local"
	}
	return Result{Name: name, Status: OK, Found: found}
}

// multiNode: on one node cross-node effects do not exist.
func multiNode(h *topology.Host) bool { return h != nil && len(h.Nodes) > 1 }

func ksm(e Env, h *topology.Host, _ error) Result {
	const name = "ksm"
	run, err := readTrim(e.Root, "sys/kernel/mm/ksm/run")
	if errors.Is(err, fs.ErrNotExist) {
		return Result{Name: name, Status: OK, Found: "KSM is not in this kernel"}
	}
	if err != nil {
		return unreadable(name, "KSM state", err)
	}
	if run != "1" {
		return Result{Name: name, Status: OK, Found: fmt.Sprintf("KSM not running (run=%s)", run)}
	}
	across, err := readTrim(e.Root, "sys/kernel/mm/ksm/merge_across_nodes")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return unreadable(name, "KSM merge_across_nodes", err)
	}
	if across == "0" || err != nil {
		return Result{Name: name, Status: OK, Found: "KSM runs and merges pages within a node only"}
	}
	if !multiNode(h) {
		return Result{Name: name, Status: OK, Found: "KSM runs with merge_across_nodes=1; harmless on one node"}
	}
	return Result{Name: name, Status: Warn, Found: "KSM runs with merge_across_nodes=1",
		Why: "pages merged across nodes leave a VM reading another node's copy: its memory is no longer all local",
		Fix: "echo 2 > /sys/kernel/mm/ksm/run; echo 0 > /sys/kernel/mm/ksm/merge_across_nodes; echo 1 > /sys/kernel/mm/ksm/run"}
}

func numaBalancing(e Env, h *topology.Host, _ error) Result {
	const name = "numa-balancing"
	v, err := readTrim(e.Root, "proc/sys/kernel/numa_balancing")
	if errors.Is(err, fs.ErrNotExist) {
		return Result{Name: name, Status: OK, Found: "automatic NUMA balancing is not in this kernel"}
	}
	if err != nil {
		return unreadable(name, "kernel.numa_balancing", err)
	}
	if v == "0" {
		return Result{Name: name, Status: OK, Found: "kernel.numa_balancing=0"}
	}
	if !multiNode(h) {
		return Result{Name: name, Status: OK, Found: fmt.Sprintf("kernel.numa_balancing=%s; nothing to balance on one node", v)}
	}
	return Result{Name: name, Status: Warn, Found: fmt.Sprintf("kernel.numa_balancing=%s", v),
		Why: "the kernel unmaps and migrates pages of pinned, bound VMs to chase their accesses: faults and jitter for placement that is already right",
		Fix: "sysctl -w kernel.numa_balancing=0 (and in /etc/sysctl.d to keep it)"}
}

func numad(e Env, _ *topology.Host, _ error) Result {
	return daemon(e, "numad", "numad",
		"numad moves whole processes and their memory between nodes every few seconds, undoing qnuma's per-vCPU placement",
		"systemctl disable --now numad")
}

func irqbalance(e Env, _ *topology.Host, _ error) Result {
	return daemon(e, "irqbalance", "irqbalance",
		"irqbalance may send device interrupts to CPUs dedicated to vCPUs, stealing their time",
		"list the dedicated CPUs (qnuma ps) in IRQBALANCE_BANNED_CPULIST in /etc/default/irqbalance, or stop irqbalance")
}

func daemon(e Env, name, comm, why, fix string) Result {
	pids, err := processes(e.Root, comm)
	if err != nil {
		return unreadable(name, "the process list", err)
	}
	if len(pids) == 0 {
		return Result{Name: name, Status: OK, Found: comm + " is not running"}
	}
	return Result{Name: name, Status: Warn, Found: fmt.Sprintf("%s is running (pid %s)", comm, intList(pids)), Why: why, Fix: fix}
}

func transparentHugepages(e Env, _ *topology.Host, _ error) Result {
	const name = "transparent-hugepages"
	v, err := readTrim(e.Root, "sys/kernel/mm/transparent_hugepage/enabled")
	why := "without transparent hugepages guest RAM sits on 4 KiB pages: more TLB misses, each a longer walk when memory is remote"
	if errors.Is(err, fs.ErrNotExist) {
		return Result{Name: name, Status: Warn, Found: "transparent hugepages are not in this kernel", Why: why,
			Fix: "back guest RAM with hugepages (qnuma run --hugepages)"}
	}
	if err != nil {
		return unreadable(name, "the transparent hugepage mode", err)
	}
	mode := bracketed(v)
	switch mode {
	case "always", "madvise":
		return Result{Name: name, Status: OK, Found: fmt.Sprintf("mode %s (QEMU madvises guest RAM)", mode)}
	case "never":
		return Result{Name: name, Status: Warn, Found: "mode never", Why: why,
			Fix: "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled, or use qnuma run --hugepages"}
	}
	return Result{Name: name, Status: Warn, Found: fmt.Sprintf("unknown mode in %q", v), Why: why}
}

// shmemHugepages checks the transparent hugepages of memfd memory, which
// holds guest RAM by default (--memory-backend memfd, so that qnuma move can
// move it): they follow shmem_enabled, not enabled.
func shmemHugepages(e Env, _ *topology.Host, _ error) Result {
	const name = "shmem-hugepages"
	v, err := readTrim(e.Root, "sys/kernel/mm/transparent_hugepage/shmem_enabled")
	why := "qnuma keeps guest RAM in memfds so that running VMs can be moved; their transparent hugepages follow shmem_enabled, and without them guest RAM sits on 4 KiB pages"
	if errors.Is(err, fs.ErrNotExist) {
		return Result{Name: name, Status: Warn, Found: "no shmem transparent hugepages in this kernel", Why: why,
			Fix: "back guest RAM with hugepages (qnuma run --hugepages), or anonymous memory (--memory-backend ram, not movable)"}
	}
	if err != nil {
		return unreadable(name, "the shmem transparent hugepage mode", err)
	}
	switch mode := bracketed(v); mode {
	case "always", "within_size", "advise", "force":
		return Result{Name: name, Status: OK, Found: fmt.Sprintf("mode %s (QEMU madvises guest RAM)", mode)}
	case "never", "deny":
		return Result{Name: name, Status: Warn, Found: "mode " + mode, Why: why,
			Fix: "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled, or qnuma run --hugepages, or --memory-backend ram (not movable)"}
	}
	return Result{Name: name, Status: Warn, Found: fmt.Sprintf("unknown mode in %q", v), Why: why}
}

// bracketed returns the [chosen] word of a sysfs choice list.
func bracketed(s string) string {
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") {
			return strings.Trim(w, "[]")
		}
	}
	return ""
}

func cpusetLimits(_ Env, h *topology.Host, err error) Result {
	const name = "cpuset"
	if h == nil {
		return hostError(name, err)
	}
	a := h.Allowed
	nodes := make([]int, 0, len(h.Nodes))
	for _, n := range h.Nodes {
		if n.HasMemory() {
			nodes = append(nodes, n.ID)
		}
	}
	missingCPUs := h.OnlineCPUs.Difference(a.CPUs)
	var missingNodes []int
	for _, n := range nodes {
		if !a.Mems.Contains(n) {
			missingNodes = append(missingNodes, n)
		}
	}
	found := fmt.Sprintf("this process may use cpus %s of online %s and nodes %s (from %s)", a.CPUs, h.OnlineCPUs, a.Mems, a.Source)
	if missingCPUs.IsEmpty() && len(missingNodes) == 0 {
		return Result{Name: name, Status: OK, Found: found}
	}
	return Result{Name: name, Status: Warn, Found: found,
		Why: fmt.Sprintf("qnuma places VMs only on what its cgroup allows: cpus %s and nodes %s are out of reach", missingCPUs, intList(missingNodes)),
		Fix: "run qnuma in a cgroup whose cpuset.cpus and cpuset.mems cover the host (or accept the smaller host)"}
}

func intList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}
