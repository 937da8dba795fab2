#!/bb/sh
# Init of qnuma's tiny guest: print the guest's NUMA view, one line per
# node, then the marker, and power off. Lines go through /dev/kmsg so the
# kernel writes them to the console synchronously before the power-off.
B=/bb/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
say() { echo "<2>qnuma-guest: $*" >/dev/kmsg; }
say "vcpus $($B cat /sys/devices/system/cpu/online) memtotal $($B awk '/^MemTotal/ {print $2 " " $3}' /proc/meminfo)"
for n in /sys/devices/system/node/node*; do
	cpus=$($B cat $n/cpulist)
	say "node ${n##*/node} cpus ${cpus:--} memtotal $($B awk '/MemTotal/ {print $4 " " $5}' $n/meminfo) distance $($B cat $n/distance)"
done
say "boot ok"
$B poweroff -f
