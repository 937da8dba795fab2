# Shell functions for scripts run inside the qnuma test host (sourced
# before the script). They read /proc and /sys and fail loudly.

# die MESSAGE: print to stderr and exit 1.
die() {
	echo "FAIL: $*" >&2
	exit 1
}

# check CMD...: run one check (a function that dies on failure) in a
# subshell and count its failure, so that every check of a script runs and
# shows; checks_done exits 1 if any failed.
checks_failed=0
check() { ("$@") || checks_failed=$((checks_failed + 1)); }
checks_done() {
	[ "$checks_failed" -eq 0 ] || die "$checks_failed check(s) failed"
	echo "all checks passed"
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

# qemu_args PID: the process's command line, one argument per line.
qemu_args() { tr '\0' '\n' </proc/$1/cmdline; }

# vcpu_tids PID: "VCPU TID" per vCPU thread, from the thread names qemu
# gives with -name ...,debug-threads=on ("CPU 3/TCG", "CPU 3/KVM").
vcpu_tids() {
	for t in /proc/$1/task/*; do
		c=$(cat $t/comm)
		case $c in "CPU "*/*) v=${c#CPU }; echo "${v%%/*} ${t##*/}" ;; esac
	done | sort -n
}

# vcpu_cpus PID: "VCPU CPULIST" per vCPU thread, from Cpus_allowed_list.
vcpu_cpus() { vcpu_tids $1 | while read -r v t; do echo "$v $(cpus_allowed $t)"; done; }

# expect_vcpus_on PID CPULIST [COUNT]: every vCPU thread may run exactly on
# CPULIST (and there are COUNT of them, when given).
expect_vcpus_on() {
	got=$(vcpu_cpus $1)
	[ -n "$got" ] || die "pid $1 has no vCPU threads"
	echo "$got" | while read -r v c; do
		[ "$c" = "$2" ] || die "vcpu $v of pid $1 may run on $c, want $2"
	done || exit 1
	[ -z "$3" ] || [ "$(echo "$got" | wc -l)" -eq "$3" ] || die "pid $1 has $(echo "$got" | wc -l) vCPU threads, want $3"
	echo "pid $1: vcpus on $2"
}

# qnuma_start LOG QNUMA_ARGS...: run `qnuma QNUMA_ARGS` (e.g. run --vcpus 2
# ... -- qemu-system-x86_64 -S ...) in the background with -v, wait until it
# has started, placed and pinned the VM (its "step cont" line; the VM stays
# paused with -S), and set $qnuma_pid and $qemu_pid.
qnuma_start() {
	log=$1
	shift
	: >"$log"
	if [ "$1" = run ]; then
		shift
		qnuma run -v "$@" >"$log" 2>&1 &
	else
		qnuma --verbose "$@" >"$log" 2>&1 & # numactl syntax
	fi
	qnuma_pid=$!
	i=0
	until grep -q 'step cont' "$log"; do
		if ! kill -0 $qnuma_pid 2>/dev/null; then
			cat "$log" >&2
			die "qnuma exited before the VM was running"
		fi
		i=$((i + 1))
		[ $i -le 1200 ] || { cat "$log" >&2; die "qnuma did not start the VM in 120 s"; }
		sleep 0.1
	done
	qemu_pid=$(sed -n 's/.*started qemu pid=\([0-9]*\).*/\1/p' "$log" | head -1)
	[ -n "$qemu_pid" ] || { cat "$log" >&2; die "no qemu pid in qnuma's log"; }
}

# qnuma_stop: stop the VM qnuma_start started and wait for qnuma to exit.
qnuma_stop() {
	kill -TERM $qnuma_pid 2>/dev/null
	wait $qnuma_pid 2>/dev/null
	return 0
}

# expect_vcpu_count_on PID CPULIST N: exactly N vCPU threads may run on
# exactly CPULIST.
expect_vcpu_count_on() {
	got=$(vcpu_cpus $1 | awk -v c="$2" '$2 == c' | wc -l)
	[ "$got" -eq "$3" ] || { vcpu_cpus $1 >&2; die "pid $1 has $got vCPUs on $2, want $3"; }
	echo "pid $1: $3 vcpus on $2"
}

# guest_nodes_on_host_node PID H: the guest node ids whose memory backend
# (in qemu's command line) is bound to host node H alone.
guest_nodes_on_host_node() {
	qemu_args $1 | awk -v h="$2" -F, '
		/^memory-backend-/ { id = ""; hn = ""
			for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "id") id = kv[2]; if (kv[1] == "host-nodes") hn = kv[2] }
			if (hn == h) onh[id] = 1 }
		/^node,/ { g = ""; m = ""
			for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "nodeid") g = kv[2]; if (kv[1] == "memdev") m = kv[2] }
			if (m in onh) print g }'
}

# expect_no_vcpus_on_host_node PID H: no guest node backed by host node H
# has vCPUs (no -numa cpu,node-id=G and no -numa node,...,cpus= for it);
# fails too when no guest node is backed by H.
expect_no_vcpus_on_host_node() {
	gs=$(guest_nodes_on_host_node $1 $2)
	[ -n "$gs" ] || die "pid $1: no guest node is backed by host node $2"
	for g in $gs; do
		if qemu_args $1 | grep -Eq "^cpu,node-id=$g(,|\$)|^node,(.*,)?nodeid=$g,(.*,)?cpus="; then
			die "pid $1: guest node $g (on host node $2) has vCPUs: $(qemu_args $1 | grep -E "node-id=$g(,|\$)|nodeid=$g," | tr '\n' ' ')"
		fi
	done
	echo "pid $1: guest node(s) $(echo $gs) on host node $2 have no vCPUs"
}

# hold_node_memory NODE MIB: make NODE busy with a paused qemu holding MIB
# MiB of preallocated RAM there (not a qnuma VM: qnuma sees it only as
# memory in use); sets $busy_pid.
hold_node_memory() {
	qemu-system-x86_64 -S -daemonize -pidfile /tmp/busy.pid -display none -nodefaults -accel tcg -m ${2}M \
		-object memory-backend-ram,id=busy,size=${2}M,host-nodes=$1,policy=bind,prealloc=on \
		-numa node,nodeid=0,memdev=busy || die "hold $2 MiB on node $1"
	busy_pid=$(cat /tmp/busy.pid)
	echo "node $1 busy: pid $busy_pid holds $(mib_on_node $busy_pid $1) MiB there"
}

# guest_host_nodes PID: "GUEST HOST" per guest node whose memory backend is
# bound to a single host node, from qemu's command line.
guest_host_nodes() {
	qemu_args $1 | awk -F, '
		/^memory-backend-/ { id = ""; hn = ""
			for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "id") id = kv[2]; if (kv[1] == "host-nodes") hn = kv[2] }
			host[id] = hn }
		/^node,/ { g = ""; m = ""
			for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "nodeid") g = kv[2]; if (kv[1] == "memdev") m = kv[2] }
			if (host[m] ~ /^[0-9]+$/) print g, host[m] }'
}

# expect_guest_distances_match PID: every -numa dist of the VM equals the
# distance, in the same direction, between the host nodes backing the two
# guest nodes (from /sys/devices/system/node/nodeA/distance).
expect_guest_distances_match() {
	map=$(guest_host_nodes $1)
	n=0
	for d in $(qemu_args $1 | grep '^dist,'); do
		s=$(echo "$d" | sed 's/.*src=\([0-9]*\).*/\1/')
		t=$(echo "$d" | sed 's/.*dst=\([0-9]*\).*/\1/')
		v=$(echo "$d" | sed 's/.*val=\([0-9]*\).*/\1/')
		a=$(echo "$map" | awk -v g=$s '$1 == g {print $2}')
		b=$(echo "$map" | awk -v g=$t '$1 == g {print $2}')
		[ -n "$a" ] && [ -n "$b" ] || die "guest nodes $s, $t: no single backing host node"
		want=$(cut -d' ' -f$((b + 1)) /sys/devices/system/node/node$a/distance)
		[ "$v" = "$want" ] || die "guest distance $s→$t is $v, host distance $a→$b is $want"
		n=$((n + 1))
	done
	[ $n -gt 0 ] || die "pid $1 gives the guest no distances"
	echo "pid $1: $n guest distances match the host's"
}

# cpulist_expand LIST: one CPU id per line ("0-1,3" gives 0, 1 and 3).
cpulist_expand() {
	echo "$1" | tr ',' '\n' | awk -F- 'NF { e = (NF > 1) ? $2 : $1; for (c = $1; c <= e; c++) print c }'
}

# proc_gone PID: PID has exited (no /proc entry, or a zombie not yet reaped).
proc_gone() {
	[ ! -e /proc/$1/stat ] || [ "$(awk '{print $3}' /proc/$1/stat 2>/dev/null)" = Z ]
}

# expect_no_shared_cpus PID...: every PID has vCPU threads, and no host CPU
# is allowed to two vCPU threads among them (Cpus_allowed_list).
expect_no_shared_cpus() {
	for p in "$@"; do
		[ -n "$(vcpu_tids $p)" ] || die "pid $p has no vCPU threads"
		vcpu_cpus $p | while read -r v l; do
			for c in $(cpulist_expand $l); do echo "$c $p $v"; done
		done
	done >/tmp/cpu_owners
	[ -s /tmp/cpu_owners ] || die "no vCPU threads among pids $*"
	shared=$(sort -n /tmp/cpu_owners | awk 'NR > 1 && $1 == last { print "cpu " $1 " is allowed to pid " lp " vcpu " lv " and pid " $2 " vcpu " $3 }
		{ last = $1; lp = $2; lv = $3 }')
	[ -z "$shared" ] || die "$shared"
	echo "$# VMs: vCPU CPUs $(sort -n /tmp/cpu_owners | awk '{print $1}' | tr '\n' ' ')none shared"
}

# ps_vms: "NAME QEMU_PID OWNER_PID DEDICATED_CPUS" per VM of the
# `qnuma ps --json` output(s) on stdin ("-" for shared vCPUs).
ps_vms() {
	awk '{ v = $2; gsub(/[",]/, "", v) }
		$1 == "\"name\":" { name = v }
		$1 == "\"pid\":" { pid = v }
		$1 == "\"owner_pid\":" { owner = v }
		$1 == "\"dedicated_cpus\":" { cpus = v }
		$1 == "\"created\":" { print name, pid, owner, (cpus == "" ? "-" : cpus) }'
}

# expect_promised_within_nodes: the memory promised per node, summed over
# the VMs of the `qnuma ps --json` output(s) on stdin, is at most the
# node's MemTotal.
expect_promised_within_nodes() {
	awk '/"memory_bytes_per_node": \{/ { in_m = 1; next }
		in_m && /\}/ { in_m = 0; next }
		in_m { gsub(/[",:]/, " "); sum[$1] += $2 }
		END { for (n in sum) printf "%d %.0f\n", n, sum[n] }' | sort -n >/tmp/promised
	[ -s /tmp/promised ] || die "the ledger promises no memory"
	while read -r n b; do
		total=$(awk '/MemTotal/ {printf "%.0f", $4 * 1024}' /sys/devices/system/node/node$n/meminfo)
		echo "node $n: $((b >> 20)) MiB promised, $((total >> 20)) MiB in all"
		[ "$b" -le "$total" ] || die "node $n: $((b >> 20)) MiB promised, more than its $((total >> 20)) MiB"
	done </tmp/promised
}

# stat_field JSON KEY: a scalar of the first VM in `qnuma stat --json`
# output saved in the file JSON.
stat_field() { awk -v k="\"$2\":" '$1 == k { v = $2; gsub(/[",]/, "", v); print v; exit }' "$1"; }

# stat_home JSON: the first VM's home nodes, comma-separated.
stat_home() {
	awk '/"home_nodes": \[/ { in_h = 1; next } in_h && /\]/ { exit }
		in_h { gsub(/[ ,]/, ""); printf "%s%s", sep, $0; sep = "," } END { print "" }' "$1"
}

# stat_ram_mib JSON: "NODE MIB" per node of the first VM's guest RAM.
stat_ram_mib() {
	awk '/"guest_ram": \[/ { in_r = 1; next } in_r && /^ *\],?$/ { exit }
		in_r && /"node":/ { gsub(/[",]/, ""); n = $2 }
		in_r && /"bytes":/ { gsub(/[",]/, ""); printf "%d %d\n", n, $2 / 1048576 }' "$1"
}

# maps_ram_mib PID: "NODE MIB" per node of PID's largest resident mapping
# (its guest RAM), read from /proc/PID/numa_maps.
maps_ram_mib() {
	biggest_mapping $1 | awk '{ kb = 4
		for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "kernelpagesize_kB") kb = kv[2] }
		for (i = 1; i <= NF; i++) if ($i ~ /^N[0-9]+=/) { split(substr($i, 2), kv, "="); printf "%d %d\n", kv[1], kv[2] * kb / 1024 } }'
}

# expect_stat_matches_maps JSON PID: the guest RAM per node in stat's JSON
# equals, within 1 MiB per node, PID's guest RAM in /proc/PID/numa_maps.
expect_stat_matches_maps() {
	stat_ram_mib "$1" >/tmp/stat.ram
	maps_ram_mib "$2" >/tmp/maps.ram
	[ -s /tmp/stat.ram ] || die "$1: stat reports no guest RAM"
	echo "stat: $(tr '\n' ' ' </tmp/stat.ram)| numa_maps of pid $2: $(tr '\n' ' ' </tmp/maps.ram)"
	diffs=$(awk 'NR == FNR { s[$1] = $2; next } { m[$1] = $2 }
		END { for (n in s) if (!(n in m)) m[n] = 0
		      for (n in m) { d = s[n] - m[n]; if (d < -1 || d > 1) printf "node %s: stat says %d MiB, numa_maps says %d MiB; ", n, s[n], m[n] } }' \
		/tmp/stat.ram /tmp/maps.ram)
	[ -z "$diffs" ] || die "$1 against pid $2: $diffs"
}

# backend_host_nodes PID ID: the host-nodes of memory backend ID in qemu's
# command line (key=value, with or without qom-type=, or JSON form), as
# written; empty when it has none.
backend_host_nodes() {
	qemu_args $1 | awk -v want="$2" '
		/^(qom-type=)?memory-backend-/ { id = ""; hn = ""; n = split($0, f, ",")
			for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == "id") id = kv[2]; if (kv[1] == "host-nodes") hn = kv[2] }
			if (id == want) print hn }
		/^\{.*"qom-type" *: *"memory-backend-/ {
			if (match($0, /"id" *: *"[^"]*"/)) { id = substr($0, RSTART, RLENGTH); sub(/.*: *"/, "", id); sub(/"$/, "", id) }
			hn = ""
			if (match($0, /"host-nodes" *: *\[[^]]*\]/)) { hn = substr($0, RSTART, RLENGTH); sub(/.*\[/, "", hn); sub(/\]$/, "", hn); gsub(/ /, "", hn) }
			if (id == want) print hn }'
}

# expect_ram_mapping_on PID MIB NODE: PID has a mapping of MIB MiB resident
# (within 1 MiB; a preallocated memory backend) whose pages are all on NODE,
# by /proc/PID/numa_maps. Prints the mappings of about that size either way.
expect_ram_mapping_on() {
	awk -v mib="$2" -v want="N$3" '
		{ kb = 4; tot = 0; on = 0
		  for (i = 1; i <= NF; i++) { split($i, kv, "=")
			if (kv[1] == "kernelpagesize_kB") kb = kv[2]
			if (kv[1] ~ /^N[0-9]+$/) { tot += kv[2]; if (kv[1] == want) on = kv[2] } }
		  t = tot * kb / 1024; o = on * kb / 1024
		  if (t >= mib - 1 && t <= mib + 1) { print "  " $0 > "/dev/stderr"; if (o >= t - 1) found = 1 } }
		END { exit !found }' /proc/$1/numa_maps ||
		die "pid $1 has no mapping of $2 MiB all on node $3"
	echo "pid $1: a mapping of $2 MiB, all on node $3"
}

# expect_vcpus_within PID VCPUS CPULIST: each vCPU of the list VCPUS has a
# thread, allowed only on CPUs of CPULIST (Cpus_allowed_list a subset).
expect_vcpus_within() {
	want=$(cpulist_expand $3)
	for v in $(cpulist_expand $2); do
		t=$(vcpu_tids $1 | awk -v v=$v '$1 == v {print $2}')
		[ -n "$t" ] || die "pid $1 has no thread for vcpu $v"
		l=$(cpus_allowed $t)
		for c in $(cpulist_expand $l); do
			echo "$want" | grep -qx "$c" || die "vcpu $v of pid $1 may run on $l, not only on $3"
		done
		echo "pid $1: vcpu $v on $l, within $3"
	done
}
