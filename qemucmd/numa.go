package qemucmd

import (
	"fmt"
	"strconv"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
)

// NumaNode is -numa node: a guest node, its vCPUs (cpus=, repeatable),
// and its memory: a backend (memdev=) or, in the legacy form, a size
// (mem=, MiB when bare). Nil and zero mean not given.
type NumaNode struct {
	NodeID    *int
	CPUs      cpuset.CPUSet
	HasCPUs   bool
	Memdev    string
	Mem       uint64
	HasMem    bool
	Initiator *int
}

// NumaCPU is -numa cpu: the vCPUs with these topology ids are on NodeID.
type NumaCPU struct {
	NodeID                                                                   *int
	SocketID, DieID, ClusterID, CoreID, ThreadID, ModuleID, BookID, DrawerID *int
}

// NumaDist is -numa dist: the distance from guest node Src to Dst.
type NumaDist struct {
	Src, Dst, Val int
}

// NumaHMATLB is -numa hmat-lb: a latency (ns) or bandwidth (bytes/s)
// between an initiator and a target node.
type NumaHMATLB struct {
	Initiator, Target   int
	Hierarchy, DataType string
	Latency             *uint64
	Bandwidth           uint64
}

// NumaHMATCache is -numa hmat-cache: a memory-side cache of a node.
type NumaHMATCache struct {
	NodeID, Level, Line   int
	Size                  uint64
	Associativity, Policy string
}

func parseNuma(v string) (Option, error) {
	p, err := splitKV(v, "type", false)
	if err != nil {
		return nil, err
	}
	r := newReader(p)
	typ, _, _ := r.raw("type")
	switch typ {
	case "node":
		return numaNode(r)
	case "cpu":
		return numaCPU(r)
	case "dist":
		return numaDist(r)
	case "hmat-lb":
		return numaHMATLB(r)
	case "hmat-cache":
		return numaHMATCache(r)
	}
	return nil, fmt.Errorf("type %q: want node, cpu, dist, hmat-lb or hmat-cache", typ)
}

func numaNode(r *reader) (Option, error) {
	var n NumaNode
	var err error
	if n.NodeID, err = r.id("nodeid"); err != nil {
		return nil, err
	}
	if n.CPUs, n.HasCPUs, err = r.list("cpus"); err != nil {
		return nil, err
	}
	if n.Memdev, err = r.str("memdev"); err != nil {
		return nil, err
	}
	if n.Mem, n.HasMem, err = r.size("mem", memobj.MiB); err != nil {
		return nil, err
	}
	if n.Initiator, err = r.id("initiator"); err != nil {
		return nil, err
	}
	if err := r.strict("nodeid, cpus, memdev, mem, initiator"); err != nil {
		return nil, err
	}
	if n.Memdev != "" && n.HasMem {
		return nil, fmt.Errorf("memdev and mem together: give one")
	}
	return n, nil
}

func (n NumaNode) Arg() Arg {
	w := newWriter(false, "type")
	w.str("type", "node")
	w.num("nodeid", n.NodeID)
	w.list("cpus", n.CPUs, n.HasCPUs)
	w.str("memdev", n.Memdev)
	if n.HasMem {
		w.p.Items = append(w.p.Items, Prop{"mem", memobj.FormatSize(n.Mem)})
	}
	w.num("initiator", n.Initiator)
	return newArg("numa", w.String(), n)
}

func (c *NumaCPU) ids() []struct {
	key string
	p   **int
} {
	return []struct {
		key string
		p   **int
	}{{"node-id", &c.NodeID}, {"drawer-id", &c.DrawerID}, {"book-id", &c.BookID}, {"socket-id", &c.SocketID},
		{"die-id", &c.DieID}, {"cluster-id", &c.ClusterID}, {"module-id", &c.ModuleID},
		{"core-id", &c.CoreID}, {"thread-id", &c.ThreadID}}
}

func numaCPU(r *reader) (Option, error) {
	var c NumaCPU
	var err error
	for _, f := range c.ids() {
		if *f.p, err = r.id(f.key); err != nil {
			return nil, err
		}
	}
	if err := r.strict("node-id, socket-id, die-id, cluster-id, core-id, thread-id"); err != nil {
		return nil, err
	}
	if c.NodeID == nil {
		return nil, fmt.Errorf("no node-id")
	}
	return c, nil
}

func (c NumaCPU) Arg() Arg {
	w := newWriter(false, "type")
	w.str("type", "cpu")
	for _, f := range c.ids() {
		w.num(f.key, *f.p)
	}
	return newArg("numa", w.String(), c)
}

func numaDist(r *reader) (Option, error) {
	var d NumaDist
	for _, f := range []struct {
		key string
		p   *int
	}{{"src", &d.Src}, {"dst", &d.Dst}} {
		id, err := r.id(f.key)
		if err != nil {
			return nil, err
		}
		if id == nil {
			return nil, fmt.Errorf("no %s", f.key)
		}
		*f.p = *id
	}
	val, err := r.count("val")
	if err != nil {
		return nil, err
	}
	if val == nil {
		return nil, fmt.Errorf("no val")
	}
	d.Val = *val
	if err := r.strict("src, dst, val"); err != nil {
		return nil, err
	}
	return d, nil
}

func (d NumaDist) Arg() Arg {
	return newArg("numa", fmt.Sprintf("dist,src=%d,dst=%d,val=%d", d.Src, d.Dst, d.Val), d)
}

func numaHMATLB(r *reader) (Option, error) {
	var h NumaHMATLB
	for _, f := range []struct {
		key string
		p   *int
	}{{"initiator", &h.Initiator}, {"target", &h.Target}} {
		id, err := r.id(f.key)
		if err != nil {
			return nil, err
		}
		if id == nil {
			return nil, fmt.Errorf("no %s", f.key)
		}
		*f.p = *id
	}
	var err error
	if h.Hierarchy, err = r.str("hierarchy"); err != nil {
		return nil, err
	}
	if h.DataType, err = r.str("data-type"); err != nil {
		return nil, err
	}
	if h.Hierarchy == "" || h.DataType == "" {
		return nil, fmt.Errorf("give hierarchy and data-type")
	}
	if raw, ok, _ := r.raw("latency"); ok {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("latency=%q is not a number of nanoseconds", raw)
		}
		h.Latency = &n
	}
	if h.Bandwidth, _, err = r.size("bandwidth", 1); err != nil {
		return nil, err
	}
	if err := r.strict("initiator, target, hierarchy, data-type, latency, bandwidth"); err != nil {
		return nil, err
	}
	if (h.Latency != nil) == (h.Bandwidth != 0) {
		return nil, fmt.Errorf("give latency or bandwidth, one of them")
	}
	return h, nil
}

func (h NumaHMATLB) Arg() Arg {
	v := fmt.Sprintf("hmat-lb,initiator=%d,target=%d,hierarchy=%s,data-type=%s", h.Initiator, h.Target, escape(h.Hierarchy), escape(h.DataType))
	if h.Latency != nil {
		v += ",latency=" + strconv.FormatUint(*h.Latency, 10)
	}
	if h.Bandwidth != 0 {
		v += ",bandwidth=" + memobj.FormatSize(h.Bandwidth)
	}
	return newArg("numa", v, h)
}

func numaHMATCache(r *reader) (Option, error) {
	var h NumaHMATCache
	id, err := r.id("node-id")
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, fmt.Errorf("no node-id")
	}
	h.NodeID = *id
	level, err := r.count("level")
	if err != nil {
		return nil, err
	}
	if level == nil {
		return nil, fmt.Errorf("no level")
	}
	h.Level = *level
	var ok bool
	if h.Size, ok, err = r.size("size", 1); err != nil {
		return nil, err
	} else if !ok || h.Size == 0 {
		return nil, fmt.Errorf("no size")
	}
	line, err := r.count("line")
	if err != nil {
		return nil, err
	}
	if line != nil {
		h.Line = *line
	}
	if h.Associativity, err = r.str("associativity"); err != nil {
		return nil, err
	}
	if h.Policy, err = r.str("policy"); err != nil {
		return nil, err
	}
	if err := r.strict("node-id, size, level, associativity, policy, line"); err != nil {
		return nil, err
	}
	return h, nil
}

func (h NumaHMATCache) Arg() Arg {
	w := newWriter(false, "type")
	w.str("type", "hmat-cache")
	w.p.Items = append(w.p.Items, Prop{"node-id", strconv.Itoa(h.NodeID)})
	w.size("size", h.Size)
	w.p.Items = append(w.p.Items, Prop{"level", strconv.Itoa(h.Level)})
	w.str("associativity", h.Associativity)
	w.str("policy", h.Policy)
	if h.Line != 0 {
		w.num("line", &h.Line)
	}
	return newArg("numa", w.String(), h)
}
