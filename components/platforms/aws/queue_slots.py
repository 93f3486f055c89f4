"""Queue slots: data each task writes for itself (the collector's persistent queue) kept on EFS, so a
task that replaces a stopped one sends what its predecessor queued.

The file system holds a fixed number of slot directories. Every task claims one free slot for its
lifetime with an flock held by a small busybox container, and the program's data path is a symlink
to the claimed slot. Two tasks never open one slot (bbolt itself refuses a second writer, which
would crash the program instead); a starting task prefers the free slot holding the most data, so what a
stopped or scaled-in task left is sent by the next task that starts. Amazon EFS supports NFSv4 file
locking, advisory only (Amazon EFS user guide, "Unsupported NFSv4 features"): only claimers lock.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath
from typing import Any

from components.platforms.spec import DataVolume

CLAIM_CONTAINER = "queue-claim"
SLOT_PREFIX = "slot-"
CLAIM_FILE = ".claim"
# An ECS deployment with maximumPercent 200 runs old and new tasks at once: twice the most tasks.
SLOTS_PER_TASK = 2
# Seconds between tries while every slot is claimed (tasks of a deployment waiting for old ones to stop).
RETRY_SECONDS = 5


def slot_count(max_tasks: int) -> int:
    return SLOTS_PER_TASK * max_tasks


def link_directory(volume: DataVolume) -> str:
    """The task-scoped directory that holds the symlink named like the data path."""
    return str(PurePosixPath(volume.path).parent)


def slots_path(volume: DataVolume) -> str:
    """Where the file system's slots are mounted: beside the link's directory, not inside it (a mount
    point inside a read-only mount could not be created)."""
    return f"{link_directory(volume)}-slots"


def claim_script(slots: str, link: str, count: int) -> str:
    """POSIX sh (busybox): claim a free slot, point link at it, hold the claim until SIGTERM.

    The claim is `flock -n` on the slot's claim file, held by a child that lives as long as the
    container; the container's exit (its processes go with its PID namespace) releases it."""
    q = shlex.quote
    return f"""set -u
slots={q(slots)}; link={q(link)}; count={count}
trap 'exit 0' TERM
claim() {{
  rm -f "$link"
  flock -n "$1/{CLAIM_FILE}" sh -c 'ln -s "$0" "$1" && while :; do sleep 3600; done' "$1" "$link" &
  holder=$!
  while kill -0 "$holder" 2>/dev/null; do
    [ -L "$link" ] && return 0
    sleep 1
  done
  return 1
}}
while :; do
  i=0
  while [ "$i" -lt "$count" ]; do mkdir -p "$slots/{SLOT_PREFIX}$i"; i=$((i + 1)); done
  # Largest first: a slot a stopped task left a backlog in is taken before drained or fresh ones.
  by_size=$(du -sk "$slots"/{SLOT_PREFIX}* | sort -rn | cut -f2)
  for slot in $by_size; do
    if claim "$slot"; then
      echo "claimed $slot"
      while kill -0 "$holder" 2>/dev/null; do sleep {RETRY_SECONDS} & wait $!; done
      echo "lost the claim on $slot" >&2
      exit 1
    fi
  done
  echo "all $count slots are claimed; waiting" >&2
  sleep {RETRY_SECONDS}
done
"""


def claim_container(volume: DataVolume, count: int, image: str, mounts: list[dict[str, Any]], logging: dict[str, Any]) -> dict[str, Any]:
    """The container that claims the slot; the program's container waits until it is HEALTHY (the
    link exists) and, the dependency reversed on shutdown, stops before it (Amazon ECS API reference,
    ContainerDependency). Essential: if it dies, the claim is gone and the task must stop too."""
    return {
        "name": CLAIM_CONTAINER,
        "image": image,
        "essential": True,
        "command": ["sh", "-c", claim_script(slots_path(volume), volume.path, count)],
        "mountPoints": mounts,
        "healthCheck": {
            "command": ["CMD-SHELL", f"test -L {shlex.quote(volume.path)}"],
            "interval": RETRY_SECONDS,
            "timeout": 2,
            "retries": 3,
            # A deployment's new tasks may wait for old ones to release slots (ContainerDefinition
            # healthCheck: startPeriod at most 300 s).
            "startPeriod": 300,
        },
        "logConfiguration": logging,
    }
