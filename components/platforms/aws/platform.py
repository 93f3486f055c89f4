"""Runs any ServiceSpec as an ECS Fargate service behind one HTTPS load balancer.

Per service: a task definition (an init container writes the config files into a task volume),
a Fargate service in private subnets with a Cloud Map name, its own security group, log group,
execution role (reads exactly its own secrets) and task role (reaches exactly its own data).
Shared: the network (created or given), the cluster, the load balancer and its listeners.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from components.platforms.spec import DataVolume, MetricsStore, ObjectStore, Port, PublicRoute, RunningService, ServiceSpec, resolved_when
from components.settings import AwsSettings, Settings

ECS_TASKS = "ecs-tasks.amazonaws.com"
# Object actions Tempo documents as its minimum (Loki needs a subset); ListBucket is on the bucket.
OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:GetObjectTagging", "s3:PutObjectTagging")
# Amazon Managed Service for Prometheus: what a writer and a reader (Grafana) may do.
METRICS_WRITE_ACTIONS = ("aps:RemoteWrite",)
METRICS_READ_ACTIONS = ("aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata")
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
CONFIG_CONTAINER = "config"
# Traffic on the load balancer reaches a route by these priorities: path routes first.
_PATH_ROUTE_PRIORITY = 100
_DEFAULT_ROUTE_PRIORITY = 50000
# An S3 object outlives the store's own retention by this much, so the store deletes first
# (Loki's docs: a bucket lifecycle must be longer than the retention period).
LIFECYCLE_SLACK_DAYS = 1


def _nth(index: int, names: list[str]) -> str:
    return names[index]


def _metrics_policy(purpose: str, actions: tuple[str, ...], workspace_arn: str) -> str:
    return _policy({"Sid": f"Metrics{purpose.title()}", "Effect": "Allow", "Action": list(actions), "Resource": workspace_arn})


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def _trust_ecs_tasks() -> str:
    return _policy({"Effect": "Allow", "Principal": {"Service": ECS_TASKS}, "Action": "sts:AssumeRole"})


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """Public subnets from the first half of the range, private from the second, each /4 longer
    than the VPC (16 subnets; room for up to 8 zones of each kind)."""
    network = ipaddress.IPv4Network(vpc_cidr)
    blocks = [str(b) for b in network.subnets(prefixlen_diff=4)]
    return blocks[:zones], blocks[8 : 8 + zones]


def lifecycle_days(retention_hours: int) -> int:
    return -(-retention_hours // 24) + LIFECYCLE_SLACK_DAYS


class AwsPlatform(pulumi.ComponentResource):
    """Network, cluster, load balancer and service discovery; run() adds one Fargate service."""

    def __init__(self, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("observability:platform:Aws", "aws", None, opts)
        assert settings.aws is not None, "settings.aws is set for the aws target"
        self._settings = settings
        self._aws: AwsSettings = settings.aws
        self._prefix = settings.resource_prefix.lower()
        self._namespace_name = settings.service_domain
        self._task_roles: dict[str, aws.iam.Role] = {}
        self._next_path_priority = _PATH_ROUTE_PRIORITY
        child = pulumi.ResourceOptions(parent=self)

        self.vpc_id, self.public_subnet_ids, self.private_subnet_ids = self._network(child)

        self.alb_security_group = aws.ec2.SecurityGroup(
            "alb",
            vpc_id=self.vpc_id,
            description="Load balancer: HTTPS (and HTTP, redirected) from the allowed networks",
            tags={"Name": f"{self._prefix}-alb"},
            opts=child,
        )
        for port in (443, 80):
            for index, cidr in enumerate(self._aws.ingress_cidrs):
                ipv6 = ipaddress.ip_network(cidr).version == 6
                aws.vpc.SecurityGroupIngressRule(
                    f"alb-{port}-{index}",
                    security_group_id=self.alb_security_group.id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    description=f"{'HTTPS' if port == 443 else 'HTTP, redirected to HTTPS'} from {cidr}",
                    cidr_ipv4=None if ipv6 else cidr,
                    cidr_ipv6=cidr if ipv6 else None,
                    opts=child,
                )
        # Every task carries this group; a service admits it on its own ports only.
        self.members_security_group = aws.ec2.SecurityGroup(
            "services",
            vpc_id=self.vpc_id,
            description="Member of the observability services (source for service-to-service rules)",
            tags={"Name": f"{self._prefix}-services"},
            opts=child,
        )

        self.cluster = aws.ecs.Cluster(
            "cluster",
            name=self._prefix,
            settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")],
            opts=child,
        )
        self.namespace = aws.servicediscovery.PrivateDnsNamespace(
            "namespace",
            name=self._namespace_name,
            vpc=self.vpc_id,
            description="Stable names of the observability services",
            opts=child,
        )

        self.load_balancer = aws.lb.LoadBalancer(
            "alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[self.alb_security_group.id],
            subnets=self.public_subnet_ids,
            drop_invalid_header_fields=True,
            opts=child,
        )
        self.https_listener = aws.lb.Listener(
            "https",
            load_balancer_arn=self.load_balancer.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=self._aws.certificate_arn,
            # Only requests for our domain reach a service (see the rules in run()).
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(
                    type="fixed-response",
                    fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                        content_type="text/plain", message_body="not found", status_code="404"
                    ),
                )
            ],
            opts=child,
        )
        # With a hosted zone the name resolves to the load balancer before anyone (the Grafana
        # provider included) uses it; without one the user points DNS at loadBalancerDnsName.
        self.dns_ready: pulumi.Output[str] = self.load_balancer.dns_name
        if self._aws.hosted_zone_id:
            record = aws.route53.Record(
                "domain",
                zone_id=self._aws.hosted_zone_id,
                name=self._aws.domain_name,
                type="A",
                aliases=[
                    aws.route53.RecordAliasArgs(
                        name=self.load_balancer.dns_name, zone_id=self.load_balancer.zone_id, evaluate_target_health=True
                    )
                ],
                opts=child,
            )
            self.dns_ready = record.fqdn
        self.http_listener = aws.lb.Listener(
            "http",
            load_balancer_arn=self.load_balancer.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(
                    type="redirect",
                    redirect=aws.lb.ListenerDefaultActionRedirectArgs(protocol="HTTPS", port="443", status_code="HTTP_301"),
                )
            ],
            opts=child,
        )
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "cluster": self.cluster.name,
                "loadBalancerDnsName": self.load_balancer.dns_name,
            }
        )

    # Network -------------------------------------------------------------------------------

    def _network(self, child: pulumi.ResourceOptions) -> tuple[pulumi.Input[str], list, list]:
        if self._aws.vpc_id:
            return self._aws.vpc_id, list(self._aws.public_subnet_ids), list(self._aws.private_subnet_ids)
        zones = self._aws.availability_zones
        names = aws.get_availability_zones_output(state="available").names
        vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=self._aws.vpc_cidr,
            # Cloud Map names and EFS mount target names resolve through the VPC's DNS.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": self._prefix},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, tags={"Name": self._prefix}, opts=child)
        public_routes = aws.ec2.RouteTable(
            "public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            tags={"Name": f"{self._prefix}-public"},
            opts=child,
        )
        public_cidrs, private_cidrs = subnet_cidrs(self._aws.vpc_cidr, zones)
        public, private, private_routes = [], [], []
        for index in range(zones):
            zone = names.apply(functools.partial(_nth, index))
            subnet = aws.ec2.Subnet(
                f"public-{index}",
                vpc_id=vpc.id,
                cidr_block=public_cidrs[index],
                availability_zone=zone,
                tags={"Name": f"{self._prefix}-public-{index}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"public-{index}", subnet_id=subnet.id, route_table_id=public_routes.id, opts=child)
            public.append(subnet)
        # NAT gives the tasks egress (image pulls, Secrets Manager, CloudWatch Logs); one is the
        # cheapest, one per zone keeps egress through a zone outage.
        nats = []
        for index in range(self._aws.nat_gateways):
            address = aws.ec2.Eip(f"nat-{index}", domain="vpc", tags={"Name": f"{self._prefix}-nat-{index}"}, opts=child)
            nats.append(
                aws.ec2.NatGateway(
                    f"nat-{index}",
                    allocation_id=address.id,
                    subnet_id=public[index].id,
                    tags={"Name": f"{self._prefix}-nat-{index}"},
                    opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[gateway])),
                )
            )
        for index in range(zones):
            routes = aws.ec2.RouteTable(
                f"private-{index}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[index % len(nats)].id)],
                tags={"Name": f"{self._prefix}-private-{index}"},
                opts=child,
            )
            subnet = aws.ec2.Subnet(
                f"private-{index}",
                vpc_id=vpc.id,
                cidr_block=private_cidrs[index],
                availability_zone=names.apply(functools.partial(_nth, index)),
                tags={"Name": f"{self._prefix}-private-{index}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"private-{index}", subnet_id=subnet.id, route_table_id=routes.id, opts=child)
            private.append(subnet)
            private_routes.append(routes)
        # Tempo's and Loki's S3 traffic bypasses the NAT (no per-GB charge): a free gateway endpoint.
        aws.ec2.VpcEndpoint(
            "s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{self._aws.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[r.id for r in private_routes],
            tags={"Name": f"{self._prefix}-s3"},
            opts=child,
        )
        self.vpc = vpc
        return vpc.id, [s.id for s in public], [s.id for s in private]

    # Platform protocol ---------------------------------------------------------------------

    def internal_host(self, service: str) -> str:
        return f"{service}.{self._namespace_name}"

    def external_url(self, port: Port) -> str:
        if port.public is None:
            raise ValueError(f"port {port.name!r} is internal on the aws target")
        # One HTTPS name serves every public port; gRPC clients want the port spelled out.
        return f"https://{self._aws.domain_name}" + (":443" if port.public.grpc else "")

    def object_store(self, service: str, retention_hours: int, parent: pulumi.Resource) -> pulumi.Output[ObjectStore]:
        retain = self._aws.retain_data
        child = pulumi.ResourceOptions(parent=parent)
        # With retainData, `pulumi destroy` leaves the bucket, its data and its guards in the account.
        kept = pulumi.ResourceOptions(parent=parent, retain_on_delete=retain, protect=retain)
        role = self._task_role(service, parent)
        bucket = aws.s3.Bucket(
            f"{service}-bucket",
            bucket_prefix=f"{self._prefix}-{service}-",
            force_destroy=not retain,
            tags={"Service": service},
            opts=kept,
        )
        aws.s3.BucketOwnershipControls(
            f"{service}-bucket",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=kept,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{service}-bucket",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=kept,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{service}-bucket",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
            opts=kept,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{service}-bucket",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="retention",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=lifecycle_days(retention_hours)),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=1
                    ),
                )
            ],
            opts=kept,
        )
        objects = bucket.arn.apply(lambda arn: f"{arn}/*")
        aws.s3.BucketPolicy(
            f"{service}-bucket",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, role.arn).apply(
                lambda args: _policy(
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [args[0], f"{args[0]}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                    {
                        # Data is read and written by the owning service's task role alone;
                        # administrators keep the bucket's management actions.
                        "Sid": "DataOnlyThroughTheServiceRole",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": ["s3:ListBucket", *OBJECT_ACTIONS],
                        "Resource": [args[0], f"{args[0]}/*"],
                        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": args[1]}},
                    },
                )
            ),
            opts=pulumi.ResourceOptions.merge(kept, pulumi.ResourceOptions(depends_on=[block])),
        )
        aws.iam.RolePolicy(
            f"{service}-bucket",
            role=role.id,
            policy=pulumi.Output.all(bucket.arn, objects).apply(
                lambda args: _policy(
                    {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": args[0]},
                    {"Sid": "Objects", "Effect": "Allow", "Action": list(OBJECT_ACTIONS), "Resource": args[1]},
                )
            ),
            opts=child,
        )
        region = self._aws.region
        return bucket.bucket.apply(lambda name: ObjectStore(bucket=name, region=region, endpoint=f"s3.{region}.amazonaws.com"))

    def metrics_store(
        self, writers: tuple[str, ...], readers: tuple[str, ...], retention_hours: int
    ) -> Optional[pulumi.Output[MetricsStore]]:
        if self._aws.metrics_backend != "amp":
            return None
        # With retainData, `pulumi destroy` leaves the workspace and its metrics in the account.
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=self._aws.retain_data, protect=self._aws.retain_data)
        workspace = aws.amp.Workspace("metrics", alias=self._prefix, tags={"Name": self._prefix}, opts=kept)
        aws.amp.WorkspaceConfiguration(
            "metrics",
            workspace_id=workspace.id,
            retention_period_in_days=-(-retention_hours // 24),
            opts=kept,
        )
        for role_names, actions, purpose in ((writers, METRICS_WRITE_ACTIONS, "write"), (readers, METRICS_READ_ACTIONS, "read")):
            for service in role_names:
                aws.iam.RolePolicy(
                    f"{service}-metrics-{purpose}",
                    role=self._task_role(service, self).id,
                    policy=workspace.arn.apply(functools.partial(_metrics_policy, purpose, tuple(actions))),
                    opts=pulumi.ResourceOptions(parent=self),
                )
        region = self._aws.region
        return workspace.prometheus_endpoint.apply(
            lambda endpoint: MetricsStore(
                remote_write_url=endpoint.rstrip("/") + "/api/v1/remote_write",
                query_url=endpoint.rstrip("/"),
                region=region,
            )
        )

    def run(
        self,
        spec: ServiceSpec,
        parent: pulumi.Resource,
        depends_on: tuple[RunningService, ...] = (),
    ) -> RunningService:
        child = pulumi.ResourceOptions(parent=parent)
        name = spec.name
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ecs/{self._prefix}/{name}",
            retention_in_days=self._aws.log_retention_days,
            opts=child,
        )
        secrets = []
        for secret in spec.secrets:
            stored = aws.secretsmanager.Secret(
                f"{name}-{secret.env.lower().replace('_', '-')}",
                name_prefix=f"{self._prefix}/{name}/{secret.env.lower()}-",
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
            assume_role_policy=_trust_ecs_tasks(),
            description=f"ECS agent for {name}: writes its logs, reads its own secrets",
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution",
            role=execution_role.id,
            policy=pulumi.Output.all(log_group.arn, *[s.arn for _, s in secrets]).apply(
                lambda arns: _policy(
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
                )
            ),
            opts=child,
        )
        task_role = self._task_role(name, parent)

        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=self.vpc_id,
            description=f"{name}: its own ports, from the other services and the load balancer",
            tags={"Name": f"{self._prefix}-{name}"},
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress",
            security_group_id=security_group.id,
            ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
            description="Image pulls, AWS APIs, the other services",
            opts=child,
        )
        for port in spec.ports:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-{port.name}-from-services",
                security_group_id=security_group.id,
                referenced_security_group_id=self.members_security_group.id,
                ip_protocol="tcp",
                from_port=port.container_port,
                to_port=port.container_port,
                description=f"{port.name} from the other services",
                opts=child,
            )

        volumes, mounts, file_systems = self._volumes(spec, security_group, task_role, parent)
        containers = self._containers(spec, log_group, secrets, mounts)
        # The config files travel inside the container definitions (the init container's
        # environment), so a changed config is a changed task definition: Pulumi registers a new
        # revision and the service rolls its tasks onto it. No image is built, nothing is fetched.
        task = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{self._prefix}-{name}",
            cpu=str(self._aws.cpu[name]),
            memory=str(spec.memory_mb),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture=self._aws.cpu_architecture
            ),
            volumes=volumes,
            container_definitions=pulumi.Output.json_dumps(containers),
            opts=child,
        )

        load_balancers, routes = self._routes(spec, security_group, child)
        registry = aws.servicediscovery.Service(
            f"{name}-discovery",
            name=name,
            dns_config=aws.servicediscovery.ServiceDnsConfigArgs(
                namespace_id=self.namespace.id,
                dns_records=[aws.servicediscovery.ServiceDnsConfigDnsRecordArgs(ttl=10, type="A")],
                routing_policy="MULTIVALUE",
            ),
            # ECS reports task health to Cloud Map: stopped or unhealthy tasks leave the name.
            health_check_custom_config=aws.servicediscovery.ServiceHealthCheckCustomConfigArgs(),
            opts=child,
        )
        minimum, maximum = self._task_counts(spec)
        service = aws.ecs.Service(
            f"{name}-service",
            name=name,
            cluster=self.cluster.arn,
            task_definition=task.arn,
            desired_count=minimum,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=self.private_subnet_ids,
                security_groups=[security_group.id, self.members_security_group.id],
                assign_public_ip=False,
            ),
            service_registries=aws.ecs.ServiceServiceRegistriesArgs(registry_arn=registry.arn),
            load_balancers=load_balancers or None,
            health_check_grace_period_seconds=120 if load_balancers else None,
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
            opts=pulumi.ResourceOptions(
                parent=parent,
                depends_on=[*routes, *file_systems, *[r for d in depends_on for r in d.resources]],
                # Autoscaling owns the count once the service exists.
                ignore_changes=["desiredCount"] if maximum > minimum else None,
            ),
        )
        if maximum > minimum:
            self._autoscale(name, service, minimum, maximum, child)
        external_urls = {
            p.name: resolved_when(pulumi.Output.all(service.id, self.dns_ready), self.external_url(p))
            for p in spec.ports
            if p.public is not None
        }
        return RunningService(
            name=name,
            internal_host=self.internal_host(name),
            ready=service.id.apply(lambda _: name),
            external_urls=external_urls,
            resources=(service,),
        )

    # Pieces of a service -------------------------------------------------------------------

    def _task_role(self, service: str, parent: pulumi.Resource) -> aws.iam.Role:
        """The identity the service's program runs as; grants are added where a resource is made."""
        if service not in self._task_roles:
            self._task_roles[service] = aws.iam.Role(
                f"{service}-task",
                assume_role_policy=_trust_ecs_tasks(),
                description=f"The {service} program: only its own data",
                opts=pulumi.ResourceOptions(parent=parent),
            )
        return self._task_roles[service]

    def _task_counts(self, spec: ServiceSpec) -> tuple[int, int]:
        if not spec.stateless:
            return 1, 1
        if spec.name == "collector":
            return self._aws.collector_min_tasks, self._aws.collector_max_tasks
        return 1, 1

    def _volumes(
        self, spec: ServiceSpec, security_group: aws.ec2.SecurityGroup, task_role: aws.iam.Role, parent: pulumi.Resource
    ) -> tuple[list, list[dict[str, Any]], list[pulumi.Resource]]:
        """Config directories and owned data volumes live on the task's ephemeral storage (the init
        container writes or hands them over); shared volumes on EFS. Other data volumes stay in the
        container's writable layer, also task storage: local disk, as a TSDB needs, gone with the task."""
        volumes: list[aws.ecs.TaskDefinitionVolumeArgs] = []
        mounts: list[dict[str, Any]] = []
        for directory in sorted({str(PurePosixPath(f.path).parent) for f in spec.files}):
            volume = "config" + directory.replace("/", "-")
            volumes.append(aws.ecs.TaskDefinitionVolumeArgs(name=volume))
            mounts.append({"sourceVolume": volume, "containerPath": directory, "readOnly": True})
        file_systems: list[pulumi.Resource] = []
        for data in spec.volumes:
            volume = f"{spec.name}-{data.name}"
            if data.shared_filesystem:
                file_system, access_point, mount_targets = self._file_system(spec.name, data, security_group, task_role, parent)
                volumes.append(
                    aws.ecs.TaskDefinitionVolumeArgs(
                        name=volume,
                        efs_volume_configuration=aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationArgs(
                            file_system_id=file_system.id,
                            transit_encryption="ENABLED",
                            authorization_config=aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationAuthorizationConfigArgs(
                                access_point_id=access_point.id, iam="ENABLED"
                            ),
                        ),
                    )
                )
                file_systems.extend(mount_targets)
            elif data.owner:
                volumes.append(aws.ecs.TaskDefinitionVolumeArgs(name=volume))
            else:
                continue
            mounts.append({"sourceVolume": volume, "containerPath": data.path, "readOnly": False})
        return volumes, mounts, file_systems

    def _file_system(
        self,
        service: str,
        data: DataVolume,
        service_group: aws.ec2.SecurityGroup,
        task_role: aws.iam.Role,
        parent: pulumi.Resource,
    ) -> tuple[aws.efs.FileSystem, aws.efs.AccessPoint, Sequence[pulumi.Resource]]:
        child = pulumi.ResourceOptions(parent=parent)
        kept = pulumi.ResourceOptions(parent=parent, retain_on_delete=self._aws.retain_data, protect=self._aws.retain_data)
        name = f"{service}-{data.name}"
        file_system = aws.efs.FileSystem(
            name,
            encrypted=True,
            tags={"Name": f"{self._prefix}-{name}"},
            opts=kept,
        )
        aws.efs.FileSystemPolicy(
            name,
            file_system_id=file_system.id,
            policy=file_system.arn.apply(
                lambda arn: _policy(
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "*",
                        "Resource": arn,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                )
            ),
            opts=kept,
        )
        uid, gid = (int(part) for part in (data.owner or "0:0").split(":"))
        access_point = aws.efs.AccessPoint(
            name,
            file_system_id=file_system.id,
            # Every request through it acts as the program's own user, in its own directory.
            posix_user=aws.efs.AccessPointPosixUserArgs(uid=uid, gid=gid),
            root_directory=aws.efs.AccessPointRootDirectoryArgs(
                path=f"/{name}",
                creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(owner_uid=uid, owner_gid=gid, permissions="0750"),
            ),
            tags={"Name": f"{self._prefix}-{name}"},
            opts=kept,
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-efs",
            vpc_id=self.vpc_id,
            description=f"EFS of {service}: NFS from {service} only",
            tags={"Name": f"{self._prefix}-{name}-efs"},
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-efs-nfs",
            security_group_id=group.id,
            referenced_security_group_id=service_group.id,
            ip_protocol="tcp",
            from_port=2049,
            to_port=2049,
            description=f"NFS from {service}",
            opts=child,
        )
        # Mount targets are not retained: they hold no data and would block deleting the subnets.
        mount_targets = [
            aws.efs.MountTarget(f"{name}-{index}", file_system_id=file_system.id, subnet_id=subnet, security_groups=[group.id], opts=child)
            for index, subnet in enumerate(self.private_subnet_ids)
        ]
        aws.iam.RolePolicy(
            f"{name}-efs",
            role=task_role.id,
            policy=pulumi.Output.all(file_system.arn, access_point.arn).apply(
                lambda arns: _policy(
                    {
                        "Sid": "MountThroughTheAccessPoint",
                        "Effect": "Allow",
                        "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                        "Resource": arns[0],
                        "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": arns[1]}},
                    }
                )
            ),
            opts=child,
        )
        return file_system, access_point, mount_targets

    def _containers(
        self,
        spec: ServiceSpec,
        log_group: aws.cloudwatch.LogGroup,
        secrets: list[tuple[str, aws.secretsmanager.Secret]],
        mounts: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        def logging(stream_prefix: str) -> dict[str, Any]:
            return {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group.name,
                    "awslogs-region": self._aws.region,
                    "awslogs-stream-prefix": stream_prefix,
                },
            }

        main: dict[str, Any] = {
            "name": spec.name,
            "image": spec.image,
            "essential": True,
            "portMappings": [{"name": p.name, "containerPort": p.container_port, "protocol": "tcp"} for p in spec.ports],
            "environment": [{"name": key, "value": value} for key, value in sorted(spec.env.items())],
            # Secrets Manager values, injected by the ECS agent at start: never in the task definition.
            "secrets": [{"name": env, "valueFrom": stored.arn} for env, stored in secrets],
            "mountPoints": mounts,
            "logConfiguration": logging(spec.name),
            # The whole task's memory: the collector's memory_limiter reads this limit.
            "memory": spec.memory_mb,
            # Time to flush (Loki's WAL, the collector's queues) before SIGKILL; 120 s is Fargate's most.
            "stopTimeout": 120,
            # A crashed program restarts in place, keeping what it wrote to task storage (the
            # collector's queue); a new task would start empty.
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
        owned = [v for v in spec.volumes if v.owner and not v.shared_filesystem]
        steps += [f"chown -R {shlex.quote(v.owner or '')} {shlex.quote(v.path)}" for v in owned]
        if not steps:
            return [main]
        owned_paths = {v.path for v in owned}
        writer = {
            "name": CONFIG_CONTAINER,
            "image": self._settings.utility_image,
            "essential": False,
            "command": ["sh", "-c", "set -e; " + "; ".join(steps)],
            "environment": [{"name": f"CONFIG_FILE_{index}", "value": f.content} for index, f in enumerate(spec.files)],
            "mountPoints": [
                {**m, "readOnly": False}
                for m in mounts
                if m["sourceVolume"].startswith("config-") or m["containerPath"] in owned_paths
            ],
            "logConfiguration": logging(CONFIG_CONTAINER),
        }
        main["dependsOn"] = [{"containerName": CONFIG_CONTAINER, "condition": "SUCCESS"}]
        return [writer, main]

    def _routes(
        self, spec: ServiceSpec, security_group: aws.ec2.SecurityGroup, child: pulumi.ResourceOptions
    ) -> tuple[list[aws.ecs.ServiceLoadBalancerArgs], Sequence[pulumi.Resource]]:
        load_balancers, routes = [], []
        for port in spec.ports:
            route: Optional[PublicRoute] = port.public
            if route is None:
                continue
            health_port = route.health_port or port.container_port
            for allowed in sorted({port.container_port, health_port}):
                aws.vpc.SecurityGroupIngressRule(
                    f"{spec.name}-{port.name}-{allowed}-from-alb",
                    security_group_id=security_group.id,
                    referenced_security_group_id=self.alb_security_group.id,
                    ip_protocol="tcp",
                    from_port=allowed,
                    to_port=allowed,
                    description=f"{port.name} (port {allowed}) from the load balancer",
                    opts=child,
                )
                aws.vpc.SecurityGroupEgressRule(
                    f"alb-to-{spec.name}-{port.name}-{allowed}",
                    security_group_id=self.alb_security_group.id,
                    referenced_security_group_id=security_group.id,
                    ip_protocol="tcp",
                    from_port=allowed,
                    to_port=allowed,
                    description=f"to {spec.name} {port.name} (port {allowed})",
                    opts=child,
                )
            target_group = aws.lb.TargetGroup(
                f"{spec.name}-{port.name}",
                port=port.container_port,
                protocol="HTTP",
                # ALB speaks gRPC (HTTP/2) to the target only in a GRPC target group.
                protocol_version="GRPC" if route.grpc else "HTTP1",
                target_type="ip",
                vpc_id=self.vpc_id,
                deregistration_delay=30,
                health_check=self._health_check(route, port, health_port),
                opts=child,
            )
            if route.paths:
                priority = self._next_path_priority
                self._next_path_priority += 10
            else:
                priority = _DEFAULT_ROUTE_PRIORITY
            rule = aws.lb.ListenerRule(
                f"{spec.name}-{port.name}",
                listener_arn=self.https_listener.arn,
                priority=priority,
                actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=target_group.arn)],
                conditions=[
                    aws.lb.ListenerRuleConditionArgs(
                        host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(values=[self._aws.domain_name])
                    ),
                    aws.lb.ListenerRuleConditionArgs(
                        path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(route.paths) or ["/*"])
                    ),
                ],
                opts=child,
            )
            routes.append(rule)
            load_balancers.append(
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=target_group.arn, container_name=spec.name, container_port=port.container_port
                )
            )
        return load_balancers, routes

    @staticmethod
    def _health_check(route: PublicRoute, port: Port, health_port: int) -> aws.lb.TargetGroupHealthCheckArgs:
        if route.grpc:
            # A gRPC target group checks with a gRPC call (default path /AWS.ALB/healthcheck): any
            # gRPC status proves the server answers (an unknown service gets 12, Unimplemented).
            # The collector's readiness is checked on its health port by the OTLP/HTTP group.
            return aws.lb.TargetGroupHealthCheckArgs(
                enabled=True, protocol="HTTP", matcher="0-99", interval=15, healthy_threshold=2, unhealthy_threshold=3
            )
        return aws.lb.TargetGroupHealthCheckArgs(
            enabled=True,
            protocol="HTTP",
            path=route.health_path,
            port=str(health_port),
            matcher="200",
            interval=15,
            healthy_threshold=2,
            unhealthy_threshold=3,
        )

    def _autoscale(self, name: str, service: aws.ecs.Service, minimum: int, maximum: int, child: pulumi.ResourceOptions) -> None:
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", self.cluster.name, "/", service.name),
            min_capacity=minimum,
            max_capacity=maximum,
            opts=child,
        )
        aws.appautoscaling.Policy(
            f"{name}-cpu",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                target_value=60,
                predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type="ECSServiceAverageCPUUtilization"
                ),
                scale_out_cooldown=60,
                scale_in_cooldown=300,
            ),
            opts=child,
        )
