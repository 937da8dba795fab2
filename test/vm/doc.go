// Package vm is qnuma's multi-node test host: a Debian kernel and a
// busybox initramfs booted under QEMU's TCG with a NUMA topology given as
// data, running a shell script inside and returning its exit status.
//
// The host's /usr is shared read-only over 9p (so its qemu, numactl and
// libraries run inside), and the repository's build/ folder appears at
// /qnuma. The same kernel with a smaller initramfs is qnuma's tiny guest,
// booted by the boot tests and the demo.
package vm
