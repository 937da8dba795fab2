package vmcgroup

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

// fakeHost detects the copy of testdata/TREE at root, with the copy's
// owner (this user) standing in for root.
func fakeHost(t *testing.T, root string) Host {
	t.Helper()
	h, err := detect(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.owner = uint32(os.Geteuid())
	return h
}

// kernelDirs makes qnuma's directory and VM name's, with the control files
// the kernel would make in them, empty: a regular filesystem makes none.
func kernelDirs(t *testing.T, root string, h Host, name string) (q, vm string) {
	t.Helper()
	q = filepath.Join(root, h.Mount, Dir)
	vm = filepath.Join(q, name)
	files := []string{"cgroup.procs", h.prefix + "cpus", h.prefix + "mems"}
	qFiles := []string{"cgroup.procs", "cgroup.subtree_control"}
	if h.Kind == V1 {
		files = append(files, h.prefix+"memory_migrate")
		qFiles = []string{"cgroup.procs", h.prefix + "cpus", h.prefix + "mems"}
	}
	for _, f := range qFiles {
		write(t, filepath.Join(q, f), "")
	}
	for _, f := range files {
		write(t, filepath.Join(vm, f), "")
	}
	return q, vm
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func set(ids ...int) cpuset.CPUSet { return cpuset.New(ids...) }

// Create writes what each kind of host needs, in place of the kernel's
// files: v2 enables cpuset in both parents; v1 gives qnuma's directory its
// parent's cpus and mems and sets memory_migrate.
func TestCreateWrites(t *testing.T) {
	for _, tc := range []struct {
		tree string
		want map[string]string // path under the mount: content
	}{
		{"v2", map[string]string{
			"cgroup.subtree_control":       "+cpuset",
			"qnuma/cgroup.subtree_control": "+cpuset",
			"qnuma/vm1/cpuset.cpus":        "1-2",
			"qnuma/vm1/cpuset.mems":        "1",
		}},
		{"v1-hybrid", map[string]string{
			"qnuma/cpuset.cpus":               "0-1",
			"qnuma/cpuset.mems":               "0",
			"qnuma/vm1/cpuset.cpus":           "1",
			"qnuma/vm1/cpuset.mems":           "0",
			"qnuma/vm1/cpuset.memory_migrate": "1",
		}},
		{"v1-noprefix", map[string]string{
			"qnuma/cpus":               "0-7",
			"qnuma/mems":               "0-1",
			"qnuma/vm1/cpus":           "1-2",
			"qnuma/vm1/mems":           "1",
			"qnuma/vm1/memory_migrate": "1",
		}},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			root := copyTree(t, tc.tree)
			h := fakeHost(t, root)
			kernelDirs(t, root, h, "vm1")
			cpus, mems := set(1, 2), set(1)
			if h.Kind == V1 && h.prefix != "" {
				cpus, mems = set(1), set(0)
			}
			g, err := h.Create(context.Background(), "vm1", cpus, mems)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			for p, want := range tc.want {
				if got := read(t, filepath.Join(root, h.Mount, p)); got != want {
					t.Errorf("%s: %q, want %q", p, got, want)
				}
			}
			if g.Dir() != filepath.Join(root, h.Mount, "qnuma/vm1") || !g.CPUs().Equals(cpus) || !g.Mems().Equals(mems) {
				t.Errorf("group %s cpus %s mems %s", g.Dir(), g.CPUs(), g.Mems())
			}
			_, born := g.CloneFD()
			if born != (h.Kind == V2) {
				t.Errorf("CloneFD ok %v on %s", born, h.Kind)
			}
		})
	}
}

// A directory Create made and could not finish is removed again.
func TestCreateCleansUp(t *testing.T) {
	root := copyTree(t, "v2")
	h := fakeHost(t, root)
	q, vm := kernelDirs(t, root, h, "other")
	_ = vm
	// vm1 does not exist: mkdir makes it, with no cpuset.cpus to write.
	_, err := h.Create(context.Background(), "vm1", set(0), set(0))
	if err == nil || !strings.Contains(err.Error(), "cpuset.cpus") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(q, "vm1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("vm1 left behind: %v", err)
	}
}

// Every refusal leaves the VM's directory as it was.
func TestCreateRefuses(t *testing.T) {
	asRoot := func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("SKIP: needs root to give a file to another user")
		}
	}
	for _, tc := range []struct {
		name       string
		tree       string
		setup      func(t *testing.T, q, vm string)
		vm         string
		cpus, mems string // "" for 0-1 and 0, "none" for empty
		err        error
		msg        string
	}{
		{name: "empty name", vm: "", err: ErrBadInput, msg: "want 1-64 letters"},
		{name: "path in name", vm: "../x", err: ErrBadInput},
		{name: "slash in name", vm: "a/b", err: ErrBadInput},
		{name: "dot first", vm: ".x", err: ErrBadInput},
		{name: "too long", vm: strings.Repeat("a", 65), err: ErrBadInput},
		{name: "no cpus", cpus: "none", err: ErrBadInput, msg: "both must be given"},
		{name: "no mems", mems: "none", err: ErrBadInput},
		{name: "cpus outside", cpus: "4", err: ErrBadInput, msg: "cpus 4 are not all among the cpus 0-3 of /sys/fs/cgroup"},
		{name: "nodes outside", mems: "0,2", err: ErrBadInput, msg: "nodes 0,2 are not all among the nodes 0-1"},
		{name: "v1 cpus outside", tree: "v1-hybrid", cpus: "1-2", err: ErrBadInput, msg: "not all among the cpus 0-1 of /sys/fs/cgroup/cpuset"},
		{name: "no cpuset controller", tree: "v2-nocpuset", err: ErrUnsupported, msg: "cgroup v2 without the cpuset controller"},
		{name: "no cgroups", tree: "none", err: ErrUnsupported, msg: "no cgroup filesystem"},
		{name: "vm dir holds a process", setup: func(t *testing.T, q, vm string) {
			write(t, filepath.Join(vm, "cgroup.procs"), "4242\n")
		}, err: ErrInUse, msg: "holds pids 4242"},
		{name: "v1 vm dir holds a process", tree: "v1-hybrid", cpus: "0", setup: func(t *testing.T, q, vm string) {
			write(t, filepath.Join(vm, "cgroup.procs"), "1\n2\n")
		}, err: ErrInUse, msg: "holds pids 1, 2"},
		{name: "qnuma dir holds a process", setup: func(t *testing.T, q, vm string) {
			write(t, filepath.Join(q, "cgroup.procs"), "7\n")
		}, err: ErrInUse, msg: "qnuma's directory of vm cgroups, which must hold none"},
		{name: "vm dir writable by others", setup: func(t *testing.T, q, vm string) { os.Chmod(vm, 0o777) }, err: ErrUnsafe, msg: "writable by group or others (mode 0777)"},
		{name: "qnuma dir writable by group", setup: func(t *testing.T, q, vm string) { os.Chmod(q, 0o775) }, err: ErrUnsafe},
		{name: "vm dir a symlink", setup: func(t *testing.T, q, vm string) {
			os.Rename(vm, vm+".elsewhere")
			os.Symlink("vm1.elsewhere", vm)
		}, err: ErrUnsafe, msg: "is a symlink (never followed)"},
		{name: "qnuma dir a symlink", setup: func(t *testing.T, q, vm string) {
			os.Rename(q, q+".elsewhere")
			os.Symlink("qnuma.elsewhere", q)
		}, err: ErrUnsafe, msg: "is a symlink"},
		{name: "qnuma a file", setup: func(t *testing.T, q, vm string) {
			os.RemoveAll(q)
			write(t, q, "")
		}, err: ErrUnsafe, msg: "is not a directory"},
		{name: "vm dir of another user", setup: func(t *testing.T, q, vm string) {
			asRoot(t)
			os.Chown(vm, 65534, 65534)
		}, err: ErrUnsafe, msg: "is owned by uid 65534"},
		{name: "qnuma dir of another user", setup: func(t *testing.T, q, vm string) {
			asRoot(t)
			os.Chown(q, 65534, 65534)
		}, err: ErrUnsafe, msg: "is owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := tc.tree
			if tree == "" {
				tree = "v2"
			}
			root := copyTree(t, tree)
			h := fakeHost(t, root)
			q, vm := filepath.Join(root, "q"), filepath.Join(root, "q", "vm1")
			if h.Kind != None {
				q, vm = kernelDirs(t, root, h, "vm1")
			}
			if tc.setup != nil {
				tc.setup(t, q, vm)
			}
			name := "vm1"
			if tc.vm != "" || strings.Contains(tc.name, "name") {
				name = tc.vm
			}
			cpus, mems := parse(t, tc.cpus, "0-1"), parse(t, tc.mems, "0")
			g, err := h.Create(context.Background(), name, cpus, mems)
			if !errors.Is(err, tc.err) || !strings.Contains(errString(err), tc.msg) {
				t.Fatalf("got %v (group %v), want %v with %q", err, g, tc.err, tc.msg)
			}
			if h.Kind == None {
				return
			}
			for _, f := range []string{h.prefix + "cpus", h.prefix + "mems"} {
				if b, err := os.ReadFile(filepath.Join(vm, f)); err == nil && len(b) > 0 {
					t.Errorf("%s was written: %q", f, b)
				}
			}
		})
	}
}

func parse(t *testing.T, s, def string) cpuset.CPUSet {
	switch s {
	case "":
		s = def
	case "none":
		s = ""
	}
	c, err := cpuset.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A cgroup.procs that is not one pid per line is an error, never empty.
func TestParseProcs(t *testing.T) {
	if pids, err := parseProcs([]byte("1\n 23\n\n")); err != nil || len(pids) != 2 || pids[1] != 23 {
		t.Errorf("got %v, %v", pids, err)
	}
	for _, bad := range []string{"x\n", "-1\n", "0\n", "1 2\n"} {
		if _, err := parseProcs([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Of finds the group of a pid from /proc/PID/cgroup and opens it checked;
// a pid elsewhere is ErrNotQnuma.
func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tree   string
		cgroup string
		setup  func(t *testing.T, vm string)
		want   string // vm name
		err    error
		msg    string
	}{
		{name: "v2", tree: "v2", cgroup: "0::/qnuma/vm1\n", want: "vm1"},
		{name: "v1", tree: "v1-hybrid", cgroup: "4:memory:/x\n3:cpuset:/qnuma/vm1\n0::/\n", want: "vm1"},
		{name: "v1 noprefix", tree: "v1-noprefix", cgroup: "1:cpuset:/qnuma/vm1\n", want: "vm1"},
		{name: "v2 elsewhere", tree: "v2", cgroup: "0::/user.slice/session-1.scope\n", err: ErrNotQnuma, msg: "it is in /user.slice/session-1.scope, not in /qnuma/NAME"},
		{name: "v2 qnuma itself", tree: "v2", cgroup: "0::/qnuma\n", err: ErrNotQnuma},
		{name: "v2 below a vm", tree: "v2", cgroup: "0::/qnuma/vm1/vcpu0\n", err: ErrNotQnuma},
		{name: "v2 dots", tree: "v2", cgroup: "0::/qnuma/../vm1\n", err: ErrNotQnuma},
		{name: "v2 bad name", tree: "v2", cgroup: "0::/qnuma/.vm1\n", err: ErrNotQnuma},
		{name: "v1 line of v2", tree: "v1-hybrid", cgroup: "0::/qnuma/vm1\n", msg: "no line for the cpuset hierarchy"},
		{name: "vm dir of another user", tree: "v2", cgroup: "0::/qnuma/vm1\n", setup: func(t *testing.T, vm string) {
			if os.Geteuid() != 0 {
				t.Skip("SKIP: needs root to give a file to another user")
			}
			os.Chown(vm, 65534, 0)
		}, err: ErrUnsafe, msg: "owned by uid 65534"},
		{name: "systemd scope", tree: "v2-systemd", cgroup: "0::/machine.slice/qnuma-vm1.scope\n", want: "vm1"},
		{name: "systemd other scope", tree: "v2-systemd", cgroup: "0::/machine.slice/libvirt-vm1.scope\n", err: ErrNotQnuma, msg: "not in a scope SLICE/qnuma-NAME.scope"},
		{name: "systemd plain dir", tree: "v2-systemd", cgroup: "0::/qnuma/vm1\n", err: ErrNotQnuma},
		{name: "no cpuset", tree: "v2-nocpuset", cgroup: "0::/qnuma/vm1\n", err: ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := copyTree(t, tc.tree)
			h := fakeHost(t, root)
			vm := filepath.Join(root, "x")
			if h.Kind == V2Systemd {
				vm = filepath.Join(root, h.Mount, "machine.slice/qnuma-vm1.scope")
				write(t, filepath.Join(vm, "cpuset.cpus"), "2-3\n")
				write(t, filepath.Join(vm, "cpuset.mems"), "1\n")
			} else if h.Kind != None {
				_, vm = kernelDirs(t, root, h, "vm1")
				write(t, filepath.Join(vm, h.prefix+"cpus"), "2-3\n")
				write(t, filepath.Join(vm, h.prefix+"mems"), "1\n")
			}
			write(t, filepath.Join(root, "proc/4242/cgroup"), tc.cgroup)
			if tc.setup != nil {
				tc.setup(t, vm)
			}
			g, err := h.Of(4242)
			if tc.want == "" {
				if err == nil || !errors.Is(err, tc.err) && tc.err != nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("got %v, want %v with %q", err, tc.err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.Name() != tc.want || g.Dir() != vm || g.CPUs().String() != "2-3" || g.Mems().String() != "1" {
				t.Errorf("got %s in %s, cpus %s, mems %s", g.Name(), g.Dir(), g.CPUs(), g.Mems())
			}
			if h.Kind == V2Systemd && g.Unit() != "qnuma-vm1.scope" {
				t.Errorf("unit %q", g.Unit())
			}
		})
	}
}

// Remove refuses a group that still holds a process, and leaves it.
func TestRemoveRefusesInUse(t *testing.T) {
	for _, tree := range []string{"v2", "v1-hybrid"} {
		root := copyTree(t, tree)
		h := fakeHost(t, root)
		_, vm := kernelDirs(t, root, h, "vm1")
		g, err := h.Create(context.Background(), "vm1", set(0), set(0))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(vm, "cgroup.procs"), "99\n")
		if err := g.Remove(context.Background()); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "holds pids 99") {
			t.Errorf("%s: got %v", tree, err)
		}
		if _, err := os.Stat(vm); err != nil {
			t.Errorf("%s: %v", tree, err)
		}
		g.Close()
	}
}

// SetMems and SetCPUs check the new set as Create does, and write nothing
// when it is refused.
func TestSetRefuses(t *testing.T) {
	root := copyTree(t, "v2")
	h := fakeHost(t, root)
	_, vm := kernelDirs(t, root, h, "vm1")
	g, err := h.Create(context.Background(), "vm1", set(0), set(0))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.SetMems(context.Background(), set(2)); !errors.Is(err, ErrBadInput) {
		t.Errorf("SetMems 2: %v", err)
	}
	if _, err := g.SetMems(context.Background(), set()); !errors.Is(err, ErrBadInput) {
		t.Errorf("SetMems empty: %v", err)
	}
	if err := g.SetCPUs(context.Background(), set(9)); !errors.Is(err, ErrBadInput) {
		t.Errorf("SetCPUs 9: %v", err)
	}
	if got := read(t, filepath.Join(vm, "cpuset.mems")) + read(t, filepath.Join(vm, "cpuset.cpus")); got != "00" {
		t.Errorf("files %q", got)
	}
	if _, err := g.SetMems(context.Background(), set(1)); err != nil || read(t, filepath.Join(vm, "cpuset.mems")) != "1" || !g.Mems().Equals(set(1)) {
		t.Errorf("SetMems 1: %v", err)
	}
	if err := g.AddProc(context.Background(), 0); !errors.Is(err, ErrBadInput) {
		t.Errorf("AddProc 0: %v", err)
	}
}

// Open finds a group by name, checked as Create checks; a missing one is
// fs.ErrNotExist, and nothing is made.
func TestOpen(t *testing.T) {
	root := copyTree(t, "v2")
	h := fakeHost(t, root)
	ctx := context.Background()
	if _, err := h.Open(ctx, "vm1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no qnuma dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, h.Mount, Dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open made %s: %v", Dir, err)
	}
	q, vm := kernelDirs(t, root, h, "vm1")
	write(t, filepath.Join(vm, "cpuset.cpus"), "0-1\n")
	write(t, filepath.Join(vm, "cpuset.mems"), "1\n")
	g, err := h.Open(ctx, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	if g.Dir() != vm || g.CPUs().String() != "0-1" || g.Mems().String() != "1" {
		t.Errorf("got %s cpus %s mems %s", g.Dir(), g.CPUs(), g.Mems())
	}
	g.Close()
	if _, err := h.Open(ctx, "vm2"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("vm2: %v", err)
	}
	if _, err := h.Open(ctx, "../vm1"); !errors.Is(err, ErrBadInput) {
		t.Errorf("../vm1: %v", err)
	}
	write(t, filepath.Join(vm, "cpuset.mems"), "0-4294967297\n")
	if _, err := h.Open(ctx, "vm1"); err == nil {
		t.Errorf("a huge cpuset.mems was read")
	}
	os.Chmod(q, 0o777)
	if _, err := h.Open(ctx, "vm1"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("qnuma dir 0777: %v", err)
	}
}
