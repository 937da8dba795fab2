package vm

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Assets are the cached files a test host boots from.
type Assets struct {
	// Kernel is the ELF vmlinux with the PVH note, or BzImage when the
	// extraction failed.
	Kernel  string
	BzImage string
	// Initrd is the test host's initramfs (busybox, modules, init).
	Initrd string
	// GuestInitrd is the tiny guest's initramfs (busybox and an init that
	// prints the guest's NUMA view and powers off).
	GuestInitrd string
	// KernelPackage and KernelVersion name the Debian package unpacked.
	KernelPackage, KernelVersion string
	// Dir is the cache directory.
	Dir string
	// BuildDir is the repository's build/ folder, shared read-only at
	// /qnuma inside the test host; "" outside the repository.
	BuildDir string
}

// Progress receives a line whenever Prepare downloads or builds something
// (slow the first time).
var Progress io.Writer = os.Stderr

// hostModules are insmod-ed in this order by the test host's init: Debian's
// package has no modules.dep, so the order is the dependency order.
var hostModules = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
	"netfs", "fscache", "9pnet", "9pnet_virtio", "9p",
}

// kvmModules are in the test host's initramfs but loaded only on demand
// (lib.sh's load_kvm, about 1 s under TCG): -cpu max offers SVM, so a
// nested guest can run under KVM, twice as fast as TCG inside TCG.
var kvmModules = []string{"irqbypass", "ccp", "kvm", "kvm_amd"}

// busyboxPath is Debian's busybox-static.
const busyboxPath = "/bin/busybox"

var (
	//go:embed initramfs/hostinit.sh
	hostInit []byte
	//go:embed initramfs/lib.sh
	hostLib []byte
	//go:embed initramfs/tinyinit.sh
	tinyInit []byte
)

var (
	prepareMu     sync.Mutex
	preparedOnce  *Assets
	preparedError error
)

// Prepare returns the cached assets, downloading the kernel package and
// building the initramfs images when they are missing or their inputs
// changed. The result is remembered for the life of the process.
func Prepare(ctx context.Context) (*Assets, error) {
	prepareMu.Lock()
	defer prepareMu.Unlock()
	if preparedOnce == nil && preparedError == nil {
		preparedOnce, preparedError = prepare(ctx)
	}
	return preparedOnce, preparedError
}

func prepare(ctx context.Context) (*Assets, error) {
	root, _ := repoRoot()
	dir := os.Getenv("QNUMA_VM_CACHE")
	if dir == "" {
		if root == "" {
			return nil, errors.New("prepare vm assets: not inside the qnuma repository and QNUMA_VM_CACHE is not set")
		}
		dir = filepath.Join(root, "build", "vm")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("prepare vm assets: %w", err)
	}
	// One preparer at a time across processes: go test runs packages in
	// parallel and a second download of the kernel would be wasted.
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("prepare vm assets in %s: %w", dir, err)
	}
	defer unlock()

	a := &Assets{Dir: dir}
	if root != "" {
		a.BuildDir = filepath.Join(root, "build")
	}
	kdir, err := prepareKernel(ctx, dir, a)
	if err != nil {
		return nil, err
	}
	if a.Initrd, err = prepareInitrd(dir, "host", kdir, hostModules, kvmModules, map[string][]byte{
		"init": hostInit, "etc/qnuma/lib.sh": hostLib,
	}); err != nil {
		return nil, err
	}
	if a.GuestInitrd, err = prepareInitrd(dir, "tiny", kdir, nil, nil, map[string][]byte{"init": tinyInit}); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, "assets.env"), []byte(a.shellEnv())); err != nil {
		return nil, fmt.Errorf("prepare vm assets: %w", err)
	}
	return a, nil
}

var plainWordRe = regexp.MustCompile(`^[A-Za-z0-9_./=,:+@%-]+$`)

// shellEnv is assets.env: the assets for scripts (scripts/boot-test.sh),
// as shell assignments. QNUMA_GUEST_ARGS is TinyGuestArgs as quoted words,
// for eval "args=($QNUMA_GUEST_ARGS)".
func (a *Assets) shellEnv() string {
	words := TinyGuestArgs(a.Kernel, a.GuestInitrd)
	for i, w := range words {
		if !plainWordRe.MatchString(w) {
			words[i] = shellQuote(w)
		}
	}
	var b strings.Builder
	b.WriteString("# Written by qnuma's test/vm Prepare (scripts/vm-assets.sh); source it.\n")
	for _, kv := range [][2]string{
		{"QNUMA_VM_KERNEL", a.Kernel},
		{"QNUMA_VM_INITRD", a.Initrd},
		{"QNUMA_GUEST_INITRD", a.GuestInitrd},
		{"QNUMA_VM_KERNEL_PACKAGE", a.KernelPackage + "=" + a.KernelVersion},
		{"QNUMA_GUEST_ARGS", strings.Join(words, " ")},
	} {
		b.WriteString(kv[0] + "=" + shellQuote(kv[1]) + "\n")
	}
	return b.String()
}

// prepareKernel fills a's kernel fields and returns the unpacked kernel's
// directory (vmlinuz, vmlinux, modules/).
func prepareKernel(ctx context.Context, dir string, a *Assets) (string, error) {
	pkg, version, resolveErr := resolveKernel(ctx)
	if resolveErr != nil {
		// Offline with a cache: use what is there rather than fail.
		if kdir := newestKernelDir(dir); kdir != "" {
			progress("vm: %v; using the cached %s", resolveErr, filepath.Base(kdir))
			pkg, version, _ = strings.Cut(filepath.Base(kdir), "_")
		} else {
			progress("vm: apt lists lack the kernel package (%v); running apt-get update", resolveErr)
			if err := runCmd(ctx, "", "apt-get", "update", "-qq"); err != nil {
				return "", fmt.Errorf("prepare kernel: %w (after: %v)", err, resolveErr)
			}
			if pkg, version, resolveErr = resolveKernel(ctx); resolveErr != nil {
				return "", fmt.Errorf("prepare kernel: %w", resolveErr)
			}
		}
	}
	a.KernelPackage, a.KernelVersion = pkg, version
	kdir := filepath.Join(dir, "kernel", pkg+"_"+version)
	// Unpacked again when the module list changes; the .deb stays cached.
	list := strings.Join(wantedModules(), "\n") + "\n"
	if have, err := os.ReadFile(filepath.Join(kdir, "modules.list")); err != nil || string(have) != list {
		if err := unpackKernel(ctx, dir, kdir, pkg, version, list); err != nil {
			return "", err
		}
	}
	a.BzImage = filepath.Join(kdir, "vmlinuz")
	a.Kernel = a.BzImage
	vmlinux := filepath.Join(kdir, "vmlinux")
	if err := checkPVHNote(vmlinux); err == nil {
		a.Kernel = vmlinux
	} else if _, err := os.Stat(vmlinux + ".failed"); err != nil {
		progress("vm: extracting the ELF kernel from %s", a.BzImage)
		if err := extractVmlinux(ctx, a.BzImage, vmlinux); err != nil {
			// The bzImage boots too, only slower; remember not to retry.
			progress("vm: %v; booting the bzImage instead", err)
			if err := os.WriteFile(vmlinux+".failed", []byte(err.Error()+"\n"), 0o644); err != nil {
				return "", fmt.Errorf("prepare kernel: %w", err)
			}
		} else {
			a.Kernel = vmlinux
		}
	}
	return kdir, nil
}

var kernelDepRe = regexp.MustCompile(`(linux-image-[0-9][^ ,]*-amd64) \(= ([^)]+)\)`)

// resolveKernel finds the versioned package linux-image-amd64 depends on.
func resolveKernel(ctx context.Context) (pkg, version string, err error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", "linux-image-amd64").Output()
	if err != nil {
		return "", "", fmt.Errorf("apt-cache show linux-image-amd64: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Depends:") {
			if m := kernelDepRe.FindStringSubmatch(line); m != nil {
				return m[1], m[2], nil
			}
		}
	}
	return "", "", errors.New("apt-cache show linux-image-amd64: no versioned linux-image dependency")
}

func newestKernelDir(dir string) string {
	matches, _ := filepath.Glob(filepath.Join(dir, "kernel", "linux-image-*_*", "vmlinuz"))
	sort.Strings(matches)
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

// unpackKernel downloads pkg=version (kept in dir/deb) and unpacks only the
// kernel and the modules any initramfs needs into kdir (no dpkg install).
func unpackKernel(ctx context.Context, dir, kdir, pkg, version, list string) error {
	deb, err := downloadKernel(ctx, dir, pkg, version)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "unpack-")
	if err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, "modules"), 0o755); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := extractDeb(ctx, deb, tmp); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "modules.list"), []byte(list), 0o644); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := os.MkdirAll(filepath.Dir(kdir), 0o755); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := os.RemoveAll(kdir); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := os.Rename(tmp, kdir); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	return nil
}

// downloadKernel returns the cached .deb of pkg=version, fetching it with
// apt-get download when missing.
func downloadKernel(ctx context.Context, dir, pkg, version string) (string, error) {
	debDir := filepath.Join(dir, "deb")
	deb := filepath.Join(debDir, pkg+"_"+version+".deb")
	if _, err := os.Stat(deb); err == nil {
		return deb, nil
	}
	tmp, err := os.MkdirTemp(dir, "download-")
	if err != nil {
		return "", fmt.Errorf("download %s: %w", pkg, err)
	}
	defer os.RemoveAll(tmp)
	progress("vm: downloading %s %s (about 70 MB, once)", pkg, version)
	if err := runCmd(ctx, tmp, "apt-get", "download", "-q", pkg+"="+version); err != nil {
		return "", fmt.Errorf("download %s=%s: %w", pkg, version, err)
	}
	got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("download %s=%s: want one .deb, found %d", pkg, version, len(got))
	}
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return "", fmt.Errorf("download %s: %w", pkg, err)
	}
	if err := os.Rename(got[0], deb); err != nil {
		return "", fmt.Errorf("download %s: %w", pkg, err)
	}
	return deb, nil
}

// extractDeb copies ./boot/vmlinuz-* to out/vmlinuz, every module named in
// wantedModules to out/modules/NAME.ko, and modules.builtin, reading the
// package's data tar from dpkg-deb.
func extractDeb(ctx context.Context, deb, out string) error {
	want := map[string]bool{}
	for _, m := range wantedModules() {
		want[m] = true
	}
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	found, readErr := extractKernelFiles(ctx, tar.NewReader(r), want, out)
	_, _ = io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if readErr != nil {
		return readErr
	}
	if !found["vmlinuz"] {
		return errors.New("no /boot/vmlinuz-* in the package")
	}
	return nil
}

func extractKernelFiles(ctx context.Context, tr *tar.Reader, want map[string]bool, out string) (map[string]bool, error) {
	found := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return found, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read package tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		base := filepath.Base(h.Name)
		var dst string
		switch {
		case strings.HasPrefix(h.Name, "./boot/vmlinuz-"):
			dst, found["vmlinuz"] = filepath.Join(out, "vmlinuz"), true
		case base == "modules.builtin":
			dst = filepath.Join(out, "modules.builtin")
		case strings.HasSuffix(base, ".ko") && want[moduleName(base)]:
			dst = filepath.Join(out, "modules", moduleName(base)+".ko")
		case strings.HasSuffix(base, ".ko.xz") && want[moduleName(base)]:
			// Newer Debian kernels compress modules; busybox insmod wants them plain.
			dst = filepath.Join(out, "modules", moduleName(base)+".ko.xz")
		default:
			continue
		}
		f, err := os.Create(dst)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", dst, err)
		}
		if strings.HasSuffix(dst, ".xz") {
			if err := runCmd(ctx, "", "xz", "-d", "-f", dst); err != nil {
				return nil, fmt.Errorf("decompress %s: %w", dst, err)
			}
		}
	}
}

// moduleName turns "9pnet_virtio.ko" or "kvm-amd.ko.xz" into the name the
// kernel uses (dashes become underscores).
func moduleName(file string) string {
	name := strings.TrimSuffix(strings.TrimSuffix(file, ".xz"), ".ko")
	return strings.ReplaceAll(name, "-", "_")
}

func wantedModules() []string { return append(append([]string{}, hostModules...), kvmModules...) }

// prepareInitrd builds (once per input hash) an initramfs of busybox, the
// modules from kdir (those in order are listed in modules/order for init to
// load, the extra ones only copied), and files; it returns its path.
func prepareInitrd(dir, kind, kdir string, modules, extra []string, files map[string][]byte) (string, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return "", fmt.Errorf("build %s initramfs: %w (install busybox-static)", kind, err)
	}
	builtin, _ := os.ReadFile(filepath.Join(kdir, "modules.builtin"))
	entries := baseEntries(kind, bb)
	var order []string
	for i, m := range append(append([]string{}, modules...), extra...) {
		data, err := os.ReadFile(filepath.Join(kdir, "modules", m+".ko"))
		if err != nil {
			if isBuiltin(builtin, m) {
				continue
			}
			return "", fmt.Errorf("build %s initramfs: module %s: %w", kind, m, err)
		}
		entries["modules/"+m+".ko"] = cpioEntry{Mode: 0o644, Data: data}
		if i < len(modules) {
			order = append(order, m)
		}
	}
	if modules != nil {
		entries["modules/order"] = cpioEntry{Mode: 0o644, Data: []byte(strings.Join(order, "\n") + "\n")}
	}
	for name, data := range files {
		mode := uint32(0o644)
		if name == "init" {
			mode = 0o755
		}
		entries[name] = cpioEntry{Mode: mode, Data: data}
	}
	for name := range entries {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = cpioEntry{Mode: 0o755, Dir: true}
			}
		}
	}
	var buf bytes.Buffer
	if err := writeCPIO(&buf, entries); err != nil {
		return "", fmt.Errorf("build %s initramfs: %w", kind, err)
	}
	// The archive is reproducible, so its own hash is the key over every
	// input: the init scripts, the module list and files, busybox.
	sum := sha256.Sum256(buf.Bytes())
	path := filepath.Join(dir, kind+"-"+hex.EncodeToString(sum[:8])+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	progress("vm: writing the %s initramfs %s", kind, path)
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return "", fmt.Errorf("build %s initramfs: %w", kind, err)
	}
	// Older builds are dead weight; a QEMU still booting one has it open,
	// which unlinking does not disturb.
	old, _ := filepath.Glob(filepath.Join(dir, kind+"-*.cpio"))
	for _, o := range old {
		if o != path {
			if err := os.Remove(o); err != nil {
				return "", fmt.Errorf("build %s initramfs: remove the old %s: %w", kind, o, err)
			}
		}
	}
	return path, nil
}

// baseEntries is the root every initramfs shares: busybox at /bb with the
// directories init mounts on. The test host's /bin, /lib... point into the
// host's /usr (Debian's merged /usr), shared over 9p.
func baseEntries(kind string, busybox []byte) map[string]cpioEntry {
	e := map[string]cpioEntry{
		"bb/busybox":  {Mode: 0o755, Data: busybox},
		"bb/sh":       {Link: "busybox"},
		"dev/console": {Mode: 0o600, Char: true, Major: 5, Minor: 1},
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc", "root"} {
		e[d] = cpioEntry{Mode: 0o755, Dir: true}
	}
	if kind == "host" {
		e["usr"] = cpioEntry{Mode: 0o755, Dir: true}
		e["qnuma"] = cpioEntry{Mode: 0o755, Dir: true}
		e["job"] = cpioEntry{Mode: 0o755, Dir: true}
		e["mnt"] = cpioEntry{Mode: 0o755, Dir: true}
		for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
			e[l] = cpioEntry{Link: "usr/" + l}
		}
		e["etc/passwd"] = cpioEntry{Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\n")}
		e["etc/group"] = cpioEntry{Mode: 0o644, Data: []byte("root:x:0:\n")}
	} else {
		e["bin"] = cpioEntry{Link: "bb"}
	}
	return e
}

func isBuiltin(list []byte, module string) bool {
	for _, line := range strings.Split(string(list), "\n") {
		if moduleName(filepath.Base(line)) == module {
			return true
		}
	}
	return false
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lockFile takes an exclusive flock on path; the returned func releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// repoRoot finds the qnuma module's root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(mod, []byte("module github.com/qnuma/qnuma\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/qnuma/qnuma not found")
		}
		dir = parent
	}
}

// runCmd runs a command, returning its stderr tail in the error.
func runCmd(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(out.String(), 5))
	}
	return nil
}

func progress(format string, args ...any) {
	if Progress != nil {
		fmt.Fprintf(Progress, format+"\n", args...)
	}
}
