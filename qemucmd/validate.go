package qemucmd

import (
	"fmt"
	"math/bits"
	"strconv"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
)

// Validator is an option that can say what QEMU would refuse in it, or
// what means a bug in the caller, before it is rendered.
type Validator interface {
	Validate() error
}

// Render validates every option that is a Validator and renders them all
// in order. Any invalid option fails the whole: nothing is dropped.
func Render(opts ...Option) ([]string, error) {
	var args []string
	for _, o := range opts {
		if v, ok := o.(Validator); ok {
			if err := v.Validate(); err != nil {
				return nil, err
			}
		}
		args = append(args, o.Arg().Strings()...)
	}
	return args, nil
}

// MaxNUMANodes is QEMU's MAX_NODES: guest node ids and host-nodes values
// stay below it.
const MaxNUMANodes = 128

// Distance bounds as QEMU checks them (NUMA_DISTANCE_MIN, a uint8 value).
const (
	LocalDistance = 10
	maxDistance   = 255
)

// ValidID reports whether QEMU accepts s as an object id (a letter, then
// letters, digits, '-', '.', '_').
func ValidID(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && (c < '0' || c > '9') && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// checkNodes validates a set of node ids for QEMU (0..127).
func checkNodes(nodes cpuset.CPUSet) error {
	for _, n := range nodes.List() {
		if n < 0 || n >= MaxNUMANodes {
			return fmt.Errorf("node %d out of range 0-%d", n, MaxNUMANodes-1)
		}
	}
	return nil
}

func isOn(b *bool) bool { return b != nil && *b }

// Validate checks a backend qnuma writes: what QEMU would refuse, and
// combinations that mean a bug in the caller (prealloc settings without
// prealloc).
func (b Backend) Validate() error {
	if _, err := memobj.ParseBackendType(b.Type); err != nil {
		return fmt.Errorf("memory backend %q: %w", b.ID, err)
	}
	if !ValidID(b.ID) {
		return fmt.Errorf("memory backend id %q: want a letter, then letters, digits, '-', '.' or '_'", b.ID)
	}
	if b.Size == 0 {
		return fmt.Errorf("memory backend %s: size is zero", b.ID)
	}
	if err := checkNodes(b.HostNodes); err != nil {
		return fmt.Errorf("memory backend %s: host-nodes: %w", b.ID, err)
	}
	policy := memobj.Policy(b.Policy)
	if policy != "" {
		if _, err := policy.Mode(); err != nil {
			return fmt.Errorf("memory backend %s: %w", b.ID, err)
		}
		if policy == memobj.PolicyPreferredMany {
			return fmt.Errorf("memory backend %s: policy %s is a process policy; a backend prefers several host-nodes with policy=preferred", b.ID, policy)
		}
	}
	bound := policy != "" && policy != memobj.PolicyDefault
	nodes := b.HasHostNodes && b.HostNodes.Size() > 0
	if b.HasHostNodes && !nodes {
		return fmt.Errorf("memory backend %s: host-nodes is empty", b.ID)
	}
	if bound && !nodes {
		return fmt.Errorf("memory backend %s: policy %s needs host nodes", b.ID, policy)
	}
	if !bound && nodes {
		return fmt.Errorf("memory backend %s: host nodes %s need a policy other than default", b.ID, b.HostNodes)
	}
	if b.PreallocThreads != nil && *b.PreallocThreads < 0 {
		return fmt.Errorf("memory backend %s: prealloc-threads %d is negative", b.ID, *b.PreallocThreads)
	}
	if !isOn(b.Prealloc) && (b.PreallocThreads != nil || b.PreallocContext != "") {
		return fmt.Errorf("memory backend %s: prealloc-threads or prealloc-context without prealloc", b.ID)
	}
	if b.PreallocContext != "" && !ValidID(b.PreallocContext) {
		return fmt.Errorf("memory backend %s: prealloc-context %q is not a valid id", b.ID, b.PreallocContext)
	}
	if (b.Type == string(memobj.BackendFile)) != (b.MemPath != "") {
		return fmt.Errorf("memory backend %s: mem-path is for, and required by, file backends (type %s, mem-path %q)", b.ID, b.Type, b.MemPath)
	}
	if b.HugeTLB != nil && b.Type != string(memobj.BackendMemfd) {
		return fmt.Errorf("memory backend %s: hugetlb is a memfd option, not %s (a file backend takes a hugetlbfs mem-path)", b.ID, b.Type)
	}
	if b.HugeTLBSize != 0 {
		if !isOn(b.HugeTLB) {
			return fmt.Errorf("memory backend %s: hugetlbsize without hugetlb", b.ID)
		}
		if bits.OnesCount64(b.HugeTLBSize) != 1 {
			return fmt.Errorf("memory backend %s: hugetlbsize %d is not a power of two", b.ID, b.HugeTLBSize)
		}
		if b.Size%b.HugeTLBSize != 0 {
			return fmt.Errorf("memory backend %s: size %s is not a multiple of the hugepage size %s", b.ID, memobj.FormatSize(b.Size), memobj.FormatSize(b.HugeTLBSize))
		}
	}
	return nil
}

// Validate checks a thread-context: an id, and exactly one of
// node-affinity and cpu-affinity, not empty.
func (c ThreadContext) Validate() error {
	if !ValidID(c.ID) {
		return fmt.Errorf("thread-context id %q: want a letter, then letters, digits, '-', '.' or '_'", c.ID)
	}
	if err := checkNodes(c.NodeAffinity); err != nil {
		return fmt.Errorf("thread-context %s: node-affinity: %w", c.ID, err)
	}
	nodes := c.HasNodes && c.NodeAffinity.Size() > 0
	cpus := c.HasCPUs && c.CPUAffinity.Size() > 0
	if nodes == cpus || c.HasNodes != nodes || c.HasCPUs != cpus {
		return fmt.Errorf("thread-context %s: give node-affinity or cpu-affinity, exactly one, not empty", c.ID)
	}
	return nil
}

// Validate checks a -numa node: a node id in range, a valid memdev, and
// not both memdev and mem.
func (n NumaNode) Validate() error {
	if n.NodeID == nil {
		return fmt.Errorf("numa node: no nodeid")
	}
	if *n.NodeID >= MaxNUMANodes {
		return fmt.Errorf("numa node %d: nodeid out of range 0-%d", *n.NodeID, MaxNUMANodes-1)
	}
	if *n.NodeID < 0 {
		return fmt.Errorf("numa node %d: nodeid out of range 0-%d", *n.NodeID, MaxNUMANodes-1)
	}
	if n.Memdev != "" && !ValidID(n.Memdev) {
		return fmt.Errorf("numa node %d: memdev %q is not a valid id", *n.NodeID, n.Memdev)
	}
	if n.Memdev != "" && n.HasMem {
		return fmt.Errorf("numa node %d: memdev and mem together: give one", *n.NodeID)
	}
	return nil
}

func idText(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

// Validate checks a -numa cpu: a node id in range, topology ids not
// negative, thread-id only with core-id.
func (c NumaCPU) Validate() error {
	if c.NodeID == nil {
		return fmt.Errorf("numa cpu: no node-id")
	}
	if *c.NodeID < 0 || *c.NodeID >= MaxNUMANodes {
		return fmt.Errorf("numa cpu: node-id %d out of range 0-%d", *c.NodeID, MaxNUMANodes-1)
	}
	for _, f := range c.ids()[1:] {
		if *f.p != nil && **f.p < 0 {
			return fmt.Errorf("numa cpu (node %d, socket %s): %s %d is negative", *c.NodeID, idText(c.SocketID), f.key, **f.p)
		}
	}
	if c.ThreadID != nil && c.CoreID == nil {
		return fmt.Errorf("numa cpu (node %d, socket %s): thread-id without core-id", *c.NodeID, idText(c.SocketID))
	}
	return nil
}

// Validate checks a -numa dist against QEMU's bounds.
func (d NumaDist) Validate() error {
	for _, n := range []int{d.Src, d.Dst} {
		if n < 0 || n >= MaxNUMANodes {
			return fmt.Errorf("numa dist %d->%d: node %d out of range 0-%d", d.Src, d.Dst, n, MaxNUMANodes-1)
		}
	}
	if d.Val < LocalDistance || d.Val > maxDistance {
		return fmt.Errorf("numa dist %d->%d: distance %d out of range %d-%d", d.Src, d.Dst, d.Val, LocalDistance, maxDistance)
	}
	if d.Src == d.Dst && d.Val != LocalDistance {
		return fmt.Errorf("numa dist %d->%d: a node's distance to itself must be %d, not %d", d.Src, d.Dst, LocalDistance, d.Val)
	}
	return nil
}

// Validate checks an -smp qnuma writes: cpus given; a topology, when
// given, complete (sockets, cores, threads) and multiplying out to maxcpus
// (or cpus), which QEMU 7.2 insists on.
func (s SMP) Validate() error {
	written := s.Arg().Value
	for _, f := range s.fields() {
		if *f.p < 0 {
			return fmt.Errorf("-smp: %s=%d is negative", f.key, *f.p)
		}
	}
	if s.CPUs == 0 {
		return fmt.Errorf("-smp: cpus is zero")
	}
	want := s.CPUs
	if s.MaxCPUs > 0 {
		if s.MaxCPUs < s.CPUs {
			return fmt.Errorf("-smp: maxcpus=%d is below cpus=%d", s.MaxCPUs, s.CPUs)
		}
		want = s.MaxCPUs
	}
	if s.Sockets == 0 && s.Dies == 0 && s.Clusters == 0 && s.Cores == 0 && s.Threads == 0 {
		return nil
	}
	if s.Sockets == 0 || s.Cores == 0 || s.Threads == 0 {
		return fmt.Errorf("-smp %s: give sockets, cores and threads together", written)
	}
	p := 1
	for _, n := range []int{s.Sockets, s.Dies, s.Clusters, s.Cores, s.Threads} {
		p *= max(n, 1)
	}
	if p != want {
		return fmt.Errorf("-smp %s: sockets*dies*clusters*cores*threads is %d, not maxcpus %d", written, p, want)
	}
	return nil
}

// Validate checks -m: a size (qnuma always writes one).
func (m Memory) Validate() error {
	if m.Size == 0 {
		return fmt.Errorf("-m: memory size is zero")
	}
	return nil
}

// Validate checks -machine: something to set, and a valid memory-backend id.
func (m Machine) Validate() error {
	if m.MemoryBackend != "" && !ValidID(m.MemoryBackend) {
		return fmt.Errorf("machine memory-backend %q is not a valid id", m.MemoryBackend)
	}
	if m.Type == "" && m.MemoryBackend == "" && m.HMAT == nil && m.Accel == "" && len(m.Other) == 0 {
		return fmt.Errorf("machine: nothing to set (memory-backend \"\" is not a valid id)")
	}
	return nil
}
