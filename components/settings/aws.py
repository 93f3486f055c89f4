"""The aws target's keys: region, network, load balancer, task sizes and what AWS keeps. They are
read on every target (so a typo fails anywhere); what a user must supply is demanded only on aws,
and the aws-only features are refused elsewhere."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Optional

from components.settings.images import refuse_unconfirmed_arm64
from components.settings.model import (
    AMP_MAX_RETENTION_DAYS,
    CPU_ARCHITECTURES,
    FARGATE_MEMORY,
    LOG_RETENTION_DAYS,
    METRICS_BACKENDS,
    SERVICES,
    TASK_SUBNETS,
    AwsSettings,
    Retention,
    ServiceSettings,
)
from components.settings.reader import ConfigReader, what_is_wrong

# Grafana's listener rule matches its host, its path and then these source networks: a rule takes
# at most three comparison strings per condition and five per rule (ALB guide, "Listener rules").
GRAFANA_CIDRS_MAX = 3
# The load balancer's security group takes one inbound rule for HTTPS (443) and one for HTTP (80,
# redirected) per network of ingressCidrs and grafanaIngressCidrs together (platforms/aws/edge.py);
# a security group has at most 60 inbound rules (Amazon VPC quotas, "Inbound or outbound rules per
# security group", the default; an account can have it raised).
INBOUND_RULES_PER_NETWORK = 2
INBOUND_RULES_MAX = 60
# Ten years of load-balancer access logs at most: longer is an archive, not this stack's job.
MAX_ACCESS_LOG_DAYS = 3650
# browserRateLimit's default in Pulumi.yaml: on wherever the browser route exists (aws). A docker
# stack gets it too and makes nothing of it, so only other values are refused there.
DEFAULT_BROWSER_RATE_LIMIT = 2000
# A created VPC: AWS takes /16 to /28; the stack splits the range into 16 subnets (network.py), so
# at most /22 (/26 subnets). Its range is private (RFC 1918).
VPC_PREFIXES = (16, 22)
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_REGION = re.compile(r"\A[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]\Z")
_CERTIFICATE_ARN = re.compile(
    r"\Aarn:(?P<partition>aws(?:-cn|-us-gov|-iso(?:-[a-z])?)?):acm:(?P<region>[a-z0-9-]+):[0-9]{12}:certificate/[0-9a-f-]{36}\Z"
)
_DOMAIN = re.compile(r"\A(?=.{4,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
_VPC_ID = re.compile(r"\Avpc-[0-9a-f]{8,17}\Z")
_SUBNET_ID = re.compile(r"\Asubnet-[0-9a-f]{8,17}\Z")
_HOSTED_ZONE_ID = re.compile(r"\AZ[0-9A-Z]{1,32}\Z")


def partition_of(region: str) -> str:
    """The AWS partition a region is in: aws-cn for cn-*, aws-us-gov for us-gov-*, aws-iso(-b, -e,
    -f) for the isolated regions, aws for the rest."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region[2:].startswith("-gov-"):
        return "aws-us-gov"
    iso = re.fullmatch(r"[a-z]{2}-iso([a-z]?)-[a-z]+-[0-9]", region)
    if iso:
        return "aws-iso" + (f"-{iso.group(1)}" if iso.group(1) else "")
    return "aws"


def read_aws(reader: ConfigReader, region: Optional[str]) -> AwsSettings:
    """region: the AWS provider's own `aws:region` setting."""
    if region and not _REGION.fullmatch(region):
        reader.problem("aws:region", f"{region!r} {what_is_wrong(region, 'is not an AWS region')}; allowed: an AWS region such as eu-west-1, us-east-2")
    network = _read_network(reader)
    edge = _read_edge(reader, region if region and _REGION.fullmatch(region) else "")
    cpu = {name: reader.integer(f"{name}Cpu", minimum=256, maximum=16384) for name in SERVICES}
    minimum = reader.integer("collectorMinTasks", minimum=1, maximum=100)
    maximum = reader.integer("collectorMaxTasks", minimum=1, maximum=100)
    if maximum < minimum:
        reader.problem("collectorMaxTasks", f"{maximum} is below collectorMinTasks ({minimum})")
    # AWS WAF rate-based rules take limits from 10 to 2,000,000,000 (RateLimit in the WAFV2 API model).
    browser_rate_limit = reader.integer("browserRateLimit", minimum=0, maximum=2_000_000_000)
    if 0 < browser_rate_limit < 10:
        reader.problem("browserRateLimit", f"{browser_rate_limit} is below AWS WAF's lowest rate limit; allowed: 0 (off) or 10 to 2000000000")
    waf_logging = reader.boolean("wafLogging")
    if waf_logging and browser_rate_limit == 0:
        reader.problem("wafLogging", "is true but browserRateLimit is 0: there is no web ACL to log; allowed: false, or a browserRateLimit")
    retention = reader.integer("logRetentionDays", minimum=1, maximum=3653)
    if retention not in LOG_RETENTION_DAYS:
        reader.problem("logRetentionDays", f"{retention} is not a CloudWatch Logs retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return AwsSettings(
        region=region or "",
        **network,
        **edge,
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
        bucket_versioning=reader.boolean("bucketVersioning"),
        vpc_flow_logs=reader.boolean("vpcFlowLogs"),
        waf_logging=waf_logging,
    )


def _read_network(reader: ConfigReader) -> dict[str, Any]:
    """The VPC: one given (vpcId and its subnets) or one to create (vpcCidr, zones, NAT gateways)."""
    vpc_id = reader.optional_pattern("vpcId", _VPC_ID, "an existing VPC id (vpc-...), or empty to create a VPC")
    public = reader.id_list("publicSubnetIds", _SUBNET_ID, "subnet ids (subnet-...)")
    private = reader.id_list("privateSubnetIds", _SUBNET_ID, "subnet ids (subnet-...)")
    for subnet in sorted(set(public) & set(private)):
        reader.problem("privateSubnetIds", f"{subnet!r} is also in publicSubnetIds; a subnet is public (the load balancer) or private (the tasks), not both")
    low, high = VPC_PREFIXES
    vpc_cidr = reader.network("vpcCidr", low, high, why_prefix=f" (AWS takes /16 to /28; the stack splits it into 16 subnets, so at most /{high})")
    if vpc_cidr is not None and not any(vpc_cidr.subnet_of(block) for block in PRIVATE_RANGES):
        reader.problem(
            "vpcCidr",
            f"'{vpc_cidr}' is not a private range; allowed: a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 "
            f"(RFC 1918), /{low} to /{high}, such as 10.40.0.0/16",
        )
    zones = reader.integer("availabilityZones", minimum=2, maximum=6)
    nat = reader.integer("natGateways", minimum=1, maximum=6)
    if nat > zones:
        reader.problem("natGateways", f"{nat} is more than availabilityZones ({zones}); allowed: 1 (cheapest) to one per zone")
    return {
        "vpc_id": vpc_id or None,
        "public_subnet_ids": public,
        "private_subnet_ids": private,
        "vpc_cidr": str(vpc_cidr) if vpc_cidr is not None else "",
        "availability_zones": zones,
        "nat_gateways": nat,
        "task_subnets": reader.choice("taskSubnets", TASK_SUBNETS),
    }


ANYWHERE = "0.0.0.0/0"


def _read_edge(reader: ConfigReader, region: str) -> dict[str, Any]:
    """The load balancer: who may reach it, its certificate and its name. region: "" unless valid."""
    ipv4_only = "the load balancer listens on IPv4 only, so no IPv6 client could reach it"
    cidrs = reader.ipv4_cidr_list("ingressCidrs", ipv4_only)
    grafana_cidrs = reader.ipv4_cidr_list("grafanaIngressCidrs", ipv4_only)
    if len(grafana_cidrs) > GRAFANA_CIDRS_MAX:
        reader.problem(
            "grafanaIngressCidrs",
            f"lists {len(grafana_cidrs)} networks; allowed: at most {GRAFANA_CIDRS_MAX} (a load balancer rule condition compares at most "
            "three values): cover them with fewer, wider blocks",
        )
    networks = len(dict.fromkeys((*cidrs, *grafana_cidrs)))
    if networks * INBOUND_RULES_PER_NETWORK > INBOUND_RULES_MAX:
        reader.problem(
            "ingressCidrs",
            f"with grafanaIngressCidrs, {networks} distinct networks make {networks * INBOUND_RULES_PER_NETWORK} inbound rules on the load "
            f"balancer's security group (one for HTTPS 443 and one for HTTP 80 per network), more than the {INBOUND_RULES_MAX} a security "
            f"group may have (AWS's default quota); allowed: at most {INBOUND_RULES_MAX // INBOUND_RULES_PER_NETWORK} distinct networks "
            "across ingressCidrs and grafanaIngressCidrs: cover them with fewer, wider blocks",
        )
    certificate = reader.optional_pattern(
        "certificateArn", _CERTIFICATE_ARN, "an ACM certificate ARN, arn:<partition>:acm:<region>:<account>:certificate/<id>"
    )
    _check_certificate_place(reader, certificate, region)
    return {
        "ingress_cidrs": cidrs,
        "grafana_ingress_cidrs": grafana_cidrs,
        "grafana_open_to_internet": reader.boolean("grafanaOpenToInternet"),
        "certificate_arn": certificate,
        "domain_name": reader.optional_pattern("domainName", _DOMAIN, "a lowercase DNS name such as observability.example.com"),
        "hosted_zone_id": reader.optional_pattern(
            "hostedZoneId", _HOSTED_ZONE_ID, "a Route 53 hosted zone id (Z...), or empty to manage DNS yourself"
        ) or None,
    }


def _check_certificate_place(reader: ConfigReader, certificate: str, region: str) -> None:
    """The load balancer takes a certificate of its own partition and region."""
    match = _CERTIFICATE_ARN.fullmatch(certificate)
    if not match or not region:
        return
    if match.group("partition") != partition_of(region):
        reader.problem(
            "certificateArn",
            f"is in the partition {match.group('partition')}, the stack's region {region} in {partition_of(region)}; "
            f"the load balancer needs a certificate of its own partition and region (arn:{partition_of(region)}:acm:{region}:...)",
        )
    elif match.group("region") != region:
        reader.problem("certificateArn", f"is in {match.group('region')}, the stack in {region}; the load balancer needs a certificate in its own region")


def check_aws_target(
    reader: ConfigReader, aws: AwsSettings, services: Mapping[str, ServiceSettings], utility_image: str, prometheus_retention: Retention
) -> None:
    """What the aws target demands: what a user must supply, images an ARM64 task can start, Fargate
    task sizes, and a retention the managed metrics store keeps."""
    _check_supplied(reader, aws)
    _check_given_vpc(reader, aws)
    _check_grafana_exposure(reader, aws)
    if aws.cpu_architecture == "ARM64":
        refuse_unconfirmed_arm64(reader, services, utility_image)
    _check_task_sizes(reader, aws, services)
    if aws.metrics_backend == "amp" and prometheus_retention.days > AMP_MAX_RETENTION_DAYS:
        reader.problem(
            "prometheusRetention",
            f"is {prometheus_retention.hours}h, more than {AMP_MAX_RETENTION_DAYS} days ({AMP_MAX_RETENTION_DAYS * 24}h), "
            f"the most Amazon Managed Service for Prometheus keeps; allowed: up to {AMP_MAX_RETENTION_DAYS}d",
        )


def _check_grafana_exposure(reader: ConfigReader, aws: AwsSettings) -> None:
    """Grafana's login and API reachable from the whole internet only when the stack says so."""
    people = aws.grafana_ingress_cidrs or aws.ingress_cidrs
    if ANYWHERE not in people or aws.grafana_open_to_internet:
        return
    where = "lists 0.0.0.0/0" if aws.grafana_ingress_cidrs else "is empty (Grafana then takes ingressCidrs, which has 0.0.0.0/0)"
    reader.problem(
        "grafanaIngressCidrs",
        f"{where}, so Grafana's login and API would be reachable from the whole internet; allowed: the networks people use "
        "Grafana from (office, VPN, the machine that runs pulumi up), or accept it with grafanaOpenToInternet: true",
    )


def refuse_aws_only_features(reader: ConfigReader, aws: AwsSettings) -> None:
    """On any other target, the features only AWS provides stay off."""
    if aws.metrics_backend == "amp":
        reader.problem("metricsBackend", "'amp' (Amazon Managed Service for Prometheus) needs target aws; allowed on docker: prometheus")
    if aws.alb_access_log_days:
        reader.problem("albAccessLogDays", "keeps the AWS load balancer's access logs, so it needs target aws; allowed on docker: 0")
    if aws.vpc_flow_logs:
        reader.problem("vpcFlowLogs", "logs the AWS VPC's traffic, so it needs target aws; allowed on docker: false")
    if aws.waf_logging:
        reader.problem("wafLogging", "logs the AWS web ACL's requests, so it needs target aws; allowed on docker: false")
    if aws.browser_rate_limit not in (0, DEFAULT_BROWSER_RATE_LIMIT):
        reader.problem(
            "browserRateLimit",
            f"is an AWS WAF rule on the load balancer, so it needs target aws; allowed on docker: 0 or the default {DEFAULT_BROWSER_RATE_LIMIT} "
            "(neither makes anything there)",
        )
    if aws.grafana_open_to_internet:
        reader.problem("grafanaOpenToInternet", "accepts a public Grafana behind the AWS load balancer, so it needs target aws; allowed on docker: false")


def _check_supplied(reader: ConfigReader, aws: AwsSettings) -> None:
    if not aws.region:
        reader.problem("aws:region", "is missing; set the AWS provider's region, e.g. `pulumi config set aws:region eu-west-1`")
    if not aws.certificate_arn:
        reader.problem(
            "certificateArn",
            "is missing; the aws target serves HTTPS only: give the ARN of an issued ACM certificate for domainName in the stack's region",
        )
    if not aws.domain_name:
        reader.problem("domainName", "is missing; the aws target needs the DNS name people and SDKs use, e.g. observability.example.com")
    if not aws.ingress_cidrs and not reader.has_problem("ingressCidrs"):
        reader.problem("ingressCidrs", "is empty; list the networks allowed to reach the load balancer, e.g. [203.0.113.0/24] (0.0.0.0/0 for the internet)")


def _check_given_vpc(reader: ConfigReader, aws: AwsSettings) -> None:
    """Subnets come with the VPC they are in: enough of them, of the kind the tasks run in."""
    if not aws.vpc_id:
        if aws.public_subnet_ids or aws.private_subnet_ids:
            reader.problem(
                "vpcId", "is empty but subnets are given; set vpcId to use an existing VPC, or clear publicSubnetIds and privateSubnetIds to create one"
            )
        return
    needed = {"publicSubnetIds": aws.public_subnet_ids} | ({"privateSubnetIds": aws.private_subnet_ids} if aws.task_subnets == "private" else {})
    for key, ids in needed.items():
        if len(ids) < 2 and not reader.has_problem(key):
            reader.problem(key, f"has {len(ids)} subnet(s); with vpcId set, give at least 2, in different availability zones")
    if aws.task_subnets == "public" and aws.private_subnet_ids:
        reader.problem(
            "privateSubnetIds",
            "is set but taskSubnets is public: the tasks run in publicSubnetIds (with a public IP each); "
            "remove privateSubnetIds, or set taskSubnets: private",
        )


def _check_task_sizes(reader: ConfigReader, aws: AwsSettings, services: Mapping[str, ServiceSettings]) -> None:
    """Each service's CPU and memory make a Fargate task size."""
    for name, units in aws.cpu.items():
        memory = services[name].memory_mb
        if units not in FARGATE_MEMORY:
            reader.problem(f"{name}Cpu", f"{units} is not a Fargate size; allowed: {', '.join(map(str, FARGATE_MEMORY))}")
            continue
        allowed = FARGATE_MEMORY[units]
        if memory not in allowed:
            sizes = f"{allowed[0]} to {allowed[-1]} in steps of {allowed[1] - allowed[0]}" if len(allowed) > 3 else ", ".join(map(str, allowed))
            reader.problem(f"{name}MemoryMb", f"{memory} does not fit a Fargate task with {name}Cpu {units}; allowed: {sizes}")
