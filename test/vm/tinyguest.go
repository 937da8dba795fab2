package vm

import (
	"context"
	"fmt"
)

// The tiny guest prints lines starting with TinyGuestPrefix (its vCPUs and
// memory, then one line per NUMA node: cpus, MemTotal, distances) and
// TinyGuestMarker last, then powers off.
const (
	TinyGuestPrefix = "qnuma-guest:"
	TinyGuestMarker = "qnuma-guest: boot ok"
)

// TinyGuest returns the kernel and initramfs of qnuma's tiny guest (the
// test host's kernel with an initramfs of busybox and a short init),
// preparing the cached assets if needed.
func TinyGuest(ctx context.Context) (kernel, initrd string, err error) {
	a, err := Prepare(ctx)
	if err != nil {
		return "", "", fmt.Errorf("tiny guest: %w", err)
	}
	return a.Kernel, a.GuestInitrd, nil
}

// TinyGuestArgs are the QEMU arguments that boot the tiny guest with its
// console on stdout and QEMU exiting at the guest's power-off. They leave
// -accel, -cpu, -m, -smp and -numa to the caller (or to qnuma run).
func TinyGuestArgs(kernel, initrd string) []string {
	return []string{
		"-kernel", kernel,
		"-initrd", initrd,
		// printk.devkmsg=on: init writes its lines through /dev/kmsg, more
		// than the default rate limit allows; printk.time=0 keeps them
		// free of timestamps.
		"-append", "console=ttyS0 quiet panic=-1 printk.devkmsg=on printk.time=0",
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio",
	}
}
