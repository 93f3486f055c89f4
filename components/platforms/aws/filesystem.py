"""An encrypted EFS file system for one service's data (Grafana's database, the collector's queue
slots): TLS only, reached through an access point as the program's own user, NFS from that service
alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.firewall import allow_tcp
from components.platforms.aws.iam import policy
from components.platforms.spec import DataVolume

NFS_PORT = 2049


@dataclass(frozen=True)
class ServiceFileSystemArgs:
    service: str
    volume: DataVolume
    prefix: str
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    # The service's own security group: the only source of NFS traffic.
    service_security_group: aws.ec2.SecurityGroup
    task_role: aws.iam.Role
    # retainData: `pulumi destroy` leaves the file system and its data in the account.
    retain: bool
    # EFS automatic backups: AWS Backup's default plan for the file system (daily, kept 35 days, in
    # the aws/efs/automatic-backup-vault), which outlive a deleted file system (Amazon EFS user guide).
    backups: bool = True
    # EFS throughput mode ("elastic", "bursting", "provisioned"); None: the API's default (bursting).
    throughput_mode: Optional[str] = None


class ServiceFileSystem(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServiceFileSystemArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("observability:aws:ServiceFileSystem", name, None, opts)
        service, data = args.service, args.volume
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(retain_on_delete=args.retain, protect=args.retain))
        name = f"{service}-{data.name}"
        self.file_system = aws.efs.FileSystem(
            name,
            encrypted=True,
            throughput_mode=args.throughput_mode,
            tags={"Name": f"{args.prefix}-{name}"},
            opts=kept,
        )
        file_system = self.file_system
        aws.efs.FileSystemPolicy(
            name,
            file_system_id=file_system.id,
            policy=file_system.arn.apply(
                lambda arn: policy(
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "*",
                        "Resource": arn,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                )
            ),
            opts=kept,
        )
        aws.efs.BackupPolicy(
            name,
            file_system_id=file_system.id,
            backup_policy=aws.efs.BackupPolicyBackupPolicyArgs(status="ENABLED" if args.backups else "DISABLED"),
            opts=kept,
        )
        uid, gid = (int(part) for part in (data.owner or "0:0").split(":"))
        self.access_point = aws.efs.AccessPoint(
            name,
            file_system_id=file_system.id,
            # Every request through it acts as the program's own user, in its own directory.
            posix_user=aws.efs.AccessPointPosixUserArgs(uid=uid, gid=gid),
            root_directory=aws.efs.AccessPointRootDirectoryArgs(
                path=f"/{name}",
                creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(owner_uid=uid, owner_gid=gid, permissions="0750"),
            ),
            tags={"Name": f"{args.prefix}-{name}"},
            opts=kept,
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-efs",
            vpc_id=args.vpc_id,
            description=f"EFS of {service}: NFS from {service} only",
            tags={"Name": f"{args.prefix}-{name}-efs"},
            opts=child,
        )
        allow_tcp(
            f"{name}-efs-nfs", group=group, direction="in", ports=NFS_PORT, peer=args.service_security_group,
            description=f"NFS from {service}", opts=child,
        )
        allow_tcp(
            f"{name}-efs-nfs-out", group=args.service_security_group, direction="out", ports=NFS_PORT, peer=group,
            description=f"NFS to the file system of {service}", opts=child,
        )
        # Mount targets are not retained: they hold no data and would block deleting the subnets.
        self.mount_targets: list[pulumi.Resource] = [
            aws.efs.MountTarget(f"{name}-{index}", file_system_id=file_system.id, subnet_id=subnet, security_groups=[group.id], opts=child)
            for index, subnet in enumerate(args.subnet_ids)
        ]
        aws.iam.RolePolicy(
            f"{name}-efs",
            role=args.task_role.id,
            policy=pulumi.Output.all(file_system.arn, self.access_point.arn).apply(
                lambda arns: policy(
                    {
                        "Sid": "MountThroughTheAccessPoint",
                        "Effect": "Allow",
                        "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                        "Resource": arns[0],
                        "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": arns[1]}},
                    }
                )
            ),
            opts=child,
        )
        self.register_outputs({"fileSystemId": file_system.id, "accessPointId": self.access_point.id})

    def task_volume(self, volume_name: str) -> aws.ecs.TaskDefinitionVolumeArgs:
        """The task definition's volume that mounts this file system through its access point."""
        return aws.ecs.TaskDefinitionVolumeArgs(
            name=volume_name,
            efs_volume_configuration=aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationArgs(
                file_system_id=self.file_system.id,
                transit_encryption="ENABLED",
                authorization_config=aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationAuthorizationConfigArgs(
                    access_point_id=self.access_point.id, iam="ENABLED"
                ),
            ),
        )
