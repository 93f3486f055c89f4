#!/usr/bin/env bash
# Build the thanos binary (Receive, Store Gateway, Query, Compactor, sidecar) from the Go module
# proxy, as scripts/build-prometheus.sh builds Prometheus: only a measurement of the durable
# metrics store (benchmarks/metrics-store.md) uses it for now. Cached outside the work tree by
# version. Prints the binary's path.
set -euo pipefail

version="${THANOS_VERSION:-v0.42.5}"
# v0.42.5's go.mod needs go >= 1.26.10 and the machine has 1.26.8: the go command fetches this
# approved toolchain from the module proxy (/work/.library/env/packages/go-partial.tsv header).
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
cache="${OBSERVABILITY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/observability-stack}"
out="$cache/thanos/$version"

if [[ ! -x "$out/thanos" ]]; then
  echo "building thanos $version from Go modules (many minutes the first time)" >&2
  info=$(go mod download -json "github.com/thanos-io/thanos@$version")
  src=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$info")
  [[ -n "$src" ]] || { echo "go mod download failed: $info" >&2; exit 1; }
  # go.mod has replace directives, so `go install pkg@version` refuses it: build inside the module.
  ldflags="-s -w -X github.com/prometheus/common/version.Version=${version#v}"
  mkdir -p "$out.tmp"
  # The tags of upstream's .promu.yml: without slicelabels, Thanos's unsafe casts of labels.Labels
  # meet Prometheus's default stringlabels layout and Receive panics on its first gRPC reply.
  (cd "$src" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -tags netgo,slicelabels -ldflags "$ldflags" \
    -o "$out.tmp/thanos" ./cmd/thanos >&2)
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
echo "$out/thanos"
