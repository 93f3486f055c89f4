#!/usr/bin/env bash
# Run the whole test suite. Needs Python 3.11+ and Go 1.25+: the collector, Prometheus, promtool and
# actionlint are built from Go modules at pinned versions, cached after the first build. The
# browser test also needs Node.js 20+ with npm and Debian's chromium. No Docker, no Pulumi CLI.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt

# The sample web frontend and the browser driver (tests/test_browser.py): npm ci only when a lock
# file changed since the last install (node_modules/ is ignored by git and kept between runs).
for dir in examples/opendeck-web tests/browser; do
  stamp="$dir/node_modules/.installed-from-lock"
  if ! cmp -s "$dir/package-lock.json" "$stamp"; then
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
  fi
done

OTELCOL_BIN=$(scripts/build-collector.sh)
prometheus_dir=$(scripts/build-prometheus.sh)
ACTIONLINT_BIN=$(scripts/build-actionlint.sh)
export OTELCOL_BIN ACTIONLINT_BIN PROMETHEUS_BIN="$prometheus_dir/prometheus" PROMTOOL_BIN="$prometheus_dir/promtool"

exec .venv/bin/python -m pytest "$@"
