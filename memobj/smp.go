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

func (s SMP) product() int {
	p := 1
	for _, n := range []int{s.Sockets, s.Dies, s.Clusters, s.Cores, s.Threads} {
		if n > 0 {
			p *= n
		}
	}
	return p
}

func (s SMP) hasTopology() bool {
	return s.Sockets > 0 || s.Dies > 0 || s.Clusters > 0 || s.Cores > 0 || s.Threads > 0
}

// Validate checks an -smp qnuma writes: cpus given; a topology, when
// given, complete (sockets, cores, threads) and multiplying out to maxcpus
// (or cpus), which QEMU 7.2 insists on.
func (s SMP) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"cpus", s.CPUs}, {"sockets", s.Sockets}, {"dies", s.Dies}, {"clusters", s.Clusters}, {"cores", s.Cores}, {"threads", s.Threads}, {"maxcpus", s.MaxCPUs}} {
		if f.v < 0 {
			return fmt.Errorf("-smp: %s=%d is negative", f.name, f.v)
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
	if !s.hasTopology() {
		return nil
	}
	if s.Sockets == 0 || s.Cores == 0 || s.Threads == 0 {
		return fmt.Errorf("-smp %s: give sockets, cores and threads together", strings.Join(s.opts(), ","))
	}
	if p := s.product(); p != want {
		return fmt.Errorf("-smp %s: sockets*dies*clusters*cores*threads is %d, not maxcpus %d", strings.Join(s.opts(), ","), p, want)
	}
	return nil
}

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

func (s SMP) Args() []string { return []string{"-smp", strings.Join(s.opts(), ",")} }
