// Package vmcgroup gives one QEMU VM a cpuset cgroup of its own, so that
// the VM can later be moved to other host NUMA nodes.
//
// Why a cgroup: a task's memory policy (set_mempolicy) can only be set by
// the task itself, and a backend's mbind only by qemu when it creates the
// backend. Guest RAM can be moved by migrate_pages/move_pages, but qemu's
// own memory (its heap, its threads' stacks, device buffers) and all that
// it allocates later (THP collapse, refaults after reclaim, balloon
// deflation) would follow the old policies back. A cpuset cgroup's
// cpuset.mems is the one limit another process may change: writing it
// migrates the tasks' pages (always on cgroup v2; on v1 with
// cpuset.memory_migrate=1, which Create sets), blocks until that is done,
// and holds every later allocation to the new nodes.
//
// Hosts differ, and Detect says which kind this one is:
//   - cgroup v2 with the cpuset controller and no systemd: a plain
//     directory /sys/fs/cgroup/qnuma/NAME, +cpuset enabled in the
//     subtree_control of each parent (the qnuma directory holds no
//     processes, as v2 requires of a parent); a child can start inside it
//     (CLONE_INTO_CGROUP, CloneFD).
//   - cgroup v2 under systemd: a transient scope qnuma-NAME.scope in
//     machine.slice with Delegate=yes, AllowedCPUs= and
//     AllowedMemoryNodes=, made through busctl and changed with systemctl
//     set-property --runtime, so that systemd keeps owning the tree it
//     manages. A scope needs a process to start: the first AddProc starts it.
//   - cgroup v1 with a cpuset hierarchy (also the v1 "hybrid" layout, where
//     cgroup2 is mounted at /sys/fs/cgroup/unified without controllers): a
//     directory CPUSET/qnuma/NAME; the qnuma directory gets its parent's
//     cpus and mems, as v1 requires before a child may have any. The
//     thread that starts qemu joins it alone for the fork (JoinThread),
//     so that qemu is born inside, as on v2.
//   - none: Host.Why says why (no cgroup mounted, v2 without the cpuset
//     controller, not root).
//
// What changing cpuset.mems does to the policies inside: the kernel
// rebinds every task and VMA policy of the moved mm (mpol_rebind_mm) by
// position: BIND and INTERLEAVE nodemasks are remapped from the old mems
// to the new ones in order (old {0,1} to new {1,2} sends 0 to 1 and 1 to
// 2), so a caller that moves one guest node among several must pick the
// new mems with that in mind; MPOL_F_STATIC_NODES policies are intersected
// instead, PREFERRED ones are not remapped, shared (memfd/shmem) policies
// are not rebound at all (the cpuset still limits them). The pages move
// node by node from the old mems to the new, whatever their VMA's policy:
// between disjoint sets of the same size each node's pages go to the node
// in the same position (regions bound to 0 and 1, mems {0,1} to {2,3}: to
// 2 and 3), but between overlapping sets the layout is lost (the same
// regions, {0,1} to {1,2}, Linux 6.1: every page ends on node 2 while the
// policies say 1 and 2; MPOL_F_STATIC_NODES keeps the policy, not the
// pages). test/vm's TestScenarioCgroupRebindIsPositional shows both. Writing
// cpuset.cpus resets every task's affinity to the new set: callers re-pin
// vCPU, emulator and I/O threads after SetCPUs.
//
// Root acts on cgroup paths only after checking them: directories are
// opened one component at a time without following symlinks, must be
// owned by root and writable by no one else, and a VM's directory that
// exists already is taken over only when it holds no process.
package vmcgroup
