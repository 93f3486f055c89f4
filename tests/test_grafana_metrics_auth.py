"""Grafana's /metrics asks for basic auth, and a real Prometheus (built at the pinned image's version) running the rendered config
answers it from the password file the platform writes (nothing else knows the password)."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator

import pytest

from components.services import grafana, prometheus
from tests.processes import Prometheus, free_port, poll
from tests.test_settings import settings_for

PASSWORD = "grafana-metrics-password-0123"


class GrafanaMetrics:
    """Answers /metrics as Grafana does with [metrics] basic_auth_username/password set: 401 without
    the right credentials."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[str] = []
        expected = "Basic " + base64.b64encode(f"{grafana.METRICS_USER}:{PASSWORD}".encode()).decode()
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                given = self.headers.get("Authorization", "")
                seen.append(given)
                if self.path != "/metrics" or given != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = b"grafana_build_info 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def grafana_metrics() -> Iterator[GrafanaMetrics]:
    server = GrafanaMetrics()
    yield server
    server.stop()


def grafana_up(server: Prometheus) -> float | None:
    result = server.query(f'up{{job="{prometheus.GRAFANA_JOB}"}}')
    return float(result[0]["value"][1]) if result else None


@pytest.mark.parametrize("password, up", [(PASSWORD, 1.0), ("not-the-password", 0.0)])
def test_prometheus_scrapes_grafana_with_the_password_from_its_file(prometheus_bin, grafana_metrics, tmp_path, password, up):
    server = Prometheus(
        prometheus_bin, settings_for("dev"), tmp_path, collector_metrics=f"127.0.0.1:{free_port()}",
        grafana=f"127.0.0.1:{grafana_metrics.port}", grafana_metrics_password=password,
    ).start()
    try:
        assert poll(lambda: grafana_up(server) is not None, seconds=30)
        assert poll(lambda: grafana_up(server) == up, seconds=30), grafana_up(server)
        sent = base64.b64decode(grafana_metrics.seen[-1].removeprefix("Basic ")).decode()
        assert sent == f"{grafana.METRICS_USER}:{password}"
        if up:
            assert server.query('grafana_build_info{job="grafana"}')
    finally:
        server.stop()
