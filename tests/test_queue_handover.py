"""A task replacement on aws, measured with the collector we build: spans accepted while the store
downstream is down queue on disk; the task is stopped as ECS stops one (SIGTERM to the program, SIGKILL
after the stop timeout, then the claim container); a replacement task starts as the platform starts
it; the store comes back; we count what arrives.

- Task storage (what a Fargate task had before queue slots): the replacement starts with an empty
  directory, so the queue is gone (the measurement's negative control).
- Queue slots (components/platforms/aws/queue_slots.py): the replacement claims a slot on the shared
  file system with the claim script the task definition runs, in busybox's sh and applets (with
  util-linux's flock for the applet Debian's busybox leaves out), and sends what its predecessor queued.

Here the slots live on a local directory standing in for the EFS access point: NFS locking and
latency are not exercised (no EFS here).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from components.platforms.aws.queue_slots import RETRY_SECONDS, claim_script
from components.services.collector import QUEUE_DIR, QUEUE_STORAGE
from components.services.collector_sampling import DECISION_WAIT_SECONDS
from components.services.collector_tiers import INGEST, SAMPLER
from tests.conftest import report
from tests.processes import Collector, poll
from tests.stand_ins import TraceStore
from tests.test_settings import settings_for

BUSYBOX = shutil.which("busybox")
# ECS stopTimeout scaled down (the stack sets 120 s): same mechanism, SIGTERM then SIGKILL.
STOP_TIMEOUT_SECONDS = 3
REQUESTS, SPANS_PER_REQUEST = 20, 50
ACCEPTED = REQUESTS * SPANS_PER_REQUEST
# Nothing arriving for this long after the store is back counts as lost.
ARRIVAL_SECONDS = 45

pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="busybox is missing: scripts/test.sh installs Debian's busybox")


@dataclass
class Task:
    """One Fargate task: its own storage directory, the claim container where it has one, the collector."""

    collector: Collector
    claim: Optional[subprocess.Popen] = None
    stopped_by: list[str] = field(default_factory=list)

    def stop_as_ecs_does(self, stop_timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """The program first (it depends on the claim container, so it stops first), then the claim
        container; a container's exit takes every process of its PID namespace (here: its group)."""
        process = self.collector.process
        assert process is not None
        if stop_timeout == 0:
            # No time at all: frozen first, so it cannot act on SIGTERM before SIGKILL (on a busy
            # machine a collector could finish shutting down between the two).
            process.send_signal(signal.SIGSTOP)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout)
            self.stopped_by.append("SIGTERM")
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self.stopped_by.append("SIGKILL")
        if self.claim is not None:
            stop_container(self.claim)


def stop_container(process: subprocess.Popen) -> None:
    """SIGTERM to the container's first process; when it exits, the rest of its PID namespace is
    killed (here: its process group), and with them the claim's flock."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=STOP_TIMEOUT_SECONDS + 6)
    if _group_alive(process.pid):
        os.killpg(process.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(scope="module")
def applets(tmp_path_factory) -> Path:
    """A PATH of busybox applets (sh, du, sort, ...), as in the busybox image. Debian builds busybox
    without its flock applet (the image builds `make defconfig`, flock included): util-linux's
    flock, which takes the same `flock -n FILE PROG ARGS`, stands in for it."""
    directory = tmp_path_factory.mktemp("busybox")
    subprocess.run([BUSYBOX or "busybox", "--install", "-s", str(directory)], check=True)
    if not (directory / "flock").exists():
        (directory / "flock").symlink_to(shutil.which("flock") or "/usr/bin/flock")
    return directory


def start_claim(applets: Path, slots: Path, link: Path, count: int, log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            [str(applets / "sh"), "-c", claim_script(str(slots), str(link), count)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={"PATH": str(applets)},
        )


def claimed(link: Path, seconds: float = 15) -> Path:
    assert poll(lambda: link.is_symlink(), seconds), f"no slot claimed at {link}"
    return Path(os.readlink(link))


def start_task(applets: Path, otelcol: str, tier: str, workdir: Path, store: TraceStore, slots: Optional[Path]) -> Task:
    """slots None: the queue on the task's own storage (workdir, new for every task)."""
    workdir.mkdir(parents=True)
    collector = Collector(
        otelcol, settings_for("dev"), workdir, tempo=f"127.0.0.1:{store.port}", loki="http://127.0.0.1:9/otlp",
        prometheus="http://127.0.0.1:9/api/v1/write", tier=tier, samplers=(f"127.0.0.1:{store.port}",),
    )
    claim = None
    if slots is not None:
        # The task volume that holds the link, named as in the task: <task>/file_storage.
        link = workdir / Path(QUEUE_DIR).name
        claim = start_claim(applets, slots, link, 4, workdir / "claim.log")
        claimed(link)
        storage = collector.config["extensions"][QUEUE_STORAGE]
        storage["directory"] = storage["compaction"]["directory"] = str(link)
    # As the aws target renders it (these tiers run the dev stack's config otherwise).
    collector.config["extensions"][QUEUE_STORAGE]["fsync"] = True
    return Task(collector.start(), claim)


def send(port: int, batch: int) -> set[str]:
    """REQUESTS OTLP requests; the span ids the collector acknowledged."""
    acknowledged: set[str] = set()
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="opendeck-worker"))])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for request_index in range(REQUESTS):
            spans = [
                trace_pb2.Span(
                    trace_id=os.urandom(16), span_id=os.urandom(8), name=f"task-{batch}-{request_index}-{i}",
                    kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=time.time_ns(), end_time_unix_nano=time.time_ns(),
                )
                for i in range(SPANS_PER_REQUEST)
            ]
            request = trace_service_pb2.ExportTraceServiceRequest(
                resource_spans=[trace_pb2.ResourceSpans(resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
            )
            stub.Export(request, timeout=10)
            acknowledged.update(s.span_id.hex() for s in spans)
    return acknowledged


def replace_a_task_while_the_store_is_down(
    applets: Path, otelcol: str, tier: str, workdir: Path, with_slots: bool, stop_timeout: float = STOP_TIMEOUT_SECONDS
) -> tuple[set[str], list[str], Task]:
    store = TraceStore().start()
    store.stop()
    slots = workdir / "efs" if with_slots else None
    if slots is not None:
        slots.mkdir()
    first = start_task(applets, otelcol, tier, workdir / "task-1", store, slots)
    replacement: Optional[Task] = None
    try:
        acknowledged = send(first.collector.otlp_grpc, batch=1)
        if tier == SAMPLER:
            # Tail sampling holds a trace in memory until its decision; only then is it queued on disk.
            time.sleep(DECISION_WAIT_SECONDS + 3)
        assert poll(lambda: first.collector.scrape().get("otelcol_exporter_queue_size", 0) > 0, 20), "nothing queued"
        first.stop_as_ecs_does(stop_timeout)
        replacement = start_task(applets, otelcol, tier, workdir / "task-2", store, slots)
        store.start()
        poll(lambda: acknowledged <= {s.span_id for s in store.received()}, ARRIVAL_SECONDS)
        if not with_slots:
            time.sleep(5)
        return acknowledged, [s.span_id for s in store.received()], first
    finally:
        for task in (first, replacement):
            if task is not None and task.collector.alive():
                task.stop_as_ecs_does()
        store.stop()


@pytest.mark.parametrize("tier", [INGEST, SAMPLER])
def test_on_task_storage_a_replacement_loses_the_queue(applets, otelcol, tmp_path, tier):
    acknowledged, received, first = replace_a_task_while_the_store_is_down(applets, otelcol, tier, tmp_path, with_slots=False)
    arrived = acknowledged & set(received)
    report(
        f"queue handover, {tier} tier, queue on task storage: {len(arrived)} of {len(acknowledged)} accepted spans arrived "
        f"after a task replacement while the store was down (stopped by {first.stopped_by[0]})"
    )
    assert len(acknowledged) == ACCEPTED
    assert not arrived


@pytest.mark.parametrize("tier", [INGEST, SAMPLER])
def test_with_queue_slots_a_replacement_sends_what_its_predecessor_accepted(applets, otelcol, tmp_path, tier):
    acknowledged, received, first = replace_a_task_while_the_store_is_down(applets, otelcol, tier, tmp_path, with_slots=True)
    missing = acknowledged - set(received)
    duplicates = len(received) - len(set(received))
    report(
        f"queue handover, {tier} tier, queue slots: {len(acknowledged) - len(missing)} of {len(acknowledged)} accepted spans arrived "
        f"after a task replacement while the store was down (stopped by {first.stopped_by[0]}), {duplicates} duplicates"
    )
    assert len(acknowledged) == ACCEPTED
    assert not missing
    # At least once: a batch being sent when the task stopped may be sent again, never more than one batch.
    assert duplicates <= ACCEPTED // 2


def test_two_tasks_never_claim_one_slot_and_a_freed_slot_is_taken(applets, tmp_path):
    slots = tmp_path / "efs"
    slots.mkdir()
    tasks = [tmp_path / f"task-{i}" for i in range(3)]
    for task in tasks:
        task.mkdir()
    links = [task / "file_storage" for task in tasks]
    claims = [start_claim(applets, slots, link, 2, link.parent / "claim.log") for link in links]
    try:
        assert poll(lambda: sum(link.is_symlink() for link in links) == 2, 15)
        time.sleep(3)
        holders = [i for i, link in enumerate(links) if link.is_symlink()]
        (waiting,) = set(range(3)) - set(holders)
        held = {Path(os.readlink(links[i])) for i in holders}
        assert len(held) == 2
        # Every slot is claimed: the third task waits (its program does not start).
        assert not links[waiting].is_symlink()
        freed = Path(os.readlink(links[holders[0]]))
        stop_container(claims[holders[0]])
        assert claimed(links[waiting], RETRY_SECONDS * 3) == freed
    finally:
        for claim in claims:
            if _group_alive(claim.pid):
                os.killpg(claim.pid, signal.SIGKILL)


def test_a_starting_task_takes_the_slot_holding_the_most_data(applets, tmp_path):
    slots = tmp_path / "efs"
    for i, size in enumerate((0, 4096, 200_000, 64)):
        (slots / f"slot-{i}").mkdir(parents=True)
        (slots / f"slot-{i}" / "exporter_queue").write_bytes(b"x" * size)
    task = tmp_path / "task"
    task.mkdir()
    claim = start_claim(applets, slots, task / "file_storage", 4, task / "claim.log")
    try:
        assert claimed(task / "file_storage") == slots / "slot-2"
    finally:
        os.killpg(claim.pid, signal.SIGKILL)


def test_with_queue_slots_a_task_killed_at_once_loses_nothing_it_acknowledged(applets, otelcol, tmp_path):
    """The stop timeout run out (or a crash): SIGKILL right after SIGTERM, no time to shut down."""
    acknowledged, received, first = replace_a_task_while_the_store_is_down(applets, otelcol, INGEST, tmp_path, with_slots=True, stop_timeout=0)
    missing = acknowledged - set(received)
    duplicates = len(received) - len(set(received))
    report(
        f"queue handover, ingest tier, queue slots, stopped by {first.stopped_by[0]} at once: "
        f"{len(acknowledged) - len(missing)} of {len(acknowledged)} accepted spans arrived, {duplicates} duplicates"
    )
    assert first.stopped_by == ["SIGKILL"]
    assert not missing
    assert duplicates <= ACCEPTED // 2
