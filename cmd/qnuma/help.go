package main

// Detailed help for the commands that start or plan VMs: kong prints a
// command's Help() under its one-line summary in `qnuma CMD --help`.

func (c *RunCmd) Help() string {
	return `qnuma plans the VM (see qnuma plan), starts qemu bound to the chosen nodes and
paused, pins every vCPU thread to its planned CPUs and the other threads to the
VM's nodes, then lets the guest run. Console, signals and exit status pass
through. A fault before the guest runs stops qemu and says why (exit 1; bad
input or a VM that does not fit: exit 2, nothing started).

Examples:
  qnuma run --vcpus 4 --memory 4G -- qemu-system-x86_64 -accel kvm -nographic \
      -kernel vmlinuz -initrd initrd.img -append console=ttyS0
  qnuma run -- qemu-system-x86_64 -smp 8 -m 16G disk.qcow2     # -smp/-m are the spec
  qnuma run --host-nodes 1 --cpus-dedicated --prealloc -- qemu-system-x86_64 ...
  qnuma run --timeout 60s --vcpus 2 --memory 512M -- qemu-system-x86_64 ...  # exit 124 at 60 s
  qnuma run --wait 10m --vcpus 8 --memory 32G -- qemu-system-x86_64 ...  # start when it fits
  qnuma run --bind-only -- qemu-system-x86_64 -numa node,... ...  # keep your own -numa
  qnuma run --domain-xml dom.xml -- qemu-system-x86_64 -nographic disk.qcow2  # libvirt's placement`
}

func (c *PlanCmd) Help() string {
	return `Nothing is started: the plan shows the chosen nodes and why, each node's room,
the guest's NUMA nodes, each vCPU's host CPUs, and the QEMU command line to paste.

Examples:
  qnuma plan --vcpus 12 --memory 8G
  qnuma plan --vcpus 8 --memory 36G --json | jq .guest_nodes
  qnuma plan --root /path/to/sysfs-snapshot --qemu-version 8.2 --vcpus 16 --memory 64G
  qnuma plan -- qemu-system-x86_64 -smp 4 -m 2G disk.qcow2
  qnuma plan --domain-xml dom.xml    # a libvirt domain's vCPUs, cells, numatune and pins`
}
