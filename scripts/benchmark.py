"""Collector throughput on this machine for the traces pipeline: spans per second sustained, CPU and
peak memory, for the pipeline as it was before issue 9 (head sampling, no connectors), the single
collector of today (span metrics, service graph, tail sampling), the ingest and sampler tiers on
loopback, and a bare OTLP-in/OTLP-out pipeline. All variants run in one go, so their ratio holds
even if the machine's absolute speed varies.

    .venv/bin/python scripts/benchmark.py [--seconds 30] [--out benchmarks/collector.md]

Sender processes replay an SDK-sized OTLP export as fast as the collector accepts it, with fresh
trace ids in every request (tail sampling holds a trace until its decision; repeated ids would be
late spans of decided traces); a second collector with a no-op exporter stands in for Tempo.
Everything shares this machine's cores, so the numbers are a floor for a dedicated host, not a
capacity plan. The new result is put on top of the file; earlier results stay below it, dated.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.plan import plan_stack  # noqa: E402
from components.services.collector import render_collector_config  # noqa: E402
from components.services.collector_tiers import ALL, INGEST, SAMPLER  # noqa: E402
from components.settings import load_stack_settings  # noqa: E402
from components.yamltext import to_yaml  # noqa: E402
from scripts.local_collector import Collector, anonymous_rss_bytes, free_port, status_bytes, wait_for  # noqa: E402

# The traces pipeline before issue 9 (the last commit before it): a head sampler at the end of the
# traces pipeline, Tempo's metrics generator making the span metrics. Its collector had the
# probabilistic sampler, which today's manifest no longer holds: it is built from that commit's manifest.
BEFORE_ISSUE_9 = "2435526e4eda3dfc88e21acb40638263d31f1121"
BEFORE_ISSUE_9_TRACES = ["memory_limiter", "filter/health", "attributes/scrub", "resource", "probabilistic_sampler"]
# Both sampling pipelines keep what prod keeps by default, so Tempo gets the same share.
SAMPLING_PERCENTAGE = "10"
# Sender processes, each as fast as the collector answers.
SENDERS = 2
TEMPO_EXPORTER = "otlp_grpc/tempo"


def build(binary_script: str, *args: str) -> str:
    return subprocess.run([str(ROOT / "scripts" / binary_script), *args], check=True, capture_output=True, text=True).stdout.strip()


def build_collector_before_issue_9(workdir: Path) -> str:
    manifest = workdir / "collector-builder-before-issue-9.yaml"
    manifest.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE_ISSUE_9}:configs/collector-builder.yaml"],
                                        check=True, capture_output=True).stdout)
    return build("build-collector.sh", str(manifest))


# The second half of every trace id in the request; each sender replaces it before each export. The
# random half comes last: tail sampling's probabilistic policy hashes the id with FNV-1a, whose
# last bytes must vary as in real ids (ids differing only there were kept at 40%, not 10%).
TRACE_ID_RANDOM_HALF = os.urandom(8)


def export_request() -> bytes:
    """One SDK-sized export: 512 spans in traces of 4 (a server span and three children), with the
    attributes an instrumented FastAPI app sets."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1 import trace_pb2

    def attributes(**values: str) -> list[KeyValue]:
        return [KeyValue(key=k.replace("_", "."), value=AnyValue(string_value=v)) for k, v in values.items()]

    spans = []
    for trace in range(128):
        trace_id = trace.to_bytes(8, "big") + TRACE_ID_RANDOM_HALF
        root = (trace * 4 + 1).to_bytes(8, "big")
        spans.append(trace_pb2.Span(trace_id=trace_id, span_id=root, name="GET /api/decks", kind=2,
                                    start_time_unix_nano=1, end_time_unix_nano=2_000_000,
                                    attributes=attributes(http_route="/api/decks", http_request_method="GET", url_scheme="http")))
        for child in range(3):
            spans.append(trace_pb2.Span(trace_id=trace_id, span_id=(trace * 4 + 2 + child).to_bytes(8, "big"), parent_span_id=root,
                                        name="SELECT decks", kind=3, start_time_unix_nano=1, end_time_unix_nano=500_000,
                                        attributes=attributes(db_system="postgresql", db_operation="SELECT")))
    resource = Resource(attributes=attributes(service_name="opendeck-backend", service_version="1.0.0"))
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


SPANS_PER_REQUEST = 512


def load(port: int, payload: bytes, seconds: float) -> None:
    """One sender: the serialized request back to back, with new trace ids each time (replacing
    bytes keeps the sender cheap; serializing anew would make it the bottleneck)."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                export(payload.replace(TRACE_ID_RANDOM_HALF, os.urandom(8)), timeout=10)
            except grpc.RpcError:
                time.sleep(0.01)


def sink(otelcol: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    """A collector that accepts OTLP and drops it: the fastest possible Tempo. Built from the same
    manifest (which holds only what our configs use): a filter that matches every span, so the
    exporter the pipeline needs never sends anything."""
    port, health = free_port(), free_port()
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {"filter/everything": {"traces": {"span": ["true"]}}},
        "exporters": {"otlp_grpc/nowhere": {"endpoint": "127.0.0.1:9", "tls": {"insecure": True}}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health}"}},
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["filter/everything"], "exporters": ["otlp_grpc/nowhere"]}},
        },
    }
    path = workdir / "sink.yaml"
    path.write_text(to_yaml(config))
    process = subprocess.Popen([otelcol, f"--config={path}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(f"http://127.0.0.1:{health}/")
    return process, port


def single(otelcol: str, workdir: Path, sink_port: int, config: dict) -> Collector:
    """One collector running `config`, on the loopback addresses Collector chose, sending to the sink."""
    collector = Collector(otelcol, load_stack_settings("dev"), workdir, tempo=f"127.0.0.1:{sink_port}", loki="http://127.0.0.1:9/otlp",
                          prometheus="http://127.0.0.1:9/api/v1/write")
    listen = copy.deepcopy(collector.config)
    config = copy.deepcopy(config)
    config["receivers"] = listen["receivers"]
    config["extensions"] = {**config["extensions"], **listen["extensions"]}
    config["service"]["telemetry"] = listen["service"]["telemetry"]
    config["exporters"] = {name: {**exporter, **_endpoint(listen["exporters"][name])} for name, exporter in config["exporters"].items()}
    collector.config = config
    return collector


def today_config() -> dict:
    return render_collector_config(plan_stack(load_stack_settings("dev", traceSamplingPercentage=SAMPLING_PERCENTAGE)), ALL)


def before_issue_9_config() -> dict:
    """Today's config with the traces pipeline of before issue 9: the same receiver, processors
    and exporter, the head sampler last, no connectors and no tail sampling."""
    config = today_config()
    config["processors"]["probabilistic_sampler"] = {"sampling_percentage": float(SAMPLING_PERCENTAGE)}
    pipelines = config["service"]["pipelines"]
    pipelines["traces"] = {"receivers": ["otlp"], "processors": BEFORE_ISSUE_9_TRACES, "exporters": [TEMPO_EXPORTER]}
    for name in ("traces/sampling", "metrics/span_metrics", "metrics/service_graph"):
        del pipelines[name]
    del config["connectors"]
    for name in ("tail_sampling", "memory_limiter/traces", "resource_detection/collector_host", "resource/collector.instance.id"):
        del config["processors"][name]
    return config


def bare_config() -> dict:
    """OTLP in, OTLP out: no processor, the exporter's default in-memory queue."""
    config = today_config()
    config["processors"] = {}
    config["extensions"] = {"health_check": config["extensions"]["health_check"]}
    config["service"]["extensions"] = ["health_check"]
    config["exporters"] = {TEMPO_EXPORTER: {"endpoint": "tempo:4317", "tls": {"insecure": True}}}
    config["service"]["pipelines"] = {"traces": {"receivers": ["otlp"], "processors": [], "exporters": [TEMPO_EXPORTER]}}
    del config["connectors"]
    return config


def tiers(otelcol: str, workdir: Path, sink_port: int) -> list[Collector]:
    """An ingest collector routing by trace id (its disk queue in front) to one sampler, on loopback."""
    settings = load_stack_settings("dev", traceSamplingPercentage=SAMPLING_PERCENTAGE)
    (workdir / "sampler").mkdir()
    (workdir / "ingest").mkdir()
    sampler = Collector(otelcol, settings, workdir / "sampler", tempo=f"127.0.0.1:{sink_port}", loki="http://127.0.0.1:9/otlp",
                        prometheus="http://127.0.0.1:9/api/v1/write", tier=SAMPLER)
    ingest = Collector(otelcol, settings, workdir / "ingest", tempo="127.0.0.1:9", loki="http://127.0.0.1:9/otlp",
                       prometheus="http://127.0.0.1:9/api/v1/write", tier=INGEST, samplers=(f"127.0.0.1:{sampler.otlp_grpc}",))
    return [ingest, sampler]


Variant = Callable[[Path, int], list[Collector]]


def variants(otelcol: str, before_otelcol: str) -> dict[str, Variant]:
    return {
        "bare OTLP in, OTLP out": lambda w, port: [single(otelcol, w, port, bare_config())],
        f"before issue 9: head sampling {SAMPLING_PERCENTAGE}%, no connectors": lambda w, port: [single(before_otelcol, w, port, before_issue_9_config())],
        f"single collector: connectors, tail sampling {SAMPLING_PERCENTAGE}%": lambda w, port: [single(otelcol, w, port, today_config())],
        "ingest + sampler tiers on loopback (2 processes)": lambda w, port: tiers(otelcol, w, port),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    return status_bytes(pid, "VmHWM")


def spans(metrics_port: int, name: str, label: str = "", value: str = "") -> float:
    """A metric of a collector's own telemetry, summed over the series whose `label` is `value` (all without a label)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        named = line.startswith(name + "{") or line.startswith(name + " ")
        if named and (not label or f'{label}="{value}"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def measure(collectors: list[Collector], seconds: float, container_mib: int) -> dict[str, float]:
    """collectors[0] takes the load; every collector that has a Tempo exporter counts what it sent."""
    for collector in reversed(collectors):
        collector.size_for(container_mib)
        collector.start()
    entry = collectors[0]
    pids = [c.process.pid for c in collectors]
    senders_to = [c.metrics for c in collectors if TEMPO_EXPORTER in c.config["exporters"]]

    def counts() -> tuple[float, float, float, float]:
        accepted = spans(entry.metrics, "otelcol_receiver_accepted_spans_total")
        refused = spans(entry.metrics, "otelcol_receiver_refused_spans_total")
        sent = sum(spans(port, "otelcol_exporter_sent_spans_total", "exporter", TEMPO_EXPORTER) for port in senders_to)
        # What the sampler tier took from the ingest tier's queue (the entry itself where there is one collector).
        last = spans(collectors[-1].metrics, "otelcol_receiver_accepted_spans_total")
        return accepted, refused, sent, last

    payload = export_request()
    senders = [multiprocessing.Process(target=load, args=(entry.otlp_grpc, payload, seconds + 10)) for _ in range(SENDERS)]
    for sender in senders:
        sender.start()
    time.sleep(5)  # warm-up, longer than a tail-sampling decision after the root span
    before, cpu_before, start = counts(), sum(cpu_seconds(p) for p in pids), time.monotonic()
    anonymous_peak = 0
    while time.monotonic() - start < seconds:
        anonymous_peak = max(anonymous_peak, sum(anonymous_rss_bytes(p) for p in pids))
        time.sleep(0.25)
    after, cpu_after, elapsed = counts(), sum(cpu_seconds(p) for p in pids), time.monotonic() - start
    for sender in senders:
        sender.kill()
        sender.join()
    result = {
        "accepted_per_second": (after[0] - before[0]) / elapsed,
        "refused": after[1] - before[1],
        "sent_per_second": (after[2] - before[2]) / elapsed,
        "last_accepted_per_second": (after[3] - before[3]) / elapsed,
        "cpu_cores": (cpu_after - cpu_before) / elapsed,
        "peak_rss_mib": sum(peak_rss(p) for p in pids) / 2**20,
        "peak_anonymous_mib": anonymous_peak / 2**20,
    }
    for collector in collectors:
        collector.stop()
    return result


def _endpoint(exporter: dict) -> dict:
    return {key: exporter[key] for key in ("endpoint", "http") if key in exporter}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "collector.md")
    parser.add_argument("--container-mib", type=int, default=load_stack_settings("dev").memory_mb("collector"),
                        help="the collector container's memory the limiters are sized for (default: the dev stack's)")
    parser.add_argument("--only", default="", help="run only the variants whose name contains this")
    args = parser.parse_args()
    otelcol = build("build-collector.sh")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        names = [name for name in variants(otelcol, "") if args.only in name]
        # Built only where a chosen variant runs it (a few minutes the first time).
        before_otelcol = build_collector_before_issue_9(workdir) if any(n.startswith("before issue 9") for n in names) else ""
        sink_process, sink_port = sink(otelcol, workdir)
        try:
            results = {}
            chosen = {name: make for name, make in variants(otelcol, before_otelcol).items() if name in names}
            for index, (name, make) in enumerate(chosen.items()):
                (workdir / f"run{index}").mkdir()
                results[name] = measure(make(workdir / f"run{index}", sink_port), args.seconds, args.container_mib)
        finally:
            sink_process.terminate()
            sink_process.wait()
    version = subprocess.run([otelcol, "--version"], capture_output=True, text=True).stdout.strip()
    baseline = results.get("bare OTLP in, OTLP out", {}).get("last_accepted_per_second")
    lines = [
        f"## {datetime.date.today().isoformat()}: the traces pipeline before and after issue 9",
        "",
        f"`nice -n 10 scripts/benchmark.py --seconds {args.seconds:g}` on {platform.machine()}, {os.cpu_count()} cores shared by the "
        f"collectors, the load generator ({SENDERS} sender processes, unthrottled, {SPANS_PER_REQUEST} spans per request in traces "
        "of 4, new trace ids in every request), the sink standing in for Tempo and whatever else ran on the machine (other "
        f"workers' builds and tests): read the ratios, not the absolute numbers. Collector: {version}; before issue 9: the "
        f"collector built from commit {BEFORE_ISSUE_9[:7]}'s manifest. Sampling at {SAMPLING_PERCENTAGE}% in both sampling "
        f"pipelines. Memory limiters and GOMEMLIMIT sized for a {args.container_mib} MiB container per collector, as the stack "
        "sizes them. CPU and memory of the tiers are the sum over both processes.",
        "",
        "| variant | spans/s accepted | spans/s taken by the sampler | spans/s sent to Tempo | refused | CPU (cores) | peak RSS (MiB) "
        "| peak anonymous RSS (MiB) | taken by the sampler vs bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['accepted_per_second']:,.0f} | {r['last_accepted_per_second']:,.0f} | {r['sent_per_second']:,.0f} "
            f"| {r['refused']:,.0f} | {r['cpu_cores']:.2f} | {r['peak_rss_mib']:.0f} | {r['peak_anonymous_mib']:.0f} "
            + (f"| {r['last_accepted_per_second'] / baseline:.2f} |" if baseline else "| (bare pipeline not run) |")
        )
    lines += [
        "",
        "Peak RSS includes the persistent queues' memory-mapped files (page cache the kernel can reclaim);",
        "anonymous RSS is the collectors' own memory.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    history = args.out.read_text() if args.out.exists() else ""
    title = "# Collector benchmark\n"
    earlier = history.removeprefix(title).lstrip("\n")
    args.out.write_text(title + "\n" + "\n".join(lines) + ("\n" + earlier if earlier else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
