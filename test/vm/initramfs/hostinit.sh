#!/bb/sh
# Init of the qnuma test host: mount the basics and the 9p shares, run the
# test's script, report its exit status on the console, power off.
#
# The verdict goes to /dev/kmsg: the kernel prints it on the console
# synchronously, so it cannot be lost in a tty buffer at power-off; and to
# /job/verdict as well, since a message handed to another CPU that holds
# the console (a nested VM's KVM warnings) can still be in flight when the
# power goes.
B=/bb/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev

nonce=
for w in $($B cat /proc/cmdline); do
	case $w in qnuma.nonce=*) nonce=${w#qnuma.nonce=} ;; esac
done
say() { echo "<2>qnuma-vm $nonce $*" >/dev/kmsg; }
# Tells the harness that a boot which hangs from here got as far as init.
say init
fail() {
	say "setup-failed $*"
	$B poweroff -f
	exit 1
}

$B mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
$B mount -t devpts devpts /dev/pts || fail "mount /dev/pts"
$B mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fail "mount /dev/shm"
$B mount -t tmpfs -o mode=1777 tmpfs /tmp || fail "mount /tmp"
$B mount -t tmpfs tmpfs /run || fail "mount /run"
$B mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
$B hostname qnuma-testhost

for m in $($B cat /modules/order); do
	$B insmod /modules/$m.ko || fail "insmod $m"
done

# msize: the 6.1 default (128 KiB) makes exec over 9p needlessly slow.
mount9p() { # tag dir options
	$B mkdir -p "$2" &&
		$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,"$3" "$1" "$2"
}
mount9p job /job rw || fail "mount the job share"
while read -r tag dir mode; do
	mount9p "$tag" "$dir" "$mode" || fail "mount share $tag at $dir"
done </job/shares

export PATH=/usr/sbin:/usr/bin:/bb HOME=/root
cd /tmp
# The harness counts a boot that never gets here as hung and boots again.
: >/job/started || fail "mark the script started"
/bb/sh -c '. /etc/qnuma/lib.sh && . /job/env && . /job/script' >/job/output 2>&1 </dev/null
status=$?
echo "qnuma-vm $nonce exit $status" >/job/verdict
say "exit $status"
$B sync
$B poweroff -f
