#!/usr/bin/env bash
# Installs, with apt-get, only what qnuma's build, tests and demo need and
# this machine lacks. Safe to run again: it does nothing when all is there.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have qemu-system-x86_64 || need+=(qemu-system-x86)
have qemu-img || need+=(qemu-utils)
have numactl || need+=(numactl)
[ -x /bin/busybox ] && file_static=$(LC_ALL=C ldd /bin/busybox 2>&1 || true) || file_static="missing"
case "$file_static" in *"not a dynamic"*) ;; *) need+=(busybox-static) ;; esac
have cpio || need+=(cpio)
have xz || need+=(xz-utils)
have setpriv || need+=(util-linux)
have dpkg-deb || need+=(dpkg)
have gcc || need+=(gcc libc6-dev) # make test's -race needs cgo
# domxml's tests check their domain XMLs against libvirt's schema.
have virt-xml-validate || need+=(libvirt-clients)
have xmllint || need+=(libxml2-utils)
# qnuma libvirt's tests define and start domains in a real libvirt (session mode, as nobody),
# and in a private libvirtd with its QEMU driver in a mount namespace (unshare, mount).
qemu_driver=$(ls /usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so /usr/lib64/libvirt/connection-driver/libvirt_driver_qemu.so 2>/dev/null || true)
{ have libvirtd && [ -n "$qemu_driver" ]; } || need+=(libvirt-daemon libvirt-daemon-driver-qemu)
have unshare || need+=(util-linux)
have mount || need+=(mount)
# make bench's rebalancing figure runs numad against qnuma balance in the test
# host (scripts/deps.sh bench): not needed by make test, and a numad left
# running on the host would move its processes behind the tests' backs.
numad_was_running=""
if [ "${1:-}" = bench ]; then
  have numad || need+=(numad)
  pgrep -x numad >/dev/null 2>&1 && numad_was_running=yes
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "deps: all present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo; then sudo="sudo"; else
    echo "deps: missing ${need[*]}; run as root or install them with apt-get" >&2
    exit 1
  fi
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's package may start its daemon: the bench starts numad itself.
if [ -z "$numad_was_running" ] && pgrep -x numad >/dev/null 2>&1; then
  $sudo numad -i 0 >/dev/null 2>&1 || true
fi
echo "deps: done"
