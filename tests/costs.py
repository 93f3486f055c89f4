"""What a mocked prod run costs a month: the resources it registers x docs/production.md's reference workload
x one price table. docs/production.md's "Cost at the default sizing" table must say the same.

Prices are eu-west-1 list prices, as used on 2026-12-02. The third field of each says where it comes
from: a page read that day (its copy in the search index), or memory (confirm those in the AWS
Pricing Calculator).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from components.settings.model import FARGATE_EPHEMERAL_STORAGE_GIB
from tests.harness import ProgramRun, unwrap

PRICE_DATE = "2026-12-02"
HOURS_PER_MONTH = 730
DAYS_PER_MONTH = HOURS_PER_MONTH / 24

_FARGATE_PAGE = "vantage.sh/blog/fargate-pricing, read 2026-12-02 (quotes the AWS Fargate page for us-east-1; eu-west-1 the same from memory)"
_MEMORY = "from memory of the AWS pricing page"
_EFS_ELASTIC = "AWS's EFS pricing page as a third-party page quoted it on 2026-06-13, us-east-1 (eu-west-1 not checked)"

# name: (USD, unit, source)
PRICES: dict[str, tuple[float, str, str]] = {
    "fargate_x86_vcpu_hour": (0.04048, "per vCPU-hour", _FARGATE_PAGE),
    "fargate_x86_gb_hour": (0.004445, "per GB-hour", _FARGATE_PAGE),
    "fargate_arm_vcpu_hour": (0.03238, "per vCPU-hour", _FARGATE_PAGE),
    "fargate_arm_gb_hour": (0.00356, "per GB-hour", _FARGATE_PAGE),
    "fargate_storage_gb_hour": (0.000111, "per GB-hour of ephemeral storage beyond the included 20 GB", _FARGATE_PAGE),
    "alb_hour": (0.0252, "per load balancer-hour", _MEMORY + " (Elastic Load Balancing)"),
    "alb_lcu_hour": (0.008, "per LCU-hour", _MEMORY + " (Elastic Load Balancing)"),
    "nat_hour": (0.048, "per NAT gateway-hour", _MEMORY + " (Amazon VPC)"),
    "nat_gb": (0.048, "per GB processed", _MEMORY + " (Amazon VPC)"),
    "interface_endpoint_hour": (0.011, "per endpoint and zone-hour", _MEMORY + " (AWS PrivateLink)"),
    "public_ipv4_hour": (0.005, "per address-hour", "issue 12's brief (the Amazon VPC pricing page's public IPv4 charge; not re-read)"),
    "efs_gb_month": (0.33, "per GB-month (Standard)", _MEMORY + " (Amazon EFS)"),
    "backup_gb_month": (0.05, "per GB-month (EFS warm backup)", _MEMORY + " (AWS Backup)"),
    "efs_elastic_write_gb": (0.06, "per GB written (Elastic throughput)", _EFS_ELASTIC),
    "efs_elastic_read_gb": (0.03, "per GB read (Elastic throughput)", _EFS_ELASTIC),
    "s3_gb_month": (0.023, "per GB-month (Standard)", _MEMORY + " (Amazon S3)"),
    "s3_put_1000": (0.005, "per 1,000 PUT/LIST", _MEMORY + " (Amazon S3)"),
    "s3_get_1000": (0.0004, "per 1,000 GET", _MEMORY + " (Amazon S3)"),
    "amp_samples_10m": (0.90, "per 10 million samples ingested (first 2 billion)", _MEMORY + " (Amazon Managed Service for Prometheus)"),
    "logs_gb_ingested": (0.57, "per GB ingested", _MEMORY + " (Amazon CloudWatch)"),
    "logs_gb_month": (0.03, "per GB-month stored", _MEMORY + " (Amazon CloudWatch)"),
    # VPC flow logs and AWS WAF logs are vended logs: their first 10 TB a month cost what standard ingestion does.
    "vended_logs_gb_ingested": (0.57, "per GB of vended logs delivered to CloudWatch Logs (first 10 TB)", _MEMORY + " (Amazon CloudWatch)"),
    "metric_month": (0.30, "per custom metric-month (first 10,000)", _MEMORY + " (Amazon CloudWatch)"),
    "alarm_month": (0.10, "per standard-resolution alarm-month", _MEMORY + " (Amazon CloudWatch)"),
    "secret_month": (0.40, "per secret-month", _MEMORY + " (AWS Secrets Manager)"),
    "hosted_zone_month": (0.50, "per hosted zone-month", _MEMORY + " (Amazon Route 53; Cloud Map's private namespace is one)"),
    "waf_acl_month": (5.00, "per web ACL-month", _MEMORY + " (AWS WAF)"),
    "waf_rule_month": (1.00, "per rule-month", _MEMORY + " (AWS WAF)"),
    "waf_million_requests": (0.60, "per million requests inspected", _MEMORY + " (AWS WAF)"),
}

# The reference workload (docs/production.md): what the resources alone do not say.
WORKLOAD = {
    "load_balancer_lcu": 1.0,  # average LCUs (OTLP ingest of a small fleet plus Grafana users)
    # Requests to the load balancer, averaged over the month: a small fleet's batched exports (the
    # OTel SDKs' defaults export spans every 5 s and logs every 1 s per process while they have
    # any, metrics every 60 s), web pages, Grafana. An assumption, like the LCU above: the web ACL
    # inspects each (13.1 million a month).
    "load_balancer_requests_per_second": 5,
    "active_series": 5000,  # metrics series, scraped or pushed every 15 s
    "scrape_interval_seconds": 15,
    "object_store_gb": 50,  # traces and logs in S3 at the default retentions
    "object_store_puts": 300_000,  # Tempo blocks and Loki chunks/index a month
    "object_store_gets": 1_000_000,
    # What Tempo and Loki delete a month (compacted inputs, blocks and chunks past retention, the
    # bucket lifecycle's expiries): about twice what they keep, as Tempo's compactor rewrites each
    # block about once before retention deletes it. An assumption; a versioned bucket keeps each
    # deleted GB NONCURRENT_VERSION_DAYS (components/platforms/aws/storage.py).
    "object_store_gb_deleted_per_month": 100,
    "grafana_database_gb": 1,
    # Everything the collector sends to Tempo and Loki passes its persistent queue: written once,
    # read once (on EFS queue slots, aws); about what S3 keeps, before bbolt's own page writes.
    "queue_gb_through": 50,
    "queue_gb_stored": 1,  # near empty while the stores are up
    "cloudwatch_logs_gb": 5,  # the services' own container logs a month
    # vpcFlowLogs: a record (about 150 bytes, the default format) per direction of each flow per
    # 10-minute aggregation window: load balancer health checks and SDK connections, scrapes, store
    # writes, and the internet's probes of the public addresses. An assumption, not a measurement.
    "flow_logs_gb": 2,
    # wafLogging: one JSON record per request the web ACL inspects (every request to the load
    # balancer), headers included: about 1.5 KB each (AWS WAF's log fields). An assumption.
    "waf_log_record_kb": 1.5,
    "nat_gb": 10,  # image pulls, CloudWatch Logs and AWS API traffic through a NAT
    # ECS Container Insights (standard) on Fargate, from memory of the metrics table of the ECS
    # guide: per service 10 task-level metrics under two dimension sets (service, task family)
    # and 5 task counts; per cluster 12.
    "container_insights_metrics_per_service": 25,
    "container_insights_metrics_per_cluster": 12,
}


def price(name: str) -> float:
    return PRICES[name][0]


@dataclass(frozen=True)
class Line:
    item: str
    usd: float


Lines = dict[str, float]


def monthly_costs(run: ProgramRun) -> list[Line]:
    """One line per README row, from what the run registered."""
    lines: Lines = defaultdict(float)
    services = {r.name.removesuffix("-service"): unwrap(r.inputs) for r in run.of_type("aws:ecs/service:Service")}
    for part in (_tasks, _network, _file_systems, _buckets, _metrics_and_logs, _guards):
        part(run, services, lines)
    return [Line(item, round(usd, 2)) for item, usd in lines.items() if usd]


def _tasks(run: ProgramRun, services: dict[str, dict], lines: Lines) -> None:
    """Fargate, and a public address per task in public subnets."""
    hours = HOURS_PER_MONTH
    for task in run.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        inputs = unwrap(task.inputs)
        service = services[task.name.removesuffix("-task")]
        count = int(service["desiredCount"])
        arch = "arm" if inputs["runtimePlatform"]["cpuArchitecture"] == "ARM64" else "x86"
        vcpu, gb = int(inputs["cpu"]) / 1024, int(inputs["memory"]) / 1024
        lines["Fargate"] += count * hours * (vcpu * price(f"fargate_{arch}_vcpu_hour") + gb * price(f"fargate_{arch}_gb_hour"))
        extra_storage = int((inputs.get("ephemeralStorage") or {}).get("sizeInGib", FARGATE_EPHEMERAL_STORAGE_GIB)) - FARGATE_EPHEMERAL_STORAGE_GIB
        lines["Fargate"] += count * hours * max(extra_storage, 0) * price("fargate_storage_gb_hour")
        if service["networkConfiguration"].get("assignPublicIp"):
            lines["public IPv4 addresses"] += count * hours * price("public_ipv4_hour")


def _network(run: ProgramRun, services: dict[str, dict], lines: Lines) -> None:
    hours = HOURS_PER_MONTH
    for balancer in run.of_type("aws:lb/loadBalancer:LoadBalancer"):
        lines["Application Load Balancer"] += hours * (price("alb_hour") + WORKLOAD["load_balancer_lcu"] * price("alb_lcu_hour"))
        # An internet-facing ALB holds a public IPv4 address in each of its subnets.
        lines["public IPv4 addresses"] += len(unwrap(balancer.inputs)["subnets"]) * hours * price("public_ipv4_hour")
    nats = len(run.of_type("aws:ec2/natGateway:NatGateway"))
    if nats:
        lines["NAT gateways"] += nats * hours * price("nat_hour") + WORKLOAD["nat_gb"] * price("nat_gb")
    lines["public IPv4 addresses"] += len(run.of_type("aws:ec2/eip:Eip")) * hours * price("public_ipv4_hour")
    for endpoint in (unwrap(e.inputs) for e in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")):
        if endpoint.get("vpcEndpointType") == "Interface":
            lines["VPC interface endpoints"] += len(endpoint.get("subnetIds") or []) * hours * price("interface_endpoint_hour")


def _file_systems(run: ProgramRun, services: dict[str, dict], lines: Lines) -> None:
    file_systems = [unwrap(f.inputs) for f in run.of_type("aws:efs/fileSystem:FileSystem")]
    # The collectors' queue slots are the Elastic-throughput file systems (components/platforms/aws/queue_slots.py).
    queues = [f for f in file_systems if f.get("throughputMode") == "elastic"]
    lines["EFS and its backups"] += (len(file_systems) - len(queues)) * WORKLOAD["grafana_database_gb"] * price("efs_gb_month")
    if queues:
        lines["EFS queue slots"] += len(queues) * WORKLOAD["queue_gb_stored"] * price("efs_gb_month") + WORKLOAD["queue_gb_through"] * (
            price("efs_elastic_write_gb") + price("efs_elastic_read_gb")
        )
    backed_up = [p for p in run.of_type("aws:efs/backupPolicy:BackupPolicy") if unwrap(p.inputs)["backupPolicy"]["status"] == "ENABLED"]
    lines["EFS and its backups"] += len(backed_up) * WORKLOAD["grafana_database_gb"] * price("backup_gb_month")


def _buckets(run: ProgramRun, services: dict[str, dict], lines: Lines) -> None:
    """Tempo's and Loki's data, and the noncurrent versions a versioned bucket keeps."""
    if not run.of_type("aws:s3/bucket:Bucket"):
        return
    lines["S3"] += (
        WORKLOAD["object_store_gb"] * price("s3_gb_month")
        + WORKLOAD["object_store_puts"] / 1000 * price("s3_put_1000")
        + WORKLOAD["object_store_gets"] / 1000 * price("s3_get_1000")
    )
    data_buckets = [b for b in run.of_type("aws:s3/bucket:Bucket") if b.name.endswith("-bucket")]
    lifecycles = {r.name: unwrap(r.inputs)["rules"] for r in run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")}
    for versioning in run.of_type("aws:s3/bucketVersioning:BucketVersioning"):
        if unwrap(versioning.inputs)["versioningConfiguration"]["status"] != "Enabled":
            continue
        (kept_days,) = [r["noncurrentVersionExpiration"]["noncurrentDays"] for r in lifecycles[versioning.name] if "noncurrentVersionExpiration" in r]
        # This bucket's share of what the stores delete, each GB kept kept_days as a noncurrent version.
        deleted = WORKLOAD["object_store_gb_deleted_per_month"] / len(data_buckets)
        lines["S3 object versions"] += deleted * kept_days / DAYS_PER_MONTH * price("s3_gb_month")


def _metrics_and_logs(run: ProgramRun, services: dict[str, dict], lines: Lines) -> None:
    samples = WORKLOAD["active_series"] * HOURS_PER_MONTH * 3600 / WORKLOAD["scrape_interval_seconds"]
    for _ in run.of_type("aws:amp/workspace:Workspace"):
        lines["Amazon Managed Service for Prometheus"] += samples / 10_000_000 * price("amp_samples_10m")
    if run.of_type("aws:cloudwatch/logGroup:LogGroup"):
        lines["CloudWatch"] += WORKLOAD["cloudwatch_logs_gb"] * (price("logs_gb_ingested") + price("logs_gb_month"))
    for cluster in run.of_type("aws:ecs/cluster:Cluster"):
        if {"name": "containerInsights", "value": "enabled"} in unwrap(cluster.inputs).get("settings", []):
            metrics = WORKLOAD["container_insights_metrics_per_cluster"] + len(services) * WORKLOAD["container_insights_metrics_per_service"]
            lines["CloudWatch"] += metrics * price("metric_month")
    # Application Auto Scaling makes two alarms for each target-tracking policy (scale out, scale in).
    lines["CloudWatch"] += 2 * len(run.of_type("aws:appautoscaling/policy:Policy")) * price("alarm_month")
    lines["Secrets Manager, Cloud Map"] += len(run.of_type("aws:secretsmanager/secret:Secret")) * price("secret_month")
    lines["Secrets Manager, Cloud Map"] += len(run.of_type("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")) * price("hosted_zone_month")


def _guards(run: ProgramRun, services: dict[str, dict], lines: Lines) -> None:
    requests = WORKLOAD["load_balancer_requests_per_second"] * HOURS_PER_MONTH * 3600
    for acl in run.of_type("aws:wafv2/webAcl:WebAcl"):
        lines["AWS WAF"] += price("waf_acl_month") + len(unwrap(acl.inputs).get("rules") or []) * price("waf_rule_month")
        # An ACL on the load balancer inspects every request to it.
        lines["AWS WAF"] += requests / 1_000_000 * price("waf_million_requests")
    # Each log is kept logRetentionDays (30 by default): about a month's volume stored.
    per_gb = price("vended_logs_gb_ingested") + price("logs_gb_month")
    if run.of_type("aws:ec2/flowLog:FlowLog"):
        lines["VPC flow logs"] += WORKLOAD["flow_logs_gb"] * per_gb
    if run.of_type("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"):
        lines["AWS WAF logs"] += requests * WORKLOAD["waf_log_record_kb"] / 1024**2 * per_gb


def total(lines: list[Line]) -> float:
    return round(sum(line.usd for line in lines), 2)
