"""One ServiceSpec as an ECS Fargate service: its log group, secrets, roles, security group, task
definition (an init container writes the config files into a task volume), Cloud Map name,
public routes, and CPU autoscaling when it may run several tasks."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.edge import Edge
from components.platforms.aws.filesystem import ServiceFileSystem, ServiceFileSystemArgs
from components.platforms.aws.firewall import allow_tcp
from components.platforms.aws.iam import policy, trust_ecs_tasks
from components.platforms.aws.queue_slots import CLAIM_CONTAINER, claim_container, link_directory, slot_count, slots_path
from components.platforms.spec import DataVolume, ServiceSpec
from components.settings.model import FARGATE_EPHEMERAL_STORAGE_GIB

CONFIG_CONTAINER = "config"
# A private Amazon ECR image: <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]
# (Amazon ECR user guide, "Private registry"); ecr-fips hosts included.
_PRIVATE_ECR = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repository>[^:@]+)"
)


def private_ecr_repositories(images: Sequence[str]) -> list[str]:
    """ARNs of the private ECR repositories the images come from (other registries need no grant)."""
    arns = set()
    for image in images:
        match = _PRIVATE_ECR.match(image)
        if match:
            arns.add(f"arn:aws:ecr:{match['region']}:{match['account']}:repository/{match['repository']}")
    return sorted(arns)


def ecr_pull_statements(repositories: Sequence[str]) -> list[dict[str, Any]]:
    """What the ECS agent needs to pull from private ECR (the task execution role page of the ECS
    guide): an authorization token, which IAM cannot scope to a repository, and the image's layers
    from exactly these repositories."""
    if not repositories:
        return []
    return [
        {"Sid": "EcrToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "EcrPull",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": list(repositories),
        },
    ]
# Time to flush (Loki's WAL, the collector's queues) before SIGKILL; 120 s is Fargate's most
# (ContainerDefinition stopTimeout, Amazon ECS API reference).
STOP_TIMEOUT_SECONDS = 120
# Target tracking on the service's average CPU (ECSServiceAverageCPUUtilization).
SCALING_CPU_TARGET = 60


@dataclass(frozen=True)
class Cluster:
    """What every service of the stack shares."""

    prefix: str
    region: str
    vpc_id: pulumi.Input[str]
    # The tasks' subnets; public ones give each task a public IP (its egress without NAT).
    task_subnet_ids: Sequence[pulumi.Input[str]]
    cluster: aws.ecs.Cluster
    namespace: aws.servicediscovery.PrivateDnsNamespace
    # Every task carries this group; a service admits it on its own ports only.
    members_security_group: aws.ec2.SecurityGroup
    edge: Edge
    log_retention_days: int
    cpu_architecture: str
    # The pinned busybox that writes config files into task volumes.
    utility_image: str
    retain_data: bool
    file_system_backups: bool = True
    assign_public_ip: bool = False


@dataclass(frozen=True)
class FargateServiceArgs:
    spec: ServiceSpec
    cluster: Cluster
    cpu_units: int
    task_role: aws.iam.Role
    # Task counts; more than one minimum or a higher maximum needs spec.stateless.
    min_tasks: int = 1
    max_tasks: int = 1
    depends_on: Sequence[pulumi.Resource] = ()


class FargateService(pulumi.ComponentResource):
    service: aws.ecs.Service

    def __init__(self, name: str, args: FargateServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:FargateService", name, None, opts)
        spec, shared = args.spec, args.cluster
        child = pulumi.ResourceOptions(parent=self)
        name = spec.name
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ecs/{shared.prefix}/{name}",
            retention_in_days=shared.log_retention_days,
            opts=child,
        )
        secrets = []
        for secret in spec.secrets:
            stored = aws.secretsmanager.Secret(
                f"{name}-{secret.env.lower().replace('_', '-')}",
                name_prefix=f"{shared.prefix}/{name}/{secret.env.lower()}-",
                description=f"{secret.env} of the {name} service",
                recovery_window_in_days=7,
                opts=child,
            )
            aws.secretsmanager.SecretVersion(
                f"{name}-{secret.env.lower().replace('_', '-')}",
                secret_id=stored.id,
                secret_string=secret.value,
                opts=child,
            )
            secrets.append((secret.env, stored))

        execution_role = aws.iam.Role(
            f"{name}-execution",
            assume_role_policy=trust_ecs_tasks(),
            description=f"ECS agent for {name}: writes its logs, reads its own secrets",
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution",
            role=execution_role.id,
            policy=pulumi.Output.all(log_group.arn, *[s.arn for _, s in secrets]).apply(
                lambda arns: policy(
                    {
                        "Sid": "Logs",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": [arns[0], f"{arns[0]}:log-stream:*"],
                    },
                    *(
                        [{"Sid": "Secrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": list(arns[1:])}]
                        if len(arns) > 1
                        else []
                    ),
                    *ecr_pull_statements(private_ecr_repositories([spec.image, shared.utility_image])),
                )
            ),
            opts=child,
        )

        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=shared.vpc_id,
            description=f"{name}: its own ports, from the other services and the load balancer",
            tags={"Name": f"{shared.prefix}-{name}"},
            opts=child,
        )
        # Out: HTTPS anywhere (image registries, AWS APIs through NAT, the public IP or the S3 endpoint,
        # webhooks), any port of the other services (their own groups admit only their ports), and
        # what the spec names (SMTP, a database). DNS to the VPC resolver needs no rule: security
        # groups do not filter traffic to the Amazon DNS server (Amazon VPC user guide).
        out = functools.partial(allow_tcp, group=security_group, direction="out", opts=child)
        out(f"{name}-egress-https", ports=443, cidr="0.0.0.0/0", description="HTTPS: image pulls, AWS APIs, webhooks")
        out(
            f"{name}-egress-services", ports=(0, 65535), peer=shared.members_security_group,
            description="The other services, on the ports their own groups admit",
        )
        for outside in spec.egress_ports:
            out(f"{name}-egress-{outside}", ports=outside, cidr="0.0.0.0/0", description=f"Port {outside} outside the stack (named by the service)")
        for port in spec.ports:
            allow_tcp(
                f"{name}-{port.name}-from-services", group=security_group, direction="in", ports=port.container_port,
                peer=shared.members_security_group, description=f"{port.name} from the other services", opts=child,
            )

        volumes, mounts, file_systems = self._volumes(args, security_group)
        containers = task_containers(spec, shared, log_group.name, secrets, mounts, args.max_tasks)
        # The config files travel inside the container definitions (the init container's
        # environment), so a changed config is a changed task definition: Pulumi registers a new
        # revision and the service rolls its tasks onto it. No image is built, nothing is fetched.
        task = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{shared.prefix}-{name}",
            cpu=str(args.cpu_units),
            memory=str(spec.memory_mb),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=execution_role.arn,
            task_role_arn=args.task_role.arn,
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(operating_system_family="LINUX", cpu_architecture=shared.cpu_architecture),
            volumes=volumes,
            container_definitions=pulumi.Output.json_dumps(containers),
            ephemeral_storage=(
                aws.ecs.TaskDefinitionEphemeralStorageArgs(size_in_gib=spec.disk_gib)
                if spec.disk_gib and spec.disk_gib > FARGATE_EPHEMERAL_STORAGE_GIB
                else None
            ),
            opts=child,
        )

        published = shared.edge.publish(spec, security_group, child)
        registry = aws.servicediscovery.Service(
            f"{name}-discovery",
            name=name,
            dns_config=aws.servicediscovery.ServiceDnsConfigArgs(
                namespace_id=shared.namespace.id,
                dns_records=[aws.servicediscovery.ServiceDnsConfigDnsRecordArgs(ttl=10, type="A")],
                routing_policy="MULTIVALUE",
            ),
            # ECS reports task health to Cloud Map: stopped or unhealthy tasks leave the name.
            health_check_custom_config=aws.servicediscovery.ServiceHealthCheckCustomConfigArgs(),
            opts=child,
        )
        scales = args.max_tasks > args.min_tasks
        self.service = aws.ecs.Service(
            f"{name}-service",
            name=name,
            cluster=shared.cluster.arn,
            task_definition=task.arn,
            desired_count=args.min_tasks,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=list(shared.task_subnet_ids),
                security_groups=[security_group.id, shared.members_security_group.id],
                assign_public_ip=shared.assign_public_ip,
            ),
            service_registries=aws.ecs.ServiceServiceRegistriesArgs(registry_arn=registry.arn),
            load_balancers=published.load_balancers or None,
            health_check_grace_period_seconds=120 if published.load_balancers else None,
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            # A stateful service never runs two tasks at once (single writer of its data): the
            # old task stops before the new one starts.
            deployment_minimum_healthy_percent=100 if spec.stateless else 0,
            deployment_maximum_percent=200 if spec.stateless else 100,
            enable_execute_command=False,
            propagate_tags="SERVICE",
            # `pulumi up` returns once the tasks run and pass their health checks (the load
            # balancer's too), so dependants, and Grafana's content, wait for a working service.
            wait_for_steady_state=True,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=[*published.routes, *file_systems, *args.depends_on],
                    # Autoscaling owns the count once the service exists.
                    ignore_changes=["desiredCount"] if scales else None,
                ),
            ),
        )
        if scales:
            self._autoscale(name, shared, args.min_tasks, args.max_tasks, spec.scaling.memory_percentage if spec.scaling else None, child)
        self.register_outputs({"serviceName": self.service.name, "taskDefinition": task.arn})

    def _volumes(self, args: FargateServiceArgs, security_group: aws.ec2.SecurityGroup) -> tuple[list, list[dict[str, Any]], list[pulumi.Resource]]:
        """Config directories and owned data volumes live on the task's ephemeral storage (the init
        container writes or hands them over); shared volumes on EFS. Other data volumes stay in the
        container's writable layer, also task storage: local disk, as a TSDB needs, gone with the task."""
        spec, shared = args.spec, args.cluster
        volumes: list[aws.ecs.TaskDefinitionVolumeArgs] = []
        mounts: list[dict[str, Any]] = []
        directories = {str(PurePosixPath(f.path).parent) for f in spec.files}
        directories |= {str(PurePosixPath(s.file).parent) for s in spec.secrets if s.file_only}
        for directory in sorted(directories):
            volume = "config" + directory.replace("/", "-")
            volumes.append(aws.ecs.TaskDefinitionVolumeArgs(name=volume))
            mounts.append({"sourceVolume": volume, "containerPath": directory, "readOnly": True})
        file_systems: list[pulumi.Resource] = []
        for data in spec.volumes:
            volume = f"{spec.name}-{data.name}"
            if data.inherited_by_replacements:
                # Accepted, undelivered data: kept like the other data stores (retainData); no backups
                # (a restored queue would send again what was delivered since). Elastic throughput:
                # every byte queued is written and read once whatever the size stored, while Bursting's
                # baseline is 50 KiB/s per GiB stored (Amazon EFS pricing page): a nearly empty queue
                # would get almost none.
                slots = self._file_system(volume, data, args, security_group, backups=False, throughput_mode="elastic")
                # The slots on EFS, and the task-scoped directory where the claim container puts the
                # link (named like the data path) to the slot it claimed.
                volumes += [slots.task_volume(f"{volume}-slots"), aws.ecs.TaskDefinitionVolumeArgs(name=volume)]
                mounts += [
                    {"sourceVolume": f"{volume}-slots", "containerPath": slots_path(data), "readOnly": False},
                    {"sourceVolume": volume, "containerPath": link_directory(data), "readOnly": True},
                ]
                file_systems.extend(slots.mount_targets)
                continue
            if data.shared_filesystem:
                file_system = self._file_system(volume, data, args, security_group, backups=shared.file_system_backups)
                volumes.append(file_system.task_volume(volume))
                file_systems.extend(file_system.mount_targets)
            elif data.owner:
                volumes.append(aws.ecs.TaskDefinitionVolumeArgs(name=volume))
            else:
                continue
            mounts.append({"sourceVolume": volume, "containerPath": data.path, "readOnly": False})
        return volumes, mounts, file_systems

    def _file_system(
        self, volume: str, data: DataVolume, args: FargateServiceArgs, security_group: aws.ec2.SecurityGroup,
        backups: bool, throughput_mode: Optional[str] = None,
    ) -> ServiceFileSystem:
        shared = args.cluster
        return ServiceFileSystem(
            volume,
            ServiceFileSystemArgs(
                service=args.spec.name,
                volume=data,
                prefix=shared.prefix,
                vpc_id=shared.vpc_id,
                subnet_ids=shared.task_subnet_ids,
                service_security_group=security_group,
                task_role=args.task_role,
                retain=shared.retain_data,
                backups=backups,
                throughput_mode=throughput_mode,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _autoscale(
        self, name: str, shared: Cluster, minimum: int, maximum: int, memory_percentage: Optional[int], child: pulumi.ResourceOptions
    ) -> None:
        """Target tracking on CPU, and on memory where the spec asks: the service scales out when
        any policy asks and in only when all do (Application Auto Scaling, "Target tracking
        scaling policies", multiple policies)."""
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", shared.cluster.name, "/", self.service.name),
            min_capacity=minimum,
            max_capacity=maximum,
            opts=child,
        )
        policies = [("cpu", "ECSServiceAverageCPUUtilization", SCALING_CPU_TARGET)]
        if memory_percentage is not None:
            policies.append(("memory", "ECSServiceAverageMemoryUtilization", memory_percentage))
        for suffix, metric, target_value in policies:
            aws.appautoscaling.Policy(
                f"{name}-{suffix}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    target_value=target_value,
                    predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type=metric
                    ),
                    scale_out_cooldown=60,
                    scale_in_cooldown=300,
                ),
                opts=child,
            )


def task_containers(
    spec: ServiceSpec,
    shared: Cluster,
    log_group_name: pulumi.Input[str],
    secrets: list[tuple[str, aws.secretsmanager.Secret]],
    mounts: list[dict[str, Any]],
    max_tasks: int = 1,
) -> list[dict[str, Any]]:
    """The task's container definitions: the program, the init container that prepares its volumes,
    and the container that claims a queue slot where the program has one."""

    def logging(stream_prefix: str) -> dict[str, Any]:
        return {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group_name, "awslogs-region": shared.region, "awslogs-stream-prefix": stream_prefix},
        }

    file_only = {s.env: s for s in spec.secrets if s.file_only}
    main: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "essential": True,
        "portMappings": [{"name": p.name, "containerPort": p.container_port, "protocol": "tcp"} for p in spec.ports],
        "environment": [
            {"name": key, "value": value}
            for key, value in sorted({**spec.env, **{s.file_env: s.file for s in file_only.values() if s.file_env}}.items())
        ],
        # Secrets Manager values, injected by the ECS agent at start: never in the task definition.
        "secrets": [{"name": env, "valueFrom": stored.arn} for env, stored in secrets if env not in file_only],
        "mountPoints": mounts,
        "logConfiguration": logging(spec.name),
        # The whole task's memory: the collector's memory_limiter reads this limit.
        "memory": spec.memory_mb,
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        # A crashed program restarts in place, keeping what it wrote to task storage and the
        # queue slot its task claimed.
        "restartPolicy": {"enabled": True},
    }
    if spec.command:
        main["command"] = list(spec.command)
    if spec.health:
        h = spec.health
        main["healthCheck"] = {
            "command": ["CMD", *h.command],
            "interval": h.interval_seconds,
            "timeout": h.timeout_seconds,
            "retries": h.retries,
            "startPeriod": h.start_period_seconds,
        }
    # A task volume starts empty and root's. Images without a shell (FROM scratch, distroless)
    # cannot prepare their own: a pinned busybox writes every config file into the volume the
    # program mounts read-only, and hands owned data volumes to the program's user.
    steps = [f'printf "%s" "$CONFIG_FILE_{index}" > {shlex.quote(f.path)}' for index, f in enumerate(spec.files)]
    # Secrets the program reads only from a file: the ECS agent hands them to this container alone,
    # which writes them for the program's user only (task storage is encrypted on Fargate).
    for env in file_only:
        path = shlex.quote(file_only[env].file)
        steps += [f'(umask 077; printf "%s" "${env}" > {path})', f"chown {shlex.quote(spec.user)} {path}"]
    owned = [v for v in spec.volumes if v.owner and not v.shared_filesystem and not v.inherited_by_replacements]
    steps += [f"chown -R {shlex.quote(v.owner or '')} {shlex.quote(v.path)}" for v in owned]
    # One claim container per task: a program has at most one queue (names of containers are unique).
    claims = []
    for queue in (v for v in spec.volumes if v.inherited_by_replacements):
        paths = {slots_path(queue), link_directory(queue)}
        writable = [{**m, "readOnly": False} for m in mounts if m["containerPath"] in paths]
        claims.append(claim_container(queue, slot_count(max_tasks), shared.utility_image, writable, logging(CLAIM_CONTAINER)))
    assert len(claims) <= 1, f"{spec.name}: one queue volume per task"
    depends_on = [{"containerName": CLAIM_CONTAINER, "condition": "HEALTHY"}] if claims else []
    if not steps:
        if depends_on:
            main["dependsOn"] = depends_on
        return [*claims, main]
    owned_paths = {v.path for v in owned}
    writer = {
        "name": CONFIG_CONTAINER,
        "image": shared.utility_image,
        "essential": False,
        "command": ["sh", "-c", "set -e; " + "; ".join(steps)],
        "environment": [{"name": f"CONFIG_FILE_{index}", "value": f.content} for index, f in enumerate(spec.files)],
        "mountPoints": [{**m, "readOnly": False} for m in mounts if m["sourceVolume"].startswith("config-") or m["containerPath"] in owned_paths],
        "logConfiguration": logging(CONFIG_CONTAINER),
    }
    if file_only:
        writer["secrets"] = [{"name": env, "valueFrom": stored.arn} for env, stored in secrets if env in file_only]
    main["dependsOn"] = [{"containerName": CONFIG_CONTAINER, "condition": "SUCCESS"}, *depends_on]
    return [writer, *claims, main]
