"""The offline render command: every config a stack deploys, from the stack file alone."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import PurePosixPath

import pytest
import yaml
from ruamel.yaml import YAML

from components import render
from components.grafana.alerts import RuleContext, load_rule_groups
from components.grafana.content import CLOUDWATCH_UID, DATASOURCE_UIDS
from components.grafana.dashboards import for_stack, load_folders
from components.plan import placeholder_stores, plan_stack
from components.platforms import facts_for
from components.platforms.spec import SECRETS_DIR
from components.stackconfig import stack_names
from tests.harness import project_path, run_program, unwrap
from tests.test_settings import settings_for

# Every shape the collector and Prometheus configs take: dev; prod with one collector task; prod
# scaled out (ingest and sampler tiers); prod scaled out with the managed metrics store.
SHAPES = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "prod-scaled": ("prod", {"collectorMaxTasks": "4"}),
    "prod-scaled-amp": ("prod", {"collectorMaxTasks": "4", "metricsBackend": "amp"}),
}
CONFIG_WRITE = re.compile(r'printf "%s" "\$CONFIG_FILE_(\d+)" > ([^;]+)')
# What the mocks name at deploy (tests/harness.py), and what the render writes in its place.
MOCK_BUCKET = re.compile(r"observability-prod-(tempo|loki)-\d{26}")
MOCK_WORKSPACE = re.compile(r"(?<=https://aps-workspaces\.eu-west-1\.amazonaws\.com/workspaces/)ws-metrics")


def deployed_configs(run) -> dict[str, str]:
    """<service>/<file name> -> content of every config file the mocked program hands a service:
    docker uploads, or what the aws config writer puts into the task volume."""
    files = {}
    for container in run.of_type("docker:index/container:Container"):
        for upload in unwrap(container.inputs.get("uploads") or []):
            if not upload["file"].startswith(SECRETS_DIR):
                files[f"{container.name}/{PurePosixPath(upload['file']).name}"] = upload["content"]
    for task in run.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        for definition in json.loads(unwrap(task.inputs["containerDefinitions"])):
            if definition["name"] != "config":
                continue
            values = {e["name"]: e["value"] for e in definition.get("environment", [])}
            for index, path in CONFIG_WRITE.findall(definition["command"][-1]):
                files[f"{task.name.removesuffix('-task')}/{PurePosixPath(shlex.split(path)[0]).name}"] = values[f"CONFIG_FILE_{index}"]
    return files


def with_render_placeholders(text: str) -> str:
    text = MOCK_BUCKET.sub(lambda m: f"<{m.group(1)} bucket, named at deploy>", text)
    return MOCK_WORKSPACE.sub("<workspace id, known at deploy>", text)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_config_the_render_writes_is_the_one_the_program_deploys(shape):
    """The offline render and the mocked program share one plan; here they are compared file by
    file, changed only in the names the cloud gives at deploy (bucket, workspace)."""
    stack, overrides = SHAPES[shape]
    run = run_program(stack, overrides)
    assert run.error is None, run.error
    files = render.render_stack(stack, overrides=overrides)
    deployed = {name: with_render_placeholders(text) for name, text in deployed_configs(run).items()}
    rendered = {name: text for name, text in files.items() if not name.startswith("grafana/")}
    assert set(deployed) == set(rendered)
    for name, text in rendered.items():
        assert deployed[name] == text, name
    # Grafana's data sources: what the provider is asked to create, and what the render writes.
    sources = {d.inputs["uid"]: d.inputs for d in run.of_type("grafana:oss/dataSource:DataSource")}
    for source in json.loads(files["grafana/datasources.json"]):
        created = sources.pop(source["uid"])
        assert with_render_placeholders(unwrap(created["url"])) == source["url"], source["uid"]
        assert json.loads(unwrap(created["jsonDataEncoded"])) == source["json_data"], source["uid"]
    assert not sources, "data sources the render does not write"


def test_prod_renders_its_object_storage_and_self_hosted_metrics():
    files = render.render_stack("prod")
    assert "backend: s3" in files["tempo/tempo.yaml"] and "<tempo bucket, named at deploy>" in files["tempo/tempo.yaml"]
    assert "object_store: s3" in files["loki/loki.yaml"] and "<loki bucket, named at deploy>" in files["loki/loki.yaml"]
    assert "bearertokenauth" in files["collector/config.yaml"] and "sigv4auth" not in files["collector/config.yaml"]
    # Pulumi.prod.yaml keeps metrics in the self-hosted Prometheus (docs/production.md, "Cost at the default sizing").
    assert "http://prometheus.observability-prod.internal:9090" in files["grafana/datasources.json"]
    assert "aps-workspaces" not in files["grafana/datasources.json"]


@pytest.mark.parametrize("stack", stack_names())
def test_every_datasource_dashboard_and_rule_group_is_written(stack):
    files = render.render_stack(stack)
    settings = settings_for(stack)
    uids = set(DATASOURCE_UIDS) | ({CLOUDWATCH_UID} if settings.aws else set())
    assert {s["uid"] for s in json.loads(files["grafana/datasources.json"])} == uids
    for folder in load_folders():
        for dashboard in folder.dashboards:
            stores = placeholder_stores(facts_for(settings))
            buckets = [store.bucket for store in (stores.traces, stores.logs) if store is not None]
            shown = for_stack(dashboard.model, uids, plan_stack(settings).dashboard_constants(buckets))
            assert json.loads(files[f"grafana/dashboards/{folder.uid}/{dashboard.path.name}"]) == shown
    groups = load_rule_groups(datasource_uids=DATASOURCE_UIDS)
    for group in groups:
        document = json.loads(files[f"grafana/alert-rules/{group.slug}.json"])
        evaluated = RuleContext(frozenset(uids)).rules(group)
        assert [r["uid"] for r in document["rules"]] == [r.uid for r in evaluated]
        # A rule that only reads CloudWatch exists only where CloudWatch does (aws).
        assert (len(evaluated) < len(group.rules)) == (settings.aws is None and any(r.query is None for r in group.rules))
        root = "https://observability.opendeck.example/" if stack == "prod" else "http://localhost:3000/"
        assert all(r["annotations"]["runbook_url"].startswith(f"{root}d/runbook?viewPanel=") for r in document["rules"])


def test_prod_services_address_each_other_by_service_discovery_names():
    files = render.render_stack("prod")
    # One collector task (collectorMaxTasks 1): one config doing both jobs, no sampler tier.
    assert "collector-sampler/config.yaml" not in files
    exporters = json.dumps(yaml.safe_load(files["collector/config.yaml"])["exporters"])
    assert "tempo.observability-prod.internal" in exporters and "loki.observability-prod.internal" in exporters


def test_command_writes_the_files_without_the_pulumi_cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    # Only the interpreter's own directory on PATH: no pulumi binary can be found.
    env["PATH"] = os.path.dirname(sys.executable)
    assert shutil.which("pulumi", path=env["PATH"]) is None
    result = subprocess.run(
        [sys.executable, "-m", "components.render", "--stack", "prod", "--out", str(tmp_path)],
        cwd=project_path(), env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    written = {str(p.relative_to(tmp_path / "prod")) for p in (tmp_path / "prod").rglob("*") if p.is_file()}
    assert written == set(render.render_stack("prod"))
    assert f"wrote {len(written)} files" in result.stdout
    assert (tmp_path / "prod" / "collector" / "config.yaml").read_text() == render.render_stack("prod")["collector/config.yaml"]


def test_unknown_stack_is_a_clear_error(tmp_path, capsys):
    assert render.main(["--stack", "staging", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "no stack file Pulumi.staging.yaml" in error and "dev" in error and "prod" in error
    assert not any(tmp_path.iterdir())


def test_invalid_stack_config_names_the_key(tmp_path):
    shutil.copy(project_path("Pulumi.yaml"), tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.broken.yaml").write_text("config:\n  observability:grafanaImage: grafana/grafana:latest\n")
    with pytest.raises(render.RenderError, match=r"grafanaImage: 'grafana/grafana:latest' uses 'latest'"):
        render.render_stack("broken", project_dir=tmp_path)


def test_rendered_yaml_reads_the_same_in_yaml_1_2(tmp_path):
    """Go's yaml.v3 (the collector, Prometheus, Tempo, Loki) reads YAML 1.2, where 1e3 is a float and
    0o17 an integer; PyYAML writes by YAML 1.1. A value that is a string here stays one there."""
    shutil.copy(project_path("Pulumi.yaml"), tmp_path / "Pulumi.yaml")
    stack = yaml.safe_load(project_path("Pulumi.dev.yaml").read_text())
    stack["config"].update({"observability:environment": "1e3", "observability:serviceNamespace": "0o17"})
    (tmp_path / "Pulumi.odd.yaml").write_text(yaml.safe_dump(stack))
    files = render.render_stack("odd", project_dir=tmp_path)
    yaml_12 = YAML(typ="safe", pure=True)
    seen = set()
    for name, text in files.items():
        if name.endswith((".yaml", ".yml")):
            assert yaml_12.load(text) == yaml.safe_load(text), name
            seen |= {value for value in ("1e3", "0o17") if f"'{value}'" in text}
    assert seen == {"1e3", "0o17"}, "the odd values reach the rendered configs"


def test_a_misspelt_project_namespace_is_refused_by_the_render_too(tmp_path):
    shutil.copy(project_path("Pulumi.yaml"), tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.typo.yaml").write_text("config:\n  observabilty:grafanaPort: 3300\n")
    with pytest.raises(render.RenderError, match=r"observabilty:grafanaPort: the namespace 'observabilty' is not this project's"):
        render.render_stack("typo", project_dir=tmp_path)
