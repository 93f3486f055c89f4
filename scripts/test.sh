#!/usr/bin/env bash
# Run the whole test suite. Needs Python 3.11+, Go 1.25+ (the collector is built from Go modules,
# cached after the first build) and promtool (Debian: apt-get install prometheus). No Docker, no
# Pulumi CLI. actionlint is built from Go modules too. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt

command -v promtool >/dev/null || { echo "promtool is missing: apt-get install prometheus" >&2; exit 1; }
OTELCOL_BIN=$(scripts/build-collector.sh)
ACTIONLINT_BIN=$(scripts/build-actionlint.sh)
export OTELCOL_BIN ACTIONLINT_BIN

exec .venv/bin/python -m pytest "$@"
