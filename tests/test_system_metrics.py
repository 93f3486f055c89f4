"""CPU, memory and storage of the stack on AWS: the CloudWatch data source exists only there, with
ECS Container Insights and S3 storage metrics on the stack-health dashboard (names from AWS's
documentation: "Amazon ECS Container Insights metrics" and "Amazon S3 CloudWatch metrics")."""

from __future__ import annotations

import json

import pytest

from components.grafana.cloudwatch import CLOUDWATCH_UID, DOCUMENTED_METRICS, ECS_CLUSTER_VARIABLE, S3_BUCKETS_VARIABLE
from components.grafana.content import DATASOURCE_UIDS
from components.grafana.dashboards import for_stack, load_folders, targets
from components.services import cadvisor, collector_tiers
from tests.harness import run_program

DASHBOARD = "grafana:oss/dashboard:Dashboard"
DATASOURCE = "grafana:oss/dataSource:DataSource"
STACK_HEALTH = next(d for f in load_folders() for d in f.dashboards if d.uid == "observability-stack-health")

# Container Insights for ECS (namespace ECS/ContainerInsights, dimensions ClusterName, ServiceName)
# and S3's daily storage metric (namespace AWS/S3, dimensions BucketName, StorageType).
CONTAINER_INSIGHTS = {
    "CpuUtilized", "CpuReserved", "MemoryUtilized", "MemoryReserved", "EphemeralStorageUtilized",
    "EphemeralStorageReserved", "NetworkRxBytes", "NetworkTxBytes", "RunningTaskCount",
}


@pytest.fixture(scope="module")
def prod():
    run = run_program("prod")
    assert run.error is None, run.error
    return run


def cloudwatch_targets(model: dict) -> list[dict]:
    return [t for p, t in targets(model) if (t.get("datasource") or p.get("datasource", {})).get("uid") == CLOUDWATCH_UID]


def test_stack_health_reads_the_documented_cloudwatch_metrics():
    queried = {(t["namespace"], t["metricName"]) for t in cloudwatch_targets(STACK_HEALTH.model)}
    assert queried == {("ECS/ContainerInsights", m) for m in CONTAINER_INSIGHTS} | {("AWS/S3", "BucketSizeBytes")}
    assert DOCUMENTED_METRICS["ECS/ContainerInsights"]["metrics"] == CONTAINER_INSIGHTS
    for target in cloudwatch_targets(STACK_HEALTH.model):
        if target["namespace"] == "ECS/ContainerInsights":
            # Every service of the stack's cluster, or the named ones (Tempo's and Loki's disk).
            assert target["dimensions"]["ClusterName"] == f"${ECS_CLUSTER_VARIABLE}"
            assert target["dimensions"]["ServiceName"] in ("*", ["tempo", "loki"])
        else:
            # S3 publishes bucket sizes once a day; the stack fills in its own buckets.
            assert target["dimensions"] == {"BucketName": f"${S3_BUCKETS_VARIABLE}", "StorageType": "StandardStorage"}
            assert target["period"] == "86400"


def queried_buckets(model: dict) -> list:
    """Every BucketName value the dashboard's S3 queries name ("*" means every bucket of the account)."""
    found = []
    for target in cloudwatch_targets(model):
        if target["namespace"] == "AWS/S3":
            value = target["dimensions"]["BucketName"]
            found.extend(value if isinstance(value, list) else [value])
    return found


def test_prod_s3_panel_queries_only_the_stacks_own_buckets(prod):
    # AWS names a bucket from its prefix (the mocks append a fixed suffix).
    prefixes = sorted(r.inputs["bucketPrefix"] for r in prod.resources if r.type == "aws:s3/bucket:Bucket")
    assert prefixes == ["observability-prod-loki-", "observability-prod-tempo-"]
    (health,) = [json.loads(d.inputs["configJson"]) for d in prod.of_type(DASHBOARD) if "stack-health" in d.name]
    queried = sorted(queried_buckets(health))
    assert len(queried) == len(prefixes)
    assert all(name.startswith(prefix) and len(name) > len(prefix) for name, prefix in zip(queried, prefixes, strict=True))


def test_the_bucket_check_catches_a_query_of_every_bucket():
    every = json.loads(json.dumps(STACK_HEALTH.model).replace(f'"${S3_BUCKETS_VARIABLE}"', '"*"'))
    assert queried_buckets(every) == ["*"]
    # Unfilled, the placeholder is no bucket either: only a stack's values make the query.
    assert queried_buckets(STACK_HEALTH.model) == [f"${S3_BUCKETS_VARIABLE}"]


def test_prod_shows_tempo_and_loki_local_disk_from_their_ecs_services(prod):
    """No Tempo metric of its local disk was found (tempodb_backend_bytes is S3): its task's ephemeral storage stands in."""
    (health,) = [json.loads(d.inputs["configJson"]) for d in prod.of_type(DASHBOARD) if "stack-health" in d.name]
    (panel,) = [p for p in health["panels"] if p["title"].startswith("Tempo and Loki local disk")]
    assert {t["metricName"] for t in panel["targets"]} == {"EphemeralStorageUtilized", "EphemeralStorageReserved"}
    services = {r.inputs["name"] for r in prod.resources if r.type == "aws:ecs/service:Service"}
    for target in panel["targets"]:
        assert target["dimensions"] == {"ClusterName": "observability-prod", "ServiceName": ["tempo", "loki"]}
        assert set(target["dimensions"]["ServiceName"]) <= services


def test_for_stack_drops_what_a_stack_cannot_show_and_fills_constants():
    docker = for_stack(STACK_HEALTH.model, set(DATASOURCE_UIDS), {})
    assert not cloudwatch_targets(docker)
    assert all("ECS" not in p["title"] for p in docker["panels"])
    aws = for_stack(STACK_HEALTH.model, {*DATASOURCE_UIDS, CLOUDWATCH_UID}, {ECS_CLUSTER_VARIABLE: "observability-prod"})
    assert len(cloudwatch_targets(aws)) == len(cloudwatch_targets(STACK_HEALTH.model))
    (cluster,) = [v for v in aws["templating"]["list"] if v["name"] == ECS_CLUSTER_VARIABLE]
    assert cluster["query"] == cluster["current"]["value"] == "observability-prod"


def test_prod_has_a_cloudwatch_data_source_read_with_the_grafana_task_role(prod):
    sources = {d.inputs["uid"]: d.inputs for d in prod.of_type(DATASOURCE)}
    assert set(sources) == {*DATASOURCE_UIDS, CLOUDWATCH_UID}
    cloudwatch = sources[CLOUDWATCH_UID]
    assert cloudwatch["type"] == "cloudwatch"
    # authType default: the SDK's credential chain (the task role), no keys in Grafana.
    assert json.loads(cloudwatch["jsonDataEncoded"]) == {"authType": "default", "defaultRegion": "eu-west-1"}
    assert "secureJsonDataEncoded" not in cloudwatch


def test_prod_stack_health_shows_its_own_ecs_cluster(prod):
    (health,) = [json.loads(d.inputs["configJson"]) for d in prod.of_type(DASHBOARD) if "stack-health" in d.name]
    assert len(cloudwatch_targets(health)) == len(cloudwatch_targets(STACK_HEALTH.model))
    ecs = [t for t in cloudwatch_targets(health) if t["namespace"] == "ECS/ContainerInsights"]
    assert ecs and all(t["dimensions"]["ClusterName"] == "observability-prod" for t in ecs)
    (cluster,) = [v for v in health["templating"]["list"] if v["name"] == ECS_CLUSTER_VARIABLE]
    assert cluster["query"] == "observability-prod"


def test_prod_runs_no_cadvisor(prod):
    """Not as a service, not as a scrape job: nothing anywhere in the program's inputs names it."""
    assert not [r for r in prod.resources if cadvisor.NAME in r.name]
    assert not [r.name for r in prod.resources if f"{cadvisor.NAME}:{cadvisor.HTTP.container_port}" in json.dumps(r.inputs, default=str)]
    assert any(f"{collector_tiers.JOB}" in json.dumps(r.inputs, default=str) for r in prod.resources)


def test_grafana_role_may_only_read_cloudwatch_metrics(prod):
    from components.platforms.aws.iam import CLOUDWATCH_READ_ACTIONS

    (grant,) = [r for r in prod.resources if r.type == "aws:iam/rolePolicy:RolePolicy" and r.name == "grafana-cloudwatch-read"]
    assert json.loads(grant.inputs["policy"])["Statement"] == [
        {"Effect": "Allow", "Action": ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"], "Resource": "*"}
    ]
    assert CLOUDWATCH_READ_ACTIONS == ("cloudwatch:GetMetricData", "cloudwatch:ListMetrics")
    # Only Grafana reads CloudWatch.
    assert not [r.name for r in prod.resources if r.name.endswith("-cloudwatch-read") and r.name != "grafana-cloudwatch-read"]


def test_prometheus_task_gets_the_storage_its_size_retention_is_a_share_of(prod):
    task = next(r for r in prod.resources if r.type == "aws:ecs/taskDefinition:TaskDefinition" and r.name == "prometheus-task")
    assert "ephemeralStorage" not in task.inputs  # 20 GiB: Fargate's default
    bigger = run_program("prod", {"prometheusStorageGib": "100", "metricsBackend": "prometheus"})
    assert bigger.error is None, bigger.error
    tasks = {r.name: r for r in bigger.resources if r.type == "aws:ecs/taskDefinition:TaskDefinition"}
    assert tasks["prometheus-task"].inputs["ephemeralStorage"] == {"sizeInGib": 100}
    assert all("ephemeralStorage" not in t.inputs for name, t in tasks.items() if name != "prometheus-task")
