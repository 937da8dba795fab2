package memobj

import (
	"fmt"
	"strconv"
	"strings"
)

// SMP is `-smp CPUS,sockets=,dies=,clusters=,cores=,threads=,maxcpus=`.
// Zero means "not given" for every field.
type SMP struct {
	CPUs, Sockets, Dies, Clusters, Cores, Threads, MaxCPUs int
}

// VCPUs is the number of vCPUs the guest starts with, as QEMU derives it
// when cpus= is left out: maxcpus, else the product of the topology (a
// missing level counts 1).
func (s SMP) VCPUs() int {
	if s.CPUs > 0 {
		return s.CPUs
	}
	if s.MaxCPUs > 0 {
		return s.MaxCPUs
	}
	return s.product()
}

// product saturates at maxProduct: counts from a command line can be
// anything, and a product that wrapped (2^32 × 2^32 = 0) would read as
// "no vCPUs" instead of "too many".
func (s SMP) product() int {
	p := 1
	for _, n := range []int{s.Sockets, s.Dies, s.Clusters, s.Cores, s.Threads} {
		if n > 0 {
			if p > maxProduct/n {
				return maxProduct
			}
			p *= n
		}
	}
	return p
}

const maxProduct = 1 << 31

// opts is s as written, cpus first (error messages quote it).
func (s SMP) opts() []string {
	o := []string{strconv.Itoa(s.CPUs)}
	for _, f := range []struct {
		key string
		v   int
	}{{"sockets", s.Sockets}, {"dies", s.Dies}, {"clusters", s.Clusters}, {"cores", s.Cores}, {"threads", s.Threads}, {"maxcpus", s.MaxCPUs}} {
		if f.v > 0 {
			o = append(o, f.key+"="+strconv.Itoa(f.v))
		}
	}
	return o
}

// Topology is an -smp resolved as QEMU 7.2 resolves it for x86 machines
// (hw/core/machine-smp.c, cores preferred over sockets since 6.2): every
// level set, MaxCPUs the possible vCPUs.
type Topology struct {
	CPUs, MaxCPUs, Sockets, Dies, Clusters, Cores, Threads int
}

// Resolve fills in what s leaves out the way QEMU 7.2 does, and refuses
// what QEMU refuses: a hierarchy whose product is not maxcpus, maxcpus
// below cpus, and clusters (x86 has none). The error quotes s as written.
func (s SMP) Resolve() (Topology, error) {
	t := Topology{CPUs: s.CPUs, MaxCPUs: s.MaxCPUs, Sockets: s.Sockets, Dies: s.Dies, Clusters: s.Clusters, Cores: s.Cores, Threads: s.Threads}
	written := strings.Join(s.opts(), ",")
	if t.Clusters > 1 {
		return t, fmt.Errorf("-smp %s: clusters=%d: x86 machines have no clusters", written, t.Clusters)
	}
	if t.Dies == 0 {
		t.Dies = 1
	}
	if t.Clusters == 0 {
		t.Clusters = 1
	}
	if t.CPUs == 0 && t.MaxCPUs == 0 {
		t.Sockets, t.Cores, t.Threads = max(t.Sockets, 1), max(t.Cores, 1), max(t.Threads, 1)
	} else {
		if t.MaxCPUs == 0 {
			t.MaxCPUs = t.CPUs
		}
		switch {
		case t.Cores == 0:
			t.Sockets, t.Threads = max(t.Sockets, 1), max(t.Threads, 1)
			t.Cores = t.MaxCPUs / (t.Sockets * t.Dies * t.Clusters * t.Threads)
		case t.Sockets == 0:
			t.Threads = max(t.Threads, 1)
			t.Sockets = t.MaxCPUs / (t.Dies * t.Clusters * t.Cores * t.Threads)
		}
		if t.Threads == 0 {
			t.Threads = t.MaxCPUs / (t.Sockets * t.Dies * t.Clusters * t.Cores)
		}
	}
	p := t.Sockets * t.Dies * t.Clusters * t.Cores * t.Threads
	if t.MaxCPUs == 0 {
		t.MaxCPUs = p
	}
	if t.CPUs == 0 {
		t.CPUs = t.MaxCPUs
	}
	if p != t.MaxCPUs {
		return t, fmt.Errorf("-smp %s: sockets (%d) * dies (%d) * cores (%d) * threads (%d) = %d, not maxcpus %d, which QEMU refuses (\"product of the hierarchy must match maxcpus\")",
			written, t.Sockets, t.Dies, t.Cores, t.Threads, p, t.MaxCPUs)
	}
	if t.MaxCPUs < t.CPUs {
		return t, fmt.Errorf("-smp %s: maxcpus %d is below cpus %d", written, t.MaxCPUs, t.CPUs)
	}
	return t, nil
}

// IDs is where QEMU puts vCPU i (its cpu-index) in the topology.
func (t Topology) IDs(i int) (socket, die, core, thread int) {
	perCore := t.Threads
	perDie := t.Cores * perCore
	perSocket := t.Dies * perDie
	return i / perSocket, (i / perDie) % t.Dies, (i / perCore) % t.Cores, i % t.Threads
}
