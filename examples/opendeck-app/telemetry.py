"""OpenTelemetry for the sample OpenDeck backend, as the plan sets it up on current releases.

Exporters, endpoints, service name, resource attributes and intervals come from the standard
OTEL_* environment variables, so the same code runs against the dev stack, prod or a test.
"""

from __future__ import annotations

import logging
import uuid

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# The process's own CPU, memory, threads, file descriptors and garbage collection. The host-wide
# system.* metrics are left out: in a container they describe the host, not the app.
PROCESS_METRICS: dict[str, list[str] | None] = {
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
    "process.open_file_descriptor.count": None,
    "process.context_switches": ["involuntary", "voluntary"],
    "cpython.gc.collections": None,
}


def setup_telemetry() -> tuple[TracerProvider, MeterProvider, LoggerProvider]:
    """Traces, metrics and logs over OTLP; library instrumentations on. Call before the app exists."""
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create({"service.name": "opendeck-backend", "service.version": "1.0.0"})
    if "service.instance.id" not in resource.attributes:
        # One id per process (the semantic conventions suggest a UUID), so each replica's process
        # metrics stay apart; it becomes the Prometheus `instance` label.
        resource = resource.merge(Resource({"service.instance.id": str(uuid.uuid4())}))

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)

    meter_provider = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
    metrics.set_meter_provider(meter_provider)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    set_logger_provider(logger_provider)
    # Sends log records over OTLP, each with the trace and span id of the span it was logged in,
    # and puts the ids into the console format too.
    LoggingInstrumentor().instrument(set_logging_format=True, log_level=logging.INFO)

    SQLAlchemyInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    SystemMetricsInstrumentor(config=PROCESS_METRICS).instrument()
    return tracer_provider, meter_provider, logger_provider


class OpenDeckMetrics:
    """The plan's custom business and operational metrics (instrument names as in the plan)."""

    def __init__(self) -> None:
        meter = metrics.get_meter("opendeck")
        counter, updown, histogram = meter.create_counter, meter.create_up_down_counter, meter.create_histogram
        self.user_registrations = counter("opendeck.users.registrations.total", unit="1")
        self.user_logins = counter("opendeck.users.logins.total", unit="1")
        self.active_users = updown("opendeck.users.active", unit="1")
        self.decks_created = counter("opendeck.decks.created.total", unit="1")
        self.decks_deleted = counter("opendeck.decks.deleted.total", unit="1")
        self.deck_count = updown("opendeck.decks.count", unit="1")
        self.cards_created = counter("opendeck.cards.created.total", unit="1")
        self.cards_studied = counter("opendeck.cards.studied.total", unit="1")
        self.study_sessions = counter("opendeck.study_sessions.total", unit="1")
        self.study_session_duration = histogram("opendeck.study_sessions.duration", unit="s")
        self.documents_uploaded = counter("opendeck.documents.uploaded.total", unit="1")
        self.documents_processed = counter("opendeck.documents.processed.total", unit="1")
        self.documents_failed = counter("opendeck.documents.failed.total", unit="1")
        self.document_processing_duration = histogram("opendeck.documents.processing_duration", unit="s")
        self.celery_tasks_started = counter("opendeck.celery.tasks.started.total", unit="1")
        self.celery_tasks_completed = counter("opendeck.celery.tasks.completed.total", unit="1")
        self.celery_tasks_failed = counter("opendeck.celery.tasks.failed.total", unit="1")
        self.celery_queue_length = updown("opendeck.celery.queue.length", unit="1")
        self.db_queries = counter("opendeck.db.queries.total", unit="1")
        self.db_query_duration = histogram("opendeck.db.query.duration", unit="ms")
        self.db_connection_pool_size = updown("opendeck.db.connection_pool.size", unit="1")
