"""VPC flow logs (vpcFlowLogs): every accepted and rejected flow of the stack's VPC, to a CloudWatch
log group kept as long as the services' logs, written by a role only this account's flow logs may
assume. Off by default: it costs per GB (tests/costs.py)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.platforms.aws.iam import policy

FLOW_LOGS = "vpc-flow-logs.amazonaws.com"


def trust_flow_logs_of(account_id: str, region: str) -> str:
    """The confused-deputy conditions the Amazon VPC user guide gives for the flow logs role
    ("IAM role for publishing flow logs to CloudWatch Logs")."""
    return policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": FLOW_LOGS},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{region}:{account_id}:vpc-flow-log/*"},
            },
        }
    )


def vpc_flow_logs(vpc_id: pulumi.Input[str], prefix: str, region: str, retention_days: int, parent: pulumi.Resource) -> aws.ec2.FlowLog:
    child = pulumi.ResourceOptions(parent=parent)
    group = aws.cloudwatch.LogGroup("flow-logs", name=f"/vpc/{prefix}/flow-logs", retention_in_days=retention_days, opts=child)
    account_id = aws.get_caller_identity_output().account_id
    role = aws.iam.Role(
        "flow-logs",
        assume_role_policy=account_id.apply(lambda account: trust_flow_logs_of(account, region)),
        description="VPC flow logs: writes the stack's flow log group only",
        opts=child,
    )
    # What the flow logs service does with the role (the VPC user guide's policy), on the one
    # group: it exists already, so no logs:CreateLogGroup.
    aws.iam.RolePolicy(
        "flow-logs",
        role=role.id,
        policy=group.arn.apply(
            lambda arn: policy(
                {
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"],
                    "Resource": [arn, f"{arn}:*"],
                }
            )
        ),
        opts=child,
    )
    return aws.ec2.FlowLog(
        "vpc",
        vpc_id=vpc_id,
        traffic_type="ALL",
        log_destination_type="cloud-watch-logs",
        log_destination=group.arn,
        iam_role_arn=role.arn,
        tags={"Name": f"{prefix}-flow-logs"},
        opts=child,
    )
