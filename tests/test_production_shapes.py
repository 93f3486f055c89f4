"""The prod shapes no other runtime test starts, run as the stack renders them (changed only in hosts,
ports and local paths): the collector and Prometheus with the managed metrics store (metricsBackend
amp: SigV4 with placeholder credentials, the store a capturing stand-in on loopback, no traffic to
AWS), and every shape's Prometheus config through promtool.

A scaled-out collector is scraped task by task through DNS, as Cloud Map answers on aws: a DNS
stand-in on loopback (dnslib) gives each tier's name an A record per task, in a mount namespace
where /etc/resolv.conf points at it."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time

import httpx
import pytest
import yaml
from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from components.render import render_stack
from components.services.prometheus import prometheus_args
from tests.processes import Collector, free_port, poll, wait_for
from tests.stand_ins import RemoteWriteCapture
from tests.test_render import SHAPES
from tests.test_sampler_discovery import mount_namespaces_work, with_own_hosts
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


class MetricsEndpoint:
    """A task's /metrics at one loopback address."""

    def __init__(self, address: str, port: int):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"# TYPE task_up gauge\ntask_up 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((address, port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def dns_stand_in(records: dict[str, list[str]]) -> DNSServer:
    """A records for the given names on 127.0.0.1:53; any other name does not exist."""

    class Records(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            addresses = records.get(str(request.q.qname).rstrip("."), []) if request.q.qtype == QTYPE.A else []
            for address in addresses:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=5))
            if not addresses:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply

    server = DNSServer(Records(), port=53, address="127.0.0.1")
    server.start_thread()
    return server


@pytest.mark.skipif(not mount_namespaces_work(), reason="needs root and unshare -m (CI runs as root)")
def test_prometheus_scrapes_every_task_of_a_scaled_out_collector_found_by_dns(prometheus_bin, tmp_path):
    config = yaml.safe_load(render_stack("prod", overrides={"collectorMaxTasks": "4"})["prometheus/prometheus.yml"])
    discovered = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"] if "dns_sd_configs" in job}
    assert set(discovered) == {"otel-collector", "otel-collector-sampler"}
    tasks = {"otel-collector": ["127.0.0.2", "127.0.0.3"], "otel-collector-sampler": ["127.0.0.4", "127.0.0.5", "127.0.0.6"]}
    task_port, port = free_port(), free_port()
    endpoints = [MetricsEndpoint(address, task_port) for addresses in tasks.values() for address in addresses]
    dns = dns_stand_in({discovered[job]["names"][0]: addresses for job, addresses in tasks.items()})
    for job in config["scrape_configs"]:
        if "dns_sd_configs" in job:
            job["dns_sd_configs"][0]["port"] = task_port
            job["dns_sd_configs"][0]["refresh_interval"] = "1s"
        else:
            # The single-task jobs at a closed port: only the discovered ones matter here.
            job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
        job.pop("basic_auth", None)
    config["global"]["scrape_interval"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    hosts, resolv = tmp_path / "hosts", tmp_path / "resolv.conf"
    hosts.write_text("127.0.0.1 localhost\n")
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    flags = [a for a in prometheus_args() if not a.startswith(("--config.file=", "--storage.tsdb.path="))]
    command = [with_own_hosts(prometheus_bin, hosts, resolv, tmp_path), *flags, f"--config.file={tmp_path / 'prometheus.yml'}",
               f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]
    with (tmp_path / "prometheus.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready")

        def scraped() -> dict[str, set[str]]:
            result = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": "up == 1"}, timeout=5).json()["data"]["result"]
            found: dict[str, set[str]] = {}
            for series in result:
                found.setdefault(series["metric"]["job"], set()).add(series["metric"]["instance"].rsplit(":", 1)[0])
            return found

        assert poll(lambda: all(scraped().get(job) == set(addresses) for job, addresses in tasks.items()), 60), scraped()
    finally:
        process.terminate()
        process.wait(timeout=30)
        dns.stop()
        for endpoint in endpoints:
            endpoint.stop()



def test_prods_own_prometheus_config_runs_and_scrapes(prometheus_bin, tmp_path):
    """The one-task prod shape (self-hosted Prometheus, its TSDB retention and out-of-order window)
    as deployed, every job pointed at a port on loopback."""
    config = yaml.safe_load(render_stack("prod")["prometheus/prometheus.yml"])
    assert "out_of_order_time_window" in config["storage"]["tsdb"] and "remote_write" not in config
    port = free_port()
    password = tmp_path / "grafana_metrics_password"
    password.write_text("unused-here")
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}" if job["job_name"] == "prometheus" else "127.0.0.1:9"]}]
        if "basic_auth" in job:
            job["basic_auth"]["password_file"] = str(password)
    config["global"]["scrape_interval"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    flags = [a for a in prometheus_args() if not a.startswith(("--config.file=", "--storage.tsdb.path="))]
    command = [prometheus_bin, *flags, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}"]
    with (tmp_path / "prometheus.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready")

        def up() -> dict[str, str]:
            result = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": "up"}, timeout=5).json()["data"]["result"]
            return {series["metric"]["job"]: series["value"][1] for series in result}

        jobs = {job["job_name"] for job in config["scrape_configs"]}
        assert poll(lambda: set(up()) == jobs and up()["prometheus"] == "1", 30), up()
    finally:
        process.terminate()
        process.wait(timeout=30)
