"""The collector's config for one tier, composed from the pieces the tier runs (collector_tiers.py
says which tiers a stack has):

- every tier: health check, the disk queue, its own metrics, the general memory limiter;
- where apps send (ALL, INGEST): the OTLP receivers, filtering and scrubbing, metrics and logs;
- where whole traces meet (ALL, SAMPLER): the span-metrics and service-graph connectors and tail
  sampling, and the traces Tempo gets;
- INGEST only: routing by trace id to the sampler tier;
- otlpRequireToken: the token on the entry tier's receivers, and the token-free browser route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from components.platforms.spec import MetricsStore, Port
from components.services import loki, prometheus, tempo
from components.services.collector_browser import BROWSER_FORWARD, BROWSER_SIGNALS, browser_ingest, has_browser_route
from components.services.collector_intake import intake_processors
from components.services.collector_sampling import (
    INSTANCE_ATTRIBUTE,
    INSTANCE_DETECTION,
    INSTANCE_LABEL,
    SERVICE_GRAPH,
    SPAN_METRICS,
    SPAN_SERIES_WRITER,
    TO_SAMPLING,
    TRACES_MEMORY_LIMITER,
    span_connectors,
    tail_sampling,
    traces_memory_limiter,
)
from components.services.collector_tiers import INGEST, METRICS, NAME, Tier

if TYPE_CHECKING:
    from components.plan import StackPlan

OTLP_GRPC = Port("otlp-grpc", 4317)
OTLP_HTTP = Port("otlp-http", 4318)
HEALTH = Port("health", 13133)
CONFIG_PATH = "/etc/otelcol-contrib/config.yaml"
# The ingest token (otlpRequireToken) is a file, never an environment variable (`docker inspect`,
# ECS's describe calls show those): the platform writes it and names it in BEARER_TOKEN_FILE_ENV.
BEARER_TOKEN_ENV = "OTLP_BEARER_TOKEN"
BEARER_TOKEN_FILE_ENV = "OTLP_BEARER_TOKEN_FILE"
# The exporters' sending queues live here, so telemetry waiting for a store that is down survives
# a collector restart. The image runs as 10001 and has no directory of its own for it.
QUEUE_DIR = "/var/lib/otelcol/file_storage"
QUEUE_STORAGE = "file_storage/queue"
QUEUE_BYTES = 1024**3
LOAD_BALANCING = "load_balancing/samplers"
TEMPO_EXPORTER = "otlp_grpc/tempo"
LOKI_EXPORTER = "otlp_http/loki"
METRICS_EXPORTER = "prometheus_remote_write"
METRICS_WRITERS = (METRICS_EXPORTER, SPAN_SERIES_WRITER)

# The memory limiter refuses data (retryable) above 80% of the container's memory; the Go
# runtime collects garbage harder above GOMEMLIMIT, 80% of that, so refused requests' garbage
# does not carry the heap past the limit (memorylimiterprocessor's documented pairing).
MEMORY_LIMIT_PERCENTAGE = 80
MEMORY_SPIKE_PERCENTAGE = 20

# Resource attributes that would only add noise as metric labels.
NOISY_RESOURCE_ATTRIBUTES = r"^(process|telemetry|os)\..+$"

# The order components appear in within each section, as a span passes through them: pieces add
# components in any order, the config lists them in this one.
ORDER = (
    "health_check", QUEUE_STORAGE, "bearertokenauth", "sigv4auth",
    "otlp", "otlp/browser",
    "memory_limiter", TRACES_MEMORY_LIMITER, "filter/health", "attributes/scrub", "resource", "resource/metric_labels",
    "tail_sampling", INSTANCE_DETECTION, INSTANCE_LABEL, "batch", "memory_limiter/browser", "transform/browser",
    TEMPO_EXPORTER, LOKI_EXPORTER, METRICS_EXPORTER, SPAN_SERIES_WRITER, LOAD_BALANCING,
    SPAN_METRICS, SERVICE_GRAPH, TO_SAMPLING, BROWSER_FORWARD,
    "traces", "traces/sampling", "metrics/span_metrics", "metrics/service_graph", "metrics", "logs",
    *(f"{signal}/browser" for signal in BROWSER_SIGNALS),
)
SECTIONS = ("extensions", "receivers", "processors", "exporters", "service", "connectors")


def go_memory_limit(container_memory_mb: int) -> str:
    return f"{container_memory_mb * MEMORY_LIMIT_PERCENTAGE * 8 // 1000}MiB"


def render_collector_config(plan: StackPlan, tier_kind: str, metrics: Optional[MetricsStore] = None) -> dict[str, Any]:
    """The config of one tier of the plan's collector. metrics: the managed store metrics go to
    instead of Prometheus, where the platform made one."""
    tier = plan.collector.tier(tier_kind)
    settings = plan.settings
    pieces = [_runtime(plan)]
    if tier.takes_telemetry:
        pieces.append(_intake(plan, metrics))
    else:
        pieces.append(_from_ingest())
    if tier.samples:
        pieces.append(_whole_traces(plan, metrics))
    if tier.kind == INGEST:
        sampler = plan.collector.sampler
        assert sampler is not None, "an ingest tier routes to a sampler tier"
        pieces.append(_routing(sampler))
    if metrics is not None:
        pieces.append({"extensions": {"sigv4auth": {"region": metrics.region, "service": "aps"}}})
    if settings.otlp_require_token and tier.takes_telemetry:
        pieces.append(_token())
    # Web pages send to the entry tier, as server SDKs do, on a token-free route of their own.
    browser = browser_ingest(settings, MEMORY_SPIKE_PERCENTAGE) if has_browser_route(settings) and tier.takes_telemetry else None
    if browser is not None:
        pieces.append({section: browser[section] for section in ("receivers", "processors", "connectors")})
    config = _merge(pieces)
    config["service"] = {
        "extensions": list(config["extensions"]),
        "telemetry": _telemetry(),
        "pipelines": _ordered(_pipelines(tier, browser["pipelines"] if browser else None)),
    }
    return {section: config[section] for section in SECTIONS if section in config}


def _runtime(plan: StackPlan) -> dict[str, Any]:
    return {
        "extensions": {
            "health_check": {"endpoint": f"0.0.0.0:{HEALTH.container_port}"},
            QUEUE_STORAGE: {
                "directory": QUEUE_DIR,
                "create_directory": True,
                # On network storage every write reaches it before the sender is answered (bbolt
                # NoSync is !fsync), as a stopped task's kernel, and the pages it had not written
                # yet, go with the task. A local disk keeps a killed process's pages, and fsync
                # slowed a collector restart here enough for an app to drop a batch.
                "fsync": plan.facts.inherited_volumes_on_network_storage,
                # Reclaims the space of delivered batches, at start and once a backlog has drained.
                "compaction": {"on_start": True, "on_rebound": True, "directory": QUEUE_DIR},
            },
        },
        "processors": {
            # First in every pipeline (traces: the stricter one where tail sampling runs): refuse
            # data (retryable) before memory runs out.
            "memory_limiter": {
                "check_interval": "1s",
                "limit_percentage": MEMORY_LIMIT_PERCENTAGE,
                "spike_limit_percentage": MEMORY_SPIKE_PERCENTAGE,
            },
            "resource/metric_labels": {"attributes": [{"pattern": NOISY_RESOURCE_ATTRIBUTES, "action": "delete"}]},
            # Metrics only: the remote-write exporter keeps its own in-memory queue.
            "batch": {},
        },
    }


def _intake(plan: StackPlan, metrics: Optional[MetricsStore]) -> dict[str, Any]:
    """OTLP from the apps; spans and logs filtered, scrubbed and labelled; metrics and logs on to
    their stores."""
    settings = plan.settings
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    **_otlp_grpc(),
                    "http": {
                        "endpoint": f"0.0.0.0:{OTLP_HTTP.container_port}",
                        "cors": {"allowed_origins": list(settings.cors_allowed_origins), "max_age": 7200},
                    },
                }
            }
        },
        "processors": intake_processors(settings),
        "exporters": {
            # Loki 3 ingests OTLP natively; the old loki exporter is gone.
            LOKI_EXPORTER: _reliable({"endpoint": f"{plan.url(loki.NAME, loki.HTTP)}/otlp"}),
            METRICS_EXPORTER: _metrics_writer(plan, metrics),
        },
    }


def _whole_traces(plan: StackPlan, metrics: Optional[MetricsStore]) -> dict[str, Any]:
    """Series from every span (the connectors), then tail sampling, then Tempo."""
    settings = plan.settings
    return {
        "processors": {
            TRACES_MEMORY_LIMITER: traces_memory_limiter(),
            "tail_sampling": tail_sampling(settings, settings.memory_mb(NAME)),
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
        },
        "exporters": {
            TEMPO_EXPORTER: _reliable({"endpoint": f"{plan.hosts[tempo.NAME]}:{tempo.OTLP_GRPC.container_port}", "tls": {"insecure": True}}),
            # Span metrics keep the app's resource, so every sampler would also write the app's
            # target_info series, each with its own timestamps: out of order for the store (seen
            # with two samplers in tests/test_sampling.py). The series carry the resource as labels.
            SPAN_SERIES_WRITER: {**_metrics_writer(plan, metrics), "target_info": {"enabled": False}},
        },
        "connectors": span_connectors(),
    }


def _otlp_grpc() -> dict[str, Any]:
    # Receivers bind to localhost by default (since v0.104); a container needs 0.0.0.0.
    return {"grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC.container_port}"}}


def _from_ingest() -> dict[str, Any]:
    """The sampler tier takes the ingest tier's spans (already filtered, scrubbed and labelled) on
    OTLP gRPC inside the service network."""
    return {"receivers": {"otlp": {"protocols": _otlp_grpc()}}}


def _routing(sampler: Tier) -> dict[str, Any]:
    """Prepared spans go, by trace id, to the sampler that owns the trace.

    The persistent queue and the retries sit in front of the routing: a request is on disk before
    the sender gets its answer, and stays there until a sampler took it. The per-sampler OTLP
    exporter keeps no queue of its own, so a failure reaches the persistent queue
    (loadbalancingexporter README, "resilience and scaling considerations").

    The hop carries no token: bearertokenauth's gRPC credentials demand transport security
    (RequireTransportSecurity), so on this plaintext hop the exporter would never start. The
    sampler's port is reached only inside the service network, where the platform's rules are the
    boundary; the token guards the entry point, which the internet reaches.
    """
    return {
        "exporters": {
            LOAD_BALANCING: _reliable(
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
                    "resolver": {"dns": {"hostname": sampler.host, "port": str(OTLP_GRPC.container_port), "interval": "5s"}},
                }
            )
        }
    }


def _token() -> dict[str, Any]:
    """Both OTLP protocols reject requests without `Authorization: Bearer <token>`; the token
    itself is read from the file the platform names, so the config holds no secret."""
    auth = {"authenticator": "bearertokenauth"}
    return {
        "extensions": {"bearertokenauth": {"filename": f"${{env:{BEARER_TOKEN_FILE_ENV}}}"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"auth": auth}, "http": {"auth": auth}}}},
    }


def _pipelines(tier: Tier, browser: Optional[dict[str, Any]]) -> dict[str, Any]:
    """browser: the browser route's own pipelines, which hand on to the main ones."""
    intake = tier.takes_telemetry
    browser_in = [BROWSER_FORWARD] if browser else []
    traces_exporters = [SPAN_METRICS, SERVICE_GRAPH, TO_SAMPLING] if tier.samples else [LOAD_BALANCING]
    pipelines: dict[str, Any] = {
        # Spans are filtered, scrubbed and labelled where they enter, then fanned out: to the
        # connectors (every span) and to tail sampling (what reaches Tempo), or to the samplers.
        "traces": {
            "receivers": ["otlp", *browser_in],
            # Where tail sampling runs, its stricter limiter; elsewhere the disk queue takes the
            # spans and the samplers refuse into it.
            "processors": [TRACES_MEMORY_LIMITER if tier.samples else "memory_limiter",
                           *(["filter/health", "attributes/scrub", "resource"] if intake else [])],
            "exporters": traces_exporters,
        },
    }
    if tier.samples:
        pipelines |= {
            # Nothing after the connectors may refuse: a retry would count the spans twice.
            # The traces limiter in front already bounds what tail sampling holds.
            "traces/sampling": {"receivers": [TO_SAMPLING], "processors": ["tail_sampling"], "exporters": [TEMPO_EXPORTER]},
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
        }
    if intake:
        pipelines |= {
            "metrics": {
                "receivers": ["otlp"],
                "processors": ["memory_limiter", "resource", "resource/metric_labels", "batch"],
                "exporters": [METRICS_EXPORTER],
            },
            "logs": {
                "receivers": ["otlp", *browser_in],
                "processors": ["memory_limiter", "attributes/scrub", "resource"],
                "exporters": [LOKI_EXPORTER],
            },
        }
    return pipelines | (browser or {})


def _telemetry() -> dict[str, Any]:
    return {
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
                                # The collector's defaults drop _total and unit suffixes; keep the
                                # conventional names dashboards and alerts use.
                                "without_type_suffix": False,
                                "without_units": False,
                                "without_scope_info": True,
                            }
                        }
                    }
                }
            ],
        },
    }


def _metrics_writer(plan: StackPlan, metrics: Optional[MetricsStore]) -> dict[str, Any]:
    """Remote write to Prometheus, or to the managed store signed with the task role's credentials."""
    http: dict[str, Any] = {"endpoint": f"{plan.url(prometheus.NAME, prometheus.HTTP)}/api/v1/write"}
    if metrics is not None:
        http = {"endpoint": metrics.remote_write_url, "auth": {"authenticator": "sigv4auth"}}
    return {
        # Client settings moved under `http` in v0.158 (the flat form is deprecated).
        "http": http,
        "resource_to_telemetry_conversion": {"enabled": True},
        # This exporter has its own queue settings (no persistent storage): metrics are re-sent
        # every export interval anyway, unlike spans and logs.
        "retry_on_failure": {"enabled": True, "max_elapsed_time": "10m"},
    }


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


def _merge(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    """Sections merged piece by piece, nested mappings deeply (the token adds `auth` to the
    receivers' protocols); each section then in ORDER."""
    merged: dict[str, Any] = {}
    for piece in pieces:
        for section, components in piece.items():
            merged[section] = _deep_merge(merged.get(section, {}), components)
    return {section: _ordered(components) for section, components in merged.items()}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _ordered(components: dict[str, Any]) -> dict[str, Any]:
    unknown = set(components) - set(ORDER)
    assert not unknown, f"components missing from ORDER: {sorted(unknown)}"
    return {name: components[name] for name in ORDER if name in components}
