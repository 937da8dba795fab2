package vm

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// prepareTimeout bounds the first Prepare: a 70 MB download and an
// initramfs build.
const prepareTimeout = 10 * time.Minute

// Require returns the assets for a test that boots the test host, or skips
// it with the reason: under -short, without qemu-system-x86_64, or when the
// assets cannot be prepared.
func Require(t testing.TB) *Assets {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a QEMU test host; skipped under -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not found (make deps installs it): ", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	a, err := Prepare(ctx)
	if err != nil {
		t.Skip("test host assets unavailable: ", err)
	}
	return a
}
