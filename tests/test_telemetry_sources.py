"""The produced-metric list starts from what the real instrumentations emit: prove it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from components.telemetry import (
    COUNTER,
    CUSTOM_METRICS,
    GAUGE,
    HISTOGRAM,
    HTTP_OLD,
    HTTP_STABLE,
    LIBRARY_METRICS,
    PROCESS_METRICS,
    UPDOWNCOUNTER,
    Instrument,
    prometheus_base_name,
    prometheus_names,
)
from tests.harness import project_path


def emitted(convention: str) -> set[Instrument]:
    env = {**os.environ, "OTEL_SEMCONV_STABILITY_OPT_IN": convention}
    result = subprocess.run(
        [sys.executable, str(project_path("tests", "probes", "instrumentation.py"))],
        capture_output=True, text=True, env=env, check=True,
    )
    return {Instrument(m["name"], m["kind"], m["unit"], tuple(m["attributes"])) for m in json.loads(result.stdout.splitlines()[-1])}


@pytest.mark.parametrize(("convention", "http_instruments"), [("", HTTP_OLD), ("http", HTTP_STABLE)], ids=["default", "stable"])
def test_catalogue_matches_what_the_instrumentations_emit(convention, http_instruments):
    assert emitted(convention) == set(http_instruments) | set(LIBRARY_METRICS) | set(PROCESS_METRICS)


def test_both_conventions_are_emitted_with_dup():
    names = {i.name for i in emitted("http/dup")}
    assert {"http.server.duration", "http.server.request.duration", "http.client.duration", "http.client.request.duration"} <= names


@pytest.mark.parametrize(
    ("instrument", "expected"),
    [
        (Instrument("http.server.request.duration", HISTOGRAM, "s", ()), "http_server_request_duration_seconds"),
        (Instrument("http.server.duration", HISTOGRAM, "ms", ()), "http_server_duration_milliseconds"),
        (Instrument("http.server.response.size", HISTOGRAM, "By", ()), "http_server_response_size_bytes"),
        (Instrument("http.server.active_requests", UPDOWNCOUNTER, "{request}", ()), "http_server_active_requests"),
        (Instrument("db.client.connections.usage", UPDOWNCOUNTER, "connections", ()), "db_client_connections_usage"),
        (Instrument("flower.task.runtime.seconds", HISTOGRAM, "seconds", ()), "flower_task_runtime_seconds"),
        (Instrument("opendeck.users.registrations.total", COUNTER, "1", ()), "opendeck_users_registrations_total"),
        (Instrument("opendeck.study_sessions.total", COUNTER, "1", ()), "opendeck_study_sessions_total"),
        (Instrument("opendeck.users.active", UPDOWNCOUNTER, "1", ()), "opendeck_users_active"),
        (Instrument("system.cpu.utilization", GAUGE, "1", ()), "system_cpu_utilization_ratio"),
        (Instrument("requests", COUNTER, "1", ()), "requests_total"),
        (Instrument("process.cpu.time", COUNTER, "s", ()), "process_cpu_time_seconds_total"),
        (Instrument("process.memory.usage", UPDOWNCOUNTER, "By", ()), "process_memory_usage_bytes"),
        (Instrument("process.open_file_descriptor.count", UPDOWNCOUNTER, "", ()), "process_open_file_descriptor_count"),
        (Instrument("cpython.gc.collections", COUNTER, "{collection}", ()), "cpython_gc_collections_total"),
        (Instrument("opendeck.db.query.duration", HISTOGRAM, "ms", ()), "opendeck_db_query_duration_milliseconds"),
    ],
    ids=lambda v: v.name if isinstance(v, Instrument) else v,
)
def test_prometheus_naming(instrument, expected):
    assert prometheus_base_name(instrument) == expected


def test_histograms_produce_bucket_sum_and_count():
    names = prometheus_names(Instrument("opendeck.documents.processing_duration", HISTOGRAM, "s", ()))
    assert names == {f"opendeck_documents_processing_duration_seconds_{s}" for s in ("bucket", "sum", "count")}


def test_custom_metrics_follow_the_plan():
    assert len(CUSTOM_METRICS) == 21
    assert all(i.name.startswith("opendeck.") for i in CUSTOM_METRICS)
