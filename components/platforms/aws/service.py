"""One ServiceSpec as an ECS Fargate service: its log group, secrets, roles, security group, task
definition (containers.py: an init container writes the config files into a task volume), Cloud
Map name, public routes, and autoscaling when it may run several tasks."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.containers import StoredSecrets, task_containers
from components.platforms.aws.edge import Edge, PublishedPorts
from components.platforms.aws.filesystem import ServiceFileSystem, ServiceFileSystemArgs
from components.platforms.aws.firewall import allow_tcp
from components.platforms.aws.iam import execution_policy
from components.platforms.aws.queue_slots import link_directory, slots_path
from components.platforms.spec import DataVolume, ServiceSpec
from components.settings.model import FARGATE_EPHEMERAL_STORAGE_GIB

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
    edge: Edge
    # Who may assume the execution roles (iam.trust_ecs_agent_of, with the stack's account).
    execution_trust: pulumi.Input[str]
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
    # The service's one group: AwsPlatform adds the rules between it and the services it talks to.
    security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, args: FargateServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:FargateService", name, None, opts)
        spec, shared = args.spec, args.cluster
        self._child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{spec.name}-logs",
            name=f"/ecs/{shared.prefix}/{spec.name}",
            retention_in_days=shared.log_retention_days,
            opts=self._child,
        )
        secrets = self._secrets(spec, shared.prefix)
        execution_role = self._execution_role(spec, shared, log_group, secrets)
        self.security_group = security_group = self._security_group(spec, shared)
        volumes, mounts, file_systems = self._volumes(args, security_group)
        containers = task_containers(
            spec, region=shared.region, utility_image=shared.utility_image, log_group_name=log_group.name,
            secrets=secrets, mounts=mounts, max_tasks=args.max_tasks,
        )
        task = self._task_definition(args, execution_role, volumes, containers)
        published = shared.edge.publish(spec, security_group, self._child)
        self.service = self._ecs_service(args, task, security_group, published, file_systems)
        if args.max_tasks > args.min_tasks:
            self._autoscale(spec, shared, args.min_tasks, args.max_tasks)
        self.register_outputs({"serviceName": self.service.name, "taskDefinition": task.arn})

    def _secrets(self, spec: ServiceSpec, prefix: str) -> StoredSecrets:
        """Each secret of the spec in Secrets Manager, with the environment variable it is for."""
        secrets = []
        for secret in spec.secrets:
            resource_name = f"{spec.name}-{secret.env.lower().replace('_', '-')}"
            stored = aws.secretsmanager.Secret(
                resource_name,
                name_prefix=f"{prefix}/{spec.name}/{secret.env.lower()}-",
                description=f"{secret.env} of the {spec.name} service",
                recovery_window_in_days=7,
                opts=self._child,
            )
            aws.secretsmanager.SecretVersion(resource_name, secret_id=stored.id, secret_string=secret.value, opts=self._child)
            secrets.append((secret.env, stored))
        return secrets

    def _execution_role(self, spec: ServiceSpec, shared: Cluster, log_group: aws.cloudwatch.LogGroup, secrets: StoredSecrets) -> aws.iam.Role:
        """The role the ECS agent starts the task as (not the program's: that is the task role)."""
        role = aws.iam.Role(
            f"{spec.name}-execution",
            assume_role_policy=shared.execution_trust,
            description=f"ECS agent for {spec.name}: writes its logs, reads its own secrets",
            opts=self._child,
        )
        images = [spec.image, shared.utility_image]
        aws.iam.RolePolicy(
            f"{spec.name}-execution",
            role=role.id,
            policy=pulumi.Output.all(log_group.arn, *[s.arn for _, s in secrets]).apply(
                lambda arns: execution_policy(arns[0], arns[1:], images)
            ),
            opts=self._child,
        )
        return role

    def _security_group(self, spec: ServiceSpec, shared: Cluster) -> aws.ec2.SecurityGroup:
        """The service's own group: out, HTTPS and what the service names outside the stack. The
        rules between services (each port from its clients only) are AwsPlatform's, the load
        balancer's the edge's, NFS the file systems'."""
        name, child = spec.name, self._child
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=shared.vpc_id,
            description=f"{name}: its own ports, from the other services and the load balancer",
            tags={"Name": f"{shared.prefix}-{name}"},
            opts=child,
        )
        # Out: HTTPS anywhere (image registries, AWS APIs through NAT, the public IP or the S3
        # endpoint, webhooks) and what the spec names (SMTP, a database). DNS to the VPC resolver
        # needs no rule: security groups do not filter traffic to the Amazon DNS server (Amazon VPC
        # user guide).
        out = functools.partial(allow_tcp, group=security_group, direction="out", opts=child)
        out(f"{name}-egress-https", ports=443, cidr="0.0.0.0/0", description="HTTPS: image pulls, AWS APIs, webhooks")
        for outside in spec.egress_ports:
            out(f"{name}-egress-{outside}", ports=outside, cidr="0.0.0.0/0", description=f"Port {outside} outside the stack (named by the service)")
        if spec.gossip_port is not None:
            # A ring's members talk on TCP and UDP (memberlist), among this service's tasks only;
            # they find each other through the Cloud Map name (an A record per task).
            for protocol, direction in itertools.product(("tcp", "udp"), ("in", "out")):
                allow_tcp(
                    f"{name}-gossip-{protocol}-{direction}", group=security_group, direction=direction, ports=spec.gossip_port,
                    peer=security_group, protocol=protocol, description=f"gossip ({protocol.upper()}) between {name}'s tasks", opts=child,
                )
        return security_group

    def _task_definition(
        self, args: FargateServiceArgs, execution_role: aws.iam.Role, volumes: list[aws.ecs.TaskDefinitionVolumeArgs], containers: list[dict[str, Any]]
    ) -> aws.ecs.TaskDefinition:
        """The config files travel inside the container definitions (the init container's
        environment), so a changed config is a changed task definition: Pulumi registers a new
        revision and the service rolls its tasks onto it. No image is built, nothing is fetched."""
        spec, shared = args.spec, args.cluster
        return aws.ecs.TaskDefinition(
            f"{spec.name}-task",
            family=f"{shared.prefix}-{spec.name}",
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
            opts=self._child,
        )

    def _discovery(self, name: str, namespace: aws.servicediscovery.PrivateDnsNamespace) -> aws.servicediscovery.Service:
        """The service's name in the Cloud Map namespace: an A record per running task."""
        return aws.servicediscovery.Service(
            f"{name}-discovery",
            name=name,
            dns_config=aws.servicediscovery.ServiceDnsConfigArgs(
                namespace_id=namespace.id,
                dns_records=[aws.servicediscovery.ServiceDnsConfigDnsRecordArgs(ttl=10, type="A")],
                routing_policy="MULTIVALUE",
            ),
            # ECS reports task health to Cloud Map: stopped or unhealthy tasks leave the name.
            health_check_custom_config=aws.servicediscovery.ServiceHealthCheckCustomConfigArgs(),
            opts=self._child,
        )

    def _ecs_service(
        self, args: FargateServiceArgs, task: aws.ecs.TaskDefinition, security_group: aws.ec2.SecurityGroup,
        published: PublishedPorts, file_systems: list[pulumi.Resource],
    ) -> aws.ecs.Service:
        spec, shared = args.spec, args.cluster
        registry = self._discovery(spec.name, shared.namespace)
        return aws.ecs.Service(
            f"{spec.name}-service",
            name=spec.name,
            cluster=shared.cluster.arn,
            task_definition=task.arn,
            desired_count=args.min_tasks,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=list(shared.task_subnet_ids),
                security_groups=[security_group.id],
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
                self._child,
                pulumi.ResourceOptions(
                    depends_on=[*published.routes, *file_systems, *args.depends_on],
                    # Autoscaling owns the count once the service exists.
                    ignore_changes=["desiredCount"] if args.max_tasks > args.min_tasks else None,
                ),
            ),
        )

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
            opts=self._child,
        )

    def _autoscale(self, spec: ServiceSpec, shared: Cluster, minimum: int, maximum: int) -> None:
        """Target tracking on CPU, and on memory where the spec asks: the service scales out when
        any policy asks and in only when all do (Application Auto Scaling, "Target tracking
        scaling policies", multiple policies)."""
        name, child = spec.name, self._child
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
        if spec.scaling and spec.scaling.memory_percentage is not None:
            policies.append(("memory", "ECSServiceAverageMemoryUtilization", spec.scaling.memory_percentage))
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

