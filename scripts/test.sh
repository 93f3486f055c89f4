#!/usr/bin/env bash
# Run the whole test suite. Needs Python 3.11+ and Go 1.25+: the collector, Prometheus, promtool and
# actionlint are built from Go modules at pinned versions, cached after the first build. No Docker,
# no Pulumi CLI.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt

OTELCOL_BIN=$(scripts/build-collector.sh)
prometheus_dir=$(scripts/build-prometheus.sh)
ACTIONLINT_BIN=$(scripts/build-actionlint.sh)
export OTELCOL_BIN ACTIONLINT_BIN PROMETHEUS_BIN="$prometheus_dir/prometheus" PROMTOOL_BIN="$prometheus_dir/promtool"

exec .venv/bin/python -m pytest "$@"
