package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/qnuma/qnuma/topology"
)

// Work that launching a VM needs whatever its flags say, begun in the
// background as qnuma starts, so that on a second CPU it overlaps kong's
// parse (the largest part of qnuma's own start-up): the host's topology
// under /, and Go's signal thread. Only `qnuma run` and the numactl
// spelling start it; every other command reads as before.

// hostRead is a topology.Read's outcome.
type hostRead struct {
	h   *topology.Host
	err error
}

// earlyHost is the host's topology read at start, until taken (nil: none).
var earlyHost chan hostRead

// startEarly begins the early work for the commands that launch a VM.
func startEarly(args []string) {
	if !(len(args) > 0 && args[0] == "run") && !isNumactlSyntax(args) {
		return
	}
	ch := make(chan hostRead, 1)
	earlyHost = ch
	go func() {
		// One goroutine, so that the two take one other CPU in turn
		// rather than queue behind the parse on its own.
		h, err := topology.Read("/")
		ch <- hostRead{h, err}
		warmSignals()
	}()
}

// readHost is topology.Read(root), from the early read when there is one
// for / that nobody took yet. It is as fresh as a read at this point
// would be: the early read began a millisecond or so before.
func readHost(root string) (*topology.Host, error) {
	if ch := earlyHost; root == "/" && ch != nil {
		earlyHost = nil // taken: later reads are fresh
		r := <-ch
		return r.h, r.err
	}
	return topology.Read(root)
}

// warmSignals starts Go's signal handling, whose first signal.Notify
// starts a thread and waits for it (a few hundred microseconds that
// launchVM would otherwise spend just before qemu starts), with a signal
// whose default is to be ignored, so that nothing changes for qnuma until
// launchVM catches its own.
func warmSignals() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGWINCH)
	signal.Stop(c)
}
