"""OpenTelemetry Collector: the one OTLP entry point; routes traces, metrics and logs to the stores."""

from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_random as random

from components.platforms.spec import (
    ConfigFile,
    DataVolume,
    MetricsStore,
    Platform,
    Port,
    PublicRoute,
    RunningService,
    SecretValue,
    ServiceSpec,
    render_when_known,
)
from components.services import loki, prometheus, tempo
from components.settings import Settings
from components.yamltext import to_yaml

NAME = "collector"
OTLP_GRPC = Port("otlp-grpc", 4317)
OTLP_HTTP = Port("otlp-http", 4318)
# Browsers on prod: OTLP/HTTP without a token (a web page keeps no secret), on a port of its own.
BROWSER_OTLP = Port("otlp-browser", 4319)
HEALTH = Port("health", 13133)
METRICS = Port("metrics", 8888)
CONFIG_PATH = "/etc/otelcol-contrib/config.yaml"
# Environment variable the platform fills with the ingest token (otlpRequireToken).
BEARER_TOKEN_ENV = "OTLP_BEARER_TOKEN"
# OTLP/HTTP paths and the gRPC services' path prefix, as a shared HTTPS entry point routes them.
OTLP_HTTP_PATHS = ("/v1/traces", "/v1/metrics", "/v1/logs")
OTLP_GRPC_PATHS = ("/opentelemetry.proto.collector.*",)
# The browser receiver serves these paths itself, so the load balancer routes them unchanged.
# Traces and logs only: it is in no metrics pipeline, so a metrics request finds no handler (404).
BROWSER_PATH_PREFIX = "/browser/"
BROWSER_TRACES_PATH = f"{BROWSER_PATH_PREFIX}v1/traces"
BROWSER_LOGS_PATH = f"{BROWSER_PATH_PREFIX}v1/logs"
# A browser batch of a hundred spans is well under this; the limit holds for the decompressed body
# too (confighttp max_request_body_size; larger requests get 400).
BROWSER_MAX_BODY_BYTES = 512 * 1024
# Browsers give way first: their memory limiter refuses data before the servers' one does.
BROWSER_MEMORY_LIMIT_PERCENTAGE = 60
BROWSER_MAX_ATTRIBUTES = 64
BROWSER_MAX_VALUE_CHARS = 1024
BROWSER_MAX_EVENT_VALUE_CHARS = 4096  # exception.stacktrace
BROWSER_SIGNALS = ("traces", "logs")
BROWSER_FORWARD = "forward/browser"
# The exporters' sending queues live here, so telemetry waiting for a store that is down survives
# a collector restart. The image runs as 10001 and has no directory of its own for it.
QUEUE_DIR = "/var/lib/otelcol/file_storage"
QUEUE_OWNER = "10001:10001"
QUEUE_STORAGE = "file_storage/queue"
QUEUE_BYTES = 1024**3

# What one collector process runs. ALL: the docker stack and a single aws task, both jobs in one.
# When the collector scales out, INGEST (behind the load balancer) routes spans by trace id to the
# SAMPLER tier, so every span of a trace meets in one sampler (tail sampling and the service graph
# need the whole trace).
ALL = "all"
INGEST = "ingest"
SAMPLER = "sampler"
TIERS = (ALL, INGEST, SAMPLER)
SAMPLER_NAME = "collector-sampler"

# Tail sampling holds a trace in memory from its first span until its decision: DECISION_WAIT at
# most, or DECISION_WAIT_AFTER_ROOT once the root span (which ends last) has arrived. SDKs export a
# span up to 5 s after it ends, so a slow trace must end within DECISION_WAIT - 5 s of its first span
# to be judged whole (the bound settings.py puts on traceSlowThreshold).
DECISION_WAIT_SECONDS = 10
DECISION_WAIT_AFTER_ROOT_SECONDS = 2
# Traces held at once: a quarter of the container's memory at 16 KiB a trace (ten to twenty
# spans). When full, intake waits for decisions to free space (block_on_overflow) instead of
# evicting undecided traces, so pressure reaches the memory limiter and the senders as a retryable
# refusal. Throughput per collector is then at most pending / DECISION_WAIT_AFTER_ROOT traces a
# second (a 512 MiB collector: 8192 held, about 4000 traces/s).
PENDING_TRACES_MEMORY_SHARE = 4
TRACE_KIB = 16


def pending_traces(container_memory_mb: int) -> int:
    return container_memory_mb * 1024 // PENDING_TRACES_MEMORY_SHARE // TRACE_KIB


# Trace ids remembered after a decision, so late spans follow their trace (upstream advises an
# order of magnitude above num_traces).
DECISION_CACHE_FACTOR = 10
# Series made from spans carry the identity of the collector process that made them, so the
# series of several samplers never collide in the metrics store. The span-metrics connector adds
# collector.instance.id itself (feature gate connector.spanmetrics.includeCollectorInstanceID,
# beta, on by default at 0.159); the service-graph connector does not, so its series get the host
# name the kernel gives the process (resourcedetection's system detector, hostname source os):
# per container on Docker, per task on Fargate. host.name in OTEL_RESOURCE_ATTRIBUTES (the env
# detector, asked first) overrides it where several collectors share one host.
INSTANCE_ATTRIBUTE = "collector.instance.id"
INSTANCE_DETECTION = "resource_detection/collector_host"
INSTANCE_LABEL = f"resource/{INSTANCE_ATTRIBUTE}"

# Requests that only say "I am alive" or "scrape me". Matched on every attribute that carries the
# path: http.route (stable and old), url.path (stable), http.target (old, Python's default).
HEALTH_PATHS = ("/health", "/healthz", "/healthcheck", "/ready", "/readyz", "/livez", "/ping", "/metrics")
PATH_ATTRIBUTES = ("http.route", "url.path", "http.target")

# Attributes that carry credentials or personal data, deleted from spans and logs. Python
# instrumentations name captured headers http.request.header.<name> with '-' turned into '_'.
SENSITIVE_ATTRIBUTE_KEYS = ("user.email", "enduser.email", "db.statement.parameters")
SENSITIVE_ATTRIBUTE_PATTERNS = (
    r"(?i)^http\.(request|response)\.header\.(authorization|proxy[-_]authorization|cookie|set[-_]cookie|x[-_]api[-_]key)$",
    r"^db\.query\.parameter\..+$",
)
# The memory limiter refuses data (retryable) above 80% of the container's memory; the Go
# runtime collects garbage harder above GOMEMLIMIT, 80% of that, so refused requests' garbage
# does not carry the heap past the limit (memorylimiterprocessor's documented pairing).
MEMORY_LIMIT_PERCENTAGE = 80
MEMORY_SPIKE_PERCENTAGE = 20


def go_memory_limit(container_memory_mb: int) -> str:
    return f"{container_memory_mb * MEMORY_LIMIT_PERCENTAGE * 8 // 1000}MiB"


# Resource attributes that would only add noise as metric labels.
NOISY_RESOURCE_ATTRIBUTES = r"^(process|telemetry|os)\..+$"


def _health_span_conditions() -> list[str]:
    paths = "|".join(p.lstrip("/") for p in HEALTH_PATHS)
    by_attribute = [f'IsMatch(attributes["{a}"], "^/({paths})/?$")' for a in PATH_ATTRIBUTES]
    # The ASGI middleware's own child spans ("GET /health http send") carry no path attribute.
    by_name = f'IsMatch(name, "^[A-Z]+ /({paths})/?( http (send|receive))?$")'
    return [*by_attribute, by_name]


def _reliable(exporter: dict[str, Any]) -> dict[str, Any]:
    """An exporter that writes every request to disk before acknowledging it, batches from there,
    and retries until the store takes the data.

    Batching here instead of in the batch processor is what makes this safe: the batch processor
    acknowledges data it only holds in memory and drops what a full queue refuses, while a
    request the queue refuses goes back to the sender as a retryable error.
    """
    return {
        **exporter,
        "sending_queue": {
            "enabled": True,
            "storage": QUEUE_STORAGE,
            # Bytes on disk per exporter: hours of a small team's telemetry, whatever the size of
            # the requests that bring it.
            "sizer": "bytes",
            "queue_size": QUEUE_BYTES,
            # Batches are held in memory while they are being sent (up to 10 at once, more while a
            # store hangs): bounded in bytes, whatever the size of a span or log line.
            "batch": {"sizer": "bytes", "flush_timeout": "200ms", "min_size": 512 * 1024, "max_size": 2 * 1024 * 1024},
        },
        # No time limit: a store that is down for an hour must not cost the hour's data. Permanent
        # errors (a rejected payload) are never retried; a full queue refuses new data instead.
        "retry_on_failure": {"enabled": True, "initial_interval": "1s", "max_interval": "30s", "max_elapsed_time": "0s"},
    }


def _tail_sampling(settings: Settings) -> dict[str, Any]:
    """Keep every trace with an error, every trace slower than traceSlowThreshold, and
    traceSamplingPercentage of the rest (a trace is kept when any policy keeps it)."""
    pending = pending_traces(settings.memory_mb(NAME))
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
# built collector and Prometheus 3.14): traces_span_metrics_calls_total,
# traces_span_metrics_duration_seconds_bucket, traces_service_graph_request_total,
# traces_service_graph_request_failed_total, traces_service_graph_request_server_seconds_bucket
# (the names Grafana's Tempo data source reads for its service map).
SPAN_METRICS = "span_metrics"
SERVICE_GRAPH = "service_graph"
# Fans the prepared spans out to the connectors and to the sampling pipeline.
TO_SAMPLING = "forward/sampling"
SPAN_SERIES_WRITER = "prometheus_remote_write/spans"
METRICS_WRITERS = ("prometheus_remote_write", SPAN_SERIES_WRITER)


def _span_connectors() -> dict[str, Any]:
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


def render_collector_config(
    settings: Settings,
    hosts: dict[str, str],
    metrics: Optional[MetricsStore] = None,
    tier: str = ALL,
    sampler_host: Optional[str] = None,
) -> dict[str, Any]:
    """The collector config for one stack and tier. hosts maps service name -> address on the service
    network; metrics, when the platform made one, is the managed store metrics go to instead of
    Prometheus; sampler_host (INGEST only) is the name that resolves to every sampler instance."""
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r}; allowed: {', '.join(TIERS)}")
    if (tier == INGEST) != (sampler_host is not None):
        raise ValueError("sampler_host is required for the ingest tier and only there")
    tempo_endpoint = f"{hosts[tempo.NAME]}:{tempo.OTLP_GRPC.container_port}"
    loki_endpoint = f"http://{hosts[loki.NAME]}:{loki.HTTP.container_port}/otlp"
    prometheus_endpoint = f"http://{hosts[prometheus.NAME]}:{prometheus.HTTP.container_port}/api/v1/write"
    config = {
        "extensions": {
            "health_check": {"endpoint": f"0.0.0.0:{HEALTH.container_port}"},
            QUEUE_STORAGE: {
                "directory": QUEUE_DIR,
                "create_directory": True,
                # Reclaims the space of delivered batches, at start and once a backlog has drained.
                "compaction": {"on_start": True, "on_rebound": True, "directory": QUEUE_DIR},
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    # Receivers bind to localhost by default (since v0.104); a container needs 0.0.0.0.
                    "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC.container_port}"},
                    "http": {
                        "endpoint": f"0.0.0.0:{OTLP_HTTP.container_port}",
                        "cors": {"allowed_origins": list(settings.cors_allowed_origins), "max_age": 7200},
                    },
                }
            }
        },
        "processors": {
            # First in every pipeline: refuse data (retryable) before memory runs out.
            "memory_limiter": {
                "check_interval": "1s",
                "limit_percentage": MEMORY_LIMIT_PERCENTAGE,
                "spike_limit_percentage": MEMORY_SPIKE_PERCENTAGE,
            },
            "filter/health": {"error_mode": "ignore", "traces": {"span": _health_span_conditions()}},
            "attributes/scrub": {
                "actions": [
                    *({"key": key, "action": "delete"} for key in SENSITIVE_ATTRIBUTE_KEYS),
                    *({"pattern": pattern, "action": "delete"} for pattern in SENSITIVE_ATTRIBUTE_PATTERNS),
                ]
            },
            # insert: an app that states its own namespace or environment keeps it.
            "resource": {
                "attributes": [
                    {"key": "service.namespace", "value": settings.service_namespace, "action": "insert"},
                    {"key": "deployment.environment.name", "value": settings.environment, "action": "insert"},
                ]
            },
            "resource/metric_labels": {"attributes": [{"pattern": NOISY_RESOURCE_ATTRIBUTES, "action": "delete"}]},
            "tail_sampling": _tail_sampling(settings),
            INSTANCE_DETECTION: {
                "detectors": ["env", "system"],
                "system": {
                    "hostname_sources": ["os"],
                    "resource_attributes": {"host.name": {"enabled": True}, "os.type": {"enabled": False}},
                },
            },
            INSTANCE_LABEL: {
                "attributes": [
                    {"key": INSTANCE_ATTRIBUTE, "from_attribute": "host.name", "action": "upsert"},
                    {"key": "host.name", "action": "delete"},
                ]
            },
            # Metrics only: the remote-write exporter keeps its own in-memory queue.
            "batch": {},
        },
        "exporters": {
            "otlp_grpc/tempo": _reliable({"endpoint": tempo_endpoint, "tls": {"insecure": True}}),
            # Loki 3 ingests OTLP natively; the old loki exporter is gone.
            "otlp_http/loki": _reliable({"endpoint": loki_endpoint}),
            # Remote write also serves Amazon Managed Prometheus (with sigv4auth).
            "prometheus_remote_write": {
                # Client settings moved under `http` in v0.158 (the flat form is deprecated).
                "http": {"endpoint": prometheus_endpoint},
                "resource_to_telemetry_conversion": {"enabled": True},
                # This exporter has its own queue settings (no persistent storage): metrics are
                # re-sent every export interval anyway, unlike spans and logs.
                "retry_on_failure": {"enabled": True, "max_elapsed_time": "10m"},
            },
        },
        "service": {
            "extensions": ["health_check", QUEUE_STORAGE],
            "telemetry": {
                "logs": {"level": "info"},
                "metrics": {
                    "level": "normal",
                    "readers": [
                        {
                            "pull": {
                                "exporter": {
                                    "prometheus": {
                                        "host": "0.0.0.0",
                                        "port": METRICS.container_port,
                                        # The collector's defaults drop _total and unit suffixes;
                                        # keep the conventional names dashboards and alerts use.
                                        "without_type_suffix": False,
                                        "without_units": False,
                                        "without_scope_info": True,
                                    }
                                }
                            }
                        }
                    ],
                },
            },
            "pipelines": {
                # Spans are filtered, scrubbed and labelled first, then fanned out: to the metrics
                # connectors (every span) and to tail sampling (what reaches Tempo).
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "filter/health", "attributes/scrub", "resource"],
                    "exporters": [SPAN_METRICS, SERVICE_GRAPH, TO_SAMPLING],
                },
                "traces/sampling": {
                    "receivers": [TO_SAMPLING],
                    "processors": ["memory_limiter", "tail_sampling"],
                    "exporters": ["otlp_grpc/tempo"],
                },
                # Span metrics keep the span's resource (service, namespace, environment) as labels,
                # like app metrics; the service graph's series have no resource of their own.
                "metrics/span_metrics": {
                    "receivers": [SPAN_METRICS],
                    "processors": ["memory_limiter", "resource/metric_labels", "batch"],
                    "exporters": [SPAN_SERIES_WRITER],
                },
                "metrics/service_graph": {
                    "receivers": [SERVICE_GRAPH],
                    "processors": ["memory_limiter", INSTANCE_DETECTION, INSTANCE_LABEL, "batch"],
                    "exporters": [SPAN_SERIES_WRITER],
                },
                "metrics": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "resource", "resource/metric_labels", "batch"],
                    "exporters": ["prometheus_remote_write"],
                },
                "logs": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "attributes/scrub", "resource"],
                    "exporters": ["otlp_http/loki"],
                },
            },
        },
    }
    config["connectors"] = _span_connectors()
    _add_span_series_writer(config)
    if tier == INGEST:
        assert sampler_host is not None
        _route_traces_to_samplers(config, sampler_host)
    elif tier == SAMPLER:
        _sample_only(config)
    if settings.otlp_require_token:
        # The sampler tier demands the same token; the ingest tier sends it (bearertokenauth is
        # a client authenticator too).
        _require_bearer_token(config)
        if tier == INGEST:
            _send_bearer_token_to_samplers(config)
        if tier != SAMPLER:
            # Web pages send to the tier behind the load balancer, as server SDKs do.
            _join_browser_ingest(config, browser_ingest(settings))
    if metrics is not None:
        _write_metrics_with_sigv4(config, metrics)
    return config


def browser_ingest(settings: Settings) -> dict[str, Any]:
    """A public route for web pages where server SDKs need a token: its own OTLP/HTTP receiver
    (no token; CORS only for corsAllowedOrigins; small bodies; traces and logs only) and its own
    pipelines, which limit what a page may send and then hand it to the main pipelines (forward
    connector), so browser spans are filtered, scrubbed, sampled and stored like every other.
    CORS binds browsers only: anything else can post here too, which is why the limits exist."""
    url_attributes = ("url.full", "http.url")
    # OTTL functions of the transform processor: limit() keeps at most N attributes,
    # truncate_all() shortens every string value; query strings and fragments carry tokens.
    span_statements = [
        *(f'replace_pattern(span.attributes["{a}"], "[?#].*$", "")' for a in url_attributes),
        f"limit(span.attributes, {BROWSER_MAX_ATTRIBUTES}, [])",
        f"truncate_all(span.attributes, {BROWSER_MAX_VALUE_CHARS})",
    ]
    resource_statements = [
        f'limit(resource.attributes, {BROWSER_MAX_ATTRIBUTES}, ["service.name"])',
        f"truncate_all(resource.attributes, {BROWSER_MAX_VALUE_CHARS})",
    ]
    return {
        "receivers": {
            "otlp/browser": {
                "protocols": {
                    "http": {
                        "endpoint": f"0.0.0.0:{BROWSER_OTLP.container_port}",
                        "traces_url_path": BROWSER_TRACES_PATH,
                        "logs_url_path": BROWSER_LOGS_PATH,
                        "max_request_body_size": BROWSER_MAX_BODY_BYTES,
                        "cors": {"allowed_origins": list(settings.cors_allowed_origins), "max_age": 7200},
                    }
                }
            }
        },
        "processors": {
            "memory_limiter/browser": {
                "check_interval": "1s",
                "limit_percentage": BROWSER_MEMORY_LIMIT_PERCENTAGE,
                "spike_limit_percentage": MEMORY_SPIKE_PERCENTAGE,
            },
            "transform/browser": {
                "error_mode": "ignore",
                "trace_statements": [
                    {"statements": resource_statements},
                    {"statements": span_statements},
                    {"statements": [
                        f"limit(spanevent.attributes, {BROWSER_MAX_ATTRIBUTES}, [])",
                        f"truncate_all(spanevent.attributes, {BROWSER_MAX_EVENT_VALUE_CHARS})",
                    ]},
                ],
                "log_statements": [
                    {"statements": resource_statements},
                    {"statements": [
                        f"limit(log.attributes, {BROWSER_MAX_ATTRIBUTES}, [])",
                        f"truncate_all(log.attributes, {BROWSER_MAX_VALUE_CHARS})",
                        f"set(log.body, Substring(log.body, 0, {BROWSER_MAX_EVENT_VALUE_CHARS}))"
                        f" where IsString(log.body) and Len(log.body) > {BROWSER_MAX_EVENT_VALUE_CHARS}",
                    ]},
                ],
            },
        },
        "connectors": {BROWSER_FORWARD: {}},
        "pipelines": {
            f"{signal}/browser": {
                "receivers": ["otlp/browser"],
                "processors": ["memory_limiter/browser", "transform/browser"],
                "exporters": [BROWSER_FORWARD],
            }
            for signal in BROWSER_SIGNALS
        },
    }


def _join_browser_ingest(config: dict[str, Any], ingest: dict[str, Any]) -> None:
    """The browser route's components and pipelines join the config; the main traces and logs
    pipelines take what its pipelines pass on."""
    for section in ("receivers", "processors", "connectors"):
        config.setdefault(section, {}).update(ingest[section])
    pipelines = config["service"]["pipelines"]
    pipelines.update(ingest["pipelines"])
    for signal in BROWSER_SIGNALS:
        pipelines[signal]["receivers"].append(BROWSER_FORWARD)


def _add_span_series_writer(config: dict[str, Any]) -> None:
    """Span metrics keep the app's resource, so every sampler would also write the app's target_info
    series, each with its own timestamps: out of order for the store (seen with two samplers in
    tests/test_sampling.py). The series carry the resource as labels already."""
    config["exporters"][SPAN_SERIES_WRITER] = {**config["exporters"]["prometheus_remote_write"], "target_info": {"enabled": False}}


LOAD_BALANCING = "load_balancing/samplers"


def _route_traces_to_samplers(config: dict[str, Any], sampler_host: str) -> None:
    """Ingest: prepared spans go, by trace id, to the sampler that owns the trace; the samplers make
    the span metrics, the service graph and the sampling decision. Metrics and logs go on as before."""
    # The persistent queue and the retries sit in front of the routing: a request is on disk before
    # the sender gets its answer, and stays there until a sampler took it. The per-sampler OTLP
    # exporter keeps no queue of its own, so a failure reaches the persistent queue
    # (loadbalancingexporter README, "resilience and scaling considerations").
    config["exporters"][LOAD_BALANCING] = _reliable(
        {
            "routing_key": "traceID",
            "protocol": {
                "otlp": {
                    "tls": {"insecure": True},
                    "timeout": "5s",
                    "sending_queue": {"enabled": False},
                    "retry_on_failure": {"enabled": False},
                }
            },
            # Every sampler instance answers on one service-discovery name (an A record per task).
            "resolver": {"dns": {"hostname": sampler_host, "port": str(OTLP_GRPC.container_port), "interval": "5s"}},
        }
    )
    pipelines = config["service"]["pipelines"]
    pipelines["traces"]["exporters"] = [LOAD_BALANCING]
    for name in ("traces/sampling", "metrics/span_metrics", "metrics/service_graph"):
        del pipelines[name]
    del config["connectors"]
    del config["exporters"]["otlp_grpc/tempo"]
    del config["exporters"][SPAN_SERIES_WRITER]
    for name in ("tail_sampling", INSTANCE_DETECTION, INSTANCE_LABEL):
        del config["processors"][name]


def _send_bearer_token_to_samplers(config: dict[str, Any]) -> None:
    config["exporters"][LOAD_BALANCING]["protocol"]["otlp"]["auth"] = {"authenticator": "bearertokenauth"}


def _sample_only(config: dict[str, Any]) -> None:
    """Sampler: takes the ingest tier's spans (already filtered, scrubbed and labelled) on OTLP gRPC
    inside the service network; makes the span metrics and the service graph from every span, keeps
    what tail sampling keeps, and queues it on disk toward Tempo."""
    config["receivers"]["otlp"]["protocols"] = {"grpc": config["receivers"]["otlp"]["protocols"]["grpc"]}
    pipelines = config["service"]["pipelines"]
    pipelines["traces"]["processors"] = ["memory_limiter"]
    for name in ("metrics", "logs"):
        del pipelines[name]
    del config["exporters"]["otlp_http/loki"]
    del config["exporters"]["prometheus_remote_write"]
    for name in ("filter/health", "attributes/scrub", "resource"):
        del config["processors"][name]


def _write_metrics_with_sigv4(config: dict[str, Any], metrics: MetricsStore) -> None:
    """Remote write to the managed store, signed with the task role's credentials."""
    config["extensions"]["sigv4auth"] = {"region": metrics.region, "service": "aps"}
    for name in METRICS_WRITERS:
        if name in config["exporters"]:
            exporter = config["exporters"][name]
            exporter["http"] = {**exporter["http"], "endpoint": metrics.remote_write_url, "auth": {"authenticator": "sigv4auth"}}
    config["service"]["extensions"].append("sigv4auth")


def _require_bearer_token(config: dict[str, Any]) -> None:
    """Both OTLP protocols reject requests without `Authorization: Bearer <token>`; the token
    itself comes from the environment, so the config holds no secret."""
    config["extensions"]["bearertokenauth"] = {"token": f"${{env:{BEARER_TOKEN_ENV}}}"}
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        protocol["auth"] = {"authenticator": "bearertokenauth"}
    config["service"]["extensions"].append("bearertokenauth")


def _collector_spec(
    settings: Settings, name: str, config_yaml: pulumi.Input[str], secrets: tuple[SecretValue, ...], ports: tuple[Port, ...]
) -> ServiceSpec:
    """Either tier: the same image, memory and queue volume."""
    return ServiceSpec(
        name=name,
        image=settings.image(NAME),
        memory_mb=settings.memory_mb(NAME),
        command=(f"--config={CONFIG_PATH}",),
        ports=ports,
        files=(ConfigFile(CONFIG_PATH, config_yaml),),
        env={"GOMEMLIMIT": go_memory_limit(settings.memory_mb(NAME))},
        secrets=secrets,
        stateless=True,
        volumes=(DataVolume("queue", QUEUE_DIR, owner=QUEUE_OWNER),),
        # FROM scratch: no shell, nothing to run a health check with. Checked from outside on
        # the health port instead.
        health=None,
    )


class Collector(pulumi.ComponentResource):
    def __init__(
        self,
        settings: Settings,
        platform: Platform,
        hosts: dict[str, str],
        depends_on: tuple[RunningService, ...] = (),
        metrics_store: Optional[pulumi.Output[MetricsStore]] = None,
        opts: pulumi.ResourceOptions | None = None,
        tier: str = ALL,
    ):
        """tier ALL or INGEST: the OTLP entry point (INGEST sends spans on to the sampler tier at
        hosts[SAMPLER_NAME]); see CollectorSampler for the other tier."""
        super().__init__("observability:components:Collector", NAME, None, opts)
        sampler_host = hosts[SAMPLER_NAME] if tier == INGEST else None
        self.config_yaml = render_when_known(
            lambda m: to_yaml(render_collector_config(settings, hosts, m, tier=tier, sampler_host=sampler_host)), metrics_store
        )
        ports = settings.host_ports
        self.bearer_token: pulumi.Output[str] | None = None
        secrets: tuple[SecretValue, ...] = ()
        if settings.otlp_require_token:
            token = random.RandomPassword("otlp-bearer-token", length=40, special=False, opts=pulumi.ResourceOptions(parent=self))
            self.bearer_token = pulumi.Output.secret(token.result)
            secrets = (SecretValue(BEARER_TOKEN_ENV, self.bearer_token),)
        spec = _collector_spec(
            settings,
            NAME,
            self.config_yaml,
            secrets,
            ports=(
                Port(
                    OTLP_GRPC.name,
                    OTLP_GRPC.container_port,
                    host_port=ports.otlp_grpc,
                    public=PublicRoute(paths=OTLP_GRPC_PATHS, grpc=True),
                ),
                Port(
                    OTLP_HTTP.name,
                    OTLP_HTTP.container_port,
                    host_port=ports.otlp_http,
                    public=PublicRoute(paths=OTLP_HTTP_PATHS, health_port=HEALTH.container_port),
                ),
                *(
                    (Port(BROWSER_OTLP.name, BROWSER_OTLP.container_port,
                          public=PublicRoute(paths=(BROWSER_TRACES_PATH, BROWSER_LOGS_PATH), health_port=HEALTH.container_port)),)
                    if settings.otlp_require_token else ()
                ),
                Port(HEALTH.name, HEALTH.container_port, host_port=ports.collector_health),
                METRICS,
            ),
        )
        self.service = platform.run(spec, parent=self, depends_on=depends_on)
        self.otlp_grpc_endpoint = self.service.external_urls[OTLP_GRPC.name]
        self.otlp_http_endpoint = self.service.external_urls[OTLP_HTTP.name]
        self.register_outputs({"otlpGrpcEndpoint": self.otlp_grpc_endpoint, "otlpHttpEndpoint": self.otlp_http_endpoint})


class CollectorSampler(pulumi.ComponentResource):
    """The sampler tier: what the stack runs beside the ingest tier where the collector may scale
    out. Reached only inside the service network, on OTLP gRPC, by the ingest collectors."""

    def __init__(
        self,
        settings: Settings,
        platform: Platform,
        hosts: dict[str, str],
        depends_on: tuple[RunningService, ...] = (),
        metrics_store: Optional[pulumi.Output[MetricsStore]] = None,
        bearer_token: Optional[pulumi.Output[str]] = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """bearer_token: the ingest tier's token, which the sampler demands where otlpRequireToken is on."""
        super().__init__("observability:components:CollectorSampler", SAMPLER_NAME, None, opts)
        self.config_yaml = render_when_known(
            lambda m: to_yaml(render_collector_config(settings, hosts, m, tier=SAMPLER)), metrics_store
        )
        secrets = (SecretValue(BEARER_TOKEN_ENV, bearer_token),) if bearer_token is not None else ()
        spec = _collector_spec(settings, SAMPLER_NAME, self.config_yaml, secrets, ports=(OTLP_GRPC, HEALTH, METRICS))
        self.service = platform.run(spec, parent=self, depends_on=depends_on)
        self.register_outputs({"host": self.service.internal_host})
