package vmcgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/ledger"
)

var (
	// ErrUnsupported is wrapped when the host gives no way to make a VM's
	// cgroup (Host.Kind None); the error says why.
	ErrUnsupported = errors.New("no cpuset cgroup for vms on this host")
	// ErrBadInput is wrapped for a bad VM name or an empty set of CPUs or
	// nodes, or one outside what the host's cgroups offer.
	ErrBadInput = errors.New("bad vm cgroup request")
	// ErrUnsafe is wrapped when a path root would act on could be changed
	// by another user (not owned by root, writable by others, a symlink).
	ErrUnsafe = errors.New("unsafe cgroup path")
	// ErrInUse is wrapped when a VM's cgroup, or qnuma's directory of
	// them, holds processes where it must not (another VM's, or someone
	// else's), or a systemd scope of that name is running.
	ErrInUse = errors.New("cgroup in use")
	// ErrNotQnuma is wrapped by Of when the process is not in a cgroup
	// qnuma made.
	ErrNotQnuma = errors.New("not in a qnuma vm cgroup")
)

// Group is one VM's cgroup.
type Group struct {
	host Host
	name string
	// dir is the cgroup's directory, open. nil for a systemd scope that
	// has not started (no AddProc yet) and after Remove.
	dir *os.File
	// unit is the systemd scope's name (V2Systemd).
	unit       string
	cpus, mems cpuset.CPUSet
}

// Name is the VM's name.
func (g *Group) Name() string { return g.name }

// Kind is the kind of host the group is on.
func (g *Group) Kind() Kind { return g.host.Kind }

// Unit is the systemd scope's name on V2Systemd hosts, else "".
func (g *Group) Unit() string { return g.unit }

// Dir is the cgroup's directory; "" for a systemd scope not yet started.
func (g *Group) Dir() string {
	if g.dir == nil {
		return ""
	}
	return g.dir.Name()
}

// CPUs and Mems are the group's cpuset.cpus and cpuset.mems as last set.
func (g *Group) CPUs() cpuset.CPUSet { return g.cpus }
func (g *Group) Mems() cpuset.CPUSet { return g.mems }

// CloneFD is the directory's file descriptor for starting a child inside
// the group (syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}:
// clone3 with CLONE_INTO_CGROUP, Linux 5.7), where that works: on V2 hosts.
// Elsewhere (v1 hierarchies, systemd scopes that start with their first
// process) ok is false: start the child, then AddProc.
func (g *Group) CloneFD() (fd int, ok bool) {
	if g.host.Kind != V2 || g.dir == nil {
		return -1, false
	}
	return int(g.dir.Fd()), true
}

// JoinThread moves the calling OS thread alone into the group, so that a
// child it starts next is born there: what CLONE_INTO_CGROUP does on v2,
// for a v1 hierarchy, where a cgroup holds threads one by one. back moves
// the thread to the cgroup it came from; the caller keeps the thread
// locked (runtime.LockOSThread) from JoinThread until back has returned,
// and starts the child in between. ok is false, with nothing done, on
// other hosts and where the thread's own cgroup cannot be reopened safely
// (outside the mount, a kernel without openat2): use AddProc there.
//
// The child is in the group from its first page, where AddProc moves it
// in once it runs. Moving a whole process takes the kernel's threadgroup
// lock for writing, which every fork and thread creation on the host
// waits for; writing "0" (the writer itself) to tasks moves one thread,
// which Linux 6.0 and later do without that lock. (qemu's start-up
// measured the same either way on Linux 6.18.)
func (g *Group) JoinThread() (back func() error, ok bool, err error) {
	if g.host.Kind != V1 || g.dir == nil {
		return nil, false, nil
	}
	from, ok, err := g.host.openOwnTasks()
	if !ok || err != nil {
		return nil, false, err
	}
	if err := writeAt(g.dir, "tasks", "0"); err != nil {
		from.Close()
		return nil, false, fmt.Errorf("move the thread that starts qemu into the cgroup of vm %s: %w", g.name, err)
	}
	return func() error {
		defer from.Close()
		if _, err := from.Write([]byte("0")); err != nil {
			return fmt.Errorf("move the thread that started qemu back to %s: %w", filepath.Dir(from.Name()), err)
		}
		return nil
	}, true, nil
}

// openOwnTasks opens the tasks file of the calling thread's cgroup in the
// hierarchy, beneath the mount and never through a symlink; ok false when
// that cannot be done here.
func (h Host) openOwnTasks() (_ *os.File, ok bool, err error) {
	self, err := readFile(filepath.Join(h.root, "proc/thread-self/cgroup"), 64<<10)
	if err != nil {
		return nil, false, fmt.Errorf("the starting thread's cgroup: %w", err)
	}
	cg, err := cgroupPath(self, true)
	if err != nil {
		return nil, false, fmt.Errorf("the starting thread's cgroup: %w", err)
	}
	rel, ok := h.underMount(cg)
	if !ok {
		return nil, false, nil
	}
	m, err := openDir(filepath.Join(h.root, h.Mount))
	if err != nil {
		return nil, false, err
	}
	defer m.Close()
	name := strings.TrimPrefix(path.Join(rel, "tasks"), "/")
	fd, err := unix.Openat2(int(m.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.ENOSYS) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", filepath.Join(m.Name(), name), err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(m.Name(), name)), true, nil
}

// Close releases the directory the group holds open; the cgroup stays.
func (g *Group) Close() error {
	if g.dir == nil {
		return nil
	}
	err := g.dir.Close()
	g.dir = nil
	return err
}

// Create makes the cgroup of VM name, allowed cpus and mems. A directory
// of that name left empty (by a qnuma that died) is taken over; one that
// holds processes is refused (ErrInUse), and so is one another user could
// have made (ErrUnsafe). On V2Systemd hosts the scope starts with the
// first AddProc. Errors: ErrUnsupported on hosts of Kind None, ErrBadInput.
func (h Host) Create(ctx context.Context, name string, cpus, mems cpuset.CPUSet) (*Group, error) {
	if h.Kind == None {
		return nil, fmt.Errorf("create cgroup of vm %s: %w: %s", name, ErrUnsupported, h.Why)
	}
	if err := ledger.ValidateName(name); err != nil {
		return nil, fmt.Errorf("create cgroup: %w: %w", ErrBadInput, err)
	}
	if err := h.checkSets(cpus, mems); err != nil {
		return nil, fmt.Errorf("create cgroup of vm %s: %w", name, err)
	}
	if h.Kind == V2Systemd {
		return h.createScope(ctx, name, cpus, mems)
	}
	g, err := h.createDir(name, cpus, mems)
	if err != nil {
		return nil, fmt.Errorf("create cgroup of vm %s: %w", name, err)
	}
	return g, nil
}

func (h Host) createDir(name string, cpus, mems cpuset.CPUSet) (_ *Group, err error) {
	m, q, err := h.openParents(true)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	defer q.Close()
	made := true
	if err := unix.Mkdirat(int(q.Fd()), name, 0o755); errors.Is(err, unix.EEXIST) {
		made = false
	} else if err != nil {
		return nil, fmt.Errorf("mkdir %s: %w", filepath.Join(q.Name(), name), err)
	}
	d, err := openDirAt(q, name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.Close()
			if made {
				unix.Unlinkat(int(q.Fd()), name, unix.AT_REMOVEDIR)
			}
		}
	}()
	if err := checkOwner(d, h.owner); err != nil {
		return nil, err
	}
	if !made {
		if err := empty(d, "the cgroup of another vm of this name"); err != nil {
			return nil, err
		}
	}
	// v1 wants cpus and mems before memory_migrate and before any task.
	if err := writeAt(d, h.prefix+"cpus", cpus.String()); err != nil {
		return nil, err
	}
	if err := writeAt(d, h.prefix+"mems", mems.String()); err != nil {
		return nil, err
	}
	if h.Kind == V1 {
		if err := writeAt(d, h.prefix+"memory_migrate", "1"); err != nil {
			return nil, err
		}
	}
	return &Group{host: h, name: name, dir: d, cpus: cpus, mems: mems}, nil
}

// openParents opens (and with create, makes and prepares) the mount's
// directory and qnuma's directory under it, each checked.
func (h Host) openParents(create bool) (m, q *os.File, err error) {
	m, err = openDir(filepath.Join(h.root, h.Mount))
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := checkOwner(m, h.owner); err != nil {
		return nil, nil, err
	}
	if create && h.Kind == V2 {
		if err := enableCpuset(m); err != nil {
			return nil, nil, err
		}
	}
	if create {
		if err := unix.Mkdirat(int(m.Fd()), Dir, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, nil, fmt.Errorf("mkdir %s: %w", filepath.Join(m.Name(), Dir), err)
		}
	}
	q, err = openDirAt(m, Dir)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			q.Close()
		}
	}()
	if err := checkOwner(q, h.owner); err != nil {
		return nil, nil, err
	}
	if !create {
		return m, q, nil
	}
	switch h.Kind {
	case V2:
		// A v2 parent with controllers for its children holds no process.
		if err := empty(q, "qnuma's directory of vm cgroups, which must hold none"); err != nil {
			return nil, nil, err
		}
		if err := enableCpuset(q); err != nil {
			return nil, nil, err
		}
	case V1:
		// A v1 cpuset starts with no cpus and no mems, and a child's must
		// be within its parent's: qnuma's gets all of the mount's.
		for _, f := range []string{"cpus", "mems"} {
			b, err := readAt(m, h.prefix+f, maxSmall)
			if err != nil {
				return nil, nil, err
			}
			if err := writeAt(q, h.prefix+f, cpulist.Clean(string(b))); err != nil {
				return nil, nil, err
			}
		}
	}
	return m, q, nil
}

// enableCpuset makes the cpuset controller available to d's children.
func enableCpuset(d *os.File) error {
	b, err := readAt(d, "cgroup.subtree_control", maxSmall)
	if err != nil {
		return err
	}
	if has(strings.Fields(string(b)), "cpuset") {
		return nil
	}
	return writeAt(d, "cgroup.subtree_control", "+cpuset")
}

// empty fails with ErrInUse when the cgroup d holds processes.
func empty(d *os.File, what string) error {
	pids, err := procsOf(d)
	if err != nil {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("%w: %s (%s) holds pids %s", ErrInUse, d.Name(), what, pidList(pids))
	}
	return nil
}

func pidList(pids []int) string {
	var s []string
	for i, p := range pids {
		if i == 8 {
			s = append(s, fmt.Sprintf("and %d more", len(pids)-8))
			break
		}
		s = append(s, strconv.Itoa(p))
	}
	return strings.Join(s, ", ")
}

// checkSets checks cpus and mems are not empty and within what the
// hierarchy offers at its mount.
func (h Host) checkSets(cpus, mems cpuset.CPUSet) error {
	if cpus.IsEmpty() || mems.IsEmpty() {
		return fmt.Errorf("%w: cpus %q and mems %q: both must be given", ErrBadInput, cpus.String(), mems.String())
	}
	availCPUs, availMems, err := h.available()
	if err != nil {
		return err
	}
	if !cpus.IsSubsetOf(availCPUs) {
		return fmt.Errorf("%w: cpus %s are not all among the cpus %s of %s", ErrBadInput, cpus, availCPUs, h.Mount)
	}
	if !mems.IsSubsetOf(availMems) {
		return fmt.Errorf("%w: nodes %s are not all among the nodes %s of %s", ErrBadInput, mems, availMems, h.Mount)
	}
	return nil
}

// available is the CPUs and nodes of the mount's cgroup: on v2 its
// effective sets (the root cgroup has only those), on v1 its own.
func (h Host) available() (cpus, mems cpuset.CPUSet, err error) {
	files := []string{"cpuset.cpus.effective", "cpuset.mems.effective"}
	if h.Kind == V1 {
		files = []string{h.prefix + "cpus", h.prefix + "mems"}
	}
	var sets [2]cpuset.CPUSet
	for i, f := range files {
		p := filepath.Join(h.root, h.Mount, f)
		b, err := readFile(p, maxSmall)
		if err != nil {
			return cpus, mems, err
		}
		if sets[i], err = cpulist.Parse(cpulist.Clean(string(b))); err != nil {
			return cpus, mems, fmt.Errorf("%s: %w", p, err)
		}
	}
	return sets[0], sets[1], nil
}

// Open opens the existing cgroup of VM name (checked as Create checks).
// A missing one wraps fs.ErrNotExist.
func (h Host) Open(ctx context.Context, name string) (*Group, error) {
	if h.Kind == None {
		return nil, fmt.Errorf("open cgroup of vm %s: %w: %s", name, ErrUnsupported, h.Why)
	}
	if err := ledger.ValidateName(name); err != nil {
		return nil, fmt.Errorf("open cgroup: %w: %w", ErrBadInput, err)
	}
	var g *Group
	var err error
	if h.Kind == V2Systemd {
		g, err = h.openScope(ctx, name)
	} else {
		g, err = h.openDir(name)
	}
	if err != nil {
		return nil, fmt.Errorf("open cgroup of vm %s: %w", name, err)
	}
	return g, nil
}

func (h Host) openDir(name string) (*Group, error) {
	m, q, err := h.openParents(false)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	defer q.Close()
	d, err := openDirAt(q, name)
	if err != nil {
		return nil, err
	}
	g := &Group{host: h, name: name, dir: d}
	if err := g.load(); err != nil {
		d.Close()
		return nil, err
	}
	return g, nil
}

// load checks the open directory's owner and reads its cpus and mems.
func (g *Group) load() error {
	if err := checkOwner(g.dir, g.host.owner); err != nil {
		return err
	}
	var err error
	if g.cpus, err = readSet(g.dir, g.host.prefix+"cpus"); err != nil {
		return err
	}
	g.mems, err = readSet(g.dir, g.host.prefix+"mems")
	return err
}

func readSet(d *os.File, name string) (cpuset.CPUSet, error) {
	b, err := readAt(d, name, maxSmall)
	if err != nil {
		return cpuset.CPUSet{}, err
	}
	s, err := cpulist.Parse(cpulist.Clean(string(b)))
	if err != nil {
		return cpuset.CPUSet{}, fmt.Errorf("%s: %w", filepath.Join(d.Name(), name), err)
	}
	return s, nil
}

// Of returns the cgroup the running process pid is in, when it is one
// qnuma made (ErrNotQnuma otherwise): on V2 and V1 hosts ROOT's MOUNT/qnuma/NAME,
// under systemd a scope qnuma-NAME.scope; owned by root either way.
func Of(root string, pid int) (*Group, error) {
	h, err := Detect(root)
	if err != nil {
		return nil, err
	}
	return h.Of(pid)
}

// Of is the package's Of on a host already detected.
func (h Host) Of(pid int) (*Group, error) {
	if h.Kind == None {
		return nil, fmt.Errorf("cgroup of pid %d: %w: %s", pid, ErrUnsupported, h.Why)
	}
	p := filepath.Join(h.root, "/proc", strconv.Itoa(pid), "cgroup")
	b, err := readFile(p, maxSmall)
	if err != nil {
		return nil, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	cg, err := cgroupPath(b, h.Kind == V1)
	if err != nil {
		return nil, fmt.Errorf("cgroup of pid %d: %s: %w", pid, p, err)
	}
	rel, ok := h.underMount(cg)
	if !ok {
		return nil, fmt.Errorf("cgroup of pid %d: %w: %s is outside the hierarchy mounted at %s", pid, ErrNotQnuma, cg, h.Mount)
	}
	notOurs := func(want string) error {
		return fmt.Errorf("cgroup of pid %d: %w: it is in %s, not in %s", pid, ErrNotQnuma, rel, want)
	}
	var g *Group
	if h.Kind == V2Systemd {
		dir, base := path.Split(rel)
		name, ok := strings.CutPrefix(base, "qnuma-")
		name, ok2 := strings.CutSuffix(name, ".scope")
		if !ok || !ok2 || ledger.ValidateName(name) != nil || !strings.HasSuffix(dir, ".slice/") {
			return nil, notOurs("a scope SLICE/qnuma-NAME.scope")
		}
		g, err = h.scopeAt(name, rel)
	} else {
		dir, name := path.Split(rel)
		if dir != "/"+Dir+"/" || ledger.ValidateName(name) != nil {
			return nil, notOurs("/" + Dir + "/NAME")
		}
		g, err = h.openDir(name)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	return g, nil
}

// underMount turns a path of /proc/PID/cgroup into one relative to the
// mount (they differ when the mount is of a sub-tree).
func (h Host) underMount(cg string) (string, bool) {
	cg = path.Clean(cg)
	if h.mountRoot == "/" || h.mountRoot == "" {
		return cg, true
	}
	if cg == h.mountRoot {
		return "/", true
	}
	rest, ok := strings.CutPrefix(cg, h.mountRoot+"/")
	return "/" + rest, ok
}

// Procs lists the pids in the group.
func (g *Group) Procs() ([]int, error) {
	if g.dir == nil {
		return nil, nil
	}
	pids, err := procsOf(g.dir)
	if err != nil {
		return nil, fmt.Errorf("list pids of vm %s: %w", g.name, err)
	}
	return pids, nil
}

// AddProc moves the process pid (all its threads) into the group; the
// kernel moves its pages to the group's nodes on the way. Under systemd
// the first AddProc starts the scope with pid in it.
func (g *Group) AddProc(ctx context.Context, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("add pid %d to cgroup of vm %s: %w: not a pid", pid, g.name, ErrBadInput)
	}
	var err error
	if g.host.Kind == V2Systemd {
		err = g.addToScope(ctx, pid)
	} else if g.dir == nil {
		err = fs.ErrClosed
	} else {
		err = writeAt(g.dir, "cgroup.procs", strconv.Itoa(pid))
	}
	if err != nil {
		return fmt.Errorf("add pid %d to cgroup of vm %s: %w", pid, g.name, err)
	}
	return nil
}

// SetMems sets the group's nodes. The kernel migrates the tasks' pages to
// them (on v2 always, on v1 through memory_migrate=1) before the write
// returns, rebinds their policies by position (see the package's doc),
// and holds later allocations to mems. It returns how long that took.
func (g *Group) SetMems(ctx context.Context, mems cpuset.CPUSet) (time.Duration, error) {
	if err := g.host.checkSets(g.cpus, mems); err != nil {
		return 0, fmt.Errorf("set nodes of vm %s: %w", g.name, err)
	}
	start := time.Now()
	err := g.set(ctx, "mems", "AllowedMemoryNodes", mems)
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("set nodes of vm %s to %s: %w", g.name, mems, err)
	}
	g.mems = mems
	return took, nil
}

// SetCPUs sets the group's CPUs. The kernel resets every task's affinity
// to them: re-pin the VM's threads after.
func (g *Group) SetCPUs(ctx context.Context, cpus cpuset.CPUSet) error {
	if err := g.host.checkSets(cpus, g.mems); err != nil {
		return fmt.Errorf("set cpus of vm %s: %w", g.name, err)
	}
	if err := g.set(ctx, "cpus", "AllowedCPUs", cpus); err != nil {
		return fmt.Errorf("set cpus of vm %s to %s: %w", g.name, cpus, err)
	}
	g.cpus = cpus
	return nil
}

// set writes cpuset.FILE, or has systemd set PROPERTY of the scope.
func (g *Group) set(ctx context.Context, file, property string, s cpuset.CPUSet) error {
	if g.host.Kind == V2Systemd {
		return g.setScope(ctx, file, property, s)
	}
	if g.dir == nil {
		return fs.ErrClosed
	}
	return writeAt(g.dir, g.host.prefix+file, s.String())
}

// Remove removes the group once it holds no process (ErrInUse while it
// does); under systemd it stops the scope if it still runs. A group
// already gone is no error.
func (g *Group) Remove(ctx context.Context) error {
	if err := g.remove(ctx); err != nil {
		return fmt.Errorf("remove cgroup of vm %s: %w", g.name, err)
	}
	return nil
}

func (g *Group) remove(ctx context.Context) error {
	if g.dir != nil {
		if err := empty(g.dir, "vm "+g.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if g.host.Kind == V2Systemd {
		if err := g.stopScope(ctx); err != nil {
			return err
		}
		return g.Close()
	}
	m, q, err := g.host.openParents(false)
	if err != nil {
		return err
	}
	defer m.Close()
	defer q.Close()
	err = unix.Unlinkat(int(q.Fd()), g.name, unix.AT_REMOVEDIR)
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w: rmdir %s: %w (a process joined, or it has child cgroups)", ErrInUse, filepath.Join(q.Name(), g.name), err)
	case err != nil && !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("rmdir %s: %w", filepath.Join(q.Name(), g.name), err)
	}
	return g.Close()
}
