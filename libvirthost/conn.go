// Package libvirthost is qnuma's side of a libvirt daemon: it connects
// (github.com/digitalocean/go-libvirt, libvirt's own RPC), reads domains
// and the host as libvirt describes it, and applies pins and memory
// nodesets. The CLI talks to it through Conn, so its logic is tested
// against a fake (libvirthosttest) as well as a real libvirtd.
package libvirthost

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"k8s.io/utils/cpuset"
)

// Sentinel errors callers branch on.
var (
	// ErrNoDomain: libvirt has no domain of that name.
	ErrNoDomain = errors.New("no such domain")
	// ErrRefused: libvirt refused the change as invalid for this domain
	// (operation invalid, unsupported configuration, invalid argument, XML
	// it rejects): the caller's input, not a fault.
	ErrRefused = errors.New("libvirt refused")
	// ErrBadURI: the connection URI is not one qnuma can dial.
	ErrBadURI = errors.New("bad libvirt uri")
)

// Unix sockets of a local daemon: the monolithic libvirtd (Debian 12's
// libvirt 9.0) and the modular virtqemud.
const (
	SystemSocket        = "/run/libvirt/libvirt-sock"
	SystemModularSocket = "/run/libvirt/virtqemud-sock"
)

// DefaultURI is qemu:///system for root and qemu:///session for a user,
// as virsh chooses.
func DefaultURI() string {
	if os.Geteuid() == 0 {
		return "qemu:///system"
	}
	return "qemu:///session"
}

// IsLocal says a URI reaches a daemon on this machine (a unix socket, no
// host): then the host's topology and free memory come from sysfs, which
// is what libvirt's own capabilities are read from.
func IsLocal(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && u.Host == ""
}

// IsSession says a URI reaches a session daemon (qemu:///session, or
// remotely qemu+ssh://HOST/session): one of a user, without cgroups.
func IsSession(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && u.Path == "/session"
}

// SocketFor is the unix socket a local URI reaches: its ?socket=, else the
// system daemon's (the monolithic one when it is there, else virtqemud's),
// else for qemu:///session the user's under $XDG_RUNTIME_DIR/libvirt.
// exists says which paths are there (os.Stat in production).
func SocketFor(u *url.URL, exists func(string) bool) (string, error) {
	if s := u.Query().Get("socket"); s != "" {
		return s, nil
	}
	switch u.Path {
	case "/system":
		if !exists(SystemSocket) && exists(SystemModularSocket) {
			return SystemModularSocket, nil
		}
		return SystemSocket, nil
	case "/session":
		dir := os.Getenv("XDG_RUNTIME_DIR")
		if dir == "" {
			return "", fmt.Errorf("%w: %s: $XDG_RUNTIME_DIR is not set, so the session daemon's socket is unknown: give ?socket=PATH", ErrBadURI, u)
		}
		for _, name := range []string{"libvirt-sock", "virtqemud-sock"} {
			if p := filepath.Join(dir, "libvirt", name); exists(p) {
				return p, nil
			}
		}
		return "", fmt.Errorf("%w: %s: no session daemon answers under %s (start one with virsh -c qemu:///session list, or give ?socket=PATH)", ErrBadURI, u, filepath.Join(dir, "libvirt"))
	}
	return "", fmt.Errorf("%w: %s: want qemu:///system or qemu:///session (or qemu+tcp://HOST/system, qemu+ssh://...)", ErrBadURI, u)
}

// State is a domain's run state, as libvirt names it.
type State int

// The states qnuma tells apart (virDomainState).
const (
	StateOther   State = 0
	StateRunning State = 1
	StatePaused  State = 3
	StateShutoff State = 5
)

// Active says a qemu process runs for the domain (running or paused).
func (s State) Active() bool { return s == StateRunning || s == StatePaused }

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StatePaused:
		return "paused"
	case StateShutoff:
		return "shut off"
	}
	return fmt.Sprintf("state %d", int(s))
}

// NUMAMode is <numatune><memory mode>, as virDomainNumatuneMemMode numbers it.
type NUMAMode int

// The modes, in libvirt's numbering.
const (
	ModeStrict      NUMAMode = 0
	ModePreferred   NUMAMode = 1
	ModeInterleave  NUMAMode = 2
	ModeRestrictive NUMAMode = 3
)

func (m NUMAMode) String() string {
	switch m {
	case ModeStrict:
		return "strict"
	case ModePreferred:
		return "preferred"
	case ModeInterleave:
		return "interleave"
	case ModeRestrictive:
		return "restrictive"
	}
	return fmt.Sprintf("mode %d", int(m))
}

// NUMAParams is a running domain's memory binding (virsh numatune).
type NUMAParams struct {
	Mode NUMAMode
	// Nodes is empty when the domain has no nodeset (no <numatune>).
	Nodes cpuset.CPUSet
}

// IOThread is one I/O thread of a running domain and where it may run.
type IOThread struct {
	ID   int
	CPUs cpuset.CPUSet
}

// Conn is what qnuma asks of a libvirt daemon. Domains are named as virsh
// names them. Pins and the nodeset are changed on the running domain only
// (VIR_DOMAIN_AFFECT_LIVE); the persistent definition changes through
// Define.
type Conn interface {
	// HypervisorVersion is the QEMU the daemon runs (major, minor).
	HypervisorVersion() (major, minor int, err error)
	// Capabilities is the host's capabilities XML (virsh capabilities).
	Capabilities() (string, error)
	// CellFreeMemory is a NUMA cell's free memory in bytes.
	CellFreeMemory(cell int) (uint64, error)
	// FreePages is the free pages of each size (KiB) on cells start..start+n-1,
	// sizes varying fastest.
	FreePages(sizesKiB []uint32, start, n int) ([]uint64, error)

	// DomainState wraps ErrNoDomain when there is no such domain.
	DomainState(name string) (State, error)
	// Persistent says the domain has a persistent definition (a transient
	// one exists only while it runs).
	Persistent(name string) (bool, error)
	// DomainXML is the running definition, or with inactive the
	// persistent one (virsh dumpxml [--inactive]).
	DomainXML(name string, inactive bool) (string, error)
	// ActiveDomains is the names of every running or paused domain.
	ActiveDomains() ([]string, error)

	VCPUPins(name string, vcpus, hostCPUs int) ([]cpuset.CPUSet, error)
	EmulatorPin(name string, hostCPUs int) (cpuset.CPUSet, error)
	IOThreads(name string, hostCPUs int) ([]IOThread, error)
	NUMAParams(name string) (NUMAParams, error)

	PinVCPU(name string, vcpu int, cpus cpuset.CPUSet) error
	PinEmulator(name string, cpus cpuset.CPUSet) error
	PinIOThread(name string, id int, cpus cpuset.CPUSet) error
	// SetNUMANodeset changes the running domain's memory nodeset, its mode
	// kept.
	SetNUMANodeset(name string, nodes cpuset.CPUSet) error
	// Define makes xml the domain's persistent definition, validated by
	// libvirt against its schema (VIR_DOMAIN_DEFINE_VALIDATE).
	Define(xml string) error

	Close() error
}
