package memobj

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// BackendType is the kind of QEMU host memory backend.
type BackendType string

const (
	// BackendRAM is anonymous memory (memory-backend-ram).
	BackendRAM BackendType = "ram"
	// BackendMemfd is a memfd, optionally on hugetlbfs (memory-backend-memfd).
	BackendMemfd BackendType = "memfd"
	// BackendFile maps a file or a hugetlbfs mount (memory-backend-file).
	BackendFile BackendType = "file"
)

// ParseBackendType accepts ram, memfd or file.
func ParseBackendType(s string) (BackendType, error) {
	switch t := BackendType(s); t {
	case BackendRAM, BackendMemfd, BackendFile:
		return t, nil
	}
	return "", fmt.Errorf("unknown memory backend type %q: want ram, memfd or file", s)
}

// MemoryBackend is `-object memory-backend-TYPE,...`.
type MemoryBackend struct {
	Type      BackendType
	ID        string
	SizeBytes uint64
	// HostNodes the memory is allocated from; with Policy.
	HostNodes []int
	// Policy applies to HostNodes; "" leaves QEMU's default (no binding),
	// which is only valid without HostNodes.
	Policy   Policy
	Prealloc bool
	// PreallocThreads is how many threads preallocate (0: QEMU's default).
	PreallocThreads int
	// PreallocContext is the id of a thread-context the preallocation
	// threads are created in.
	PreallocContext string
	// MemPath is the file or directory of a file backend.
	MemPath string
	// Hugetlb backs a memfd with hugepages of HugetlbSize bytes (0: the
	// system's default size).
	Hugetlb     bool
	HugetlbSize uint64
	Share       bool
}

// Validate checks what QEMU would refuse, and combinations that mean a bug
// in the caller (prealloc settings without prealloc).
func (b MemoryBackend) Validate() error {
	if _, err := ParseBackendType(string(b.Type)); err != nil {
		return fmt.Errorf("memory backend %q: %w", b.ID, err)
	}
	if !validID(b.ID) {
		return fmt.Errorf("memory backend id %q: want a letter, then letters, digits, '-', '.' or '_'", b.ID)
	}
	if b.SizeBytes == 0 {
		return fmt.Errorf("memory backend %s: size is zero", b.ID)
	}
	if err := checkNodes(b.HostNodes); err != nil {
		return fmt.Errorf("memory backend %s: host-nodes: %w", b.ID, err)
	}
	if b.Policy != "" {
		if _, err := b.Policy.Mode(); err != nil {
			return fmt.Errorf("memory backend %s: %w", b.ID, err)
		}
		if b.Policy == PolicyPreferredMany {
			return fmt.Errorf("memory backend %s: policy %s is a process policy; a backend prefers several host-nodes with policy=preferred", b.ID, b.Policy)
		}
	}
	bound := b.Policy != "" && b.Policy != PolicyDefault
	if bound && len(b.HostNodes) == 0 {
		return fmt.Errorf("memory backend %s: policy %s needs host nodes", b.ID, b.Policy)
	}
	if !bound && len(b.HostNodes) > 0 {
		return fmt.Errorf("memory backend %s: host nodes %v need a policy other than default", b.ID, b.HostNodes)
	}
	if b.PreallocThreads < 0 {
		return fmt.Errorf("memory backend %s: prealloc-threads %d is negative", b.ID, b.PreallocThreads)
	}
	if !b.Prealloc && (b.PreallocThreads > 0 || b.PreallocContext != "") {
		return fmt.Errorf("memory backend %s: prealloc-threads or prealloc-context without prealloc", b.ID)
	}
	if b.PreallocContext != "" && !validID(b.PreallocContext) {
		return fmt.Errorf("memory backend %s: prealloc-context %q is not a valid id", b.ID, b.PreallocContext)
	}
	if (b.Type == BackendFile) != (b.MemPath != "") {
		return fmt.Errorf("memory backend %s: mem-path is for, and required by, file backends (type %s, mem-path %q)", b.ID, b.Type, b.MemPath)
	}
	if b.Hugetlb && b.Type != BackendMemfd {
		return fmt.Errorf("memory backend %s: hugetlb is a memfd option, not %s (a file backend takes a hugetlbfs mem-path)", b.ID, b.Type)
	}
	if b.HugetlbSize != 0 {
		if !b.Hugetlb {
			return fmt.Errorf("memory backend %s: hugetlbsize without hugetlb", b.ID)
		}
		if bits.OnesCount64(b.HugetlbSize) != 1 {
			return fmt.Errorf("memory backend %s: hugetlbsize %d is not a power of two", b.ID, b.HugetlbSize)
		}
		if b.SizeBytes%b.HugetlbSize != 0 {
			return fmt.Errorf("memory backend %s: size %s is not a multiple of the hugepage size %s", b.ID, FormatSize(b.SizeBytes), FormatSize(b.HugetlbSize))
		}
	}
	return nil
}

// Args renders the backend as {"-object", "memory-backend-...,..."}.
func (b MemoryBackend) Args() []string {
	o := []string{"memory-backend-" + string(b.Type), "id=" + b.ID, "size=" + FormatSize(b.SizeBytes)}
	if b.MemPath != "" {
		o = append(o, "mem-path="+escapeOpt(b.MemPath))
	}
	if b.Hugetlb {
		o = append(o, "hugetlb=on")
		if b.HugetlbSize != 0 {
			o = append(o, "hugetlbsize="+FormatSize(b.HugetlbSize))
		}
	}
	if b.Share {
		o = append(o, "share=on")
	}
	if len(b.HostNodes) > 0 {
		o = append(o, listOpts("host-nodes", b.HostNodes))
	}
	if b.Policy != "" {
		o = append(o, "policy="+string(b.Policy))
	}
	if b.Prealloc {
		o = append(o, "prealloc=on")
		if b.PreallocThreads > 0 {
			o = append(o, "prealloc-threads="+strconv.Itoa(b.PreallocThreads))
		}
		if b.PreallocContext != "" {
			o = append(o, "prealloc-context="+b.PreallocContext)
		}
	}
	return []string{"-object", strings.Join(o, ",")}
}

// ThreadContext is `-object thread-context,...` (QEMU 7.2): threads it
// creates, such as preallocation threads, run on NodeAffinity's CPUs or on
// CPUAffinity. Exactly one of the two is set.
type ThreadContext struct {
	ID           string
	NodeAffinity []int
	CPUAffinity  cpuset.CPUSet
}

func (c ThreadContext) Validate() error {
	if !validID(c.ID) {
		return fmt.Errorf("thread-context id %q: want a letter, then letters, digits, '-', '.' or '_'", c.ID)
	}
	if err := checkNodes(c.NodeAffinity); err != nil {
		return fmt.Errorf("thread-context %s: node-affinity: %w", c.ID, err)
	}
	if (len(c.NodeAffinity) > 0) == (c.CPUAffinity.Size() > 0) {
		return fmt.Errorf("thread-context %s: give node-affinity or cpu-affinity, exactly one", c.ID)
	}
	return nil
}

func (c ThreadContext) Args() []string {
	o := "thread-context,id=" + c.ID + ","
	if len(c.NodeAffinity) > 0 {
		o += listOpts("node-affinity", c.NodeAffinity)
	} else {
		o += listOpts("cpu-affinity", c.CPUAffinity.List())
	}
	return []string{"-object", o}
}
