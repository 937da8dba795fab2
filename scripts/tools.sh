#!/usr/bin/env bash
# Builds the Go tools `make vet` runs (staticcheck) at pinned versions into
# build/tools, from the Go module proxy: nothing is installed outside the
# checkout. Safe to run again: a tool already built at its version by this Go
# is kept. Prints the tools directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
dir="$root/build/tools"

# name, package, version
tools=(
  "staticcheck honnef.co/go/tools/cmd/staticcheck v0.8.2"
)

mkdir -p "$dir"
gover=$("$GO" env GOVERSION)
for t in "${tools[@]}"; do
  read -r name pkg version <<<"$t"
  bin="$dir/$name"
  if [ -x "$bin" ]; then
    info=$("$GO" version -m "$bin" 2>/dev/null || true)
    # A tool built by another Go may not load this Go's packages: rebuild it.
    if grep -q "^$bin: $gover\$" <<<"$info" && grep -qE "^[[:space:]]+mod[[:space:]].*[[:space:]]$version([[:space:]]|\$)" <<<"$info"; then
      continue
    fi
  fi
  echo "tools: building $name $version into build/tools" >&2
  # The tool's own module, not qnuma's go.mod, decides its dependencies.
  (cd "$dir" && GOFLAGS=-buildvcs=false GOBIN="$dir" "$GO" install "$pkg@$version")
done
echo "$dir"
