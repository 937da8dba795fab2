package main

import (
	"fmt"
	"os"

	"github.com/qnuma/qnuma/control"
	"github.com/qnuma/qnuma/launcher"
	"github.com/qnuma/qnuma/qmp"
)

// serveControl has qnuma run serve the VM's QMP monitor on its control
// socket in the ledger dir while it supervises the VM, for qnuma vcpus,
// memory and move. A VM whose socket cannot be made still runs, with a
// warning: only those commands cannot reach it.
func serveControl(cfg *launcher.Config, dir, name string) {
	cfg.Hooks.OnSupervise = func(mon *qmp.Client, pid int) func() {
		srv, err := control.Serve(dir, name, mon, func(err error) {
			fmt.Fprintf(os.Stderr, "qnuma: warning: %v\n", err)
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "qnuma: warning: %v; qnuma vcpus, memory and move cannot reach vm %s\n", err, name)
			return nil
		}
		return func() { srv.Close() }
	}
}
