"""Sampling and scale-out through real processes: the collector we build running the rendered
configs (one collector doing both jobs; an ingest tier routing to a sampler tier), real Prometheus,
the sample app, and Tempo stand-ins.

- At 10% sampling the span metrics count every request the app's own HTTP metric counts, and the
  same errors; every error and every slow trace reaches the trace store whole; the kept share of
  the other traces is within a stated binomial bound of 10%.
- Two ingest collectors and two samplers: the spans of each trace meet in one sampler even when
  they enter through different ingest collectors; the service graph has the app's edges; the
  series of both samplers coexist without a rejected, out-of-order or duplicate sample; a sampler
  restart in the middle of the traffic loses no span the ingest tier accepted.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from components.services.collector_sampling import DECISION_WAIT_SECONDS
from components.services.collector_tiers import INGEST, SAMPLER
from tests.conftest import report
from tests.processes import Collector, Prometheus, SampleApp, poll
from tests.stand_ins import LogStore, Span, TraceStore
from tests.test_e2e import alert_rules_on_prometheus, load_traffic
from tests.test_faults import CountingExporter
from tests.test_settings import settings_for

SAMPLING_PERCENTAGE = 10.0
SLOW_MS = 300
# Probe traces besides the app's traffic: enough for the kept share to be measured, in a second.
PROBE_TRACES = 2000
ERROR_EVERY, SLOW_EVERY = 20, 25
ROUNDS = 20
SERVICE = "opendeck-backend"
PROBE = "sampling-probe"
ERROR = 2  # STATUS_CODE_ERROR in OTLP


def probe_provider(endpoint: str) -> tuple[TracerProvider, CountingExporter]:
    exporter = CountingExporter(endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": PROBE}))
    # Room for every probe span: a full queue drops spans in the SDK, before any exporter sees them
    # (seen on a loaded machine with the default 2048).
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=4 * PROBE_TRACES, schedule_delay_millis=200, max_export_batch_size=512)
    )
    return provider, exporter


def send_probe_traces(roots: TracerProvider, children: TracerProvider, count: int, first: int = 0) -> None:
    """Traces of a root and a child span. The child goes through `children` (another collector, in
    the tier test). Every ERROR_EVERY-th child fails; every SLOW_EVERY-th trace lasts 2 x SLOW_MS
    (timestamps set, nothing waits)."""
    root_tracer, child_tracer = roots.get_tracer("probe"), children.get_tracer("probe")
    for number in range(first, first + count):
        start = time.time_ns()
        end = start + (2 * SLOW_MS if number % SLOW_EVERY == 0 else 5) * 1_000_000
        root = root_tracer.start_span(f"probe {number}", start_time=start)
        child = child_tracer.start_span("probe step", context=otel_trace.set_span_in_context(root, otel_context.Context()), start_time=start)
        if number % ERROR_EVERY == 0:
            child.set_status(Status(StatusCode.ERROR))
        child.end(end_time=end - 1_000_000)
        root.end(end_time=end)


def by_trace(spans: list[Span]) -> dict[str, set[str]]:
    traces: dict[str, set[str]] = defaultdict(set)
    for span in spans:
        traces[span.trace_id].add(span.span_id)
    return traces


@dataclasses.dataclass
class Sampled:
    everything: TraceStore
    kept: TraceStore
    prometheus: Prometheus
    collector: Collector


@pytest.fixture(scope="module")
def sampled(otelcol, prometheus_bin, tmp_path_factory) -> Iterator[Sampled]:
    """One collector with the stack's config at 10% and a 300 ms slow threshold; a tap in front of
    the sampler (an extra exporter on the prepared-spans pipeline, test only) records every span."""
    workdir = tmp_path_factory.mktemp("sampling")
    settings = dataclasses.replace(settings_for("dev"), trace_sampling_percentage=SAMPLING_PERCENTAGE, trace_slow_threshold_ms=SLOW_MS)
    everything, kept, loki = TraceStore().start(), TraceStore().start(), LogStore()
    collector = Collector(
        otelcol, settings, workdir, tempo=f"127.0.0.1:{kept.port}", loki=f"http://127.0.0.1:{loki.port}/otlp", prometheus="http://placeholder"
    )
    collector.config["exporters"]["otlp_grpc/everything"] = {"endpoint": f"127.0.0.1:{everything.port}", "tls": {"insecure": True}}
    collector.config["service"]["pipelines"]["traces"]["exporters"].append("otlp_grpc/everything")
    prometheus = Prometheus(prometheus_bin, settings, workdir, collector_metrics=f"127.0.0.1:{collector.metrics}")
    collector.write_metrics_to(prometheus.remote_write_url)
    app = SampleApp(workdir, collector.otlp_grpc)
    started: list = []
    try:
        for process in (prometheus, collector, app):
            process.start()
            started.append(process)
        traffic = load_traffic()
        with httpx.Client(base_url=app.url, timeout=10) as client:
            for round_number in range(1, ROUNDS + 1):
                traffic.one_round(client, round_number)
                # Slow on purpose (the traffic's own slow calls may stay under the threshold).
                client.get("/api/slow", params={"ms": 2 * SLOW_MS})
        provider, exporter = probe_provider(f"127.0.0.1:{collector.otlp_grpc}")
        send_probe_traces(provider, provider, PROBE_TRACES)
        provider.shutdown()
        assert exporter.failed == 0
        assert poll(lambda: sum(s.resource["service.name"] == PROBE for s in everything.received()) >= 2 * PROBE_TRACES, 60)
        # Decisions come at most the decision wait after a trace's first span.
        time.sleep(DECISION_WAIT_SECONDS + 1)
        yield Sampled(everything, kept, prometheus, collector)
    finally:
        for process in reversed(started):
            process.stop()
        for store in (everything, kept):
            store.stop()
        loki.stop()


def test_span_metrics_count_every_request_and_error_the_app_counts_at_10_percent_sampling(sampled):
    """Over the whole run (every counter starts with the app): server spans counted by the span
    metrics vs the app's own HTTP server metric, health checks aside (the collector drops their spans)."""
    spans = 'sum(traces_span_metrics_calls_total{service_name="opendeck-backend", span_kind="SPAN_KIND_SERVER"%s})'
    http = 'sum(http_server_duration_milliseconds_count{service_name="opendeck-backend", http_target!="/health"%s})'

    def value(expr: str) -> float:
        result = sampled.prometheus.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    def counts() -> tuple[float, float, float, float]:
        return value(spans % ""), value(http % ""), value(spans % ', status_code="STATUS_CODE_ERROR"'), value(http % ', http_status_code=~"5.."')

    # The connector writes every 15 s, the app every second: wait until both saw the whole run.
    poll(lambda: (c := counts())[0] > 0 and c[0] == c[1], 45, interval=2)
    calls, requests, span_errors, http_errors = counts()
    kept_share = len({s.trace_id for s in sampled.kept.received()}) / len({s.trace_id for s in sampled.everything.received()})
    report(
        f"sampling: at {SAMPLING_PERCENTAGE:g}% ({kept_share:.1%} of all traces kept), span metrics count {calls:.0f} server "
        f"requests vs the app's HTTP metric {requests:.0f}; errors {span_errors:.0f} vs {http_errors:.0f}"
    )
    assert requests > 100
    assert abs(calls - requests) <= 0.05 * requests
    assert span_errors == http_errors > 0


def must_keep(spans: list[Span]) -> set[str]:
    """Traces with an error span, and traces longer than the slow threshold (first start to last end)."""
    errors = {s.trace_id for s in spans if s.status_code == ERROR}
    starts: dict[str, int] = {}
    ends: dict[str, int] = {}
    for s in spans:
        starts[s.trace_id] = min(starts.get(s.trace_id, s.start_ns), s.start_ns)
        ends[s.trace_id] = max(ends.get(s.trace_id, s.end_ns), s.end_ns)
    slow = {t for t in starts if ends[t] - starts[t] > SLOW_MS * 1_000_000}
    return errors | slow


def test_every_error_and_slow_trace_is_kept_whole_and_the_rest_at_the_stated_share(sampled):
    spans = sampled.everything.received()
    everything = by_trace(spans)
    important = must_keep(spans)

    def incomplete() -> set[str]:
        kept = by_trace(sampled.kept.received())
        return {t for t in important if kept.get(t) != everything[t]}

    # Decisions are made on a timer: on a loaded machine some come after the fixture's wait.
    poll(lambda: not incomplete(), 30, interval=1)
    kept = by_trace(sampled.kept.received())
    not_whole = incomplete()
    probe_traces = {s.trace_id for s in spans if s.resource["service.name"] == PROBE}
    rest = probe_traces - important
    kept_rest = rest & set(kept)
    assert all(kept[t] == everything[t] for t in kept), "a kept trace lost spans"
    n, p = len(rest), SAMPLING_PERCENTAGE / 100
    # Binomial: the probabilistic policy keeps a trace by a hash of its random trace id. Four
    # standard deviations: a correct sampler fails this about once in 16,000 runs.
    bound = 4 * math.sqrt(n * p * (1 - p))
    app_important = important - probe_traces
    report(
        f"sampling: {len(important & probe_traces)} probe and {len(app_important)} app traces with an error or over {SLOW_MS} ms, "
        f"{len(not_whole)} of them not kept whole; {len(kept_rest)} of the {n} other probe traces kept "
        f"({len(kept_rest) / n:.2%}; allowed {n * p:.0f} +/- {bound:.0f})"
    )
    expected_probe = PROBE_TRACES // ERROR_EVERY + PROBE_TRACES // SLOW_EVERY - PROBE_TRACES // math.lcm(ERROR_EVERY, SLOW_EVERY)
    assert len(important & probe_traces) == expected_probe
    # The app's failing calls and its slow calls (one per round at twice the threshold) are among them.
    assert len(app_important) >= ROUNDS
    assert not not_whole
    assert abs(len(kept_rest) - n * p) <= bound


# ---- two ingest collectors, two samplers

TIER_PROBE_TRACES = 1500


@dataclasses.dataclass
class Tiers:
    samplers: list[Collector]
    stores: list[TraceStore]
    ingest: list[Collector]
    prometheus: Prometheus
    acknowledged: set[str]
    failed: int


@pytest.fixture(scope="module")
def tiers(otelcol, prometheus_bin, tmp_path_factory) -> Iterator[Tiers]:
    """Samplers and ingest collectors run the tier configs; the ingest tier's DNS resolver is
    swapped for the static one (every process here shares 127.0.0.1, told apart by port only).
    The app sends through the first ingest collector; probe traces enter through both, the root of
    each trace through one and its child through the other. The second sampler is restarted while
    the probe traces flow."""
    workdir = tmp_path_factory.mktemp("tiers")
    settings = settings_for("dev")
    loki = LogStore()
    stores = [TraceStore().start() for _ in range(2)]
    prometheus_placeholder = "http://placeholder"

    def directory(name: str) -> Path:
        (workdir / name).mkdir()
        return workdir / name

    samplers = [
        Collector(otelcol, settings, directory(f"sampler-{i}"), tempo=f"127.0.0.1:{store.port}", loki="http://placeholder",
                  prometheus=prometheus_placeholder, tier=SAMPLER)
        for i, store in enumerate(stores)
    ]
    addresses = tuple(f"127.0.0.1:{s.otlp_grpc}" for s in samplers)
    ingest = [
        Collector(otelcol, settings, directory(f"ingest-{i}"), tempo="placeholder:4317", loki=f"http://127.0.0.1:{loki.port}/otlp",
                  prometheus=prometheus_placeholder, tier=INGEST, samplers=addresses)
        for i in range(2)
    ]
    # Each tier scraped as its own job, as the aws stack scrapes them.
    prometheus = Prometheus(
        prometheus_bin, settings, workdir, collector_metrics=f"127.0.0.1:{ingest[0].metrics}", sampler_metrics=f"127.0.0.1:{samplers[0].metrics}"
    )
    for collector in samplers + ingest:
        collector.write_metrics_to(prometheus.remote_write_url)
    app = SampleApp(directory("app"), ingest[0].otlp_grpc)
    started: list = []
    try:
        for process in (prometheus, *samplers, *ingest, app):
            process.start()
            started.append(process)
        first, first_exporter = probe_provider(f"127.0.0.1:{ingest[0].otlp_grpc}")
        second, second_exporter = probe_provider(f"127.0.0.1:{ingest[1].otlp_grpc}")
        probes = threading.Thread(target=lambda: send_paced(first, second))
        probes.start()
        traffic = load_traffic()
        with httpx.Client(base_url=app.url, timeout=10) as client:
            for round_number in range(1, ROUNDS + 1):
                traffic.one_round(client, round_number)
                if round_number == ROUNDS // 2:
                    # Graceful stop (SIGTERM) and start again on the same ports, mid-traffic.
                    samplers[1].stop()
                    time.sleep(2)
                    samplers[1].start()
        probes.join()
        first.shutdown()
        second.shutdown()
        acknowledged = first_exporter.acknowledged_ids | second_exporter.acknowledged_ids
        yield Tiers(samplers, stores, ingest, prometheus, acknowledged, first_exporter.failed + second_exporter.failed)
    finally:
        for process in reversed(started):
            process.stop()
        for store in stores:
            store.stop()
        loki.stop()


def send_paced(first: TracerProvider, second: TracerProvider) -> None:
    """Probe traces over about ten seconds, so the sampler restart falls in the middle of them."""
    batch = TIER_PROBE_TRACES // 20
    for step in range(20):
        send_probe_traces(first, second, batch, first=step * batch)
        time.sleep(0.5)


def test_every_span_the_ingest_tier_accepted_arrives_despite_a_sampler_restart(tiers):
    arrived = lambda: {s.span_id for store in tiers.stores for s in store.received()}  # noqa: E731
    poll(lambda: tiers.acknowledged <= arrived(), 90, interval=1)
    missing = tiers.acknowledged - arrived()
    per_sampler = [len(store.received()) for store in tiers.stores]
    report(
        f"tiers: {len(tiers.acknowledged)} probe spans accepted by 2 ingest collectors, {len(missing)} missing after a "
        f"sampler restart; spans per sampler {per_sampler}"
    )
    assert tiers.failed == 0
    assert len(tiers.acknowledged) == 2 * TIER_PROBE_TRACES and not missing


def test_the_spans_of_each_trace_meet_in_one_sampler(tiers):
    poll(lambda: sum(len(store.received()) for store in tiers.stores) >= 2 * TIER_PROBE_TRACES, 90, interval=1)
    traces = [by_trace(store.received()) for store in tiers.stores]
    both = set(traces[0]) & set(traces[1])
    probe = {s.trace_id for store in tiers.stores for s in store.received() if s.resource["service.name"] == PROBE}
    whole = [t for t in probe if len(traces[0].get(t, set()) | traces[1].get(t, set())) == 2]
    report(f"tiers: traces per sampler {[len(t) for t in traces]}, {len(both)} traces seen by both samplers")
    assert all(traces), "both samplers own a share of the trace ids"
    assert not both
    assert len(whole) == TIER_PROBE_TRACES


def test_the_service_graph_has_the_apps_edges_and_both_samplers_series_coexist(tiers):
    def edges() -> set[tuple[str, str]]:
        result = tiers.prometheus.query("sum by (client, server) (traces_service_graph_request_total)")
        return {(r["metric"].get("client", ""), r["metric"].get("server", "")) for r in result}

    def makers(name: str) -> set[str]:
        return {r["metric"]["collector_instance_id"] for r in tiers.prometheus.query(f"count by (collector_instance_id) ({name})")}

    wanted = {(SERVICE, "sqlite"), (SERVICE, SERVICE)}
    # Each sampler writes its series every 15 s, on its own clock.
    poll(
        lambda: wanted <= edges()
        and len(makers("traces_service_graph_request_total")) == 2
        and len(makers("traces_span_metrics_calls_total")) >= 2,
        60,
        interval=2,
    )
    found = edges()
    makers = {name: makers(name) for name in ("traces_service_graph_request_total", "traces_span_metrics_calls_total")}
    report(f"tiers: service graph edges {sorted(found)}; series made by {[len(m) for m in makers.values()]} sampler processes")
    # server -> database (a virtual node named after the database system) and server -> HTTP dependency
    # (the app calls its own API through httpx).
    assert wanted <= found
    # Span metrics: the restarted sampler is a new process with a new id, so two or three ids.
    assert len(makers["traces_service_graph_request_total"]) == 2
    assert len(makers["traces_span_metrics_calls_total"]) >= 2


REJECTIONS = (
    "prometheus_tsdb_out_of_order_samples_total",
    "prometheus_tsdb_out_of_bound_samples_total",
    "prometheus_tsdb_too_old_samples_total",
)


def test_prometheus_rejected_no_sample_from_the_tiers(tiers):
    # Wait for a few more connector flushes from both samplers.
    poll(lambda: tiers.prometheus.query("traces_span_metrics_calls_total"), 30)
    time.sleep(16)
    rejected = {name: sum(float(r["value"][1]) for r in tiers.prometheus.query(f"sum({name})")) for name in REJECTIONS}
    refused = tiers.prometheus.query('sum(prometheus_http_requests_total{handler="/api/v1/write", code!~"2.."})')
    failed = {
        f"{c.tier}-{c.otlp_grpc}": c.scrape().get("otelcol_exporter_send_failed_metric_points_total", 0.0) for c in tiers.samplers + tiers.ingest
    }
    written = sum(float(r["value"][1]) for r in tiers.prometheus.query('sum(prometheus_http_requests_total{handler="/api/v1/write"})'))
    report(f"tiers: {written:.0f} remote writes to Prometheus; rejected samples {rejected}; refused writes {refused}; exporter failures {failed}")
    assert written > 0
    assert all(v == 0 for v in rejected.values())
    assert not refused or float(refused[0]["value"][1]) == 0
    assert all(v == 0 for v in failed.values())


def collector_down_values(tiers: Tiers) -> dict[tuple[str, str], float]:
    rule = next(r for r in alert_rules_on_prometheus() if r.uid == "stack-collector-down")
    return {(r["metric"]["job"], r["metric"]["instance"]): float(r["value"][1]) for r in tiers.prometheus.query(rule.query)}


def test_the_collector_down_rule_watches_both_tiers(tiers):
    """Runs last: it stops the scraped sampler to see the rule's value drop."""
    ingest, sampler = (f"127.0.0.1:{c.metrics}" for c in (tiers.ingest[0], tiers.samplers[0]))
    healthy = poll(lambda: (v := collector_down_values(tiers)) and len(v) == 3 and v, 30, interval=1)
    report(f"tiers: collector-down rule while both tiers run: {healthy}")
    # Each tier up, and the ingest collector routes to both samplers (its instance, the sampler job).
    assert healthy == {
        ("otel-collector", ingest): 1.0,
        ("otel-collector-sampler", sampler): 1.0,
        ("otel-collector-sampler", ingest): 2.0,
    }
    tiers.samplers[0].stop()
    try:
        down = poll(lambda: collector_down_values(tiers).get(("otel-collector-sampler", sampler)) == 0.0, 30, interval=1)
        report(f"tiers: collector-down rule with the scraped sampler stopped: {collector_down_values(tiers)}")
        assert down, collector_down_values(tiers)
    finally:
        tiers.samplers[0].start()
