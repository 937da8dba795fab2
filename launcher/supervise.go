package launcher

import (
	"context"
	"syscall"
	"time"
)

// supervise passes signals to qemu, enforces Timeout and waits for qemu
// to exit, filling in the result.
func (r *run) supervise(ctx context.Context) {
	if r.cfg.Hooks.OnRunning != nil {
		r.cfg.Hooks.OnRunning(r.pid, r.vcpuThreads)
	}
	if r.cfg.Hooks.OnSupervise != nil && r.mon != nil {
		if stop := r.cfg.Hooks.OnSupervise(r.mon, r.pid); stop != nil {
			defer stop()
		}
	}
	var timeout, kill <-chan time.Time
	if r.cfg.Timeout > 0 {
		t := time.NewTimer(r.cfg.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	done := ctx.Done()
	if sig := r.interrupted; sig != nil {
		// The signal came as the launch's last step ended: the launch had
		// nothing left to abort, so it is qemu's, as any later one.
		r.log.Info("forwarding signal", "signal", sig, "pid", r.pid)
		r.proc.Signal(sig)
	}
	for {
		select {
		case <-r.exited:
			r.result.ExitCode = exitCode(r.state)
			if r.result.TimedOut {
				r.result.ExitCode = 124
			}
			r.log.Info("qemu exited", "pid", r.pid, "status", exitCode(r.state))
			if ws, ok := r.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() && !r.stopping.Load() {
				// Nobody here asked for it: say so even without -v.
				r.warn(KilledMessage(r.pid, ws.Signal()))
			}
			return
		case sig := <-r.cfg.Signals:
			r.log.Info("forwarding signal", "signal", sig, "pid", r.pid)
			r.proc.Signal(sig)
		case <-timeout:
			timeout = nil
			r.result.TimedOut = true
			kill = r.powerdown("timeout")
		case <-done:
			done = nil
			kill = r.powerdown("context ended")
		case <-kill:
			kill = nil
			r.log.Warn("qemu did not power down in time: killing it", "pid", r.pid, "grace", r.cfg.Grace)
			r.proc.Kill()
		}
	}
}

// powerdown asks the guest to power off and returns when to kill qemu.
func (r *run) powerdown(why string) <-chan time.Time {
	r.stopping.Store(true)
	r.log.Info("powering down", "why", why, "pid", r.pid, "grace", r.cfg.Grace)
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Grace)
	defer cancel()
	if err := r.qmpCall(ctx, "system_powerdown", r.mon.SystemPowerdown); err != nil {
		r.log.Warn("system_powerdown failed: killing qemu", "pid", r.pid, "err", err)
		r.proc.Kill()
		return nil
	}
	return time.After(r.cfg.Grace)
}
