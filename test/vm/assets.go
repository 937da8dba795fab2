package vm

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
