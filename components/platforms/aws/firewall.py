"""Security-group rules: every rule of the stack is one TCP port (or range) to or from one peer."""

from __future__ import annotations

from typing import Optional, Union

import pulumi
import pulumi_aws as aws

Ports = Union[int, tuple[int, int]]


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
) -> pulumi.Resource:
    """Let `group` take ("in") or open ("out") TCP on `ports` from or to a peer group or an IPv4 block."""
    low, high = ports if isinstance(ports, tuple) else (ports, ports)
    rule = aws.vpc.SecurityGroupIngressRule if direction == "in" else aws.vpc.SecurityGroupEgressRule
    return rule(
        name,
        security_group_id=group.id,
        ip_protocol="tcp",
        from_port=low,
        to_port=high,
        referenced_security_group_id=peer.id if peer is not None else None,
        cidr_ipv4=cidr,
        description=description,
        opts=opts,
    )
