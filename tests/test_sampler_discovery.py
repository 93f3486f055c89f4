"""The ingest tier finds the sampler tier by DNS, as on aws (Cloud Map: an A record per sampler task),
with the load-balancing exporter's dns resolver. The ingest collector runs in a mount namespace of its
own where /etc/hosts names two samplers (127.0.0.2 and 127.0.0.3, one port, as tasks share a port)
and /etc/resolv.conf points at loopback, so no lookup leaves the machine. Then the name goes away, as
when ECS has deregistered the last sampler task, and the collector-down rule must say so.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from components.services.collector import LOAD_BALANCING
from components.services.collector_tiers import INGEST, SAMPLER
from tests.conftest import report
from tests.plans import collector_config
from tests.processes import Collector, Prometheus, free_port, poll
from tests.stand_ins import LogStore, TraceStore
from tests.test_e2e import alert_rules_on_prometheus
from tests.test_faults import spans_request
from tests.test_settings import settings_for

NAME = "samplers.test"  # a reserved name (RFC 6761): never answered by a real resolver
ADDRESSES = ("127.0.0.2", "127.0.0.3")


def mount_namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not mount_namespaces_work(), reason="needs root and unshare -m (CI runs as root)")


def with_own_hosts(binary: str, hosts: Path, resolv: Path, workdir: Path) -> str:
    """A launcher that runs the collector with these files as its /etc/hosts and /etc/resolv.conf
    (bind mounts in a mount namespace of its own; the machine's files are untouched)."""
    launcher = workdir / "otelcol-own-hosts"
    script = 'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
    launcher.write_text(f'#!/bin/sh\nexec unshare -m sh -c {shlex.quote(script)} {hosts} {resolv} {shlex.quote(binary)} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


def failed_lookups(collector: Collector) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{collector.metrics}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("otelcol_loadbalancer_num_resolutions_total{") and 'success="false"' in line
    )


def rule_values(prometheus: Prometheus) -> dict[str, float]:
    rule = next(r for r in alert_rules_on_prometheus() if r.uid == "stack-collector-down")
    return {r["metric"]["job"]: float(r["value"][1]) for r in prometheus.query(rule.query)}


def test_the_ingest_tier_routes_to_samplers_found_by_dns_and_the_rule_fires_when_none_is_left(otelcol, prometheus_bin, tmp_path):
    settings = settings_for("dev")
    tempo, loki = TraceStore().start(), LogStore()
    hosts, resolv = tmp_path / "hosts", tmp_path / "resolv.conf"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{address} {NAME}\n" for address in ADDRESSES))
    # Nothing listens on loopback port 53: a name not in the hosts file fails at once.
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    port = free_port()
    samplers = []
    for address in ADDRESSES:
        (tmp_path / address).mkdir()
        sampler = Collector(otelcol, settings, tmp_path / address, tempo=f"127.0.0.1:{tempo.port}", loki="http://127.0.0.1:9/otlp",
                            prometheus="http://127.0.0.1:9/api/v1/write", tier=SAMPLER)
        sampler.config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = f"{address}:{port}"
        samplers.append(sampler)
    (tmp_path / "ingest").mkdir()
    ingest = Collector(otelcol, settings, tmp_path / "ingest", tempo="127.0.0.1:9", loki="http://127.0.0.1:9/otlp",
                       prometheus="http://127.0.0.1:9/api/v1/write", tier=INGEST, samplers=("unused:1",))
    # The rendered resolver (the harness puts a static one in its place), with the test's port,
    # resolving every second instead of five.
    rendered = collector_config(settings, INGEST)
    resolver = rendered["exporters"][LOAD_BALANCING]["resolver"]["dns"]
    assert resolver["hostname"] == "collector-sampler"
    resolver.update(hostname=NAME, port=str(port), interval="1s", timeout="1s")
    ingest.config["exporters"][LOAD_BALANCING]["resolver"] = {"dns": resolver}
    ingest.binary = with_own_hosts(otelcol, hosts, resolv, tmp_path)
    # The sampler tier is not scraped: on aws its tasks leave service discovery with the name.
    prometheus = Prometheus(prometheus_bin, settings, tmp_path, collector_metrics=f"127.0.0.1:{ingest.metrics}")
    started: list = []
    try:
        for process in (*samplers, ingest, prometheus):
            process.start()
            started.append(process)
        with grpc.insecure_channel(f"127.0.0.1:{ingest.otlp_grpc}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            for _ in range(20):
                stub.Export(spans_request(50, 100), timeout=10)
        # Trace ids spread over both samplers: each was found through the name.
        assert poll(lambda: all(s.scrape().get("otelcol_receiver_accepted_spans_total", 0) > 0 for s in samplers), 30)
        taken = [int(s.scrape()["otelcol_receiver_accepted_spans_total"]) for s in samplers]
        assert ingest.scrape()["otelcol_loadbalancer_num_backends"] == len(ADDRESSES)
        assert poll(lambda: rule_values(prometheus).get("otel-collector-sampler") == len(ADDRESSES), 60)
        healthy = rule_values(prometheus)

        # The last sampler task is gone and deregistered: the name no longer resolves.
        for sampler in samplers:
            sampler.stop()
        hosts.write_text("127.0.0.1 localhost\n")  # in place: the bind mount shows the new content
        assert poll(lambda: failed_lookups(ingest) > 0, 30)
        # The exporter keeps its last list when a lookup fails (resolver_dns.go at 0.159.0), so the
        # count of samplers stays where it was; the rule reads the failing lookups instead.
        assert ingest.scrape()["otelcol_loadbalancer_num_backends"] == len(ADDRESSES)
        assert poll(lambda: rule_values(prometheus).get("otel-collector-sampler") == 0, 150, interval=5)
        report(
            f"sampler discovery: spans per sampler found by DNS {taken}; collector-down rule with both samplers {healthy}, "
            f"with the name gone {rule_values(prometheus)} (samplers counted by the exporter still {len(ADDRESSES)})"
        )
    finally:
        for process in reversed(started):
            if process not in samplers:
                process.stop()
        for sampler in samplers:
            sampler.stop()
        tempo.stop()
        loki.stop()
