"""The replay (tests/replay.py), the benchmark's floor, registers what the program registers."""

import json
import os
import subprocess
import sys

import pytest

from tests.harness import PROJECT_DIR, run_program
from tests.replay import SDK_PACKAGES, record, registration, write


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_replay_registers_what_the_program_registered(stack, tmp_path):
    run = run_program(stack)
    recording = record(run, stack)
    write(recording, tmp_path / "recording.json")
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "placeholder", "AWS_SECRET_ACCESS_KEY": "placeholder"}
    # A fresh interpreter, as the benchmark runs it: only the SDK modules it imports are loaded.
    command = [sys.executable, "-m", "tests.replay", "replay", str(tmp_path / "recording.json"), "--dump", str(tmp_path / "replayed.json")]
    subprocess.run(command, cwd=PROJECT_DIR, env=env, check=True)
    replayed = json.loads((tmp_path / "replayed.json").read_text())

    # Registration order varies between runs (the SDK registers from a thread pool): compare by URN.
    program = sorted(json.loads(json.dumps([registration(r) for r in run.resources])), key=lambda r: r["urn"])
    assert len(replayed["resources"]) == len(program)
    assert sorted(replayed["resources"], key=lambda r: r["urn"]) == program
    assert (replayed["outputs"], replayed["secretOutputs"]) == (json.loads(json.dumps(run.outputs)), sorted(run.secret_outputs))

    # No program logic: of the project only the harness's stack-file reader; of the SDKs only the
    # packages whose classes were recorded.
    modules = set(replayed["modules"])
    assert {m for m in modules if m.startswith("components")} == {"components", "components.stackconfig", "components.yamltext"}
    recorded = {r["class"].split(".")[0] for r in recording["resources"] if r["class"]}
    assert {m for m in modules if m in SDK_PACKAGES} == recorded
