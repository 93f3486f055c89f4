#!/usr/bin/env bash
# Build prometheus and promtool from Go modules at the version of the pinned prometheusImage, so
# the tests check and run the same release the stack deploys (Debian's package is 2.x and rejects
# 3.x config keys). Prometheus 3.X.Y is the Go module github.com/prometheus/prometheus v0.3XX.Y.
# Cached outside the work tree by version. Prints the directory holding both binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(sed -n '/^  prometheusImage:/,/default:/s/^ *default: *.*:v//p' Pulumi.yaml)
[[ "$tag" =~ ^3\.([0-9]+)\.([0-9]+)$ ]] || { echo "prometheusImage default is not a 3.x tag: '$tag'" >&2; exit 1; }
module_version=$(printf 'v0.3%02d.%d' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
# --versions: print what would be built and build nothing (tests/test_versions.py compares it).
if [[ "${1:-}" == "--versions" ]]; then echo "$tag $module_version"; exit 0; fi
cache="${OBSERVABILITY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/observability-stack}"
out="$cache/prometheus/$tag"

if [[ ! -x "$out/prometheus" || ! -x "$out/promtool" ]]; then
  echo "building prometheus and promtool $tag ($module_version) from Go modules (several minutes the first time)" >&2
  src=$(go mod download -json "github.com/prometheus/prometheus@$module_version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  # The module's go.mod has replace directives, so `go install pkg@version` refuses it; build
  # inside the downloaded module instead (its go.sum pins every dependency).
  ldflags="-s -w -X github.com/prometheus/common/version.Version=$tag"
  mkdir -p "$out.tmp"
  (cd "$src" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out.tmp/promtool" ./cmd/promtool >&2)
  (cd "$src" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out.tmp/prometheus" ./cmd/prometheus >&2)
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
echo "$out"
