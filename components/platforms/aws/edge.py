"""The stack's one public entry point: the HTTPS load balancer, its listeners, the domain's DNS
record, and the routes (target group and listener rule) that publish a service's port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.access_logs import AccessLogBucket, AccessLogBucketArgs
from components.platforms.aws.firewall import Rule, allow_between, allow_tcp
from components.platforms.spec import PublicRoute, ServiceSpec

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Traffic on the load balancer reaches a route by these priorities: path routes first.
_PATH_ROUTE_PRIORITY = 100
_DEFAULT_ROUTE_PRIORITY = 50000


@dataclass(frozen=True)
class EdgeArgs:
    prefix: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    domain_name: str
    certificate_arn: str
    ingress_cidrs: tuple[str, ...]
    # Who may reach routes for people (Grafana); empty: the same as ingress_cidrs.
    people_cidrs: tuple[str, ...] = ()
    # A Route 53 zone the stack writes the domain's record into; None: the user points DNS.
    hosted_zone_id: Optional[str] = None
    # Days the load balancer's access logs are kept in their own bucket; 0: no access logs.
    access_log_days: int = 0
    region: str = ""
    retain_data: bool = True


@dataclass(frozen=True)
class PublishedPorts:
    """What a service needs to take traffic from the edge."""

    load_balancers: list[aws.ecs.ServiceLoadBalancerArgs]
    # The listener rules: the service starts only once its routes exist.
    routes: Sequence[pulumi.Resource]


class Edge(pulumi.ComponentResource):
    def __init__(self, name: str, args: EdgeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:Edge", name, None, opts)
        self._args = args
        self._next_path_priority = _PATH_ROUTE_PRIORITY
        self._child = pulumi.ResourceOptions(parent=self)
        self.security_group = self._security_group()
        self.load_balancer = self._load_balancer(self._access_logs())
        self.https_listener = self._https_listener()
        # With a hosted zone the name resolves to the load balancer before anyone (the Grafana
        # provider included) uses it; without one the user points DNS at loadBalancerDnsName.
        self.dns_ready: pulumi.Output[str] = self._dns_record() if args.hosted_zone_id else self.load_balancer.dns_name
        self.http_listener = self._http_listener()
        self.register_outputs({"loadBalancerDnsName": self.load_balancer.dns_name, "httpsListener": self.https_listener.arn})

    def _security_group(self) -> aws.ec2.SecurityGroup:
        args = self._args
        group = aws.ec2.SecurityGroup(
            "alb",
            vpc_id=args.vpc_id,
            description="Load balancer: HTTPS (and HTTP, redirected) from the allowed networks",
            tags={"Name": f"{args.prefix}-alb"},
            opts=self._child,
        )
        # The load balancer's group admits both lists; the people's routes check their own (publish()).
        admitted = list(dict.fromkeys((*args.ingress_cidrs, *args.people_cidrs)))
        for port in (443, 80):
            for index, cidr in enumerate(admitted):
                # IPv4 only, as the load balancer listens (the settings refuse IPv6 networks).
                allow_tcp(
                    f"alb-{port}-{index}",
                    group=group,
                    direction="in",
                    ports=port,
                    cidr=cidr,
                    description=f"{'HTTPS' if port == 443 else 'HTTP, redirected to HTTPS'} from {cidr}",
                    opts=self._child,
                )
        return group

    def _access_logs(self) -> Optional[AccessLogBucket]:
        args = self._args
        if not args.access_log_days:
            return None
        return AccessLogBucket(
            "alb-access-logs",
            AccessLogBucketArgs(prefix=args.prefix, region=args.region, expire_days=args.access_log_days, retain=args.retain_data),
            opts=self._child,
        )

    def _load_balancer(self, access_logs: Optional[AccessLogBucket]) -> aws.lb.LoadBalancer:
        return aws.lb.LoadBalancer(
            "alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[self.security_group.id],
            subnets=list(self._args.public_subnet_ids),
            drop_invalid_header_fields=True,
            access_logs=access_logs.load_balancer_logs() if access_logs else None,
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(depends_on=[access_logs.policy] if access_logs else [])),
        )

    def _https_listener(self) -> aws.lb.Listener:
        return aws.lb.Listener(
            "https",
            load_balancer_arn=self.load_balancer.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=self._args.certificate_arn,
            # Only requests for our domain reach a service (publish()'s rules match the host).
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(
                    type="fixed-response",
                    fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                        content_type="text/plain", message_body="not found", status_code="404"
                    ),
                )
            ],
            opts=self._child,
        )

    def _dns_record(self) -> pulumi.Output[str]:
        """The domain's alias record in the hosted zone; its name once it exists."""
        record = aws.route53.Record(
            "domain",
            zone_id=self._args.hosted_zone_id,
            name=self._args.domain_name,
            type="A",
            aliases=[
                aws.route53.RecordAliasArgs(name=self.load_balancer.dns_name, zone_id=self.load_balancer.zone_id, evaluate_target_health=True)
            ],
            opts=self._child,
        )
        return record.fqdn

    def _http_listener(self) -> aws.lb.Listener:
        return aws.lb.Listener(
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
            opts=self._child,
        )

    def publish(self, spec: ServiceSpec, security_group: aws.ec2.SecurityGroup, child: pulumi.ResourceOptions) -> PublishedPorts:
        """A target group and a listener rule (host and path) per public port of the service, and the
        security-group rules between the load balancer and the service on that port (and its health
        port). They belong to the service (`child`), so they come and go with it."""
        load_balancers, routes = [], []
        # A port opens once per service: two public ports checked on one health port would
        # otherwise ask for the same rule twice, which EC2 refuses as a duplicate.
        opened: set[int] = set()
        for port in spec.ports:
            route: Optional[PublicRoute] = port.public
            if route is None:
                continue
            health_port = route.health_port or port.container_port
            for allowed in sorted({port.container_port, health_port} - opened):
                opened.add(allowed)
                allow_between(
                    self.security_group, security_group, ports=allowed,
                    inbound=Rule(f"{spec.name}-{port.name}-{allowed}-from-alb", f"{port.name} (port {allowed}) from the load balancer"),
                    outbound=Rule(f"alb-to-{spec.name}-{port.name}-{allowed}", f"to {spec.name} {port.name} (port {allowed})"),
                    opts=child,
                )
            target_group = aws.lb.TargetGroup(
                f"{spec.name}-{port.name}",
                port=port.container_port,
                protocol="HTTP",
                # ALB speaks gRPC (HTTP/2) to the target only in a GRPC target group.
                protocol_version="GRPC" if route.grpc else "HTTP1",
                target_type="ip",
                vpc_id=self._args.vpc_id,
                deregistration_delay=30,
                health_check=target_health_check(route, health_port),
                opts=child,
            )
            routes.append(self._listener_rule(f"{spec.name}-{port.name}", route, target_group, child))
            load_balancers.append(
                aws.ecs.ServiceLoadBalancerArgs(target_group_arn=target_group.arn, container_name=spec.name, container_port=port.container_port)
            )
        return PublishedPorts(load_balancers=load_balancers, routes=routes)

    def _listener_rule(self, name: str, route: PublicRoute, target_group: aws.lb.TargetGroup, child: pulumi.ResourceOptions) -> aws.lb.ListenerRule:
        """Forwards the domain's requests on the route's paths (all, if it names none) to the target group."""
        if route.paths:
            priority = self._next_path_priority
            self._next_path_priority += 10
        else:
            priority = _DEFAULT_ROUTE_PRIORITY
        conditions = [
            aws.lb.ListenerRuleConditionArgs(host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(values=[self._args.domain_name])),
            aws.lb.ListenerRuleConditionArgs(path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(route.paths) or ["/*"])),
        ]
        if route.for_people and self._args.people_cidrs:
            # Only people's networks (at most three: a condition compares three values, a rule
            # five); anyone else gets the listener's 404.
            conditions.append(
                aws.lb.ListenerRuleConditionArgs(source_ip=aws.lb.ListenerRuleConditionSourceIpArgs(values=list(self._args.people_cidrs)))
            )
        return aws.lb.ListenerRule(
            name,
            listener_arn=self.https_listener.arn,
            priority=priority,
            actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=target_group.arn)],
            conditions=conditions,
            opts=child,
        )


def target_health_check(route: PublicRoute, health_port: int) -> aws.lb.TargetGroupHealthCheckArgs:
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
