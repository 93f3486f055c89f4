"""Runs any ServiceSpec as an ECS Fargate service behind one HTTPS load balancer.

AwsPlatform composes the pieces, each a component of its own: the Network (created or given VPC),
the Edge (load balancer, listeners, DNS, routes), one FargateService per service, a ServiceBucket
per service that keeps data in S3, a ServiceFileSystem for data that must outlive a task (EFS),
ManagedPrometheus (AMP), and BrowserRateLimit (WAF) where browserRateLimit is set. Shared: the
cluster and the Cloud Map namespace; the rules between services' security groups (EastWest: each
port from the services its spec names as clients) are added here, as both groups come to exist.
"""

from __future__ import annotations

import posixpath
from typing import Optional

import pulumi
import pulumi_aws as aws

from components import migrations
from components.platforms.aws.edge import Edge, EdgeArgs
from components.platforms.aws.firewall import EastWest
from components.platforms.aws.iam import ROLE_TYPE, TaskRoles, grant_cloudwatch_read, task_role_name
from components.platforms.aws.metrics_store import ManagedPrometheus, ManagedPrometheusArgs
from components.platforms.aws.network import Network, NetworkArgs, zones_for
from components.platforms.aws.service import Cluster, FargateService, FargateServiceArgs
from components.platforms.aws.storage import ServiceBucket, ServiceBucketArgs
from components.platforms.aws.waf import BrowserRateLimit
from components.platforms.facts import AwsFacts
from components.platforms.spec import MetricsStore, ObjectStore, RunningService, ServiceSpec, SpecError, resolved_when
from components.settings import AwsSettings, Settings


class AwsPlatform(pulumi.ComponentResource):
    """Network, cluster, load balancer and service discovery; run() adds one Fargate service.

    Honours every ServiceSpec field but host_mounts (a task owns no host), and asks each spec for
    its CPU (a Fargate task size). Port.clients: a port admits only the services named there."""

    _TYPE = "observability:platform:Aws"

    def __init__(self, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        assert settings.aws is not None, "settings.aws is set for the aws target"
        # Asked of AWS before the first resource: too many zones are refused while nothing exists.
        self._zones = () if settings.aws.vpc_id else zones_for(settings.aws.region, settings.aws.availability_zones)
        super().__init__(self._TYPE, "aws", None, opts)
        self._settings = settings
        self._aws: AwsSettings = settings.aws
        self._prefix = settings.resource_prefix.lower()
        self._namespace_name = settings.service_domain
        self._roles = TaskRoles(settings.aws.region)
        self.facts = AwsFacts(settings)
        child = pulumi.ResourceOptions(parent=self)
        self.network = self._network(child)
        self.vpc_id = self.network.vpc_id
        self.edge = self._edge(child)
        self.load_balancer = self.edge.load_balancer
        # Which service may reach which port of another (Port.clients).
        self._east_west = EastWest()
        self.cluster = aws.ecs.Cluster(
            "cluster",
            name=self.facts.cloud_metrics_cluster,
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
        self._shared = self._cluster_shared()
        self.register_outputs({"vpcId": self.vpc_id, "cluster": self.cluster.name, "loadBalancerDnsName": self.load_balancer.dns_name})

    def _network(self, child: pulumi.ResourceOptions) -> Network:
        a = self._aws
        return Network(
            "network",
            NetworkArgs(
                prefix=self._prefix,
                region=a.region,
                vpc_cidr=a.vpc_cidr,
                availability_zones=a.availability_zones,
                zone_names=self._zones,
                nat_gateways=a.nat_gateways,
                task_subnets=a.task_subnets,
                vpc_id=a.vpc_id,
                public_subnet_ids=tuple(a.public_subnet_ids),
                private_subnet_ids=tuple(a.private_subnet_ids),
                flow_logs_days=a.log_retention_days if a.vpc_flow_logs else None,
            ),
            opts=child,
        )

    def _edge(self, child: pulumi.ResourceOptions) -> Edge:
        a = self._aws
        return Edge(
            "edge",
            EdgeArgs(
                prefix=self._prefix,
                vpc_id=self.vpc_id,
                public_subnet_ids=self.network.public_subnet_ids,
                domain_name=a.domain_name,
                certificate_arn=a.certificate_arn,
                ingress_cidrs=tuple(a.ingress_cidrs),
                people_cidrs=tuple(a.grafana_ingress_cidrs),
                hosted_zone_id=a.hosted_zone_id,
                access_log_days=a.alb_access_log_days,
                region=a.region,
                retain_data=a.retain_data,
            ),
            opts=child,
        )

    def _cluster_shared(self) -> Cluster:
        """What run() hands every FargateService."""
        a = self._aws
        return Cluster(
            prefix=self._prefix,
            region=a.region,
            vpc_id=self.vpc_id,
            task_subnet_ids=self.network.task_subnet_ids,
            assign_public_ip=a.task_subnets == "public",
            cluster=self.cluster,
            namespace=self.namespace,
            edge=self.edge,
            execution_trust=self._roles.execution_trust,
            log_retention_days=a.log_retention_days,
            cpu_architecture=a.cpu_architecture,
            utility_image=self._settings.utility_image,
            retain_data=a.retain_data,
            file_system_backups=a.file_system_backups,
        )

    # Platform protocol ---------------------------------------------------------------------

    def outputs(self) -> dict[str, pulumi.Input[str]]:
        # Where domainName must point when the stack manages no DNS record.
        return {"loadBalancerDnsName": self.load_balancer.dns_name}

    def object_store(self, service: str, retention_hours: int, parent: pulumi.Resource) -> pulumi.Output[ObjectStore]:
        bucket = ServiceBucket(
            f"{service}-bucket",
            ServiceBucketArgs(
                service=service,
                prefix=self._prefix,
                retention_hours=retention_hours,
                task_role=self._roles.of(service, self._role_parent(service, parent)),
                retain=self._aws.retain_data,
                versioning=self._aws.bucket_versioning,
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return bucket.bucket_name.apply(self.facts.object_store)

    def metrics_store(
        self, writers: tuple[str, ...], readers: tuple[str, ...], retention_hours: int
    ) -> Optional[pulumi.Output[MetricsStore]]:
        if self._aws.metrics_backend != "amp":
            return None
        workspace = ManagedPrometheus(
            "metrics",
            ManagedPrometheusArgs(
                prefix=self._prefix,
                retention_hours=retention_hours,
                writers={service: self._roles.of(service, self) for service in writers},
                readers={service: self._roles.of(service, self) for service in readers},
                retain=self._aws.retain_data,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return workspace.endpoint.apply(self._metrics_store)

    def cloud_metrics(self, readers: tuple[str, ...]) -> Optional[str]:
        """CloudWatch (Container Insights is on for the cluster): the readers' roles may read it."""
        for service in readers:
            grant_cloudwatch_read(service, self._roles.of(service, self), parent=self)
        return self._aws.region

    def run(self, spec: ServiceSpec, parent: pulumi.Resource, depends_on: tuple[RunningService, ...] = ()) -> RunningService:
        name = spec.name
        cpu_units = _refuse_what_fargate_cannot_do(spec)
        self._rate_limit_anonymous_routes(spec)
        minimum, maximum = (spec.scaling.min_tasks, spec.scaling.max_tasks) if spec.scaling else (1, 1)
        fargate = FargateService(
            name,
            FargateServiceArgs(
                spec=spec,
                cluster=self._shared,
                cpu_units=cpu_units,
                task_role=self._roles.of(name, parent),
                min_tasks=minimum,
                max_tasks=maximum,
                depends_on=[r for d in depends_on for r in d.resources],
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        self._east_west.add(name, fargate.security_group, fargate, spec.ports)
        service = fargate.service
        external_urls = {
            p.name: resolved_when(pulumi.Output.all(service.id, self.edge.dns_ready), self.facts.external_url(p))
            for p in spec.ports
            if p.public is not None
        }
        return RunningService(
            name=name,
            internal_host=self.facts.internal_host(name),
            external_urls=external_urls,
            resources=(service,),
        )

    def _role_parent(self, service: str, parent: pulumi.Resource) -> pulumi.Resource:
        """Where the service's role is made: the asking component, unless the migrations table keeps
        the role under the platform (deployed stacks keep the same role)."""
        kept = migrations.kept_under(ROLE_TYPE, task_role_name(service), self._aws.metrics_backend)
        return self if kept == self._TYPE else parent

    def _metrics_store(self, endpoint: str) -> MetricsStore:
        store = self.facts.metrics_store(endpoint)
        assert store is not None, "the workspace exists only where metricsBackend is amp"
        return store

    def _rate_limit_anonymous_routes(self, spec: ServiceSpec) -> None:
        """A route that takes data without credentials is rate-limited per client address, where
        browserRateLimit is set (one web ACL: the stack has one such route)."""
        routes = [p.public for p in spec.ports if p.public is not None and p.public.anonymous]
        if routes and self._aws.browser_rate_limit:
            # The directory every path of those routes is under (its requests, and no others).
            prefix = posixpath.commonpath([path for route in routes for path in route.paths]) + "/"
            BrowserRateLimit("browser-rate-limit", self.load_balancer.arn, self._aws.browser_rate_limit, prefix, self._prefix,
                             log_days=self._aws.log_retention_days if self._aws.waf_logging else None,
                             opts=pulumi.ResourceOptions(parent=self))


def _refuse_what_fargate_cannot_do(spec: ServiceSpec) -> int:
    """The spec's CPU units, once the spec asks for nothing a Fargate task cannot give."""
    if spec.host_mounts:
        raise SpecError("aws", spec, "host_mounts", "a Fargate task owns no host to mount from")
    if spec.cpu_units is None:
        raise SpecError("aws", spec, "cpu_units", "every Fargate task is given a CPU size")
    if spec.scaling is not None and not spec.stateless:
        raise SpecError("aws", spec, "scaling", "several tasks need interchangeable ones (stateless)")
    return spec.cpu_units
