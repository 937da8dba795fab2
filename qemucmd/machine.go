package qemucmd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/memobj"
)

// SMP is -smp: zero means not given, for every field.
type SMP struct {
	CPUs, MaxCPUs, Sockets, Dies, Clusters, Cores, Threads int
}

func (s *SMP) fields() []struct {
	key string
	p   *int
} {
	return []struct {
		key string
		p   *int
	}{{"cpus", &s.CPUs}, {"maxcpus", &s.MaxCPUs}, {"sockets", &s.Sockets}, {"dies", &s.Dies},
		{"clusters", &s.Clusters}, {"cores", &s.Cores}, {"threads", &s.Threads}}
}

func parseSMP(v string) (SMP, error) {
	p, err := splitKV(v, "cpus", false)
	if err != nil {
		return SMP{}, err
	}
	var s SMP
	r := newReader(p)
	for _, f := range s.fields() {
		raw, ok, _ := r.raw(f.key)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n <= 0 {
			return SMP{}, fmt.Errorf("%s=%q is not a positive count", f.key, raw)
		}
		*f.p = n
	}
	if err := r.strict("cpus, sockets, dies, clusters, cores, threads, maxcpus"); err != nil {
		return SMP{}, err
	}
	if s.MaxCPUs > 0 && s.CPUs > s.MaxCPUs {
		return SMP{}, fmt.Errorf("cpus=%d is above maxcpus=%d", s.CPUs, s.MaxCPUs)
	}
	return s, nil
}

// Merge is s with o's given fields over it: QEMU merges repeated -smp.
func (s SMP) Merge(o SMP) SMP {
	for i, f := range o.fields() {
		if *f.p != 0 {
			*s.fields()[i].p = *f.p
		}
	}
	return s
}

// Arg renders -smp as people write it: cpus bare and first, the topology,
// then maxcpus ("4,sockets=2,cores=2,threads=1,maxcpus=8").
func (s SMP) Arg() Arg {
	var parts []string
	for _, f := range []struct {
		key string
		v   int
	}{{"cpus", s.CPUs}, {"sockets", s.Sockets}, {"dies", s.Dies}, {"clusters", s.Clusters},
		{"cores", s.Cores}, {"threads", s.Threads}, {"maxcpus", s.MaxCPUs}} {
		switch {
		case f.v == 0:
		case f.key == "cpus":
			parts = append(parts, strconv.Itoa(f.v))
		default:
			parts = append(parts, f.key+"="+strconv.Itoa(f.v))
		}
	}
	return newArg("smp", strings.Join(parts, ","), s)
}

// Memory is -m: Size in bytes (QEMU reads a bare number as MiB), Slots and
// MaxMem for memory hotplug. Zero means not given.
type Memory struct {
	Size, MaxMem uint64
	Slots        int
}

func parseMemory(v string) (Memory, error) {
	p, err := splitKV(v, "size", false)
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	r := newReader(p)
	var ok bool
	if m.Size, ok, err = r.size("size", memobj.MiB); err != nil {
		return Memory{}, fmt.Errorf("%w", unwrapKey(err, "size"))
	} else if ok && m.Size == 0 {
		return Memory{}, fmt.Errorf("size is zero")
	}
	if m.MaxMem, ok, err = r.size("maxmem", 1); err != nil {
		return Memory{}, err
	} else if ok && m.MaxMem == 0 {
		return Memory{}, fmt.Errorf("maxmem is zero")
	}
	slots, err := r.count("slots")
	if err != nil {
		return Memory{}, err
	}
	if slots != nil {
		m.Slots = *slots
	}
	if err := r.strict("size, slots, maxmem"); err != nil {
		return Memory{}, err
	}
	if m == (Memory{}) {
		return Memory{}, fmt.Errorf("no size, slots or maxmem")
	}
	return m, nil
}

// unwrapKey drops "size: " from a size error: -m's size is its main value.
func unwrapKey(err error, key string) error {
	if s, ok := strings.CutPrefix(err.Error(), key+": "); ok {
		return fmt.Errorf("%s", s)
	}
	return err
}

// Merge is m with o's given fields over it: QEMU merges repeated -m.
func (m Memory) Merge(o Memory) Memory {
	if o.Size != 0 {
		m.Size = o.Size
	}
	if o.MaxMem != 0 {
		m.MaxMem = o.MaxMem
	}
	if o.Slots != 0 {
		m.Slots = o.Slots
	}
	return m
}

func (m Memory) Arg() Arg {
	w := newWriter(false, "size")
	w.size("size", m.Size)
	if m.Slots != 0 {
		w.num("slots", &m.Slots)
	}
	w.size("maxmem", m.MaxMem)
	return newArg("m", w.String(), m)
}

// Machine is -machine (or -M): its type, the placement keys, and the rest
// kept in order.
type Machine struct {
	Type          string
	MemoryBackend string
	HMAT          *bool
	Accel         string
	Other         []Prop
}

func parseMachine(v string) (Machine, error) {
	p, err := ParseProps(v, "type", false)
	if err != nil {
		return Machine{}, err
	}
	r := newReader(p)
	var m Machine
	if m.Type, err = r.str("type"); err != nil {
		return Machine{}, err
	}
	if m.MemoryBackend, err = r.str("memory-backend"); err != nil {
		return Machine{}, err
	}
	if m.HMAT, err = r.boolean("hmat"); err != nil {
		return Machine{}, err
	}
	if m.Accel, err = r.str("accel"); err != nil {
		return Machine{}, err
	}
	m.Other = r.rest()
	return m, nil
}

// Merge is m with o's given keys over it: QEMU merges repeated -machine.
func (m Machine) Merge(o Machine) Machine {
	if o.Type != "" {
		m.Type = o.Type
	}
	if o.MemoryBackend != "" {
		m.MemoryBackend = o.MemoryBackend
	}
	if o.HMAT != nil {
		m.HMAT = o.HMAT
	}
	if o.Accel != "" {
		m.Accel = o.Accel
	}
	m.Other = append(append([]Prop(nil), m.Other...), o.Other...)
	return m
}

func (m Machine) Arg() Arg {
	w := newWriter(false, "type")
	w.str("type", m.Type)
	w.str("memory-backend", m.MemoryBackend)
	w.boolean("hmat", m.HMAT)
	w.str("accel", m.Accel)
	w.extra(m.Other)
	return newArg("machine", w.String(), m)
}

// Accel is -accel: the accelerator and its properties.
type Accel struct {
	Type  string
	Other []Prop
}

func parseAccel(v string) (Accel, error) {
	p, err := ParseProps(v, "accel", false)
	if err != nil {
		return Accel{}, err
	}
	r := newReader(p)
	var a Accel
	if a.Type, err = r.str("accel"); err != nil {
		return Accel{}, err
	}
	a.Other = r.rest()
	return a, nil
}

func (a Accel) Arg() Arg {
	w := newWriter(false, "accel")
	w.str("accel", a.Type)
	w.extra(a.Other)
	return newArg("accel", w.String(), a)
}

// Name is -name: the guest's name, the process name, and whether threads
// are named (debug-threads=on), which lets qnuma tell vCPU threads apart.
type Name struct {
	Guest, Process string
	DebugThreads   *bool
	Other          []Prop
}

func parseName(v string) (Name, error) {
	p, err := ParseProps(v, "guest", false)
	if err != nil {
		return Name{}, err
	}
	r := newReader(p)
	var n Name
	if n.Guest, err = r.str("guest"); err != nil {
		return Name{}, err
	}
	if n.Process, err = r.str("process"); err != nil {
		return Name{}, err
	}
	if n.DebugThreads, err = r.boolean("debug-threads"); err != nil {
		return Name{}, err
	}
	n.Other = r.rest()
	return n, nil
}

func (n Name) Arg() Arg {
	w := newWriter(false, "guest")
	w.str("guest", n.Guest)
	w.str("process", n.Process)
	w.boolean("debug-threads", n.DebugThreads)
	w.extra(n.Other)
	return newArg("name", w.String(), n)
}
