// Package topotest gives tests real hosts to read: the shared sysfs
// snapshots of real machines, unpacked into a test's temporary directory,
// and small trees written file by file.
package topotest

import (
	"archive/tar"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FixturesEnv names the snapshot folder (or a folder holding hwloc-sysfs/)
// when the default, ../shared/fixtures/hwloc-sysfs beside the module, is
// not where they are.
const FixturesEnv = "QNUMA_FIXTURES"

const suffix = ".tar.bz2"

// Fixtures returns the folder of the shared sysfs snapshots, or skips the
// test saying why. A $QNUMA_FIXTURES that names no such folder fails it.
func Fixtures(t testing.TB) string {
	t.Helper()
	dir, err := fixtures()
	if err != nil {
		t.Fatalf("find sysfs snapshots: %v", err)
	}
	if dir == "" {
		t.Skipf("no sysfs snapshots: ../shared/fixtures/hwloc-sysfs beside the module is absent and $%s is not set", FixturesEnv)
	}
	return dir
}

// fixtures returns the snapshot folder, "" when there is none.
func fixtures() (string, error) {
	if env := os.Getenv(FixturesEnv); env != "" {
		for _, dir := range []string{filepath.Join(env, "hwloc-sysfs"), env} {
			if has, err := hasSnapshots(dir); err != nil || has {
				return dir, err
			}
		}
		return "", fmt.Errorf("$%s=%s holds no *%s snapshots", FixturesEnv, env, suffix)
	}
	mod, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(mod, "..", "shared", "fixtures", "hwloc-sysfs")
	has, err := hasSnapshots(dir)
	if err != nil || !has {
		return "", err
	}
	return dir, nil
}

func hasSnapshots(dir string) (bool, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	return len(names) > 0, err
}

// moduleRoot finds go.mod from the working directory up (tests run in
// their package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Snapshots returns the snapshots' names (without .tar.bz2), sorted, or
// skips the test as Fixtures does.
func Snapshots(t testing.TB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(Fixtures(t), "*"+suffix))
	if err != nil {
		t.Fatalf("list sysfs snapshots: %v", err)
	}
	for i, n := range names {
		names[i] = strings.TrimSuffix(filepath.Base(n), suffix)
	}
	slices.Sort(names)
	return names
}

// Unpack unpacks the named snapshot ("32intel64-2p8co2t+8ve", with or
// without .tar.bz2) into a temporary directory and returns the root to
// read: the archive's single top-level folder. It skips as Fixtures does.
func Unpack(t testing.TB, snapshot string) string {
	t.Helper()
	name := strings.TrimSuffix(snapshot, suffix) + suffix
	archive := filepath.Join(Fixtures(t), name)
	dest := t.TempDir()
	top, err := UnpackFile(archive, dest)
	if err != nil {
		t.Fatalf("unpack snapshot %s: %v", snapshot, err)
	}
	return filepath.Join(dest, top)
}

// UnpackFile unpacks a .tar.bz2 of one top-level folder into dest and
// returns that folder's name. Symlinks stay symlinks (sysfs is full of
// them, some looping); entries that would land outside dest are refused,
// and nothing is written through a symlink that leaves dest.
func UnpackFile(archive, dest string) (top string, err error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	top, err = unpackTar(bzip2.NewReader(f), dest)
	if err != nil {
		return "", fmt.Errorf("unpack %s: %w", archive, err)
	}
	return top, nil
}

// unpackTar unpacks a tar stream of one top-level folder into dest.
func unpackTar(r io.Reader, dest string) (string, error) {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return "", err
	}
	defer root.Close()
	var tops []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		name, err := localName(h.Name)
		if err != nil {
			return "", err
		}
		if name == "." {
			continue
		}
		if first, _, _ := strings.Cut(name, "/"); !slices.Contains(tops, first) {
			tops = append(tops, first)
		}
		if err := extract(root, name, h, tr); err != nil {
			return "", fmt.Errorf("entry %s: %w", h.Name, err)
		}
	}
	if len(tops) != 1 {
		return "", fmt.Errorf("want one top-level folder, have %q", tops)
	}
	return tops[0], nil
}

// localName cleans an entry name and refuses absolute names and names
// that climb out with "..".
func localName(name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("entry %q points outside the destination", name)
	}
	return clean, nil
}

// extract writes one entry through root, which refuses to follow any path
// (or symlink) out of the destination. Modes are not kept: snapshots hold
// read-only folders that the test's cleanup must be able to remove.
func extract(root *os.Root, name string, h *tar.Header, r io.Reader) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		err := root.Mkdir(name, 0o755)
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	case tar.TypeReg:
		w, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	case tar.TypeSymlink:
		return root.Symlink(h.Linkname, name)
	case tar.TypeLink:
		target, err := localName(h.Linkname)
		if err != nil {
			return err
		}
		return root.Link(target, name)
	}
	return fmt.Errorf("unsupported entry type %q", h.Typeflag)
}

// WriteTree writes files (path relative to root → content) under root,
// making folders as needed; it is how tests build small sysfs trees.
func WriteTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("write tree: %v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("write tree: %v", err)
		}
	}
}

// Symlink makes root/name a symlink to target (as sysfs has, loops
// included), making folders as needed.
func Symlink(t testing.TB, root, name, target string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatalf("symlink: %v", err)
	}
}
