#!/usr/bin/env bash
# Lint (ruff) and type-check (mypy on components/) with the pinned tools; config in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt

.venv/bin/ruff check .
.venv/bin/mypy
