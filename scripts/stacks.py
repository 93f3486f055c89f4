"""Which stacks a workflow acts on, as JSON for a GitHub Actions matrix.

    python scripts/stacks.py touched --base <git ref>   stacks whose deployment a change can alter
    python scripts/stacks.py deployable                 stacks that `up` on a push to main (aws, not production)
    python scripts/stacks.py check-destroy --stack S [--confirm TEXT]   exits non-zero unless S may be destroyed

Every entry is {"stack": name, "target": docker|aws}. A stack file change touches its stack; docs
and tests touch none; anything else (program, configs, policy pack, pins, workflows) touches all.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.stackconfig import PROJECT_DIR, load_stack_config, project_name, stack_names
from policy.rules import PRODUCTION_STACKS

_STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^/]+)\.yaml$")
_NO_DEPLOY_EFFECT = re.compile(r"^(docs/|tests/|.*\.md$)")


def target(stack: str, project_dir: Path = PROJECT_DIR) -> str:
    return load_stack_config(stack, project_dir)[f"{project_name(project_dir)}:target"]


def touched(changed: list[str], stacks: list[str]) -> list[str]:
    hit: set[str] = set()
    for path in changed:
        match = _STACK_FILE.match(path)
        if match:
            if match.group("stack") in stacks:
                hit.add(match.group("stack"))
        elif not _NO_DEPLOY_EFFECT.match(path):
            return sorted(stacks)
    return sorted(hit)


def deployable(stacks: list[str], project_dir: Path = PROJECT_DIR) -> list[str]:
    """dev-like stacks: on AWS and not production. Docker stacks live on a developer's machine."""
    return [s for s in stacks if s not in PRODUCTION_STACKS and target(s, project_dir) == "aws"]


def destroy_refusal(stack: str, confirm: str, project_dir: Path = PROJECT_DIR) -> str | None:
    """Why the destroy workflow must not destroy this stack, or None."""
    stacks = stack_names(project_dir)
    if stack not in stacks:
        return f"no stack file Pulumi.{stack}.yaml; stacks: {', '.join(stacks)}"
    if target(stack, project_dir) != "aws":
        return f"{stack} runs on a developer's Docker engine, not from CI: scripts/stack.sh destroy {stack}"
    if stack in PRODUCTION_STACKS and confirm != f"destroy {stack}":
        return f"refusing to destroy {stack}: set the confirm input to exactly 'destroy {stack}'"
    return None


def matrix(stacks: list[str], project_dir: Path = PROJECT_DIR) -> str:
    return json.dumps([{"stack": s, "target": target(s, project_dir)} for s in stacks])


def changed_files(base: str) -> list[str]:
    result = subprocess.run(["git", "diff", "--name-only", f"{base}...HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("touched").add_argument("--base", required=True, help="git ref the change is compared with")
    sub.add_parser("deployable")
    check = sub.add_parser("check-destroy")
    check.add_argument("--stack", required=True)
    check.add_argument("--confirm", default="")
    args = parser.parse_args()
    if args.command == "check-destroy":
        refusal = destroy_refusal(args.stack, args.confirm)
        sys.exit(refusal and f"destroy: {refusal}")
    stacks = stack_names()
    chosen = touched(changed_files(args.base), stacks) if args.command == "touched" else deployable(stacks)
    print(matrix(chosen))


if __name__ == "__main__":
    main()
