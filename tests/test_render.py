"""The offline render command: every config a stack deploys, from the stack file alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from ruamel.yaml import YAML

from components import render
from components.grafana.alerts import RuleContext, load_rule_groups
from components.grafana.content import CLOUDWATCH_UID, DATASOURCE_UIDS
from components.grafana.dashboards import for_stack, load_folders
from components.services import collector, loki, prometheus, tempo
from components.stack import dashboard_constants, scrape_targets
from components.stackconfig import stack_names
from components.yamltext import to_yaml
from tests.harness import project_path, run_program, unwrap
from tests.test_settings import settings_for


@pytest.mark.parametrize("stack", stack_names())
def test_configs_equal_the_renderers_output(stack):
    settings = settings_for(stack)
    hosts = render.internal_hosts(settings)
    traces, logs, metrics = render.stores(settings)
    files = render.render_stack(stack)
    tiers = render.render_tiers(settings)
    sampler_host = hosts.get(collector.SAMPLER_NAME)
    assert files["collector/config.yaml"] == to_yaml(
        collector.render_collector_config(settings, hosts, metrics, tier=tiers[0], sampler_host=sampler_host)
    )
    if collector.SAMPLER in tiers:
        assert files["collector-sampler/config.yaml"] == to_yaml(collector.render_collector_config(settings, hosts, metrics, tier=collector.SAMPLER))
    targets = scrape_targets(hosts, container_metrics=settings.container_metrics.enabled)
    assert files["prometheus/prometheus.yml"] == to_yaml(prometheus.render_prometheus_config(settings, targets, metrics))
    assert files["tempo/tempo.yaml"] == to_yaml(tempo.render_tempo_config(settings, traces))
    assert files["loki/loki.yaml"] == to_yaml(loki.render_loki_config(settings, logs))


def test_prod_renders_its_object_storage_and_self_hosted_metrics():
    files = render.render_stack("prod")
    assert "backend: s3" in files["tempo/tempo.yaml"] and "<tempo bucket, named at deploy>" in files["tempo/tempo.yaml"]
    assert "object_store: s3" in files["loki/loki.yaml"] and "<loki bucket, named at deploy>" in files["loki/loki.yaml"]
    assert "bearertokenauth" in files["collector/config.yaml"] and "sigv4auth" not in files["collector/config.yaml"]
    # Pulumi.prod.yaml keeps metrics in the self-hosted Prometheus (README, "Cost at the default sizing").
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
            traces, logs, _ = render.stores(settings)
            buckets = [store.bucket for store in (traces, logs) if store is not None]
            shown = for_stack(dashboard.model, uids, dashboard_constants(settings, buckets))
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


def test_dev_render_is_what_the_dev_program_uploads():
    """The offline hosts agree with the Docker platform's: the collector config is byte for byte
    what the program hands its container."""
    run = run_program("dev")
    assert run.error is None, run.error
    files = render.render_stack("dev")
    uploaded = {
        c.name: {u["file"]: u["content"] for u in unwrap(c.inputs.get("uploads") or [])}
        for c in run.of_type("docker:index/container:Container")
    }
    assert uploaded["collector"][collector.CONFIG_PATH] == files["collector/config.yaml"]
    assert uploaded["prometheus"][prometheus.CONFIG_PATH] == files["prometheus/prometheus.yml"]
    assert uploaded["tempo"][tempo.CONFIG_PATH] == files["tempo/tempo.yaml"]
    assert uploaded["loki"][loki.CONFIG_PATH] == files["loki/loki.yaml"]


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
