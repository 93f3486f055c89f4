"""The collector we build, running our rendered config on loopback: listen addresses on free
loopback ports, store endpoints on local addresses, data in a work directory. The runtime tests
(tests/processes.py) and the benchmark (scripts/benchmark.py) both run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Optional

from components.plan import StackPlan, placeholder_stores, plan_stack, plan_with_collector
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
from components.services.collector_tiers import ALL, INGEST, NAME, scaled_topology
from components.settings import Settings
from components.yamltext import to_yaml

# The cgroup v1 memory controller, where the machine mounts it (the tests run as root).
MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")


def memory_cgroups_work() -> bool:
    try:
        probe = MEMORY_CGROUPS / f"otelcol-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def plan_with_tier(plan: StackPlan, tier: str) -> StackPlan:
    """The plan, or, where it runs one collector and a tier (or its scrape job) of the scaled
    shape is asked for, the same stack with the collector in two tiers."""
    if tier == ALL or any(tier in (t.kind, t.job) for t in plan.collector.tiers):
        return plan
    return plan_with_collector(plan.settings, plan.facts, scaled_topology(plan.facts, 1, 2))


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


def status_bytes(pid: int, field: str) -> int:
    """A memory size the kernel reports in /proc/<pid>/status (in kB), in bytes; 0 if it has none."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def anonymous_rss_bytes(pid: int) -> int:
    """Resident memory the process allocated itself. The file-backed rest (the queue's memory-mapped
    database) is page cache the kernel reclaims under pressure."""
    return status_bytes(pid, "RssAnon")


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
        plan = plan_with_tier(plan_stack(settings), tier)
        # As deployed: signed remote write where the stack uses a managed metrics store.
        config = render_collector_config(plan, tier, placeholder_stores(plan.facts).metrics)
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
        self.cgroup: Optional[Path] = None

    def in_container(self, settings: Settings) -> None:
        """Runs the collector as its container does: in a memory cgroup of the stack's collector
        memory (the percentages in its config read that limit, and the kernel enforces it), with the
        GOMEMLIMIT the platforms set. Needs a writable cgroup v1 memory controller (root)."""
        memory_mib = settings.memory_mb(NAME)
        self.cgroup = MEMORY_CGROUPS / f"otelcol-test-{self.otlp_grpc}"
        self.cgroup.mkdir()
        (self.cgroup / "memory.limit_in_bytes").write_text(str(memory_mib << 20))
        swap = self.cgroup / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(memory_mib << 20))
        self.env["GOMEMLIMIT"] = go_memory_limit(memory_mib)

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
        procs = self.cgroup / "cgroup.procs" if self.cgroup else None
        # Joins the cgroup before it runs the collector, so every byte it allocates counts.
        join = (lambda: procs.write_text(str(os.getpid()))) if procs else None
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [self.binary, f"--config={self.path}"], stdout=log, stderr=subprocess.STDOUT, env=self.env, preexec_fn=join
            )
        wait_for(f"http://127.0.0.1:{self.health}/")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        if self.cgroup and self.cgroup.exists() and (self.process is None or self.process.poll() is not None):
            self.cgroup.rmdir()

    def peak_memory_bytes(self) -> int:
        """The most the cgroup's processes held at once (RSS and page cache), where it runs in one."""
        assert self.cgroup is not None
        return int((self.cgroup / "memory.max_usage_in_bytes").read_text())

    def killed_for_memory(self) -> bool:
        """The kernel's OOM killer ended a process of the cgroup."""
        assert self.cgroup is not None
        return "oom_kill 0" not in (self.cgroup / "memory.oom_control").read_text()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def scrape(self) -> dict[str, float]:
        return scrape(self.metrics)
