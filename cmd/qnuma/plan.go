package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/procfs"
	"github.com/qnuma/qnuma/qemucmd"
)

// PlanCmd is `qnuma plan`: where a VM would go and the QEMU command line
// that puts it there, without starting anything.
type PlanCmd struct {
	SpecFlags `embed:""`
	JSON      bool     `name:"json" help:"Print JSON: qemu_args, guest_nodes (given or chosen, and why), vcpus and hotplug_vcpus with their host_cpus, emulator_cpus, iothreads, smp, process_mempolicy with its fallback, rooms and reasons (docs/plan.md)."`
	StateDir  string   `name:"state-dir" placeholder:"DIR" help:"Ledger of the VMs qnuma placed on this host, whose room they hold (default: /run/qnuma for root, else $XDG_RUNTIME_DIR/qnuma). Not read with --root."`
	Connect   []string `name:"connect" sep:"none" placeholder:"URI" help:"Plan on the host of this libvirt daemon instead (qemu:///system, qemu+tcp://HOST/system, qemu+ssh://USER@HOST/system), around its running domains; repeat it to rank several hosts and see which the VM fits best, and why (plan_hosts.go)."`

	// dial connects to a libvirt daemon; nil is libvirthost.Dial.
	dial func(uri string) (libvirthost.Conn, error)
}

func (c *PlanCmd) Run() error {
	return c.write(context.Background(), os.Stdout)
}

func (c *PlanCmd) write(ctx context.Context, w io.Writer) error {
	if len(c.Connect) > 0 {
		return c.planHosts(ctx, w)
	}
	placed, err := c.placed(ctx)
	if err != nil {
		return err
	}
	pr, err := c.Prepare(ctx, placed)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(planJSONOf(pr))
	}
	if err := pr.Plan.Describe(w); err != nil {
		return err
	}
	if ids := userIOThreads(pr); len(ids) > 0 {
		// qnuma run pins the I/O threads with qemu's other threads.
		if _, err := fmt.Fprintf(w, "I/O threads %s: CPUs %s (with the emulator threads)\n", strings.Join(ids, ", "), pr.Plan.EmulatorCPUs); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintln(w, moveLine(pr, c.Root)); err != nil {
		return err
	}
	head := fmt.Sprintf("\nQEMU command line (QEMU %s):\n", pr.QEMU)
	if pr.User == nil {
		head = fmt.Sprintf("\nqnuma's QEMU arguments (QEMU %s; give your command line after -- to see it whole):\n", pr.QEMU)
	}
	if pr.Plan.BindOnly {
		head = "\nQEMU command line (--bind-only: as given; qnuma binds and pins only):\n"
	}
	_, err = fmt.Fprintf(w, "%s%s\n", head, shellJoin(pr.Argv))
	return err
}

// placed is the VMs qnuma already placed on this host: none when planning
// for a snapshot (--root), whose VMs are not this host's.
func (c *PlanCmd) placed(ctx context.Context) ([]plan.Placed, error) {
	if c.Root != "/" {
		return nil, nil
	}
	l, err := openLedger(c.StateDir)
	if err != nil {
		return nil, err
	}
	st, err := l.List(ctx)
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return nil, badInput("%w", err)
	}
	if err != nil {
		return nil, err
	}
	for _, cr := range st.Corrupt {
		fmt.Fprintf(os.Stderr, "qnuma: warning: %v (its room is not counted)\n", cr)
	}
	return l.Placed(st.Entries), nil
}

// planJSON is `qnuma plan --json`: everything qnuma applies, documented
// key by key in docs/plan.md. Keys are kept stable: scripts and bench/
// read them.
type planJSON struct {
	HostNodes    []int           `json:"host_nodes"`
	QEMUArgs     []string        `json:"qemu_args"`
	QEMUVersion  string          `json:"qemu_version"`
	GuestNodes   []guestNodeJSON `json:"guest_nodes"`
	VCPUs        []vcpuJSON      `json:"vcpus"`
	HotplugVCPUs []vcpuJSON      `json:"hotplug_vcpus"`
	// HotplugMemory is present only with --max-memory room, so that plans
	// without it keep their keys.
	HotplugMemory    []hotplugMemoryJSON `json:"hotplug_memory,omitempty"`
	SMP              smpJSON             `json:"smp"`
	EmulatorCPUs     string              `json:"emulator_cpus"`
	IOThreads        []iothreadJSON      `json:"iothreads"`
	ProcessMempolicy mempolicyJSON       `json:"process_mempolicy"`
	Distances        [][]int             `json:"distances"`
	Rooms            []roomJSON          `json:"rooms"`
	Reasons          []string            `json:"reasons"`
	BindOnly         bool                `json:"bind_only"`
	Dedicated        bool                `json:"cpus_dedicated"`
	// Movable: qnuma move can move the running VM; NotMovable says why not.
	Movable    bool   `json:"movable"`
	NotMovable string `json:"not_movable,omitempty"`
}

type guestNodeJSON struct {
	ID          int    `json:"id"`
	HostNodes   []int  `json:"host_nodes"`
	VCPUs       []int  `json:"vcpus"`
	MemoryBytes uint64 `json:"memory_bytes"`
	// Binding is "given" (the user's backend names its host-nodes) or
	// "chosen" (by qnuma); Reason says why.
	Binding string `json:"binding"`
	Backend string `json:"backend"`
	Policy  string `json:"policy"`
	Reason  string `json:"reason"`
}

type vcpuJSON struct {
	VCPU      int    `json:"vcpu"`
	GuestNode int    `json:"guest_node"`
	Socket    int    `json:"socket"`
	Die       int    `json:"die"`
	Core      int    `json:"core"`
	Thread    int    `json:"thread"`
	HostCPUs  string `json:"host_cpus"`
	Present   bool   `json:"present"`
	// Device is the -device id of a present vCPU that -smp does not start,
	// cold-plugged into its slot (a VM with hotplug room); "" otherwise.
	Device string `json:"device,omitempty"`
}

// hotplugMemoryJSON is one guest node's virtio-mem device and backend.
type hotplugMemoryJSON struct {
	GuestNode int    `json:"guest_node"`
	HostNodes []int  `json:"host_nodes"`
	Bytes     uint64 `json:"bytes"`
	Policy    string `json:"policy"`
	Device    string `json:"device"`
	Memdev    string `json:"memdev"`
	// DIMMBytes: the growth is plugged as DIMMs of this size (--memory-hotplug dimm).
	DIMMBytes uint64 `json:"dimm_bytes,omitempty"`
}

type smpJSON struct {
	Sockets int `json:"sockets"`
	Cores   int `json:"cores"`
	Threads int `json:"threads"`
	Dies    int `json:"dies"`
	CPUs    int `json:"cpus"`
	MaxCPUs int `json:"maxcpus"`
	// Given: the topology is the user's own -smp, kept as written.
	Given bool `json:"given"`
}

type iothreadJSON struct {
	IOThread string `json:"iothread"`
	HostCPUs string `json:"host_cpus"`
}

type nodePolicyJSON struct {
	Mode  string `json:"mode"`
	Nodes []int  `json:"nodes"`
}

type mempolicyJSON struct {
	nodePolicyJSON
	// Fallback is applied where the kernel refuses Mode (null: none).
	Fallback *nodePolicyJSON `json:"fallback"`
}

type roomJSON struct {
	Node        int    `json:"node"`
	CPUs        int    `json:"cpus"`
	FreeCPUs    string `json:"free_cpus"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Hugepages   uint64 `json:"hugepages"`
	MemoryOnly  bool   `json:"memory_only"`
	Load        int    `json:"other_vcpus"`
	Unusable    string `json:"unusable,omitempty"`
}

func planJSONOf(pr *Prepared) planJSON {
	p := pr.Plan
	out := planJSON{
		HostNodes:        p.HostNodes,
		QEMUArgs:         nonNil(pr.Argv),
		QEMUVersion:      pr.QEMU.String(),
		SMP:              smpJSON{Sockets: p.Sockets, Cores: p.Cores, Threads: p.Threads, Dies: 1, CPUs: len(p.VCPUs), MaxCPUs: p.Sockets * p.Cores * p.Threads},
		EmulatorCPUs:     p.EmulatorCPUs.String(),
		IOThreads:        []iothreadJSON{},
		ProcessMempolicy: mempolicyJSON{nodePolicyJSON: mempolicyOf(p.Mempolicy)},
		Distances:        p.Distances,
		Reasons:          p.Reasons,
		BindOnly:         p.BindOnly,
		Movable:          pr.NotMovable == "",
		NotMovable:       pr.NotMovable,
		Dedicated:        p.Spec.Dedicated,
		HotplugVCPUs:     []vcpuJSON{},
	}
	if t := p.Spec.Topology; t != nil {
		out.SMP.Dies, out.SMP.MaxCPUs, out.SMP.Given = t.Dies, t.MaxCPUs, true
	}
	if fb, ok := p.Mempolicy.Fallback(); ok {
		f := mempolicyOf(fb)
		out.ProcessMempolicy.Fallback = &f
	}
	bindings := p.Bindings()
	for i, g := range p.GuestNodes {
		b := bindings[i]
		given := "chosen"
		if b.Given {
			given = "given"
		}
		out.GuestNodes = append(out.GuestNodes, guestNodeJSON{g.ID, g.HostNodes, nonNil(g.VCPUs), g.MemoryBytes, given, b.Backend, b.Policy, b.Reason})
	}
	vcpu := func(v plan.VCPU, present bool) vcpuJSON {
		return vcpuJSON{v.ID, p.GuestNodeID(v), v.Socket, p.Die(v.ID), v.Core, v.Thread, v.HostCPUs.String(), present, ""}
	}
	for i, v := range p.VCPUs {
		j := vcpu(v, true)
		if i >= p.BootVCPUs() {
			j.Device = plan.VCPUDeviceID(v.ID)
		}
		out.VCPUs = append(out.VCPUs, j)
	}
	for _, v := range p.HotplugVCPUs {
		out.HotplugVCPUs = append(out.HotplugVCPUs, vcpu(v, false))
	}
	for _, m := range p.HotplugMemory {
		dev, memdev := plan.HotplugIDs(m.GuestNode)
		if m.DIMMBytes > 0 {
			dev, memdev = "", "" // qnuma memory adds each DIMM and its backend
		}
		out.HotplugMemory = append(out.HotplugMemory, hotplugMemoryJSON{m.GuestNode, m.HostNodes, m.Bytes, string(p.BackendPolicy()), dev, memdev, m.DIMMBytes})
	}
	out.IOThreads = []iothreadJSON{}
	for _, io := range p.IOThreads {
		out.IOThreads = append(out.IOThreads, iothreadJSON{io.ID, io.HostCPUs.String()})
	}
	// The user's own I/O threads without a pin of their own run with
	// qemu's other threads.
	for _, id := range userIOThreads(pr) {
		out.IOThreads = append(out.IOThreads, iothreadJSON{id, p.EmulatorCPUs.String()})
	}
	for _, r := range p.Rooms {
		out.Rooms = append(out.Rooms, roomJSON{r.Node, r.CPUs, r.FreeCPUs.String(), r.MemoryBytes, r.Hugepages, r.MemoryOnly, r.Load, r.Unusable})
	}
	return out
}

func mempolicyOf(m plan.Mempolicy) nodePolicyJSON {
	return nodePolicyJSON{Mode: string(m.Mode), Nodes: nonNil(m.Nodes.List())}
}

// ioThreadIDs is the ids of the user's -object iothread (either form), in
// command-line order.
func ioThreadIDs(user *plan.QEMUArgv) []string {
	if user == nil || user.Cmdline == nil {
		return nil
	}
	var ids []string
	for _, a := range user.Cmdline.Find("object") {
		p, err := qemucmd.ParseProps(a.Value, "qom-type", true)
		if err != nil {
			continue // not an object qnuma reads; the parse refused those it does
		}
		str := func(key string) string {
			v, _ := p.Get(key)
			if p.JSON {
				var s string
				if json.Unmarshal([]byte(v), &s) != nil {
					return ""
				}
				return s
			}
			return v
		}
		if str("qom-type") == "iothread" && str("id") != "" {
			ids = append(ids, str("id"))
		}
	}
	return ids
}

// nonNil makes empty lists print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// shellJoin quotes args so that a POSIX shell reads them back as they are.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=,./:@%+", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// userIOThreads are the user's -object iothread ids the plan gives no
// CPUs of their own (a domain's <iothreadpin> does).
func userIOThreads(pr *Prepared) []string {
	var ids []string
	for _, id := range ioThreadIDs(pr.User) {
		if !slices.ContainsFunc(pr.Plan.IOThreads, func(io plan.IOThread) bool { return io.ID == id }) {
			ids = append(ids, id)
		}
	}
	return ids
}

// moveLine says whether qnuma move could move the VM, and what that costs.
func moveLine(pr *Prepared, root string) string {
	if pr.NotMovable != "" {
		return "Live move: no, " + pr.NotMovable + "."
	}
	line := "Live move: yes, guest RAM is in memfd backends, whose memory policy qnuma move can change while the VM runs; their transparent huge pages follow /sys/kernel/mm/transparent_hugepage/shmem_enabled"
	if v := thpMode(root, "shmem_enabled"); v != "" {
		line += fmt.Sprintf(" (here: %s)", v)
	}
	return line + ", not .../enabled (--memory-backend ram: anonymous memory, which cannot be moved)."
}

// thpMode is the selected mode of a transparent_hugepage setting under
// root ("" when unknown).
func thpMode(root, file string) string {
	b, err := procfs.Read(root, filepath.Join("sys/kernel/mm/transparent_hugepage", file), procfs.Small)
	if err != nil {
		return ""
	}
	s := string(b)
	if i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']'); i >= 0 && j > i {
		return s[i+1 : j]
	}
	return strings.TrimSpace(s)
}
