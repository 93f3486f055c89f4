"""A service's own S3 bucket: private, encrypted, TLS-only, usable by the service's task role
alone, with a lifecycle one day longer than the service's retention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.iam import policy
from components.platforms.spec import ObjectStore

# Object actions Tempo documents as its minimum (Loki needs a subset); ListBucket is on the bucket.
OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:GetObjectTagging", "s3:PutObjectTagging")
# Every action that lists, reads, writes or deletes data, object versions included (Amazon S3's
# actions reference: GetObjectVersion, ListBucketVersions, DeleteObjectVersion, ...): denied to
# everyone but the owning service's role. Management actions (policy, lifecycle) stay with admins.
DATA_ACTIONS = (
    "s3:ListBucket*", "s3:GetObject*", "s3:PutObject*", "s3:DeleteObject*",
    "s3:RestoreObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload",
)
# An S3 object outlives the store's own retention by this much, so the store deletes first
# (Loki's docs: a bucket lifecycle must be longer than the retention period).
LIFECYCLE_SLACK_DAYS = 1


def lifecycle_days(retention_hours: int) -> int:
    return -(-retention_hours // 24) + LIFECYCLE_SLACK_DAYS


def guard_private_bucket(name: str, bucket: aws.s3.Bucket, opts: pulumi.ResourceOptions) -> aws.s3.BucketPublicAccessBlock:
    """Objects are the bucket owner's (no ACLs), nothing can be made public, and everything is
    encrypted with S3-managed keys. Returns the public-access block, which a bucket policy waits for."""
    aws.s3.BucketOwnershipControls(
        name,
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=opts,
    )
    block = aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                )
            )
        ],
        opts=opts,
    )
    return block


def tls_only(bucket_arn: str) -> dict:
    """A bucket-policy statement refusing every request that does not come over TLS."""
    return {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


@dataclass(frozen=True)
class ServiceBucketArgs:
    service: str
    prefix: str
    region: str
    retention_hours: int
    # The only principal that may read and write the data.
    task_role: aws.iam.Role
    # retainData: `pulumi destroy` leaves the bucket, its data and its guards in the account.
    retain: bool


class ServiceBucket(pulumi.ComponentResource):
    store: pulumi.Output[ObjectStore]

    def __init__(self, name: str, args: ServiceBucketArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:ServiceBucket", name, None, opts)
        service, retain = args.service, args.retain
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(retain_on_delete=retain, protect=retain))
        self.bucket = aws.s3.Bucket(
            f"{service}-bucket",
            bucket_prefix=f"{args.prefix}-{service}-",
            force_destroy=not retain,
            tags={"Service": service},
            opts=kept,
        )
        bucket = self.bucket
        block = guard_private_bucket(f"{service}-bucket", bucket, kept)
        aws.s3.BucketLifecycleConfiguration(
            f"{service}-bucket",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="retention",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=lifecycle_days(args.retention_hours)),
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
            policy=pulumi.Output.all(bucket.arn, args.task_role.arn).apply(
                lambda arns: policy(
                    tls_only(arns[0]),
                    {
                        # Data is read and written by the owning service's task role alone;
                        # administrators keep the bucket's management actions.
                        "Sid": "DataOnlyThroughTheServiceRole",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": list(DATA_ACTIONS),
                        "Resource": [arns[0], f"{arns[0]}/*"],
                        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": arns[1]}},
                    },
                )
            ),
            opts=pulumi.ResourceOptions.merge(kept, pulumi.ResourceOptions(depends_on=[block])),
        )
        aws.iam.RolePolicy(
            f"{service}-bucket",
            role=args.task_role.id,
            policy=pulumi.Output.all(bucket.arn, objects).apply(
                lambda arns: policy(
                    {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arns[0]},
                    {"Sid": "Objects", "Effect": "Allow", "Action": list(OBJECT_ACTIONS), "Resource": arns[1]},
                )
            ),
            opts=child,
        )
        region = args.region
        self.store = bucket.bucket.apply(lambda name: ObjectStore(bucket=name, region=region, endpoint=f"s3.{region}.amazonaws.com"))
        self.register_outputs({"bucket": bucket.bucket})
