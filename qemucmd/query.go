package qemucmd

// SMP is every -smp merged, the later keys winning, as QEMU merges them;
// last is the last -smp as written. ok is false without -smp.
func (c *Cmdline) SMP() (s SMP, last string, ok bool) {
	for _, a := range c.Args {
		if o, is := a.Opt.(SMP); is {
			s, last, ok = s.Merge(o), a.Value, true
		}
	}
	return s, last, ok
}

// Memory is every -m merged, the later keys winning; last is the last -m
// as written. ok is false without -m.
func (c *Cmdline) Memory() (m Memory, last string, ok bool) {
	for _, a := range c.Args {
		if o, is := a.Opt.(Memory); is {
			m, last, ok = m.Merge(o), a.Value, true
		}
	}
	return m, last, ok
}

// Machine is every -machine (and -M) merged. ok is false without one.
func (c *Cmdline) Machine() (m Machine, ok bool) {
	for _, a := range c.Args {
		if o, is := a.Opt.(Machine); is {
			m, ok = m.Merge(o), true
		}
	}
	return m, ok
}

// Backends are the memory backends (-object memory-backend-*), in order.
func (c *Cmdline) Backends() []Backend { return all[Backend](c) }

// ThreadContexts are the -object thread-context, in order.
func (c *Cmdline) ThreadContexts() []ThreadContext { return all[ThreadContext](c) }

// NumaNodes are the -numa node options, in order.
func (c *Cmdline) NumaNodes() []NumaNode { return all[NumaNode](c) }

// NumaCPUs are the -numa cpu options, in order.
func (c *Cmdline) NumaCPUs() []NumaCPU { return all[NumaCPU](c) }

// NumaDists are the -numa dist options, in order.
func (c *Cmdline) NumaDists() []NumaDist { return all[NumaDist](c) }

// MemoryDevices are the -device pc-dimm, nvdimm and virtio-mem-*, in order.
func (c *Cmdline) MemoryDevices() []MemoryDevice { return all[MemoryDevice](c) }

// Name is the last -name. ok is false without one.
func (c *Cmdline) Name() (n Name, ok bool) {
	for _, a := range c.Args {
		if o, is := a.Opt.(Name); is {
			n, ok = o, true
		}
	}
	return n, ok
}

func all[T Option](c *Cmdline) []T {
	var out []T
	for _, a := range c.Args {
		if o, ok := a.Opt.(T); ok {
			out = append(out, o)
		}
	}
	return out
}
