"""Real processes on loopback for the runtime tests: the collector we build, Prometheus, the sample
app. Each runs the config our renderers produce, changed only where a single machine needs it:
listen addresses on free loopback ports, store endpoints on local addresses, data in a temp dir."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
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
from components.services.collector_config import (
    BEARER_TOKEN_FILE_ENV,
    LOAD_BALANCING,
    LOKI_EXPORTER,
    METRICS_WRITERS,
    QUEUE_STORAGE,
    TEMPO_EXPORTER,
    go_memory_limit,
    render_collector_config,
)
from components.services.collector_sampling import pending_traces
from components.services.collector_tiers import ALL, INGEST, SAMPLER_JOB
from components.services.prometheus import GRAFANA_JOB, prometheus_args, render_prometheus_config
from components.settings import Settings
from components.yamltext import to_yaml
from tests.plans import plan_with_tier

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_APP = ROOT / "examples" / "opendeck-app"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


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


def scrape(port: int) -> dict[str, float]:
    """Prometheus text format from 127.0.0.1:port/metrics, summed per metric name."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_and_labels, sample = line.rsplit(" ", 1)
            name = name_and_labels.split("{", 1)[0]
            samples[name] = samples.get(name, 0.0) + float(sample)
    return samples


def anonymous_rss_bytes(pid: int) -> int:
    """Resident memory the process allocated itself. The file-backed rest (the queue's memory-mapped
    database) is page cache the kernel reclaims under pressure."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


class Collector:
    """The built collector running our rendered config for a stack."""

    def __init__(
        self,
        binary: str,
        settings: Settings,
        workdir: Path,
        tempo: str,
        loki: str,
        prometheus: str,
        token: Optional[str] = None,
        tier: str = ALL,
        samplers: tuple[str, ...] = (),
    ):
        """tier INGEST routes to the samplers (host:port each) with the static resolver: on loopback
        every sampler listens on its own port of one address, which one DNS name cannot tell apart.
        A tier the stack does not have (the dev stack runs one collector) is rendered as the
        stack would if its collector scaled out."""
        config = render_collector_config(plan_with_tier(plan_stack(settings), tier), tier)
        self.tier = tier
        self.otlp_grpc, self.otlp_http, self.health, self.metrics = (free_port() for _ in range(4))
        protocols = config["receivers"]["otlp"]["protocols"]
        protocols["grpc"]["endpoint"] = f"127.0.0.1:{self.otlp_grpc}"
        if "http" in protocols:
            protocols["http"]["endpoint"] = f"127.0.0.1:{self.otlp_http}"
        # The browser route, where the stack has one (prod).
        self.otlp_browser: Optional[int] = None
        if "otlp/browser" in config["receivers"]:
            self.otlp_browser = free_port()
            config["receivers"]["otlp/browser"]["protocols"]["http"]["endpoint"] = f"127.0.0.1:{self.otlp_browser}"
        config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{self.health}"
        if tier == INGEST:
            config["exporters"][LOAD_BALANCING]["resolver"] = {"static": {"hostnames": list(samplers)}}
        queue = workdir / "queue"
        queue.mkdir(parents=True, exist_ok=True)
        config["extensions"][QUEUE_STORAGE]["directory"] = str(queue)
        config["extensions"][QUEUE_STORAGE]["compaction"]["directory"] = str(queue)
        reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
        reader.update(host="127.0.0.1", port=self.metrics)
        endpoints = {TEMPO_EXPORTER: tempo, LOKI_EXPORTER: loki}
        for exporter, endpoint in endpoints.items():
            if exporter in config["exporters"]:
                config["exporters"][exporter]["endpoint"] = endpoint
        self.config = config
        self.write_metrics_to(prometheus)
        self.binary = binary
        # Each process its own identity on the service-graph series, as each container or task has its
        # own host name (here all share the machine's).
        self.env = {**os.environ, "OTEL_RESOURCE_ATTRIBUTES": f"host.name=collector-{self.otlp_grpc}"}
        if token is not None:
            # As the platforms hand it over: a file the collector alone reads, named by a variable.
            token_file = workdir / "otlp_bearer_token"
            token_file.write_text(token)
            token_file.chmod(0o400)
            self.env[BEARER_TOKEN_FILE_ENV] = str(token_file)
        self.config = config
        self.path = workdir / "collector.yaml"
        self.log = workdir / "collector.log"
        self.process: Optional[subprocess.Popen] = None

    def size_for(self, container_mib: int) -> None:
        """The stack's memory percentages, GOMEMLIMIT and tail sampling's trace budget, sized for a
        container of container_mib instead of this machine's memory (what a percentage reads here)."""
        for name, processor in self.config["processors"].items():
            if name.startswith("memory_limiter"):
                limit, spike = processor.pop("limit_percentage"), processor.pop("spike_limit_percentage")
                processor.update(limit_mib=container_mib * limit // 100, spike_limit_mib=container_mib * spike // 100)
        if "tail_sampling" in self.config["processors"]:
            self.config["processors"]["tail_sampling"]["num_traces"] = pending_traces(container_mib)
        self.env["GOMEMLIMIT"] = go_memory_limit(container_mib)

    def write_metrics_to(self, url: str) -> None:
        for name in METRICS_WRITERS:
            if name in self.config["exporters"]:
                self.config["exporters"][name]["http"]["endpoint"] = url

    def start(self) -> Collector:
        self.path.write_text(to_yaml(self.config))
        with self.log.open("a") as log:
            self.process = subprocess.Popen([self.binary, f"--config={self.path}"], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for(f"http://127.0.0.1:{self.health}/")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def scrape(self) -> dict[str, float]:
        return scrape(self.metrics)


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
