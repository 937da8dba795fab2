#!/usr/bin/env bash
# make demo: what qnuma sees, what it plans, and a tiny guest booted placed
# and pinned under `qnuma run`, then a paused VM's placement as the kernel
# reports it. Runs after `make deps build`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
QNUMA=${QNUMA:-$root/build/qnuma}
cache=${QNUMA_VM_CACHE:-$root/build/vm}
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
SECONDS=0

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }

[ -f "$cache/assets.env" ] || { step "preparing the tiny guest (Debian kernel + busybox, cached in build/vm)"; scripts/vm-assets.sh; }
# shellcheck source=/dev/null
. "$cache/assets.env"
eval "guest=($QNUMA_GUEST_ARGS)"
# TCG unless QNUMA_ACCEL=kvm: the demo is about placement, and TCG boots the
# tiny guest in about 2 s everywhere (some hosts' KVM cannot boot a stock kernel).
if [ "${QNUMA_ACCEL:-tcg}" = kvm ]; then accel=(-accel kvm -cpu host); else accel=(-accel tcg,thread=multi -cpu max); fi

step "1. the host"
show "$QNUMA" topology

step "2. the plan for a 2-vCPU, 256 MiB guest (nothing is started)"
show "$QNUMA" plan --vcpus 2 --memory 256M -- qemu-system-x86_64 "${accel[@]}" -nographic

step "3. the tiny guest booted under qnuma run (-v shows each step and pin; the guest prints its NUMA view)"
show "$QNUMA" run -v --state-dir "$state" --name demo-boot --vcpus 2 --memory 256M --timeout 60s -- \
  qemu-system-x86_64 "${accel[@]}" "${guest[@]}" </dev/null

step "4. a paused VM, and where the kernel says its vCPUs and memory are"
# -v: the launch says when its last step (cont, which leaves a -S VM paused)
# is done, so every thread is pinned before stat looks. --grace 1s: a paused
# guest cannot answer the power-down that ends it.
log="$state/paused.log"
"$QNUMA" run -v --state-dir "$state" --name demo-paused --vcpus 2 --memory 128M --prealloc --grace 1s -- \
  qemu-system-x86_64 "${accel[@]}" -nodefaults -display none -S </dev/null 2>"$log" &
runpid=$!
trap 'kill -TERM "$runpid" 2>/dev/null; wait "$runpid" 2>/dev/null; rm -rf "$state"' EXIT
pinned=""
for _ in $(seq 600); do # at most 60 s
  if grep -q '^qnuma: step cont' "$log"; then pinned=1; break; fi
  kill -0 "$runpid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$pinned" ]; then
  echo "demo: qnuma run did not pin and leave the VM paused (within 60 s); its log:" >&2
  cat "$log" >&2
  exit 1
fi
printf '$ qnuma run -v --name demo-paused --vcpus 2 --memory 128M --prealloc ... -- qemu-system-x86_64 -S ...   (in the background)\n'
grep -E '^qnuma: (pinned|left paused)' "$log"
show "$QNUMA" ps --state-dir "$state"
show "$QNUMA" stat --state-dir "$state" demo-paused
kill -TERM "$runpid"
wait "$runpid" || true
trap 'rm -rf "$state"' EXIT

step "5. the same inside a two-node test host (a Debian kernel under TCG with 2 NUMA nodes, qnuma inside)"
(cd "$root" && CGO_ENABLED=0 go build -o build/testhost ./test/vm/cmd/testhost)
"$root/build/testhost" -topology two -timeout 120s -- '
echo "\$ qnuma topology"; qnuma topology | sed -n "1,7p"
hold_node_memory 0 600   # make node 0 busy: auto placement should pick node 1
echo "\$ qnuma run --name placed --vcpus 2 --memory 256M --prealloc -- qemu-system-x86_64 -S ...   (node 0 made busy first)"
qnuma_start /tmp/q.log run --name placed --vcpus 2 --memory 256M --prealloc -- qemu-system-x86_64 -S -accel tcg -display none -nodefaults
grep -E "^qnuma: (pinned|step cont)" /tmp/q.log
echo "\$ qnuma stat placed"; qnuma stat placed
echo "\$ grep guest RAM in /proc/$qemu_pid/numa_maps"; biggest_mapping $qemu_pid
kill $busy_pid; sleep 1   # node 0 has room again
echo "\$ qnuma move placed --to-nodes 0   (live: the guest RAM, qemu and every thread to node 0)"
qnuma move placed --to-nodes 0
echo "\$ grep guest RAM in /proc/$qemu_pid/numa_maps"; biggest_mapping $qemu_pid
qnuma_stop
'
printf '\ndemo done in %d s\n' "$SECONDS"
