// Package prepare makes a VM ready to start from what the user gave (a
// plan.Spec, their QEMU command line, or a libvirt domain XML), the host
// it runs on and the VMs already placed: the plan and the final argv. It
// reads only the domain XML; cmd/qnuma keeps the flags, the output and the
// exit codes (errors wrapping ErrBadInput or plan's ErrBadSpec and
// ErrDoesNotFit are bad input, exit 2).
package prepare

import (
	"context"
	"errors"
	"fmt"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemucmd"
	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/topology"
	"k8s.io/utils/cpuset"
)

// DefaultQEMU is the binary rendered for when the user gives no QEMU
// command line.
const DefaultQEMU = "qemu-system-x86_64"

// ErrBadInput is wrapped by errors about what the user gave.
var ErrBadInput = errors.New("bad input")

// badInputError is bad input, with its message alone.
type badInputError struct{ err error }

func (e badInputError) Error() string   { return e.err.Error() }
func (e badInputError) Unwrap() []error { return []error{e.err, ErrBadInput} }

// Bad formats an error about what the user gave (wrapping ErrBadInput).
func Bad(format string, a ...any) error {
	return badInputError{fmt.Errorf(format, a...)}
}

// VM is a VM ready to start: the host it was planned on, the spec
// after merging the user's QEMU command line, the plan, and the argv.
type VM struct {
	Host *topology.Host
	Spec plan.Spec
	Plan *plan.Plan
	// User is the user's QEMU command line; nil when none was given.
	User *plan.QEMUArgv
	// QEMU is the version rendered for.
	QEMU qemuversion.Version
	// Rendered is qnuma's own arguments (-smp, -m, backends, -numa).
	Rendered []string
	// Argv is the command to exec: the user's command line merged with
	// Rendered; just Rendered when the user gave none.
	Argv []string
	// NotMovable says why qnuma move could not move the VM ("": it can).
	NotMovable string
	// Note is a sentence for the plan's reasons (--near-device's node).
	Note string
	// Backend is --memory-backend ("ram", or memfd when empty).
	Backend string
	// Dom is the domain XML's spec (ReadDomain); nil without one.
	Dom *Domain
}

// PlanFor plans the gathered VM around the VMs already placed and renders
// its argv. It is pure: it reads nothing and starts nothing.
func (pr *VM) PlanFor(placed []plan.Placed) error {
	if pr.Dom != nil {
		return pr.planDomain(placed) // --domain-xml (domxml.go)
	}
	var err error
	if pr.Plan, err = plan.Make(pr.Host, pr.Spec, placed); err != nil {
		return err
	}
	if pr.Note != "" {
		pr.Plan.Reasons = append(pr.Plan.Reasons, pr.Note)
	}
	if pr.Rendered, err = pr.Plan.Args(plan.RenderOptions{QEMU: pr.QEMU, Backend: pr.backendType(), CPUType: pr.User.CPUType()}); err != nil {
		return err
	}
	pr.Argv = pr.Rendered
	if pr.User != nil {
		pr.Argv = pr.User.Final(pr.Rendered)
	}
	pr.NotMovable = NotMovable(pr.Argv, pr.User != nil)
	if pr.NotMovable == "" {
		pr.NotMovable = hotplugNotMovable(pr.Plan.Spec)
	}
	return nil
}

// hotplugNotMovable is why a VM with hotplug room cannot be moved live
// ("" without room): a move would leave its absent vCPU slots' CPUs and
// its hot-plugged memory on the old nodes.
func hotplugNotMovable(s plan.Spec) string {
	if s.MaxVCPUs == 0 && s.MaxMemoryBytes == 0 {
		return ""
	}
	return "it has hotplug room (--max-vcpus, --max-memory), which qnuma move does not move yet: its absent vCPU slots' CPUs and its hot-plugged memory would stay on the old nodes"
}

// backendType is --memory-backend for rendering: memfd is the renderer's
// default, which falls back to ram on a QEMU without memfd (before 2.12).
func (pr *VM) backendType() memobj.BackendType {
	if pr.Backend == "ram" {
		return memobj.BackendRAM
	}
	return ""
}

// NotMovable is why the VM started with argv could not be moved live ("":
// it can). argv has the binary first when withBinary.
func NotMovable(argv []string, withBinary bool) string {
	if !withBinary {
		argv = append([]string{DefaultQEMU}, argv...)
	}
	c, err := qemucmd.ParseAccepted(argv)
	if err != nil {
		return "its command line could not be read: " + err.Error()
	}
	return c.NotMovable()
}

// Place plans the VM around the VMs in the ledger, under its lock, as name
// ("" for a free one), and keeps the lock (ledger.PlaceHeld): the caller
// starts qemu, then the reservation's Commit records the VM with qemu's pid
// (or Release gives the hold up), so two VMs placed at once never get the
// same dedicated CPUs or the same memory. emu, when not empty, is where
// qemu's other threads run (--emulator-cpus), recorded as the VM's. mark,
// when not nil, is told each step (qnuma's trace).
func (pr *VM) Place(ctx context.Context, l *ledger.Ledger, name string, emu cpuset.CPUSet, mark func(string)) (*ledger.Reservation, error) {
	if mark == nil {
		mark = func(string) {}
	}
	return l.PlaceHeld(ctx, name, func(placed []plan.Placed) (*plan.Plan, error) {
		mark(fmt.Sprintf("locked ledger, read %d entries", len(placed)))
		if err := pr.PlanFor(placed); err != nil {
			return nil, err
		}
		mark("planned and rendered")
		if emu.Size() > 0 {
			pr.Plan.EmulatorCPUs = emu
		}
		return pr.Plan, nil
	})
}
