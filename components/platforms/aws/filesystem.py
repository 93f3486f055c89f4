"""An encrypted EFS file system for one service's data (Grafana's database, the collector's queue
slots): TLS only, reached through an access point as the program's own user, NFS from that service
alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.firewall import Rule, allow_between
from components.platforms.aws.iam import policy, tls_only
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
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(retain_on_delete=args.retain, protect=args.retain))
        name = f"{args.service}-{args.volume.name}"
        self.file_system = self._file_system(name, args, kept)
        self.access_point = self._access_point(name, args, kept)
        self.mount_targets: list[pulumi.Resource] = self._mount_targets(name, args, child)
        self._grant_mount(name, args.task_role, child)
        self.register_outputs({"fileSystemId": self.file_system.id, "accessPointId": self.access_point.id})

    @staticmethod
    def _file_system(name: str, args: ServiceFileSystemArgs, kept: pulumi.ResourceOptions) -> aws.efs.FileSystem:
        """The encrypted file system, TLS only, backed up where args.backups says."""
        file_system = aws.efs.FileSystem(
            name,
            encrypted=True,
            throughput_mode=args.throughput_mode,
            tags={"Name": f"{args.prefix}-{name}"},
            opts=kept,
        )
        aws.efs.FileSystemPolicy(
            name,
            file_system_id=file_system.id,
            policy=file_system.arn.apply(lambda arn: policy(tls_only({"AWS": "*"}, "*", arn))),
            opts=kept,
        )
        aws.efs.BackupPolicy(
            name,
            file_system_id=file_system.id,
            backup_policy=aws.efs.BackupPolicyBackupPolicyArgs(status="ENABLED" if args.backups else "DISABLED"),
            opts=kept,
        )
        return file_system

    def _access_point(self, name: str, args: ServiceFileSystemArgs, kept: pulumi.ResourceOptions) -> aws.efs.AccessPoint:
        uid, gid = (int(part) for part in (args.volume.owner or "0:0").split(":"))
        return aws.efs.AccessPoint(
            name,
            file_system_id=self.file_system.id,
            # Every request through it acts as the program's own user, in its own directory.
            posix_user=aws.efs.AccessPointPosixUserArgs(uid=uid, gid=gid),
            root_directory=aws.efs.AccessPointRootDirectoryArgs(
                path=f"/{name}",
                creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(owner_uid=uid, owner_gid=gid, permissions="0750"),
            ),
            tags={"Name": f"{args.prefix}-{name}"},
            opts=kept,
        )

    def _mount_targets(self, name: str, args: ServiceFileSystemArgs, child: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """A mount target per subnet, in a group that takes NFS from the service alone. Not retained:
        they hold no data and would block deleting the subnets."""
        service = args.service
        group = aws.ec2.SecurityGroup(
            f"{name}-efs",
            vpc_id=args.vpc_id,
            description=f"EFS of {service}: NFS from {service} only",
            tags={"Name": f"{args.prefix}-{name}-efs"},
            opts=child,
        )
        allow_between(
            args.service_security_group, group, ports=NFS_PORT,
            inbound=Rule(f"{name}-efs-nfs", f"NFS from {service}"),
            outbound=Rule(f"{name}-efs-nfs-out", f"NFS to the file system of {service}"),
            opts=child,
        )
        return [
            aws.efs.MountTarget(f"{name}-{index}", file_system_id=self.file_system.id, subnet_id=subnet, security_groups=[group.id], opts=child)
            for index, subnet in enumerate(args.subnet_ids)
        ]

    def _grant_mount(self, name: str, task_role: aws.iam.Role, child: pulumi.ResourceOptions) -> None:
        """The task role mounts and writes, through the access point only."""
        aws.iam.RolePolicy(
            f"{name}-efs",
            role=task_role.id,
            policy=pulumi.Output.all(self.file_system.arn, self.access_point.arn).apply(
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
