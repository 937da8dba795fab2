package ledger

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qnuma/qnuma/plan"
)

const nobody = 65534

// requireRoot skips tests that act as another user through runuser.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to act as another user (runuser -u nobody)")
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		t.Skip("needs runuser, to act as another user")
	}
}

// openDir is a temporary directory other users may enter (t.TempDir's
// parents are private), removed when the test ends.
func openDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "qnuma-ledger-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestOpenAndListCreateNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.List(context.Background())
	if err != nil || len(st.Entries) != 0 {
		t.Fatalf("List of a missing ledger = %+v, %v; want empty", st, err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open and List made %s: %v", dir, err)
	}
	if _, err := l.Place(context.Background(), "a", fixed(onePlan(0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), dirMode(os.Geteuid()); got != want {
		t.Errorf("new ledger dir mode %04o, want %04o", got, want)
	}
	lf, err := os.Stat(l.lockPath())
	if err != nil || lf.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, mode %v; want 0600", err, lf.Mode())
	}
}

func TestDirMode(t *testing.T) {
	if dirMode(0) != 0o755 || dirMode(1000) != 0o700 {
		t.Errorf("dir modes root %04o, user %04o; want 0755 (ps for all) and 0700", dirMode(0), dirMode(1000))
	}
}

// A state directory another user could change is refused, by Place and
// List alike, with what is wrong and what to do (issue 11, items 4, 24).
func TestUnsafeDirRefused(t *testing.T) {
	me := os.Geteuid()
	tests := []struct {
		name      string
		make      func(t *testing.T, dir string)
		listOK    bool // may still be read (List)
		placeWant string
	}{
		{"mode 0777", func(t *testing.T, dir string) { mkdir(t, dir, 0o777) }, false, "writable by group or others (mode 0777)"},
		{"group-writable", func(t *testing.T, dir string) { mkdir(t, dir, 0o770) }, false, "writable by group or others"},
		{"sticky world-writable", func(t *testing.T, dir string) { mkdir(t, dir, 0o1777) }, false, "writable by group or others"},
		{"dangling symlink", func(t *testing.T, dir string) {
			if err := os.Symlink(dir+"-gone", dir); err != nil {
				t.Fatal(err)
			}
		}, false, "is a dangling symlink"},
		{"regular file", func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false, "is not a directory"},
	}
	if me == 0 {
		tests = append(tests, struct {
			name      string
			make      func(t *testing.T, dir string)
			listOK    bool
			placeWant string
		}{"owned by nobody", func(t *testing.T, dir string) {
			mkdir(t, dir, 0o700)
			if err := os.Chown(dir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}, false, "is owned by uid 65534 (nobody), not by you (uid 0"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "qnuma")
			tt.make(t, dir)
			l, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Place(context.Background(), "a", fixed(onePlan(0, 1, 0)))
			if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), tt.placeWant) ||
				!strings.Contains(err.Error(), "XDG_RUNTIME_DIR") || strings.Contains(err.Error(), "file exists") {
				t.Errorf("Place: %v\nwant ErrUnsafeDir saying %q and what to do", err, tt.placeWant)
			}
			if _, err := os.Lstat(filepath.Join(dir, "a.json")); err == nil {
				t.Errorf("Place wrote an entry into a refused dir")
			}
			if _, err := l.List(context.Background()); (err == nil) != tt.listOK {
				t.Errorf("List: %v, want refused %v", err, !tt.listOK)
			}
		})
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// A symlink of this user's to a directory of this user's is followed.
func TestDirSymlinkToOwnDir(t *testing.T) {
	real := filepath.Join(t.TempDir(), "real")
	mkdir(t, real, 0o700)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	l, _ := Open(link)
	if _, err := l.Place(context.Background(), "a", fixed(onePlan(0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(real, "a.json")); err != nil {
		t.Errorf("entry not in the link's target: %v", err)
	}
}

// Another user can neither open the lock to hold it (issue 11, item 1) nor
// write the ledger, but can list root's (item 24). The negative control: a
// lock of mode 0644, as qnuma made it before, is held by nobody at once.
func TestOtherUserAndTheLock(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(openDir(t), "qnuma")
	l, _ := Open(dir)
	if _, err := l.Place(context.Background(), "a", fixed(onePlan(0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) (string, error) {
		out, err := exec.Command("runuser", append([]string{"-u", "nobody", "--"}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := asNobody("flock", "-n", l.lockPath(), "true"); err == nil || !strings.Contains(out, "ermission denied") {
		t.Errorf("nobody took the ledger lock: %v %s", err, out)
	}
	if out, err := asNobody("cat", filepath.Join(dir, "a.json")); err != nil {
		t.Errorf("nobody cannot read root's entry (qnuma ps for all): %v %s", err, out)
	}
	if out, err := asNobody("touch", filepath.Join(dir, "planted.json")); err == nil {
		t.Errorf("nobody planted an entry in root's ledger: %s", out)
	}

	// Negative control: the old 0644 lock lets nobody hold it.
	if err := os.Chmod(l.lockPath(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := asNobody("flock", "-n", l.lockPath(), "true"); err != nil {
		t.Fatalf("control: nobody could not take a 0644 lock (%v %s), so the check above proves nothing", err, out)
	}
	// qnuma makes such a lock private again.
	if _, err := l.Place(context.Background(), "b", fixed(onePlan(0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(l.lockPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock after Place: %v, mode %v; want 0600", err, fi.Mode())
	}
	if out, err := asNobody("flock", "-n", l.lockPath(), "true"); err == nil {
		t.Errorf("nobody took the lock qnuma made private: %s", out)
	}
}

// A lock owned by another user, or a symlink as the lock, is refused.
func TestLockFileRefused(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"symlink", func(t *testing.T, path string) {
			if err := os.Symlink("/etc/passwd", path); err != nil {
				t.Fatal(err)
			}
		}, "symlink as its lock file"},
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			name string
			make func(t *testing.T, path string)
			want string
		}{"owned by nobody", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := open(t)
			tt.make(t, l.lockPath())
			_, err := l.Place(context.Background(), "a", fixed(onePlan(0, 1, 0)))
			if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Place: %v, want ErrUnsafeDir saying %q", err, tt.want)
			}
		})
	}
	if fi, err := os.Stat("/etc/passwd"); err == nil && fi.Mode().Perm() != 0o644 {
		t.Errorf("/etc/passwd mode changed to %v", fi.Mode())
	}
}

// A lock held by someone else makes Place say what it waits for, then give
// up with an error naming the lock (issue 11, item 1).
func TestLockWaitIsBounded(t *testing.T) {
	l := open(t)
	if _, err := l.Place(context.Background(), "a", fixed(onePlan(0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	other, _ := Open(l.Dir())
	held, err := other.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var told []string
	// A bound far past the notice: a stalled test never sees both due at once.
	l.lockNotice, l.LockTimeout = time.Millisecond, 2*time.Second
	l.OnLockWait = func(p string) { told = append(told, p) }
	_, err = l.Place(context.Background(), "b", fixed(onePlan(0, 1, 1)))
	if !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), l.lockPath()) {
		t.Errorf("Place with the lock held: %v, want ErrLockTimeout naming %s", err, l.lockPath())
	}
	if len(told) != 1 || told[0] != l.lockPath() {
		t.Errorf("OnLockWait told %q, want the lock path once", told)
	}
	// List needs no lock.
	if st, err := l.List(context.Background()); err != nil || len(st.Entries) != 1 {
		t.Errorf("List with the lock held: %+v, %v", st, err)
	}
	held()
	if _, err := l.Place(context.Background(), "b", fixed(onePlan(0, 1, 1))); err != nil {
		t.Errorf("Place once the lock is free: %v", err)
	}
}

// Symlinks, FIFOs, directories and oversized files among the entries are
// corrupt entries: listed, quarantined by Place, never followed, never
// blocking (issue 11, item 16); so is an entry whose cpu list is huge
// (item 15).
func TestStrangeEntries(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	if _, err := l.Place(ctx, "good", fixed(onePlan(0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	// A valid entry elsewhere, linked in: still never followed.
	elsewhere := t.TempDir()
	el, _ := Open(elsewhere)
	if _, err := el.Place(ctx, "linked", fixed(onePlan(0, 1, 5))); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(elsewhere, "linked.json")
	mk := map[string]func(p string) error{
		"dangling.json": func(p string) error { return os.Symlink("/nonexistent/x.json", p) },
		"linked.json":   func(p string) error { return os.Symlink(target, p) },
		"lock-ish":      func(p string) error { return os.Symlink("/etc/shadow", p) },
		"fifo.json":     func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"dir.json":      func(p string) error { return os.Mkdir(p, 0o700) },
		"huge.json":     func(p string) error { return os.WriteFile(p, make([]byte, maxEntryBytes+1), 0o644) },
		"wide.json": func(p string) error {
			return os.WriteFile(p, []byte(`{"version":1,"name":"wide","owner":{"pid":1,"start_time":1},"dedicated_cpus":"0-2147483647"}`), 0o644)
		},
	}
	for n, f := range mk {
		if err := f(filepath.Join(l.Dir(), n)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := l.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(st.Entries) != 1 || st.Entries[0].Name != "good" || len(st.Corrupt) != len(mk) {
		t.Fatalf("List: entries %v, corrupt %v; want good and %d corrupt", st.Entries, st.Corrupt, len(mk))
	}
	for _, c := range st.Corrupt {
		if strings.HasSuffix(c.Path, "dangling.json") && !strings.Contains(c.Error(), "symlink") {
			t.Errorf("dangling symlink reported as %v", c)
		}
	}
	r, err := l.Place(ctx, "new", func(placed []plan.Placed) (*plan.Plan, error) {
		if len(placed) != 1 {
			t.Errorf("planner saw %d vms, want good alone", len(placed))
		}
		return onePlan(0, 1, 5), nil // linked's cpu: its entry is not followed
	})
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	if len(r.Quarantined) != len(mk) {
		t.Errorf("quarantined %v, want %d", r.Quarantined, len(mk))
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the linked entry's target was moved or removed: %v", err)
	}
	if fi, err := os.Stat("/etc/shadow"); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("/etc/shadow: %v", err)
	}
	st, err = l.List(ctx)
	if err != nil || len(st.Corrupt) != 0 || len(st.Entries) != 2 {
		t.Errorf("List after quarantine = %+v, %v", st, err)
	}
}

// List reads without the lock and changes nothing: a dead VM's entry and a
// stale temporary file stay until Place (issue 11, item 24).
func TestListChangesNothing(t *testing.T) {
	l := open(t)
	en := summarize(onePlan(0, 1, 0))
	en.Name, en.Owner = "gone", deadProc(t)
	if err := l.write(en); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(l.Dir(), ".x.json"+tmpMarker+"1")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(l.Dir())
	st, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != 0 || len(st.Dead) != 1 || st.Dead[0] != "gone" {
		t.Errorf("List = %+v, want vm gone dead and not listed", st)
	}
	after, _ := os.ReadDir(l.Dir())
	if len(after) != len(before) {
		t.Errorf("List changed the dir: %v, was %v", after, before)
	}
	r, err := l.Place(context.Background(), "new", fixed(onePlan(0, 1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Reclaimed) != 1 {
		t.Errorf("Place reclaimed %v, want gone", r.Reclaimed)
	}
}

// Place errors say "place vm: ..." or "place a new vm", never "place vm :".
func TestPlaceErrorNames(t *testing.T) {
	l := open(t)
	_, err := l.Place(context.Background(), "", func([]plan.Placed) (*plan.Plan, error) { return nil, nil })
	if err == nil || strings.Contains(err.Error(), "vm :") || !strings.Contains(err.Error(), "place vm vm-1: planner returned no plan") {
		t.Errorf("err = %v", err)
	}
	bad, _ := Open(filepath.Join(t.TempDir(), "f"))
	os.WriteFile(bad.Dir(), nil, 0o600)
	_, err = bad.Place(context.Background(), "", fixed(onePlan(0, 1, 0)))
	if err == nil || !strings.HasPrefix(err.Error(), "place a new vm: ") {
		t.Errorf("err = %v, want it to start with \"place a new vm: \"", err)
	}
}

// The entry records every CPU the VM's threads may run on, and the planner
// gets them, with the memory its running qemu holds (issue 11, items 7-9).
func TestPlacedCarriesThreadsAndResident(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	p := onePlan(0, 2<<30, 2, 3)
	p.Spec.Dedicated = false
	p.VCPUs[0].HostCPUs = p.VCPUs[0].HostCPUs.Union(p.VCPUs[1].HostCPUs)
	p.EmulatorCPUs = p.VCPUs[0].HostCPUs.Union(onePlan(0, 1, 7).VCPUs[0].HostCPUs)
	r, err := l.Place(ctx, "shared", fixed(p))
	if err != nil {
		t.Fatal(err)
	}
	q := liveProc(t)
	if err := r.SetQEMU(q.PID); err != nil {
		t.Fatal(err)
	}
	var asked []int
	l.Resident = func(pid int) (map[int]uint64, error) {
		asked = append(asked, pid)
		return map[int]uint64{0: 1 << 30}, nil
	}
	var seen []plan.Placed
	_, err = l.Place(ctx, "next", func(placed []plan.Placed) (*plan.Plan, error) {
		seen = placed
		return onePlan(0, 1, 4), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].CPUs.String() != "2-3,7" || seen[0].DedicatedCPUs.Size() != 0 ||
		seen[0].ResidentBytes[0] != 1<<30 || seen[0].MemoryBytes[0] != 2<<30 {
		t.Errorf("planner saw %+v, want shared on cpus 2-3,7 with 1 GiB of 2 resident", seen)
	}
	if len(asked) != 1 || asked[0] != q.PID {
		t.Errorf("Resident asked for pids %v, want qemu %d", asked, q.PID)
	}
	// The ledger itself refuses a dedicated cpu where shared's threads run,
	// emulator threads included.
	_, err = l.Place(ctx, "clash", fixed(onePlan(0, 1, 7)))
	if !errors.Is(err, ErrCPUTaken) || !strings.Contains(err.Error(), "cpus 7, where vm shared's threads run") {
		t.Errorf("dedicated cpu 7 under shared's emulator threads: %v", err)
	}
	emu := onePlan(0, 1, 5)
	emu.Spec.Dedicated = false
	emu.EmulatorCPUs = onePlan(0, 1, 4).VCPUs[0].HostCPUs // next's dedicated cpu
	_, err = l.Place(ctx, "emu", fixed(emu))
	if !errors.Is(err, ErrCPUTaken) || !strings.Contains(err.Error(), "emulator cpus 4 are dedicated to vm next") {
		t.Errorf("emulator threads on next's dedicated cpu: %v", err)
	}
}
