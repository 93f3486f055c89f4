#!/usr/bin/env bash
# Build actionlint (the GitHub Actions workflow linter) from the Go module proxy at the pinned
# version, cached outside the work tree by version. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned here only; bump it and the next run builds the new one.
version=v1.7.12
cache="${OBSERVABILITY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/observability-stack}"
binary="$cache/actionlint/$version/actionlint"

if [[ ! -x "$binary" ]]; then
  echo "building actionlint $version from Go modules" >&2
  mkdir -p "$(dirname "$binary")"
  GOBIN="$(dirname "$binary")" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$version" >&2
fi
echo "$binary"
