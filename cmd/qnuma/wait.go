package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/qnuma/qnuma/launcher"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
)

// WaitFlags are qnuma run's flags for a VM that does not fit yet.
type WaitFlags struct {
	Wait time.Duration `name:"wait" placeholder:"DURATION" help:"When the VM does not fit now for lack of room, wait up to DURATION for it: qnuma records it in the ledger as waiting (qnuma ps shows it; it holds no room, and qnuma balance may move another VM to make room for it), plans again whenever the ledger changes and every second, and starts it the moment it fits. After DURATION, exit 2 saying what was short; SIGINT or SIGTERM stops the wait (exit 130 or 143). A VM that would not fit this host even empty, and bad input, exit 2 at once."`
}

// Validate refuses a negative --wait before anything starts (exit 2).
func (f *WaitFlags) Validate() error {
	if f.Wait < 0 {
		return fmt.Errorf("--wait %s: want a duration such as 10m (0: do not wait)", f.Wait)
	}
	return nil
}

// waitPoll is how often a waiting VM plans again when the ledger does not
// change: room also comes from processes outside the ledger.
const waitPoll = time.Second

// waitGap is the least time between two tries that changes of the ledger
// wake.
const waitGap = 100 * time.Millisecond

// waitForRoom is qnuma run --wait after the first plan found no room
// (short): it records the VM as waiting, plans again on every change of
// the ledger and every waitPoll under the ledger's lock as run does, and
// returns the VM's reservation once it fits. The waiting entry is gone
// when it returns, whatever the outcome: placing the VM removes it under
// the ledger's lock (which the reservation holds until qemu starts).
func (c *RunCmd) waitForRoom(ctx context.Context, cfg *launcher.Config, short error) (res *ledger.Reservation, err error) {
	pr := c.prepared
	if err := fitsEmpty(pr.Host, pr.Spec); errors.Is(err, plan.ErrDoesNotFit) {
		return nil, badInput("%w\n(--wait: it would not fit this host even with every node's memory free and no other VM, so no wait can help; nothing started)", short)
	}
	l, err := openLedger(c.StateDir)
	if err != nil {
		return nil, err
	}
	tk, err := l.Wait(ctx, c.Name, pr.Spec, shortText(short))
	if errors.Is(err, ledger.ErrUnsafeDir) {
		return nil, badInput("%w", err)
	}
	if err != nil {
		return nil, err
	}
	label := tk.Entry().Label()
	defer func() {
		if err == nil {
			return // placed: Place removed it
		}
		if err := tk.Remove(); err != nil {
			fmt.Fprintf(os.Stderr, "qnuma: warning: %v\n", err)
		}
	}()
	var changed <-chan struct{}
	if w, err := l.Watch(); err == nil {
		defer w.Close()
		changed = w.C
	} else {
		fmt.Fprintf(os.Stderr, "qnuma: warning: %v: planning again every %s only\n", err, waitPoll)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return waitLoop(ctx, os.Stderr, label, c.Wait, short, changed, sigs, func() (*ledger.Reservation, error) {
		// The host's free memory is read anew: room comes from VMs that
		// leave or move (balance) as much as from the ledger.
		host, err := topology.Read(c.Root)
		if err != nil {
			return nil, err
		}
		pr.Host = host
		res, err := c.reserve(ctx, cfg)
		if errors.Is(err, plan.ErrDoesNotFit) {
			if serr := tk.SetShort(shortText(err)); serr != nil {
				fmt.Fprintf(os.Stderr, "qnuma: warning: %v\n", serr)
			}
		}
		return res, err
	})
}

// waitLoop tries again on each change and every waitPoll until try fits,
// fails otherwise, the wait runs out (the last refusal, exit 2) or a
// signal ends it (exit 128 + its number). It prints a line when the wait
// starts and one when the VM gets room.
func waitLoop(ctx context.Context, w io.Writer, label string, wait time.Duration, short error, changed <-chan struct{}, sigs <-chan os.Signal, try func() (*ledger.Reservation, error)) (*ledger.Reservation, error) {
	fmt.Fprintf(w, "qnuma: vm %s does not fit now: %s; waiting up to %s for room (qnuma ps shows it waiting)\n", label, shortText(short), wait)
	start := time.Now()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	last := short
	// A change wakes a try at most every waitGap, and so does the tick:
	// this qnuma's own writes (what is short, which may name amounts that
	// change) are changes too.
	var soon <-chan time.Time
	lastTry := start
	for {
		select {
		case <-changed:
			if soon == nil {
				soon = time.After(max(0, waitGap-time.Since(lastTry)))
			}
			continue
		case <-soon:
		case <-tick.C:
			if time.Since(lastTry) < waitGap {
				continue // a change's try has just run
			}
		case <-deadline.C:
			return nil, fmt.Errorf("vm %s waited %s for room and still does not fit; nothing started: %w", label, wait, last)
		case s := <-sigs:
			code := 1
			if n, ok := s.(syscall.Signal); ok {
				code = 128 + int(n)
			}
			return nil, &ExitError{Code: code, Err: fmt.Errorf("vm %s: stopped waiting for room on %s after %s; nothing started", label, s, time.Since(start).Round(time.Millisecond))}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		soon, lastTry = nil, time.Now()
		res, err := try()
		if err == nil {
			fmt.Fprintf(w, "qnuma: vm %s got room after waiting %s: starting\n", res.Entry.Name, time.Since(start).Round(time.Millisecond))
			return res, nil
		}
		if !errors.Is(err, plan.ErrDoesNotFit) {
			return nil, err
		}
		last = err
	}
}

// shortText is what a refusal says was short, in one line.
func shortText(err error) string {
	var fe *plan.FitError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}

// fitsEmpty plans spec on host as if no VM were placed and every node's
// memory and hugepages were free: a VM that does not fit then never will.
func fitsEmpty(host *topology.Host, spec plan.Spec) error {
	empty := *host
	empty.Nodes = slices.Clone(host.Nodes)
	for i := range empty.Nodes {
		n := &empty.Nodes[i]
		n.MemFree, n.InactiveFile = n.MemTotal, 0
		n.Hugepages = slices.Clone(n.Hugepages)
		for j := range n.Hugepages {
			n.Hugepages[j].Free = n.Hugepages[j].Total
		}
	}
	_, err := plan.Make(&empty, spec, nil)
	return err
}
