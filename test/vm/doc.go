// Package vm is qnuma's multi-node test host: a Debian kernel and a
// busybox initramfs booted under QEMU's TCG with a NUMA topology given as
// data, running a shell script inside and returning its exit status.
//
//	res, err := vm.Run(ctx, vm.Options{Topology: vm.TwoNodes()}, `numactl -H`)
//	// res.ExitCode is the script's; res.Output its stdout and stderr.
//
// The host's /usr is shared read-only over 9p (so its qemu, numactl and
// libraries run inside), the repository's build/ folder appears at /qnuma,
// and more folders can be shared (Options.Shares). Scripts run with the
// functions of initramfs/lib.sh loaded: checks on /proc/PID/numa_maps,
// vCPU thread affinity, qemu's command line, and qnuma_start/qnuma_stop.
//
// Prepare downloads the kernel package once (apt-get download, unpacked
// without installing) and builds the initramfs images into build/vm (or
// $QNUMA_VM_CACHE), rebuilding them when their inputs change. The same
// kernel with a smaller initramfs is qnuma's tiny guest (TinyGuest,
// TinyGuestArgs), booted by scripts/boot-test.sh.
//
// Tests that boot skip under -short, without qemu-system-x86_64, or when
// the assets cannot be prepared (Require).
package vm
