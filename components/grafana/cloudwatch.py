"""CloudWatch as Grafana reads it on aws: the metrics the stack uses, as AWS documents them, and the
query model Grafana's CloudWatch data source takes, for dashboards and alert rules alike.

Pure functions only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

# Only on aws: ECS Container Insights and S3 storage metrics, read with Grafana's task role.
CLOUDWATCH_UID = "cloudwatch"

# Values a stack gives its CloudWatch queries, written `$name` in a dimension (and, for dashboards,
# a constant variable of that name): the ECS cluster it runs in, the S3 buckets it made.
ECS_CLUSTER_VARIABLE = "ecs_cluster"
S3_BUCKETS_VARIABLE = "s3_buckets"
STACK_CONSTANTS = (ECS_CLUSTER_VARIABLE, S3_BUCKETS_VARIABLE)

# Metric names and dimensions as AWS documents them: "Amazon ECS Container Insights metrics"
# (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html) and
# "Metrics and dimensions" of Amazon S3 (docs.aws.amazon.com/AmazonS3/latest/userguide/metrics-dimensions.html).
DOCUMENTED_METRICS: dict[str, dict[str, Any]] = {
    "ECS/ContainerInsights": {
        "metrics": {
            "CpuUtilized", "CpuReserved", "MemoryUtilized", "MemoryReserved", "EphemeralStorageUtilized",
            "EphemeralStorageReserved", "NetworkRxBytes", "NetworkTxBytes", "RunningTaskCount",
        },
        "dimensions": {"ClusterName", "ServiceName"},
    },
    "AWS/S3": {"metrics": {"BucketSizeBytes", "NumberOfObjects"}, "dimensions": {"BucketName", "StorageType"}},
}
# CloudWatch statistics (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html).
STATISTICS = ("Average", "Maximum", "Minimum", "Sum", "SampleCount")

DimensionValue = Union[str, list[str]]


def render_dimensions(dimensions: Mapping[str, DimensionValue], constants: Mapping[str, DimensionValue]) -> dict[str, DimensionValue]:
    """A dimension whose value is `$name` takes the stack's value of that constant (a string, or a
    list where the stack has several, e.g. its buckets); every other value stays as written."""
    return {
        key: constants.get(value[1:], value) if isinstance(value, str) and value.startswith("$") else value
        for key, value in dimensions.items()
    }


def metric_query(
    ref_id: str, namespace: str, metric: str, dimensions: Mapping[str, DimensionValue], statistic: str, period_seconds: int
) -> dict[str, Any]:
    """One metric search in the query builder's form, the shape Grafana's CloudWatch data source
    parses (grafana/grafana pkg/tsdb/cloudwatch/models/cloudwatch_query.go, the dataquery schema
    CloudWatchMetricsQuery): metricQueryType 0 = Search, metricEditorMode 0 = Builder; matchExact
    keeps only the series with exactly these dimensions (not e.g. the per-task-family ones); a "*"
    or a list of values makes it a search over those values; region "default" is the data source's.

    The label is the series' one dimension with several values: Grafana's response parser takes a
    series' labels from that returned label (pkg/tsdb/cloudwatch/response_parser.go, getLabels and
    parseLabels), so two queries over the same dimensions give series with equal labels, which
    server-side math needs to pair them up."""
    varying = [key for key, value in dimensions.items() if isinstance(value, list) or value == "*"]
    return {
        "refId": ref_id,
        "datasource": {"type": "cloudwatch", "uid": CLOUDWATCH_UID},
        "queryMode": "Metrics",
        "metricQueryType": 0,
        "metricEditorMode": 0,
        "namespace": namespace,
        "metricName": metric,
        "dimensions": dict(dimensions),
        "matchExact": True,
        "statistic": statistic,
        "period": str(period_seconds),
        "region": "default",
        "id": "",
        "expression": "",
        "label": "".join(f"${{PROP('Dim.{key}')}}" for key in varying[:1]),
    }


def documented_metric_problems(namespace: str, metric: str, dimensions: Mapping[str, Any]) -> list[str]:
    """What a query names that AWS does not document for the namespace (empty when all is known)."""
    known = DOCUMENTED_METRICS.get(namespace)
    if known is None:
        return [f"namespace {namespace!r} is not one the stack reads; allowed: {', '.join(DOCUMENTED_METRICS)}"]
    problems = []
    if metric not in known["metrics"]:
        problems.append(f"metric {metric!r} is not documented in {namespace}; allowed: {', '.join(sorted(known['metrics']))}")
    extra = sorted(set(dimensions) - known["dimensions"])
    if extra:
        problems.append(f"dimensions {', '.join(extra)} are not documented in {namespace}; allowed: {', '.join(sorted(known['dimensions']))}")
    return problems
