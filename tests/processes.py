"""Real processes on loopback for the runtime tests: the collector we build, Prometheus, the sample
app. Each runs the config our renderers produce, changed only where a single machine needs it:
listen addresses on free loopback ports, store endpoints on local addresses, data in a temp dir.
The collector's harness is shared with the benchmark, so it lives in scripts/local_collector.py."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

import yaml

from components.plan import ScrapeTarget, plan_stack
from components.services.collector_tiers import SAMPLER_JOB
from components.services.prometheus import GRAFANA_JOB, prometheus_args, render_prometheus_config
from components.settings import Settings
from components.yamltext import to_yaml

# The collector's harness, also imported from here by the tests.
from scripts.local_collector import Collector, anonymous_rss_bytes, free_port, plan_with_tier, scrape, wait_for  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_APP = ROOT / "examples" / "opendeck-app"


def built_binary(variable: str, built_by: str) -> str:
    """A tool scripts/test.sh built at its pinned version and named in the environment."""
    path = os.environ.get(variable, "")
    assert path and Path(path).is_file(), f"set {variable} to a binary built by {built_by} (scripts/test.sh does)"
    return path


def poll(check, seconds: float, interval: float = 0.5):
    """Call check() until it returns something truthy; return that, or the last value at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


class Prometheus:
    """Prometheus running our rendered config and flags, scraping the collector's own metrics."""

    def __init__(
        self, binary: str, settings: Settings, workdir: Path, collector_metrics: str, sampler_metrics: Optional[str] = None,
        grafana: Optional[str] = None, grafana_metrics_password: str = "grafana-metrics-password-for-tests",
    ):
        """sampler_metrics: the sampler tier's metrics endpoint, scraped as its own job, where one runs."""
        self.port = free_port()
        addresses = {
            "otel-collector": collector_metrics,
            SAMPLER_JOB: sampler_metrics,
            "prometheus": f"127.0.0.1:{self.port}",
            "grafana": grafana,
        }
        plan = plan_stack(settings)
        if sampler_metrics is not None:
            plan = plan_with_tier(plan, SAMPLER_JOB)
        # Each job of the stack at its loopback address; what does not run here (Tempo, Loki,
        # Grafana unless given) on a free port, so its `up` is 0, which the stack-health panel shows.
        targets = {}
        for job in plan.scrape_targets:
            host, port = (addresses.get(job) or f"127.0.0.1:{free_port()}").rsplit(":", 1)
            targets[job] = ScrapeTarget(host, int(port))
        config = render_prometheus_config(dataclasses.replace(plan, scrape_targets=targets))
        # The file the platform writes to SECRETS_DIR, here in the work directory.
        password_file = workdir / "grafana_metrics_password"
        password_file.write_text(grafana_metrics_password)
        (grafana_job,) = [job for job in config["scrape_configs"] if job["job_name"] == GRAFANA_JOB]
        grafana_job["basic_auth"]["password_file"] = str(password_file)
        # Seconds, not the stack's interval, so a short test sees several scrapes.
        config["global"]["scrape_interval"] = "1s"
        self.path = workdir / "prometheus.yml"
        self.path.write_text(to_yaml(config))
        flags = [
            a for a in prometheus_args()
            if not a.startswith(("--config.file=", "--storage.tsdb.path=", "--web.listen-address="))
        ]
        self.command = [
            binary, *flags, f"--config.file={self.path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.log = workdir / "prometheus.log"
        self.process: Optional[subprocess.Popen] = None

    @property
    def remote_write_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/write"

    def start(self) -> Prometheus:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        wait_for(f"http://127.0.0.1:{self.port}/-/ready")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            reply = json.load(urllib.request.urlopen(url, timeout=10))
        except urllib.error.HTTPError as error:
            # 4xx: Prometheus parsed the query and refused to run it; its reason names the problem.
            raise AssertionError(f"{expr}\n-> {error.code}: {error.read().decode()}") from None
        assert reply["status"] == "success", reply
        return reply["data"]["result"]


class SampleApp:
    """examples/opendeck-app served by uvicorn, exporting OTLP/gRPC to the collector."""

    def __init__(self, workdir: Path, otlp_grpc_port: int, extra_env: Optional[dict[str, str]] = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_grpc_port}",
            "OTEL_SERVICE_NAME": "opendeck-backend",
            # Seconds instead of the SDK's minute, so a test sees several exports.
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            **(extra_env or {}),
        }
        self.log = workdir / "app.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> SampleApp:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "app.py", "--port", str(self.port)],
                cwd=SAMPLE_APP, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_for(f"{self.url}/api/topics")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # SIGINT: uvicorn shuts down cleanly and the SDK flushes what it holds.
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
