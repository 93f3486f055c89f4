"""The load balancer's access logs (albAccessLogDays): a private, TLS-only S3 bucket that Elastic
Load Balancing alone writes to, with objects expiring after the stated days."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.iam import policy
from components.platforms.aws.storage import PrivateBucket, bucket_tls_only

# Where the load balancer writes: <bucket>/<prefix>/AWSLogs/<account>/elasticloadbalancing/...
# (Elastic Load Balancing user guide, "Access log files").
LOG_PREFIX = "alb"
# Regions opened since August 2022 deliver as this service principal; older regions as their
# regional Elastic Load Balancing account (user guide, "Enable access logs": bucket policy).
LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"


@dataclass(frozen=True)
class AccessLogBucketArgs:
    prefix: str
    region: str
    expire_days: int
    # retainData: `pulumi destroy` leaves the bucket and its logs in the account.
    retain: bool


def regional_delivery_account(region: str) -> Optional[str]:
    """The regional Elastic Load Balancing account's ARN, for regions that have one."""
    try:
        return aws.elb.get_service_account(region=region).arn
    except Exception:
        # Newer regions have none (the provider's getServiceAccount refuses them): the service
        # principal alone delivers there.
        return None


def delivery_policy(bucket_arn: str, account_id: str, regional_account: Optional[str]) -> str:
    logs = f"{bucket_arn}/{LOG_PREFIX}/AWSLogs/{account_id}/*"
    writers = [{"Service": LOG_DELIVERY_SERVICE}] + ([{"AWS": regional_account}] if regional_account else [])
    return policy(
        bucket_tls_only(bucket_arn),
        *(
            {"Sid": f"LoadBalancerDelivers{index}", "Effect": "Allow", "Principal": writer, "Action": "s3:PutObject", "Resource": logs}
            for index, writer in enumerate(writers)
        ),
    )


class AccessLogBucket(pulumi.ComponentResource):
    def __init__(self, name: str, args: AccessLogBucketArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:AccessLogBucket", name, None, opts)
        # Access logs support Amazon S3-managed keys only (SSE-S3), not KMS (user guide).
        private = PrivateBucket(
            "alb-access-logs",
            bucket_prefix=f"{args.prefix}-alb-logs-".lower(),
            tags={"Service": "alb"},
            expire_days=args.expire_days,
            retain=args.retain,
            parent=self,
        )
        self.bucket = bucket = private.bucket
        regional_account = regional_delivery_account(args.region)
        account_id = aws.get_caller_identity_output().account_id
        # The load balancer checks it may write when logging is turned on: it waits for this.
        self.policy = private.policy(pulumi.Output.all(bucket.arn, account_id).apply(lambda v: delivery_policy(v[0], v[1], regional_account)))
        self.register_outputs({"bucket": bucket.bucket})

    def load_balancer_logs(self) -> aws.lb.LoadBalancerAccessLogsArgs:
        return aws.lb.LoadBalancerAccessLogsArgs(bucket=self.bucket.bucket, prefix=LOG_PREFIX, enabled=True)
