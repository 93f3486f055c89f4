"""The real collector running our dev config on loopback: it starts, drops health-check spans,
and exposes its own metrics under the names the stack-health dashboard queries."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from components.grafana.content import PROMETHEUS_UID
from components.grafana.dashboards import load_folders, metric_names, promql_queries
from components.telemetry import COLLECTOR_INTERNAL
from tests.processes import Collector, free_port, scrape
from tests.test_settings import settings_for


@pytest.fixture(scope="module")
def running(otelcol, tmp_path_factory) -> Iterator[tuple[int, int]]:
    # Stores on a port nobody listens on: exports fail and retry, as with a store that is down.
    dead = free_port()
    collector = Collector(
        otelcol, settings_for("dev"), tmp_path_factory.mktemp("collector"),
        tempo=f"127.0.0.1:{dead}", loki=f"http://127.0.0.1:{dead}/otlp", prometheus=f"http://127.0.0.1:{dead}/api/v1/write",
    ).start()
    try:
        yield collector.otlp_grpc, collector.metrics
    finally:
        collector.stop()


def send_spans(otlp_port: int, routes: list[str]) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "opendeck-backend"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{otlp_port}", insecure=True)))
    tracer = provider.get_tracer("test")
    for route in routes:
        with tracer.start_as_current_span(f"GET {route}") as span:
            span.set_attribute("http.route", route)
    provider.shutdown()


def test_health_spans_are_dropped_and_the_rest_pass(running):
    otlp, metrics = running
    before = scrape(metrics)
    send_spans(otlp, ["/health", "/decks/{deck_id}", "/metrics", "/decks"])
    time.sleep(1)
    after = scrape(metrics)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert delta("otelcol_receiver_accepted_spans_total") == 4
    assert delta("otelcol_processor_filter_spans_filtered_total") == 2


def send_metric_and_log(otlp_port: int) -> None:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    endpoint = f"127.0.0.1:{otlp_port}"
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=60_000)
    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("test").create_counter("opendeck.users.logins.total").add(1)
    meters.shutdown()  # exports once
    loggers = LoggerProvider()
    loggers.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
    logger = logging.getLogger("opendeck.test")
    handler = LoggingHandler(logger_provider=loggers)
    logger.addHandler(handler)
    logger.warning("deck created")
    logger.removeHandler(handler)
    loggers.shutdown()


def test_collector_metrics_the_dashboards_query_exist_under_those_names(running):
    otlp, metrics = running
    send_spans(otlp, ["/decks"])
    send_metric_and_log(otlp)
    time.sleep(1)
    exposed = set(scrape(metrics))
    queried = {
        name
        for folder in load_folders()
        for dashboard in folder.dashboards
        for _, expr in promql_queries(dashboard.model, PROMETHEUS_UID)
        for name in metric_names(expr)
        if name.startswith("otelcol_")
    }
    assert queried <= COLLECTOR_INTERNAL
    # Exporter outcome counters need a reachable (or given-up-on) backend; everything else must be here.
    without_backends = {n for n in queried if not n.startswith(("otelcol_exporter_sent", "otelcol_exporter_send_failed", "otelcol_exporter_enqueue_failed"))}
    assert without_backends <= exposed, sorted(without_backends - exposed)
    assert "otelcol_receiver_refused_spans_total" in exposed
