package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/test/vm"
)

// growInit replaces the tiny guest's init: it loads virtio-mem, says what
// it has, then waits for a second vCPU (onlining it) and for node 0's
// memory to grow, says what it has then, and waits for both to go again
// (memory is onlined movable, so that virtio-mem can unplug it).
const growInit = `#!/bb/sh
B=/bb/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
say() { echo "<2>qnuma-guest: $*" >/dev/kmsg; }
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mem; do
	[ -f /grow/$m.ko ] && $B insmod /grow/$m.ko
done
nodes() {
	for n in /sys/devices/system/node/node*; do
		say "$1 node ${n##*/node} cpus $($B cat $n/cpulist) memtotal $($B awk '/MemTotal/ {print $4}' $n/meminfo)"
	done
}
mem0() { $B awk '/MemTotal/ {print $4}' /sys/devices/system/node/node0/meminfo; }
say "before online $($B cat /sys/devices/system/cpu/online)"
nodes before
start=$(mem0)
say "ready"
i=0
while [ ! -e /sys/devices/system/cpu/cpu1/online ] && [ $i -lt 3000 ]; do $B usleep 100000; i=$((i+1)); done
echo 1 >/sys/devices/system/cpu/cpu1/online
i=0
while [ $(($(mem0) - start)) -lt 122880 ] && [ $i -lt 1800 ]; do $B usleep 100000; i=$((i+1)); done
say "after online $($B cat /sys/devices/system/cpu/online)"
nodes after
say "grown"
i=0
while [ -e /sys/devices/system/cpu/cpu1 ] && [ $i -lt 1800 ]; do $B usleep 100000; i=$((i+1)); done
i=0
while [ $(($(mem0) - start)) -gt 8192 ] && [ $i -lt 1800 ]; do $B usleep 100000; i=$((i+1)); done
say "shrunk online $($B cat /sys/devices/system/cpu/online)"
nodes shrunk
say "done"
$B poweroff -f
`

// growInitrd is the tiny guest's initramfs with growInit and the virtio
// modules appended (the kernel unpacks concatenated archives in order,
// later files replacing earlier ones).
func growInitrd(t *testing.T, a *vm.Assets, tiny string) string {
	t.Helper()
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("needs cpio to extend the tiny guest's initramfs")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "grow"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(growInit), 0o755); err != nil {
		t.Fatal(err)
	}
	kdir := filepath.Dir(a.BzImage)
	for _, m := range []string{"virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci"} {
		b, err := os.ReadFile(filepath.Join(kdir, "modules", m+".ko"))
		if err != nil {
			continue // built in
		}
		os.WriteFile(filepath.Join(root, "grow", m+".ko"), b, 0o644)
	}
	debs, _ := filepath.Glob(filepath.Join(a.Dir, "deb", "*.deb"))
	if len(debs) == 0 {
		t.Skip("no cached kernel package to take virtio_mem.ko from")
	}
	ko := fmt.Sprintf("dpkg-deb --fsys-tarfile %q | tar -xO --wildcards '*/virtio_mem.ko' > %q", debs[0], filepath.Join(root, "grow", "virtio_mem.ko"))
	if out, err := exec.Command("sh", "-c", ko).CombinedOutput(); err != nil {
		t.Skipf("extract virtio_mem.ko: %v %s", err, out)
	}
	var arch bytes.Buffer
	cmd := exec.Command("sh", "-c", "find . | cpio -o -H newc --quiet")
	cmd.Dir, cmd.Stdout = root, &arch
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(tiny)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "grow.cpio")
	if err := os.WriteFile(out, append(base, arch.Bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

var guestNodeLine = regexp.MustCompile(`qnuma-guest: (before|after|shrunk) node (\d+) cpus (\S*) memtotal (\d+)`)

// Issue 15's guest proof: the tiny guest, booted with room for a second
// vCPU and 256 MiB more, sees the vCPU qnuma vcpus adds online in its
// guest node (node 0: this host has one node) and node 0's memory grow by
// what qnuma memory asked; before, it had neither (the control).
func TestVCPUsAndMemoryInTinyGuest(t *testing.T) {
	qemutest.Require(t)
	twoCPUHost(t)
	a := vm.Require(t)
	kernel, tiny, err := vm.TinyGuest(context.Background())
	if err != nil {
		t.Skip("tiny guest unavailable: ", err)
	}
	initrd := growInitrd(t, a, tiny)
	bin := buildQnuma(t)
	state := t.TempDir()
	guest := []string{"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1 printk.devkmsg=on printk.time=0 memhp_default_state=online_movable",
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio"}
	args := append([]string{"run", "-v", "--state-dir", state, "--name", "tg", "--timeout", "8m", "--cpus-dedicated",
		"--vcpus", "1", "--max-vcpus", "2", "--memory", "256M", "--max-memory", "512M", "--",
		qemutest.Binary, "-accel", "tcg,thread=multi", "-cpu", "max"}, guest...)
	p := startQnuma(t, []string{bin}, args...)
	waitStdout(t, p, "qnuma-guest: ready", 5*time.Minute)

	out, err := runQnuma(bin, "vcpus", "tg", "2", "--state-dir", state)
	if err != nil {
		t.Fatalf("vcpus tg 2: %v\n%s", err, out)
	}
	t.Log(out)
	out, err = runQnuma(bin, "memory", "tg", "384M", "--wait", "3m", "--state-dir", state)
	if err != nil {
		t.Fatalf("memory tg 384M: %v\n%s", err, out)
	}
	t.Log(out)
	if !strings.Contains(out, "plugged 128M") {
		t.Errorf("qnuma memory does not report the guest's 128M plugged:\n%s", out)
	}
	waitStdout(t, p, "qnuma-guest: grown", 5*time.Minute)

	// And back: the guest ejects the vCPU (DEVICE_DELETED) and unplugs
	// the memory.
	out, err = runQnuma(bin, "vcpus", "tg", "1", "--timeout", "40s", "--state-dir", state)
	if err != nil {
		t.Errorf("vcpus tg 1: %v\n%s", err, out)
	}
	t.Log(out)
	out, err = runQnuma(bin, "memory", "tg", "256M", "--wait", "3m", "--state-dir", state)
	if err != nil || !strings.Contains(out, "plugged 0B") {
		t.Errorf("memory tg 256M: %v\n%s\nwant the guest to have unplugged it all", err, out)
	}
	t.Log(out)
	waitStdout(t, p, "qnuma-guest: done", 5*time.Minute)
	if code := p.wait(t); code != 0 {
		t.Errorf("qnuma run exited %d, want 0 from the guest's power-off", code)
	}
	console := p.stdout.String()
	mem := map[string]int{}
	cpus := map[string]string{}
	for _, m := range guestNodeLine.FindAllStringSubmatch(console, -1) {
		if m[2] != "0" {
			t.Errorf("guest node %s: this VM has one guest node", m[2])
		}
		cpus[m[1]] = m[3]
		mem[m[1]], _ = strconv.Atoi(m[4])
	}
	if cpus["before"] != "0" || cpus["after"] != "0-1" {
		t.Errorf("guest node 0 cpus before %q after %q; want 0, then 0-1 (the new vCPU online in its node)\n%s", cpus["before"], cpus["after"], console)
	}
	if grew := mem["after"] - mem["before"]; grew < 120*1024 || grew > 136*1024 {
		t.Errorf("guest node 0 MemTotal grew by %d kB (from %d), want about 128 MiB\n%s", grew, mem["before"], console)
	}
	if cpus["shrunk"] != "0" || mem["shrunk"]-mem["before"] > 8*1024 {
		t.Errorf("after shrinking back: guest node 0 cpus %q, MemTotal %d kB (%d at start); want 0 and the start's\n%s", cpus["shrunk"], mem["shrunk"], mem["before"], console)
	}
}

// waitStdout waits until qnuma's stdout (the guest's console) holds s.
func waitStdout(t *testing.T, p *proc, s string, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.stdout.String(), s) {
		select {
		case <-tick.C:
		case <-p.done:
			if strings.Contains(p.stdout.String(), s) {
				return
			}
			t.Fatalf("qnuma run ended before %q; stdout:\n%s\nstderr:\n%s", s, p.stdout, p.stderr)
		case <-deadline.C:
			t.Fatalf("no %q within %s; stdout:\n%s\nstderr:\n%s", s, within, p.stdout, p.stderr)
		}
	}
}
