"""A Fargate task's container definitions: the program, the init container that writes its config
files and prepares its volumes, and the container that claims a queue slot where it has one."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable, Sequence
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from components.platforms.aws.queue_slots import CLAIM_CONTAINER, claim_container, link_directory, slot_count, slots_path
from components.platforms.spec import DataVolume, SecretValue, ServiceSpec

CONFIG_CONTAINER = "config"
# Time to flush (Loki's WAL, the collector's queues) before SIGKILL; 120 s is Fargate's most
# (ContainerDefinition stopTimeout, Amazon ECS API reference).
STOP_TIMEOUT_SECONDS = 120

# (environment variable, the Secrets Manager secret holding its value)
StoredSecrets = Sequence[tuple[str, aws.secretsmanager.Secret]]
Logging = Callable[[str], dict[str, Any]]


def task_containers(
    spec: ServiceSpec,
    *,
    region: str,
    utility_image: str,
    log_group_name: pulumi.Input[str],
    secrets: StoredSecrets,
    mounts: list[dict[str, Any]],
    max_tasks: int = 1,
) -> list[dict[str, Any]]:
    """The containers in the order ECS starts them: the config writer (if anything is written), the
    queue-slot claim (if the program has a queue), the program, which waits for both."""
    logging = functools.partial(_logging, log_group_name, region)
    file_only = {s.env: s for s in spec.secrets if s.file_only}
    main = main_container(spec, secrets, file_only, mounts, logging(spec.name))
    writer = config_writer(spec, secrets, file_only, mounts, utility_image, logging(CONFIG_CONTAINER))
    claims = queue_claims(spec, mounts, max_tasks, utility_image, logging)
    waits = [{"containerName": CONFIG_CONTAINER, "condition": "SUCCESS"}] if writer else []
    waits += [{"containerName": CLAIM_CONTAINER, "condition": "HEALTHY"}] if claims else []
    if waits:
        main["dependsOn"] = waits
    return [*([writer] if writer else []), *claims, main]


def _logging(log_group_name: pulumi.Input[str], region: str, stream_prefix: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {"awslogs-group": log_group_name, "awslogs-region": region, "awslogs-stream-prefix": stream_prefix},
    }


def main_container(
    spec: ServiceSpec, secrets: StoredSecrets, file_only: dict[str, SecretValue], mounts: list[dict[str, Any]], logging: dict[str, Any]
) -> dict[str, Any]:
    """The program itself (its dependsOn is added by task_containers)."""
    main: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "essential": True,
        "portMappings": [{"name": p.name, "containerPort": p.container_port, "protocol": "tcp"} for p in spec.ports],
        "environment": [
            {"name": key, "value": value}
            for key, value in sorted({**spec.env, **{s.file_env: s.file for s in file_only.values() if s.file_env}}.items())
        ],
        # Secrets Manager values, injected by the ECS agent at start: never in the task definition.
        "secrets": [{"name": env, "valueFrom": stored.arn} for env, stored in secrets if env not in file_only],
        "mountPoints": mounts,
        "logConfiguration": logging,
        # The whole task's memory: the collector's memory_limiter reads this limit.
        "memory": spec.memory_mb,
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        # A crashed program restarts in place, keeping what it wrote to task storage and the
        # queue slot its task claimed.
        "restartPolicy": {"enabled": True},
    }
    if spec.command:
        main["command"] = list(spec.command)
    if spec.health:
        h = spec.health
        main["healthCheck"] = {
            "command": ["CMD", *h.command],
            "interval": h.interval_seconds,
            "timeout": h.timeout_seconds,
            "retries": h.retries,
            "startPeriod": h.start_period_seconds,
        }
    return main


def _owned_task_volumes(spec: ServiceSpec) -> list[DataVolume]:
    """Data volumes on task storage that the program's user must own."""
    return [v for v in spec.volumes if v.owner and not v.shared_filesystem and not v.inherited_by_replacements]


def config_writer(
    spec: ServiceSpec,
    secrets: StoredSecrets,
    file_only: dict[str, SecretValue],
    mounts: list[dict[str, Any]],
    utility_image: str,
    logging: dict[str, Any],
) -> Optional[dict[str, Any]]:
    """The init container, or None when it has nothing to do.

    A task volume starts empty and root's. Images without a shell (FROM scratch, distroless) cannot
    prepare their own: a pinned busybox writes every config file into the volume the program mounts
    read-only, and hands owned data volumes to the program's user."""
    steps = [f'printf "%s" "$CONFIG_FILE_{index}" > {shlex.quote(f.path)}' for index, f in enumerate(spec.files)]
    # Secrets the program reads only from a file: the ECS agent hands them to this container alone,
    # which writes them for the program's user only (task storage is encrypted on Fargate).
    for env in file_only:
        path = shlex.quote(file_only[env].file)
        steps += [f'(umask 077; printf "%s" "${env}" > {path})', f"chown {shlex.quote(spec.user)} {path}"]
    owned = _owned_task_volumes(spec)
    steps += [f"chown -R {shlex.quote(v.owner or '')} {shlex.quote(v.path)}" for v in owned]
    if not steps:
        return None
    owned_paths = {v.path for v in owned}
    writer = {
        "name": CONFIG_CONTAINER,
        "image": utility_image,
        "essential": False,
        "command": ["sh", "-c", "set -e; " + "; ".join(steps)],
        "environment": [{"name": f"CONFIG_FILE_{index}", "value": f.content} for index, f in enumerate(spec.files)],
        "mountPoints": [{**m, "readOnly": False} for m in mounts if m["sourceVolume"].startswith("config-") or m["containerPath"] in owned_paths],
        "logConfiguration": logging,
    }
    if file_only:
        writer["secrets"] = [{"name": env, "valueFrom": stored.arn} for env, stored in secrets if env in file_only]
    return writer


def queue_claims(spec: ServiceSpec, mounts: list[dict[str, Any]], max_tasks: int, utility_image: str, logging: Logging) -> list[dict[str, Any]]:
    """The claim container of the program's queue volume, if it has one."""
    claims = []
    for queue in (v for v in spec.volumes if v.inherited_by_replacements):
        paths = {slots_path(queue), link_directory(queue)}
        writable = [{**m, "readOnly": False} for m in mounts if m["containerPath"] in paths]
        claims.append(claim_container(queue, slot_count(max_tasks), utility_image, writable, logging(CLAIM_CONTAINER)))
    # Container names are unique in a task, and the claim container has one name.
    assert len(claims) <= 1, f"{spec.name}: one queue volume per task"
    return claims
