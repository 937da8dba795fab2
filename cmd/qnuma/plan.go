package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
)

// PlanCmd is `qnuma plan`: where a VM would go and the QEMU command line
// that puts it there, without starting anything.
type PlanCmd struct {
	SpecFlags `embed:""`
	JSON      bool   `name:"json" help:"Print JSON: qemu_args, guest_nodes, vcpus, process_mempolicy, rooms and reasons."`
	StateDir  string `name:"state-dir" placeholder:"DIR" help:"Ledger of the VMs qnuma placed on this host, whose room they hold (default: /run/qnuma for root, else $XDG_RUNTIME_DIR/qnuma). Not read with --root."`
}

func (c *PlanCmd) Run() error {
	return c.write(context.Background(), os.Stdout)
}

func (c *PlanCmd) write(ctx context.Context, w io.Writer) error {
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

// planJSON is `qnuma plan --json`.
type planJSON struct {
	HostNodes        []int           `json:"host_nodes"`
	QEMUArgs         []string        `json:"qemu_args"`
	QEMUVersion      string          `json:"qemu_version"`
	GuestNodes       []guestNodeJSON `json:"guest_nodes"`
	VCPUs            []vcpuJSON      `json:"vcpus"`
	HotplugVCPUs     []vcpuJSON      `json:"hotplug_vcpus,omitempty"`
	SMP              smpJSON         `json:"smp"`
	EmulatorCPUs     string          `json:"emulator_cpus"`
	IOThreads        []ioThreadJSON  `json:"iothreads"`
	ProcessMempolicy mempolicyJSON   `json:"process_mempolicy"`
	Distances        [][]int         `json:"distances"`
	Rooms            []roomJSON      `json:"rooms"`
	Reasons          []string        `json:"reasons"`
	BindOnly         bool            `json:"bind_only"`
}

type guestNodeJSON struct {
	ID          int    `json:"id"`
	HostNodes   []int  `json:"host_nodes"`
	VCPUs       []int  `json:"vcpus"`
	MemoryBytes uint64 `json:"memory_bytes"`
}

type vcpuJSON struct {
	VCPU      int    `json:"vcpu"`
	GuestNode int    `json:"guest_node"`
	Socket    int    `json:"socket"`
	Core      int    `json:"core"`
	Thread    int    `json:"thread"`
	HostCPUs  string `json:"host_cpus"`
}

type ioThreadJSON struct {
	IOThread string `json:"iothread"`
	HostCPUs string `json:"host_cpus"`
}

type smpJSON struct {
	Sockets int `json:"sockets"`
	Cores   int `json:"cores"`
	Threads int `json:"threads"`
}

type mempolicyJSON struct {
	Mode  string `json:"mode"`
	Nodes []int  `json:"nodes"`
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
		SMP:              smpJSON{p.Sockets, p.Cores, p.Threads},
		EmulatorCPUs:     p.EmulatorCPUs.String(),
		ProcessMempolicy: mempolicyJSON{Mode: string(p.Mempolicy.Mode), Nodes: nonNil(p.Mempolicy.Nodes.List())},
		Distances:        p.Distances,
		Reasons:          p.Reasons,
		BindOnly:         p.BindOnly,
	}
	for _, g := range p.GuestNodes {
		out.GuestNodes = append(out.GuestNodes, guestNodeJSON{g.ID, g.HostNodes, nonNil(g.VCPUs), g.MemoryBytes})
	}
	for _, v := range p.VCPUs {
		out.VCPUs = append(out.VCPUs, vcpuJSON{v.ID, v.GuestNode, v.Socket, v.Core, v.Thread, v.HostCPUs.String()})
	}
	for _, v := range p.HotplugVCPUs {
		out.HotplugVCPUs = append(out.HotplugVCPUs, vcpuJSON{v.ID, v.GuestNode, v.Socket, v.Core, v.Thread, v.HostCPUs.String()})
	}
	out.IOThreads = []ioThreadJSON{}
	for _, io := range p.IOThreads {
		out.IOThreads = append(out.IOThreads, ioThreadJSON{io.ID, io.HostCPUs.String()})
	}
	for _, r := range p.Rooms {
		out.Rooms = append(out.Rooms, roomJSON{r.Node, r.CPUs, r.FreeCPUs.String(), r.MemoryBytes, r.Hugepages, r.MemoryOnly, r.Load, r.Unusable})
	}
	return out
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
