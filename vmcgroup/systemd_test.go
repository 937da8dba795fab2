package vmcgroup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// No systemd runs on the machines these tests run on: fakeSystemd puts a
// busctl and a systemctl first on PATH that log their arguments and act
// as systemd would on the fake tree FAKE_ROOT (a scope's cgroup with the
// pid in it, cpuset files written by set-property). The tests check the
// commands qnuma runs, word for word, and what it does with the answers.
const fakeScript = `#!/bin/sh
echo "$(basename "$0") $*" >>"$FAKE_LOG"
cg="$FAKE_ROOT/sys/fs/cgroup/machine.slice"
case "$(basename "$0") $1" in
"systemctl is-active")
	echo "${FAKE_STATE:-inactive}"
	[ "${FAKE_STATE:-inactive}" = active ] || exit 3 ;;
"systemctl show")
	[ -d "$cg/$4" ] && echo "/machine.slice/$4" || echo ;;
"systemctl set-property")
	[ -n "${FAKE_IGNORE:-}" ] && exit 0
	case $4 in
	AllowedMemoryNodes=*) echo "${4#*=}" >"$cg/$3/cpuset.mems" ;;
	AllowedCPUs=*) echo "${4#*=}" >"$cg/$3/cpuset.cpus" ;;
	esac ;;
"systemctl stop") ;;
"busctl call")
	case $5 in
	StartTransientUnit)
		if [ -n "${FAKE_FAIL:-}" ]; then echo "$FAKE_FAIL" >&2; exit 1; fi
		pid=$(echo "$*" | sed 's/.* PIDs au 1 \([0-9]*\) .*/\1/')
		mkdir -p "$cg/$7" "$FAKE_ROOT/proc/$pid"
		echo "$pid" >"$cg/$7/cgroup.procs"
		echo "$FAKE_CPUS" >"$cg/$7/cpuset.cpus"
		echo "$FAKE_MEMS" >"$cg/$7/cpuset.mems"
		if [ -n "${FAKE_NOMOVE:-}" ]; then
			echo "0::/user.slice" >"$FAKE_ROOT/proc/$pid/cgroup"
		else
			echo "0::/machine.slice/$7" >"$FAKE_ROOT/proc/$pid/cgroup"
		fi
		echo 'o "/org/freedesktop/systemd1/job/42"' ;;
	AttachProcessesToUnit) ;;
	esac ;;
esac
`

type fakeSystemd struct {
	root, log string
}

func newFakeSystemd(t *testing.T) (*fakeSystemd, Host) {
	t.Helper()
	root := copyTree(t, "v2-systemd")
	bin := t.TempDir()
	for _, n := range []string{"busctl", "systemctl"} {
		if err := os.WriteFile(filepath.Join(bin, n), []byte(fakeScript), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := &fakeSystemd{root: root, log: filepath.Join(t.TempDir(), "log")}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("FAKE_LOG", f.log)
	t.Setenv("FAKE_ROOT", root)
	t.Setenv("FAKE_CPUS", "2-3")
	t.Setenv("FAKE_MEMS", "0")
	h := fakeHost(t, root)
	if h.Kind != V2Systemd {
		t.Fatalf("kind %s", h.Kind)
	}
	return f, h
}

// calls returns the commands run since the last call, one per line.
func (f *fakeSystemd) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(f.log)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func expectCalls(t *testing.T, f *fakeSystemd, step string, want ...string) {
	t.Helper()
	got := f.calls(t)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s ran:\n  %s\nwant:\n  %s", step, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const manager = "busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager "

func TestSystemdScope(t *testing.T) {
	f, h := newFakeSystemd(t)
	ctx := context.Background()
	g, err := h.Create(ctx, "vm1", set(2, 3), set(0))
	if err != nil {
		t.Fatal(err)
	}
	expectCalls(t, f, "Create", "systemctl is-active qnuma-vm1.scope")
	if _, ok := g.CloneFD(); ok || g.Dir() != "" || g.Unit() != "qnuma-vm1.scope" {
		t.Errorf("before its first process: dir %q, unit %q, CloneFD ok %v", g.Dir(), g.Unit(), ok)
	}
	if err := g.AddProc(ctx, 4242); err != nil {
		t.Fatal(err)
	}
	expectCalls(t, f, "the first AddProc", manager+"StartTransientUnit ssa(sv)a(sa(sv)) qnuma-vm1.scope fail 7 "+
		"Description s qnuma vm vm1 Slice s machine.slice Delegate b true CollectMode s inactive-or-failed "+
		"PIDs au 1 4242 AllowedCPUs ay 1 12 AllowedMemoryNodes ay 1 1 0")
	scope := filepath.Join(f.root, "sys/fs/cgroup/machine.slice/qnuma-vm1.scope")
	if g.Dir() != scope {
		t.Errorf("dir %q, want %q", g.Dir(), scope)
	}
	if err := g.AddProc(ctx, 4243); err != nil {
		t.Fatal(err)
	}
	expectCalls(t, f, "the second AddProc", manager+"AttachProcessesToUnit ssau qnuma-vm1.scope  1 4243")
	if took, err := g.SetMems(ctx, set(1)); err != nil || took <= 0 {
		t.Fatalf("SetMems: %v, %v", took, err)
	}
	if err := g.SetCPUs(ctx, set(0, 1)); err != nil {
		t.Fatal(err)
	}
	expectCalls(t, f, "SetMems, SetCPUs",
		"systemctl set-property --runtime qnuma-vm1.scope AllowedMemoryNodes=1",
		"systemctl set-property --runtime qnuma-vm1.scope AllowedCPUs=0-1")
	o, err := h.Open(ctx, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	expectCalls(t, f, "Open", "systemctl show --property=ControlGroup --value qnuma-vm1.scope")
	if o.Dir() != scope || o.Mems().String() != "1" || o.CPUs().String() != "0-1" {
		t.Errorf("Open: %s cpus %s mems %s", o.Dir(), o.CPUs(), o.Mems())
	}
	o.Close()
	// Stopping a scope kills what is in it: never while a process is.
	if err := g.Remove(ctx); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove with pid 4242 inside: %v", err)
	}
	expectCalls(t, f, "Remove in use")
	write(t, filepath.Join(scope, "cgroup.procs"), "")
	t.Setenv("FAKE_STATE", "active")
	if err := g.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	expectCalls(t, f, "Remove", "systemctl is-active qnuma-vm1.scope", "systemctl stop qnuma-vm1.scope")
}

func TestSystemdRefuses(t *testing.T) {
	ctx := context.Background()
	t.Run("a scope of that name runs", func(t *testing.T) {
		_, h := newFakeSystemd(t)
		t.Setenv("FAKE_STATE", "active")
		if _, err := h.Create(ctx, "vm1", set(0), set(0)); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "systemd unit qnuma-vm1.scope is active") {
			t.Errorf("got %v", err)
		}
	})
	start := func(t *testing.T, h Host) *Group {
		g, err := h.Create(ctx, "vm1", set(2, 3), set(0))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	t.Run("busctl fails", func(t *testing.T) {
		_, h := newFakeSystemd(t)
		t.Setenv("FAKE_FAIL", "Call failed: Unit qnuma-vm1.scope was already loaded or has a fragment file.")
		if err := start(t, h).AddProc(ctx, 4242); err == nil || !strings.Contains(err.Error(), "start scope qnuma-vm1.scope: busctl call") || !strings.Contains(err.Error(), "already loaded") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("systemd ignores AllowedCPUs", func(t *testing.T) {
		_, h := newFakeSystemd(t)
		t.Setenv("FAKE_CPUS", "0-3")
		if err := start(t, h).AddProc(ctx, 4242); err == nil || !strings.Contains(err.Error(), "has cpus 0-3 and nodes 0, not 2-3 and 0") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("the pid never arrives", func(t *testing.T) {
		_, h := newFakeSystemd(t)
		t.Setenv("FAKE_NOMOVE", "1")
		// Room for the fake busctl (a shell script) to run on a loaded
		// machine: only the wait for the pid may run out.
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := start(t, h).AddProc(ctx, 4242); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still in /user.slice") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("set-property does nothing", func(t *testing.T) {
		_, h := newFakeSystemd(t)
		g := start(t, h)
		if err := g.AddProc(ctx, 4242); err != nil {
			t.Fatal(err)
		}
		t.Setenv("FAKE_IGNORE", "1")
		if _, err := g.SetMems(ctx, set(1)); err == nil || !strings.Contains(err.Error(), "has cpuset.mems 0") || !g.Mems().Equals(set(0)) {
			t.Errorf("got %v, mems %s", err, g.Mems())
		}
	})
	t.Run("no scope to open", func(t *testing.T) {
		_, h := newFakeSystemd(t)
		if _, err := h.Open(ctx, "vm1"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v", err)
		}
	})
}

func TestBitmask(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, "ay 0"},
		{[]int{0}, "ay 1 1"},
		{[]int{0, 1, 2, 3}, "ay 1 15"},
		{[]int{7, 8}, "ay 2 128 1"},
		{[]int{9}, "ay 2 0 2"},
		{[]int{63}, "ay 8 0 0 0 0 0 0 0 128"},
	} {
		if got := strings.Join(bitmask(set(tc.in...)), " "); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.in, got, tc.want)
		}
	}
}
