#!/usr/bin/env bash
# One command per stack action, on a machine with only Python 3.11+ (and Docker for the dev stack):
#   scripts/stack.sh up dev        deploy (installs the Python dependencies and the Pulumi CLI if missing)
#   scripts/stack.sh preview dev   show what would change
#   scripts/stack.sh outputs dev [--show-secrets]
#   scripts/stack.sh destroy dev   tear down
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
# A docker-target stack gets no AWS provider SDK: the CLI would fetch the aws plugin for every
# provider SDK installed (requirements.txt says why). The target is read from the stack file.
requirements=requirements.txt
if [[ -n "${2:-}" && -f "Pulumi.$2.yaml" ]] && ! grep -Eq '^[[:space:]]*observability:target:[[:space:]]*aws[[:space:]]*$' "Pulumi.$2.yaml"; then
  requirements=requirements-docker.txt
fi
stamp=".venv/.${requirements%.txt}.sha256"
wanted=$(cat "$requirements" requirements-docker.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  echo "installing Python dependencies ($requirements) into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements" -c constraints.txt
  echo "$wanted" > "$stamp"
fi
exec .venv/bin/python scripts/stack.py "$@"
