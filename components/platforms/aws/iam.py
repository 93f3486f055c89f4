"""IAM pieces every AWS component shares: policy documents, the ECS task trust, task roles, the
execution role's grants."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

ECS_TASKS = "ecs-tasks.amazonaws.com"
# What Grafana's CloudWatch data source needs for metric queries (Grafana docs, "Amazon CloudWatch
# data source", IAM policies: the metrics statement): GetMetricData reads the series, ListMetrics
# resolves dimension wildcards (ServiceName "*"). Alarms, Logs Insights, EC2 and tag lookups are
# not used, so not granted. Neither action supports resource-level permissions (Resource "*").
CLOUDWATCH_READ_ACTIONS = ("cloudwatch:GetMetricData", "cloudwatch:ListMetrics")
ROLE_TYPE = "aws:iam/role:Role"
# A private Amazon ECR image: <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]
# (Amazon ECR user guide, "Private registry"); ecr-fips hosts included.
_PRIVATE_ECR = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repository>[^:@]+)"
)


def task_role_name(service: str) -> str:
    return f"{service}-task"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def tls_only(principal: Any, action: str, resource: Any) -> dict[str, Any]:
    """A resource-policy statement refusing every request that does not come over TLS."""
    return {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": principal,
        "Action": action,
        "Resource": resource,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def trust_ecs_agent_of(account_id: str) -> str:
    """An execution role only ECS of this account may assume, for its tasks' image pulls, logs and
    secrets: aws:SourceAccount, as AWS's own Fargate samples set it on execution roles
    (aws/agent-toolkit-for-aws, ecs-trust-policy.json). No aws:SourceArn, unlike the task roles: the
    ECS guide's copy read here (awsdocs/amazon-ecs-developer-guide, task_execution_IAM_role.md)
    shows no condition for this role, and a condition on a key the agent does not send denies the
    assumption, which would stop every task from starting."""
    return policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": ECS_TASKS},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }
    )


def trust_ecs_tasks_of(account_id: str, region: str) -> str:
    """A task role only ECS tasks of this account and region may assume: the confused-deputy
    conditions the Amazon ECS developer guide gives for task IAM roles (aws:SourceArn, aws:SourceAccount)."""
    return policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": ECS_TASKS},
            "Action": "sts:AssumeRole",
            "Condition": {
                "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{region}:{account_id}:*"},
                "StringEquals": {"aws:SourceAccount": account_id},
            },
        }
    )


class TaskRoles:
    """The identity each service's program runs as, one role per service; the grants are added
    where a resource the service uses is made (its bucket, the metrics workspace, its file system)."""

    def __init__(self, region: str) -> None:
        self._roles: dict[str, aws.iam.Role] = {}
        account_id = aws.get_caller_identity_output().account_id
        self._trust = account_id.apply(lambda account: trust_ecs_tasks_of(account, region))
        # The execution roles' trust (FargateService makes those roles).
        self.execution_trust: pulumi.Output[str] = account_id.apply(trust_ecs_agent_of)

    def of(self, service: str, parent: pulumi.Resource) -> aws.iam.Role:
        """The service's role, created under `parent` by whichever component asks first."""
        if service not in self._roles:
            self._roles[service] = aws.iam.Role(
                task_role_name(service),
                assume_role_policy=self._trust,
                description=f"The {service} program: only its own data",
                opts=pulumi.ResourceOptions(parent=parent),
            )
        return self._roles[service]


def grant_cloudwatch_read(service: str, role: aws.iam.Role, parent: pulumi.Resource) -> aws.iam.RolePolicy:
    return aws.iam.RolePolicy(
        f"{service}-cloudwatch-read",
        role=role.id,
        policy=policy({"Effect": "Allow", "Action": list(CLOUDWATCH_READ_ACTIONS), "Resource": "*"}),
        opts=pulumi.ResourceOptions(parent=parent),
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


def execution_policy(log_group_arn: str, secret_arns: Sequence[str], images: Sequence[str]) -> str:
    """What the ECS agent does for one task: write its log group, read its own secrets, pull its
    images from private ECR."""
    return policy(
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"],
        },
        *([{"Sid": "Secrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": list(secret_arns)}] if secret_arns else []),
        *ecr_pull_statements(private_ecr_repositories(images)),
    )
