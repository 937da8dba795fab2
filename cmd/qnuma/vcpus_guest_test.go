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

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/test/vm"
)

// growInit replaces the tiny guest's init. It loads virtio-mem and says
// what each node has, then, as /proc/cmdline asks: waits for the vCPUs of
// qnuma.cpus=2,3 and onlines them, waits for each node:KiB of
// qnuma.grow=0:122880,1:122880 to grow so, fills the nodes of
// qnuma.fill=0,1 (tmpfs bound to the node, all but 32 MiB of its free
// memory: movable allocations take the plugged, movable memory first),
// says what each node has, and with qnuma.shrink=1 waits for those vCPUs to
// go and the memory to shrink back (emptying the fill first) before it
// powers off. Each wait gives up after qnuma.wait= seconds (120).
// Plugged memory is onlined movable (memhp_default_state=online_movable on
// the command line), so that virtio-mem can unplug it again.
const growInit = `#!/bb/sh
B=/bb/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
echo -1000 >/proc/self/oom_score_adj
say() { echo "<2>qnuma-guest: $*" >/dev/kmsg; }
arg() { for w in $($B cat /proc/cmdline); do case $w in "qnuma.$1="*) echo "${w#*=}" | $B tr , ' ' ;; esac; done; }
CPUS=$(arg cpus); GROW=$(arg grow); FILL=$(arg fill); SHRINK=$(arg shrink); WAIT=$(arg wait); WAIT=${WAIT:-120}
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mem; do
	[ -f /grow/$m.ko ] && $B insmod /grow/$m.ko
done
node_ids() { for n in /sys/devices/system/node/node*; do echo ${n##*/node}; done; }
memkb() { $B awk '/MemTotal/ {print $4}' /sys/devices/system/node/node$1/meminfo; }
freekb() { $B awk '/MemFree/ {print $4}' /sys/devices/system/node/node$1/meminfo; }
nodes() { for n in $(node_ids); do say "$1 node $n cpus $($B cat /sys/devices/system/node/node$n/cpulist) memtotal $(memkb $n)"; done; }
waitfor() {
	i=0
	until "$@"; do
		[ $i -ge $((WAIT * 10)) ] && { say "gave up waiting: $*"; return 1; }
		$B usleep 100000
		i=$((i + 1))
	done
}
for n in $(node_ids); do eval start_$n=$(memkb $n); done
grown() { for g in $GROW; do n=${g%%:*}; eval s=\$start_$n; [ $(($(memkb $n) - s)) -ge ${g#*:} ] || return 1; done; }
shrunk() { for g in $GROW; do n=${g%%:*}; eval s=\$start_$n; [ $(($(memkb $n) - s)) -le 8192 ] || return 1; done; }
say "before online $($B cat /sys/devices/system/cpu/online)"
nodes before
say "ready"
for c in $CPUS; do waitfor [ -e /sys/devices/system/cpu/cpu$c/online ] && echo 1 >/sys/devices/system/cpu/cpu$c/online; done
waitfor grown
for n in $FILL; do
	kb=$(($(freekb $n) - 32768))
	$B mkdir -p /fill$n
	$B mount -t tmpfs -o size=${kb}k,mpol=bind:$n tmpfs /fill$n
	(echo 1000 >/proc/self/oom_score_adj; exec $B dd if=/dev/zero of=/fill$n/f bs=1024k count=$((kb / 1024)) 2>/dev/null)
	say "filled node $n with $((kb / 1024)) MiB"
done
say "after online $($B cat /sys/devices/system/cpu/online)"
nodes after
say "grown"
if [ "$SHRINK" = 1 ]; then
	for c in $CPUS; do waitfor [ ! -e /sys/devices/system/cpu/cpu$c ]; done
	for n in $FILL; do $B umount /fill$n; done
	waitfor shrunk
	say "shrunk online $($B cat /sys/devices/system/cpu/online)"
	nodes shrunk
fi
say "done"
$B poweroff -f
`

// growAppend is the kernel command line of the grown tiny guest, with
// growInit's arguments.
func growAppend(args string) string {
	return "console=ttyS0 quiet panic=-1 printk.devkmsg=on printk.time=0 memhp_default_state=online_movable " + args
}

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
		"-append", growAppend("qnuma.cpus=1 qnuma.grow=0:122880 qnuma.shrink=1 qnuma.wait=300"),
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

	// And back: the guest unplugs the memory and ejects the vCPU. Memory
	// first: once its vCPU is gone the guest's node 0 MemTotal can
	// read as before the growth while virtio-mem still has 128M plugged
	// (seen on this guest kernel), and the guest, taking that for the
	// shrink, powers off before it is asked to unplug.
	out, err = runQnuma(bin, "memory", "tg", "256M", "--wait", "3m", "--state-dir", state)
	if err != nil || !strings.Contains(out, "plugged 0B") {
		t.Errorf("memory tg 256M: %v\n%s\nwant the guest to have unplugged it all", err, out)
	}
	t.Log(out)
	out, err = runQnuma(bin, "vcpus", "tg", "1", "--timeout", "40s", "--state-dir", state)
	if err != nil {
		t.Errorf("vcpus tg 1: %v\n%s", err, out)
	}
	t.Log(out)
	if l, err := ledger.Open(state); err == nil {
		if e, _, err := l.Get(context.Background(), "tg"); err != nil || len(e.VCPUSlots) != 2 || e.VCPUSlots[1].Present || len(e.VCPUHomeNodes) != 1 {
			t.Errorf("ledger after the removal: %+v %v; want slot 1 absent again", e.VCPUSlots, err)
		}
	}
	defer func() {
		if t.Failed() {
			t.Logf("qnuma run stderr:\n%s\nstdout tail:\n%s", p.stderr.String(), tailStr(p.stdout.String(), 3000))
		}
	}()
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

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
