"""The Makefile's tasks run the commands the README documents (dry runs: nothing is deployed)."""

from __future__ import annotations

import subprocess

import pytest

from tests.harness import project_path


def dry_run(*args: str) -> str:
    result = subprocess.run(["make", "-n", *args], cwd=project_path(), capture_output=True, text=True, check=True)
    return result.stdout


@pytest.mark.parametrize("action", ["preview", "up"])
def test_preview_and_up_run_the_stack_script_with_the_policy_pack(action):
    assert dry_run(action).strip() == f"scripts/stack.sh {action} dev --policy-pack policy"
    assert dry_run(action, "STACK=prod").strip() == f"scripts/stack.sh {action} prod --policy-pack policy"


def test_destroy_takes_the_stack():
    assert dry_run("destroy", "STACK=prod").strip() == "scripts/stack.sh destroy prod"


def test_render_lint_typecheck_and_test_run_the_checked_commands():
    assert ".venv/bin/python -m components.render --stack prod --out out" in dry_run("render", "STACK=prod", "OUT=out")
    assert ".venv/bin/ruff check ." in dry_run("lint")
    assert ".venv/bin/mypy" in dry_run("typecheck")
    assert "scripts/test.sh -q" in dry_run("test")


def test_install_uses_the_pinned_dev_requirements():
    assert "pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt" in dry_run("-B", "install")
