// Package libvirthosttest is a libvirthost.Conn held in memory, for tests
// of what qnuma asks of libvirt: it records every change and refuses the
// ones a test names, as a daemon would.
package libvirthosttest

import (
	"fmt"
	"slices"
	"sync"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/libvirthost"
)

// Domain is one domain of the fake daemon.
type Domain struct {
	State libvirthost.State
	// XML is the running definition, Inactive the persistent one ("" for
	// a transient domain: XML is returned).
	XML, Inactive string
	// Transient: no persistent definition.
	Transient bool
	VCPUPins  []cpuset.CPUSet
	Emulator  cpuset.CPUSet
	IOThreads []libvirthost.IOThread
	NUMA      libvirthost.NUMAParams
}

// Fake is a daemon of the domains in Domains. Refuse maps an operation
// name (PinVCPU, PinEmulator, PinIOThread, SetNUMANodeset, Define) to the
// error it returns instead of changing anything.
type Fake struct {
	mu           sync.Mutex
	Major, Minor int
	Caps         string
	Free         map[int]uint64
	Pages        map[int][]uint64
	Domains      map[string]*Domain
	Refuse       map[string]error
	// Calls is every change asked for, applied or refused, in order.
	Calls []string
	// Defined is every XML given to Define and accepted.
	Defined []string
	Closed  bool
}

var _ libvirthost.Conn = (*Fake)(nil)

func (f *Fake) HypervisorVersion() (int, int, error) { return f.Major, f.Minor, nil }
func (f *Fake) Capabilities() (string, error)        { return f.Caps, nil }

func (f *Fake) CellFreeMemory(cell int) (uint64, error) {
	v, ok := f.Free[cell]
	if !ok {
		return 0, fmt.Errorf("fake: no cell %d", cell)
	}
	return v, nil
}

func (f *Fake) FreePages(sizes []uint32, start, n int) ([]uint64, error) {
	var out []uint64
	for c := start; c < start+n; c++ {
		p := f.Pages[c]
		for i := range sizes {
			if i < len(p) {
				out = append(out, p[i])
			} else {
				out = append(out, 0)
			}
		}
	}
	return out, nil
}

func (f *Fake) dom(name string) (*Domain, error) {
	d, ok := f.Domains[name]
	if !ok {
		return nil, fmt.Errorf("fake: domain %q: %w", name, libvirthost.ErrNoDomain)
	}
	return d, nil
}

func (f *Fake) DomainState(name string) (libvirthost.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return 0, err
	}
	return d.State, nil
}

func (f *Fake) Persistent(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return false, err
	}
	return !d.Transient, nil
}

func (f *Fake) DomainXML(name string, inactive bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return "", err
	}
	if inactive && d.Inactive != "" {
		return d.Inactive, nil
	}
	return d.XML, nil
}

func (f *Fake) ActiveDomains() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, d := range f.Domains {
		if d.State.Active() {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (f *Fake) active(name string) (*Domain, error) {
	d, err := f.dom(name)
	if err != nil {
		return nil, err
	}
	if !d.State.Active() {
		return nil, fmt.Errorf("fake: domain %q is not running: %w", name, libvirthost.ErrRefused)
	}
	return d, nil
}

func (f *Fake) VCPUPins(name string, vcpus, hostCPUs int) ([]cpuset.CPUSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.active(name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(d.VCPUPins), nil
}

func (f *Fake) EmulatorPin(name string, hostCPUs int) (cpuset.CPUSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.active(name)
	if err != nil {
		return cpuset.New(), err
	}
	return d.Emulator, nil
}

func (f *Fake) IOThreads(name string, hostCPUs int) ([]libvirthost.IOThread, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.active(name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(d.IOThreads), nil
}

func (f *Fake) NUMAParams(name string) (libvirthost.NUMAParams, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.active(name)
	if err != nil {
		return libvirthost.NUMAParams{}, err
	}
	return d.NUMA, nil
}

// change records the call and returns the refusal the test asked for.
func (f *Fake) change(op, call string) error {
	f.Calls = append(f.Calls, call)
	if err, ok := f.Refuse[op]; ok {
		return fmt.Errorf("fake: %s: %w", call, err)
	}
	return nil
}

func (f *Fake) PinVCPU(name string, vcpu int, cpus cpuset.CPUSet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.active(name)
	if err != nil {
		return err
	}
	if err := f.change("PinVCPU", fmt.Sprintf("PinVCPU %s %d %s", name, vcpu, cpus)); err != nil {
		return err
	}
	if vcpu < 0 || vcpu >= len(d.VCPUPins) {
		return fmt.Errorf("fake: vcpu %d of %d: %w", vcpu, len(d.VCPUPins), libvirthost.ErrRefused)
	}
	d.VCPUPins[vcpu] = cpus
	return nil
}

func (f *Fake) PinEmulator(name string, cpus cpuset.CPUSet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.active(name)
	if err != nil {
		return err
	}
	if err := f.change("PinEmulator", fmt.Sprintf("PinEmulator %s %s", name, cpus)); err != nil {
		return err
	}
	d.Emulator = cpus
	return nil
}

func (f *Fake) PinIOThread(name string, id int, cpus cpuset.CPUSet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.active(name)
	if err != nil {
		return err
	}
	if err := f.change("PinIOThread", fmt.Sprintf("PinIOThread %s %d %s", name, id, cpus)); err != nil {
		return err
	}
	for i := range d.IOThreads {
		if d.IOThreads[i].ID == id {
			d.IOThreads[i].CPUs = cpus
			return nil
		}
	}
	return fmt.Errorf("fake: no i/o thread %d: %w", id, libvirthost.ErrRefused)
}

func (f *Fake) SetNUMANodeset(name string, nodes cpuset.CPUSet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.active(name)
	if err != nil {
		return err
	}
	if err := f.change("SetNUMANodeset", fmt.Sprintf("SetNUMANodeset %s %s", name, nodes)); err != nil {
		return err
	}
	d.NUMA.Nodes = nodes
	return nil
}

func (f *Fake) Define(xml string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("Define", "Define"); err != nil {
		return err
	}
	f.Defined = append(f.Defined, xml)
	return nil
}

func (f *Fake) Close() error { f.Closed = true; return nil }
