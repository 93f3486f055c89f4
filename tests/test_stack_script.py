"""scripts/stack.py: the local backend and passphrase it sets up when the user gave none."""

from __future__ import annotations

import importlib.util
import shutil
import stat
import subprocess
import urllib.error

import pytest

from tests.harness import project_path


@pytest.fixture
def stack_script(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("stack_script", project_path("scripts", "stack.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "STATE_DIR", tmp_path / ".pulumi-state")
    for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    return module


def test_defaults_to_a_local_file_backend_and_a_private_generated_passphrase(stack_script):
    env = stack_script.workspace_env()
    state = stack_script.STATE_DIR
    assert env["PULUMI_BACKEND_URL"] == state.as_uri()
    passphrase = state / "passphrase"
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase)
    assert len(passphrase.read_text()) >= 32
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600


def test_the_passphrase_is_generated_once(stack_script):
    stack_script.workspace_env()
    first = (stack_script.STATE_DIR / "passphrase").read_text()
    stack_script.workspace_env()
    assert (stack_script.STATE_DIR / "passphrase").read_text() == first


def test_user_backend_and_passphrase_win(stack_script, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://team-state")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "given")
    assert stack_script.workspace_env() == {}
    assert not stack_script.STATE_DIR.exists()


def test_the_cli_it_installs_matches_the_sdk(stack_script):
    import importlib.metadata

    assert importlib.metadata.version("pulumi") == stack_script.PULUMI_VERSION


def test_policy_packs_pass_through_as_absolute_paths(stack_script, monkeypatch):
    prepared = []
    monkeypatch.setattr(stack_script, "prepare_policy_pack", prepared.append)
    monkeypatch.chdir(project_path())
    assert stack_script.policy_options([], []) == {}
    options = stack_script.policy_options(["policy"], ["cfg.json"])
    assert options == {"policy_packs": [str(project_path("policy"))], "policy_pack_configs": [str(project_path("cfg.json"))]}
    assert prepared == [project_path("policy")]
    with pytest.raises(SystemExit, match="needs a --policy-pack"):
        stack_script.policy_options([], ["cfg.json"])


def test_a_folder_without_a_policy_pack_is_refused(stack_script, tmp_path):
    with pytest.raises(SystemExit, match=r"no PulumiPolicy\.yaml"):
        stack_script.prepare_policy_pack(tmp_path)


def test_a_cli_that_cannot_be_downloaded_ends_in_one_line_saying_what_to_do(stack_script, monkeypatch):
    def no_network(**_):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(stack_script.shutil, "which", lambda _: None)
    monkeypatch.setattr(stack_script.auto.PulumiCommand, "install", staticmethod(no_network))
    with pytest.raises(SystemExit) as exit_:
        stack_script.pulumi_command()
    message = str(exit_.value.code)
    assert "\n" not in message and "Traceback" not in message
    assert f"Pulumi CLI v{stack_script.PULUMI_VERSION}" in message and "name resolution" in message
    assert "put `pulumi` on PATH" in message


@pytest.mark.parametrize(("stack", "installed"), [("dev", "requirements-docker.txt"), ("prod", "requirements.txt")])
def test_a_docker_stack_gets_no_aws_provider_sdk(tmp_path, stack, installed):
    """The Python language host asks the CLI for a plugin per installed provider SDK, so a dev
    stack's virtualenv must not hold pulumi-aws: scripts/stack.sh installs only what the target needs."""
    for name in ("requirements.txt", "requirements-docker.txt", "constraints.txt", f"Pulumi.{stack}.yaml"):
        shutil.copy(project_path(name), tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(project_path("scripts", "stack.sh"), tmp_path / "scripts" / "stack.sh")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    # Stands in for the virtualenv's interpreter: records what it was asked to install or run.
    python.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n')
    python.chmod(0o755)
    subprocess.run(["bash", str(tmp_path / "scripts" / "stack.sh"), "preview", stack], check=True, capture_output=True)
    install, run = (tmp_path / "calls").read_text().splitlines()
    assert f"-r {installed} -c constraints.txt" in install and run == f"scripts/stack.py preview {stack}"
    assert "pulumi-aws" not in project_path("requirements-docker.txt").read_text()
    assert "-r requirements-docker.txt" in project_path("requirements.txt").read_text()
