#!/usr/bin/env bash
# The test command: every package with the race detector, then each fuzz
# target for a short bounded time (FUZZTIME, default 10s).
set -euo pipefail
cd "$(dirname "$0")"
go test -race -count=1 -timeout 15m ./...
fuzztime=${FUZZTIME:-10s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done
done
