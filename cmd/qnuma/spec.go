package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/prepare"
	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/topology"
)

// defaultQEMU is the binary probed for its version when the user gives no
// QEMU command line.
const defaultQEMU = prepare.DefaultQEMU

// maxVCPUs is the most vCPUs any QEMU x86 machine takes: q35 since QEMU
// 9.0 (1024 before, 255 or 288 for pc). A count past it is refused before
// anything is planned, which allocates per vCPU.
const maxVCPUs = 4096

// SpecFlags are the VM spec flags `qnuma plan` and `qnuma run` share, and
// the user's own QEMU command line after "--".
type SpecFlags struct {
	VCPUs      int    `name:"vcpus" placeholder:"N" help:"Number of vCPUs, at most 4096 (QEMU's largest x86 machine, q35 in QEMU 9.0 and later). Defaults to the -smp of the QEMU command line, if any."`
	Memory     string `name:"memory" placeholder:"SIZE" help:"Guest RAM, with an IEC suffix K, M, G or T (16G = 16 GiB); a bare number is MiB, as for QEMU's -m. Defaults to the -m of the QEMU command line, if any."`
	HostNodes  string `name:"host-nodes" default:"auto" placeholder:"auto|LIST" help:"Host NUMA nodes to use, as a list such as 0 or 0-1,4: honoured exactly or refused with the reason. auto (the default) picks the fewest nodes with room for both the vCPUs and the memory."`
	GuestNodes string `name:"guest-nodes" default:"auto" placeholder:"auto|N" help:"Number of guest NUMA nodes, one per host node used. auto (the default) gives the guest one node per host node the VM needs."`
	MaxVCPUs   int    `name:"max-vcpus" placeholder:"N" help:"Hotplug room: the VM can grow to N vCPUs (-smp cur,maxcpus=N). qnuma fits it at N on its host nodes and maps every absent vCPU to a guest node (-numa cpu)."`
	MaxMemory  string `name:"max-memory" placeholder:"SIZE" help:"Hotplug room: guest RAM can grow to SIZE (-m cur,slots=,maxmem=SIZE). qnuma fits it at SIZE on its host nodes and gives each guest node a virtio-mem device, empty at start, for its share of the growth, bound to that node's host nodes."`
	MemHotplug string `name:"memory-hotplug" default:"auto" enum:"auto,virtio-mem,dimm" help:"How --max-memory's growth is plugged: virtio-mem (one device per guest node, QEMU 5.1+), dimm (DIMMs that qnuma memory adds and removes, each with its backend on its guest node's host nodes; removal needs the guest's ACPI memory hot-remove), or auto (the default: virtio-mem where the QEMU has it, DIMMs where not)."`
	Policy     string `name:"policy" default:"bind" enum:"bind,preferred,interleave" help:"Memory policy for guest RAM and qemu's own allocations: bind (only the chosen nodes; the default), preferred (the chosen nodes first, others when full), interleave (pages round-robin over the chosen nodes)."`

	MaxVCPUsPerNode int  `name:"max-vcpus-per-node" placeholder:"N" help:"At most N vCPUs per node (like ESXi's numa.vcpu.maxPerVirtualNode); a wider VM spans more nodes."`
	PreferHT        bool `name:"prefer-ht" help:"Size nodes by SMT threads instead of physical cores (like ESXi's numa.vcpu.preferHT): a 12-vCPU VM fits one node of 8 cores × 2 threads."`
	Spread          bool `name:"spread" help:"Use more nodes (for memory bandwidth) instead of the fewest."`
	Overcommit      bool `name:"overcommit" help:"Let shared vCPUs outnumber the chosen nodes' CPUs (they take turns); by default a node holds at most one vCPU per core, and a VM with more vCPUs than the host's cores is refused."`
	CPUsDedicated   bool `name:"cpus-dedicated" help:"Give each vCPU its own host core (its own thread with --prefer-ht, sibling threads as guest thread pairs), never shared with another VM qnuma places. Default: vCPUs float over their node's CPUs."`

	Hugepages     string `name:"hugepages" placeholder:"SIZE" help:"Back guest RAM with hugepages of SIZE (2M, 1G); nodes are sized by their free hugepages of that size."`
	MemoryBackend string `name:"memory-backend" default:"memfd" enum:"memfd,ram" help:"What holds guest RAM. memfd (the default): a memfd per guest node (memory-backend-memfd), which qnuma move can re-bind and move to other nodes while the VM runs; its transparent huge pages follow /sys/kernel/mm/transparent_hugepage/shmem_enabled. ram: anonymous memory (memory-backend-ram), fixed on its nodes until the VM stops, with transparent huge pages as .../enabled says."`
	Prealloc      bool   `name:"prealloc" help:"Allocate all guest RAM before the guest starts, by threads on the RAM's own node (QEMU 7.2+)."`
	NearDevice    string `name:"near-device" placeholder:"PCI_ADDR" help:"Prefer the node of this PCI device (0000:3b:00.0), as sysfs reports it; a device without a node gives no preference."`

	AllowMemoryOnlyNodes bool `name:"allow-memory-only-nodes" help:"Let nodes without CPUs (CXL or GPU memory) hold part of a wide VM's memory. They never get vCPUs."`
	BindOnly             bool `name:"bind-only" help:"Your QEMU command line keeps its own -smp, -m, -numa and memory backends: qnuma adds none and only binds memory and pins threads."`

	Root        string `name:"root" default:"/" placeholder:"DIR" help:"Plan for the host whose /sys and /proc snapshot is under DIR instead of this one."`
	QEMUVersion string `name:"qemu-version" placeholder:"X.Y" help:"Render for this QEMU version instead of asking the binary (for snapshots and machines without QEMU)."`
	DomainXML   string `name:"domain-xml" placeholder:"FILE" type:"path" help:"Take the VM's placement from a libvirt domain XML (vCPUs, topology, <cpu><numa> cells, <numatune>, <memoryBacking>, <cputune> pins, I/O threads, hotplug room): qnuma renders -smp, -m, backends and -numa from it; the QEMU command line after -- carries devices, disks and the console. qnuma plan --qemu-version 7.2 --domain-xml dom.xml"`

	QEMU []string `arg:"" optional:"" passthrough:"" name:"qemu-command" help:"Your QEMU command line after --, binary first (qemu-system-x86_64 -nographic ...); its -smp and -m serve as --vcpus and --memory."`

	// starting: the flags are `qnuma run`'s, which starts the binary and
	// so has no --qemu-version to offer in messages.
	starting bool
}

// Prepared is a VM ready to start (prepare.VM).
type Prepared = prepare.VM

// Prepare turns the flags and the user's QEMU command line into a plan
// for this host, around the VMs already placed, and the final argv. It
// starts nothing. Bad flags and VMs that do not fit return errors that
// IsUsage reports (exit 2).
func (f *SpecFlags) Prepare(ctx context.Context, placed []plan.Placed) (*Prepared, error) {
	pr, err := f.Gather(ctx)
	if err != nil {
		return nil, err
	}
	if err := pr.PlanFor(placed); err != nil {
		return nil, err
	}
	return pr, nil
}

// Gather does everything Prepare does before planning: it checks the
// flags, merges the user's QEMU command line, reads the host and learns
// QEMU's version. `qnuma run` calls it before taking the ledger's lock, so
// that only PlanFor runs while the lock is held.
func (f *SpecFlags) Gather(ctx context.Context) (*Prepared, error) {
	pr := &Prepared{}
	spec, set, err := f.spec()
	if err != nil {
		return nil, err
	}
	argv := f.QEMU
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:] // kong's passthrough keeps the separator
	}
	if len(argv) > 0 {
		if pr.User, err = plan.ParseQEMUArgv(argv); err != nil {
			return nil, badInput("%w", err)
		}
		if !pr.User.IsSystemEmulator {
			return nil, badInput("%s is not a QEMU system emulator (qemu-system-*): give the QEMU command line after --", pr.User.Binary)
		}
	}
	if spec, err = f.mergeSpec(pr, spec, set); err != nil { // MergeSpec, or --domain-xml
		return nil, err
	}
	if spec.VCPUs == 0 {
		return nil, badInput("how many vCPUs? give --vcpus N, or -smp N in the QEMU command line after --")
	}
	what := fmt.Sprintf("--vcpus %d", spec.VCPUs)
	if pr.User != nil && pr.User.HasSMP {
		what = "-smp " + pr.User.SMPArg
	}
	if err := checkVCPUs(what, spec.VCPUs); err != nil {
		return nil, err
	}
	if spec.MemoryBytes == 0 {
		return nil, badInput("how much memory? give --memory SIZE, or -m SIZE in the QEMU command line after --")
	}
	trace.Mark("read flags and qemu argv")

	if err := checkRoot(f.Root); err != nil {
		return nil, err
	}
	if pr.Host, err = readHost(f.Root); err != nil {
		return nil, err
	}
	trace.Mark("read host topology")
	if spec.NearNode, spec.HasNearNode, pr.Note, err = f.deviceNode(); err != nil {
		return nil, err
	}
	pr.Spec = spec
	pr.Backend = f.MemoryBackend
	if spec.HugepageBytes > 0 && f.MemoryBackend == "ram" {
		return nil, badInput("--memory-backend ram cannot hold hugepages: leave --memory-backend at memfd with --hugepages")
	}
	if pr.QEMU, err = f.qemuVersion(ctx, pr.User); err != nil {
		return nil, err
	}
	if f.MemHotplug != "" && f.MemHotplug != "auto" && pr.Spec.MaxMemoryBytes <= pr.Spec.MemoryBytes {
		return nil, badInput("--memory-hotplug %s is how memory grows: give --max-memory SIZE (or -m ...,maxmem=) above --memory too, or drop it", f.MemHotplug)
	}
	if pr.Spec.MaxMemoryBytes > pr.Spec.MemoryBytes {
		var note string
		pr.Spec.MemoryHotplug, note = memoryHotplug(f.MemHotplug, pr.QEMU, pr.User)
		if note != "" {
			pr.Note = strings.TrimSpace(pr.Note + " " + note)
		}
	}
	trace.Mark("learnt qemu version")
	return pr, nil
}

// spec reads the flags into a plan.Spec and says which of --vcpus and
// --memory were given.
func (f *SpecFlags) spec() (plan.Spec, plan.MergeFlags, error) {
	s := plan.Spec{
		VCPUs:           f.VCPUs,
		MaxVCPUsPerNode: f.MaxVCPUsPerNode,
		PreferHT:        f.PreferHT,
		Spread:          f.Spread,
		Prealloc:        f.Prealloc,
		Dedicated:       f.CPUsDedicated,
		Overcommit:      f.Overcommit,
		AllowMemoryOnly: f.AllowMemoryOnlyNodes,
		BindOnly:        f.BindOnly,
		MaxVCPUs:        f.MaxVCPUs,
	}
	set := plan.MergeFlags{VCPUs: f.VCPUs != 0, Memory: f.Memory != ""}
	if f.VCPUs < 0 {
		return s, set, badInput("--vcpus %d: want a positive count", f.VCPUs)
	}
	if err := checkVCPUs(fmt.Sprintf("--vcpus %d", f.VCPUs), f.VCPUs); err != nil {
		return s, set, err
	}
	if f.MaxVCPUsPerNode < 0 {
		return s, set, badInput("--max-vcpus-per-node %d: want a positive count", f.MaxVCPUsPerNode)
	}
	var err error
	if f.Memory != "" {
		if s.MemoryBytes, err = memobj.ParseSize(f.Memory, memobj.MiB); err != nil {
			return s, set, badInput("--memory: %w", err)
		}
		if s.MemoryBytes == 0 {
			return s, set, badInput("--memory %s: want more than nothing", f.Memory)
		}
	}
	if f.MaxVCPUs < 0 {
		return s, set, badInput("--max-vcpus %d: want a positive count", f.MaxVCPUs)
	}
	if err := checkVCPUs(fmt.Sprintf("--max-vcpus %d", f.MaxVCPUs), f.MaxVCPUs); err != nil {
		return s, set, err
	}
	if f.MaxMemory != "" {
		if s.MaxMemoryBytes, err = memobj.ParseSize(f.MaxMemory, memobj.MiB); err != nil {
			return s, set, badInput("--max-memory: %w", err)
		}
		if s.MaxMemoryBytes == 0 {
			return s, set, badInput("--max-memory %s: want more than nothing", f.MaxMemory)
		}
	}
	if f.Hugepages != "" {
		if s.HugepageBytes, err = memobj.ParseSize(f.Hugepages, memobj.MiB); err != nil {
			return s, set, badInput("--hugepages: %w", err)
		}
	}
	if f.HostNodes != "auto" {
		nodes, err := cpulist.Parse(f.HostNodes)
		if err != nil {
			return s, set, badInput("--host-nodes %q: %w; want auto or a node list such as 0 or 0-1,4", f.HostNodes, err)
		}
		if nodes.IsEmpty() {
			return s, set, badInput("--host-nodes %q: want auto or a node list such as 0 or 0-1,4", f.HostNodes)
		}
		s.HostNodes = nodes.List()
	}
	if f.GuestNodes != "auto" {
		n, err := strconv.Atoi(f.GuestNodes)
		if err != nil || n < 1 {
			return s, set, badInput("--guest-nodes %q: want auto or a count of at least 1", f.GuestNodes)
		}
		s.GuestNodes = n
	}
	if s.Policy, err = memobj.ParsePolicy(f.Policy); err != nil {
		return s, set, badInput("--policy: %w", err)
	}
	return s, set, nil
}

// checkVCPUs refuses a vCPU count (from --vcpus or the user's -smp) that
// no QEMU machine takes.
func checkVCPUs(what string, n int) error {
	if n > maxVCPUs {
		return badInput("%s: %d vCPUs, and QEMU takes at most %d (the q35 machine of QEMU 9.0 and later)", what, n, maxVCPUs)
	}
	return nil
}

// pciAddr is a PCI address as sysfs names devices: domain:bus:device.function.
var pciAddr = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)
}) // compiled when first used, not at every start

// deviceNode reads --near-device's node from sysfs. A device the kernel
// gives no node (-1) means no preference, which the note says.
func (f *SpecFlags) deviceNode() (node int, ok bool, note string, err error) {
	if f.NearDevice == "" {
		return 0, false, "", nil
	}
	addr := strings.ToLower(f.NearDevice)
	if !pciAddr().MatchString(addr) {
		return 0, false, "", badInput("--near-device %q: want a PCI address such as 0000:3b:00.0", f.NearDevice)
	}
	if strings.Count(addr, ":") == 1 {
		addr = "0000:" + addr
	}
	n, err := topology.ReadDeviceNode(f.Root, addr)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, "", badInput("--near-device %s: no such PCI device (%s is absent)", f.NearDevice, filepath.Join(f.Root, "sys/bus/pci/devices", addr, "numa_node"))
	}
	if err != nil {
		return 0, false, "", err
	}
	if n < 0 {
		return 0, false, fmt.Sprintf("PCI device %s has no NUMA node (the kernel says %d), so --near-device prefers no node.", addr, n), nil
	}
	return n, true, "", nil
}

// versionFlag is --qemu-version's form.
var versionFlag = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`) }) // compiled when first used, not at every start

// qemuVersion is --qemu-version, else what the user's binary (or
// qemu-system-x86_64) says it is.
func (f *SpecFlags) qemuVersion(ctx context.Context, user *plan.QEMUArgv) (qemuversion.Version, error) {
	if f.QEMUVersion != "" {
		if !versionFlag().MatchString(f.QEMUVersion) {
			return qemuversion.Version{}, badInput("--qemu-version %q: want X.Y or X.Y.Z", f.QEMUVersion)
		}
		return qemuversion.ParseVersion("QEMU emulator version " + f.QEMUVersion)
	}
	bin := defaultQEMU
	if user != nil {
		bin = user.Binary
	}
	hint := ""
	if !f.starting {
		hint = ", or give --qemu-version X.Y to plan without it"
	}
	if v, ok := cachedVersion(bin); ok {
		return v, nil // looked up and read while kong parsed the flags
	}
	// A binary that is not there is the user's to fix, not a fault.
	if _, err := exec.LookPath(bin); err != nil {
		fix := "install QEMU (apt-get install qemu-system-x86) or put its directory in $PATH"
		if strings.Contains(bin, "/") {
			fix = "give the path of an installed qemu-system-* binary"
		}
		return qemuversion.Version{}, badInput("qemu binary %s: %w: %s%s", bin, notFoundReason(err), fix, hint)
	}
	v, err := versionCache().Probe(ctx, bin)
	if err != nil {
		if hint != "" {
			return v, fmt.Errorf("%w (give --qemu-version X.Y to plan without it)", err)
		}
		return v, err
	}
	return v, nil
}

// notFoundReason is exec.LookPath's error without the path it repeats.
func notFoundReason(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
