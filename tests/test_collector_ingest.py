"""The collector's front door, on the real binary with each stack's rendered config: browsers from
the configured origins may send OTLP/HTTP (CORS), and on prod nothing gets in without the token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.processes import Collector
from tests.test_settings import settings_for

TOKEN = "ingest-token-for-this-test"
TRACES = "/v1/traces"
EMPTY_EXPORT = b""  # an empty ExportTraceServiceRequest: valid protobuf, nothing to store


def start(stack: str, otelcol: str, workdir) -> Collector:
    return Collector(
        otelcol, settings_for(stack), workdir,
        # Stores on closed ports: these tests only knock on the door.
        tempo="127.0.0.1:9", loki="http://127.0.0.1:9/otlp", prometheus="http://127.0.0.1:9/api/v1/write",
        token=TOKEN,
    ).start()


@pytest.fixture(scope="module")
def dev(otelcol, tmp_path_factory) -> Iterator[Collector]:
    collector = start("dev", otelcol, tmp_path_factory.mktemp("dev"))
    yield collector
    collector.stop()


@pytest.fixture(scope="module")
def prod(otelcol, tmp_path_factory) -> Iterator[Collector]:
    collector = start("prod", otelcol, tmp_path_factory.mktemp("prod"))
    yield collector
    collector.stop()


def preflight(collector: Collector, origin: str) -> httpx.Response:
    return httpx.options(
        f"http://127.0.0.1:{collector.otlp_http}{TRACES}",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )


def test_browsers_from_the_configured_origins_may_send(dev):
    (origin,) = settings_for("dev").cors_allowed_origins[:1]
    allowed = preflight(dev, origin)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == origin
    other = preflight(dev, "https://elsewhere.example")
    assert "access-control-allow-origin" not in other.headers


def export(collector: Collector, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{collector.otlp_http}{TRACES}",
        content=EMPTY_EXPORT,
        headers={"Content-Type": "application/x-protobuf", **headers},
    )


def test_dev_takes_telemetry_without_a_token(dev):
    assert export(dev, {}).status_code == 200


def test_prod_refuses_telemetry_without_the_token(prod):
    assert export(prod, {}).status_code == 401
    assert export(prod, {"Authorization": "Bearer not-the-token"}).status_code == 401
    assert export(prod, {"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_prod_grpc_ingest_needs_the_token_too(prod):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{prod.otlp_grpc}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=5)
