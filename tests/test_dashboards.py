"""Dashboards are valid Grafana models whose queries name only what the pipeline produces."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from components.grafana.content import CLOUDWATCH_UID, DATASOURCE_UIDS, PROMETHEUS_UID
from components.grafana.dashboards import (
    datasource_uid,
    expand_variables,
    label_names,
    label_replace_targets,
    load_folders,
    metric_names,
    panels,
    promql_queries,
    targets,
)
from components.telemetry import produced_label_names, produced_metric_names
from tests.processes import built_binary
from tests.test_settings import settings_for

FOLDERS = load_folders()
DASHBOARDS = [d for f in FOLDERS for d in f.dashboards]
QUERIES = [(d.path.name, title, expr) for d in DASHBOARDS for title, expr in promql_queries(d.model, PROMETHEUS_UID)]


def test_the_expected_dashboards_exist():
    assert {(f.uid, d.uid) for f in FOLDERS for d in f.dashboards} == {
        ("opendeck", "opendeck-backend"),
        ("opendeck", "opendeck-frontend"),
        ("opendeck", "opendeck-business"),
        ("observability", "observability-service-red"),
        ("observability", "observability-stack-health"),
    }


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.path.name)
def test_dashboard_is_a_valid_grafana_model(dashboard):
    model = dashboard.model
    assert model["title"] and model["uid"] and model["schemaVersion"] >= 39
    assert "dashboard" not in model, "the model itself, not an import wrapper"
    ids = [p["id"] for p in panels(model)]
    assert len(ids) == len(set(ids))
    for panel in panels(model):
        assert panel["type"], panel
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")) and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.path.name)
def test_every_datasource_uid_exists(dashboard):
    for panel, target in targets(dashboard.model):
        # CloudWatch exists on aws only; for_stack leaves its panels out elsewhere.
        assert datasource_uid(panel, target) in (*DATASOURCE_UIDS, CLOUDWATCH_UID), panel["title"]
    for variable in dashboard.model.get("templating", {}).get("list", []):
        if "datasource" in variable:
            assert variable["datasource"]["uid"] in DATASOURCE_UIDS


def test_dashboards_have_unique_uids():
    uids = [d.uid for d in DASHBOARDS]
    assert len(uids) == len(set(uids))


def _promtool() -> str:
    # The promtool of the pinned Prometheus, which reads every query as the deployed Prometheus will.
    return built_binary("PROMTOOL_BIN", "scripts/build-prometheus.sh")


def test_queries_are_checked_by_the_pinned_promtool():
    version = subprocess.run([_promtool(), "--version"], capture_output=True, text=True, check=True).stdout
    assert f"version {settings_for('dev').image('prometheus').rsplit(':v', 1)[1]} " in version, version


def _check_with_promtool(expressions: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rules = {
        "groups": [
            {"name": "dashboard-queries", "rules": [{"record": f"query:{i}", "expr": expr} for i, expr in enumerate(expressions)]}
        ]
    }
    rules_file = tmp_path / "queries.rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules))
    return subprocess.run([_promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True)


def test_every_promql_expression_passes_promtool(tmp_path):
    assert len(QUERIES) > 40
    result = _check_with_promtool([expand_variables(expr) for _, _, expr in QUERIES], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_catches_a_broken_expression(tmp_path):
    result = _check_with_promtool(["sum by (le (rate(http_server_duration_milliseconds_bucket[5m]))"], tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize(("dashboard", "panel", "expr"), QUERIES, ids=[f"{d}:{p}" for d, p, _ in QUERIES])
def test_every_metric_a_query_names_is_produced(dashboard, panel, expr):
    names = metric_names(expr)
    assert names, "a query that selects no metric"
    assert names <= produced_metric_names(), sorted(names - produced_metric_names())


@pytest.mark.parametrize(("dashboard", "panel", "expr"), QUERIES, ids=[f"{d}:{p}" for d, p, _ in QUERIES])
def test_every_label_a_query_uses_is_produced(dashboard, panel, expr):
    created = label_replace_targets(expr)
    assert label_names(expr) <= produced_label_names() | created, sorted(label_names(expr) - produced_label_names() - created)


def test_metric_name_extraction():
    assert metric_names('sum by (le, route) (rate(http_server_duration_milliseconds_bucket{service_name=~"$service"}[$__rate_interval]))') == {
        "http_server_duration_milliseconds_bucket"
    }
    assert metric_names("rate(a_total[5m]) / ignoring(code) b_total offset 5m") == {"a_total", "b_total"}
    assert metric_names('label_values({__name__=~"x_count|y_count"}, service_name)'.split("(", 1)[1][:-len(", service_name)")]) == {"x_count", "y_count"}
    assert metric_names('up{job="tempo"} == bool 1') == {"up"}
    assert label_names('sum by (le, route) (rate(m{a="1", b=~"x"}[5m]))') == {"le", "route", "a", "b"}
    assert label_replace_targets('label_replace(rate(m{a="b"}[5m]), "route", "$1", "http_route", "(.*)")') == {"route"}


def test_stack_health_shows_every_scrape_job():
    from components.plan import plan_stack
    from components.services.collector import SAMPLER
    from tests.plans import plan_with_tier

    health = next(d for d in DASHBOARDS if d.uid == "observability-stack-health")
    (up_query,) = [expr for _, expr in promql_queries(health.model, PROMETHEUS_UID) if expr.startswith("up{")]
    jobs = set(re.search(r'job=~"([^"]+)"', up_query).group(1).split("|"))
    # Every job any stack scrapes: the sampler tier's (prod scaled out) and cAdvisor's (dev) included.
    scraped = set(plan_stack(settings_for("dev")).scrape_targets)
    scraped |= set(plan_with_tier(plan_stack(settings_for("prod")), SAMPLER).scrape_targets)
    assert jobs == scraped


# rate() over a selector that matches several metric names drops the names, and series that then
# differ by nothing make Prometheus refuse the whole query ("vector cannot contain metrics with the
# same labelset"). Found by running the alert rules against the real Prometheus in tests/test_e2e.py.
_MULTI_NAME_RANGE = re.compile(r"\{__name__=~\"[^\"]*\|[^\"]*\"[^}]*\}\s*\[")


def test_no_query_takes_a_range_over_several_metric_names():
    from components.grafana.alerts import load_rule_groups, promql_rules

    queries = [expr for _, _, expr in QUERIES] + [r.query for r in promql_rules(load_rule_groups(datasource_uids=DATASOURCE_UIDS)) if r.query]
    offending = [q for q in queries if _MULTI_NAME_RANGE.search(q)]
    assert not offending, offending
    assert _MULTI_NAME_RANGE.search('sum(rate({__name__=~"a_total|b_total"}[5m]))')
