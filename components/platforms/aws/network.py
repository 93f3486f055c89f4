"""The network the stack runs in: a VPC it creates (public subnets per zone; with tasks in private
subnets also those and NAT; an S3 gateway endpoint), or subnets the user gives."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.flow_logs import vpc_flow_logs
from components.settings import SettingsError


@dataclass(frozen=True)
class NetworkArgs:
    prefix: str
    region: str
    vpc_cidr: str
    availability_zones: int
    nat_gateways: int
    # The region's available zones (zones_for): the created VPC uses the first availability_zones.
    zone_names: tuple[str, ...] = ()
    # "public": the tasks run in the public subnets with public IPs, and no private subnet or NAT
    # gateway exists; "private": in the private subnets, egress through NAT.
    task_subnets: str = "private"
    # Given: use this VPC and its subnets, create nothing.
    vpc_id: Optional[str] = None
    public_subnet_ids: tuple[str, ...] = ()
    private_subnet_ids: tuple[str, ...] = ()
    # vpcFlowLogs: the VPC's flow logs are kept this many days (the stack's log retention); None: none.
    flow_logs_days: Optional[int] = None


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """Public subnets from the first half of the range, private from the second, each /4 longer
    than the VPC (16 subnets; room for up to 8 zones of each kind)."""
    network = ipaddress.IPv4Network(vpc_cidr)
    blocks = [str(b) for b in network.subnets(prefixlen_diff=4)]
    return blocks[:zones], blocks[8 : 8 + zones]


def zones_for(region: str, availability_zones: int) -> tuple[str, ...]:
    """The region's available zones, asked of AWS before anything is created; a stack asking for
    more than the region has is refused, naming the key, instead of failing half-way."""
    names = tuple(aws.get_availability_zones(state="available").names)
    if availability_zones > len(names):
        raise SettingsError(
            [
                f"availabilityZones: {availability_zones} asked, but {region} has {len(names)} available zones ({', '.join(names)}); "
                f"allowed: 2 to {len(names)} in this region"
            ]
        )
    return names


def _subnet(
    kind: str, index: int, vpc: aws.ec2.Vpc, cidr: str, zone: str, routes: aws.ec2.RouteTable, prefix: str, child: pulumi.ResourceOptions,
) -> aws.ec2.Subnet:
    """The created VPC's `kind` ("public", "private") subnet in the zone, on its route table."""
    name = f"{kind}-{index}"
    subnet = aws.ec2.Subnet(name, vpc_id=vpc.id, cidr_block=cidr, availability_zone=zone, tags={"Name": f"{prefix}-{name}"}, opts=child)
    aws.ec2.RouteTableAssociation(name, subnet_id=subnet.id, route_table_id=routes.id, opts=child)
    return subnet


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Input[str]
    public_subnet_ids: list[pulumi.Input[str]]
    private_subnet_ids: list[pulumi.Input[str]]
    # Where the tasks (and EFS mount targets) go.
    task_subnet_ids: list[pulumi.Input[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:Network", name, None, opts)
        if args.vpc_id:
            self.vpc_id = args.vpc_id
            self.public_subnet_ids, self.private_subnet_ids = list(args.public_subnet_ids), list(args.private_subnet_ids)
        else:
            self._create(args, pulumi.ResourceOptions(parent=self))
        self.task_subnet_ids = self.public_subnet_ids if args.task_subnets == "public" else self.private_subnet_ids
        if args.flow_logs_days is not None:
            # The stack's VPC, created or given.
            vpc_flow_logs(self.vpc_id, args.prefix, args.region, args.flow_logs_days, parent=self)
        self.register_outputs({"vpcId": self.vpc_id, "publicSubnetIds": self.public_subnet_ids, "privateSubnetIds": self.private_subnet_ids})

    def _create(self, args: NetworkArgs, child: pulumi.ResourceOptions) -> None:
        prefix, zones, names = args.prefix, args.availability_zones, args.zone_names
        assert len(names) >= zones, "zones_for refused the stack before anything was created"
        vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=args.vpc_cidr,
            # Cloud Map names and EFS mount target names resolve through the VPC's DNS.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": prefix},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, tags={"Name": prefix}, opts=child)
        public_routes = aws.ec2.RouteTable(
            "public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            tags={"Name": f"{prefix}-public"},
            opts=child,
        )
        public_cidrs, private_cidrs = subnet_cidrs(args.vpc_cidr, zones)
        public, private, private_routes = [], [], []
        for index in range(zones):
            public.append(_subnet("public", index, vpc, public_cidrs[index], names[index], public_routes, prefix, child))
        self.vpc_id = vpc.id
        self.public_subnet_ids, self.private_subnet_ids = [s.id for s in public], []
        if args.task_subnets == "public":
            # Tasks with public IPs reach registries and AWS APIs through the internet gateway.
            self._s3_endpoint(args, vpc, [public_routes], child)
            return
        # NAT gives the tasks egress (image pulls, Secrets Manager, CloudWatch Logs); one is the
        # cheapest, one per zone keeps egress through a zone outage.
        nats = []
        for index in range(args.nat_gateways):
            address = aws.ec2.Eip(f"nat-{index}", domain="vpc", tags={"Name": f"{prefix}-nat-{index}"}, opts=child)
            nats.append(
                aws.ec2.NatGateway(
                    f"nat-{index}",
                    allocation_id=address.id,
                    subnet_id=public[index].id,
                    tags={"Name": f"{prefix}-nat-{index}"},
                    opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[gateway])),
                )
            )
        for index in range(zones):
            routes = aws.ec2.RouteTable(
                f"private-{index}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[index % len(nats)].id)],
                tags={"Name": f"{prefix}-private-{index}"},
                opts=child,
            )
            private.append(_subnet("private", index, vpc, private_cidrs[index], names[index], routes, prefix, child))
            private_routes.append(routes)
        self._s3_endpoint(args, vpc, private_routes, child)
        self.private_subnet_ids = [s.id for s in private]

    @staticmethod
    def _s3_endpoint(args: NetworkArgs, vpc: aws.ec2.Vpc, task_routes: list[aws.ec2.RouteTable], child: pulumi.ResourceOptions) -> None:
        """Tempo's and Loki's S3 traffic stays inside the VPC (and off any NAT's per-GB charge): a
        free gateway endpoint on the tasks' route tables."""
        aws.ec2.VpcEndpoint(
            "s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[r.id for r in task_routes],
            tags={"Name": f"{args.prefix}-s3"},
            opts=child,
        )
