package vm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepare checks the cached assets (scripts/vm-assets.sh runs it to
// prepare them): a PVH kernel, initramfs images holding what their init
// needs, and assets.env naming them for scripts.
func TestPrepare(t *testing.T) {
	a := Require(t)
	t.Logf("kernel %s (%s %s)\nhost initramfs %s\ntiny guest initramfs %s",
		a.Kernel, a.KernelPackage, a.KernelVersion, a.Initrd, a.GuestInitrd)
	if a.Kernel == a.BzImage {
		t.Errorf("kernel is the bzImage %s: the ELF extraction failed (see %s.failed)", a.BzImage, filepath.Join(filepath.Dir(a.BzImage), "vmlinux"))
	} else if err := checkPVHNote(a.Kernel); err != nil {
		t.Error(err)
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed, cannot list the initramfs: ", err)
	}
	host := cpioList(t, a.Initrd)
	want := []string{"init", "bb/busybox", "dev/console", "etc/qnuma/lib.sh", "modules/order", "lib64", "usr", "qnuma", "job"}
	for _, m := range append(append([]string{}, hostModules...), kvmModules...) {
		want = append(want, "modules/"+m+".ko")
	}
	for _, name := range want {
		if !host[name] {
			t.Errorf("host initramfs %s lacks %s", a.Initrd, name)
		}
	}
	tiny := cpioList(t, a.GuestInitrd)
	for _, name := range []string{"init", "bb/busybox", "dev/console"} {
		if !tiny[name] {
			t.Errorf("tiny initramfs %s lacks %s", a.GuestInitrd, name)
		}
	}
	if tiny["modules/9p.ko"] {
		t.Errorf("tiny initramfs carries the test host's modules")
	}

	// assets.env, sourced by a real shell, gives back the same paths and
	// TinyGuestArgs word for word.
	out, err := exec.Command("/bin/sh", "-c", `. "$1" && printf '%s\n' "$QNUMA_VM_KERNEL" "$QNUMA_GUEST_INITRD" && eval "set -- $QNUMA_GUEST_ARGS" && printf '%s\n' "$@"`,
		"sh", filepath.Join(a.Dir, "assets.env")).Output()
	if err != nil {
		t.Fatalf("source assets.env: %v", err)
	}
	wantEnv := strings.Join(append([]string{a.Kernel, a.GuestInitrd}, TinyGuestArgs(a.Kernel, a.GuestInitrd)...), "\n") + "\n"
	if string(out) != wantEnv {
		t.Errorf("assets.env gives\n%s\nwant\n%s", out, wantEnv)
	}
}

func cpioList(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -it %s: %v", path, err)
	}
	names := map[string]bool{}
	for _, n := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		names[n] = true
	}
	return names
}
