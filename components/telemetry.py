"""Which metric series the pipeline produces: the list dashboards (and alerts) may query.

How the list is derived:
1. APP_INSTRUMENTS names every OTel instrument the OpenDeck services emit: the FastAPI (ASGI),
   HTTPX, SQLAlchemy, Celery and system-metrics (process) instrumentations, in both HTTP
   conventions, and the plan's custom metrics. tests/test_telemetry_sources.py runs the real instrumentation packages against an
   in-memory reader and fails if this list and what they emit disagree.
2. prometheus_names() applies the OTLP-to-Prometheus naming that the collector's
   prometheus_remote_write exporter uses (dots to underscores, a unit suffix, `_total` for
   monotonic counters, `_ratio` for unit-1 gauges, `_bucket/_sum/_count` for histograms).
3. Series nobody instruments but a component generates: the collector's span-metrics and
   service-graph connectors (names as the real collector and Prometheus produce them), its own
   telemetry, the self-metrics of Prometheus, Loki and Tempo that the alert rules read, the Go
   process metrics of the components, cAdvisor's container metrics (docker only), and
   Prometheus's `up` for every scrape job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COUNTER = "counter"
UPDOWNCOUNTER = "updowncounter"
HISTOGRAM = "histogram"
GAUGE = "gauge"


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: str
    unit: str
    attributes: tuple[str, ...]


def _custom(name: str, kind: str, unit: str = "1", attributes: tuple[str, ...] = ()) -> Instrument:
    return Instrument(f"opendeck.{name}", kind, unit, attributes)


# What the Python instrumentations emit by default (old HTTP conventions) ...
HTTP_OLD = (
    Instrument("http.server.duration", HISTOGRAM, "ms",
               ("http.flavor", "http.host", "http.method", "http.scheme", "http.server_name",
                "http.status_code", "http.target", "net.host.port")),
    Instrument("http.server.response.size", HISTOGRAM, "By",
               ("http.flavor", "http.host", "http.method", "http.scheme", "http.server_name",
                "http.status_code", "http.target", "net.host.port")),
    Instrument("http.server.active_requests", UPDOWNCOUNTER, "{request}",
               ("http.flavor", "http.host", "http.method", "http.scheme", "http.server_name")),
    Instrument("http.client.duration", HISTOGRAM, "ms", ("http.method", "http.scheme", "http.status_code")),
)
# ... and with OTEL_SEMCONV_STABILITY_OPT_IN=http (both with http/dup).
HTTP_STABLE = (
    Instrument("http.server.request.duration", HISTOGRAM, "s",
               ("http.request.method", "http.response.status_code", "http.route",
                "network.protocol.version", "url.scheme")),
    Instrument("http.server.response.body.size", HISTOGRAM, "By",
               ("http.request.method", "http.response.status_code", "http.route",
                "network.protocol.version", "url.scheme")),
    Instrument("http.server.active_requests", UPDOWNCOUNTER, "{request}", ("http.request.method", "url.scheme")),
    Instrument("http.client.request.duration", HISTOGRAM, "s",
               ("http.request.method", "http.response.status_code", "network.protocol.version",
                "server.address", "server.port")),
)
LIBRARY_METRICS = (
    Instrument("db.client.connections.usage", UPDOWNCOUNTER, "connections", ("pool.name", "state")),
    Instrument("flower.task.runtime.seconds", HISTOGRAM, "seconds", ("task", "worker")),
)
# The system-metrics instrumentation with the sample app's PROCESS_METRICS choice: the process's
# own CPU, memory, threads, file descriptors, context switches and garbage collections.
PROCESS_METRICS = (
    Instrument("process.cpu.time", COUNTER, "s", ("type",)),
    Instrument("process.cpu.utilization", GAUGE, "1", ()),
    Instrument("process.context_switches", COUNTER, "", ("type",)),
    Instrument("process.memory.usage", UPDOWNCOUNTER, "By", ()),
    Instrument("process.memory.virtual", UPDOWNCOUNTER, "By", ()),
    Instrument("process.open_file_descriptor.count", UPDOWNCOUNTER, "", ()),
    Instrument("process.thread.count", UPDOWNCOUNTER, "", ()),
    Instrument("cpython.gc.collections", COUNTER, "{collection}", ("cpython.gc.generation", "generation")),
)
# The plan's OpenDeckMetrics class, as written there.
CUSTOM_METRICS = (
    _custom("users.registrations.total", COUNTER),
    _custom("users.logins.total", COUNTER),
    _custom("users.active", UPDOWNCOUNTER),
    _custom("decks.created.total", COUNTER, attributes=("topic",)),
    _custom("decks.deleted.total", COUNTER),
    _custom("decks.count", UPDOWNCOUNTER),
    _custom("cards.created.total", COUNTER),
    _custom("cards.studied.total", COUNTER, attributes=("deck_id", "card_id")),
    _custom("study_sessions.total", COUNTER),
    _custom("study_sessions.duration", HISTOGRAM, "s", ("cards_studied",)),
    _custom("documents.uploaded.total", COUNTER, attributes=("file_type", "size_mb")),
    _custom("documents.processed.total", COUNTER, attributes=("file_type", "cards_generated")),
    _custom("documents.failed.total", COUNTER, attributes=("file_type", "error_type")),
    _custom("documents.processing_duration", HISTOGRAM, "s", ("file_type", "cards_generated")),
    _custom("celery.tasks.started.total", COUNTER, attributes=("task_name",)),
    _custom("celery.tasks.completed.total", COUNTER, attributes=("task_name",)),
    _custom("celery.tasks.failed.total", COUNTER, attributes=("task_name",)),
    _custom("celery.queue.length", UPDOWNCOUNTER),
    _custom("db.queries.total", COUNTER),
    _custom("db.query.duration", HISTOGRAM, "ms"),
    _custom("db.connection_pool.size", UPDOWNCOUNTER),
)
APP_INSTRUMENTS = HTTP_OLD + HTTP_STABLE + LIBRARY_METRICS + PROCESS_METRICS + CUSTOM_METRICS

# Resource attributes that become labels (resource_to_telemetry_conversion), besides job/instance.
RESOURCE_LABELS = ("service_name", "service_namespace", "service_version", "deployment_environment_name")

# Prometheus unit suffixes for UCUM units (prometheus/otlptranslator unit map, the ones apps use).
_UNIT_SUFFIX = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
    "MiBy": "mebibytes", "GiBy": "gibibytes", "KBy": "kilobytes", "MBy": "megabytes",
    "GBy": "gigabytes", "%": "percent", "1": "",
}


def prometheus_base_name(instrument: Instrument) -> str:
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", instrument.name) if t]
    unit = instrument.unit.split("/")[0].strip()
    if unit and "{" not in unit:
        suffix = _UNIT_SUFFIX.get(unit, re.sub(r"[^A-Za-z0-9]+", "_", unit).strip("_"))
        if suffix and suffix not in tokens:
            tokens.append(suffix)
    if instrument.kind == COUNTER:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if instrument.unit == "1" and instrument.kind == GAUGE:
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    return "_".join(tokens)


def prometheus_names(instrument: Instrument) -> set[str]:
    base = prometheus_base_name(instrument)
    if instrument.kind == HISTOGRAM:
        return {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return {base}


def prometheus_labels(instrument: Instrument) -> set[str]:
    labels = {re.sub(r"[^A-Za-z0-9_]", "_", a) for a in instrument.attributes}
    labels |= {"job", "instance", *RESOURCE_LABELS}
    if instrument.kind == HISTOGRAM:
        labels.add("le")
    return labels


def _histogram(base: str) -> set[str]:
    return {f"{base}_bucket", f"{base}_sum", f"{base}_count"}


# Made by the collector's connectors from every span, before sampling (span_metrics and
# servicegraph), as Prometheus stores them after remote write: tests/test_e2e.py runs both at the
# pinned versions and checks. Span metrics keep the span's resource as labels (service_name, job, ...).
SPAN_GENERATED = {
    "traces_span_metrics_calls_total",
    *_histogram("traces_span_metrics_duration_seconds"),
    "traces_service_graph_request_total",
    "traces_service_graph_request_failed_total",
    *_histogram("traces_service_graph_request_server_seconds"),
    *_histogram("traces_service_graph_request_client_seconds"),
}
SPAN_GENERATED_LABELS = {
    "span_name", "span_kind", "status_code", "collector_instance_id", "otel_scope_name", "service_instance_id",
    "client", "server", "connection_type", "failed", "le",
    "client_deployment_environment_name", "server_deployment_environment_name",
}

# The collector's own telemetry on :8888 (service.telemetry.metrics, level normal, with type and
# unit suffixes). tests/test_collector_runtime.py scrapes a running collector for the ones that
# appear without backends; the exporter sent/failed counters follow the same naming.
COLLECTOR_INTERNAL = {
    "otelcol_process_uptime_seconds_total",
    "otelcol_process_memory_rss_bytes",
    "otelcol_process_cpu_seconds_total",
    "otelcol_process_runtime_heap_alloc_bytes",
    "otelcol_receiver_accepted_spans_total",
    "otelcol_receiver_refused_spans_total",
    "otelcol_receiver_accepted_metric_points_total",
    "otelcol_receiver_refused_metric_points_total",
    "otelcol_receiver_accepted_log_records_total",
    "otelcol_receiver_refused_log_records_total",
    "otelcol_exporter_sent_spans_total",
    "otelcol_exporter_send_failed_spans_total",
    "otelcol_exporter_sent_metric_points_total",
    "otelcol_exporter_send_failed_metric_points_total",
    "otelcol_exporter_sent_log_records_total",
    "otelcol_exporter_send_failed_log_records_total",
    "otelcol_exporter_enqueue_failed_spans_total",
    "otelcol_exporter_enqueue_failed_metric_points_total",
    "otelcol_exporter_enqueue_failed_log_records_total",
    "otelcol_exporter_queue_size",
    "otelcol_exporter_queue_capacity",
    "otelcol_receiver_failed_spans_total",
    "otelcol_receiver_failed_metric_points_total",
    "otelcol_receiver_failed_log_records_total",
    "otelcol_processor_incoming_items_total",
    "otelcol_processor_outgoing_items_total",
    "otelcol_processor_filter_spans_filtered_total",
    # The ingest tier's load-balancing exporter: how many samplers it routes to (label resolver),
    # and its lookups of them (labels resolver, success).
    "otelcol_loadbalancer_num_backends",
    "otelcol_loadbalancer_num_resolutions_total",
}
COLLECTOR_INTERNAL_LABELS = {
    "job", "instance", "receiver", "exporter", "processor", "transport", "data_type", "otel_signal", "filter", "resolver", "success",
    "service_name", "service_instance_id", "service_version",
}

# Self-metrics of the stores that the alert rules use, as each exposes them on its own /metrics
# (scraped by Prometheus; names as registered in the upstream source at the pinned releases).
STORE_SELF_METRICS = {
    # prometheus/prometheus web/web.go: instrumented handlers, labels handler and code.
    *_histogram("prometheus_http_request_duration_seconds"),
    "prometheus_http_requests_total",
    # prometheus/prometheus tsdb/head.go (newHeadMetrics), label type (float or histogram).
    "prometheus_tsdb_head_samples_appended_total",
    "prometheus_tsdb_out_of_order_samples_total",
    "prometheus_tsdb_out_of_bound_samples_total",
    "prometheus_tsdb_too_old_samples_total",
    # grafana/loki pkg/validation (DiscardedSamples, DiscardedBytes), labels reason and tenant;
    # the request histogram from dskit's instrumented server, labels method, route, status_code.
    "loki_discarded_samples_total",
    "loki_discarded_bytes_total",
    *_histogram("loki_request_duration_seconds"),
    # grafana/tempo modules/overrides (metricDiscardedSpans), labels reason and tenant.
    "tempo_discarded_spans_total",
    # prometheus/prometheus tsdb/db.go (newDBMetrics), tsdb/head.go and tsdb/wlog/wlog.go (prefix
    # prometheus_tsdb_wal_): what the TSDB holds on disk, and its size retention.
    "prometheus_tsdb_storage_blocks_bytes",
    "prometheus_tsdb_retention_limit_bytes",
    "prometheus_tsdb_head_chunks_storage_size_bytes",
    "prometheus_tsdb_wal_storage_size_bytes",
    # grafana/loki pkg/ingester/metrics.go: WAL bytes written and writes lost to a full disk.
    "loki_ingester_wal_logged_bytes_total",
    "loki_ingester_wal_disk_full_failures_total",
}
STORE_SELF_LABELS = {"handler", "code", "type", "reason", "tenant", "method", "route", "status_code"}

# The process collector of prometheus/client_golang (process_collector.go), on the /metrics of
# every Go component but the collector (which has its otelcol_process_* instead): Prometheus,
# Tempo, Loki and Grafana. Labels job and instance.
GO_PROCESS_METRICS = {"process_cpu_seconds_total", "process_resident_memory_bytes"}

# cAdvisor on the docker target (google/cadvisor docs/storage/prometheus.md, the metric table),
# labels from metrics/prometheus.go (id: the cgroup, "/" for the host; name: the container; image)
# and per device (filesystems) or interface (network).
CADVISOR_METRICS = {
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_spec_memory_limit_bytes",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
    "container_fs_reads_bytes_total",
    "container_fs_writes_bytes_total",
    "container_fs_usage_bytes",
    "container_fs_limit_bytes",
    "machine_cpu_cores",
}
CADVISOR_LABELS = {"id", "name", "image", "device", "interface"}

SCRAPE_JOBS = ("otel-collector", "otel-collector-sampler", "prometheus", "tempo", "loki", "grafana", "cadvisor")
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def produced_metric_names() -> set[str]:
    names: set[str] = set()
    for instrument in APP_INSTRUMENTS:
        names |= prometheus_names(instrument)
    return names | SPAN_GENERATED | COLLECTOR_INTERNAL | STORE_SELF_METRICS | GO_PROCESS_METRICS | CADVISOR_METRICS | SCRAPE_SERIES


def produced_label_names() -> set[str]:
    labels: set[str] = set()
    for instrument in APP_INSTRUMENTS:
        labels |= prometheus_labels(instrument)
    return (
        labels | SPAN_GENERATED_LABELS | COLLECTOR_INTERNAL_LABELS | STORE_SELF_LABELS | CADVISOR_LABELS | {"job", "instance", "__name__"}
    )
