"""prod's public browser route, on the real collector with the prod config: web pages from
corsAllowedOrigins send traces and logs without a token; what they send is limited (body size,
attribute count and length, no query strings) and reaches the stores through the main pipelines;
metrics and oversized bodies are refused; the server route still demands the token."""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from components.services.collector_browser import (
    BROWSER_LOGS_PATH,
    BROWSER_MAX_ATTRIBUTES,
    BROWSER_MAX_BODY_BYTES,
    BROWSER_MAX_VALUE_CHARS,
    BROWSER_TRACES_PATH,
)
from tests.processes import Collector, poll
from tests.stand_ins import LogStore, TraceStore
from tests.test_settings import settings_for

ORIGIN = settings_for("prod").cors_allowed_origins[0]


@dataclass
class Prod:
    collector: Collector
    tempo: TraceStore
    loki: LogStore

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.collector.otlp_browser}{path}"


@pytest.fixture(scope="module")
def prod(otelcol, tmp_path_factory) -> Iterator[Prod]:
    tempo, loki = TraceStore().start(), LogStore()
    # Every trace kept: this test is about the route, not prod's sampling.
    settings = settings_for("prod", traceSamplingPercentage="100")
    collector = Collector(
        otelcol, settings, tmp_path_factory.mktemp("prod-browser"), tempo=f"127.0.0.1:{tempo.port}",
        loki=f"http://127.0.0.1:{loki.port}/otlp", prometheus=f"http://127.0.0.1:{loki.port}/api/v1/write",
        token="server-token",
    ).start()
    yield Prod(collector, tempo, loki)
    collector.stop()
    tempo.stop()
    loki.stop()


def attribute(key: str, text: str) -> dict:
    return {"key": key, "value": {"stringValue": text}}


def browser_traces(trace_id: str, attributes: list[dict]) -> bytes:
    """OTLP/JSON as the web SDK's exporter sends it (ids in hex)."""
    span = {
        "traceId": trace_id, "spanId": secrets.token_hex(8), "name": "GET", "kind": 3,
        "startTimeUnixNano": "1764633600000000000", "endTimeUnixNano": "1764633600100000000", "attributes": attributes,
    }
    resource = {"attributes": [attribute("service.name", "opendeck-web")]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "test"}, "spans": [span]}]}]}).encode()


def post(url: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": "application/json", "Origin": ORIGIN, **headers})


def arrived(prod: Prod, trace_id: str):
    return poll(lambda: [s for s in prod.tempo.received() if s.trace_id == trace_id], seconds=15, interval=0.1)


def test_a_listed_origin_sends_traces_without_a_token(prod):
    preflight = httpx.options(
        prod.url(BROWSER_TRACES_PATH),
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == ORIGIN
    trace_id = secrets.token_hex(16)
    many = [attribute(f"app.extra.{n}", "x") for n in range(BROWSER_MAX_ATTRIBUTES + 10)]
    body = browser_traces(trace_id, [
        attribute("url.full", "https://api.opendeck.example/api/decks?reset_token=s3cret#access_token=s3cret"),
        attribute("app.note", "y" * (BROWSER_MAX_VALUE_CHARS + 500)),
        *many,
    ])
    response = post(prod.url(BROWSER_TRACES_PATH), body)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    (span,) = arrived(prod, trace_id)
    assert span.attributes["url.full"] == "https://api.opendeck.example/api/decks"
    assert len(span.attributes) <= BROWSER_MAX_ATTRIBUTES
    assert all(len(str(v)) <= BROWSER_MAX_VALUE_CHARS for v in span.attributes.values())
    # Through the main pipeline: the stack's environment was added there.
    assert span.resource["deployment.environment.name"] == "production"


def test_a_listed_origin_sends_logs_without_a_token(prod):
    trace_id = secrets.token_hex(16)
    record = {"timeUnixNano": "1764633600000000000", "traceId": trace_id, "severityText": "ERROR", "body": {"stringValue": "z" * 10_000}}
    body = json.dumps({"resourceLogs": [{"resource": {"attributes": [attribute("service.name", "opendeck-web")]},
                                         "scopeLogs": [{"scope": {"name": "test"}, "logRecords": [record]}]}]}).encode()
    assert post(prod.url(BROWSER_LOGS_PATH), body).status_code == 200
    (log,) = poll(lambda: [r for r in prod.loki.received() if r.trace_id == trace_id], seconds=15, interval=0.1)
    assert len(log.body) < 10_000


def test_other_origins_are_refused_at_the_preflight(prod):
    preflight = httpx.options(
        prod.url(BROWSER_TRACES_PATH),
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize("path", ["/browser/v1/metrics", "/v1/metrics", "/v1/traces"])
def test_the_browser_route_serves_traces_and_logs_only(prod, path):
    assert post(prod.url(path), b'{"resourceMetrics": []}').status_code == 404


def test_oversized_bodies_are_refused_compressed_or_not(prod):
    padding = [attribute("app.padding", "p" * 1000) for _ in range(BROWSER_MAX_BODY_BYTES // 1000)]
    plain_id, gzipped_id, small_id = (secrets.token_hex(16) for _ in range(3))
    plain = browser_traces(plain_id, padding)
    assert len(plain) > BROWSER_MAX_BODY_BYTES
    assert post(prod.url(BROWSER_TRACES_PATH), plain).status_code == 400
    # Small on the wire, too large once decompressed: refused all the same.
    gzipped = gzip.compress(browser_traces(gzipped_id, padding))
    assert len(gzipped) < BROWSER_MAX_BODY_BYTES
    assert post(prod.url(BROWSER_TRACES_PATH), gzipped, **{"Content-Encoding": "gzip"}).status_code == 400
    # A request sent after them arrives; they never do.
    assert post(prod.url(BROWSER_TRACES_PATH), browser_traces(small_id, [])).status_code == 200
    assert arrived(prod, small_id)
    assert {s.trace_id for s in prod.tempo.received()}.isdisjoint({plain_id, gzipped_id})


def test_the_server_route_still_needs_the_token(prod):
    body = browser_traces(secrets.token_hex(16), [])
    assert post(f"http://127.0.0.1:{prod.collector.otlp_http}/v1/traces", body).status_code == 401
    with grpc.insecure_channel(f"127.0.0.1:{prod.collector.otlp_grpc}") as channel, pytest.raises(grpc.RpcError) as refused:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
