"""Stand-ins for Tempo and Loki on loopback: they speak the same OTLP the collector exports to the
real ones (gRPC for Tempo, HTTP protobuf on /otlp/v1/logs for Loki) and keep what they receive.
Neither store can be had here as a binary; Prometheus can, and the end-to-end tests run it."""

from __future__ import annotations

import gzip
import http.server
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    return getattr(any_value, kind) if kind else None


def attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs}


def send_ok(handler: http.server.BaseHTTPRequestHandler, content_type: str, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    parent_span_id: str = ""
    # OTLP status code (0 unset, 1 ok, 2 error), the names of the span's events, and its times
    # (for what tail sampling decides on).
    status_code: int = 0
    events: tuple[str, ...] = ()
    start_ns: int = 0
    end_ns: int = 0


@dataclass(frozen=True)
class LogRecord:
    body: Any
    trace_id: str
    span_id: str
    severity: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class TraceStore(trace_service_pb2_grpc.TraceServiceServicer):
    """Tempo's OTLP/gRPC ingest. stop() and start() again on the same port simulate an outage;
    block() makes every export hang until release(), like a store that stopped answering."""

    port: int = 0
    spans: list[Span] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: threading.Event = field(default_factory=threading.Event)
    _server: grpc.Server | None = None

    def __post_init__(self) -> None:
        self._open.set()

    def Export(self, request, context):
        while not self._open.wait(timeout=0.1):
            if not context.is_active():
                return trace_service_pb2.ExportTraceServiceResponse()
        received = [
            Span(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                kind=span.kind,
                attributes=attributes(span.attributes),
                resource=attributes(resource_spans.resource.attributes),
                parent_span_id=span.parent_span_id.hex(),
                status_code=span.status.code,
                events=tuple(event.name for event in span.events),
                start_ns=span.start_time_unix_nano,
                end_ns=span.end_time_unix_nano,
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self) -> TraceStore:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.max_receive_message_length", 64 << 20)])
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop(grace=None).wait()
            self._server = None

    def block(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def received(self) -> list[Span]:
        with self._lock:
            return list(self.spans)


class LogStore:
    """Loki's native OTLP endpoint (POST /otlp/v1/logs, protobuf, gzip as the exporter sends it)."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        lock = threading.Lock()
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/otlp/v1/logs":
                    self.send_error(404)
                    return
                request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                received = [
                    LogRecord(
                        body=value(record.body),
                        trace_id=record.trace_id.hex(),
                        span_id=record.span_id.hex(),
                        severity=record.severity_text,
                        attributes=attributes(record.attributes),
                        resource=attributes(resource_logs.resource.attributes),
                    )
                    for resource_logs in request.resource_logs
                    for scope_logs in resource_logs.scope_logs
                    for record in scope_logs.log_records
                ]
                with lock:
                    store.records.extend(received)
                send_ok(self, "application/x-protobuf", logs_service_pb2.ExportLogsServiceResponse().SerializeToString())

            def log_message(self, *args: object) -> None:
                pass

        self._lock = lock
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def received(self) -> list[LogRecord]:
        with self._lock:
            return list(self.records)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class RemoteWriteCapture:
    """A remote-write endpoint (Prometheus or a managed store) that answers 200 to every POST and
    keeps each request's headers and body size: what a signed write looks like on the wire."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], int]] = []
        lock = threading.Lock()
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    capture.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, len(body)))
                send_ok(self, "text/plain", b"")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

