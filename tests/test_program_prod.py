"""The real __main__.py against Pulumi.prod.yaml (aws target), under mocks: what it registers."""

from __future__ import annotations

import collections
import fnmatch
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import botocore.session
import pytest
import yaml

from components.platforms.aws.containers import CONFIG_CONTAINER
from components.platforms.aws.iam import CLOUDWATCH_READ_ACTIONS
from components.platforms.aws.storage import OBJECT_ACTIONS, lifecycle_days
from components.platforms.spec import SECRETS_DIR, MetricsStore, ObjectStore, secret_file
from components.render import render_stack
from components.services import collector, collector_browser, collector_sampling, collector_tiers, loki, prometheus, tempo
from components.settings import SERVICES
from components.yamltext import to_yaml
from tests.harness import MOCK_ACCOUNT, MOCK_ELB_ACCOUNT, MOCK_REGION, is_secret, plain_strings, project_path, run_program, unwrap
from tests.test_settings import settings_for

# Most tests run prod scaled out: the collector as an ingest tier and a sampler tier
# (collectorMaxTasks 4), metrics in Amazon Managed Service for Prometheus, tasks in private subnets
# behind a NAT gateway: the shape with the most moving parts. The tests named "default" run the
# stack file as it is (one collector, self-hosted Prometheus, tasks with public IPs, no NAT).
SCALED_OUT = {"collectorMaxTasks": "4", "metricsBackend": "amp", "taskSubnets": "private"}
PROD_SERVICES = (*SERVICES, collector.SAMPLER_NAME)

TASK = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
BUCKET = "aws:s3/bucket:Bucket"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
SECRET = "aws:secretsmanager/secret:Secret"
MOCK_PASSWORD = "mock-password-grafana-admin-password"
MOCK_TOKEN = "mock-password-otlp-bearer-token"
DOMAIN = "observability.opendeck.example"
WORKSPACE_URL = f"https://aps-workspaces.{MOCK_REGION}.amazonaws.com/workspaces/ws-metrics"
MANAGED = MetricsStore(remote_write_url=f"{WORKSPACE_URL}/api/v1/remote_write", query_url=WORKSPACE_URL, region=MOCK_REGION)
EXISTING_VPC = {
    **SCALED_OUT,
    "vpcId": "vpc-0a1b2c3d4e5f60718",
    "publicSubnetIds": '["subnet-0a0000000000000a1", "subnet-0a0000000000000a2"]',
    "privateSubnetIds": '["subnet-0b0000000000000b1", "subnet-0b0000000000000b2"]',
}


@pytest.fixture(scope="module")
def prod():
    run = run_program("prod", SCALED_OUT)
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="module")
def existing_vpc():
    run = run_program("prod", EXISTING_VPC)
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="module")
def settings():
    return settings_for("prod", **SCALED_OUT)


def by_name(run, type_: str) -> dict[str, Any]:
    return {r.name: r for r in run.of_type(type_)}


def containers(run) -> dict[str, dict[str, dict]]:
    """service -> container name -> container definition."""
    result = {}
    for task in run.of_type(TASK):
        definitions = json.loads(unwrap(task.inputs["containerDefinitions"]))
        result[task.name.removesuffix("-task")] = {c["name"]: c for c in definitions}
    return result


def statements(policy: str) -> list[dict]:
    return json.loads(unwrap(policy))["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_prod_runs_on_the_aws_platform_with_no_docker_resource(prod):
    types = {r.type for r in prod.resources}
    assert "observability:platform:Aws" in types
    assert not any(t.startswith("docker:") for t in types)
    assert set(by_name(prod, SERVICE)) == {f"{s}-service" for s in PROD_SERVICES}


def test_prod_imports_pulumi_aws():
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(project_path())!r})
        from tests.harness import run_program
        run = run_program("prod")
        assert run.error is None, run.error
        print(sorted(m for m in ("pulumi_aws", "pulumi_docker") if m in sys.modules))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=project_path())
    assert result.stdout.strip().splitlines()[-1] == "['pulumi_aws']"


def test_one_fargate_service_per_component_with_rollback_and_steady_state(prod, settings):
    (cluster,) = prod.of_type("aws:ecs/cluster:Cluster")
    assert cluster.inputs["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    for service in by_name(prod, SERVICE).values():
        inputs = service.inputs
        assert inputs["launchType"] == "FARGATE"
        assert inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert inputs["waitForSteadyState"] is True
        assert inputs["networkConfiguration"]["assignPublicIp"] is False
        assert inputs["serviceRegistries"]["registryArn"].startswith("arn:aws:servicediscovery:")
    tasks = by_name(prod, TASK)
    for service in SERVICES:
        task = tasks[f"{service}-task"].inputs
        assert task["requiresCompatibilities"] == ["FARGATE"]
        assert (int(task["cpu"]), int(task["memory"])) == (settings.aws.cpu[service], settings.memory_mb(service))
        # The program's own limit is the task's (the collector's memory_limiter reads it).
        assert containers(prod)[service][service]["memory"] == settings.memory_mb(service)


def test_stateful_services_never_run_two_tasks_and_the_collector_scales_on_cpu_and_the_sampler_on_memory_too(prod, settings):
    services = by_name(prod, SERVICE)
    for name in ("prometheus", "tempo", "loki", "grafana"):
        inputs = services[f"{name}-service"].inputs
        assert (inputs["deploymentMinimumHealthyPercent"], inputs["deploymentMaximumPercent"], inputs["desiredCount"]) == (0, 100, 1)
    ingest = services["collector-service"]
    assert (ingest.inputs["deploymentMinimumHealthyPercent"], ingest.inputs["deploymentMaximumPercent"]) == (100, 200)
    assert ingest.options["ignoreChanges"] == ["desiredCount"]
    # Both collector tiers scale on CPU, each on its own, between the same bounds.
    targets = {t.inputs["resourceId"]: t for t in prod.of_type("aws:appautoscaling/target:Target")}
    assert set(targets) == {"service/observability-prod/collector", "service/observability-prod/collector-sampler"}
    for target in targets.values():
        assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (settings.aws.collector_min_tasks, settings.aws.collector_max_tasks)
    metrics: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for policy in prod.of_type("aws:appautoscaling/policy:Policy"):
        tracking = policy.inputs["targetTrackingScalingPolicyConfiguration"]
        metrics[policy.inputs["resourceId"]][tracking["predefinedMetricSpecification"]["predefinedMetricType"]] = tracking["targetValue"]
    # The sampler tier's tail-sampling budget shows in memory, not CPU: it scales on memory too,
    # before the traces limiter refuses.
    refused_above = collector_sampling.TRACES_MEMORY_LIMIT_PERCENTAGE - collector_sampling.TRACES_MEMORY_SPIKE_PERCENTAGE
    assert metrics == {
        "service/observability-prod/collector": {"ECSServiceAverageCPUUtilization": 60},
        "service/observability-prod/collector-sampler": {
            "ECSServiceAverageCPUUtilization": 60, "ECSServiceAverageMemoryUtilization": collector_tiers.SCALING_MEMORY_PERCENTAGE,
        },
    }
    assert refused_above > collector_tiers.SCALING_MEMORY_PERCENTAGE


def _check_shape(shape, value, path: str) -> list[str]:
    """Problems of value against a botocore input shape (types, required members, enums)."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        problems = [f"{path}.{m}: required" for m in shape.required_members if m not in value]
        for key, item in value.items():
            if key not in shape.members:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                problems += _check_shape(shape.members[key], item, f"{path}.{key}")
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for i, item in enumerate(value) for p in _check_shape(shape.member, item, f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        return [p for k, v in value.items() for p in _check_shape(shape.value, v, f"{path}[{k}]")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string"]
        return [f"{path}: {value!r} not in {shape.enum}"] if shape.enum and value not in shape.enum else []
    if kind in ("integer", "long"):
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: expected an integer"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    return []


def test_container_definitions_are_valid_register_task_definition_input(prod):
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape.members["containerDefinitions"]
    for service, defined in containers(prod).items():
        problems = _check_shape(shape, list(defined.values()), service)
        assert problems == [], problems
    # The checker itself rejects what ECS would.
    assert _check_shape(shape, [{"name": "x", "image": "y", "essential": "yes", "portMapings": []}], "bad") == [
        "bad[0].essential: expected a boolean",
        "bad[0].portMapings: not a member of ContainerDefinition",
    ]


def test_images_are_the_pinned_versions(prod):
    declared = yaml.safe_load(project_path("Pulumi.yaml").read_text())["config"]
    for service, defined in containers(prod).items():
        image_key = "collectorImage" if service == collector.SAMPLER_NAME else f"{service}Image"
        assert defined[service]["image"] == declared[image_key]["default"]
        for container in defined.values():
            assert ":" in container["image"] and not container["image"].endswith(":latest")
            if container["name"] == "config":
                assert container["image"] == declared["utilityImage"]["default"]


def test_configs_reach_the_program_through_an_init_container(prod):
    for service, defined in containers(prod).items():
        main = defined[service]
        if service == "grafana":
            assert "config" not in defined and "dependsOn" not in main
            continue
        writer = defined["config"]
        assert writer["essential"] is False
        assert main["dependsOn"][0] == {"containerName": "config", "condition": "SUCCESS"}
        mounts = [m for m in main["mountPoints"] if m["sourceVolume"].startswith("config-")]
        assert mounts and all(m["readOnly"] is True for m in mounts)
        assert all(m in [{**w, "readOnly": True} for w in writer["mountPoints"]] for m in mounts)
        assert writer["command"][:2] == ["sh", "-c"]


@pytest.mark.parametrize(
    "service, secret, user, named_by",
    [
        ("collector", collector.BEARER_TOKEN_ENV, collector.USER, collector.BEARER_TOKEN_FILE_ENV),
        ("prometheus", prometheus.GRAFANA_METRICS_PASSWORD, prometheus.USER, None),
    ],
)
def test_file_only_secrets_are_written_by_the_config_writer_for_the_program_user(prod, service, secret, user, named_by):
    defined = containers(prod)[service]
    path = secret_file(secret)
    steps = defined["config"]["command"][2]
    assert f'(umask 077; printf "%s" "${secret}" > {path}); chown {user} {path}' in steps
    secrets_mount = {"sourceVolume": "config-run-secrets", "containerPath": SECRETS_DIR, "readOnly": True}
    assert secrets_mount in defined[service]["mountPoints"]
    environment = {e["name"]: e["value"] for e in defined[service]["environment"]}
    if named_by:
        assert environment[named_by] == path


COLLECTOR_TIERS = (collector.NAME, collector.SAMPLER_NAME)
QUEUE_SLOTS_DIR = "/var/lib/otelcol-slots"


def test_each_collector_task_claims_a_queue_slot_on_efs_before_the_collector_starts(prod):
    for service in COLLECTOR_TIERS:
        defined = containers(prod)[service]
        main, claim = defined[service], defined["queue-claim"]
        slots = {"sourceVolume": f"{service}-queue-slots", "containerPath": QUEUE_SLOTS_DIR, "readOnly": False}
        link = {"sourceVolume": f"{service}-queue", "containerPath": "/var/lib/otelcol", "readOnly": True}
        assert slots in main["mountPoints"] and link in main["mountPoints"]
        assert claim["mountPoints"] == [slots, {**link, "readOnly": False}]
        # The claim container lives as long as the task (essential) and the collector waits for its claim.
        assert claim["essential"] is True and claim["image"] == settings_for("prod").utility_image
        assert claim["healthCheck"]["command"] == ["CMD-SHELL", f"test -L {collector.QUEUE_DIR}"]
        assert {"containerName": "queue-claim", "condition": "HEALTHY"} in main["dependsOn"]
        script = claim["command"][2]
        # Twice collectorMaxTasks (4): old and new tasks of a deployment (maximum 200%) each hold one.
        assert f"slots={QUEUE_SLOTS_DIR}; link={collector.QUEUE_DIR}; count=8" in script and "flock -n" in script
        # ECS's stop: SIGTERM, SIGKILL after 120 s (Fargate's most); the queue stays in the slot either way.
        assert main["stopTimeout"] == 120
        # The queue is no longer task storage handed over by the init container.
        assert f"chown -R {collector.QUEUE_OWNER} {collector.QUEUE_DIR}" not in defined["config"]["command"][2]
        storage = _written_config(defined)["extensions"][collector.QUEUE_STORAGE]
        assert storage["directory"] == storage["compaction"]["directory"] == collector.QUEUE_DIR
        assert storage["fsync"] is True
        task = prod.one(TASK, f"{service}-task").inputs
        (efs,) = [v["efsVolumeConfiguration"] for v in task["volumes"] if v["name"] == f"{service}-queue-slots"]
        assert efs["transitEncryption"] == "ENABLED"
        assert efs["authorizationConfig"] == {"accessPointId": f"{service}-queue-id", "iam": "ENABLED"}
        assert {"name": f"{service}-queue"} in task["volumes"]


def test_queue_file_systems_are_encrypted_elastic_unbacked_and_reached_by_their_collector_only(prod):
    for service in COLLECTOR_TIERS:
        name = f"{service}-queue"
        file_system = prod.one("aws:efs/fileSystem:FileSystem", name)
        assert file_system.inputs["encrypted"] is True and file_system.inputs["throughputMode"] == "elastic"
        # No backups (a restored queue would send again what was delivered since); kept and protected
        # like every data store (test_prod_destroy_keeps_the_data).
        assert prod.one("aws:efs/backupPolicy:BackupPolicy", name).inputs["backupPolicy"] == {"status": "DISABLED"}
        access_point = prod.one("aws:efs/accessPoint:AccessPoint", name)
        assert access_point.inputs["posixUser"] == {"uid": 10001, "gid": 10001}
        assert access_point.inputs["rootDirectory"]["path"] == f"/{name}"
        (tls,) = statements(prod.one("aws:efs/fileSystemPolicy:FileSystemPolicy", name).inputs["policy"])
        assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        grant_policy = prod.one(ROLE_POLICY, f"{name}-efs")
        (grant,) = statements(grant_policy.inputs["policy"])
        assert grant["Action"] == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
        arn = f"arn:aws:efs:{MOCK_REGION}:123456789012"
        assert grant["Resource"] == f"{arn}:filesystem/{name}"
        assert grant["Condition"] == {"StringEquals": {"elasticfilesystem:AccessPointArn": f"{arn}:accesspoint/{name}"}}
        # On the tier's own task role, not on another service's.
        assert grant_policy.inputs["role"] == f"{service}-task-id"
        (nfs,) = [r for r in prod.of_type(INGRESS) if r.inputs["securityGroupId"] == f"{name}-efs-id"]
        assert (nfs.inputs["fromPort"], nfs.inputs["toPort"], nfs.inputs["referencedSecurityGroupId"]) == (2049, 2049, f"{service}-sg-id")
        assert prod.of_type("aws:efs/mountTarget:MountTarget") and {
            m.inputs["securityGroups"][0] for m in prod.of_type("aws:efs/mountTarget:MountTarget") if m.name.startswith(f"{name}-")
        } == {f"{name}-efs-id"}


def test_services_without_a_queue_claim_no_slot():
    run = run_program("prod", {"collectorMinTasks": "1", "collectorMaxTasks": "1"})
    assert run.error is None, run.error
    defined = containers(run)
    for service, containers_of_service in defined.items():
        assert ("queue-claim" in containers_of_service) == (service == collector.NAME), service
    # One task at most: two slots (a deployment's old and new task).
    assert "count=2" in defined[collector.NAME]["queue-claim"]["command"][2]
    assert {f.name for f in run.of_type("aws:efs/fileSystem:FileSystem")} == {"grafana-data", "collector-queue"}


def _written_config(defined: dict) -> dict:
    (variable,) = defined["config"]["environment"]
    return yaml.safe_load(variable["value"])


def test_tempo_and_loki_keep_their_data_in_their_own_bucket(prod, settings):
    buckets = {b.name.removesuffix("-bucket"): b for b in prod.of_type(BUCKET)}
    assert set(buckets) == {"tempo", "loki"}
    defined = containers(prod)
    for service, render in (
        ("tempo", lambda store: tempo.render_tempo_config(settings, store)),
        ("loki", lambda store: loki.render_loki_config(settings, store)),
    ):
        name = buckets[service].inputs["bucketPrefix"] + "20261125000000000000000001"
        store = ObjectStore(bucket=name, region=MOCK_REGION, endpoint=f"s3.{MOCK_REGION}.amazonaws.com")
        written = defined[service]["config"]["environment"][0]["value"]
        assert written == to_yaml(render(store))
    tempo_config = _written_config(defined["tempo"])
    assert tempo_config["storage"]["trace"]["backend"] == "s3"
    assert "access_key" not in tempo_config["storage"]["trace"]["s3"]
    loki_config = _written_config(defined["loki"])
    assert loki_config["schema_config"]["configs"][0]["object_store"] == "s3"
    assert loki_config["compactor"]["delete_request_store"] == "s3"
    bucket_name = buckets["loki"].inputs["bucketPrefix"] + "20261125000000000000000001"
    assert loki_config["common"]["storage"] == {"s3": {"bucketnames": bucket_name, "region": MOCK_REGION}}


def test_buckets_are_encrypted_blocked_lifecycled_and_tls_only(prod, settings):
    for service, retention in (("tempo", settings.tempo_retention), ("loki", settings.loki_retention)):
        name = f"{service}-bucket"
        encryption = prod.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", name)
        assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
        block = prod.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name)
        assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
        # The retention rule, and the delete-marker rule of a versioned bucket (tests/test_aws_guards.py).
        rule, _markers = prod.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", name).inputs["rules"]
        assert rule["status"] == "Enabled"
        # Never before the store's own retention: Loki requires a longer lifecycle.
        assert rule["expiration"]["days"] == lifecycle_days(retention.hours) > retention.hours // 24
        assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 1
        policy = statements(prod.one("aws:s3/bucketPolicy:BucketPolicy", name).inputs["policy"])
        tls = next(s for s in policy if s["Sid"] == "TlsOnly")
        assert (tls["Effect"], tls["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    assert lifecycle_days(7 * 24) == 8 and lifecycle_days(31 * 24) == 32


# Amazon S3 actions that list, read, write or delete data (Service Authorization Reference, Amazon S3).
S3_DATA_ACTIONS = (
    "s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads", "s3:ListMultipartUploadParts",
    "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAttributes", "s3:GetObjectVersionAttributes",
    "s3:GetObjectTagging", "s3:GetObjectVersionTagging", "s3:GetObjectAcl", "s3:GetObjectVersionAcl",
    "s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging",
    "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging",
    "s3:RestoreObject", "s3:AbortMultipartUpload",
)


def _allows(patterns: list[str], action: str) -> bool:
    """IAM action matching: case-insensitive, '*' and '?' wildcards."""
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)


def test_each_bucket_is_usable_only_by_its_owners_task_role(prod):
    roles = by_name(prod, ROLE)
    for service in ("tempo", "loki"):
        bucket = prod.one(BUCKET, f"{service}-bucket")
        arn = f"arn:aws:s3:::{bucket.inputs['bucketPrefix']}20261125000000000000000001"
        policy = prod.one("aws:s3/bucketPolicy:BucketPolicy", f"{service}-bucket").inputs["policy"]
        owner = next(s for s in statements(policy) if s["Effect"] == "Deny" and "ArnNotEquals" in s.get("Condition", {}))
        assert owner["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == f"arn:aws:iam::123456789012:role/{service}-task"
        refused = [a for a in S3_DATA_ACTIONS if not _allows(owner["Action"], a)]
        assert refused == [], f"data actions other principals keep: {refused}"
        assert f"{service}-task" in roles
        grants = statements(prod.one(ROLE_POLICY, f"{service}-bucket").inputs["policy"])
        assert {(s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"]), s["Resource"]) for s in grants} == {
            ("s3:ListBucket", arn),
            (OBJECT_ACTIONS, f"{arn}/*"),
        }
        other = "loki" if service == "tempo" else "tempo"
        for policy in prod.of_type(ROLE_POLICY):
            if policy.name.startswith(other):
                assert arn not in json.dumps(statements(policy.inputs["policy"]))


def test_a_private_ecr_image_is_pulled_with_a_grant_for_its_repository_only(prod):
    image = f"123456789012.dkr.ecr.{MOCK_REGION}.amazonaws.com/mirror/opentelemetry-collector-contrib:0.159.0"
    run = run_program("prod", {"collectorImage": image, "cpuArchitecture": "X86_64"})
    assert run.error is None, run.error
    grants = statements(run.one(ROLE_POLICY, "collector-execution").inputs["policy"])
    assert {s["Sid"]: s for s in grants}["EcrPull"] == {
        "Sid": "EcrPull",
        "Effect": "Allow",
        "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        "Resource": [f"arn:aws:ecr:{MOCK_REGION}:123456789012:repository/mirror/opentelemetry-collector-contrib"],
    }
    # The token call cannot be scoped (ECR's GetAuthorizationToken has no resource): the only '*'.
    assert [s["Sid"] for s in grants if s["Resource"] == "*"] == ["EcrToken"]
    # Services on public images get no ECR grant at all.
    for service in ("prometheus", "tempo", "loki", "grafana"):
        assert "ecr:" not in run.one(ROLE_POLICY, f"{service}-execution").inputs["policy"]
    assert "ecr:" not in prod.one(ROLE_POLICY, "collector-execution").inputs["policy"]


def test_grafana_can_be_reached_from_its_own_networks_only():
    office = ["198.51.100.0/24", "192.0.2.10/32"]
    run = run_program("prod", {"ingressCidrs": '["0.0.0.0/0"]', "grafanaIngressCidrs": json.dumps(office)})
    assert run.error is None, run.error
    # The load balancer admits both lists ...
    admitted = {(r.inputs["fromPort"], r.inputs["cidrIpv4"]) for r in run.of_type(INGRESS) if r.inputs["securityGroupId"] == "alb-id"}
    assert admitted == {(port, cidr) for port in (443, 80) for cidr in ("0.0.0.0/0", *office)}
    # ... and Grafana's rule forwards only what comes from the office; the rest gets the 404.
    conditions = run.one(LISTENER_RULE, "grafana-http").inputs["conditions"]
    assert conditions == [{"hostHeader": {"values": [DOMAIN]}}, {"pathPattern": {"values": ["/*"]}}, {"sourceIp": {"values": office}}]
    for otlp in ("collector-otlp-http", "collector-otlp-grpc"):
        assert not any("sourceIp" in c for c in run.one(LISTENER_RULE, otlp).inputs["conditions"])


def test_grafana_shares_ingests_networks_when_none_are_given_and_the_stack_accepts_it():
    run = run_program("prod", {"grafanaIngressCidrs": "[]", "grafanaOpenToInternet": "true"})
    conditions = run.one(LISTENER_RULE, "grafana-http").inputs["conditions"]
    assert conditions == [{"hostHeader": {"values": [DOMAIN]}}, {"pathPattern": {"values": ["/*"]}}]


def test_the_sample_stack_admits_people_to_grafana_from_its_listed_networks_only(prod, settings):
    conditions = prod.one(LISTENER_RULE, "grafana-http").inputs["conditions"]
    assert {"sourceIp": {"values": list(settings.aws.grafana_ingress_cidrs)}} in conditions


def test_iam_policies_name_specific_resources(prod):
    policies = prod.of_type(ROLE_POLICY)
    assert len(policies) >= 8
    for policy in policies:
        for statement in statements(policy.inputs["policy"]):
            assert statement["Effect"] == "Allow", policy.name
            if set(as_list(statement["Action"])) <= set(CLOUDWATCH_READ_ACTIONS):
                # CloudWatch's GetMetricData and ListMetrics have no resource types (AWS Service
                # Authorization Reference, Amazon CloudWatch): "*" is the only resource they take.
                assert statement["Resource"] == "*" and policy.name == "grafana-cloudwatch-read", policy.name
                continue
            for resource in as_list(statement["Resource"]):
                # A wildcard only as the tail of a named resource (objects of one bucket, streams of one group).
                assert resource.startswith("arn:aws:") and "*" not in resource.rsplit("/", 1)[0].rsplit(":log-stream", 1)[0], (policy.name, resource)
    allow_ecs = {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}}
    for role in prod.of_type(ROLE):
        (trust,) = statements(role.inputs["assumeRolePolicy"])
        if role.name.endswith("-execution"):
            # Assumed by the ECS agent for this account's tasks only (aws:SourceAccount, as AWS's own
            # Fargate samples set it); no aws:SourceArn (components/platforms/aws/iam.py says why).
            assert trust == {**allow_ecs, "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}, role.name
            continue
        # A task role: only tasks of this account and region (confused-deputy conditions).
        assert trust == {
            **allow_ecs,
            "Condition": {
                "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{MOCK_REGION}:123456789012:*"},
                "StringEquals": {"aws:SourceAccount": "123456789012"},
            },
        }, role.name
    # One task role per service the stack runs (the sampler tier included).
    assert sum(not r.name.endswith("-execution") for r in prod.of_type(ROLE)) == len(prod.of_type(TASK))


def test_secrets_reach_containers_only_as_ecs_secrets(prod):
    secrets = {s.name: s for s in prod.of_type(SECRET)}
    # The token guards the entry tier only: the hop to the sampler tier carries none.
    assert set(secrets) == {
        "grafana-gf-security-admin-password", "grafana-gf-metrics-basic-auth-password", "prometheus-grafana-metrics-password",
        "collector-otlp-bearer-token",
    }
    for version in prod.of_type("aws:secretsmanager/secretVersion:SecretVersion"):
        assert is_secret(version.inputs["secretString"])
    defined = containers(prod)
    # Programs that read a secret only from a file get it from their config writer, which writes it
    # for the program's user; the program's own container never holds it.
    writer = CONFIG_CONTAINER
    expected = {
        "grafana": {"grafana": {"GF_SECURITY_ADMIN_PASSWORD": "grafana-gf-security-admin-password",
                                "GF_METRICS_BASIC_AUTH_PASSWORD": "grafana-gf-metrics-basic-auth-password"}},
        "prometheus": {writer: {prometheus.GRAFANA_METRICS_PASSWORD: "prometheus-grafana-metrics-password"}},
        "collector": {writer: {collector.BEARER_TOKEN_ENV: "collector-otlp-bearer-token"}},
    }
    secret_names = {"GF_SECURITY_ADMIN_PASSWORD", "GF_METRICS_BASIC_AUTH_PASSWORD", prometheus.GRAFANA_METRICS_PASSWORD, collector.BEARER_TOKEN_ENV}
    for service, by_container in defined.items():
        for name, container in by_container.items():
            given = {s["name"]: s["valueFrom"].rsplit("/", 1)[-1] for s in container.get("secrets", [])}
            assert given == expected.get(service, {}).get(name, {}), (service, name)
            assert not {e["name"] for e in container.get("environment", [])} & secret_names
        # The execution role reads exactly this service's secrets.
        grants = statements(prod.one(ROLE_POLICY, f"{service}-execution").inputs["policy"])
        readable = [s["Resource"] for s in grants if s["Action"] == "secretsmanager:GetSecretValue"]
        wanted = sorted(v for by_name in expected.get(service, {}).values() for v in by_name.values())
        assert [sorted(r.rsplit("/", 1)[-1] for r in as_list(x)) for x in readable] == ([wanted] if wanted else [])

    for resource in prod.resources:
        for text in plain_strings(resource.inputs):
            assert MOCK_PASSWORD not in text and MOCK_TOKEN not in text, f"{resource.type} {resource.name}"


def test_collector_demands_the_bearer_token_on_both_otlp_protocols(prod):
    config = _written_config(containers(prod)["collector"])
    assert config["extensions"]["bearertokenauth"] == {"filename": "${env:OTLP_BEARER_TOKEN_FILE}"}
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        assert protocol["auth"] == {"authenticator": "bearertokenauth"}
    assert "bearertokenauth" in config["service"]["extensions"]


def test_load_balancer_serves_https_only_and_redirects_http(prod, settings):
    listeners = by_name(prod, LISTENER)
    https, http = listeners["https"].inputs, listeners["http"].inputs
    assert (https["port"], https["protocol"], https["certificateArn"]) == (443, "HTTPS", settings.aws.certificate_arn)
    assert https["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert https["defaultActions"][0]["fixedResponse"]["statusCode"] == "404"
    assert (http["port"], http["protocol"]) == (80, "HTTP")
    assert http["defaultActions"] == [{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]
    (alb,) = prod.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["internal"] is False and alb.inputs["dropInvalidHeaderFields"] is True


def test_routes_send_grafana_otlp_http_and_grpc_to_their_targets(prod):
    rules = by_name(prod, LISTENER_RULE)
    routes = {
        name: (
            next(c["hostHeader"]["values"] for c in r.inputs["conditions"] if "hostHeader" in c),
            next(c["pathPattern"]["values"] for c in r.inputs["conditions"] if "pathPattern" in c),
        )
        for name, r in rules.items()
    }
    assert routes == {
        "collector-otlp-grpc": ([DOMAIN], ["/opentelemetry.proto.collector.*"]),
        "collector-otlp-http": ([DOMAIN], ["/v1/traces", "/v1/metrics", "/v1/logs"]),
        # Web pages: no token, traces and logs only (tests/test_browser_ingest.py).
        "collector-otlp-browser": ([DOMAIN], ["/browser/v1/traces", "/browser/v1/logs"]),
        "grafana-http": ([DOMAIN], ["/*"]),
    }
    assert rules["grafana-http"].inputs["priority"] > max(rules[n].inputs["priority"] for n in rules if n != "grafana-http")
    groups = by_name(prod, TARGET_GROUP)
    assert groups["collector-otlp-grpc"].inputs["protocolVersion"] == "GRPC"
    assert groups["collector-otlp-http"].inputs["healthCheck"]["port"] == "13133"
    assert groups["collector-otlp-browser"].inputs["healthCheck"]["port"] == "13133"
    assert groups["grafana-http"].inputs["healthCheck"]["path"] == "/api/health"
    assert all(g.inputs["targetType"] == "ip" for g in groups.values())


def test_security_groups_admit_the_allowed_networks_and_each_other_only(prod, settings):
    rules = prod.of_type(INGRESS)
    alb = [r.inputs for r in rules if r.name.startswith("alb-")]
    assert {(r["fromPort"], r["toPort"], r["cidrIpv4"]) for r in alb} == {
        (port, port, cidr) for port in (443, 80) for cidr in (*settings.aws.ingress_cidrs, *settings.aws.grafana_ingress_cidrs)
    }
    services = [r for r in rules if not r.name.startswith("alb-")]
    assert services and all("cidrIpv4" not in r.inputs and "cidrIpv6" not in r.inputs for r in services)
    assert all(r.inputs["referencedSecurityGroupId"] for r in services)
    # Each port from its clients only (tests/test_east_west.py has the whole matrix): with amp no
    # service writes to or reads the Prometheus agent, and Tempo's and Loki's internal gRPC ports
    # (9095, 9096) admit no other task.
    own_ports = {
        "collector": {4317, 4318, 4319, 13133, 8888},
        "collector-sampler": {4317, 8888},
        "prometheus": set(),
        "tempo": {3200, 4317},
        "loki": {3100},
        "grafana": {3000},
    }
    for service, ports in own_ports.items():
        opened = {r.inputs["fromPort"] for r in services if r.inputs["securityGroupId"] == f"{service}-sg-id"}
        assert opened == ports, service
    from_alb = [(r.name.split("-")[0], r.inputs["fromPort"]) for r in services if r.name.endswith("-from-alb")]
    assert len(from_alb) == len(set(from_alb)), "EC2 refuses a duplicate security-group rule"
    assert set(from_alb) == {("collector", 4317), ("collector", 4318), ("collector", 4319), ("collector", 13133), ("grafana", 3000)}
    nfs = {r.name: (r.inputs["fromPort"], r.inputs["referencedSecurityGroupId"]) for r in services if r.name.endswith("-efs-nfs")}
    assert nfs == {
        "grafana-data-efs-nfs": (2049, "grafana-sg-id"),
        "collector-queue-efs-nfs": (2049, "collector-sg-id"),
        "collector-sampler-queue-efs-nfs": (2049, "collector-sampler-sg-id"),
    }


def test_every_service_logs_to_its_own_group_with_retention(prod, settings):
    groups = {g.inputs["name"]: g for g in prod.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert set(groups) == {f"/ecs/observability-prod/{s}" for s in PROD_SERVICES}
    assert all(g.inputs["retentionInDays"] == settings.aws.log_retention_days for g in groups.values())
    for service, defined in containers(prod).items():
        for container in defined.values():
            options = container["logConfiguration"]["options"]
            assert (options["awslogs-group"], options["awslogs-region"]) == (f"/ecs/observability-prod/{service}", MOCK_REGION)


def test_grafana_database_is_on_encrypted_efs_through_its_access_point(prod):
    file_system = prod.one("aws:efs/fileSystem:FileSystem", "grafana-data")
    assert file_system.inputs["encrypted"] is True
    access_point = prod.one("aws:efs/accessPoint:AccessPoint", "grafana-data")
    assert access_point.inputs["posixUser"] == {"uid": 472, "gid": 0}
    assert access_point.inputs["rootDirectory"]["creationInfo"] == {"ownerUid": 472, "ownerGid": 0, "permissions": "0750"}
    task = prod.one(TASK, "grafana-task").inputs
    (volume,) = task["volumes"]
    efs = volume["efsVolumeConfiguration"]
    assert efs["transitEncryption"] == "ENABLED"
    assert efs["authorizationConfig"] == {"accessPointId": "grafana-data-id", "iam": "ENABLED"}
    mount = containers(prod)["grafana"]["grafana"]["mountPoints"]
    assert mount == [{"sourceVolume": "grafana-data", "containerPath": "/var/lib/grafana", "readOnly": False}]
    (tls,) = statements(prod.one("aws:efs/fileSystemPolicy:FileSystemPolicy", "grafana-data").inputs["policy"])
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (grant,) = statements(prod.one(ROLE_POLICY, "grafana-data-efs").inputs["policy"])
    assert "elasticfilesystem:AccessPointArn" in grant["Condition"]["StringEquals"]
    # No TSDB on a network file system: Prometheus, Tempo and Loki mount no EFS volume.
    for service in ("prometheus", "tempo", "loki"):
        assert all("efsVolumeConfiguration" not in v for v in prod.one(TASK, f"{service}-task").inputs.get("volumes", []))


def test_grafana_is_private_and_its_content_uses_the_public_url(prod):
    env = {e["name"]: e["value"] for e in containers(prod)["grafana"]["grafana"]["environment"]}
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "false"
    assert env["GF_SERVER_ROOT_URL"] == f"https://{DOMAIN}/"
    # Served over HTTPS: the session cookie never travels in plain HTTP, and browsers keep to HTTPS.
    assert env["GF_SECURITY_COOKIE_SECURE"] == env["GF_SECURITY_STRICT_TRANSPORT_SECURITY"] == "true"
    assert int(env["GF_SECURITY_STRICT_TRANSPORT_SECURITY_MAX_AGE_SECONDS"]) >= 180 * 24 * 3600
    (provider,) = prod.of_type("pulumi:providers:grafana")
    assert provider.inputs["url"] == f"https://{DOMAIN}"
    sources = {d.inputs["uid"]: d.inputs["url"] for d in prod.of_type("grafana:oss/dataSource:DataSource")}
    assert sources == {
        "prometheus": WORKSPACE_URL,
        "tempo": "http://tempo.observability-prod.internal:3200",
        "loki": "http://loki.observability-prod.internal:3100",
        # CloudWatch has no URL: the SDK finds the regional endpoint.
        "cloudwatch": "",
    }
    namespace = prod.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace", "namespace")
    assert namespace.inputs["name"] == "observability-prod.internal"


def test_exports(prod):
    alerting = {"alertRouting", "alertNotifications"}
    assert {k: v for k, v in prod.outputs.items() if k not in alerting} == {
        "grafanaUrl": f"https://{DOMAIN}",
        "grafanaAdminUser": "admin",
        "grafanaAdminPassword": MOCK_PASSWORD,
        "otlpGrpcEndpoint": f"https://{DOMAIN}:443",
        "otlpHttpEndpoint": f"https://{DOMAIN}",
        "otlpBearerToken": MOCK_TOKEN,
        "loadBalancerDnsName": f"alb-123456789.{MOCK_REGION}.elb.amazonaws.com",
        "metricsQueryUrl": WORKSPACE_URL,
    }
    assert prod.secret_outputs == {"grafanaAdminPassword", "otlpBearerToken"}
    assert prod.of_type("aws:route53/record:Record") == []


def test_a_hosted_zone_gets_the_alias_record():
    run = run_program("prod", {"hostedZoneId": "Z0123456789ABCDEFGHIJ"})
    assert run.error is None, run.error
    (record,) = run.of_type("aws:route53/record:Record")
    assert (record.inputs["zoneId"], record.inputs["name"], record.inputs["type"]) == ("Z0123456789ABCDEFGHIJ", DOMAIN, "A")
    (alias,) = record.inputs["aliases"]
    assert (alias["name"], alias["zoneId"]) == (f"alb-123456789.{MOCK_REGION}.elb.amazonaws.com", "Z32O12XQLNTSW2")


STATEFUL = (
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:efs/fileSystem:FileSystem",
    "aws:efs/accessPoint:AccessPoint",
    "aws:amp/workspace:Workspace",
)


def test_prod_destroy_keeps_the_data(prod):
    for type_ in STATEFUL:
        kept = prod.of_type(type_)
        # Retained when the stack goes, and protected so that even that needs a deliberate step.
        assert kept and all(r.options["retainOnDelete"] and r.options["protect"] for r in kept), type_
    assert all(b.inputs["forceDestroy"] is False for b in prod.of_type(BUCKET))
    # Only the data is kept: compute and network go with the stack.
    assert not any(r.options["retainOnDelete"] for r in prod.of_type(SERVICE) + prod.of_type("aws:efs/mountTarget:MountTarget"))


def test_stacks_may_opt_out_of_keeping_data():
    run = run_program("prod", {**SCALED_OUT, "retainData": "false"})
    assert run.error is None, run.error
    for type_ in STATEFUL:
        assert not any(r.options["retainOnDelete"] or r.options["protect"] for r in run.of_type(type_)), type_
    assert all(b.inputs["forceDestroy"] is True for b in run.of_type(BUCKET))


def test_created_vpc_spans_two_zones_with_private_tasks_and_one_nat(prod):
    (vpc,) = prod.of_type("aws:ec2/vpc:Vpc")
    assert vpc.inputs["enableDnsSupport"] is True and vpc.inputs["enableDnsHostnames"] is True
    subnets = by_name(prod, "aws:ec2/subnet:Subnet")
    assert {n: s.inputs["availabilityZone"] for n, s in subnets.items()} == {
        "public-0": "eu-west-1a", "public-1": "eu-west-1b", "private-0": "eu-west-1a", "private-1": "eu-west-1b",
    }
    assert {s.inputs["cidrBlock"] for s in subnets.values()} == {"10.40.0.0/20", "10.40.16.0/20", "10.40.128.0/20", "10.40.144.0/20"}
    (nat,) = prod.of_type("aws:ec2/natGateway:NatGateway")
    assert nat.inputs["subnetId"] == "public-0-id"
    private_routes = [r for r in prod.of_type("aws:ec2/routeTable:RouteTable") if r.name.startswith("private-")]
    assert [r.inputs["routes"] for r in private_routes] == [[{"cidrBlock": "0.0.0.0/0", "natGatewayId": "nat-0-id"}]] * 2
    (endpoint,) = prod.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{MOCK_REGION}.s3"
    for service in by_name(prod, SERVICE).values():
        assert service.inputs["networkConfiguration"]["subnets"] == ["private-0-id", "private-1-id"]
    (alb,) = prod.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["subnets"] == ["public-0-id", "public-1-id"]


def test_nat_per_zone_when_asked():
    run = run_program("prod", {**SCALED_OUT, "natGateways": "2"})
    assert run.error is None, run.error
    routes = {r.name: r.inputs["routes"][0]["natGatewayId"] for r in run.of_type("aws:ec2/routeTable:RouteTable") if r.name.startswith("private-")}
    assert routes == {"private-0": "nat-0-id", "private-1": "nat-1-id"}


def test_existing_vpc_is_used_as_given(existing_vpc):
    created = {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway", "aws:ec2/internetGateway:InternetGateway"}
    assert not any(r.type in created for r in existing_vpc.resources)
    private = json.loads(EXISTING_VPC["privateSubnetIds"])
    public = json.loads(EXISTING_VPC["publicSubnetIds"])
    for service in by_name(existing_vpc, SERVICE).values():
        assert service.inputs["networkConfiguration"]["subnets"] == private
    (alb,) = existing_vpc.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["subnets"] == public
    assert {m.inputs["subnetId"] for m in existing_vpc.of_type("aws:efs/mountTarget:MountTarget")} == set(private)
    namespace = existing_vpc.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace", "namespace")
    assert namespace.inputs["vpc"] == EXISTING_VPC["vpcId"]
    assert all(g.inputs["vpcId"] == EXISTING_VPC["vpcId"] for g in existing_vpc.of_type(SECURITY_GROUP))


def test_metrics_live_in_a_managed_prometheus_workspace(prod, settings):
    assert len(prod.of_type("aws:amp/workspace:Workspace")) == 1
    (configuration,) = prod.of_type("aws:amp/workspaceConfiguration:WorkspaceConfiguration")
    assert configuration.inputs["retentionPeriodInDays"] == settings.prometheus_retention.hours // 24 == 15
    defined = containers(prod)
    # The collector remote-writes to it with SigV4 (its task role's credentials).
    ingest = _written_config(defined["collector"])
    assert ingest["extensions"]["sigv4auth"] == {"region": MOCK_REGION, "service": "aps"}
    writer = ingest["exporters"]["prometheus_remote_write"]["http"]
    assert (writer["endpoint"], writer["auth"]) == (MANAGED.remote_write_url, {"authenticator": "sigv4auth"})
    assert "sigv4auth" in ingest["service"]["extensions"]
    # Tempo writes no metrics: span metrics and the service graph come from the collector.
    assert "metrics_generator" not in _written_config(defined["tempo"])
    # Prometheus only scrapes the components and forwards: agent mode, no TSDB of its own.
    scraper = defined["prometheus"]
    assert scraper["prometheus"]["command"] == list(prometheus.prometheus_args(agent=True))
    assert "--agent" in scraper["prometheus"]["command"]
    scraped = _written_config(scraper)
    assert scraped["remote_write"] == [{"url": MANAGED.remote_write_url, "sigv4": {"region": MOCK_REGION}}]
    assert "storage" not in scraped
    # Grafana queries it signed with its own role.
    env = {e["name"]: e["value"] for e in defined["grafana"]["grafana"]["environment"]}
    assert env["GF_AUTH_SIGV4_AUTH_ENABLED"] == "true"
    (source,) = [d for d in prod.of_type("grafana:oss/dataSource:DataSource") if d.inputs["uid"] == "prometheus"]
    json_data = json.loads(source.inputs["jsonDataEncoded"])
    assert (json_data["sigV4Auth"], json_data["sigV4AuthType"], json_data["sigV4Region"]) == (True, "default", MOCK_REGION)


def test_only_writers_write_and_only_grafana_reads_the_workspace(prod):
    arn = f"arn:aws:aps:{MOCK_REGION}:123456789012:workspace/metrics"
    grants = {p.name: statements(p.inputs["policy"]) for p in prod.of_type(ROLE_POLICY) if "-metrics-" in p.name}
    assert set(grants) == {"collector-metrics-write", "collector-sampler-metrics-write", "prometheus-metrics-write", "grafana-metrics-read"}
    for name, (statement,) in ((n, g) for n, g in grants.items()):
        assert statement["Resource"] == arn
        expected = ["aps:RemoteWrite"] if name.endswith("-write") else ["aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata"]
        assert statement["Action"] == expected, name
    roles = {r.name for r in prod.of_type(ROLE)}
    assert {"collector-task", "tempo-task", "prometheus-task", "grafana-task"} <= roles


def test_self_hosted_prometheus_on_aws_keeps_metrics_in_the_task():
    run = run_program("prod", {"metricsBackend": "prometheus"})
    assert run.error is None, run.error
    assert run.of_type("aws:amp/workspace:Workspace") == []
    defined = containers(run)
    assert defined["prometheus"]["prometheus"]["command"] == list(prometheus.prometheus_args())
    assert "remote_write" not in _written_config(defined["prometheus"])
    assert "sigv4auth" not in _written_config(defined["collector"])["extensions"]
    env = {e["name"] for e in defined["grafana"]["grafana"]["environment"]}
    assert "GF_AUTH_SIGV4_AUTH_ENABLED" not in env
    sources = {d.inputs["uid"]: d.inputs["url"] for d in run.of_type("grafana:oss/dataSource:DataSource")}
    assert sources["prometheus"] == "http://prometheus.observability-prod.internal:9090"
    # No TSDB on EFS, whichever backend.
    assert all("efsVolumeConfiguration" not in v for v in run.one(TASK, "prometheus-task").inputs.get("volumes", []))
    assert not any("-metrics-" in p.name for p in run.of_type(ROLE_POLICY))


def test_the_collector_config_deployed_to_prod_passes_otelcol_validate(prod, tmp_path):
    otelcol = os.environ.get("OTELCOL_BIN", "")
    assert otelcol, "set OTELCOL_BIN (scripts/test.sh does)"
    path = tmp_path / "config.yaml"
    path.write_text(containers(prod)["collector"]["config"]["environment"][0]["value"])
    # The config writer puts the token in a file, and ECS the task role's credentials that sigv4auth
    # resolves at start (validate included): stand-ins here, never used for a request.
    token = tmp_path / "otlp_bearer_token"
    token.write_text("validate-only-token")
    env = {
        **os.environ,
        collector.BEARER_TOKEN_FILE_ENV: str(token),
        "AWS_ACCESS_KEY_ID": "AKIAVALIDATEONLY0000",
        "AWS_SECRET_ACCESS_KEY": "validate-only",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run([otelcol, "validate", f"--config={path}"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


DATABASE_URL = "postgres://grafana:db-password-0123@grafana.cluster-abc.eu-west-1.rds.amazonaws.com:5432/grafana"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def egress_of(run, group: str) -> set[tuple]:
    """(protocol, from, to, destination) of every egress rule of a security group."""
    group_id = f"{group}-id"
    return {
        (r.inputs["ipProtocol"], r.inputs.get("fromPort"), r.inputs.get("toPort"), r.inputs.get("cidrIpv4") or r.inputs.get("referencedSecurityGroupId"))
        for r in run.of_type(EGRESS)
        if r.inputs["securityGroupId"] == group_id
    }


def test_services_reach_out_only_on_https_and_to_the_ports_they_use(prod):
    https = ("tcp", 443, 443, "0.0.0.0/0")

    def to(group: str, port: int) -> tuple:
        return ("tcp", port, port, f"{group}-id")

    expected = {
        # With amp the tiers and the agent write over HTTPS; the agent scrapes every component.
        "prometheus": {to("collector-sg", 8888), to("collector-sampler-sg", 8888), to("tempo-sg", 3200), to("loki-sg", 3100), to("grafana-sg", 3000)},
        "tempo": set(),
        "loki": set(),
        # Each collector tier mounts its queue slots.
        "collector": {to("collector-sampler-sg", 4317), to("loki-sg", 3100), to("collector-queue-efs", 2049)},
        "collector-sampler": {to("tempo-sg", 4317), to("collector-sampler-queue-efs", 2049)},
        # Grafana queries Tempo and Loki and mounts its file system.
        "grafana": {to("tempo-sg", 3200), to("loki-sg", 3100), to("grafana-data-efs", 2049)},
    }
    for service, reached in expected.items():
        assert egress_of(prod, f"{service}-sg") == {https} | reached, service
    assert not [r for r in prod.of_type(EGRESS) if r.inputs["ipProtocol"] == "-1"]


def test_grafana_reaches_its_smtp_server_and_external_database_on_their_ports():
    smtp = {"smtpHost": "smtp.example.com:587", "smtpFromAddress": "grafana@example.com", "alertEmailAddresses": '["oncall@example.com"]'}
    run = run_program("prod", {"grafanaDatabaseUrl": DATABASE_URL, **smtp}, secret_keys=("grafanaDatabaseUrl",))
    assert run.error is None, run.error
    assert egress_of(run, "grafana-sg") == {
        ("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 587, 587, "0.0.0.0/0"), ("tcp", 5432, 5432, "0.0.0.0/0"),
        # Its data sources (self-hosted Prometheus in the default stack).
        ("tcp", 9090, 9090, "prometheus-sg-id"), ("tcp", 3200, 3200, "tempo-sg-id"), ("tcp", 3100, 3100, "loki-sg-id"),
    }


def test_grafanas_file_system_is_backed_up_daily_unless_turned_off(prod):
    policy = prod.one("aws:efs/backupPolicy:BackupPolicy", "grafana-data")
    assert policy.inputs["backupPolicy"] == {"status": "ENABLED"} and policy.inputs["fileSystemId"] == "grafana-data-id"
    # Kept with the data: `pulumi destroy` does not turn the backups off first.
    assert policy.options["retainOnDelete"] and policy.options["protect"]
    off = run_program("prod", {"grafanaBackups": "false"})
    assert off.error is None, off.error
    assert off.one("aws:efs/backupPolicy:BackupPolicy", "grafana-data").inputs["backupPolicy"] == {"status": "DISABLED"}


def test_grafana_on_an_external_database_needs_no_efs():
    run = run_program("prod", {"grafanaDatabaseUrl": DATABASE_URL}, secret_keys=("grafanaDatabaseUrl",))
    assert run.error is None, run.error
    assert not [r for r in run.of_type("aws:efs/fileSystem:FileSystem") + run.of_type("aws:efs/accessPoint:AccessPoint") if r.name.startswith("grafana")]
    grafana = containers(run)["grafana"]["grafana"]
    assert {s["name"] for s in grafana["secrets"]} == {"GF_SECURITY_ADMIN_PASSWORD", "GF_METRICS_BASIC_AUTH_PASSWORD", "GF_DATABASE_URL"}
    env = {e["name"]: e["value"] for e in grafana["environment"]}
    assert env["GF_DATABASE_SSL_MODE"] == "require"
    assert not any(name.startswith("GF_DATABASE_URL") for name in env)
    (version,) = [v for v in run.of_type("aws:secretsmanager/secretVersion:SecretVersion") if v.name == "grafana-gf-database-url"]
    assert is_secret(version.inputs["secretString"]) and unwrap(version.inputs["secretString"]) == DATABASE_URL
    # The URL carries the database password: no resource holds it in plain text.
    assert all("db-password-0123" not in json.dumps(r.inputs) for r in run.resources if r is not version)
    # Caches and plugins only: task storage handed to Grafana's user.
    assert {"name": "grafana-data"} in run.one(TASK, "grafana-task").inputs["volumes"]


def test_values_the_user_stored_encrypted_stay_secret_even_when_not_credentials():
    smtp = {"smtpHost": "smtp.example.com:587", "smtpUser": "alerts-bot-7f3", "smtpFromAddress": "grafana@example.com",
            "alertEmailAddresses": '["oncall@example.com"]', "grafanaAdminUser": "ops-admin-7f3"}
    run = run_program("prod", smtp, secret_keys=("smtpUser", "grafanaAdminUser"))
    assert run.error is None, run.error
    grafana = containers(run)["grafana"]["grafana"]
    env = {e["name"] for e in grafana["environment"]}
    assert not env & {"GF_SMTP_USER", "GF_SECURITY_ADMIN_USER"}
    assert {"GF_SMTP_USER", "GF_SECURITY_ADMIN_USER"} <= {s["name"] for s in grafana["secrets"]}
    for resource in run.resources:
        leaked = [s for s in plain_strings(resource.inputs) if "alerts-bot-7f3" in s or "ops-admin-7f3" in s]
        assert leaked == [], (resource.type, resource.name)
    assert "grafanaAdminUser" in run.secret_outputs


WEB_ACL = "aws:wafv2/webAcl:WebAcl"


def test_load_balancer_access_logs_are_off_unless_configured(prod):
    (balancer,) = prod.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert not balancer.inputs.get("accessLogs")
    assert not [b for b in prod.of_type(BUCKET) if b.name == "alb-access-logs"]


@pytest.mark.parametrize("retain", ["true", "false"])
def test_load_balancer_access_logs_go_to_a_bucket_only_load_balancing_writes(retain):
    run = run_program("prod", {"albAccessLogDays": "90", "retainData": retain})
    assert run.error is None, run.error
    bucket = run.one(BUCKET, "alb-access-logs")
    assert bucket.inputs["forceDestroy"] is (retain == "false")
    assert (bucket.options["protect"], bucket.options["retainOnDelete"]) == (retain == "true",) * 2
    (balancer,) = run.of_type("aws:lb/loadBalancer:LoadBalancer")
    logs = balancer.inputs["accessLogs"]
    assert (logs["prefix"], logs["enabled"]) == ("alb", True)
    assert logs["bucket"].startswith(bucket.inputs["bucketPrefix"])
    encryption = run.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "alb-access-logs")
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    lifecycle = run.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "alb-access-logs")
    assert lifecycle.inputs["rules"][0]["expiration"]["days"] == 90
    block = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "alb-access-logs").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    grants = statements(run.one("aws:s3/bucketPolicy:BucketPolicy", "alb-access-logs").inputs["policy"])
    writes = [g for g in grants if g["Effect"] == "Allow"]
    # The regional account (eu-west-1 has one) and the service principal of newer regions; only
    # PutObject, only under the stack account's prefix.
    assert [g["Principal"] for g in writes] == [
        {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}, {"AWS": f"arn:aws:iam::{MOCK_ELB_ACCOUNT}:root"}
    ]
    assert all(g["Action"] == "s3:PutObject" and g["Resource"].endswith(f"/alb/AWSLogs/{MOCK_ACCOUNT}/*") for g in writes)
    (deny,) = [g for g in grants if g["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_browser_rate_limit_is_on_by_default_where_the_browser_route_is(prod):
    (acl,) = prod.of_type(WEB_ACL)
    (rule,) = acl.inputs["rules"]
    assert rule["statement"]["rateBasedStatement"]["limit"] == 2000
    # 0 turns it off (README: when and why).
    off = run_program("prod", {"browserRateLimit": "0"})
    assert off.error is None, off.error
    assert off.of_type(WEB_ACL) == [] and off.of_type("aws:wafv2/webAclAssociation:WebAclAssociation") == []


def test_browser_rate_limit_blocks_one_address_flooding_the_browser_route_only():
    run = run_program("prod", {"browserRateLimit": "3000"})
    assert run.error is None, run.error
    acl = run.one(WEB_ACL, "browser-rate-limit").inputs
    assert acl["scope"] == "REGIONAL" and acl["defaultAction"] == {"allow": {}}
    (rule,) = acl["rules"]
    assert rule["action"] == {"block": {}}
    rate = rule["statement"]["rateBasedStatement"]
    assert (rate["limit"], rate["aggregateKeyType"], rate["evaluationWindowSec"]) == (3000, "IP", 300)
    match = rate["scopeDownStatement"]["byteMatchStatement"]
    assert (match["positionalConstraint"], match["searchString"], match["fieldToMatch"]) == ("STARTS_WITH", "/browser/v1/", {"uriPath": {}})
    (association,) = run.of_type("aws:wafv2/webAclAssociation:WebAclAssociation")
    (balancer,) = run.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert association.inputs["resourceArn"].endswith(f"loadbalancer/{balancer.name}")


def _ingress_rules(run) -> list[dict]:
    return sorted((unwrap(r.inputs) for r in run.of_type(INGRESS)), key=json.dumps)


def test_default_tasks_run_in_public_subnets_with_public_ips_and_no_nat_gateway(prod):
    default = run_program("prod")
    assert default.error is None, default.error
    public = {r.name for r in default.of_type("aws:ec2/subnet:Subnet")}
    assert public == {"public-0", "public-1"}
    for resource_type in ("aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip"):
        assert default.of_type(resource_type) == []
    for service in default.of_type(SERVICE):
        network = unwrap(service.inputs)["networkConfiguration"]
        assert network["assignPublicIp"] is True
        assert network["subnets"] == ["public-0-id", "public-1-id"]
    # The tasks' S3 traffic still takes the gateway endpoint, now on the public route table.
    (endpoint,) = default.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert unwrap(endpoint.inputs)["routeTableIds"] == ["public-id"]
    # Public addresses change nothing in what may come in: the same inbound rules as private tasks
    # with the same services.
    private = run_program("prod", {"taskSubnets": "private"})
    assert _ingress_rules(default) == _ingress_rules(private)
    assert {unwrap(s.inputs)["networkConfiguration"]["assignPublicIp"] for s in private.of_type(SERVICE)} == {False}


def test_default_tasks_run_on_graviton(prod):
    default = run_program("prod")
    for task in default.of_type(TASK):
        assert unwrap(task.inputs)["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"}
    for task in prod.of_type(TASK):
        assert unwrap(task.inputs)["runtimePlatform"]["cpuArchitecture"] == "ARM64"
    x86 = run_program("prod", {"cpuArchitecture": "X86_64"})
    assert {unwrap(t.inputs)["runtimePlatform"]["cpuArchitecture"] for t in x86.of_type(TASK)} == {"X86_64"}


def test_public_tasks_in_a_given_vpc_use_its_public_subnets():
    given = {"vpcId": EXISTING_VPC["vpcId"], "publicSubnetIds": EXISTING_VPC["publicSubnetIds"]}
    run = run_program("prod", given)
    assert run.error is None, run.error
    assert run.of_type("aws:ec2/subnet:Subnet") == [] and run.of_type("aws:ec2/natGateway:NatGateway") == []
    for service in run.of_type(SERVICE):
        network = unwrap(service.inputs)["networkConfiguration"]
        assert (network["subnets"], network["assignPublicIp"]) == (json.loads(EXISTING_VPC["publicSubnetIds"]), True)
    mounts = {unwrap(m.inputs)["subnetId"] for m in run.of_type("aws:efs/mountTarget:MountTarget")}
    assert mounts == set(json.loads(EXISTING_VPC["publicSubnetIds"]))


def test_default_collector_memory_limits_follow_its_task_size():
    """The memory limiter works in shares of the container's limit and GOMEMLIMIT is derived from
    it: both follow collectorMemoryMb, whatever size the task is given."""
    for memory in ("512", "2048"):
        run = run_program("prod", {"collectorMemoryMb": memory})
        task = unwrap(run.one(TASK, "collector-task").inputs)
        (main,) = [c for c in json.loads(task["containerDefinitions"]) if c["name"] == collector.NAME]
        assert int(task["memory"]) == main["memory"] == int(memory)
        env = {e["name"]: e["value"] for e in main["environment"]}
        assert env["GOMEMLIMIT"] == collector.go_memory_limit(int(memory)) == f"{int(memory) * 64 // 100}MiB"


def test_no_browser_route_where_no_origin_may_send():
    """With corsAllowedOrigins empty no web page may send, so there is no token-free route at all:
    no receiver, no target group, no listener rule (and no rate limit to pay for)."""
    run = run_program("prod", {"corsAllowedOrigins": "[]", "browserRateLimit": "3000"})
    assert run.error is None, run.error
    browser = f"{collector.NAME}-{collector_browser.BROWSER_OTLP.name}"
    assert browser not in by_name(run, "aws:lb/targetGroup:TargetGroup")
    assert browser not in by_name(run, "aws:lb/listenerRule:ListenerRule")
    assert not run.of_type(WEB_ACL)
    (main,) = [c for c in containers(run)[collector.NAME].values() if c["name"] == collector.NAME]
    assert collector_browser.BROWSER_OTLP.container_port not in {p["containerPort"] for p in main["portMappings"]}
    receivers = yaml.safe_load(render_stack("prod", overrides={"corsAllowedOrigins": "[]"})["collector/config.yaml"])["receivers"]
    assert set(receivers) == {"otlp"}
    # Where origins are listed, the route exists.
    assert browser in by_name(run_program("prod"), "aws:lb/targetGroup:TargetGroup")
