#!/usr/bin/env bash
# make fuzz: runs every `func FuzzXxx(f *testing.F)` of the module's _test.go
# files with `go test -fuzz` for FUZZTIME each (default 30s), one after the
# other, in its own package. The targets are found, not listed, so a new one
# runs without editing this file. FUZZ=REGEXP runs only the targets whose
# name matches. Fails when no target is found or any run fails; a failing
# input is kept in PKG/testdata/fuzz/FuzzXxx/, where `go test` (and so
# `make test`) runs it as a seed from then on.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZ=${FUZZ:-}

# "dir name" for each target, sorted; build/ and testdata/ hold no sources.
targets=$(find . \( -path ./build -o -name testdata -o -name '.*' ! -name . \) -prune -o \
    -type f -name '*_test.go' -print |
  { xargs -r grep -HoE '^func Fuzz[A-Za-z0-9_]*\(' || true; } |
  sed -E 's|^\./(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|; s|^\./[^/]*:func (Fuzz[A-Za-z0-9_]*)\($|. \1|' |
  awk -v re="$FUZZ" '$2 ~ re' | sort -u)

if [ -z "$targets" ]; then
  echo "fuzz: no func Fuzz... in any _test.go${FUZZ:+ matching $FUZZ}" >&2
  exit 1
fi

failed=()
n=0
while read -r dir name; do
  n=$((n + 1))
  echo "== fuzz ./$dir $name for $FUZZTIME"
  if ! "$GO" test -run='^$' -fuzz="^$name\$" -fuzztime="$FUZZTIME" "./$dir"; then
    failed+=("./$dir $name")
  fi
done <<<"$targets"

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of $n target(s) failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  echo "fuzz: the failing inputs are in PKG/testdata/fuzz/NAME/; go test ./PKG now runs them" >&2
  exit 1
fi
echo "fuzz: $n target(s) ran $FUZZTIME each without a failure"
