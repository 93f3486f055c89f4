"""The stack's settings read from its config: which key means what, what each allows, which
combinations are refused, before any resource exists."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Collection, Mapping
from typing import Optional

from components.settings.model import (
    AMP_MAX_RETENTION_DAYS,
    ANONYMOUS_ROLES,
    ARM64_IMAGES,
    CPU_ARCHITECTURES,
    FARGATE_EPHEMERAL_STORAGE_GIB,
    FARGATE_MAX_EPHEMERAL_STORAGE_GIB,
    FARGATE_MEMORY,
    LOG_RETENTION_DAYS,
    METRICS_BACKENDS,
    PROMETHEUS_MAX_RETENTION_SHARE,
    SERVICES,
    TARGETS,
    TASK_SUBNETS,
    AlertContacts,
    AwsSettings,
    ContainerMetricsSettings,
    HostPorts,
    PrometheusStorage,
    ServiceSettings,
    Settings,
    SmtpSettings,
)
from components.settings.reader import EMAIL, ConfigReader
from components.stackconfig import declared_keys

# Grafana's listener rule matches its host, its path and then these source networks: a rule takes
# at most three comparison strings per condition and five per rule (ALB guide, "Listener rules").
GRAFANA_CIDRS_MAX = 3
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$")
_GRAFANA_USER = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_HOSTED_ZONE_ID = re.compile(r"^Z[0-9A-Z]{1,32}$")
_DATABASE_URL = re.compile(r"^(postgres|mysql)://[^\s:@/]+:[^\s@]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9_-]+$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/\S*$")
# PagerDuty Events API v2 integration keys are 32 characters.
_PAGERDUTY_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
_SMTP_HOST = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")

# A slow trace must end within the tail sampler's decision wait (10 s) less the 5 s an SDK may take
# to export its last span (components/services/collector.py): beyond that it would be judged unfinished.
SLOW_THRESHOLD_MAX_MS = 5000
# Ten years of load-balancer access logs at most: longer is an archive, not this stack's job.
MAX_ACCESS_LOG_DAYS = 3650

# Keys whose values are credentials: they must be set with `pulumi config set --secret`.
SECRET_KEYS = ("alertSlackWebhookUrl", "alertPagerDutyIntegrationKey", "smtpPassword", "grafanaDatabaseUrl")


def load_settings(
    get: Callable[[str], Optional[str]],
    project: str,
    stack: str,
    secret_keys: Collection[str] = (),
    aws_region: Optional[str] = None,
    given_keys: Collection[str] = (),
) -> Settings:
    """Build Settings from a getter of raw config strings (pulumi.Config.get or a dict's get).

    secret_keys: the keys the stack stores encrypted; a credential stored in plain text is refused.
    aws_region: the AWS provider's own `aws:region` setting.
    given_keys: every key the stack sets in the project's namespace; one Pulumi.yaml does not
    declare (a misspelling) is refused, naming the nearest declared key.
    """
    reader = ConfigReader(get, secret_keys)
    _refuse_unknown_keys(reader, given_keys)
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
    external_host = reader.optional_pattern("externalHost", _HOST, "a host name or IPv4 address, without scheme or port")
    if not external_host:
        external_host = "localhost" if host_address in ("127.0.0.1", "0.0.0.0") else host_address
    runbook_base_url = reader.optional_pattern(
        "runbookBaseUrl", _HTTPS_URL, "an absolute https:// URL of the runbook, e.g. https://github.com/org/repo/blob/main/docs/runbook.md"
    )
    accept_open_doors = reader.boolean("allowUnauthenticatedNetworkAccess")
    if target == "docker" and _beyond_this_machine(host_address):
        open_doors = [
            *(["grafanaAnonymousRole is Editor (anyone who reaches the host edits dashboards and alerts)"] if role == "Editor" else []),
            *(["otlpRequireToken is false (anyone who reaches the host sends telemetry)"] if not require_token else []),
        ]
        if open_doors and not accept_open_doors:
            reader.problem(
                "hostAddress",
                f"is {host_address}, beyond this machine, while " + " and ".join(open_doors)
                + "; Docker-published ports bypass the host's firewall. Allowed: 127.0.0.1, or set grafanaAnonymousRole "
                "to Viewer or none and otlpRequireToken to true, or accept it with allowUnauthenticatedNetworkAccess: true",
            )
    aws_settings = _aws_settings(reader, services, aws_region, utility_image)
    if target == "aws":
        if role not in (None, "none"):
            reader.problem("grafanaAnonymousRole", f"is {role!r}; the aws target serves Grafana publicly, so it must be 'none'")
        if not require_token:
            reader.problem("otlpRequireToken", "is false; the aws target takes OTLP from the internet, so it must be true")
        aws_settings.check_required()
        if aws_settings.value.metrics_backend == "amp" and retention["prometheus"].hours > AMP_MAX_RETENTION_DAYS * 24:
            reader.problem(
                "prometheusRetention",
                f"is {retention['prometheus'].hours}h, more than {AMP_MAX_RETENTION_DAYS} days ({AMP_MAX_RETENTION_DAYS * 24}h), "
                f"the most Amazon Managed Service for Prometheus keeps; allowed: up to {AMP_MAX_RETENTION_DAYS}d",
            )
    elif aws_settings.value.metrics_backend == "amp":
        reader.problem("metricsBackend", "'amp' (Amazon Managed Service for Prometheus) needs target aws; allowed on docker: prometheus")
    if target != "aws" and aws_settings.value.alb_access_log_days:
        reader.problem("albAccessLogDays", "keeps the AWS load balancer's access logs, so it needs target aws; allowed on docker: 0")
    if target != "aws" and aws_settings.value.browser_rate_limit:
        reader.problem("browserRateLimit", "is an AWS WAF rule on the load balancer, so it needs target aws; allowed on docker: 0")
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
    prometheus_storage = _read_prometheus_storage(reader, target)
    container_metrics = _read_container_metrics(reader, target)
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
        external_host=external_host,
        marked_secret=frozenset(secret_keys),
        runbook_base_url=runbook_base_url,
        aws=aws_settings.value if target == "aws" else None,
        grafana_database_url=database_url,
        prometheus_storage=prometheus_storage,
        container_metrics=container_metrics,
    )


# storage.tsdb.retention.size units, powers of 2 (prometheus docs/configuration: "<size>").
_SIZE_UNITS = {"MB": 1, "GB": 1024, "TB": 1024 * 1024}
_RETENTION_SIZE = re.compile(r"^(?:(?P<percent>[1-9][0-9]?)%|(?P<count>[1-9][0-9]*)(?P<unit>MB|GB|TB))$")


def _read_prometheus_storage(reader: ConfigReader, target: str) -> PrometheusStorage:
    if target == "aws":
        # The Prometheus task is given this much ephemeral storage.
        disk = reader.integer("prometheusStorageGib", minimum=FARGATE_EPHEMERAL_STORAGE_GIB, maximum=FARGATE_MAX_EPHEMERAL_STORAGE_GIB)
    else:
        disk = reader.integer("prometheusStorageGib", minimum=1, maximum=64 * 1024)
    value = reader.raw("prometheusRetentionSize") or ""
    match = _RETENTION_SIZE.match(value)
    allowed = f"a share of prometheusStorageGib such as 80% (at most {PROMETHEUS_MAX_RETENTION_SHARE}%), or a size with MB, GB or TB such as 12GB"
    if not match:
        if value:
            reader.problem("prometheusRetentionSize", f"{value!r} is not a size; allowed: {allowed}")
        return PrometheusStorage(disk, disk * 1024 * 80 // 100)
    percent, count, unit = match.group("percent", "count", "unit")
    retention_mib = disk * 1024 * int(percent) // 100 if percent else int(count) * _SIZE_UNITS[unit]
    if retention_mib > disk * 1024 * PROMETHEUS_MAX_RETENTION_SHARE // 100:
        reader.problem(
            "prometheusRetentionSize",
            f"{value!r} is more than {PROMETHEUS_MAX_RETENTION_SHARE}% of prometheusStorageGib ({disk} GiB); compactions need the rest; allowed: {allowed}",
        )
    return PrometheusStorage(disk, retention_mib)


def _read_container_metrics(reader: ConfigReader, target: str) -> ContainerMetricsSettings:
    """Read on every target so a typo fails anywhere; only the docker target runs cAdvisor (on aws,
    ECS Container Insights measures the tasks)."""
    enabled = reader.boolean("containerMetrics")
    return ContainerMetricsSettings(
        enabled=enabled and target == "docker",
        image=reader.image("cadvisorImage"),
        memory_mb=reader.integer("cadvisorMemoryMb", minimum=64, maximum=4096),
    )


def _refuse_unknown_keys(reader: ConfigReader, given_keys: Collection[str]) -> None:
    declared = declared_keys()
    for key in sorted(set(given_keys) - declared):
        nearest = difflib.get_close_matches(key, declared, n=1, cutoff=0.6)
        hint = f"did you mean {nearest[0]}?" if nearest else "the keys this project reads are declared in Pulumi.yaml"
        reader.problem(key, f"is not a setting of this project; {hint}")


def _beyond_this_machine(address: str) -> bool:
    try:
        return not ipaddress.IPv4Address(address).is_loopback
    except ValueError:
        return False  # already reported as not an address


class _AwsReading:
    """aws-only keys are always read (so a typo fails on any target); what a user must supply
    is demanded only when the target is aws."""

    def __init__(self, reader: ConfigReader, value: AwsSettings, services: Mapping[str, ServiceSettings], utility_image: str):
        self._reader = reader
        self.value = value
        self._services = services
        self._utility_image = utility_image

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
        if not v.ingress_cidrs and not self._reader.has_problem("ingressCidrs"):
            problem("ingressCidrs", "is empty; list the networks allowed to reach the load balancer, e.g. [203.0.113.0/24] (0.0.0.0/0 for the internet)")
        if v.vpc_id:
            needed = (("publicSubnetIds", v.public_subnet_ids),) + ((("privateSubnetIds", v.private_subnet_ids),) if v.task_subnets == "private" else ())
            for key, ids in needed:
                if len(ids) < 2:
                    problem(key, f"has {len(ids)} subnet(s); with vpcId set, give at least 2, in different availability zones")
            if v.task_subnets == "public" and v.private_subnet_ids:
                problem(
                    "privateSubnetIds",
                    "is set but taskSubnets is public: the tasks run in publicSubnetIds (with a public IP each); "
                    "remove privateSubnetIds, or set taskSubnets: private",
                )
        elif v.public_subnet_ids or v.private_subnet_ids:
            problem("vpcId", "is empty but subnets are given; set vpcId to use an existing VPC, or clear publicSubnetIds and privateSubnetIds to create one")
        if v.cpu_architecture == "ARM64":
            images = {f"{name}Image": service.image for name, service in self._services.items()} | {"utilityImage": self._utility_image}
            for key, image in images.items():
                if image and not arm64_confirmed(image):
                    problem(
                        key,
                        f"{image!r} is not one of the images confirmed to publish linux/arm64 ("
                        + ", ".join(f"{repository}:{tag}" for repository, tags in ARM64_IMAGES.items() for tag in tags)
                        + "), and an ARM64 task cannot start an image without it; set cpuArchitecture: X86_64, or use a confirmed image",
                    )
        for name, units in v.cpu.items():
            memory = self._services[name].memory_mb
            if units not in FARGATE_MEMORY:
                problem(f"{name}Cpu", f"{units} is not a Fargate size; allowed: {', '.join(map(str, FARGATE_MEMORY))}")
                continue
            allowed = FARGATE_MEMORY[units]
            if memory not in allowed:
                sizes = f"{allowed[0]} to {allowed[-1]} in steps of {allowed[1] - allowed[0]}" if len(allowed) > 3 else ", ".join(map(str, allowed))
                problem(f"{name}MemoryMb", f"{memory} does not fit a Fargate task with {name}Cpu {units}; allowed: {sizes}")


def arm64_confirmed(image: str) -> bool:
    """The image is a confirmed repository and tag (a digest after the tag is the same index)."""
    reference = image.split("@", 1)[0]
    repository, _, tag = reference.rpartition(":")
    if "/" in tag or not repository:
        return False
    return tag in ARM64_IMAGES.get(repository.removeprefix("docker.io/").removeprefix("library/"), ())


def _aws_settings(
    reader: ConfigReader, services: Mapping[str, ServiceSettings], region: Optional[str], utility_image: str
) -> _AwsReading:
    if region and not _REGION.match(region):
        reader.problem("aws:region", f"{region!r} is not an AWS region; allowed: e.g. eu-west-1, us-east-2")
    vpc_id = reader.optional_pattern("vpcId", _VPC_ID, "an existing VPC id (vpc-...), or empty to create a VPC")
    public = reader.id_list("publicSubnetIds", _SUBNET_ID, "subnet ids (subnet-...)")
    private = reader.id_list("privateSubnetIds", _SUBNET_ID, "subnet ids (subnet-...)")
    for subnet in sorted(set(public) & set(private)):
        reader.problem("privateSubnetIds", f"{subnet!r} is also in publicSubnetIds; a subnet is public (the load balancer) or private (the tasks), not both")
    vpc_cidr = reader.network("vpcCidr", min_prefix=16, max_prefix=22)
    zones = reader.integer("availabilityZones", minimum=2, maximum=6)
    nat = reader.integer("natGateways", minimum=1, maximum=6)
    if nat > zones:
        reader.problem("natGateways", f"{nat} is more than availabilityZones ({zones}); allowed: 1 (cheapest) to one per zone")
    task_subnets = reader.choice("taskSubnets", TASK_SUBNETS)
    ipv4_only = "the load balancer listens on IPv4 only, so no IPv6 client could reach it"
    cidrs = reader.ipv4_cidr_list("ingressCidrs", ipv4_only)
    grafana_cidrs = reader.ipv4_cidr_list("grafanaIngressCidrs", ipv4_only)
    if len(grafana_cidrs) > GRAFANA_CIDRS_MAX:
        reader.problem(
            "grafanaIngressCidrs",
            f"lists {len(grafana_cidrs)} networks; allowed: at most {GRAFANA_CIDRS_MAX} (a load balancer rule condition compares at most "
            "three values): cover them with fewer, wider blocks",
        )
    certificate = reader.optional_pattern("certificateArn", _CERTIFICATE_ARN, "an ACM certificate ARN, arn:aws:acm:<region>:<account>:certificate/<id>")
    if certificate and region and _CERTIFICATE_ARN.match(certificate) and certificate.split(":")[3] != region:
        reader.problem("certificateArn", f"is in {certificate.split(':')[3]}, the stack in {region}; the load balancer needs a certificate in its own region")
    domain = reader.optional_pattern("domainName", _DOMAIN, "a lowercase DNS name such as observability.example.com")
    zone = reader.optional_pattern("hostedZoneId", _HOSTED_ZONE_ID, "a Route 53 hosted zone id (Z...), or empty to manage DNS yourself")
    cpu = {name: reader.integer(f"{name}Cpu", minimum=256, maximum=16384) for name in SERVICES}
    minimum = reader.integer("collectorMinTasks", minimum=1, maximum=100)
    maximum = reader.integer("collectorMaxTasks", minimum=1, maximum=100)
    if maximum < minimum:
        reader.problem("collectorMaxTasks", f"{maximum} is below collectorMinTasks ({minimum})")
    # AWS WAF rate-based rules take limits from 10 to 2,000,000,000 (RateLimit in the WAFV2 API model).
    browser_rate_limit = reader.integer("browserRateLimit", minimum=0, maximum=2_000_000_000)
    if 0 < browser_rate_limit < 10:
        reader.problem("browserRateLimit", f"{browser_rate_limit} is below AWS WAF's lowest rate limit; allowed: 0 (off) or 10 to 2000000000")
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
            task_subnets=task_subnets,
            ingress_cidrs=cidrs,
            grafana_ingress_cidrs=grafana_cidrs,
            certificate_arn=certificate,
            domain_name=domain,
            hosted_zone_id=zone or None,
            cpu=cpu,
            collector_min_tasks=minimum,
            collector_max_tasks=maximum,
            log_retention_days=retention,
            retain_data=reader.boolean("retainData"),
            file_system_backups=reader.boolean("grafanaBackups"),
            cpu_architecture=reader.choice("cpuArchitecture", CPU_ARCHITECTURES),
            metrics_backend=reader.choice("metricsBackend", METRICS_BACKENDS),
            browser_rate_limit=browser_rate_limit,
            alb_access_log_days=reader.integer("albAccessLogDays", minimum=0, maximum=MAX_ACCESS_LOG_DAYS),
        ),
        services,
        utility_image,
    )


def _read_smtp(reader: ConfigReader) -> Optional[SmtpSettings]:
    host = reader.optional("smtpHost")
    user = reader.optional("smtpUser")
    password = reader.secret("smtpPassword", re.compile(r"^.+$"), "the SMTP user's password")
    from_address = reader.optional("smtpFromAddress")
    if host and not (_SMTP_HOST.match(host) and 1 <= int(host.rsplit(":", 1)[1]) <= 65535):
        reader.problem("smtpHost", f"{host!r} is not a mail server address; allowed: host:port with a port from 1 to 65535, e.g. smtp.example.com:587")
    if from_address and not EMAIL.match(from_address):
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


def load_from_pulumi() -> Settings:
    """Read the current stack's config once (only called by __main__.py)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    config = pulumi.Config()
    project = pulumi.get_project()
    # Every key the engine hands over (PULUMI_CONFIG from the CLI; set directly under test mocks).
    given = {*CONFIG.get(), *(get_config_env() or {})}
    secret_keys = [key.split(":", 1)[1] for key in given if key.startswith(f"{project}:") and is_config_secret(key)]
    return load_settings(
        config.get,
        project,
        pulumi.get_stack(),
        secret_keys,
        aws_region=pulumi.Config("aws").get("region"),
        given_keys=[key.split(":", 1)[1] for key in given if key.startswith(f"{project}:")],
    )
