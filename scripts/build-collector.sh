#!/usr/bin/env bash
# Build the collector from configs/collector-builder.yaml with the OpenTelemetry Collector Builder
# at the pinned version. The binary is cached by the manifest's hash outside the work tree, so a
# fresh clone on the same machine reuses it; it is rebuilt only when the manifest changes.
# Prints the binary's path. An optional argument names another manifest (scripts/benchmark.py
# builds the collector of an earlier commit that way).
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=${1:-configs/collector-builder.yaml}
version=$(sed -n 's/^  version: *//p' "$manifest")
hash=$(sha256sum "$manifest" | cut -c1-16)
cache="${OBSERVABILITY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/observability-stack}"
binary="$cache/otelcol/$hash/otelcol-observability"

if [[ ! -x "$binary" ]]; then
  export GOBIN="$cache/bin" GOFLAGS=-mod=mod
  # The checksum database behind the module proxy had no record of this module at v0.159.0 (the
  # pin when checked; lookup answered 404 while the proxy served it): go.sum comes from the proxy's copy.
  export GONOSUMDB=github.com/open-telemetry/opentelemetry-collector-contrib/connector/servicegraphconnector
  builder="$GOBIN/builder-v$version"
  if [[ ! -x "$builder" ]]; then
    echo "installing the collector builder v$version" >&2
    go install "go.opentelemetry.io/collector/cmd/builder@v$version"
    mv "$GOBIN/builder" "$builder"
  fi
  echo "building the collector from $manifest (a few minutes the first time)" >&2
  mkdir -p .cache/otelcol/build
  "$builder" --config "$manifest" >&2
  mkdir -p "$(dirname "$binary")"
  mv .cache/otelcol/build/otelcol-observability "$binary"
fi
echo "$binary"
