package libvirthost

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
)

// dialTimeout bounds connecting to the daemon.
const dialTimeout = 15 * time.Second

// Client is Conn over go-libvirt.
type Client struct {
	l   *libvirt.Libvirt
	uri string
}

var _ Conn = (*Client)(nil)

// Dial connects to the daemon of uri: qemu:///system or qemu:///session on
// its unix socket (SocketFor), or a remote one (qemu+tcp://, qemu+tls://,
// qemu+ssh://) through go-libvirt's dialers.
func Dial(uri string) (*Client, error) {
	u, err := url.Parse(uri)
	if err != nil || !strings.HasPrefix(u.Scheme, "qemu") {
		return nil, fmt.Errorf("%w: %q: want qemu:///system, qemu:///session or qemu+tcp://HOST/system", ErrBadURI, uri)
	}
	var l *libvirt.Libvirt
	if u.Scheme == "qemu" || u.Scheme == "qemu+unix" {
		sock, err := SocketFor(u, func(p string) bool { _, err := os.Stat(p); return err == nil })
		if err != nil {
			return nil, err
		}
		l = libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(sock), dialers.WithLocalTimeout(dialTimeout)))
		remote := libvirt.RemoteURI(&url.URL{Scheme: "qemu", Path: u.Path})
		if err := l.ConnectToURI(remote); err != nil {
			return nil, fmt.Errorf("connect to libvirt %s (socket %s): %w", uri, sock, err)
		}
	} else {
		if l, err = libvirt.ConnectToURI(u); err != nil {
			return nil, fmt.Errorf("connect to libvirt %s: %w", uri, err)
		}
	}
	return &Client{l: l, uri: uri}, nil
}

// Close ends the connection.
func (c *Client) Close() error { return c.l.Disconnect() }

// wrap names the call and maps libvirt's error codes onto the sentinels.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	var le libvirt.Error
	if errors.As(err, &le) {
		switch libvirt.ErrorNumber(le.Code) {
		case libvirt.ErrNoDomain:
			return fmt.Errorf("%s: %w: %w", what, ErrNoDomain, err)
		case libvirt.ErrOperationInvalid, libvirt.ErrConfigUnsupported, libvirt.ErrInvalidArg,
			libvirt.ErrXMLError, libvirt.ErrOperationUnsupported, libvirt.ErrNoSupport, libvirt.ErrXMLDetail, libvirt.ErrXMLInvalidSchema:
			return fmt.Errorf("%s: %w: %w", what, ErrRefused, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (c *Client) HypervisorVersion() (int, int, error) {
	v, err := c.l.ConnectGetVersion()
	if err != nil {
		return 0, 0, wrap(err, "libvirt hypervisor version")
	}
	return int(v / 1000000), int(v / 1000 % 1000), nil
}

func (c *Client) Capabilities() (string, error) {
	s, err := c.l.ConnectGetCapabilities()
	return s, wrap(err, "libvirt capabilities")
}

func (c *Client) CellFreeMemory(cell int) (uint64, error) {
	m, err := c.l.NodeGetCellsFreeMemory(int32(cell), 1)
	if err == nil && len(m) != 1 {
		err = fmt.Errorf("%d cells in the answer, want 1", len(m))
	}
	if err != nil {
		return 0, wrap(err, "libvirt free memory of cell %d", cell)
	}
	return m[0], nil
}

func (c *Client) FreePages(sizes []uint32, start, n int) ([]uint64, error) {
	m, err := c.l.NodeGetFreePages(sizes, int32(start), uint32(n), 0)
	return m, wrap(err, "libvirt free pages of cells %d-%d", start, start+n-1)
}

func (c *Client) dom(name string) (libvirt.Domain, error) {
	d, err := c.l.DomainLookupByName(name)
	return d, wrap(err, "libvirt domain %q", name)
}

func (c *Client) DomainState(name string) (State, error) {
	d, err := c.dom(name)
	if err != nil {
		return 0, err
	}
	st, _, err := c.l.DomainGetState(d, 0)
	return State(st), wrap(err, "state of domain %q", name)
}

func (c *Client) Persistent(name string) (bool, error) {
	d, err := c.dom(name)
	if err != nil {
		return false, err
	}
	p, err := c.l.DomainIsPersistent(d)
	return p == 1, wrap(err, "is domain %q persistent", name)
}

func (c *Client) DomainXML(name string, inactive bool) (string, error) {
	d, err := c.dom(name)
	if err != nil {
		return "", err
	}
	var f libvirt.DomainXMLFlags
	if inactive {
		f = libvirt.DomainXMLInactive
	}
	x, err := c.l.DomainGetXMLDesc(d, f)
	return x, wrap(err, "xml of domain %q", name)
}

func (c *Client) ActiveDomains() ([]string, error) {
	ds, _, err := c.l.ConnectListAllDomains(1, libvirt.ConnectListDomainsActive)
	if err != nil {
		return nil, wrap(err, "list libvirt's running domains")
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	return names, nil
}

func (c *Client) VCPUPins(name string, vcpus, hostCPUs int) ([]cpuset.CPUSet, error) {
	d, err := c.dom(name)
	if err != nil {
		return nil, err
	}
	n := MapLen(hostCPUs)
	buf, got, err := c.l.DomainGetVcpuPinInfo(d, int32(vcpus), int32(n), uint32(libvirt.DomainAffectLive))
	if err != nil {
		return nil, wrap(err, "vcpu pins of domain %q", name)
	}
	pins, err := SplitCPUMaps(buf, int(got), n)
	return pins, wrap(err, "vcpu pins of domain %q", name)
}

func (c *Client) EmulatorPin(name string, hostCPUs int) (cpuset.CPUSet, error) {
	d, err := c.dom(name)
	if err != nil {
		return cpuset.New(), err
	}
	buf, _, err := c.l.DomainGetEmulatorPinInfo(d, int32(MapLen(hostCPUs)), libvirt.DomainAffectLive)
	if err != nil {
		return cpuset.New(), wrap(err, "emulator pin of domain %q", name)
	}
	s, err := ParseCPUMap(buf)
	return s, wrap(err, "emulator pin of domain %q", name)
}

func (c *Client) IOThreads(name string, hostCPUs int) ([]IOThread, error) {
	d, err := c.dom(name)
	if err != nil {
		return nil, err
	}
	info, _, err := c.l.DomainGetIothreadInfo(d, libvirt.DomainAffectLive)
	if err != nil {
		return nil, wrap(err, "i/o threads of domain %q", name)
	}
	out := make([]IOThread, len(info))
	for i, t := range info {
		s, err := ParseCPUMap(t.Cpumap)
		if err != nil {
			return nil, wrap(err, "i/o thread %d of domain %q", t.IothreadID, name)
		}
		out[i] = IOThread{ID: int(t.IothreadID), CPUs: s}
	}
	return out, nil
}

func (c *Client) NUMAParams(name string) (NUMAParams, error) {
	d, err := c.dom(name)
	if err != nil {
		return NUMAParams{}, err
	}
	// The daemon leaves out string parameters (numa_nodeset) unless the
	// client says it takes them, as libvirt's own client library does.
	ps, _, err := c.l.DomainGetNumaParameters(d, 2, uint32(libvirt.DomainAffectLive)|uint32(libvirt.TypedParamStringOkay))
	if err != nil {
		return NUMAParams{}, wrap(err, "numa parameters of domain %q", name)
	}
	return numaParams(ps)
}

// numaParams reads numa_mode and numa_nodeset.
func numaParams(ps []libvirt.TypedParam) (NUMAParams, error) {
	out := NUMAParams{Nodes: cpuset.New()}
	for _, p := range ps {
		switch p.Field {
		case "numa_mode":
			switch v := p.Value.I.(type) {
			case int32:
				out.Mode = NUMAMode(v)
			case uint32:
				out.Mode = NUMAMode(v)
			case int:
				out.Mode = NUMAMode(v)
			default:
				return out, fmt.Errorf("numa_mode is %T, want an int", p.Value.I)
			}
		case "numa_nodeset":
			s, ok := p.Value.I.(string)
			if !ok {
				return out, fmt.Errorf("numa_nodeset is %T, want a string", p.Value.I)
			}
			if s == "" {
				continue
			}
			n, err := cpulist.Parse(s)
			if err != nil {
				return out, fmt.Errorf("numa_nodeset %q: %w", s, err)
			}
			out.Nodes = n
		}
	}
	return out, nil
}

func (c *Client) pin(name, what string, cpus cpuset.CPUSet, call func(libvirt.Domain, []byte) error) error {
	d, err := c.dom(name)
	if err != nil {
		return err
	}
	n := 1
	if !cpus.IsEmpty() {
		n = MapLen(cpus.List()[cpus.Size()-1] + 1)
	}
	m, err := CPUMap(cpus, n)
	if err != nil {
		return err
	}
	return wrap(call(d, m), "pin %s of domain %q to cpus %s", what, name, cpus)
}

func (c *Client) PinVCPU(name string, vcpu int, cpus cpuset.CPUSet) error {
	return c.pin(name, fmt.Sprintf("vcpu %d", vcpu), cpus, func(d libvirt.Domain, m []byte) error {
		return c.l.DomainPinVcpuFlags(d, uint32(vcpu), m, uint32(libvirt.DomainAffectLive))
	})
}

func (c *Client) PinEmulator(name string, cpus cpuset.CPUSet) error {
	return c.pin(name, "the emulator", cpus, func(d libvirt.Domain, m []byte) error {
		return c.l.DomainPinEmulator(d, m, libvirt.DomainAffectLive)
	})
}

func (c *Client) PinIOThread(name string, id int, cpus cpuset.CPUSet) error {
	return c.pin(name, fmt.Sprintf("i/o thread %d", id), cpus, func(d libvirt.Domain, m []byte) error {
		return c.l.DomainPinIothread(d, uint32(id), m, libvirt.DomainAffectLive)
	})
}

func (c *Client) SetNUMANodeset(name string, nodes cpuset.CPUSet) error {
	d, err := c.dom(name)
	if err != nil {
		return err
	}
	p := []libvirt.TypedParam{{Field: "numa_nodeset", Value: *libvirt.NewTypedParamValueString(nodes.String())}}
	return wrap(c.l.DomainSetNumaParameters(d, p, uint32(libvirt.DomainAffectLive)), "set memory nodeset of domain %q to %s", name, nodes)
}

func (c *Client) Define(xml string) error {
	_, err := c.l.DomainDefineXMLFlags(xml, libvirt.DomainDefineValidate)
	return wrap(err, "define domain")
}
