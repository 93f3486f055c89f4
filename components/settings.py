"""One typed, validated model of the stack configuration.

Values come from the stack config (defaults live in Pulumi.yaml). Every problem is collected and
reported at once, each naming its config key and what is allowed, before any resource exists.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Optional

TARGETS = ("docker", "aws")
ANONYMOUS_ROLES = ("none", "Viewer", "Editor")
SERVICES = ("collector", "prometheus", "tempo", "loki", "grafana")
CPU_ARCHITECTURES = ("X86_64", "ARM64")
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

_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_RETENTION = re.compile(r"^(?P<count>[1-9][0-9]*)(?P<unit>[hdw])$")
_HOURS_PER_UNIT = {"h": 1, "d": 24, "w": 24 * 7}
_SHORT_DURATION = re.compile(r"^(?P<count>[1-9][0-9]*)(?P<unit>ms|s)$")
_MS_PER_UNIT = {"ms": 1, "s": 1000}
# A slow trace must end within the tail sampler's decision wait (10 s) less the 5 s an SDK may take
# to export its last span (components/services/collector.py): beyond that it would be judged unfinished.
SLOW_THRESHOLD_MAX_MS = 5000
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9*.-]+(:([0-9]{1,5}|\*))?$")
_GRAFANA_USER = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_HOSTED_ZONE_ID = re.compile(r"^Z[0-9A-Z]{1,32}$")
_DATABASE_URL = re.compile(r"^(postgres|mysql)://[^\s:@/]+:[^\s@]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9_-]+$")
_EMAIL = re.compile(r"^[^@\s,;]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/\S*$")
# PagerDuty Events API v2 integration keys are 32 characters.
_PAGERDUTY_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
_SMTP_HOST = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")


class ProblemsError(ValueError):
    """Every problem found in one input, one line each, under a heading that says which input."""

    heading = "invalid input"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{self.heading}:\n" + "\n".join(f"  - {p}" for p in problems))


class SettingsError(ProblemsError):
    """One line per invalid config key."""

    heading = "invalid stack configuration"


@dataclass(frozen=True)
class Retention:
    hours: int

    @property
    def prometheus(self) -> str:
        return f"{self.hours}h"

    @property
    def go_duration(self) -> str:
        """Go's time.ParseDuration has no days: Tempo wants hours."""
        return f"{self.hours}h"

    @property
    def seconds(self) -> int:
        return self.hours * 3600


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
    alert_contacts: AlertContacts = AlertContacts()
    smtp: Optional[SmtpSettings] = None
    # The collector's OTLP receivers demand a bearer token (always on the aws target: public ingest).
    otlp_require_token: bool = False
    aws: Optional[AwsSettings] = None
    # Grafana's database elsewhere (postgres:// or mysql://, with its password); None: SQLite.
    grafana_database_url: Optional[Secret] = None

    def image(self, service: str) -> str:
        return self.services[service].image

    def memory_mb(self, service: str) -> int:
        return self.services[service].memory_mb

    @property
    def resource_prefix(self) -> str:
        """Prefix for names that must be unique on a host or in an account."""
        return f"{self.project}-{self.stack}"

    @property
    def service_domain(self) -> str:
        """The private DNS namespace services find each other in on aws (Cloud Map)."""
        return f"{self.resource_prefix.lower()}.internal"


# Keys whose values are credentials: they must be set with `pulumi config set --secret`.
SECRET_KEYS = ("alertSlackWebhookUrl", "alertPagerDutyIntegrationKey", "smtpPassword", "grafanaDatabaseUrl")


def load_settings(
    get: Callable[[str], Optional[str]],
    project: str,
    stack: str,
    secret_keys: Collection[str] = (),
    aws_region: Optional[str] = None,
) -> Settings:
    """Build Settings from a getter of raw config strings (pulumi.Config.get or a dict's get).

    secret_keys: the keys the stack stores encrypted; a credential stored in plain text is refused.
    aws_region: the AWS provider's own `aws:region` setting.
    """
    reader = _Reader(get, secret_keys)
    target = reader.choice("target", TARGETS)
    environment = reader.pattern("environment", _NAME, "lowercase letters, digits and dashes, at most 32 characters")
    namespace = reader.pattern("serviceNamespace", _NAMESPACE, "letters, digits, '.', '_' and '-', at most 63 characters")
    host_address = reader.ip_address("hostAddress")
    services = {
        name: ServiceSettings(
            image=reader.image(f"{name}Image"),
            memory_mb=reader.integer(f"{name}MemoryMb", minimum=128, maximum=120 * 1024),
        )
        for name in SERVICES
    }
    utility_image = reader.image("utilityImage")
    retention = {
        store: reader.retention(f"{store}Retention", minimum_hours=24 if store == "loki" else 1, whole_days=store == "loki")
        for store in ("prometheus", "tempo", "loki")
    }
    sampling = reader.percentage("traceSamplingPercentage")
    slow_threshold_ms = reader.short_duration_ms("traceSlowThreshold", maximum_ms=SLOW_THRESHOLD_MAX_MS)
    origins = reader.origins("corsAllowedOrigins")
    admin_user = reader.pattern("grafanaAdminUser", _GRAFANA_USER, "1 to 64 letters, digits or . _ @ -")
    role = reader.choice("grafanaAnonymousRole", ANONYMOUS_ROLES, refused={"Admin": "anonymous visitors must never be Admin"})
    ports = HostPorts(
        grafana=reader.port("grafanaPort"),
        otlp_grpc=reader.port("otlpGrpcPort"),
        otlp_http=reader.port("otlpHttpPort"),
        collector_health=reader.port("collectorHealthPort"),
        prometheus=reader.port("prometheusPort"),
    )
    reader.distinct_ports(
        {"grafanaPort": ports.grafana, "otlpGrpcPort": ports.otlp_grpc, "otlpHttpPort": ports.otlp_http,
         "collectorHealthPort": ports.collector_health, "prometheusPort": ports.prometheus}
    )
    require_token = reader.boolean("otlpRequireToken")
    aws_settings = _aws_settings(reader, services, aws_region)
    if target == "aws":
        if role not in (None, "none"):
            reader.problem("grafanaAnonymousRole", f"is {role!r}; the aws target serves Grafana publicly, so it must be 'none'")
        if not require_token:
            reader.problem("otlpRequireToken", "is false; the aws target takes OTLP from the internet, so it must be true")
        aws_settings.check_required()
        if aws_settings.value.metrics_backend == "amp" and retention["prometheus"].hours > AMP_MAX_RETENTION_DAYS * 24:
            reader.problem(
                "prometheusRetention",
                f"is {retention['prometheus'].hours // 24} days; Amazon Managed Service for Prometheus keeps at most {AMP_MAX_RETENTION_DAYS}",
            )
    elif aws_settings.value.metrics_backend == "amp":
        reader.problem("metricsBackend", "'amp' (Amazon Managed Service for Prometheus) needs target aws; allowed on docker: prometheus")
    contacts = AlertContacts(
        email_addresses=reader.emails("alertEmailAddresses"),
        slack_webhook_url=reader.secret(
            "alertSlackWebhookUrl", _HTTPS_URL, "an https:// webhook URL such as https://hooks.slack.com/services/..."
        ),
        pagerduty_integration_key=reader.secret(
            "alertPagerDutyIntegrationKey", _PAGERDUTY_KEY, "the 32-character integration key of a PagerDuty Events API v2 integration"
        ),
    )
    smtp = _read_smtp(reader)
    database_url = reader.secret(
        "grafanaDatabaseUrl", _DATABASE_URL, "postgres://user:password@host:port/database or mysql://user:password@host:port/database"
    )
    if contacts.email_addresses and smtp is None:
        reader.problem("alertEmailAddresses", "e-mail needs a mail server: set smtpHost and smtpFromAddress too")
    reader.raise_if_invalid()
    return Settings(
        project=project,
        stack=stack,
        target=target,
        environment=environment,
        service_namespace=namespace,
        host_address=host_address,
        services=services,
        utility_image=utility_image,
        prometheus_retention=retention["prometheus"],
        tempo_retention=retention["tempo"],
        loki_retention=retention["loki"],
        trace_sampling_percentage=sampling,
        trace_slow_threshold_ms=slow_threshold_ms,
        cors_allowed_origins=origins,
        grafana_admin_user=admin_user,
        grafana_anonymous_role=None if role == "none" else role,
        host_ports=ports,
        alert_contacts=contacts,
        smtp=smtp,
        otlp_require_token=require_token,
        aws=aws_settings.value if target == "aws" else None,
        grafana_database_url=database_url,
    )


class _AwsReading:
    """aws-only keys are always read (so a typo fails on any target); what a user must supply
    is demanded only when the target is aws."""

    def __init__(self, reader: _Reader, value: AwsSettings, services: Mapping[str, ServiceSettings]):
        self._reader = reader
        self.value = value
        self._services = services

    def check_required(self) -> None:
        problem, v = self._reader.problem, self.value
        if not v.region:
            problem("aws:region", "is missing; set the AWS provider's region, e.g. `pulumi config set aws:region eu-west-1`")
        if not v.certificate_arn:
            problem(
                "certificateArn",
                "is missing; the aws target serves HTTPS only: give the ARN of an issued ACM certificate for domainName in the stack's region",
            )
        if not v.domain_name:
            problem("domainName", "is missing; the aws target needs the DNS name people and SDKs use, e.g. observability.example.com")
        if not v.ingress_cidrs:
            problem("ingressCidrs", "is empty; list the networks allowed to reach the load balancer, e.g. [203.0.113.0/24] (0.0.0.0/0 for the internet)")
        if v.vpc_id:
            for key, ids in (("publicSubnetIds", v.public_subnet_ids), ("privateSubnetIds", v.private_subnet_ids)):
                if len(ids) < 2:
                    problem(key, f"has {len(ids)} subnet(s); with vpcId set, give at least 2, in different availability zones")
        elif v.public_subnet_ids or v.private_subnet_ids:
            problem("vpcId", "is empty but subnets are given; set vpcId to use an existing VPC, or clear publicSubnetIds and privateSubnetIds to create one")
        for name, units in v.cpu.items():
            memory = self._services[name].memory_mb
            if units not in FARGATE_MEMORY:
                problem(f"{name}Cpu", f"{units} is not a Fargate size; allowed: {', '.join(map(str, FARGATE_MEMORY))}")
                continue
            allowed = FARGATE_MEMORY[units]
            if memory not in allowed:
                sizes = f"{allowed[0]} to {allowed[-1]} in steps of {allowed[1] - allowed[0]}" if len(allowed) > 3 else ", ".join(map(str, allowed))
                problem(f"{name}MemoryMb", f"{memory} does not fit a Fargate task with {name}Cpu {units}; allowed: {sizes}")


def _aws_settings(reader: _Reader, services: Mapping[str, ServiceSettings], region: Optional[str]) -> _AwsReading:
    if region and not _REGION.match(region):
        reader.problem("aws:region", f"{region!r} is not an AWS region; allowed: e.g. eu-west-1, us-east-2")
    vpc_id = reader.optional_pattern("vpcId", _VPC_ID, "an existing VPC id (vpc-...), or empty to create a VPC")
    public = reader.id_list("publicSubnetIds", _SUBNET_ID, "subnet ids (subnet-...)")
    private = reader.id_list("privateSubnetIds", _SUBNET_ID, "subnet ids (subnet-...)")
    vpc_cidr = reader.network("vpcCidr", min_prefix=16, max_prefix=22)
    zones = reader.integer("availabilityZones", minimum=2, maximum=6)
    nat = reader.integer("natGateways", minimum=1, maximum=6)
    if nat > zones:
        reader.problem("natGateways", f"{nat} is more than availabilityZones ({zones}); allowed: 1 (cheapest) to one per zone")
    cidrs = reader.cidr_list("ingressCidrs")
    certificate = reader.optional_pattern("certificateArn", _CERTIFICATE_ARN, "an ACM certificate ARN, arn:aws:acm:<region>:<account>:certificate/<id>")
    if certificate and region and certificate.split(":")[3] != region:
        reader.problem("certificateArn", f"is in {certificate.split(':')[3]}, the stack in {region}; the load balancer needs a certificate in its own region")
    domain = reader.optional_pattern("domainName", _DOMAIN, "a lowercase DNS name such as observability.example.com")
    zone = reader.optional_pattern("hostedZoneId", _HOSTED_ZONE_ID, "a Route 53 hosted zone id (Z...), or empty to manage DNS yourself")
    cpu = {name: reader.integer(f"{name}Cpu", minimum=256, maximum=16384) for name in SERVICES}
    minimum = reader.integer("collectorMinTasks", minimum=1, maximum=100)
    maximum = reader.integer("collectorMaxTasks", minimum=1, maximum=100)
    if maximum < minimum:
        reader.problem("collectorMaxTasks", f"{maximum} is below collectorMinTasks ({minimum})")
    retention = reader.integer("logRetentionDays", minimum=1, maximum=3653)
    if retention not in LOG_RETENTION_DAYS:
        reader.problem("logRetentionDays", f"{retention} is not a CloudWatch Logs retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return _AwsReading(
        reader,
        AwsSettings(
            region=region or "",
            vpc_id=vpc_id or None,
            public_subnet_ids=public,
            private_subnet_ids=private,
            vpc_cidr=vpc_cidr,
            availability_zones=zones,
            nat_gateways=nat,
            ingress_cidrs=cidrs,
            certificate_arn=certificate,
            domain_name=domain,
            hosted_zone_id=zone or None,
            cpu=cpu,
            collector_min_tasks=minimum,
            collector_max_tasks=maximum,
            log_retention_days=retention,
            retain_data=reader.boolean("retainData"),
            cpu_architecture=reader.choice("cpuArchitecture", CPU_ARCHITECTURES),
            metrics_backend=reader.choice("metricsBackend", METRICS_BACKENDS),
        ),
        services,
    )


def _read_smtp(reader: _Reader) -> Optional[SmtpSettings]:
    host = reader.optional("smtpHost")
    user = reader.optional("smtpUser")
    password = reader.secret("smtpPassword", re.compile(r"^.+$"), "the SMTP user's password")
    from_address = reader.optional("smtpFromAddress")
    if host and not _SMTP_HOST.match(host):
        reader.problem("smtpHost", f"{host!r} is not a mail server address; allowed: host:port, e.g. smtp.example.com:587")
    if from_address and not _EMAIL.match(from_address):
        reader.problem("smtpFromAddress", f"{from_address!r} is not an e-mail address")
    if not host:
        for key, value in (("smtpUser", user), ("smtpPassword", password), ("smtpFromAddress", from_address)):
            if value:
                reader.problem(key, "is set but smtpHost is not; set smtpHost (host:port) or remove it")
        return None
    if not from_address:
        reader.problem("smtpFromAddress", "is missing; Grafana needs a sender address when smtpHost is set")
    if password and not user:
        reader.problem("smtpUser", "is missing; a password is only used with a user")
    return SmtpSettings(host=host, user=user, password=password, from_address=from_address)


class _Reader:
    """Parses one key at a time; records a problem instead of raising so all are reported."""

    def __init__(self, get: Callable[[str], Optional[str]], secret_keys: Collection[str] = ()):
        self._get = get
        self._secret_keys = set(secret_keys)
        self._problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self._problems.append(f"{key}: {message}")

    def raise_if_invalid(self) -> None:
        if self._problems:
            raise SettingsError(self._problems)

    def raw(self, key: str) -> Optional[str]:
        value = self._get(key)
        if value is None or value == "":
            self.problem(key, "is missing; set it in the stack file or restore its default in Pulumi.yaml")
            return None
        return value

    def optional(self, key: str) -> str:
        """A key whose default is empty: "" means not set."""
        return self._get(key) or ""

    def secret(self, key: str, regex: re.Pattern[str], allowed: str) -> Optional[Secret]:
        """An optional credential. Messages never repeat its value."""
        value = self.optional(key)
        if not value:
            return None
        if key not in self._secret_keys:
            self.problem(key, f"is stored in plain text; set it with `pulumi config set --secret {key} <value>`")
        if not regex.match(value):
            self.problem(key, f"is not valid (value not shown); allowed: {allowed}")
        return Secret(value)

    def emails(self, key: str) -> tuple[str, ...]:
        addresses = self.string_list(key, "oncall@example.com") or []
        for address in addresses:
            if not _EMAIL.match(address):
                self.problem(key, f"{address!r} is not an e-mail address; allowed: name@example.com")
        return tuple(addresses)

    def choice(self, key: str, allowed: tuple[str, ...], refused: Optional[dict[str, str]] = None) -> str:
        value = self.raw(key)
        if value is None:
            return allowed[0]
        if refused and value in refused:
            self.problem(key, f"{value!r} is refused: {refused[value]}; allowed: {', '.join(allowed)}")
        elif value not in allowed:
            self.problem(key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return value

    def pattern(self, key: str, regex: re.Pattern[str], allowed: str) -> str:
        value = self.raw(key)
        if value is not None and not regex.match(value):
            self.problem(key, f"{value!r} is not valid; allowed: {allowed}")
        return value or ""

    def ip_address(self, key: str) -> str:
        value = self.raw(key)
        if value is None:
            return ""
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            self.problem(key, f"{value!r} is not an IPv4 address; use 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)")
        return value

    def optional_pattern(self, key: str, regex: re.Pattern[str], allowed: str) -> str:
        """Empty is allowed (the default); anything else must match."""
        value = self._get(key) or ""
        if value and not regex.match(value):
            self.problem(key, f"{value!r} is not valid; allowed: {allowed}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if value is None:
            return False
        if value not in ("true", "false"):
            self.problem(key, f"{value!r} is not allowed; allowed: true, false")
        return value == "true"

    def string_list(self, key: str, example: str) -> Optional[list[str]]:
        value = self._get(key)
        if value is None or value == "":
            return []
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            self.problem(key, f"{value!r} is not a list of strings; allowed: a YAML list such as [{example}]")
            return None
        return parsed

    def id_list(self, key: str, regex: re.Pattern[str], allowed: str) -> tuple[str, ...]:
        items = self.string_list(key, "subnet-0123456789abcdef0") or []
        for item in items:
            if not regex.match(item):
                self.problem(key, f"{item!r} is not valid; allowed: {allowed}")
        return tuple(items)

    def cidr_list(self, key: str) -> tuple[str, ...]:
        items = self.string_list(key, "203.0.113.0/24") or []
        for item in items:
            try:
                ipaddress.ip_network(item, strict=True)
            except ValueError:
                self.problem(key, f"{item!r} is not a network; allowed: CIDR blocks such as 203.0.113.0/24 or 2001:db8::/32")
        return tuple(items)

    def network(self, key: str, min_prefix: int, max_prefix: int) -> str:
        value = self.raw(key)
        if value is None:
            return ""
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError:
            self.problem(key, f"{value!r} is not an IPv4 network; allowed: a CIDR block such as 10.40.0.0/16")
            return value
        if not min_prefix <= network.prefixlen <= max_prefix:
            self.problem(key, f"{value!r} has a /{network.prefixlen} prefix; allowed: /{min_prefix} to /{max_prefix}")
        return value

    def integer(self, key: str, minimum: int, maximum: int) -> int:
        value = self.raw(key)
        if value is None:
            return minimum
        try:
            number = int(value)
        except ValueError:
            self.problem(key, f"{value!r} is not a whole number; allowed: {minimum} to {maximum}")
            return minimum
        if not minimum <= number <= maximum:
            self.problem(key, f"{number} is out of range; allowed: {minimum} to {maximum}")
        return number

    def port(self, key: str) -> int:
        return self.integer(key, minimum=1, maximum=65535)

    def distinct_ports(self, ports: dict[str, int]) -> None:
        seen: dict[int, str] = {}
        for key, port in ports.items():
            if port in seen:
                self.problem(key, f"port {port} is already used by {seen[port]}; each published port must differ")
            seen[port] = key

    def image(self, key: str) -> str:
        value = self.raw(key)
        if value is None:
            return ""
        match = _IMAGE.match(value)
        if not match:
            self.problem(key, f"{value!r} is not an image reference; allowed: repository:tag or repository@sha256:digest")
        elif not match.group("tag") and not match.group("digest"):
            self.problem(key, f"{value!r} has no tag; pin a version, e.g. {value}:1.2.3")
        elif match.group("tag") == "latest" and not match.group("digest"):
            self.problem(key, f"{value!r} uses 'latest'; pin a version tag or a digest")
        return value

    def retention(self, key: str, minimum_hours: int, whole_days: bool) -> Retention:
        value = self.raw(key)
        if value is None:
            return Retention(hours=minimum_hours)
        match = _RETENTION.match(value)
        if not match:
            self.problem(key, f"{value!r} is not a retention; allowed: a whole number followed by h, d or w (e.g. 72h, 15d, 2w)")
            return Retention(hours=minimum_hours)
        hours = int(match.group("count")) * _HOURS_PER_UNIT[match.group("unit")]
        if hours < minimum_hours:
            self.problem(key, f"{value!r} is too short; allowed: at least {minimum_hours}h")
        elif whole_days and hours % 24:
            self.problem(key, f"{value!r} is not a whole number of days (the index period is 24h); allowed: e.g. 7d, 744h")
        return Retention(hours=hours)

    def short_duration_ms(self, key: str, maximum_ms: int) -> int:
        value = self.raw(key)
        if value is None:
            return maximum_ms
        match = _SHORT_DURATION.match(value)
        if not match:
            self.problem(key, f"{value!r} is not a duration; allowed: a whole number followed by ms or s (e.g. 500ms, 2s)")
            return maximum_ms
        ms = int(match.group("count")) * _MS_PER_UNIT[match.group("unit")]
        if ms > maximum_ms:
            self.problem(key, f"{value!r} is too long; allowed: at most {maximum_ms}ms (the sampler decides within 10s of a trace's first span)")
        return ms

    def percentage(self, key: str) -> float:
        value = self.raw(key)
        if value is None:
            return 100.0
        try:
            number = float(value)
        except ValueError:
            self.problem(key, f"{value!r} is not a number; allowed: above 0 and at most 100")
            return 100.0
        if not 0 < number <= 100:
            self.problem(key, f"{value!r} is out of range; allowed: above 0 and at most 100")
        return number

    def origins(self, key: str) -> tuple[str, ...]:
        origins = self.string_list(key, "http://localhost:4200") or []
        for origin in origins:
            if origin == "*":
                self.problem(key, "'*' would let any web site send telemetry; list the app origins instead (scheme://host[:port])")
            elif not _ORIGIN.match(origin):
                self.problem(key, f"{origin!r} is not an origin; allowed: scheme://host[:port] with http or https, no path")
        return tuple(origins)


def load_from_pulumi() -> Settings:
    """Read the current stack's config once (only called by __main__.py)."""
    import pulumi
    from pulumi.runtime.config import is_config_secret

    config = pulumi.Config()
    secret_keys = [key for key in SECRET_KEYS if is_config_secret(config.full_key(key))]
    return load_settings(
        config.get, pulumi.get_project(), pulumi.get_stack(), secret_keys, aws_region=pulumi.Config("aws").get("region")
    )
