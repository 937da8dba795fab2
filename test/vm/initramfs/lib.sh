# Shell functions for scripts run inside the qnuma test host (sourced
# before the script). They read /proc and /sys and fail loudly.

# die MESSAGE: print to stderr and exit 1.
die() {
	echo "FAIL: $*" >&2
	exit 1
}

# node_cpulist N: the CPUs the kernel lists for node N.
node_cpulist() { cat /sys/devices/system/node/node$1/cpulist; }

# node_memtotal_mib N: node N's MemTotal in MiB.
node_memtotal_mib() { awk '/MemTotal/ {print int($4 / 1024)}' /sys/devices/system/node/node$1/meminfo; }

# mib_on_node PID NODE: MiB of PID's pages on NODE, summed over its mappings
# in /proc/PID/numa_maps (Nx= counts pages of kernelpagesize_kB each).
mib_on_node() {
	awk -v want="N$2" '
		{ kb = 4; n = 0
		  for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "kernelpagesize_kB") kb = kv[2]
			if (kv[1] == want) n = kv[2]
		  }
		  total += n * kb }
		END { print int(total / 1024) }' /proc/$1/numa_maps
}

# expect_mem_on PID NODE MIB: fail unless PID has at least MIB MiB on NODE;
# prints the per-node summary either way.
expect_mem_on() {
	got=$(mib_on_node "$1" "$2") || die "read /proc/$1/numa_maps"
	echo "pid $1: ${got} MiB on node $2 (want >= $3)"
	[ "$got" -ge "$3" ] || { biggest_mapping "$1" >&2; die "pid $1 has ${got} MiB on node $2, want >= $3"; }
}

# biggest_mapping PID: the numa_maps line of PID's largest resident mapping
# (a VM's guest RAM), e.g. "7f.. bind:1 anon=65536 dirty=65536 N1=65536 ...".
biggest_mapping() {
	awk '{ n = 0
	       for (i = 1; i <= NF; i++) if ($i ~ /^N[0-9]+=/) { split($i, kv, "="); n += kv[2] }
	       if (n > max) { max = n; line = $0 } }
	     END { print line }' /proc/$1/numa_maps
}

# cpus_allowed TID: the thread's Cpus_allowed_list.
cpus_allowed() { awk '/^Cpus_allowed_list/ {print $2}' /proc/$1/status; }

# mems_allowed TID: the thread's Mems_allowed_list.
mems_allowed() { awk '/^Mems_allowed_list/ {print $2}' /proc/$1/status; }

# load_kvm: insmod kvm and kvm_amd (the test host's -cpu max has SVM) so a
# nested qemu can use -accel kvm. Idempotent.
load_kvm() {
	[ -e /dev/kvm ] && return 0
	for m in irqbypass ccp kvm kvm_amd; do
		[ -e /modules/$m.ko ] || continue
		grep -q "^$m " /proc/modules || insmod /modules/$m.ko || die "insmod $m"
	done
	[ -e /dev/kvm ] || die "no /dev/kvm after loading kvm_amd"
}
