"""The GitHub Actions workflows: valid by GitHub's schema and actionlint, pinned, and doing what the
README says (preview with the policy pack on pull requests, up per stack, guarded destroy)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import project_path

WORKFLOWS_DIR = project_path(".github", "workflows")
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")
DOCUMENTED_SECRETS = {"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"}
DOCUMENTED_VARIABLES = {"AWS_REGION", "AWS_PREVIEW_ROLE_ARN", "AWS_DEPLOY_ROLE_ARN", "AWS_PROD_ROLE_ARN", "DEPLOY_PROD"}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS_DIR / name).read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    return workflow.get("on") or workflow[True]  # YAML 1.1 reads the bare key `on` as true


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if s.get("uses", "").startswith(action + "@")]


def actionlint() -> str:
    binary = os.environ.get("ACTIONLINT_BIN")
    assert binary and os.access(binary, os.X_OK), "set ACTIONLINT_BIN to scripts/build-actionlint.sh's output (scripts/test.sh does)"
    return binary


# --- validators --------------------------------------------------------------------------------


def test_there_are_the_four_workflows():
    assert [p.name for p in WORKFLOWS] == ["checks.yml", "deploy.yml", "destroy.yml", "pull-request.yml"]


def test_workflows_match_githubs_schema():
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_actionlint():
    result = subprocess.run([actionlint(), "-no-color", "-oneline", *map(str, WORKFLOWS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_action_inputs_are_known_to_actionlint(path):
    """actionlint knows popular actions' inputs by major tag (pulumi/actions@v6, ...): check our
    exact pins as their major so a misspelt input fails here, not on the first run."""
    as_major = re.sub(r"@(v\d+)\.\d+\.\d+", r"@\1", path.read_text())
    result = subprocess.run(
        [actionlint(), "-no-color", "-oneline", "-stdin-filename", path.name, "-"], input=as_major, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_validators_reject_a_broken_workflow(tmp_path):
    broken = (WORKFLOWS_DIR / "pull-request.yml").read_text().replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1)
    path = tmp_path / "broken.yml"
    path.write_text(broken)
    schema = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True, check=False)
    lint = subprocess.run([actionlint(), "-no-color", str(path)], capture_output=True, check=False)
    assert schema.returncode != 0 and lint.returncode != 0
    misspelt = re.sub(r"@(v\d+)\.\d+\.\d+", r"@\1", (WORKFLOWS_DIR / "pull-request.yml").read_text()).replace("policyPacks:", "policyPack:")
    lint = subprocess.run([actionlint(), "-no-color", "-"], input=misspelt, capture_output=True, text=True, check=False)
    assert lint.returncode != 0 and 'input "policyPack" is not defined' in lint.stdout


# --- what the workflows do ---------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_exact_versions(path):
    uses = [s["uses"] for job in load(path.name)["jobs"].values() for s in job.get("steps", []) if "uses" in s]
    assert uses and all(PINNED.match(u) for u in uses), [u for u in uses if not PINNED.match(u)]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_cloud_credentials_come_from_oidc_only(path):
    for name, job in load(path.name)["jobs"].items():
        for step in steps_using(job, "aws-actions/configure-aws-credentials"):
            assert set(step["with"]) == {"role-to-assume", "aws-region"}, name
            assert job["permissions"]["id-token"] == "write", name
    assert "aws-access-key-id" not in path.read_text() and "AWS_SECRET_ACCESS_KEY" not in path.read_text()


def test_secrets_and_variables_are_the_documented_ones():
    text = "".join(p.read_text() for p in WORKFLOWS)
    assert set(re.findall(r"secrets\.(\w+)", text)) == DOCUMENTED_SECRETS
    assert set(re.findall(r"vars\.(\w+)", text)) == DOCUMENTED_VARIABLES
    readme = project_path("README.md").read_text()
    assert all(f"`{name}`" in readme for name in DOCUMENTED_SECRETS | DOCUMENTED_VARIABLES)


def pulumi_steps() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(p.name, job, s) for p in WORKFLOWS for job in load(p.name)["jobs"].values() for s in steps_using(job, "pulumi/actions")]


def test_the_pulumi_cli_matches_the_sdk_pin():
    spec = importlib.util.spec_from_file_location("stack_script", project_path("scripts", "stack.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {s["with"]["pulumi-version"] for _, _, s in pulumi_steps()} == {module.PULUMI_VERSION}


def test_every_preview_and_up_applies_the_policy_pack():
    for workflow, _, step in pulumi_steps():
        if step["with"]["command"] in ("preview", "up"):
            assert step["with"]["policyPacks"] == "policy", workflow


def test_pull_requests_preview_each_touched_stack_in_one_edited_comment():
    workflow = load("pull-request.yml")
    assert "pull_request" in triggers(workflow)
    preview = workflow["jobs"]["preview"]
    assert set(preview["needs"]) == {"checks", "stacks"}
    assert preview["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.stacks.outputs.touched) }}"
    [step] = steps_using(preview, "pulumi/actions")
    assert step["with"]["command"] == "preview" and step["with"]["stack-name"] == "${{ matrix.stack }}"
    assert step["with"]["comment-on-pr"] is True and step["with"]["edit-pr-comment"] is True
    assert preview["permissions"]["pull-requests"] == "write"
    assert "scripts/stacks.py touched" in yaml.safe_dump(workflow["jobs"]["stacks"])


def test_checks_run_the_tests_lint_and_upload_the_render():
    checks = load("checks.yml")
    assert "workflow_call" in triggers(checks)
    steps = checks["jobs"]["checks"]["steps"]
    commands = " ".join(s.get("run", "") for s in steps)
    assert "scripts/test.sh -q" in commands and "scripts/lint.sh" in commands and "-m components.render" in commands
    [upload] = steps_using(checks["jobs"]["checks"], "actions/upload-artifact")
    assert upload["with"]["path"] == "build/render/"
    for name in ("pull-request.yml", "deploy.yml"):
        assert load(name)["jobs"]["checks"]["uses"] == "./.github/workflows/checks.yml"


def test_main_deploys_dev_like_stacks_and_prod_only_through_the_protected_environment():
    workflow = load("deploy.yml")
    assert triggers(workflow)["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    [up] = steps_using(jobs["deploy"], "pulumi/actions")
    assert up["with"]["command"] == "up" and up["with"]["stack-name"] == "${{ matrix.stack }}"
    assert "environment" not in jobs["deploy"]
    [prod] = steps_using(jobs["deploy-prod"], "pulumi/actions")
    assert prod["with"]["command"] == "up" and prod["with"]["stack-name"] == "prod"
    assert jobs["deploy-prod"]["environment"] == "production"
    assert "checks" in jobs["deploy-prod"]["needs"] and "deploy" in jobs["deploy-prod"]["needs"]
    smoke = " ".join(s.get("run", "") for s in jobs["smoke-dev"]["steps"])
    assert "scripts/stack.sh up dev --policy-pack policy" in smoke and "scripts/stack.sh destroy dev" in smoke


def test_updates_of_one_stack_never_overlap():
    deploy, destroy = load("deploy.yml")["jobs"], load("destroy.yml")["jobs"]
    groups = {
        "deploy": deploy["deploy"]["concurrency"],
        "deploy-prod": deploy["deploy-prod"]["concurrency"],
        "destroy": destroy["destroy"]["concurrency"],
    }
    assert groups["deploy"]["group"] == "pulumi-${{ matrix.stack }}"
    assert groups["deploy-prod"]["group"] == "pulumi-prod"
    assert groups["destroy"]["group"] == "pulumi-${{ inputs.stack }}"
    assert all(g["cancel-in-progress"] is False for g in groups.values())


def test_destroy_takes_a_stack_and_a_confirmation_and_checks_them_first():
    workflow = load("destroy.yml")
    inputs = triggers(workflow)["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["required"] is True and inputs["confirm"]["default"] == ""
    jobs = workflow["jobs"]
    assert jobs["destroy"]["needs"] == "check"
    assert 'scripts/stacks.py check-destroy --stack "$STACK" --confirm "$CONFIRM"' in jobs["check"]["steps"][-1]["run"]
    assert jobs["destroy"]["environment"] == "${{ inputs.stack == 'prod' && 'production' || 'teardown' }}"
    [step] = steps_using(jobs["destroy"], "pulumi/actions")
    assert step["with"]["command"] == "destroy"


# --- scripts/stacks.py: which stacks a run acts on ---------------------------------------------


@pytest.fixture(scope="module")
def stacks_script():
    spec = importlib.util.spec_from_file_location("stacks_script", project_path("scripts", "stacks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(tmp_path):
    shutil.copy(project_path("Pulumi.yaml"), tmp_path)
    for stack in ("dev", "prod"):
        shutil.copy(project_path(f"Pulumi.{stack}.yaml"), tmp_path)
    (tmp_path / "Pulumi.staging.yaml").write_text("config:\n  observability:target: aws\n  observability:grafanaAnonymousRole: none\n")
    return tmp_path


def test_a_stack_file_touches_its_stack_docs_and_tests_none_and_code_all(stacks_script):
    stacks = ["dev", "prod", "staging"]
    assert stacks_script.touched(["Pulumi.prod.yaml"], stacks) == ["prod"]
    assert stacks_script.touched(["docs/runbook.md", "README.md", "tests/test_policy.py"], stacks) == []
    for shared in ("components/services/tempo.py", "Pulumi.yaml", "configs/alerts/stack.yaml", "policy/rules.py", "constraints.txt"):
        assert stacks_script.touched(["README.md", shared], stacks) == stacks, shared


def test_dev_like_stacks_are_aws_and_not_production(stacks_script, project):
    assert stacks_script.deployable(["dev", "prod", "staging"], project) == ["staging"]
    assert stacks_script.matrix(["dev", "staging"], project) == '[{"stack": "dev", "target": "docker"}, {"stack": "staging", "target": "aws"}]'


def test_destroy_refuses_prod_without_confirmation_and_docker_stacks(stacks_script, project):
    assert "confirm" in stacks_script.destroy_refusal("prod", "", project)
    assert "confirm" in stacks_script.destroy_refusal("prod", "yes", project)
    assert stacks_script.destroy_refusal("prod", "destroy prod", project) is None
    assert stacks_script.destroy_refusal("staging", "", project) is None
    assert "scripts/stack.sh destroy dev" in stacks_script.destroy_refusal("dev", "", project)
    assert "no stack file" in stacks_script.destroy_refusal("qa", "", project)


def test_check_destroy_exits_non_zero_with_the_reason():
    result = subprocess.run(
        [sys.executable, "scripts/stacks.py", "check-destroy", "--stack", "prod"], cwd=project_path(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and "destroy prod" in result.stderr
