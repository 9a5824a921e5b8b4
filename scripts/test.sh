#!/usr/bin/env bash
# berth's test command. On a fresh Debian machine it installs what the tests need (Debian
# packages, Chromium for the web UI's tests, and pinned peer clients, through the shared tools
# beside the repository), then:
#   gofmt -l (any file listed fails), go vet, unit tests with the race detector, the tests of
#   the out-of-tree example module (examples/custom-driver), and the end-to-end suite in e2e/
#   against the real binary. The storage drivers' tests run against MinIO, fake-gcs-server
#   and Azurite (from npm), which it installs too.
# Usage: scripts/test.sh [all|lint]   (default all; lint = gofmt and go vet only)
# Env:   CI=true turns every missing e2e dependency into a failure instead of a skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared=../shared/tools
mode=${1:-all}

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH=$PATH:/usr/local/go/bin
fi

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

# Missing tools fail the run in CI; elsewhere the tests that need them skip.
soft_fail() {
  if [ "${CI:-}" = true ]; then echo "error: $*" >&2; exit 1; fi
  echo "warning: $* (tests that need it will skip)" >&2
}

lint() {
  step "gofmt -l"
  local unformatted
  unformatted=$(gofmt -l .)
  if [ -n "$unformatted" ]; then
    echo "gofmt would change:" >&2
    echo "$unformatted" >&2
    return 1
  fi
  step "go vet ./..."
  go vet ./...
  # The example module follows the root module through a replace directive: its go.mod and
  # go.sum must list what the root module now needs.
  if ! (cd examples/custom-driver && go mod tidy -diff >/dev/null); then
    echo "examples/custom-driver: go.mod or go.sum is out of date; run: (cd examples/custom-driver && go mod tidy)" >&2
    return 1
  fi
  (cd examples/custom-driver && go vet ./...)
}

install_deps() {
  step "dependencies"
  if [ ! -d "$shared" ]; then
    soft_fail "$shared not found beside the repository"
    return 0
  fi
  # chromium: the web UI's end-to-end tests drive it headless.
  local debs=(skopeo docker.io postgresql chromium)
  # The race detector needs cgo, hence a C toolchain.
  command -v gcc >/dev/null || debs+=(gcc libc6-dev)
  as_root bash "$shared/install-debs.sh" "${debs[@]}" || soft_fail "could not install ${debs[*]}"
  bash "$shared/install-peers.sh" conformance crane regctl oras distribution minio fake-gcs-server >/dev/null ||
    soft_fail "could not install the peer clients"
  # Azurite (Azure Blob Storage's emulator) comes from npm.
  bash "$shared/install-azurite.sh" >/dev/null || soft_fail "could not install Azurite"
  go mod download
}

case $mode in
  lint) lint; exit ;;
  all) ;;
  *) echo "usage: $0 [all|lint]" >&2; exit 2 ;;
esac

install_deps
lint

status=0
step "unit tests (-race)"
pkgs=$(go list ./...)
mapfile -t unit < <(grep -v '/e2e$' <<<"$pkgs" || true)
if [ ${#unit[@]} -gt 0 ]; then
  go test -race -count=1 "${unit[@]}" || status=1
fi

step "example module: examples/custom-driver (-race)"
(cd examples/custom-driver && go test -race -count=1 ./...) || status=1

step "end-to-end tests"
go test ./e2e/ -v -count=1 -timeout 30m || status=1
exit $status
