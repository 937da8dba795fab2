#!/usr/bin/env bash
# Prepares the cached assets of qnuma's test host and tiny guest (the Debian
# kernel, unpacked without installing, and the initramfs images) in build/vm,
# or $QNUMA_VM_CACHE, and prints where they are. Slow once (a 70 MB
# download); later runs only check that the inputs did not change.
#
# The work is test/vm's Prepare, run through its TestPrepare, which also
# checks the result and writes assets.env for scripts to source.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${QNUMA_VM_CACHE:-$root/build/vm}
if ! log=$(go test -count=1 -run '^TestPrepare$' -v ./test/vm 2>&1); then
  echo "$log" >&2
  echo "vm-assets: preparing the test host assets failed" >&2
  exit 1
fi
case "$log" in *"--- SKIP: TestPrepare"*)
  echo "$log" >&2
  echo "vm-assets: skipped (see the reason above)" >&2
  exit 1 ;;
esac
# Progress lines (downloads, builds) show what was done this time.
grep '^vm: ' <<<"$log" || true
cat "$cache/assets.env"
