package launcher

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

// OnSupervise gets qnuma's own monitor while the guest runs, and its stop
// runs once qemu has exited.
func TestOnSuperviseGetsTheMonitorUntilExit(t *testing.T) {
	qemutest.Require(t)
	cfg := baseConfig(t, qemuArgv(1), testPlan(t, 1))
	sigs := make(chan os.Signal, 1)
	cfg.Signals = sigs
	var status string
	stopped := make(chan bool, 1)
	var qemuPid int
	cfg.Hooks.OnSupervise = func(mon *qmp.Client, pid int) func() {
		qemuPid = pid
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := mon.QueryStatus(ctx)
		if err != nil {
			t.Errorf("query-status on the hook's monitor: %v", err)
		}
		status = st.Status
		sigs <- syscall.SIGTERM
		return func() {
			// qemu is gone by now.
			stopped <- syscall.Kill(pid, 0) == syscall.ESRCH
		}
	}
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if status != "running" {
		t.Errorf("status in OnSupervise = %q, want running", status)
	}
	select {
	case gone := <-stopped:
		if !gone {
			t.Errorf("stop ran while qemu pid %d still existed", qemuPid)
		}
	default:
		t.Error("the stop OnSupervise returned was not called")
	}
	requireGone(t, res.PID)
}
