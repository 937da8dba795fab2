#!/usr/bin/env bash
# Boot test: boots qnuma's tiny guest under `qnuma run` and passes when the
# guest's marker ("qnuma-guest: boot ok") appears on its serial console.
# Works on any host (one NUMA node or many, KVM or TCG).
#
#   QNUMA=build/qnuma scripts/boot-test.sh [--timeout SECONDS] [qnuma run flags]
#
# e.g. scripts/boot-test.sh --timeout 90 --vcpus 4 --memory 512M --host-nodes 1
# Defaults: --vcpus 2 --memory 256M, a 60 s timeout, --accel auto (KVM when
# /dev/kvm is writable, else TCG; a KVM boot that fails is tried once more
# under TCG, and says so, since some hosts' KVM cannot boot a stock kernel).
# Exit 0 when the guest booted and powered off; 1 otherwise, with the
# console's last lines.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
QNUMA=${QNUMA:-$root/build/qnuma}
cache=${QNUMA_VM_CACHE:-$root/build/vm}
marker="qnuma-guest: boot ok"

timeout=60
accel_mode=auto
flags=()
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --timeout=*) timeout=${1#--timeout=}; shift ;;
    --accel) accel_mode=${2:?--accel needs auto, kvm or tcg}; shift 2 ;;
    --accel=*) accel_mode=${1#--accel=}; shift ;;
    *) flags+=("$1"); shift ;;
  esac
done
case $timeout in ''|*[!0-9]*) echo "boot-test: --timeout takes whole seconds, not '$timeout'" >&2; exit 1 ;; esac
have_flag() { local f; for f in "${flags[@]}"; do case $f in "$1"|"$1"=*) return 0 ;; esac; done; return 1; }
have_flag --vcpus || flags+=(--vcpus 2)
have_flag --memory || flags+=(--memory 256M)

[ -x "$QNUMA" ] || { echo "boot-test: no qnuma at $QNUMA (make build, or set QNUMA)" >&2; exit 1; }
assets_ok() {
  [ -f "$cache/assets.env" ] || return 1
  # shellcheck source=/dev/null
  . "$cache/assets.env"
  [ -f "$QNUMA_VM_KERNEL" ] && [ -f "$QNUMA_GUEST_INITRD" ]
}
assets_ok || { "$root/scripts/vm-assets.sh" >/dev/null && assets_ok; } ||
  { echo "boot-test: the tiny guest's assets are missing (scripts/vm-assets.sh)" >&2; exit 1; }
eval "guest=($QNUMA_GUEST_ARGS)"

case $accel_mode in
  auto) if [ -w /dev/kvm ]; then modes=(kvm tcg); else modes=(tcg); fi ;;
  kvm|tcg) modes=("$accel_mode") ;;
  *) echo "boot-test: --accel takes auto, kvm or tcg, not '$accel_mode'" >&2; exit 1 ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# boot ACCEL: one boot under qnuma run; sets status and why.
boot() {
  if [ "$1" = kvm ]; then accel=(-accel kvm -cpu host); else accel=(-accel tcg,thread=multi -cpu max); fi
  echo "boot-test: $QNUMA run ${flags[*]} -- qemu-system-x86_64 ${accel[*]} (tiny guest), timeout ${timeout}s"
  status=0
  # qnuma's own --timeout powers the guest down and exits 124; timeout(1) is
  # the backstop should qnuma itself hang.
  timeout --kill-after=10 $((timeout + 20)) \
    "$QNUMA" run --timeout "${timeout}s" "${flags[@]}" -- qemu-system-x86_64 "${accel[@]}" "${guest[@]}" \
    >"$log" 2>&1 </dev/null || status=$?
  grep '^qnuma-guest:' "$log" || true
  if [ "$status" -eq 0 ] && grep -qF "$marker" "$log"; then return 0; fi
  if [ "$status" -eq 124 ]; then why="qnuma stopped the guest at the ${timeout}s timeout (exit 124)"
  elif [ "$status" -eq 2 ]; then why="qnuma refused the VM (exit 2)"
  elif [ "$status" -ne 0 ]; then why="qnuma exited with status $status"
  else why="no '$marker' on the console"; fi
  return 1
}

for mode in "${modes[@]}"; do
  if boot "$mode"; then
    echo "boot-test: PASS ($mode)"
    exit 0
  fi
  # Bad input fails the same way under any accelerator.
  [ "$status" -eq 2 ] && break
  [ "$mode" = kvm ] && [ ${#modes[@]} -gt 1 ] && echo "boot-test: the KVM boot failed ($why); trying TCG" >&2
done
echo "boot-test: FAIL: $why. Last lines:" >&2
tail -n 20 "$log" >&2
exit 1
