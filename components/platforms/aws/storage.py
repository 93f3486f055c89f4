"""S3 buckets: the guards every bucket of the stack has (PrivateBucket), and a service's own bucket
(ServiceBucket): usable by the service's task role alone, with a lifecycle one day longer than the
service's retention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.iam import policy, tls_only
from components.settings.model import covering_days

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
# A versioned bucket keeps an overwritten or deleted object's previous version this long
# (NoncurrentVersionExpiration, Amazon S3 user guide, "Lifecycle configuration elements"): a week
# to notice a compromised task's deletions and restore, while the versions cost storage.
NONCURRENT_VERSION_DAYS = 7


def lifecycle_days(retention_hours: int) -> int:
    return covering_days(retention_hours) + LIFECYCLE_SLACK_DAYS


def bucket_tls_only(bucket_arn: str) -> dict[str, Any]:
    """A bucket-policy statement refusing every request to the bucket or its objects not over TLS."""
    return tls_only("*", "s3:*", [bucket_arn, f"{bucket_arn}/*"])


class PrivateBucket:
    """A bucket of the stack with the guards every one has: objects are the bucket owner's (no ACLs),
    nothing can be made public, everything is encrypted with S3-managed keys, and objects expire.
    Every resource is named `name`, under `parent`; retain keeps them all on `pulumi destroy`.

    versioning: None, an unversioned bucket; True or False, versioning Enabled or Suspended (one
    resource either way, so turning it off is an update, never the delete of a protected resource),
    and the lifecycle expires noncurrent versions and the delete markers left over them."""

    def __init__(
        self, name: str, *, bucket_prefix: str, tags: dict[str, str], expire_days: int, retain: bool, parent: pulumi.Resource,
        abort_uploads_after_days: Optional[int] = None, versioning: Optional[bool] = None,
    ):
        self._name = name
        self._kept = pulumi.ResourceOptions(parent=parent, retain_on_delete=retain, protect=retain)
        self.bucket = aws.s3.Bucket(name, bucket_prefix=bucket_prefix, force_destroy=not retain, tags=tags, opts=self._kept)
        self._public_access_block = self._guard()
        if versioning is not None:
            aws.s3.BucketVersioning(
                name,
                bucket=self.bucket.id,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled" if versioning else "Suspended"),
                opts=self._kept,
            )
        aws.s3.BucketLifecycleConfiguration(
            name, bucket=self.bucket.id, rules=_lifecycle_rules(expire_days, abort_uploads_after_days, versioned=versioning is not None), opts=self._kept,
        )

    def _guard(self) -> aws.s3.BucketPublicAccessBlock:
        aws.s3.BucketOwnershipControls(
            self._name,
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=self._kept,
        )
        block = aws.s3.BucketPublicAccessBlock(
            self._name,
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._kept,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            self._name,
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
            opts=self._kept,
        )
        return block

    def policy(self, document: pulumi.Input[str]) -> aws.s3.BucketPolicy:
        """The bucket policy (its first statement: bucket_tls_only), made once the public-access
        block is in place."""
        return aws.s3.BucketPolicy(
            self._name,
            bucket=self.bucket.id,
            policy=document,
            opts=pulumi.ResourceOptions.merge(self._kept, pulumi.ResourceOptions(depends_on=[self._public_access_block])),
        )


def _lifecycle_rules(expire_days: int, abort_uploads_after_days: Optional[int], versioned: bool) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Objects expire; in a versioned bucket their noncurrent versions after NONCURRENT_VERSION_DAYS,
    and the delete markers left over no version. An expiration's Days and ExpiredObjectDeleteMarker
    cannot share a rule (S3 API, LifecycleExpiration): two rules."""
    s3, everything = aws.s3, aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix="")
    rules = [
        s3.BucketLifecycleConfigurationRuleArgs(
            id="retention",
            status="Enabled",
            filter=everything,
            expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(days=expire_days),
            noncurrent_version_expiration=(
                s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(noncurrent_days=NONCURRENT_VERSION_DAYS) if versioned else None
            ),
            abort_incomplete_multipart_upload=(
                s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(days_after_initiation=abort_uploads_after_days)
                if abort_uploads_after_days
                else None
            ),
        )
    ]
    if versioned:
        rules.append(
            s3.BucketLifecycleConfigurationRuleArgs(
                id="delete-markers", status="Enabled", filter=everything,
                expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(expired_object_delete_marker=True),
            )
        )
    return rules


@dataclass(frozen=True)
class ServiceBucketArgs:
    service: str
    prefix: str
    retention_hours: int
    # The only principal that may read and write the data.
    task_role: aws.iam.Role
    # retainData: `pulumi destroy` leaves the bucket, its data and its guards in the account.
    retain: bool
    # bucketVersioning: overwritten and deleted objects stay NONCURRENT_VERSION_DAYS as noncurrent versions.
    versioning: bool = False


class ServiceBucket(pulumi.ComponentResource):

    def __init__(self, name: str, args: ServiceBucketArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:ServiceBucket", name, None, opts)
        service = args.service
        private = PrivateBucket(
            f"{service}-bucket",
            bucket_prefix=f"{args.prefix}-{service}-",
            tags={"Service": service},
            expire_days=lifecycle_days(args.retention_hours),
            retain=args.retain,
            parent=self,
            abort_uploads_after_days=1,
            versioning=args.versioning,
        )
        self.bucket = bucket = private.bucket
        private.policy(
            pulumi.Output.all(bucket.arn, args.task_role.arn).apply(
                lambda arns: policy(
                    bucket_tls_only(arns[0]),
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
            )
        )
        objects = bucket.arn.apply(lambda arn: f"{arn}/*")
        aws.iam.RolePolicy(
            f"{service}-bucket",
            role=args.task_role.id,
            policy=pulumi.Output.all(bucket.arn, objects).apply(
                lambda arns: policy(
                    {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arns[0]},
                    {"Sid": "Objects", "Effect": "Allow", "Action": list(OBJECT_ACTIONS), "Resource": arns[1]},
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.bucket_name: pulumi.Output[str] = bucket.bucket
        self.register_outputs({"bucket": bucket.bucket})
