package vmcgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/cpuset"
)

// On systemd hosts the scope is made and changed through busctl and
// systemctl, which are there wherever systemd runs: no D-Bus library.

// scopeWait bounds the wait for systemd to move the first process into a
// new scope (the start job runs after StartTransientUnit returns).
const scopeWait = 10 * time.Second

func unitOf(name string) string { return "qnuma-" + name + ".scope" }

// activeStates are the unit states in which a scope of that name runs.
var activeStates = []string{"active", "activating", "deactivating", "reloading", "refreshing"}

func (h Host) createScope(ctx context.Context, name string, cpus, mems cpuset.CPUSet) (*Group, error) {
	unit := unitOf(name)
	state, err := unitState(ctx, unit)
	if err != nil {
		return nil, fmt.Errorf("create cgroup of vm %s: %w", name, err)
	}
	if has(activeStates, state) {
		return nil, fmt.Errorf("create cgroup of vm %s: %w: systemd unit %s is %s", name, ErrInUse, unit, state)
	}
	return &Group{host: h, name: name, unit: unit, cpus: cpus, mems: mems}, nil
}

// unitState is `systemctl is-active`'s word for unit ("inactive" for one
// systemd does not know).
func unitState(ctx context.Context, unit string) (string, error) {
	out, err := command(ctx, "systemctl", "is-active", unit)
	state := strings.TrimSpace(string(out))
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || state == "") {
		return "", err
	}
	return state, nil
}

// startArgs is the busctl call that starts the scope with pid in it.
func startArgs(unit, name string, pid int, cpus, mems cpuset.CPUSet) []string {
	args := []string{"call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
		"org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail", "7",
		"Description", "s", "qnuma vm " + name,
		"Slice", "s", Slice,
		"Delegate", "b", "true",
		// A scope that failed is unloaded too, so the name is free again.
		"CollectMode", "s", "inactive-or-failed",
		"PIDs", "au", "1", strconv.Itoa(pid)}
	args = append(append(args, "AllowedCPUs"), bitmask(cpus)...)
	args = append(append(args, "AllowedMemoryNodes"), bitmask(mems)...)
	return append(args, "0")
}

// bitmask is s as busctl's "ay N BYTE..." of systemd's CPU and node masks:
// bit i of byte j is id 8j+i.
func bitmask(s cpuset.CPUSet) []string {
	ids := s.List()
	n := 0
	if len(ids) > 0 {
		n = ids[len(ids)-1]/8 + 1
	}
	b := make([]byte, n)
	for _, id := range ids {
		b[id/8] |= 1 << (id % 8)
	}
	out := []string{"ay", strconv.Itoa(n)}
	for _, x := range b {
		out = append(out, strconv.Itoa(int(x)))
	}
	return out
}

func (g *Group) addToScope(ctx context.Context, pid int) error {
	if g.dir != nil {
		_, err := command(ctx, "busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
			"org.freedesktop.systemd1.Manager", "AttachProcessesToUnit", "ssau", g.unit, "", "1", strconv.Itoa(pid))
		return err
	}
	if _, err := command(ctx, "busctl", startArgs(g.unit, g.name, pid, g.cpus, g.mems)...); err != nil {
		return fmt.Errorf("start scope %s: %w", g.unit, err)
	}
	rel, err := g.host.waitScope(ctx, pid, g.unit)
	if err != nil {
		return err
	}
	s, err := g.host.scopeAt(g.name, rel)
	if err != nil {
		return err
	}
	if !s.cpus.Equals(g.cpus) || !s.mems.Equals(g.mems) {
		s.Close()
		return fmt.Errorf("scope %s has cpus %s and nodes %s, not %s and %s: does this systemd (244 or later) know AllowedCPUs=?", g.unit, s.cpus, s.mems, g.cpus, g.mems)
	}
	g.dir = s.dir
	return nil
}

// waitScope waits until pid is in the scope unit, watching ctx and pid,
// and returns the scope's cgroup path.
func (h Host) waitScope(ctx context.Context, pid int, unit string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, scopeWait)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	p := filepath.Join(h.root, "/proc", strconv.Itoa(pid), "cgroup")
	for {
		b, err := readFile(p, maxSmall)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("wait for pid %d in scope %s: the process is gone", pid, unit)
		}
		if err != nil {
			return "", fmt.Errorf("wait for pid %d in scope %s: %w", pid, unit, err)
		}
		cg, err := cgroupPath(b, false)
		if err != nil {
			return "", fmt.Errorf("wait for pid %d in scope %s: %s: %w", pid, unit, p, err)
		}
		if rel, ok := h.underMount(cg); ok && filepath.Base(rel) == unit {
			return rel, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for pid %d in scope %s: still in %s: %w", pid, unit, cg, ctx.Err())
		case <-tick.C:
		}
	}
}

// scopeAt opens the scope's cgroup at rel (relative to the mount), each
// directory on the way checked.
func (h Host) scopeAt(name, rel string) (*Group, error) {
	d, err := openDir(filepath.Join(h.root, h.Mount))
	if err != nil {
		return nil, err
	}
	for _, c := range strings.Split(strings.Trim(rel, "/"), "/") {
		if err := checkOwner(d, h.owner); err != nil {
			d.Close()
			return nil, err
		}
		next, err := openDirAt(d, c)
		d.Close()
		if err != nil {
			return nil, err
		}
		d = next
	}
	g := &Group{host: h, name: name, unit: unitOf(name), dir: d}
	if err := g.load(); err != nil {
		d.Close()
		return nil, err
	}
	return g, nil
}

// openScope finds the running scope of VM name through systemd.
func (h Host) openScope(ctx context.Context, name string) (*Group, error) {
	unit := unitOf(name)
	out, err := command(ctx, "systemctl", "show", "--property=ControlGroup", "--value", unit)
	if err != nil {
		return nil, err
	}
	cg := strings.TrimSpace(string(out))
	if cg == "" {
		return nil, fmt.Errorf("scope %s: %w (systemd has no cgroup for it)", unit, fs.ErrNotExist)
	}
	rel, ok := h.underMount(cg)
	if !ok || filepath.Base(rel) != unit {
		return nil, fmt.Errorf("scope %s: systemd names cgroup %s, outside %s", unit, cg, h.Mount)
	}
	return h.scopeAt(name, rel)
}

func (g *Group) setScope(ctx context.Context, file, property string, s cpuset.CPUSet) error {
	if g.dir == nil {
		return nil // not started: the scope starts with them
	}
	if _, err := command(ctx, "systemctl", "set-property", "--runtime", g.unit, property+"="+s.String()); err != nil {
		return err
	}
	got, err := readSet(g.dir, "cpuset."+file)
	if err != nil {
		return err
	}
	if !got.Equals(s) {
		return fmt.Errorf("systemd set %s=%s, but %s has cpuset.%s %s", property, s, g.dir.Name(), file, got)
	}
	return nil
}

// stopScope stops the scope if systemd still runs it (it stops a scope by
// itself when the last process leaves, and unloads it).
func (g *Group) stopScope(ctx context.Context) error {
	state, err := unitState(ctx, g.unit)
	if err != nil {
		return err
	}
	if !has(activeStates, state) {
		return nil
	}
	_, err = command(ctx, "systemctl", "stop", g.unit)
	return err
}

// command runs name with args and returns its stdout; the error names the
// command and carries its stderr.
func command(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "LC_ALL=C")
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}
