"""The collector's trace sampling and the series it makes from spans: tail sampling and its memory
budget, the span-metrics and service-graph connectors (collector_config.py puts them into the
pipelines of the tiers that see whole traces)."""

from __future__ import annotations

from typing import Any

from components.settings import Settings

# Tail sampling holds a trace in memory from its first span until its decision: DECISION_WAIT at
# most, or DECISION_WAIT_AFTER_ROOT once the root span (which ends last) has arrived. SDKs export a
# span up to 5 s after it ends, so a slow trace must end within DECISION_WAIT - 5 s of its first span
# to be judged whole (the bound components/settings/load.py puts on traceSlowThreshold).
DECISION_WAIT_SECONDS = 10
DECISION_WAIT_AFTER_ROOT_SECONDS = 2
# Traces held at once: a quarter of the container's memory at 16 KiB a trace (ten to twenty
# spans). When full, intake waits for decisions to free space (block_on_overflow) instead of
# evicting undecided traces, so pressure reaches the memory limiter and the senders as a retryable
# refusal. Throughput per collector is then at most pending / (DECISION_WAIT_AFTER_ROOT + 1 s, as
# decisions are made once a second) traces a second: a 512 MiB collector holds 8192, measured
# 2,700 traces/s (benchmarks/collector.md).
PENDING_TRACES_MEMORY_SHARE = 4
TRACE_KIB = 16


def pending_traces(container_memory_mb: int) -> int:
    return container_memory_mb * 1024 // PENDING_TRACES_MEMORY_SHARE // TRACE_KIB


# Where tail sampling runs, spans are refused (retryable) once the heap passes 25% of the container
# (limit 40%, spike 15%), checked every 100 ms, before the connectors count them and before tail
# sampling holds them. Tail sampling acknowledges a trace at once and holds it until its decision;
# a decision then writes the trace to the disk queue, and under load the garbage of that burst comes
# faster than the runtime collects it (two to three times what was held), so what tail sampling
# holds must stay a small share of the container; the memory limiter's README advises a short
# check_interval for spiky traffic. The overload runs behind these numbers, and the alternatives
# measured and not taken: benchmarks/collector.md, "The traces limiter". Metrics and logs go on to
# the collector's general limit (80%).
TRACES_MEMORY_CHECK_INTERVAL = "100ms"
TRACES_MEMORY_LIMITER = "memory_limiter/traces"
TRACES_MEMORY_LIMIT_PERCENTAGE = 40
TRACES_MEMORY_SPIKE_PERCENTAGE = 15


def traces_memory_limiter() -> dict[str, Any]:
    return {
        "check_interval": TRACES_MEMORY_CHECK_INTERVAL,
        "limit_percentage": TRACES_MEMORY_LIMIT_PERCENTAGE,
        "spike_limit_percentage": TRACES_MEMORY_SPIKE_PERCENTAGE,
    }


# Trace ids remembered after a decision, so late spans follow their trace (upstream advises an
# order of magnitude above num_traces).
DECISION_CACHE_FACTOR = 10
# Series made from spans carry the identity of the collector process that made them, so the
# series of several samplers never collide in the metrics store. The span-metrics connector adds
# collector.instance.id itself (feature gate connector.spanmetrics.includeCollectorInstanceID,
# beta, on by default at 0.159.0, the collectorImage pin when read); the service-graph connector
# does not, so its series get the host name the kernel gives the process (resourcedetection's
# system detector, hostname source os): per container on Docker, per task on Fargate. host.name
# in OTEL_RESOURCE_ATTRIBUTES (the env detector, asked first) overrides it where several
# collectors share one host.
INSTANCE_ATTRIBUTE = "collector.instance.id"
INSTANCE_DETECTION = "resource_detection/collector_host"
INSTANCE_LABEL = f"resource/{INSTANCE_ATTRIBUTE}"


def tail_sampling(settings: Settings, memory_mb: int) -> dict[str, Any]:
    """Keep every trace with an error, every trace slower than traceSlowThreshold, and
    traceSamplingPercentage of the rest (a trace is kept when any policy keeps it)."""
    pending = pending_traces(memory_mb)
    return {
        "decision_wait": f"{DECISION_WAIT_SECONDS}s",
        "decision_wait_after_root_received": f"{DECISION_WAIT_AFTER_ROOT_SECONDS}s",
        "num_traces": pending,
        "block_on_overflow": True,
        "decision_cache": {"sampled_cache_size": DECISION_CACHE_FACTOR * pending, "non_sampled_cache_size": DECISION_CACHE_FACTOR * pending},
        "policies": [
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow", "type": "latency", "latency": {"threshold_ms": settings.trace_slow_threshold_ms}},
            {"name": "share-of-the-rest", "type": "probabilistic", "probabilistic": {"sampling_percentage": settings.trace_sampling_percentage}},
        ],
    }


# Connectors that turn every span into metrics, before sampling. Names as produced (checked with the
# collector and Prometheus built at the pinned versions): traces_span_metrics_calls_total,
# traces_span_metrics_duration_seconds_bucket, traces_service_graph_request_total,
# traces_service_graph_request_failed_total, traces_service_graph_request_server_seconds_bucket
# (the names Grafana's Tempo data source reads for its service map).
SPAN_METRICS = "span_metrics"
SERVICE_GRAPH = "service_graph"
# Fans the prepared spans out to the connectors and to the sampling pipeline.
TO_SAMPLING = "forward/sampling"
SPAN_SERIES_WRITER = "prometheus_remote_write/spans"


def span_connectors() -> dict[str, Any]:
    return {
        SPAN_METRICS: {
            # Seconds, as the semantic conventions (and the stable HTTP metrics) measure durations.
            "histogram": {"unit": "s"},
            "exemplars": {"enabled": True},
            # Cumulative counters, written every 15 s; series of a span name nobody calls for
            # 5 minutes are dropped, so the connector's memory stays bounded.
            "metrics_flush_interval": "15s",
            "metrics_expiration": "5m",
            "aggregation_cardinality_limit": 5000,
        },
        SERVICE_GRAPH: {
            # A call to something that sends no spans (a database) is an edge to a virtual node
            # named after the first of these attributes (old and stable database conventions).
            "virtual_node_peer_attributes": ["peer.service", "db.system.name", "db.system", "db.name"],
            "dimensions": ["deployment.environment.name"],
            "store": {"ttl": "10s", "max_items": 10000},
            "metrics_flush_interval": "15s",
        },
        TO_SAMPLING: {},
    }
