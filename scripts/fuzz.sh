#!/usr/bin/env bash
# Runs every fuzz target of the repository for a while, one after the other, and reports what
# each found and how large its corpus grew. It is not part of the test command (the targets'
# seed corpora run there as ordinary tests); run it by hand or on a schedule.
# Usage: scripts/fuzz.sh [duration per target, default 5m] [package pattern, default ./...]
# Env:   FUZZ_PARALLEL (default: the number of CPUs) is go test's -parallel for the fuzzer.
# A target that finds a failure leaves its input in the package's testdata/fuzz/ directory,
# where it becomes a regression test; the script exits 1 if any target failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH=$PATH:/usr/local/go/bin
fi
duration=${1:-5m}
pattern=${2:-./...}
cache=$(go env GOCACHE)/fuzz
status=0
printf '%-40s %-32s %8s %10s %s\n' package target corpus elapsed result
for pkg in $(go list "$pattern"); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  mapfile -t targets < <(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u)
  for target in "${targets[@]}"; do
    [ -n "$target" ] || continue
    start=$(date +%s)
    log=$(mktemp)
    if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} >"$log" 2>&1; then
      result=ok
    else
      result=FAILED
      status=1
      tail -30 "$log" >&2
    fi
    corpus=$(find "$cache/$pkg/$target" -type f 2>/dev/null | wc -l)
    printf '%-40s %-32s %8s %9ss %s\n' "${pkg#github.com/berthhq/berth/}" "$target" "$corpus" "$(( $(date +%s) - start ))" "$result"
    rm -f "$log"
  done
done
exit $status
