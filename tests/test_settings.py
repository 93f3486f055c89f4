"""Stack config validation: bad input stops the program, names the key, and creates nothing."""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml

from components.settings import SECRET_KEYS, SettingsError, load_settings
from components.settings import load_stack_settings as settings_for
from components.stackconfig import declared_keys, load_stack_config, stack_names
from tests import harness
from tests.harness import PROJECT, pinned_image, project_path, run_program


@pytest.mark.parametrize("stack", stack_names())
def test_every_committed_stack_file_is_valid(stack):
    settings = settings_for(stack)
    assert settings.stack == stack


def test_dev_defaults_are_local_and_viewer_only():
    settings = settings_for("dev")
    assert settings.target == "docker"
    assert settings.host_address == "127.0.0.1"
    assert settings.grafana_anonymous_role == "Viewer"
    assert settings.image("grafana") == pinned_image("grafanaImage")


def test_prod_carries_the_plan_retention_and_sampling():
    settings = settings_for("prod")
    assert (settings.prometheus_retention.hours, settings.tempo_retention.hours, settings.loki_retention.hours) == (
        15 * 24,
        7 * 24,
        31 * 24,
    )
    assert settings.trace_sampling_percentage == 10.0
    assert settings.grafana_anonymous_role is None


BAD_INPUTS = [
    ("target", "kubernetes", "allowed: docker, aws"),
    ("grafanaAnonymousRole", "Admin", "refused"),
    ("grafanaAnonymousRole", "viewer", "allowed: none, Viewer, Editor"),
    ("collectorImage", "otel/opentelemetry-collector-contrib", "no tag"),
    ("grafanaImage", "grafana/grafana:latest", "latest"),
    ("tempoImage", "Grafana/Tempo 3", "not an image reference"),
    ("utilityImage", "busybox:latest", "latest"),
    ("grafanaImage", "grafana/grafana:main", "'main', which is not a full version"),
    ("prometheusImage", "prom/prometheus:stable", "not a full version and may move"),
    ("lokiImage", "grafana/loki:3", "allowed: a version tag such as 1.2.3"),
    ("prometheusRetention", "15 days", "whole number followed by h, d or w"),
    ("lokiRetention", "36h", "whole number of days"),
    ("tempoRetention", "0h", "not a retention"),
    ("traceSamplingPercentage", "0", "above 0 and at most 100"),
    ("traceSamplingPercentage", "150", "above 0 and at most 100"),
    ("traceSamplingPercentage", "ten", "not a number"),
    ("hostAddress", "localhost", "not an IPv4 address"),
    ("runbookBaseUrl", "docs/runbook.md", "an absolute https:// URL of the runbook"),
    ("smtpHost", "smtp.example.com:99999", "host:port with a port from 1 to 65535"),
    ("tempoRetention", "2562048h", "longer than the stores can read"),
    ("prometheusRetention", "15253w", "ends at 2562047h"),
    ("lokiRetention", "106753d", "allowed: up to 2562047h"),
    ("retainDat", "true", "not a setting of this project; did you mean retainData?"),
    ("traceSamplingPercent", "5", "not a setting of this project; did you mean traceSamplingPercentage?"),
    ("grafanaAnonymusRole", "Viewer", "not a setting of this project; did you mean grafanaAnonymousRole?"),
    ("zzzz", "1", "not a setting of this project; the keys this project reads are declared in Pulumi.yaml"),
    ("externalHost", "http://devbox.lan:3000", "a host name or IPv4 address"),
    ("allowUnauthenticatedNetworkAccess", "yes", "allowed: true, false"),
    ("corsAllowedOrigins", '["*"]', "any web site"),
    ("corsAllowedOrigins", '"http://localhost:4200"', "not a list of strings"),
    ("corsAllowedOrigins", '["localhost:4200"]', "not an origin"),
    ("corsAllowedOrigins", '["https://*"]', "any web site"),
    ("corsAllowedOrigins", '["http://*:*"]', "any web site"),
    ("corsAllowedOrigins", '["*:*"]', "any web site"),
    ("corsAllowedOrigins", '["https://*:443"]', "any web site"),
    ("corsAllowedOrigins", '["https://*.com"]', "directly under the public suffix 'com'"),
    ("corsAllowedOrigins", '["https://*.co.uk"]', "directly under the public suffix 'co.uk'"),
    ("corsAllowedOrigins", '["https://*.github.io"]', "directly under the public suffix 'github.io'"),
    ("corsAllowedOrigins", '["http://*.localhost"]', "directly under the public suffix 'localhost'"),
    ("corsAllowedOrigins", '["https://*opendeck.example"]', "inside a name"),
    ("corsAllowedOrigins", '["https://app.*.example"]', "inside a name"),
    ("corsAllowedOrigins", '["https://*.opendeck.example:*"]', "more than one '*'"),
    ("corsAllowedOrigins", '["http://192.168.*"]', "inside a name"),
    ("corsAllowedOrigins", '["http://localhost:99999"]', "allowed: 1 to 65535"),
    ("corsAllowedOrigins", '["https://app.opendeck.example/"]', "not an origin"),
    ("otlpHttpPort", "4317", "already used by otlpGrpcPort"),
    ("grafanaPort", "70000", "allowed: 1 to 65535"),
    ("collectorMemoryMb", "64", "allowed: 128 to"),
    ("environment", "Prod Env", "lowercase letters"),
    ("serviceNamespace", "", "is missing"),
    ("otlpRequireToken", "yes", "allowed: true, false"),
    ("vpcId", "my-vpc", "an existing VPC id"),
    ("publicSubnetIds", '"subnet-0123456789abcdef0"', "not a list of strings"),
    ("privateSubnetIds", '["sn-1"]', "subnet ids (subnet-...)"),
    ("vpcCidr", "10.0.0.0/8", "allowed: /16 to /22"),
    ("vpcCidr", "10.40.0.1/16", "not an IPv4 network"),
    ("availabilityZones", "1", "allowed: 2 to 6"),
    ("natGateways", "3", "more than availabilityZones"),
    ("ingressCidrs", '["10.0.0.0/33"]', "not a network"),
    ("certificateArn", "arn:aws:iam::111122223333:server-certificate/x", "an ACM certificate ARN"),
    ("domainName", "Observability.Example", "lowercase DNS name"),
    ("collectorMinTasks", "0", "allowed: 1 to 100"),
    ("collectorMaxTasks", "0", "allowed: 1 to 100"),
    ("logRetentionDays", "10", "not a CloudWatch Logs retention"),
    ("retainData", "maybe", "allowed: true, false"),
    ("cpuArchitecture", "arm64", "allowed: X86_64, ARM64"),
    ("hostedZoneId", "example.com", "a Route 53 hosted zone id"),
    ("browserRateLimit", "5", "below AWS WAF's lowest rate limit; allowed: 0 (off) or 10 to 2000000000"),
    ("browserRateLimit", "1000", "needs target aws; allowed on docker: 0"),
    ("albAccessLogDays", "-1", "allowed: 0 to 3650"),
    ("albAccessLogDays", "3651", "allowed: 0 to 3650"),
    ("albAccessLogDays", "30", "needs target aws; allowed on docker: 0"),
    ("metricsBackend", "amp", "needs target aws"),
    ("metricsBackend", "mimir", "allowed: prometheus, amp"),
    ("grafanaDatabaseUrl", "postgres://grafana:pw@db.example.internal:5432/grafana",
     "stored in plain text; set it with `pulumi config set --secret grafanaDatabaseUrl"),
    ("alertEmailAddresses", '["oncall"]', "'oncall' is not an e-mail address"),
    ("alertEmailAddresses", '"oncall@example.com"', "not a list of strings"),
    ("alertEmailAddresses", '["oncall@example.com"]', "e-mail needs a mail server: set smtpHost and smtpFromAddress"),
    ("alertSlackWebhookUrl", "https://hooks.slack.com/services/T0/B0/x", "stored in plain text; set it with `pulumi config set --secret"),
    ("alertPagerDutyIntegrationKey", "0123456789abcdef0123456789abcdef", "stored in plain text"),
    ("smtpHost", "smtp.example.com", "allowed: host:port"),
    ("smtpFromAddress", "grafana@example.com", "is set but smtpHost is not"),
    ("smtpPassword", "hunter2", "stored in plain text"),
    ("prometheusRetentionSize", "16 GiB", "not a size; allowed: a share of prometheusStorageGib"),
    ("prometheusRetentionSize", "95%", "more than 85% of prometheusStorageGib (20 GiB)"),
    ("prometheusRetentionSize", "18GB", "more than 85% of prometheusStorageGib"),
    ("prometheusStorageGib", "0", "allowed: 1 to"),
    ("containerMetrics", "on", "allowed: true, false"),
    ("cadvisorImage", "ghcr.io/google/cadvisor:latest", "latest"),
    ("cadvisorMemoryMb", "16", "allowed: 64 to 4096"),
    # A line break at the end is refused as such, not passed on ($ matches before a final newline).
    ("domainName", "obs.example.com\n", "'obs.example.com\\n' ends with a line break; allowed: a lowercase DNS name"),
    ("grafanaAdminUser", "admin\n", "ends with a line break"),
    ("collectorImage", "otel/opentelemetry-collector-contrib:0.159.0\n", "ends with a line break"),
    ("smtpHost", "smtp.example.com:587\n", "ends with a line break"),
    ("serviceNamespace", " opendeck", "has a space or tab at an end"),
    # A CIDR block is a.b.c.d/n with its host bits zero: no bare address, no netmask.
    ("ingressCidrs", '["10.0.0.0"]', "'10.0.0.0' is not a network: it has no prefix length (/n)"),
    ("ingressCidrs", '["10.0.0.0/255.0.0.0"]', "gives a netmask, not a prefix length: write 10.0.0.0/8"),
    ("grafanaIngressCidrs", '["203.0.113.7"]', "'203.0.113.7' is not a network: it has no prefix length (/n), for that one address 203.0.113.7/32"),
    ("ingressCidrs", '["10.0.0.1/8"]', "has host bits set (the block is 10.0.0.0/8)"),
    ("vpcCidr", "10.40.0.0", "no prefix length"),
    ("vpcCidr", "10.40.0.0/255.255.0.0", "write 10.40.0.0/16"),
    # A created VPC's range is private (RFC 1918).
    ("vpcCidr", "8.8.0.0/16", "'8.8.0.0/16' is not a private range; allowed: a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"),
    ("vpcCidr", "172.32.0.0/16", "not a private range"),
    # Messages name what is wrong.
    ("grafanaImage", "13.2.0", "has no repository: an image is <repository>:<tag>"),
    ("corsAllowedOrigins", '["http://[::1]:4200"]', "IPv6 origins are not supported"),
    ("corsAllowedOrigins", '["https://user:secret@app.opendeck.example"]', "has credentials (user:password@)"),
    ("corsAllowedOrigins", '["http://localhost:4200\\n"]', "ends with a line break"),
    ("corsAllowedOrigins", '"http://localhost:4200"', "is a string, not a list"),
    ("otlpRequireToken", "true ", "'true ' is not true or false: it has a space or tab at an end"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_INPUTS, ids=[f"{k}={v!r}" for k, v, _ in BAD_INPUTS])
def test_bad_input_stops_the_program_before_any_resource(key, value, allowed):
    run = run_program("dev", {key: value})
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    assert f"{key}:" in message
    assert allowed in message
    assert run.resources == []


@pytest.mark.parametrize(
    ("overrides", "disk_gib", "retention"),
    [({}, 20, "16384MB"), ({"prometheusRetentionSize": "50%", "prometheusStorageGib": "100"}, 100, "51200MB"),
     ({"prometheusRetentionSize": "12GB"}, 20, "12288MB"), ({"prometheusRetentionSize": "900MB"}, 20, "900MB")],
)
def test_prometheus_retention_size_is_a_share_of_its_disk(overrides, disk_gib, retention):
    storage = settings_for("dev", **overrides).prometheus_storage
    assert (storage.disk_gib, storage.retention_size) == (disk_gib, retention)


def test_aws_prometheus_storage_is_a_fargate_task_storage_size():
    assert settings_for("prod").prometheus_storage.disk_gib == 20
    assert settings_for("prod", prometheusStorageGib="100").prometheus_storage.retention_size == "81920MB"
    for size in ("10", "201"):
        with pytest.raises(SettingsError, match=r"prometheusStorageGib: .* out of range; allowed: 20 to 200"):
            settings_for("prod", prometheusStorageGib=size)


def test_cadvisor_runs_only_on_docker():
    assert settings_for("dev").container_metrics.enabled
    assert not settings_for("dev", containerMetrics="false").container_metrics.enabled
    assert not settings_for("prod").container_metrics.enabled


def test_missing_key_is_named():
    run = run_program("dev", {"grafanaAdminUser": None})
    assert isinstance(run.error, pulumi.RunError)
    assert "grafanaAdminUser: is missing" in str(run.error)
    assert run.resources == []


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        settings_for("dev", target="gcp", lokiRetention="1h", grafanaAnonymousRole="Admin")
    keys = [problem.split(":", 1)[0] for problem in caught.value.problems]
    assert keys == ["target", "lokiRetention", "grafanaAnonymousRole"]


def test_aws_refuses_anonymous_grafana():
    with pytest.raises(SettingsError, match="grafanaAnonymousRole: is 'Viewer'; the aws target"):
        settings_for("prod", grafanaAnonymousRole="Viewer")


AWS_BAD_INPUTS = [
    # Grafana's login and API from anywhere only when the stack says so (the sample lists a range).
    ("grafanaIngressCidrs", "[]", "grafanaIngressCidrs: is empty (Grafana then takes ingressCidrs, which has 0.0.0.0/0), so Grafana's "
     "login and API would be reachable from the whole internet; allowed: the networks people use Grafana from"),
    ("grafanaIngressCidrs", '["0.0.0.0/0"]', "grafanaIngressCidrs: lists 0.0.0.0/0, so Grafana's login and API would be reachable"),
    ("certificateArn", "", "certificateArn: is missing"),
    ("domainName", "", "domainName: is missing"),
    ("ingressCidrs", "[]", "ingressCidrs: is empty"),
    ("otlpRequireToken", "false", "otlpRequireToken: is false; the aws target"),
    ("grafanaAnonymousRole", "Viewer", "grafanaAnonymousRole: is 'Viewer'; the aws target"),
    ("collectorCpu", "300", "collectorCpu: 300 is not a Fargate size"),
    ("tempoMemoryMb", "3000", "tempoMemoryMb: 3000 does not fit a Fargate task with tempoCpu 256; allowed: 512, 1024, 2048"),
    ("lokiCpu", "1024", "lokiMemoryMb: 1024 does not fit a Fargate task with lokiCpu 1024; allowed: 2048 to 8192 in steps of 1024"),
    ("grafanaMemoryMb", "4096", "grafanaMemoryMb: 4096 does not fit a Fargate task with grafanaCpu 256; allowed: 512, 1024, 2048"),
    ("collectorMaxTasks", "0", "collectorMaxTasks: 0 is below collectorMinTasks"),
    ("vpcId", "vpc-0123456789abcdef0", "publicSubnetIds: has 0 subnet(s); with vpcId set"),
    ("privateSubnetIds", '["subnet-0123456789abcdef0"]', "vpcId: is empty but subnets are given"),
    ("certificateArn", "arn:aws:acm:us-east-1:111122223333:certificate/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
     "certificateArn: is in us-east-1, the stack in eu-west-1"),
    ("taskSubnets", "isolated", "taskSubnets: 'isolated' is not allowed; allowed: public, private"),
    # ARM64 (the default) runs only images confirmed to publish linux/arm64.
    ("grafanaImage", "grafana/grafana:13.1.0", "grafanaImage: 'grafana/grafana:13.1.0' is not one of the images confirmed to publish linux/arm64"),
    ("collectorImage", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/otelcol:0.159.0", "set cpuArchitecture: X86_64"),
    ("utilityImage", "busybox:1.36.1", "utilityImage: 'busybox:1.36.1' is not one of the images confirmed"),
    ("grafanaIngressCidrs", '["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]', "grafanaIngressCidrs: lists 4 networks; allowed: at most 3"),
    ("grafanaIngressCidrs", '["2001:db8::/32"]', "grafanaIngressCidrs: '2001:db8::/32' is an IPv6 network"),
    ("ingressCidrs", '["::/0"]', "ingressCidrs: '::/0' is an IPv6 network; the load balancer listens on IPv4 only"),
    ("ingressCidrs", '["203.0.113.0/24", "198.51.100.0/24", "203.0.113.0/24"]', "ingressCidrs: lists '203.0.113.0/24' more than once"),
    ("publicSubnetIds", '["subnet-0a0000000000000a1", "subnet-0a0000000000000a1"]', "publicSubnetIds: lists 'subnet-0a0000000000000a1' more than once"),
    # Two inbound rules (443, 80) per distinct network on one security group: at most 60 (AWS's default quota).
    ("ingressCidrs", json.dumps([f"10.{i}.0.0/16" for i in range(30)]),  # with the sample's Grafana range: 31
     "ingressCidrs: with grafanaIngressCidrs, 31 distinct networks make 62 inbound rules on the load balancer's security group"),
    # The certificate's partition is the region's.
    ("certificateArn", "arn:aws-cn:acm:eu-west-1:111122223333:certificate/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
     "certificateArn: is in the partition aws-cn, the stack's region eu-west-1 in aws"),
    # A digest alone cannot be confirmed for ARM64: the check reads repository:tag.
    ("lokiImage", "grafana/loki@sha256:" + "b" * 64, "lokiImage: is pinned by a digest alone, which cannot be confirmed to publish linux/arm64"),
]


def _with_subnets(public: str, private: str) -> dict[str, str]:
    return {"vpcId": "vpc-0a1b2c3d4e5f60718", "publicSubnetIds": public, "privateSubnetIds": private}


def test_a_subnet_cannot_be_public_and_private():
    public, private = '["subnet-0a0000000000000a1", "subnet-0a0000000000000a2"]', '["subnet-0a0000000000000a2", "subnet-0b0000000000000b1"]'
    run = run_program("prod", _with_subnets(public, private))
    assert "privateSubnetIds: 'subnet-0a0000000000000a2' is also in publicSubnetIds" in str(run.error)
    assert run.resources == []


@pytest.mark.parametrize(
    ("key", "value", "message", "not_said", "beside"),
    [
        ("certificateArn", "arn:aws:iam::111122223333:server-certificate/observability", "is not valid; allowed: an ACM certificate ARN", "is in ,", {}),
        ("ingressCidrs", '"0.0.0.0/0"', "is a string, not a list", "is empty", {}),
        ("otlpRequireToken", "true ", "is not true or false", "is false;", {}),
        ("publicSubnetIds", '"subnet-0a0000000000000a1"', "is a string, not a list", "has 0 subnet(s)", {"vpcId": "vpc-0a1b2c3d4e5f60718"}),
    ],
)
def test_a_wrong_value_is_named_once_and_truly(key, value, message, not_said, beside):
    error = str(run_program("prod", {**beside, key: value}).error)
    assert f"{key}: " in error and message in error
    assert not_said not in error, error


# With the managed metrics store, whose retention has an upper bound.
AMP_BAD_INPUTS = [
    ("prometheusRetention", "160w", "prometheusRetention: is 26880h, more than 1095 days (26280h)"),
    # One hour over the limit reads as over it, not as "1095 days".
    ("prometheusRetention", "26281h", "prometheusRetention: is 26281h, more than 1095 days (26280h), the most Amazon"),
]
# Tasks in public subnets of a given VPC need only the public subnets; private ones given as well are refused.
PUBLIC_TASK_BAD_INPUTS = [
    ("privateSubnetIds", '["subnet-0b0000000000000b1", "subnet-0b0000000000000b2"]', "privateSubnetIds: is set but taskSubnets is public"),
    ("publicSubnetIds", '["subnet-0a0000000000000a1"]', "publicSubnetIds: has 1 subnet(s); with vpcId set, give at least 2"),
]


@pytest.mark.parametrize(("key", "value", "message"), AMP_BAD_INPUTS, ids=[f"{k}={v!r}" for k, v, _ in AMP_BAD_INPUTS])
def test_amp_refuses_what_the_workspace_cannot_keep(key, value, message):
    run = run_program("prod", {"metricsBackend": "amp", key: value})
    assert isinstance(run.error, pulumi.RunError), run.error
    assert message in str(run.error)
    assert run.resources == []


@pytest.mark.parametrize(("key", "value", "message"), PUBLIC_TASK_BAD_INPUTS, ids=[f"{k}={v!r}" for k, v, _ in PUBLIC_TASK_BAD_INPUTS])
def test_public_tasks_in_a_given_vpc_take_its_public_subnets_only(key, value, message):
    given = {"vpcId": "vpc-0a1b2c3d4e5f60718", "publicSubnetIds": '["subnet-0a0000000000000a1", "subnet-0a0000000000000a2"]', key: value}
    run = run_program("prod", given)
    assert isinstance(run.error, pulumi.RunError), run.error
    assert message in str(run.error)
    assert run.resources == []


def test_x86_runs_any_pinned_image_and_arm64_a_confirmed_one_pinned_by_digest():
    assert settings_for("prod", cpuArchitecture="X86_64", grafanaImage="grafana/grafana:13.1.0").aws is not None
    digest = "sha256:" + "b" * 64
    loki, utility = f"{pinned_image('lokiImage')}@{digest}", f"docker.io/library/{pinned_image('utilityImage')}"
    assert settings_for("prod", lokiImage=loki, utilityImage=utility).aws is not None


@pytest.mark.parametrize(("key", "value", "message"), AWS_BAD_INPUTS, ids=[f"{k}={v!r}" for k, v, _ in AWS_BAD_INPUTS])
def test_aws_target_demands_what_a_user_must_supply_before_any_resource(key, value, message):
    run = run_program("prod", {key: value})
    assert isinstance(run.error, pulumi.RunError), run.error
    assert message in str(run.error)
    assert run.resources == []


def test_grafana_database_url_must_name_postgres_or_mysql_and_is_never_echoed():
    run = run_program("dev", {"grafanaDatabaseUrl": "sqlite:///var/lib/grafana/hunter2.db"}, secret_keys=("grafanaDatabaseUrl",))
    assert isinstance(run.error, pulumi.RunError)
    assert "grafanaDatabaseUrl: is not valid (value not shown); allowed: postgres://" in str(run.error)
    assert "hunter2" not in str(run.error)
    assert run.resources == []


def test_aws_target_needs_a_region():
    with pytest.raises(SettingsError, match="aws:region: is missing"):
        config = {k.split(":", 1)[1]: v for k, v in load_stack_config("prod").items() if k.startswith(f"{PROJECT}:")}
        load_settings(config.get, PROJECT, "prod", aws_region=None)
    with pytest.raises(SettingsError, match="aws:region: 'europe' is not an AWS region"):
        load_settings(config.get, PROJECT, "prod", aws_region="europe")


def test_the_region_itself_is_validated():
    config = {k.split(":", 1)[1]: v for k, v in load_stack_config("prod").items() if k.startswith(f"{PROJECT}:")}
    with pytest.raises(SettingsError) as caught:
        load_settings(config.get, PROJECT, "prod", aws_region="eu-west-1\n")
    assert caught.value.problems == ["aws:region: 'eu-west-1\\n' ends with a line break; allowed: an AWS region such as eu-west-1, us-east-2"]
    cn_arn = "arn:aws-cn:acm:cn-north-1:111122223333:certificate/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    assert load_settings({**config, "certificateArn": cn_arn}.get, PROJECT, "prod", aws_region="cn-north-1").aws.region == "cn-north-1"
    with pytest.raises(SettingsError, match="certificateArn: is in the partition aws, the stack's region cn-north-1 in aws-cn"):
        load_settings({**config, "certificateArn": cn_arn.replace("arn:aws-cn:", "arn:aws:")}.get,
                      PROJECT, "prod", aws_region="cn-north-1")


def _program_with(monkeypatch, stack: str, raw: dict[str, str]):
    """The program under mocks with fully qualified keys (any namespace) set over the stack file's."""
    monkeypatch.setattr(harness, "load_stack_config", lambda name: {**load_stack_config(name), **raw})
    return run_program(stack)


@pytest.mark.parametrize(
    ("stack", "key", "value", "message"),
    [
        ("prod", "aws:region", "eu-west-1\n", "aws:region: 'eu-west-1\\n' ends with a line break"),
        ("dev", "observabilty:grafanaPort", "3001",
         "observabilty:grafanaPort: the namespace 'observabilty' is not this project's (observability), so the program would ignore the key; "
         "did you mean observability:grafanaPort?"),
        ("dev", "Observability:retainDat", "true", "did you mean observability:retainData?"),
    ],
)
def test_a_key_of_a_near_miss_namespace_or_a_bad_region_stops_the_program(monkeypatch, stack, key, value, message):
    run = _program_with(monkeypatch, stack, {key: value})
    assert isinstance(run.error, pulumi.RunError), run.error
    assert message in str(run.error) and "certificateArn" not in str(run.error)
    assert run.resources == []


def test_a_near_miss_namespace_in_a_stack_file_is_refused_and_other_namespaces_pass(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(project_path("Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  docker:host: unix:///var/run/docker.sock\n  observabilty:grafanaPort: 3001\n")
    with pytest.raises(SettingsError, match="observabilty:grafanaPort: the namespace 'observabilty' is not this project's"):
        settings_for("dev", tmp_path)
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  docker:host: unix:///var/run/docker.sock\n  aws:profile: ops\n")
    assert settings_for("dev", tmp_path).stack == "dev"


def test_the_load_balancer_admits_at_most_30_distinct_networks():
    networks = [f"10.{i}.0.0/16" for i in range(31)]
    assert settings_for("prod", ingressCidrs=json.dumps(networks[:30]), grafanaIngressCidrs=json.dumps(networks[:3])).aws is not None
    with pytest.raises(SettingsError, match=r"31 distinct networks make 62 inbound rules.* allowed: at most 30 distinct networks"):
        settings_for("prod", ingressCidrs=json.dumps(networks[:29]), grafanaIngressCidrs=json.dumps(networks[29:]))


# A valid value of each key whose default is empty, and the keys it needs beside it.
_SMTP = {"smtpHost": "smtp.example.com:587", "smtpFromAddress": "grafana@example.com"}
EXAMPLES: dict[str, tuple[str, dict[str, str]]] = {
    "externalHost": ("devbox.lan", {}),
    "runbookBaseUrl": ("https://github.com/org/repo/blob/main/docs/runbook.md", {}),
    "alertEmailAddresses": ('["oncall@example.com"]', _SMTP),
    "alertSlackWebhookUrl": ("https://hooks.slack.com/services/T0/B0/x", {}),
    "alertPagerDutyIntegrationKey": ("0123456789abcdef0123456789abcdef", {}),
    "smtpHost": ("smtp.example.com:587", {"smtpFromAddress": "grafana@example.com"}),
    "smtpUser": ("grafana", _SMTP),
    "smtpPassword": ("hunter2", {**_SMTP, "smtpUser": "grafana"}),
    "smtpFromAddress": ("grafana@example.com", {"smtpHost": "smtp.example.com:587"}),
    "grafanaDatabaseUrl": ("postgres://grafana:pw@db.example.internal:5432/grafana", {}),
    "vpcId": ("vpc-0a1b2c3d4e5f60718", {}),
    "publicSubnetIds": ('["subnet-0a0000000000000a1"]', {}),
    "privateSubnetIds": ('["subnet-0b0000000000000b1"]', {}),
    "ingressCidrs": ('["203.0.113.0/24"]', {}),
    "grafanaIngressCidrs": ('["203.0.113.0/24"]', {}),
    "certificateArn": ("arn:aws:acm:eu-west-1:111122223333:certificate/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", {}),
    "domainName": ("observability.example.com", {}),
    "hostedZoneId": ("Z0123456789ABCDEFGHIJ", {}),
}


def _with_line_break(value: str) -> str:
    """The value with a line break at its end; in a list, at the end of its first item."""
    if value.startswith("["):
        items = json.loads(value)
        return json.dumps([items[0] + "\n", *items[1:]])
    return value + "\n"


@pytest.mark.parametrize("key", sorted(declared_keys()))
def test_a_line_break_at_the_end_of_any_declared_key_is_refused_naming_it(key):
    config = {k.split(":", 1)[1]: v for k, v in load_stack_config("dev").items() if k.startswith(f"{PROJECT}:")}
    value, beside = EXAMPLES.get(key, (config[key], {}))
    config |= {**beside, key: value}
    load_settings(config.get, PROJECT, "dev", secret_keys=SECRET_KEYS)  # valid without the line break
    config[key] = _with_line_break(value)
    with pytest.raises(SettingsError) as caught:
        load_settings(config.get, PROJECT, "dev", secret_keys=SECRET_KEYS)
    assert [p for p in caught.value.problems if p.startswith(f"{key}: ") and "line break" in p], caught.value.problems


def test_aws_only_requirements_do_not_apply_to_docker():
    settings = settings_for("dev", collectorMemoryMb="768")
    assert settings.aws is None
    assert settings.otlp_require_token is False


def test_prod_aws_settings():
    aws = settings_for("prod").aws
    assert aws is not None
    assert (aws.region, aws.vpc_id, aws.availability_zones, aws.nat_gateways) == ("eu-west-1", None, 2, 1)
    assert aws.retain_data is True
    assert aws.cpu == {"collector": 256, "prometheus": 256, "tempo": 256, "loki": 256, "grafana": 256}
    assert (aws.cpu_architecture, aws.task_subnets, aws.metrics_backend, aws.collector_max_tasks) == ("ARM64", "public", "prometheus", 1)


def test_origins_of_your_own_are_accepted():
    origins = ["http://localhost:4200", "http://localhost:*", "http://127.0.0.1:8080", "https://*.opendeck.example", "https://*.app.example.co.uk"]
    settings = settings_for("dev", corsAllowedOrigins=json.dumps(origins))
    assert settings.cors_allowed_origins == tuple(origins)


def test_image_pinned_by_digest_is_accepted():
    digest = "sha256:" + "a" * 64
    settings = settings_for("dev", lokiImage=f"grafana/loki@{digest}", tempoImage=f"registry.example.com:5000/grafana/tempo:3.0.3@{digest}")
    assert settings.image("loki").endswith(digest)


def test_every_declared_key_is_read_and_every_read_key_is_declared():
    declared = set(yaml.safe_load(project_path("Pulumi.yaml").read_text())["config"])
    config = {k.split(":", 1)[1]: v for k, v in load_stack_config("dev").items()}
    read: list[str] = []

    def get(key: str):
        read.append(key)
        return config.get(key)

    load_settings(get, PROJECT, "dev")
    assert set(read) == declared


def test_every_declared_key_has_type_default_and_description():
    for key, declaration in yaml.safe_load(project_path("Pulumi.yaml").read_text())["config"].items():
        assert {"type", "default", "description"} <= set(declaration), key


def test_credentials_are_validated_without_echoing_them():
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {**{k.split(":", 1)[1]: v for k, v in load_stack_config("dev").items()}, "alertSlackWebhookUrl": "http://plain.example/hook"}.get,
            PROJECT,
            "dev",
            secret_keys={"alertSlackWebhookUrl"},
        )
    assert caught.value.problems == [
        "alertSlackWebhookUrl: is not valid (value not shown); allowed: an https:// webhook URL such as https://hooks.slack.com/services/..."
    ]
    assert "plain.example" not in str(caught.value)
    config = {k.split(":", 1)[1]: v for k, v in load_stack_config("dev").items()} | {"grafanaAdminUser": "ops-admin\n"}
    with pytest.raises(SettingsError, match=r"grafanaAdminUser: the value \(not shown\) ends with a line break") as caught:
        load_settings(config.get, PROJECT, "dev", secret_keys={"grafanaAdminUser"})
    assert "ops-admin" not in str(caught.value)


def test_contacts_and_mail_server_are_read_when_valid():
    config = {k.split(":", 1)[1]: v for k, v in load_stack_config("dev").items()}
    config.update(
        alertEmailAddresses='["oncall@example.com"]', alertSlackWebhookUrl="https://hooks.slack.com/services/T0/B0/x",
        smtpHost="smtp.example.com:587", smtpUser="grafana", smtpPassword="hunter2", smtpFromAddress="grafana@example.com",
    )
    settings = load_settings(config.get, PROJECT, "dev", secret_keys={"alertSlackWebhookUrl", "smtpPassword"})
    assert settings.alert_contacts.channels == {"email", "slack"}
    assert settings.smtp and settings.smtp.host == "smtp.example.com:587" and settings.smtp.password.value == "hunter2"
    # Secrets never show in a printed Settings.
    assert "hunter2" not in repr(settings) and "hooks.slack.com" not in repr(settings)


def test_no_contacts_is_the_default():
    settings = settings_for("dev")
    assert settings.alert_contacts.channels == set() and settings.smtp is None


def test_publishing_beyond_this_machine_without_authentication_is_refused():
    with pytest.raises(SettingsError) as error:
        settings_for("dev", hostAddress="0.0.0.0", grafanaAnonymousRole="Editor")
    message = str(error.value)
    assert "hostAddress: is 0.0.0.0, beyond this machine" in message
    assert "grafanaAnonymousRole is Editor" in message and "otlpRequireToken is false" in message
    assert "bypass the host's firewall" in message and "allowUnauthenticatedNetworkAccess: true" in message
    with pytest.raises(SettingsError, match="otlpRequireToken is false"):
        settings_for("dev", hostAddress="192.168.1.20")


def test_publishing_beyond_this_machine_is_allowed_with_authentication_or_on_purpose():
    assert settings_for("dev", hostAddress="0.0.0.0", otlpRequireToken="true").host_address == "0.0.0.0"
    accepted = settings_for("dev", hostAddress="0.0.0.0", grafanaAnonymousRole="Editor", allowUnauthenticatedNetworkAccess="true")
    assert accepted.grafana_anonymous_role == "Editor"
    # On this machine only, nothing to acknowledge.
    assert settings_for("dev", hostAddress="127.0.0.1", grafanaAnonymousRole="Editor").host_address == "127.0.0.1"


def test_links_use_the_external_host_people_reach():
    assert settings_for("dev").external_host == "localhost"
    assert settings_for("dev", hostAddress="0.0.0.0", otlpRequireToken="true").external_host == "localhost"
    assert settings_for("dev", hostAddress="192.168.1.20", otlpRequireToken="true").external_host == "192.168.1.20"
    named = settings_for("dev", hostAddress="0.0.0.0", otlpRequireToken="true", externalHost="devbox.lan")
    assert named.external_host == "devbox.lan"


def test_a_public_grafana_is_deployed_only_when_the_stack_accepts_it():
    run = run_program("prod", {"grafanaIngressCidrs": "[]", "grafanaOpenToInternet": "true"})
    assert run.error is None, run.error
    # The sample stack lists a documentation range for people, not the whole internet.
    assert settings_for("prod").aws.grafana_ingress_cidrs == ("203.0.113.0/24",)
    run = run_program("dev", {"grafanaOpenToInternet": "true"})
    assert isinstance(run.error, pulumi.RunError) and "grafanaOpenToInternet: accepts a public Grafana" in str(run.error)

