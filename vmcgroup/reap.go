package vmcgroup

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ReapStale removes the cgroups of VMs whose qnuma is gone: qnuma run
// names a VM's cgroup NAME-PID after its own pid and removes it when qemu
// exits, but a qnuma killed outright (SIGKILL) cannot. A cgroup is removed
// only when it holds no process and no process PID exists; everything else
// is left alone. It returns the names removed. Systemd collects its own
// scopes (CollectMode=inactive-or-failed).
func (h Host) ReapStale(ctx context.Context) []string {
	if h.Kind != V2 && h.Kind != V1 {
		return nil
	}
	ents, err := os.ReadDir(filepath.Join(h.root, h.Mount, Dir))
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		i := strings.LastIndexByte(e.Name(), '-')
		if i < 0 {
			continue
		}
		pid, err := strconv.Atoi(e.Name()[i+1:])
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // not named by qnuma run, or its qnuma still runs
		}
		g, err := h.Open(ctx, e.Name())
		if err != nil {
			continue
		}
		if procs, err := g.Procs(); err == nil && len(procs) == 0 && g.Remove(ctx) == nil {
			removed = append(removed, e.Name())
		}
		g.Close()
	}
	return removed
}
