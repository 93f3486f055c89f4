"""Security-group rules: every rule of the stack is one port (or range) of one protocol to or from one peer."""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import pulumi
import pulumi_aws as aws

from components.platforms.spec import Port

Ports = Union[int, tuple[int, int]]


class Rule(NamedTuple):
    name: str
    description: str


def allow_tcp(
    name: str,
    *,
    group: aws.ec2.SecurityGroup,
    direction: str,
    ports: Ports,
    description: str,
    opts: pulumi.ResourceOptions,
    peer: Optional[aws.ec2.SecurityGroup] = None,
    cidr: Optional[str] = None,
    protocol: str = "tcp",
) -> pulumi.Resource:
    """Let `group` take ("in") or open ("out") `protocol` (TCP unless named) on `ports` from or to a
    peer group or an IPv4 block."""
    low, high = ports if isinstance(ports, tuple) else (ports, ports)
    rule = aws.vpc.SecurityGroupIngressRule if direction == "in" else aws.vpc.SecurityGroupEgressRule
    return rule(
        name,
        security_group_id=group.id,
        ip_protocol=protocol,
        from_port=low,
        to_port=high,
        referenced_security_group_id=peer.id if peer is not None else None,
        cidr_ipv4=cidr,
        description=description,
        opts=opts,
    )


def allow_between(
    source: aws.ec2.SecurityGroup, target: aws.ec2.SecurityGroup, *, ports: Ports, inbound: Rule, outbound: Rule, opts: pulumi.ResourceOptions
) -> None:
    """TCP from `source` to `target` on `ports`: the target's ingress rule and the source's egress
    rule (the provider strips a new group's allow-all egress, so a path needs both)."""
    allow_tcp(inbound.name, group=target, direction="in", ports=ports, peer=source, description=inbound.description, opts=opts)
    allow_tcp(outbound.name, group=source, direction="out", ports=ports, peer=target, description=outbound.description, opts=opts)


class EastWest:
    """The rules between services: each port admits the services its spec names as clients
    (Port.clients) and nothing else, with the matching egress rule on each client's group. A rule
    pair is added as soon as both groups exist, so services may be created in any order (Prometheus
    scrapes services created after it). Both rules belong to the server's component."""

    def __init__(self) -> None:
        self._groups: dict[str, tuple[aws.ec2.SecurityGroup, pulumi.Resource]] = {}
        self._waiting: list[tuple[str, Port, str]] = []

    def add(self, service: str, group: aws.ec2.SecurityGroup, owner: pulumi.Resource, ports: tuple[Port, ...]) -> None:
        self._groups[service] = (group, owner)
        self._waiting += [(service, port, client) for port in ports for client in dict.fromkeys(port.clients)]
        waiting = []
        for server, port, client in self._waiting:
            if server in self._groups and client in self._groups:
                self._open(server, port, client)
            else:
                waiting.append((server, port, client))
        self._waiting = waiting

    def _open(self, server: str, port: Port, client: str) -> None:
        (target, owner), (source, _) = self._groups[server], self._groups[client]
        number = port.container_port
        allow_between(
            source, target, ports=number,
            inbound=Rule(f"{server}-{port.name}-from-{client}", f"{port.name} (port {number}) from {client}"),
            outbound=Rule(f"{client}-to-{server}-{port.name}", f"to {server} {port.name} (port {number})"),
            opts=pulumi.ResourceOptions(parent=owner),
        )
