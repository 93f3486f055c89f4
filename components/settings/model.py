"""The stack's settings: one typed model of the stack configuration and the values it allows.

load.py builds it from the stack config (defaults live in Pulumi.yaml), one area of keys per module
(images.py, stores.py, exposure.py, aws.py, contacts.py), with the value readers of reader.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

TARGETS = ("docker", "aws")
ANONYMOUS_ROLES = ("none", "Viewer", "Editor")
SERVICES = ("collector", "prometheus", "tempo", "loki", "grafana")
CPU_ARCHITECTURES = ("X86_64", "ARM64")
# Images confirmed to publish linux/arm64 (a manifest list with an arm64 entry), by repository and
# tag; ARM64 tasks run only these (Fargate cannot start an image without the task's architecture).
# Where each was checked: docs/arm64-images.md. Kept as data, not derived from Pulumi.yaml: a new
# pin is confirmed only once checked; tests/test_versions.py fails until this equals the pinned defaults.
ARM64_IMAGES = {
    "otel/opentelemetry-collector-contrib": ("0.159.0",),
    "prom/prometheus": ("v3.14.0",),
    "grafana/tempo": ("3.0.3",),
    "grafana/loki": ("3.7.6",),
    "grafana/grafana": ("13.2.0",),
    "busybox": ("1.37.0",),
}
# Where tasks run: "public" subnets with a public IP each and no NAT gateway (their security
# groups still admit only the load balancer and the other services), or "private" subnets whose
# egress goes through NAT gateways.
TASK_SUBNETS = ("public", "private")
# Where metrics are kept: the self-hosted Prometheus, or Amazon Managed Service for Prometheus.
METRICS_BACKENDS = ("prometheus", "amp")
# A workspace's retention in days: 1 to 1095 (AWS documents three years at most).
AMP_MAX_RETENTION_DAYS = 1095
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
# Fargate task sizes: CPU units -> allowed memory in MiB.
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
# Fargate gives every task 20 GiB of ephemeral storage; a task definition may ask for 21 to 200
# (Amazon ECS Developer Guide, "Fargate task ephemeral storage"; ephemeralStorage.sizeInGiB).
FARGATE_EPHEMERAL_STORAGE_GIB = 20
FARGATE_MAX_EPHEMERAL_STORAGE_GIB = 200
# Prometheus's storage docs: size retention at most 80-85% of the disk, the rest is headroom for
# compactions (source and compacted blocks coexist on disk for a while).
PROMETHEUS_MAX_RETENTION_SHARE = 85


def covering_days(hours: int) -> int:
    """The whole days that cover `hours`, rounded up: what a store that keeps days is given."""
    return -(-hours // 24)


@dataclass(frozen=True)
class Retention:
    hours: int

    @property
    def go_duration(self) -> str:
        """In hours, which Prometheus, Tempo and Loki all read (Go's time.ParseDuration has no days)."""
        return f"{self.hours}h"

    @property
    def days(self) -> int:
        return covering_days(self.hours)


@dataclass(frozen=True)
class PrometheusStorage:
    """How much disk Prometheus has, and how much of it its blocks may take."""

    disk_gib: int
    retention_mib: int

    @property
    def retention_size(self) -> str:
        """storage.tsdb.retention.size; Prometheus's MB is a MiB."""
        return f"{self.retention_mib}MB"


@dataclass(frozen=True)
class ContainerMetricsSettings:
    """cAdvisor on the docker target: CPU, memory, network and disk of every container."""

    enabled: bool
    image: str
    memory_mb: int


@dataclass(frozen=True)
class ServiceSettings:
    image: str
    memory_mb: int


@dataclass(frozen=True)
class HostPorts:
    grafana: int
    otlp_grpc: int
    otlp_http: int
    collector_health: int
    prometheus: int
    # The token-free route for web pages, where otlpRequireToken is true.
    otlp_browser: int


@dataclass(frozen=True)
class AwsSettings:
    """Only for the aws target: where and how big, and what a user must supply."""

    region: str
    # None: the stack creates its own VPC.
    vpc_id: Optional[str]
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    vpc_cidr: str
    availability_zones: int
    nat_gateways: int
    task_subnets: str
    ingress_cidrs: tuple[str, ...]
    certificate_arn: str
    domain_name: str
    # Route 53 zone that gets an alias record for domain_name; None: the user points DNS.
    hosted_zone_id: Optional[str]
    cpu: Mapping[str, int]
    collector_min_tasks: int
    collector_max_tasks: int
    log_retention_days: int
    retain_data: bool
    cpu_architecture: str
    # "amp": metrics in Amazon Managed Service for Prometheus; Prometheus only scrapes (agent mode).
    metrics_backend: str
    # Daily AWS Backup recovery points of the EFS file system (Grafana's database).
    file_system_backups: bool = True
    # Who may reach Grafana (people); empty: the same networks as ingest.
    grafana_ingress_cidrs: tuple[str, ...] = ()
    # The stack accepts that Grafana's login and API are reachable from the whole internet.
    grafana_open_to_internet: bool = False
    # Requests per 5 minutes per client address on the browser route (AWS WAF); 0: no WAF.
    browser_rate_limit: int = 0
    # Days the load balancer's access logs are kept in S3; 0: none.
    alb_access_log_days: int = 0
    # Tempo's and Loki's buckets keep overwritten and deleted objects a week (noncurrent versions).
    bucket_versioning: bool = True
    # The VPC's flow logs, and the web ACL's request log, in CloudWatch Logs (log_retention_days).
    vpc_flow_logs: bool = False
    waf_logging: bool = False


@dataclass(frozen=True)
class Secret:
    """A config value that must stay secret: never printed, handed to resources as a secret Output."""

    value: str = field(repr=False)

    def output(self):
        import pulumi

        return pulumi.Output.secret(self.value)


@dataclass(frozen=True)
class AlertContacts:
    """Where alert notifications go; each channel is optional."""

    email_addresses: tuple[str, ...] = ()
    slack_webhook_url: Optional[Secret] = None
    pagerduty_integration_key: Optional[Secret] = None

    @property
    def channels(self) -> set[str]:
        return {
            name
            for name, configured in (
                ("email", bool(self.email_addresses)),
                ("slack", self.slack_webhook_url is not None),
                ("pagerduty", self.pagerduty_integration_key is not None),
            )
            if configured
        }


@dataclass(frozen=True)
class SmtpSettings:
    """The mail server Grafana sends e-mail notifications through."""

    host: str
    user: str
    password: Optional[Secret]
    from_address: str


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    target: str
    environment: str
    service_namespace: str
    host_address: str
    services: Mapping[str, ServiceSettings]
    utility_image: str
    prometheus_retention: Retention
    tempo_retention: Retention
    loki_retention: Retention
    trace_sampling_percentage: float
    # Traces longer than this are always kept, like traces with an error.
    trace_slow_threshold_ms: int
    cors_allowed_origins: tuple[str, ...]
    grafana_admin_user: str
    grafana_anonymous_role: Optional[str]
    host_ports: HostPorts
    prometheus_storage: PrometheusStorage
    container_metrics: ContainerMetricsSettings
    alert_contacts: AlertContacts = AlertContacts()
    smtp: Optional[SmtpSettings] = None
    # The collector's OTLP receivers demand a bearer token (always on the aws target: public ingest).
    otlp_require_token: bool = False
    aws: Optional[AwsSettings] = None
    # Grafana's database elsewhere (postgres:// or mysql://, with its password); None: SQLite.
    grafana_database_url: Optional[Secret] = None
    # The name people reach the docker target's published ports by ("" on aws: the domain).
    external_host: str = "localhost"
    # Where alerts link to the runbook ("<base>#<section>"); "": Grafana's runbook dashboard.
    runbook_base_url: str = ""
    # Keys the stack stores encrypted (`pulumi config set --secret`): their values stay secret
    # wherever they go, credentials or not (a user name, say).
    marked_secret: frozenset[str] = frozenset()

    def image(self, service: str) -> str:
        return self.services[service].image

    def memory_mb(self, service: str) -> int:
        return self.services[service].memory_mb

    def cpu_units(self, service: str) -> Optional[int]:
        """CPU of one task where the target sizes it (aws: a Fargate task size); None on docker."""
        return self.aws.cpu[service] if self.aws else None

    @property
    def collector_tasks(self) -> tuple[int, int]:
        """The collector's task counts (collectorMinTasks, collectorMaxTasks); one on docker."""
        return (self.aws.collector_min_tasks, self.aws.collector_max_tasks) if self.aws else (1, 1)

    @property
    def prometheus_task_disk_gib(self) -> Optional[int]:
        """The task storage Prometheus asks for where the target sizes it (aws); a docker volume
        takes what the host has."""
        return self.prometheus_storage.disk_gib if self.aws else None

    @property
    def resource_prefix(self) -> str:
        """Prefix for names that must be unique on a host or in an account."""
        return f"{self.project}-{self.stack}"

    @property
    def service_domain(self) -> str:
        """The private DNS namespace services find each other in on aws (Cloud Map)."""
        return f"{self.resource_prefix.lower()}.internal"
