"""The prod shapes no other runtime test starts, run as the stack renders them (changed only in hosts,
ports and local paths): the collector and Prometheus with the managed metrics store (metricsBackend
amp: SigV4 with placeholder credentials, the store a capturing stand-in on loopback, no traffic to
AWS), and every shape's Prometheus config through promtool.

Not run here: Prometheus's DNS service discovery of a scaled-out collector (it asks a DNS server,
which the machine does not have); promtool checks that config, and tests/test_renderers.py what it
asks for."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest
import yaml
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from components.render import render_stack
from components.services.prometheus import prometheus_args
from tests.processes import Collector, free_port, poll, wait_for
from tests.stand_ins import RemoteWriteCapture
from tests.test_render import SHAPES
from tests.test_settings import settings_for

TOKEN = "production-shape-token"
# Placeholder credentials: the signers sign with them; nothing leaves loopback.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIAPLACEHOLDER00000", "AWS_SECRET_ACCESS_KEY": "placeholder", "AWS_EC2_METADATA_DISABLED": "true"}
WORKSPACE_PATH = "/workspaces/ws-test/api/v1/remote_write"


def signed_for_the_managed_store(headers: dict[str, str]) -> bool:
    """An AWS Signature Version 4 for Amazon Managed Service for Prometheus in the stack's region."""
    authorization = headers.get("authorization", "")
    return (
        authorization.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_ENV['AWS_ACCESS_KEY_ID']}/")
        and "/eu-west-1/aps/aws4_request" in authorization
        and "x-amz-date" in headers
    )


def metrics_request() -> bytes:
    point = metrics_pb2.NumberDataPoint(time_unix_nano=time.time_ns(), as_double=1.0)
    metric = metrics_pb2.Metric(name="shape.probe", unit="1", gauge=metrics_pb2.Gauge(data_points=[point]))
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="shape-probe"))])
    request = metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[metrics_pb2.ResourceMetrics(resource=resource, scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metric])])]
    )
    return request.SerializeToString()


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_deployed_prometheus_config_passes_promtool(shape, promtool_bin, tmp_path):
    stack, overrides = SHAPES[shape]
    path = tmp_path / "prometheus.yml"
    path.write_text(render_stack(stack, overrides=overrides)["prometheus/prometheus.yml"])
    result = subprocess.run([promtool_bin, "check", "config", "--syntax-only", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_collector_signs_its_remote_write_to_the_managed_store(otelcol, tmp_path):
    capture = RemoteWriteCapture()
    collector = Collector(
        otelcol, settings_for("prod", metricsBackend="amp"), tmp_path, tempo="127.0.0.1:9", loki="http://127.0.0.1:9/otlp",
        prometheus=f"http://127.0.0.1:{capture.port}{WORKSPACE_PATH}", token=TOKEN,
    )
    assert collector.config["exporters"]["prometheus_remote_write"]["http"]["auth"] == {"authenticator": "sigv4auth"}
    collector.env |= AWS_ENV
    try:
        collector.start()
        response = httpx.post(
            f"http://127.0.0.1:{collector.otlp_http}/v1/metrics", content=metrics_request(),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"}, timeout=10,
        )
        assert response.status_code == 200, response.text
        assert poll(lambda: capture.requests, 30), "no remote write reached the store"
        path, headers, size = capture.requests[0]
        assert path == WORKSPACE_PATH and size > 0
        assert headers.get("content-encoding") == "snappy"
        assert signed_for_the_managed_store(headers), headers.get("authorization")
    finally:
        collector.stop()
        capture.stop()


def test_prometheus_in_agent_mode_signs_what_it_scrapes_to_the_managed_store(prometheus_bin, tmp_path):
    config = yaml.safe_load(render_stack("prod", overrides={"metricsBackend": "amp"})["prometheus/prometheus.yml"])
    capture, port = RemoteWriteCapture(), free_port()
    assert "storage" not in config and set(config["remote_write"][0]) == {"url", "sigv4"}
    config["remote_write"][0]["url"] = f"http://127.0.0.1:{capture.port}{WORKSPACE_PATH}"
    password = tmp_path / "grafana_metrics_password"
    password.write_text("unused-here")
    for job in config["scrape_configs"]:
        # Every job at Prometheus's own port (its /metrics is there); the rest of each as rendered.
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
        if "basic_auth" in job:
            job["basic_auth"]["password_file"] = str(password)
    config["global"]["scrape_interval"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    flags = [a for a in prometheus_args(agent=True) if not a.startswith(("--config.file=", "--storage.agent.path="))]
    assert "--agent" in flags
    command = [prometheus_bin, *flags, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.agent.path={tmp_path / 'wal'}",
               f"--web.listen-address=127.0.0.1:{port}"]
    with (tmp_path / "prometheus.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **AWS_ENV})
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready")
        assert poll(lambda: capture.requests, 60), (tmp_path / "prometheus.log").read_text()[-2000:]
        path, headers, size = capture.requests[0]
        assert path == WORKSPACE_PATH and size > 0
        assert signed_for_the_managed_store(headers), headers.get("authorization")
    finally:
        process.terminate()
        process.wait(timeout=30)
        capture.stop()
