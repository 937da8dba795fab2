package qemucmd

import (
	"fmt"
	"strings"

	"k8s.io/utils/cpuset"
)

// Backend is -object memory-backend-TYPE (ram, memfd, file, ...), in the
// key=value form or, with JSON set, the JSON form libvirt writes. Nil and
// zero mean not given; Other keeps the properties not modelled, in order
// (their values raw JSON in the JSON form).
type Backend struct {
	JSON            bool
	Type            string // "ram", "memfd", "file"
	ID              string
	Size            uint64
	HostNodes       cpuset.CPUSet
	HasHostNodes    bool
	Policy          string
	Share           *bool
	Prealloc        *bool
	PreallocThreads *int
	PreallocContext string
	MemPath         string
	HugeTLB         *bool
	HugeTLBSize     uint64
	Other           []Prop
}

// BackendPrefix is the QOM type prefix of memory backends.
const BackendPrefix = "memory-backend-"

// ThreadContext is -object thread-context (QEMU 7.2): the CPUs or nodes
// threads made in it (preallocation threads) run on.
type ThreadContext struct {
	JSON         bool
	ID           string
	CPUAffinity  cpuset.CPUSet
	HasCPUs      bool
	NodeAffinity cpuset.CPUSet
	HasNodes     bool
}

// objectLike says a value is an object qnuma reads, so that a malformed
// one is an error rather than passed by.
func objectLike(v string) bool {
	return strings.HasPrefix(strings.TrimSpace(v), "{") || strings.Contains(v, BackendPrefix) || strings.Contains(v, "thread-context")
}

func parseObject(v string) (Option, error) {
	p, err := ParseProps(v, "qom-type", true)
	if err != nil {
		if objectLike(v) {
			return nil, err
		}
		return nil, nil
	}
	r := newReader(p)
	typ, err := r.str("qom-type")
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(typ, BackendPrefix):
		return parseBackend(r, strings.TrimPrefix(typ, BackendPrefix))
	case typ == "thread-context":
		return parseThreadContext(r)
	case typ == "":
		return nil, fmt.Errorf("no qom-type")
	}
	return nil, nil
}

func parseBackend(r *reader, typ string) (Option, error) {
	b := Backend{JSON: r.p.JSON, Type: typ}
	var err error
	if b.ID, err = r.str("id"); err != nil {
		return nil, err
	}
	if b.ID == "" {
		return nil, fmt.Errorf("memory backend without id")
	}
	if b.Size, _, err = r.size("size", 1); err != nil {
		return nil, err
	}
	if b.HostNodes, b.HasHostNodes, err = r.list("host-nodes"); err != nil {
		return nil, err
	}
	if b.Policy, err = r.str("policy"); err != nil {
		return nil, err
	}
	switch b.Policy {
	case "", "default", "preferred", "bind", "interleave":
	default:
		return nil, fmt.Errorf("policy %q: want default, preferred, bind or interleave", b.Policy)
	}
	for _, f := range []struct {
		key string
		p   **bool
	}{{"share", &b.Share}, {"prealloc", &b.Prealloc}, {"hugetlb", &b.HugeTLB}} {
		if *f.p, err = r.boolean(f.key); err != nil {
			return nil, err
		}
	}
	if b.PreallocThreads, err = r.count("prealloc-threads"); err != nil {
		return nil, err
	}
	if b.PreallocContext, err = r.str("prealloc-context"); err != nil {
		return nil, err
	}
	if b.MemPath, err = r.str("mem-path"); err != nil {
		return nil, err
	}
	if b.HugeTLBSize, _, err = r.size("hugetlbsize", 1); err != nil {
		return nil, err
	}
	b.Other = r.rest()
	return b, nil
}

func (b Backend) Arg() Arg {
	w := newWriter(b.JSON, "qom-type")
	w.str("qom-type", BackendPrefix+b.Type)
	w.str("id", b.ID)
	w.size("size", b.Size)
	w.str("mem-path", b.MemPath)
	w.boolean("hugetlb", b.HugeTLB)
	w.size("hugetlbsize", b.HugeTLBSize)
	w.boolean("share", b.Share)
	w.list("host-nodes", b.HostNodes, b.HasHostNodes)
	w.str("policy", b.Policy)
	w.boolean("prealloc", b.Prealloc)
	w.num("prealloc-threads", b.PreallocThreads)
	w.str("prealloc-context", b.PreallocContext)
	w.extra(b.Other)
	return newArg("object", w.String(), b)
}

func parseThreadContext(r *reader) (Option, error) {
	c := ThreadContext{JSON: r.p.JSON}
	var err error
	if c.ID, err = r.str("id"); err != nil {
		return nil, err
	}
	if c.ID == "" {
		return nil, fmt.Errorf("thread-context without id")
	}
	if c.CPUAffinity, c.HasCPUs, err = r.list("cpu-affinity"); err != nil {
		return nil, err
	}
	if c.NodeAffinity, c.HasNodes, err = r.list("node-affinity"); err != nil {
		return nil, err
	}
	if err := r.strict("id, cpu-affinity, node-affinity"); err != nil {
		return nil, err
	}
	return c, nil
}

func (c ThreadContext) Arg() Arg {
	w := newWriter(c.JSON, "qom-type")
	w.str("qom-type", "thread-context")
	w.str("id", c.ID)
	w.list("cpu-affinity", c.CPUAffinity, c.HasCPUs)
	w.list("node-affinity", c.NodeAffinity, c.HasNodes)
	return newArg("object", w.String(), c)
}

// MemoryDevice is -device pc-dimm, nvdimm or virtio-mem-*: hotplugged
// memory from a backend (memdev=) on a guest node (node=).
type MemoryDevice struct {
	JSON   bool
	Driver string
	ID     string
	Memdev string
	Node   *int
	Other  []Prop
}

// IsMemoryDevice says a -device driver plugs memory into a guest node.
func IsMemoryDevice(driver string) bool {
	return driver == "pc-dimm" || driver == "nvdimm" || strings.HasPrefix(driver, "virtio-mem")
}

func parseDevice(v string) (Option, error) {
	p, err := ParseProps(v, "driver", true)
	if err != nil {
		if strings.HasPrefix(strings.TrimSpace(v), "{") || strings.Contains(v, "dimm") || strings.Contains(v, "virtio-mem") {
			return nil, err
		}
		return nil, nil
	}
	r := newReader(p)
	d := MemoryDevice{JSON: p.JSON}
	if d.Driver, err = r.str("driver"); err != nil {
		return nil, err
	}
	if !IsMemoryDevice(d.Driver) {
		return nil, nil
	}
	if d.ID, err = r.str("id"); err != nil {
		return nil, err
	}
	if d.Memdev, err = r.str("memdev"); err != nil {
		return nil, err
	}
	if d.Node, err = r.id("node"); err != nil {
		return nil, err
	}
	d.Other = r.rest()
	return d, nil
}

func (d MemoryDevice) Arg() Arg {
	w := newWriter(d.JSON, "driver")
	w.str("driver", d.Driver)
	w.str("id", d.ID)
	w.str("memdev", d.Memdev)
	w.num("node", d.Node)
	w.extra(d.Other)
	return newArg("device", w.String(), d)
}
