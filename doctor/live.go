package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/qemuversion"
	"github.com/qnuma/qnuma/topology"
)

// kvmGetAPIVersion is KVM_GET_API_VERSION, _IO(KVMIO=0xAE, 0x00).
const kvmGetAPIVersion = 0xAE00

// kvmAPIVersion is the only KVM API version there has ever been.
const kvmAPIVersion = 12

func kvm(e Env, _ *topology.Host, _ error) Result {
	const name = "kvm"
	path := filepath.Join(e.Root, "dev/kvm")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return Result{Name: name, Status: Warn, Found: "/dev/kvm is absent: VMs run under TCG, which works (qnuma places and pins them the same) but emulates every instruction",
			Why: "without KVM guests run many times slower",
			Fix: "enable virtualization in the firmware (or nested virtualization on the hypervisor) and load kvm_intel or kvm_amd"}
	} else if err != nil {
		return unreadable(name, "/dev/kvm", err)
	}
	probe := e.KVMAPIVersion
	if probe == nil {
		if !e.live() {
			return Result{Name: name, Status: OK, Found: "/dev/kvm is present (not opened: the root is not /)"}
		}
		probe = openKVM
	}
	v, err := probe(path)
	if err != nil {
		return Result{Name: name, Status: Error, Found: fmt.Sprintf("/dev/kvm is present but unusable: %v", err),
			Why: "qemu -accel kvm will fail; only TCG is left",
			Fix: "give this user access to /dev/kvm (the kvm group) and check dmesg for kvm errors"}
	}
	if v != kvmAPIVersion {
		return Result{Name: name, Status: Error, Found: fmt.Sprintf("/dev/kvm answers API version %d, want %d", v, kvmAPIVersion),
			Why: "QEMU refuses a KVM with another API version"}
	}
	return Result{Name: name, Status: OK, Found: fmt.Sprintf("/dev/kvm is usable (API version %d)", v)}
}

// openKVM opens the device read-write, as QEMU does, and asks its version.
func openKVM(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil {
		return 0, fmt.Errorf("ioctl KVM_GET_API_VERSION: %w", os.NewSyscallError("ioctl", err))
	}
	return v, nil
}

// qemuBinary is the emulator qnuma runs by default.
const qemuBinary = "qemu-system-x86_64"

func qemu(e Env, _ *topology.Host, _ error) Result {
	const name = "qemu"
	probe := e.QEMUVersion
	if probe == nil {
		if !e.live() {
			return Result{Name: name, Status: OK, Found: qemuBinary + " not run: the root is not /"}
		}
		probe = runQEMUVersion
	}
	out, err := probe()
	if err != nil {
		return Result{Name: name, Status: Error, Found: fmt.Sprintf("%s: %v", qemuBinary, err),
			Why: "qnuma starts QEMU", Fix: "install qemu-system-x86 (scripts/deps.sh)"}
	}
	v, err := qemuversion.ParseVersion(out)
	if err != nil {
		return Result{Name: name, Status: Error, Found: err.Error(), Why: "qnuma needs QEMU's version to know what it accepts"}
	}
	found := fmt.Sprintf("QEMU %s", v)
	if v.Package != "" {
		found += " (" + v.Package + ")"
	}
	if !v.HasThreadContext() {
		return Result{Name: name, Status: Warn, Found: found + ": no thread-context",
			Why: "before 7.2 QEMU cannot run preallocation threads on the VM's node: big guests start slowly and fault in remote memory first",
			Fix: "install QEMU 7.2 or newer"}
	}
	return Result{Name: name, Status: OK, Found: found + ": thread-context supported"}
}

func runQEMUVersion() (string, error) {
	bin, err := exec.LookPath(qemuBinary)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s -version: %w", bin, err)
	}
	return string(out), nil
}

// hugepages compares, per node and page size, the pages the ledger's VMs ask
// with the node's pool.
func hugepages(e Env, h *topology.Host, err error) Result {
	const name = "hugepages"
	if h == nil {
		return hostError(name, err)
	}
	type key struct {
		node int
		size uint64
	}
	asked := map[key]uint64{}
	for _, vm := range e.VMs {
		if vm.HugepageBytes == 0 {
			continue
		}
		for n, b := range vm.MemoryBytes {
			asked[key{n, vm.HugepageBytes}] += (b + vm.HugepageBytes - 1) / vm.HugepageBytes
		}
	}
	var pools []string
	for _, n := range h.Nodes {
		for _, hp := range n.Hugepages {
			if hp.Total > 0 {
				pools = append(pools, fmt.Sprintf("node %d: %d×%s (%d free)", n.ID, hp.Total, memobj.FormatSize(hp.SizeBytes), hp.Free))
			}
		}
	}
	poolText := "no hugepages reserved"
	if len(pools) > 0 {
		poolText = strings.Join(pools, ", ")
	}
	if len(asked) == 0 {
		return Result{Name: name, Status: OK, Found: "no VM in the ledger asks for hugepages; " + poolText}
	}
	keys := make([]key, 0, len(asked))
	for k := range asked {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].node < keys[j].node || keys[i].node == keys[j].node && keys[i].size < keys[j].size
	})
	var short, fine []string
	for _, k := range keys {
		var total uint64
		if n, ok := h.Node(k.node); ok {
			for _, hp := range n.Hugepages {
				if hp.SizeBytes == k.size {
					total = hp.Total
				}
			}
		}
		s := fmt.Sprintf("node %d: VMs ask %d×%s, the pool holds %d", k.node, asked[k], memobj.FormatSize(k.size), total)
		if asked[k] > total {
			short = append(short, s)
		} else {
			fine = append(fine, s)
		}
	}
	if len(short) > 0 {
		return Result{Name: name, Status: Error, Found: strings.Join(append(short, fine...), "; "),
			Why: "a VM whose hugepages are not on its node fails to preallocate, or takes them from another node",
			Fix: "reserve pages per node: echo N > /sys/devices/system/node/nodeX/hugepages/hugepages-SIZEkB/nr_hugepages"}
	}
	return Result{Name: name, Status: OK, Found: strings.Join(fine, "; ")}
}
