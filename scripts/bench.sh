#!/usr/bin/env bash
# make bench: what qnuma costs at start-up and what it buys, measured in one
# run against plain qemu, numactl and pinning after the start (bench/).
# Runs after `make deps build`; prints a Markdown table and writes
# bench/out/results.json and bench/out/results.md.
#
#   scripts/bench.sh [-quick] [-only startup,placement,locality,planning,prealloc]
#   make bench BENCH_ARGS=-quick
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go
[ -x build/qnuma ] || { echo "bench: build/qnuma is missing: run make build first" >&2; exit 1; }

# The probe runs inside the test host too: a static binary needs nothing
# from it.
CGO_ENABLED=0 "$GO" build -o build/qnuma-bench ./bench
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
exec build/qnuma-bench -qnuma build/qnuma -out bench/out/results.json ${BENCH_ARGS:-} "$@"
