package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/topology"
)

// Work that launching a VM needs whatever its flags say, begun in the
// background as qnuma starts, so that on a second CPU it overlaps kong's
// parse (the largest part of qnuma's own start-up): the host's topology
// under /, Go's signal thread, and for `qnuma run` the QEMU binary named
// after "--" looked up and its version read from the cache. Only `qnuma
// run` and the numactl spelling start it; every other command reads as
// before.

// hostRead is a topology.Read's outcome.
type hostRead struct {
	h   *topology.Host
	err error
}

// earlyHost is the host's topology read at start, until taken (nil: none).
var earlyHost chan hostRead

// qemuRead is what the early lookup learnt of the QEMU binary bin.
type qemuRead struct {
	bin    string // as the command line names it
	v      qemuversion.Version
	cached bool // found, and its version in the cache as the binary is now
}

// earlyQEMU is the early lookup's answer, until taken (nil: none).
var earlyQEMU chan qemuRead

// startEarly begins the early work for the commands that launch a VM.
func startEarly(args []string) {
	if !(len(args) > 0 && args[0] == "run") && !isNumactlSyntax(args) {
		return
	}
	ch := make(chan hostRead, 1)
	earlyHost = ch
	var qch chan qemuRead
	bin := qemuNamed(args)
	if bin != "" {
		qch = make(chan qemuRead, 1)
		earlyQEMU = qch
	}
	go func() {
		// One goroutine, so that the three take one other CPU in turn
		// rather than queue behind the parse on its own.
		h, err := topology.Read("/")
		ch <- hostRead{h, err}
		warmSignals()
		if qch != nil {
			v, ok := versionCache().Cached(bin)
			qch <- qemuRead{bin: bin, v: v, cached: ok}
		}
	}()
}

// qemuNamed is the QEMU binary of `qnuma run ... -- BINARY ...`: the word
// after the first "--", or "" when there is none. A guess made before kong
// parses the flags; its answer is used only for the binary the parse finds.
func qemuNamed(args []string) string {
	if len(args) == 0 || args[0] != "run" {
		return ""
	}
	for i, a := range args {
		if a == "--" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// cachedVersion is bin's version from the early lookup, when it was for
// bin and found it in the cache; ok false sends the caller to the cache
// (and the binary) itself. It is as fresh as a read at this point would
// be: the lookup began a millisecond or so before.
func cachedVersion(bin string) (v qemuversion.Version, ok bool) {
	ch := earlyQEMU
	if ch == nil {
		return v, false
	}
	earlyQEMU = nil // taken: later lookups are fresh
	r := <-ch
	return r.v, r.cached && r.bin == bin
}

// versionCache is where qnuma keeps what each QEMU binary said to -version.
func versionCache() qemuversion.VersionCache {
	return qemuversion.VersionCache{Dir: qemuversion.DefaultVersionCacheDir()}
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
