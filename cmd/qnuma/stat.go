package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/numastat"
	"github.com/qnuma/qnuma/topology"
)

// StatCmd is `qnuma stat`: where each VM's guest RAM and vCPUs really are.
type StatCmd struct {
	Targets  []string `arg:"" optional:"" name:"name|pid" help:"VMs in the ledger by name, or any QEMU pid (default: every VM in the ledger)."`
	Watch    *float64 `placeholder:"SECONDS" help:"Sample again every SECONDS (0.1 to 86400) until interrupted, counting vCPUs that ran outside their home node in between."`
	JSON     bool     `help:"Print JSON (with --watch, one line per sample round)."`
	StateDir string   `name:"state-dir" placeholder:"DIR" help:"Ledger directory (default /run/qnuma as root, $XDG_RUNTIME_DIR/qnuma otherwise)."`
	Libvirt  bool     `name:"libvirt" help:"Also sample libvirt's running domains (libvirt:NAME) of a daemon on this host, their nodeset as home (stat_libvirt.go)."`
	Connect  string   `name:"connect" placeholder:"URI" help:"The local libvirt daemon for --libvirt (default qemu:///system as root, qemu:///session otherwise)."`

	dial func(uri string) (libvirthost.Conn, error)
}

func (c *StatCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.run(ctx, os.Stdout)
}

// statTarget is one process to sample.
type statTarget struct {
	name  string // "" for a pid not in the ledger
	pid   int
	home  numastat.Home
	moves []ledger.Move
	// homeFrom says where home came from when not the ledger ("libvirt").
	homeFrom string
}

// statVM is one VM as `qnuma stat --json` prints it.
type statVM struct {
	Name string `json:"name,omitempty"`
	*numastat.Sample
	// NMIG is how many times the VM was moved (esxtop's NMIG), Moves its
	// latest moves (from the ledger).
	NMIG  int           `json:"nmig"`
	Moves []ledger.Move `json:"moves"`
	// HomeFrom is "libvirt" for a domain's nodeset and pins as home.
	HomeFrom string `json:"home_from,omitempty"`
}

// The bounds of --watch: under a tenth of a second the samples (each a
// read of numa_maps and every thread's stat) are the load; over a day is a
// typo. time.Duration overflows past 292 years, and NaN compares as no
// interval at all, so both are refused here.
const (
	minWatch = 0.1
	maxWatch = 24 * 60 * 60
)

// interval is --watch as a duration, 0 without --watch.
func (c *StatCmd) interval() (time.Duration, error) {
	if c.Watch == nil {
		return 0, nil
	}
	sec := *c.Watch
	if math.IsNaN(sec) || sec < minWatch || sec > maxWatch {
		return 0, badInput("--watch %v: want a number of seconds from %v to %v", sec, minWatch, maxWatch)
	}
	return time.Duration(sec * float64(time.Second)), nil
}

func (c *StatCmd) run(ctx context.Context, w io.Writer) error {
	every, err := c.interval()
	if err != nil {
		return err
	}
	host, err := topology.Read("/")
	if err != nil {
		return err
	}
	targets, err := c.targets(ctx, host)
	if err != nil {
		return err
	}
	prev := map[int]*numastat.Sample{}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		round := make([]statVM, 0, len(targets))
		for _, tg := range targets {
			s, err := numastat.Take("/", host, tg.pid, tg.home)
			if err != nil {
				return fmt.Errorf("stat %s: %w", tg.label(), err)
			}
			s.Since(prev[tg.pid])
			prev[tg.pid] = s
			round = append(round, statVM{Name: tg.name, Sample: s, NMIG: len(tg.moves), Moves: nonNilMoves(tg.moves), HomeFrom: tg.homeFrom})
		}
		if err := c.print(w, round); err != nil {
			return err
		}
		if tick == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
}

func (tg statTarget) label() string {
	if tg.name != "" {
		return fmt.Sprintf("vm %s (pid %d)", tg.name, tg.pid)
	}
	return fmt.Sprintf("pid %d", tg.pid)
}

// targets resolves names and pids; a pid that is a ledger VM's qemu gets
// that VM's home nodes.
func (c *StatCmd) targets(ctx context.Context, host *topology.Host) ([]statTarget, error) {
	l, err := ledger.Open(c.StateDir)
	if err != nil {
		return nil, err
	}
	st, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	fromEntry := func(e ledger.Entry) statTarget {
		return statTarget{name: e.Name, pid: e.QEMU.PID, home: numastat.Home{Nodes: e.HostNodes, VCPUs: e.VCPUHomeNodes}, moves: e.Moves}
	}
	var out []statTarget
	if len(c.Targets) == 0 {
		for _, e := range st.Entries {
			if e.QEMU.PID != 0 {
				out = append(out, fromEntry(e))
			}
		}
		if c.Libvirt {
			more, err := c.libvirtTargets(host)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
		if len(out) == 0 {
			if c.Libvirt {
				return nil, badInput("no running VM in the ledger %s, and no running libvirt domain: name a QEMU pid", l.Dir())
			}
			return nil, badInput("no running VM in the ledger %s: name a QEMU pid", l.Dir())
		}
		return out, nil
	}
	for _, arg := range c.Targets {
		pid, err := strconv.Atoi(arg)
		if err == nil && pid > 0 {
			id, err := numastat.ReadIdentity("/", pid)
			if err != nil {
				return nil, badInput("stat %d: no such process (qnuma ps lists the VMs qnuma placed)", pid)
			}
			// Any process has numa_maps and threads, but only a QEMU's
			// sample means anything: its guest RAM and vCPU threads.
			if !id.IsQEMU() {
				return nil, badInput("stat %d: the process is %s, not QEMU (qemu-system-* or qemu-kvm): name a QEMU pid or a VM that qnuma ps lists", pid, id)
			}
			tg := statTarget{pid: pid}
			for _, e := range st.Entries {
				if e.QEMU.PID == pid {
					tg = fromEntry(e)
				}
			}
			out = append(out, tg)
			continue
		}
		found := false
		for _, e := range st.Entries {
			if e.Name == arg {
				if e.QEMU.PID == 0 {
					return nil, fmt.Errorf("stat vm %s: qemu is not started yet", arg)
				}
				out, found = append(out, fromEntry(e)), true
			}
		}
		if !found {
			return nil, badInput("stat %s: no such vm in the ledger %s, and not a pid", arg, l.Dir())
		}
	}
	if c.Libvirt {
		more, err := c.libvirtTargets(host)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

func (c *StatCmd) print(w io.Writer, round []statVM) error {
	if c.JSON {
		enc := json.NewEncoder(w)
		if c.Watch == nil {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(round)
	}
	for _, v := range round {
		if err := statText(w, v); err != nil {
			return err
		}
	}
	return nil
}

func statText(w io.Writer, v statVM) error {
	s := v.Sample
	name := fmt.Sprintf("pid %d", s.PID)
	if v.Name != "" {
		name = fmt.Sprintf("%s (pid %d)", v.Name, s.PID)
	}
	from := "ledger"
	if v.HomeFrom != "" {
		from = v.HomeFrom + " nodeset"
	}
	if !s.HomeGiven {
		from = "node with most guest RAM"
	}
	fmt.Fprintf(w, "%s  home node(s) %s (%s)\n", name, intList(s.HomeNodes), from)
	fmt.Fprintf(w, "  guest RAM (%d mappings, %s):", s.RAMMappings, s.RAMMatch)
	for _, nb := range s.RAM {
		fmt.Fprintf(w, "  node %d %s", nb.Node, mib(nb.Bytes))
	}
	flag := ""
	if s.LowLocal {
		flag = fmt.Sprintf("  LOW (under %.0f%%)", numastat.LowLocal)
	}
	fmt.Fprintf(w, "\n  NLMEM %s  NRMEM %s  N%%L %.1f%s  NMIG %d\n", mib(s.LocalBytes), mib(s.RemoteBytes), s.LocalPercent, flag, v.NMIG)
	for _, m := range v.Moves {
		fmt.Fprintf(w, "  moved %s by %s: %s -> %s, %s in %.2fs\n", m.At.Local().Format("2006-01-02 15:04:05"), m.By, layoutText(m.From), layoutText(m.To), mib(m.Bytes), m.Took.Seconds())
	}
	if len(s.VCPUs) == 0 {
		fmt.Fprintf(w, "  no vcpu threads among %d threads (qemu names them with -name ...,debug-threads=on)\n", s.Threads)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VCPU\tTID\tALLOWED\tLAST CPU\tNODE\tHOME")
	for _, c := range s.VCPUs {
		mark := ""
		switch {
		case c.Stale:
			mark = "  not run since pinned"
		case c.Outside:
			mark = "  outside"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%d\t%d\t%s%s\n", c.Index, c.TID, c.Allowed, c.LastCPU, c.LastNode, intList(c.HomeNodes), mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	since := "-"
	if s.OutsideSince >= 0 {
		since = strconv.Itoa(s.OutsideSince)
	}
	_, err := fmt.Fprintf(w, "  vcpus outside home: %d now, %s ran outside since the last sample\n", s.OutsideNow, since)
	return err
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func nonNilMoves(m []ledger.Move) []ledger.Move {
	if m == nil {
		return []ledger.Move{}
	}
	return m
}

// layoutText writes each guest node's host nodes: "0:1 1:3".
func layoutText(l [][]int) string {
	var parts []string
	for g, h := range l {
		parts = append(parts, fmt.Sprintf("%d:%s", g, intList(h)))
	}
	return strings.Join(parts, " ")
}
