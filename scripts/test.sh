#!/usr/bin/env bash
# Run the whole test suite. Needs Python 3.11+ and Go 1.25+: the collector, Prometheus, promtool and
# actionlint are built from Go modules at pinned versions, cached after the first build; the
# browser test's Debian chromium is installed when missing (as root, with apt), its npm packages
# from the lock files (Node.js 20+ with npm). No Docker, no Pulumi CLI. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt

# Debian packages the tests run: chromium (the browser test; no tool downloads a browser of its
# own) and busybox (the shell the aws queue-slot claim runs in, tests/test_queue_handover.py).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v busybox >/dev/null || missing+=(busybox)
if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing Debian's ${missing[*]} for the tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: sudo apt-get install ${missing[*]} (the browser test drives /usr/bin/chromium; the queue-slot test runs busybox)" >&2
    exit 1
  fi
fi
command -v npm >/dev/null || { echo "npm is missing: install Node.js 20+ with npm (the browser test's packages)" >&2; exit 1; }

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
