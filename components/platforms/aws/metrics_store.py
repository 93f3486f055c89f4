"""Amazon Managed Service for Prometheus: the prod metrics store, its retention, and who may write
and query it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.iam import policy
from components.settings.model import covering_days

# What a writer and a reader (Grafana) may do in the workspace.
METRICS_WRITE_ACTIONS = ("aps:RemoteWrite",)
METRICS_READ_ACTIONS = ("aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata")


def _metrics_policy(purpose: str, actions: tuple[str, ...], workspace_arn: str) -> str:
    return policy({"Sid": f"Metrics{purpose.title()}", "Effect": "Allow", "Action": list(actions), "Resource": workspace_arn})


@dataclass(frozen=True)
class ManagedPrometheusArgs:
    prefix: str
    retention_hours: int
    # Task roles that remote-write, and that query.
    writers: dict[str, aws.iam.Role]
    readers: dict[str, aws.iam.Role]
    # retainData: `pulumi destroy` leaves the workspace and its metrics in the account.
    retain: bool


class ManagedPrometheus(pulumi.ComponentResource):

    def __init__(self, name: str, args: ManagedPrometheusArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:ManagedPrometheus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(retain_on_delete=args.retain, protect=args.retain))
        workspace = aws.amp.Workspace("metrics", alias=args.prefix, tags={"Name": args.prefix}, opts=kept)
        aws.amp.WorkspaceConfiguration(
            "metrics",
            workspace_id=workspace.id,
            retention_period_in_days=covering_days(args.retention_hours),
            opts=kept,
        )
        for roles, actions, purpose in ((args.writers, METRICS_WRITE_ACTIONS, "write"), (args.readers, METRICS_READ_ACTIONS, "read")):
            for service, role in roles.items():
                aws.iam.RolePolicy(
                    f"{service}-metrics-{purpose}",
                    role=role.id,
                    policy=workspace.arn.apply(functools.partial(_metrics_policy, purpose, tuple(actions))),
                    opts=child,
                )
        self.endpoint: pulumi.Output[str] = workspace.prometheus_endpoint
        self.register_outputs({"workspaceArn": workspace.arn, "queryUrl": workspace.prometheus_endpoint})
