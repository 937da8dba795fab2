package vm

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
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

// GuestNodeView is one node as the tiny guest printed it.
type GuestNodeView struct {
	ID          int
	CPUs        string // cpulist, "" for a memory-only node
	MemTotalKiB int
	Distances   []int
}

var guestNodeRe = regexp.MustCompile(`qnuma-guest: node (\d+) cpus (\S+) memtotal (\d+) kB distance ([\d ]+)`)

// ParseTinyGuest reads the tiny guest's console: its nodes, in the order
// printed. It fails when the boot marker is missing (the guest did not
// finish) or a node line is malformed.
func ParseTinyGuest(console string) ([]GuestNodeView, error) {
	if !strings.Contains(console, TinyGuestMarker) {
		return nil, fmt.Errorf("parse tiny guest console: no %q line", TinyGuestMarker)
	}
	var nodes []GuestNodeView
	for _, line := range strings.Split(console, "\n") {
		m := guestNodeRe.FindStringSubmatch(strings.TrimRight(line, "\r "))
		if m == nil {
			continue
		}
		n := GuestNodeView{CPUs: m[2]}
		n.ID, _ = strconv.Atoi(m[1])
		n.MemTotalKiB, _ = strconv.Atoi(m[3])
		if n.CPUs == "-" {
			n.CPUs = ""
		}
		for _, f := range strings.Fields(m[4]) {
			d, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("parse tiny guest node %d distances %q: %w", n.ID, m[4], err)
			}
			n.Distances = append(n.Distances, d)
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, errors.New("parse tiny guest console: no node lines")
	}
	return nodes, nil
}
