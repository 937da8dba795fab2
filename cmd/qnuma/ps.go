package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/memobj"
)

// PsCmd is `qnuma ps`: the VMs in the ledger.
type PsCmd struct {
	JSON     bool   `help:"Print JSON."`
	StateDir string `name:"state-dir" placeholder:"DIR" help:"Ledger directory (default /run/qnuma as root, $XDG_RUNTIME_DIR/qnuma otherwise)."`
	Libvirt  bool   `name:"libvirt" help:"Also list libvirt's running domains (libvirt:NAME), with their pins and nodesets (libvirt_place_ps.go)."`
	Connect  string `name:"connect" placeholder:"URI" help:"The libvirt daemon for --libvirt (default qemu:///system as root, qemu:///session otherwise)."`

	dial func(uri string) (libvirthost.Conn, error)
}

func (c *PsCmd) Run() error { return c.write(os.Stdout, time.Now()) }

// psVM is one VM as `qnuma ps --json` prints it.
type psVM struct {
	Name          string         `json:"name"`
	PID           int            `json:"pid"` // qemu's; 0 while starting
	OwnerPID      int            `json:"owner_pid"`
	HostNodes     []int          `json:"host_nodes"`
	VCPUs         int            `json:"vcpus"`
	MemoryBytes   uint64         `json:"memory_bytes"`
	NodeMemory    map[int]uint64 `json:"memory_bytes_per_node"`
	NodeVCPUs     map[int]int    `json:"vcpus_per_node"`
	DedicatedCPUs string         `json:"dedicated_cpus"`
	// VCPUCPUs and EmulatorCPUs are where its threads may run ("" in
	// entries written before qnuma recorded them).
	VCPUCPUs     string    `json:"vcpu_cpus"`
	EmulatorCPUs string    `json:"emulator_cpus"`
	Created      time.Time `json:"created"`
	AgeSeconds   int64     `json:"age_seconds"`
	// Movable: qnuma move can move it (NotMovable says why not); Locked:
	// placed or pinned by hand, left alone by qnuma balance; NMIG: how
	// many times it was moved.
	Movable    bool   `json:"movable"`
	NotMovable string `json:"not_movable,omitempty"`
	Locked     bool   `json:"locked"`
	NMIG       int    `json:"nmig"`
	// State is running, starting (qnuma has not started its qemu yet) or
	// waiting (qnuma run --wait: it did not fit, holds no room, and
	// WaitingFor says what was short at its last try; Created is when it
	// began to wait). Libvirt's domains have none.
	State      string `json:"state,omitempty"`
	WaitingFor string `json:"waiting_for,omitempty"`
}

func (c *PsCmd) write(w io.Writer, now time.Time) error {
	l, err := openLedger(c.StateDir)
	if err != nil {
		return err
	}
	st, err := l.List(context.Background())
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return badInput("%w", err)
	}
	if err != nil {
		return err
	}
	vms := make([]psVM, 0, len(st.Entries))
	for _, e := range st.Entries {
		vms = append(vms, psVM{
			Name: e.Name, PID: e.QEMU.PID, OwnerPID: e.Owner.PID, HostNodes: e.HostNodes,
			VCPUs: e.TotalVCPUs(), MemoryBytes: e.TotalMemory(), NodeMemory: e.MemoryBytes,
			NodeVCPUs: e.VCPUs, DedicatedCPUs: e.DedicatedCPUs.String(), VCPUCPUs: e.VCPUCPUs.String(),
			EmulatorCPUs: e.EmulatorCPUs.String(), Created: e.Created,
			AgeSeconds: int64(now.Sub(e.Created) / time.Second),
			Movable:    e.NotMovable == "" && len(e.GuestNodes) > 0, NotMovable: notMovableReason(e),
			Locked: e.Locked, NMIG: len(e.Moves), State: entryState(e),
		})
	}
	waiting, corrupt, err := l.ListWaiting(context.Background())
	if err != nil {
		return err
	}
	st.Corrupt = append(st.Corrupt, corrupt...)
	vms = append(vms, waitingVMs(waiting, now)...)
	if c.Libvirt {
		more, err := c.libvirtVMs()
		if err != nil {
			return err
		}
		vms = append(vms, more...)
	}
	if c.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(vms); err != nil {
			return err
		}
	} else if err := psTable(w, vms); err != nil {
		return err
	}
	return corruptError(st.Corrupt)
}

func psTable(w io.Writer, vms []psVM) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tNODES\tVCPUS\tCPUS\tMEMORY\tAGE")
	for _, v := range vms {
		pid := fmt.Sprint(v.PID)
		switch {
		case v.State == stateWaiting:
			pid = fmt.Sprintf("waiting (qnuma %d)", v.OwnerPID)
		case v.PID == 0 && v.OwnerPID != 0:
			pid = fmt.Sprintf("starting (qnuma %d)", v.OwnerPID)
		case v.PID == 0:
			pid = "-" // a libvirt domain on a remote host
		}
		cpus := v.DedicatedCPUs
		switch {
		case v.State == stateWaiting:
			cpus = "-" // none yet
		case cpus == "":
			cpus = "shared"
		}
		name, nodes := v.Name, intList(v.HostNodes)
		if name == "" {
			name = "-" // a waiting VM whose name qnuma chooses at start
		}
		if nodes == "" {
			nodes = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", name, pid, nodes, v.VCPUs, cpus,
			memobj.FormatSize(v.MemoryBytes), time.Duration(v.AgeSeconds)*time.Second)
	}
	return tw.Flush()
}

// openLedger opens the ledger in dir ("": the default) as the CLI uses it:
// it reads what each VM's qemu already holds, and says what it waits for
// when another qnuma holds the lock. Listing needs no lock and creates
// nothing, so ps and plan work on a ledger the user may only read.
func openLedger(dir string) (*ledger.Ledger, error) {
	l, err := ledger.Open(dir)
	if err != nil {
		return nil, err
	}
	l.Resident = ledger.ResidentOf
	l.OnLockWait = func(lock string) {
		fmt.Fprintf(os.Stderr, "qnuma: waiting for the ledger lock %s (another qnuma is placing or releasing a VM; giving up after %s)\n", lock, ledger.DefaultLockTimeout)
	}
	return l, nil
}

// corruptError reports unreadable ledger files after the listing: exit 1.
func corruptError(cs []ledger.Corrupt) error {
	if len(cs) == 0 {
		return nil
	}
	errs := make([]error, len(cs))
	for i, c := range cs {
		errs[i] = c
	}
	return &ExitError{Code: 1, Err: errors.Join(errs...)}
}

func intList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

// notMovableReason is why qnuma move would refuse e ("" when it would not).
func notMovableReason(e ledger.Entry) string {
	if e.NotMovable != "" {
		return e.NotMovable
	}
	if len(e.GuestNodes) == 0 {
		return "no guest layout in the ledger (placed by an older qnuma)"
	}
	return ""
}
