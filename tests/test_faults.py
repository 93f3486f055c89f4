"""Faults, with the collector we build running the dev stack's rendered config:
- Tempo down for a minute while an app keeps sending, with a collector restart in the middle:
  every span sent is delivered afterwards (persistent sending queue on disk).
- Overload (a blocked store, senders faster than the collector, a small memory limit), with many
  small traces and with a few growing ones: memory stays under the limit, data is refused with a
  retryable error, nothing crashes, kept traces beyond a full Tempo queue are dropped and counted,
  and it recovers.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Sequence
from typing import Optional

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from components.services.collector import MEMORY_LIMIT_PERCENTAGE
from components.services.collector_sampling import (
    TRACES_MEMORY_LIMIT_PERCENTAGE,
    TRACES_MEMORY_SPIKE_PERCENTAGE,
)
from components.settings import Settings
from scripts.local_collector import memory_cgroups_work
from tests.conftest import report
from tests.processes import Collector, anonymous_rss_bytes, poll
from tests.stand_ins import LogStore, TraceStore
from tests.test_settings import settings_for

OUTAGE_SECONDS = 60
# The memory limiter's limit for the overload test: a small collector container's worth.
OVERLOAD_LIMIT_MIB = 128
OVERLOAD_QUEUE_BYTES = 64 * 2**20


class CountingExporter(SpanExporter):
    """The app's OTLP exporter, remembering which spans the collector acknowledged."""

    def __init__(self, endpoint: str):
        self._inner = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=5)
        self.acknowledged: set[str] = set()
        self.acknowledged_ids: set[str] = set()
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.acknowledged.update(s.name for s in spans)
            self.acknowledged_ids.update(format(s.context.span_id, "016x") for s in spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()


def make_collector(otelcol, workdir, tempo: TraceStore, loki: LogStore, settings: Optional[Settings] = None) -> Collector:
    return Collector(
        otelcol, settings or settings_for("dev"), workdir,
        tempo=f"127.0.0.1:{tempo.port}", loki=f"http://127.0.0.1:{loki.port}/otlp",
        # No metrics in these tests; a closed port stands for an unused Prometheus.
        prometheus="http://127.0.0.1:9/api/v1/write",
    )


def test_a_store_outage_and_a_collector_restart_lose_no_span(otelcol, tmp_path):
    tempo, loki = TraceStore().start(), LogStore()
    collector = make_collector(otelcol, tmp_path, tempo, loki).start()
    exporter = CountingExporter(f"127.0.0.1:{collector.otlp_grpc}")
    provider = TracerProvider(resource=Resource.create({"service.name": "opendeck-worker"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    tracer = provider.get_tracer("outage")
    sending = threading.Event()
    sending.set()
    created = 0

    def app() -> None:
        nonlocal created
        while sending.is_set():
            with tracer.start_as_current_span(f"task-{created}"):
                created += 1
            time.sleep(0.02)

    worker = threading.Thread(target=app)
    worker.start()
    try:
        time.sleep(5)
        tempo.stop()
        outage_started = time.monotonic()
        time.sleep(OUTAGE_SECONDS / 2)
        # The queue is on disk: what waits for Tempo survives the collector going away.
        collector.stop()
        queued_at_restart = created
        collector.start()
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
        queue_before_recovery = collector.scrape().get("otelcol_exporter_queue_size", 0)
        tempo.start()
        time.sleep(5)
    finally:
        sending.clear()
        worker.join()
        provider.shutdown()
    try:
        sent = exporter.acknowledged
        arrived = poll(lambda: sent <= {s.name for s in tempo.received()} and tempo.received(), 120)
        received = [s.name for s in tempo.received()]
        missing = sent - set(received)
        report(
            f"faults: Tempo down {OUTAGE_SECONDS} s with a collector restart after {OUTAGE_SECONDS // 2} s: "
            f"{created} spans created, {len(sent)} acknowledged by the collector, {len(set(received) & sent)} delivered, "
            f"{len(missing)} missing, {len(received) - len(set(received))} duplicates; "
            f"{queued_at_restart} created before the restart; {queue_before_recovery / 1024:.0f} KiB queued on disk when Tempo came back"
        )
        assert arrived and not missing
        assert queue_before_recovery > 0, "the outage should have queued data"
        # The app lost nothing either: at most the spans of the restart's seconds were retried late.
        assert exporter.failed == 0
    finally:
        collector.stop()
        tempo.stop()
        loki.stop()


def spans_request(count: int, payload_bytes: int) -> trace_service_pb2.ExportTraceServiceRequest:
    spans = [
        trace_pb2.Span(
            trace_id=os.urandom(16), span_id=os.urandom(8), name="load", kind=trace_pb2.Span.SPAN_KIND_SERVER,
            attributes=[KeyValue(key="payload", value=AnyValue(string_value="x" * payload_bytes))],
        )
        for _ in range(count)
    ]
    resource = ResourceProto(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="load"))])
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )


# Two loads that overload the collector while Tempo does not answer: many small traces (fresh trace
# ids in every request), and a few traces that grow until their decision (every request adds a span
# to each of the same 512 traces), which the trace-count budget of tail sampling cannot bound.
FRESH_TRACES, GROWING_TRACES = "many small traces", "a few growing traces"


# The stack's percentages turned into MiB for a container of this size; or the config as a stack
# with collectorMemoryMb of this size renders it, percentages and all, run in a memory cgroup of
# that size (what the percentages read, and what the kernel enforces).
IN_MIB, IN_A_CONTAINER = "limits in MiB", "percentages in a container"


@pytest.mark.parametrize(("load", "form"), [(FRESH_TRACES, IN_MIB), (GROWING_TRACES, IN_MIB), (GROWING_TRACES, IN_A_CONTAINER)])
def test_overload_is_refused_with_a_retryable_error_within_the_memory_limit(otelcol, tmp_path, load, form):
    """Measured with tail sampling in the path (its own stricter memory limiter in front): the heap
    stays under the limit and senders are refused with UNAVAILABLE. Tail sampling acknowledges a
    trace before its decision, so once Tempo's queue is full the kept traces are dropped there,
    counted in otelcol_exporter_enqueue_failed_spans_total; everything else is delivered."""
    limit_mib = OVERLOAD_LIMIT_MIB
    container_mib = limit_mib * 100 // MEMORY_LIMIT_PERCENTAGE
    if form == IN_A_CONTAINER and not memory_cgroups_work():
        pytest.skip("needs a writable cgroup v1 memory controller (root; CI has one)")
    tempo, loki = TraceStore().start(), LogStore()
    tempo.block()
    if form == IN_A_CONTAINER:
        settings = settings_for("dev", collectorMemoryMb=str(container_mib))
        collector = make_collector(otelcol, tmp_path, tempo, loki, settings)
        collector.in_container(settings)
    else:
        collector = make_collector(otelcol, tmp_path, tempo, loki)
        # The stack's percentages, GOMEMLIMIT and trace budget, for a small container instead of
        # this machine's memory.
        collector.size_for(container_mib)
    # A queue that fills in seconds instead of the stack's gigabyte on disk.
    collector.config["exporters"]["otlp_grpc/tempo"]["sending_queue"]["queue_size"] = OVERLOAD_QUEUE_BYTES
    collector.start()
    if form == IN_A_CONTAINER:
        # The percentages read the cgroup's limit, not the machine's memory.
        log = collector.log.read_text()
        for percentage in (MEMORY_LIMIT_PERCENTAGE, TRACES_MEMORY_LIMIT_PERCENTAGE):
            assert f'"limit_mib": {container_mib * percentage // 100},' in log, percentage
    outcomes: collections.Counter[str] = collections.Counter()
    loading = threading.Event()
    loading.set()

    def sender() -> None:
        """Sends as fast as it is let, and backs off on a retryable error as OTLP clients must
        (the SDKs start at 1 s; this one at 0.25 s, so the pressure stays on)."""
        request = spans_request(512, 2048)  # ~1 MiB: the SDK's largest batch with big attributes
        backoff = 0.0
        with grpc.insecure_channel(f"127.0.0.1:{collector.otlp_grpc}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            while loading.is_set():
                if load == FRESH_TRACES:
                    for span in request.resource_spans[0].scope_spans[0].spans:
                        span.trace_id = os.urandom(16)
                try:
                    stub.Export(request, timeout=10)
                    outcomes["OK"] += 1
                    backoff = 0.0
                except grpc.RpcError as error:
                    outcomes[error.code().name] += 1
                    backoff = min(2.0, max(0.25, backoff * 2))
                    time.sleep(backoff)

    senders = [threading.Thread(target=sender) for _ in range(4)]
    peak_heap = peak_rss = 0
    crashed = False
    try:
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            crashed |= not collector.alive()
            if crashed:
                break
            peak_rss = max(peak_rss, anonymous_rss_bytes(collector.process.pid))
            peak_heap = max(peak_heap, collector.scrape().get("otelcol_process_runtime_heap_alloc_bytes", 0))
            time.sleep(0.2)
        loading.clear()
        for thread in senders:
            thread.join()
        # Traces still waiting for their decision go to the full queue (and are dropped there) once
        # decided: counted before the store comes back.
        assert poll(lambda: collector.scrape().get("otelcol_processor_tail_sampling_sampling_traces_on_memory", 1) == 0, 30)
        metrics = collector.scrape()
        accepted = metrics["otelcol_receiver_accepted_spans_total"]
        refused = metrics["otelcol_receiver_refused_spans_total"]
        by_memory = metrics.get("otelcol_processor_memory_limiter_refused_spans_total", 0)
        dropped = metrics.get("otelcol_exporter_enqueue_failed_spans_total", 0)
        report(
            f"faults: overload ({load}) for 20 s with Tempo blocked, a {limit_mib} MiB memory limit (traces refused above "
            f"{container_mib * (TRACES_MEMORY_LIMIT_PERCENTAGE - TRACES_MEMORY_SPIKE_PERCENTAGE) // 100} MiB) and a "
            f"{OVERLOAD_QUEUE_BYTES >> 20} MiB queue: requests {dict(outcomes)}; spans accepted {int(accepted)}, "
            f"refused {int(refused)} ({int(by_memory)} by the memory limiters); kept spans dropped at the full Tempo queue "
            f"{int(dropped)}; peak heap {peak_heap / 2**20:.0f} MiB, peak anonymous RSS {peak_rss / 2**20:.0f} MiB"
        )
        assert not crashed and collector.alive()
        assert outcomes["OK"] > 0 and refused > 0
        # OTLP: UNAVAILABLE tells the sender to retry later; nothing was refused for good.
        assert set(outcomes) <= {"OK", "UNAVAILABLE"}, outcomes
        assert peak_heap < limit_mib * 2**20
        # The container such a limit is for (the limit is 80% of it) would not have been killed.
        assert peak_rss < container_mib * 2**20
        if form == IN_A_CONTAINER:
            # The kernel enforced it: no process of the cgroup was killed for memory.
            assert not collector.killed_for_memory()
            report(f"faults: overload ({load}) in a {container_mib} MiB memory cgroup: at most "
                   f"{collector.peak_memory_bytes() / 2**20:.0f} MiB charged to it (RSS and page cache), no OOM kill")

        # Load gone, store back: what was accepted and not dropped at the full queue drains (dev keeps
        # every trace), and new data is accepted again.
        tempo.release()
        kept = accepted - dropped
        delivered = poll(lambda: len(tempo.received()) >= kept, 120)
        assert delivered, f"{len(tempo.received())} of {int(kept)} accepted and queued spans delivered"
        with grpc.insecure_channel(f"127.0.0.1:{collector.otlp_grpc}") as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(spans_request(10, 100), timeout=10)
        assert poll(lambda: len(tempo.received()) >= kept + 10, 30)
        report(
            f"faults: after the overload ({load}) all {int(kept)} accepted spans that were not dropped at the full queue "
            f"were delivered ({len(tempo.received())} received, retries included) and new data was accepted"
        )
    finally:
        loading.clear()
        collector.stop()
        tempo.stop()
        loki.stop()
