"""preview / up / destroy / outputs for one stack, with nothing set up beforehand but Docker.

Uses the Pulumi Automation API: it installs the pinned Pulumi CLI when none is on PATH, keeps state
in a local file backend (no Pulumi account) unless PULUMI_BACKEND_URL says otherwise, and generates
a passphrase for the stack's secrets on first use unless one is given.

Run it through scripts/stack.sh, which prepares the virtualenv first.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from pulumi import automation as auto
from semver import VersionInfo

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = PROJECT_DIR / ".pulumi-state"


def pinned_sdk_version(requirements: Path = PROJECT_DIR / "requirements-docker.txt") -> str:
    """The `pulumi` pin in requirements-docker.txt (every target's): the CLI installed is the same
    release, so the pin lives there only."""
    match = re.search(r"^pulumi==(\S+)$", requirements.read_text(), re.MULTILINE)
    if not match:
        sys.exit(f"{requirements} pins no pulumi==<version>")
    return match.group(1)


PULUMI_VERSION = pinned_sdk_version()


def pulumi_command() -> auto.PulumiCommand:
    if shutil.which("pulumi"):
        return auto.PulumiCommand()
    print(f"Pulumi CLI not found on PATH: installing v{PULUMI_VERSION} under ~/.pulumi/versions", flush=True)
    try:
        return auto.PulumiCommand.install(version=VersionInfo.parse(PULUMI_VERSION))
    except (OSError, subprocess.SubprocessError) as error:  # urllib's URLError is an OSError
        reason = getattr(error, "reason", None) or error
        sys.exit(
            f"could not install the Pulumi CLI v{PULUMI_VERSION} ({reason}): install that version yourself "
            f"(https://www.pulumi.com/docs/iac/download-install/), put `pulumi` on PATH, and run this again"
        )


def workspace_env() -> dict[str, str]:
    env: dict[str, str] = {}
    if not os.environ.get("PULUMI_BACKEND_URL"):
        STATE_DIR.mkdir(exist_ok=True)
        env["PULUMI_BACKEND_URL"] = STATE_DIR.as_uri()
    if not (os.environ.get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        passphrase = STATE_DIR / "passphrase"
        if not passphrase.exists():
            STATE_DIR.mkdir(exist_ok=True)
            passphrase.touch(mode=0o600)
            passphrase.write_text(secrets.token_urlsafe(32))
            print(f"Generated the secrets passphrase in {passphrase}: keep it, or the stack's secrets are lost.")
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase)
    return env


def require_docker(stack: auto.Stack) -> None:
    target = stack.get_all_config().get("observability:target")
    if target is not None and target.value != "docker":
        return
    try:
        subprocess.run(["docker", "info"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        sys.exit("The dev stack needs a running Docker engine: `docker info` failed. Start Docker and try again.")


def prepare_policy_pack(pack: Path) -> None:
    """Give a Python policy pack its virtualenv (PulumiPolicy.yaml: virtualenv: venv) before the CLI runs it."""
    if not (pack / "PulumiPolicy.yaml").exists():
        sys.exit(f"--policy-pack {pack}: no PulumiPolicy.yaml there")
    requirements = pack / "requirements.txt"
    venv = pack / "venv"
    stamp = venv / ".requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes() + (PROJECT_DIR / "constraints.txt").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"installing the policy pack's dependencies into {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", "requirements.txt"], cwd=pack, check=True)
    stamp.write_text(wanted)


def policy_options(packs: list[str], configs: list[str]) -> dict[str, list[str]]:
    """Automation API arguments for `--policy-pack` (paths made absolute: the CLI runs in the project)."""
    if len(configs) > len(packs):
        sys.exit("--policy-pack-config needs a --policy-pack before it")
    options: dict[str, list[str]] = {}
    if packs:
        for pack in packs:
            prepare_policy_pack(Path(pack).resolve())
        options["policy_packs"] = [str(Path(p).resolve()) for p in packs]
    if configs:
        options["policy_pack_configs"] = [str(Path(c).resolve()) for c in configs]
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["preview", "up", "destroy", "outputs"])
    parser.add_argument("stack", nargs="?", default="dev")
    parser.add_argument("--show-secrets", action="store_true", help="outputs: print secret outputs in plain text")
    parser.add_argument(
        "--policy-pack", action="append", default=[], metavar="DIR", help="preview/up: run this CrossGuard policy pack too (repeatable)"
    )
    parser.add_argument("--policy-pack-config", action="append", default=[], metavar="JSON", help="config file for the matching --policy-pack")
    args = parser.parse_args()

    env = workspace_env()
    stack = auto.create_or_select_stack(
        stack_name=args.stack,
        work_dir=str(PROJECT_DIR),
        opts=auto.LocalWorkspaceOptions(
            pulumi_command=pulumi_command(),
            env_vars=env,
            secrets_provider="passphrase",
        ),
    )
    if args.action == "outputs":
        for name, output in sorted(stack.outputs().items()):
            value = "[secret]" if output.secret and not args.show_secrets else output.value
            print(f"{name}: {value}")
        return
    if args.action in ("preview", "up"):
        require_docker(stack)
    common = {"on_output": lambda line: print(line, end="" if line.endswith("\n") else "\n", flush=True), "color": "auto"}
    policies = policy_options(args.policy_pack, args.policy_pack_config)
    if args.action == "preview":
        stack.preview(**common, **policies)
    elif args.action == "up":
        stack.up(show_secrets=False, **common, **policies)
        print(f"\nGrafana admin password: scripts/stack.sh outputs {args.stack} --show-secrets")
    else:
        stack.destroy(**common)


if __name__ == "__main__":
    try:
        main()
    except auto.CommandError as error:
        sys.exit(f"pulumi failed:\n{error}")
