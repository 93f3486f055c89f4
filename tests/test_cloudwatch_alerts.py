"""Capacity alerts on aws read CloudWatch (ECS Container Insights) through Grafana's CloudWatch data
source; docker keeps their PromQL (cAdvisor). Metric names as AWS documents them in "Amazon ECS
Container Insights metrics" (namespace ECS/ContainerInsights, dimensions ClusterName, ServiceName):
MemoryUtilized, MemoryReserved (MiB), CpuUtilized, CpuReserved (CPU units), EphemeralStorageUtilized,
EphemeralStorageReserved (GB, Fargate platform 1.4.0 and later)."""

from __future__ import annotations

import json

import pytest

from components.grafana.alert_stages import EXPRESSION_UID, RuleContext, rule_stages
from components.grafana.alerts import AlertRulesError, all_rules, load_rule_groups
from components.grafana.cloudwatch import CLOUDWATCH_UID, documented_metric_problems
from components.grafana.content import DATASOURCE_UIDS
from components.services.collector import NAME as COLLECTOR
from components.services.collector import SAMPLER_NAME
from tests.harness import run_program
from tests.test_alerts import RULE_GROUP, _write_group, unknown_datasources

RULES = {rule.uid: rule for rule in all_rules(load_rule_groups(datasource_uids=DATASOURCE_UIDS))}
# uid -> (metric, divided by, statistic, ServiceName) as the rules must read them on aws.
ON_AWS = {
    "stack-container-memory-near-limit": ("MemoryUtilized", "MemoryReserved", "Maximum", "*"),
    "stack-collector-cpu-saturated": ("CpuUtilized", "CpuReserved", "Average", [COLLECTOR, SAMPLER_NAME]),
    "stack-task-storage-near-its-size": ("EphemeralStorageUtilized", "EphemeralStorageReserved", "Maximum", "*"),
}


@pytest.fixture(scope="module")
def prod():
    run = run_program("prod")
    assert run.error is None, run.error
    return run


def registered_rules(run) -> dict[str, dict]:
    return {rule["uid"]: rule for group in run.of_type(RULE_GROUP) for rule in group.inputs["rules"]}


def stages(rule: dict) -> dict[str, tuple[str, dict]]:
    return {s["refId"]: (s["datasourceUid"], json.loads(s["model"])) for s in rule["datas"]}


@pytest.mark.parametrize("uid", ON_AWS)
def test_prod_capacity_rules_read_container_insights_of_the_stacks_cluster(prod, uid):
    metric, divisor, statistic, services = ON_AWS[uid]
    got = stages(registered_rules(prod)[uid])
    assert set(got) == {"A", "D", "A_last", "D_last", "B", "C"}
    for ref, name in (("A", metric), ("D", divisor)):
        source, model = got[ref]
        assert source == CLOUDWATCH_UID and model["datasource"] == {"type": "cloudwatch", "uid": CLOUDWATCH_UID}
        # Grafana's CloudWatch metric search, builder form, exact dimensions, the data source's region.
        assert {k: model[k] for k in ("queryMode", "metricQueryType", "metricEditorMode", "matchExact", "region")} == {
            "queryMode": "Metrics", "metricQueryType": 0, "metricEditorMode": 0, "matchExact": True, "region": "default",
        }
        assert (model["namespace"], model["metricName"], model["statistic"], model["period"]) == (
            "ECS/ContainerInsights", name, statistic, "60",
        )
        assert model["dimensions"] == {"ClusterName": "observability-prod", "ServiceName": services}
        # Both queries label their series by service, so the math pairs a service's two values.
        assert model["label"] == "${PROP('Dim.ServiceName')}"
    for ref, of in (("A_last", "A"), ("D_last", "D")):
        source, model = got[ref]
        assert source == EXPRESSION_UID
        assert (model["type"], model["expression"], model["reducer"], model["settings"]) == ("reduce", of, "last", {"mode": "dropNN"})
    assert got["B"][1]["type"] == "math" and got["B"][1]["expression"] == "${A_last} / ${D_last}"
    assert got["C"][1]["type"] == "threshold" and got["C"][1]["expression"] == "B"
    assert got["C"][1]["conditions"][0]["evaluator"] == {"type": "gt", "params": [0.9]}


def test_prod_rules_are_the_files_rules_with_their_states_severity_and_runbook(prod):
    registered = registered_rules(prod)
    assert set(registered) == set(RULES), "aws evaluates every rule"
    sources = {d.inputs["uid"] for d in prod.of_type("grafana:oss/dataSource:DataSource")}
    context = RuleContext(frozenset(sources), {"ecs_cluster": "observability-prod"})
    for uid in ON_AWS:
        rule, got = RULES[uid], registered[uid]
        assert (got["for"], got["noDataState"], got["execErrState"]) == (rule.pending_for, "OK", "KeepLast")
        assert got["labels"] == {"severity": "warning"} and got["condition"] == "C"
        assert "viewPanel=" in got["annotations"]["runbook_url"]
        assert {ref: model for ref, (_, model) in stages(got).items()} == {s.ref_id: s.model for s in rule_stages(rule, context)}
    for group in prod.of_type(RULE_GROUP):
        assert unknown_datasources(group.inputs, sources | {EXPRESSION_UID}) == []


def test_ecs_service_names_the_rules_name_are_services_of_the_stack():
    scaled = run_program("prod", {"collectorMaxTasks": "4"})
    assert scaled.error is None, scaled.error
    services = {r.inputs["name"] for r in scaled.resources if r.type == "aws:ecs/service:Service"}
    for uid, (*_, named) in ON_AWS.items():
        assert named == "*" or set(named) <= services, uid


def test_dev_keeps_the_promql_rules_and_has_no_cloudwatch_rule(dev):
    registered = registered_rules(dev)
    assert "stack-task-storage-near-its-size" not in registered
    for uid in ("stack-container-memory-near-limit", "stack-collector-cpu-saturated"):
        got = stages(registered[uid])
        assert set(got) == {"A", "B", "C"}
        assert got["A"][0] == "prometheus" and got["A"][1]["expr"] == RULES[uid].query
    assert not [uid for uid, rule in registered.items() if any(source == CLOUDWATCH_UID for source, _ in stages(rule).values())]


def test_the_metric_name_check_catches_a_name_aws_does_not_document():
    # EC2's and ECS's own CPUUtilization / MemoryUtilization are percentages in AWS/ECS, not Container Insights.
    assert documented_metric_problems("ECS/ContainerInsights", "MemoryUtilized", {"ClusterName": "c", "ServiceName": "*"}) == []
    assert documented_metric_problems("ECS/ContainerInsights", "MemoryUtilization", {"ClusterName": "c"}) == [
        "metric 'MemoryUtilization' is not documented in ECS/ContainerInsights; allowed: CpuReserved, CpuUtilized, "
        "EphemeralStorageReserved, EphemeralStorageUtilized, MemoryReserved, MemoryUtilized, NetworkRxBytes, NetworkTxBytes, "
        "RunningTaskCount"
    ]
    assert documented_metric_problems("ECS/ContainerInsights", "CpuUtilized", {"TaskId": "x"})[0].startswith("dimensions TaskId")


GOOD_CLOUDWATCH = {
    "namespace": "ECS/ContainerInsights", "metric": "MemoryUtilized", "divided_by": "MemoryReserved",
    "dimensions": {"ClusterName": "$ecs_cluster", "ServiceName": "*"}, "statistic": "Maximum", "period": "1m",
}
BAD_CLOUDWATCH = [
    ({"metric": "MemoryUtilization"}, "cloudwatch: metric 'MemoryUtilization' is not documented in ECS/ContainerInsights"),
    ({"divided_by": "MemoryLimit"}, "cloudwatch: metric 'MemoryLimit' is not documented"),
    ({"namespace": "AWS/ECS"}, "cloudwatch: namespace 'AWS/ECS' is not one the stack reads"),
    ({"statistic": "p99"}, "cloudwatch: statistic: 'p99' is not allowed; allowed: Average, Maximum"),
    ({"period": "90s"}, "cloudwatch: period: '90s' is not allowed; allowed: a whole number of minutes"),
    ({"dimensions": {"ClusterName": "$cluster"}}, "cloudwatch: dimensions: $cluster is not a value the stack gives"),
    ({"dimensions": {}}, "cloudwatch: dimensions: expected a mapping"),
    ({"region": "us-east-1"}, "cloudwatch: unknown keys region"),
]


@pytest.mark.parametrize(("override", "message"), BAD_CLOUDWATCH, ids=[m.split(": ", 2)[1] for _, m in BAD_CLOUDWATCH])
def test_a_bad_cloudwatch_block_is_refused_with_the_file_rule_and_key(tmp_path, override, message):
    root = _write_group(tmp_path, {"cloudwatch": {**GOOD_CLOUDWATCH, **override}})
    with pytest.raises(AlertRulesError) as caught:
        load_rule_groups(root / "alerts", root / "runbook.md", DATASOURCE_UIDS)
    assert any(p.startswith("x.yaml: x-rule: ") and message in p for p in caught.value.problems), caught.value.problems


def test_a_rule_with_only_a_cloudwatch_block_loads_and_exists_only_with_cloudwatch(tmp_path):
    root = _write_group(tmp_path, {"cloudwatch": GOOD_CLOUDWATCH, "query": None})
    document = json.loads((root / "alerts" / "x.yaml").read_text())
    del document["rules"][0]["query"]
    (root / "alerts" / "x.yaml").write_text(json.dumps(document))
    (group,) = load_rule_groups(root / "alerts", root / "runbook.md", DATASOURCE_UIDS)
    assert group.rules[0].query is None and group.rules[0].cloudwatch is not None
    assert RuleContext(frozenset(DATASOURCE_UIDS)).rules(group) == ()
    assert RuleContext(frozenset({*DATASOURCE_UIDS, CLOUDWATCH_UID})).rules(group) == group.rules


def test_a_rule_with_neither_query_nor_cloudwatch_is_refused(tmp_path):
    root = _write_group(tmp_path, {})
    document = json.loads((root / "alerts" / "x.yaml").read_text())
    del document["rules"][0]["query"]
    (root / "alerts" / "x.yaml").write_text(json.dumps(document))
    with pytest.raises(AlertRulesError, match=r"x\.yaml: x-rule: query: missing; a rule needs a query, a cloudwatch block or both"):
        load_rule_groups(root / "alerts", root / "runbook.md", DATASOURCE_UIDS)
