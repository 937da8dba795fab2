package numastat

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
)

// Thread is one thread of a process, as /proc shows it now.
type Thread struct {
	TID  int
	Comm string
	// VCPU is the vCPU index for threads named "CPU N/TCG" or "CPU N/KVM"
	// (QEMU names them so with -name ...,debug-threads=on), -1 otherwise.
	VCPU    int
	Allowed cpuset.CPUSet
	LastCPU int
	// Ticks is user + system time in clock ticks: a change between two
	// samples means the thread ran in between.
	Ticks uint64
}

var vcpuName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^CPU (\d+)/(TCG|KVM|HVF|WHPX|NVMM)$`) }) // compiled when first used, not at every start

// VCPUIndex returns the vCPU index a QEMU thread name carries.
func VCPUIndex(comm string) (int, bool) {
	m := vcpuName().FindStringSubmatch(comm)
	if m == nil {
		return -1, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1, false
	}
	return n, true
}

// ReadThreads reads every thread of pid under root/proc. A thread that exits
// while being read is left out: the list is of the threads alive now.
func ReadThreads(root string, pid int) ([]Thread, error) {
	tids, err := affinity.Threads(root, pid)
	if err != nil {
		return nil, err
	}
	out := make([]Thread, 0, len(tids))
	for _, tid := range tids {
		st, err := ReadTaskStat(root, pid, tid)
		if gone(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read thread %d of pid %d: %w", tid, pid, err)
		}
		status, err := affinity.ReadThreadStatus(root, pid, tid)
		if gone(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !status.HasCPUsAllowed {
			return nil, fmt.Errorf("read thread %d of pid %d: status has no Cpus_allowed_list", tid, pid)
		}
		th := Thread{TID: tid, Comm: st.Comm, VCPU: -1, Allowed: status.CPUsAllowed, LastCPU: st.Processor, Ticks: st.UTime + st.STime}
		if n, ok := VCPUIndex(st.Comm); ok {
			th.VCPU = n
		}
		out = append(out, th)
	}
	return out, nil
}

func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// IOThreadID returns the id an I/O thread's name carries: QEMU names the
// thread of `-object iothread,id=ID` "IO ID" with debug-threads=on. The
// kernel keeps 15 bytes of a name, so a long id comes back cut short.
func IOThreadID(comm string) (string, bool) {
	id, ok := strings.CutPrefix(comm, "IO ")
	if !ok || id == "" {
		return "", false
	}
	return id, true
}

// CommLen is how many bytes of a thread's name the kernel keeps.
const CommLen = 15
