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
from components.services.collector_browser import (
    BROWSER_LOGS_PATH,
    BROWSER_OTLP,
    BROWSER_TRACES_PATH,
    browser_ingest,
    join_browser_ingest,
)
from components.services.collector_sampling import (
    ALL,
    INGEST,
    INSTANCE_ATTRIBUTE,
    INSTANCE_DETECTION,
    INSTANCE_LABEL,
    METRICS_WRITERS,
    SAMPLER,
    SAMPLER_NAME,
    SCALING_MEMORY_PERCENTAGE,
    SERVICE_GRAPH,
    SPAN_METRICS,
    SPAN_SERIES_WRITER,
    TIERS,
    TO_SAMPLING,
    TRACES_MEMORY_LIMITER,
    add_span_series_writer,
    span_connectors,
    tail_sampling,
    traces_memory_limiter,
)
from components.settings import Settings
from components.yamltext import to_yaml

NAME = "collector"
OTLP_GRPC = Port("otlp-grpc", 4317)
OTLP_HTTP = Port("otlp-http", 4318)
HEALTH = Port("health", 13133)
METRICS = Port("metrics", 8888)
CONFIG_PATH = "/etc/otelcol-contrib/config.yaml"
# The ingest token (otlpRequireToken) is a file, never an environment variable (`docker inspect`,
# ECS's describe calls show those): the platform writes it and names it in BEARER_TOKEN_FILE_ENV.
BEARER_TOKEN_ENV = "OTLP_BEARER_TOKEN"
BEARER_TOKEN_FILE_ENV = "OTLP_BEARER_TOKEN_FILE"
# OTLP/HTTP paths and the gRPC services' path prefix, as a shared HTTPS entry point routes them.
OTLP_HTTP_PATHS = ("/v1/traces", "/v1/metrics", "/v1/logs")
OTLP_GRPC_PATHS = ("/opentelemetry.proto.collector.*",)
# The exporters' sending queues live here, so telemetry waiting for a store that is down survives
# a collector restart. The image runs as 10001 and has no directory of its own for it.
QUEUE_DIR = "/var/lib/otelcol/file_storage"
# The contrib image's user (its Dockerfile: USER 10001:10001).
USER = "10001:10001"
QUEUE_OWNER = USER
QUEUE_STORAGE = "file_storage/queue"
QUEUE_BYTES = 1024**3


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
                # aws: every write reaches the queue's network file system before the sender is
                # answered (bbolt NoSync is !fsync), as a stopped task's kernel, and the pages it had
                # not written yet, go with the task. A local disk keeps a killed process's pages, and
                # fsync slowed a collector restart here enough for an app to drop a batch.
                "fsync": settings.target == "aws",
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
            # First in every pipeline (traces: the stricter one below where tail sampling runs):
            # refuse data (retryable) before memory runs out.
            "memory_limiter": {
                "check_interval": "1s",
                "limit_percentage": MEMORY_LIMIT_PERCENTAGE,
                "spike_limit_percentage": MEMORY_SPIKE_PERCENTAGE,
            },
            TRACES_MEMORY_LIMITER: traces_memory_limiter(),
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
                    "processors": [TRACES_MEMORY_LIMITER, "filter/health", "attributes/scrub", "resource"],
                    "exporters": [SPAN_METRICS, SERVICE_GRAPH, TO_SAMPLING],
                },
                # Nothing after the connectors may refuse: a retry would count the spans twice.
                # The traces limiter in front already bounds what tail sampling holds.
                "traces/sampling": {
                    "receivers": [TO_SAMPLING],
                    "processors": ["tail_sampling"],
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
    config["connectors"] = span_connectors()
    add_span_series_writer(config)
    if tier == INGEST:
        assert sampler_host is not None
        _route_traces_to_samplers(config, sampler_host)
    elif tier == SAMPLER:
        _sample_only(config)
    if settings.otlp_require_token and tier != SAMPLER:
        # The token guards the entry point. The hop to the sampler tier carries none:
        # bearertokenauth's gRPC credentials demand transport security (RequireTransportSecurity),
        # so on that plaintext hop the exporter would never start; the sampler's port is reached
        # only inside the service network.
        _require_bearer_token(config)
        # Web pages send to the tier behind the load balancer, as server SDKs do.
        join_browser_ingest(config, browser_ingest(settings, MEMORY_SPIKE_PERCENTAGE))
    if metrics is not None:
        _write_metrics_with_sigv4(config, metrics)
    return config


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
    # Nothing here holds traces: the disk queue takes them, and the samplers refuse into it.
    pipelines["traces"]["processors"][0] = "memory_limiter"
    for name in ("traces/sampling", "metrics/span_metrics", "metrics/service_graph"):
        del pipelines[name]
    del config["connectors"]
    del config["exporters"]["otlp_grpc/tempo"]
    del config["exporters"][SPAN_SERIES_WRITER]
    for name in ("tail_sampling", INSTANCE_DETECTION, INSTANCE_LABEL, TRACES_MEMORY_LIMITER):
        del config["processors"][name]


def _sample_only(config: dict[str, Any]) -> None:
    """Sampler: takes the ingest tier's spans (already filtered, scrubbed and labelled) on OTLP gRPC
    inside the service network; makes the span metrics and the service graph from every span, keeps
    what tail sampling keeps, and queues it on disk toward Tempo."""
    config["receivers"]["otlp"]["protocols"] = {"grpc": config["receivers"]["otlp"]["protocols"]["grpc"]}
    pipelines = config["service"]["pipelines"]
    pipelines["traces"]["processors"] = [TRACES_MEMORY_LIMITER]
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
    itself is read from the file the platform names, so the config holds no secret."""
    config["extensions"]["bearertokenauth"] = {"filename": f"${{env:{BEARER_TOKEN_FILE_ENV}}}"}
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        protocol["auth"] = {"authenticator": "bearertokenauth"}
    config["service"]["extensions"].append("bearertokenauth")


def bearer_token_file(token: pulumi.Output[str]) -> SecretValue:
    return SecretValue(BEARER_TOKEN_ENV, token, file_env=BEARER_TOKEN_FILE_ENV, file_only=True)


def _collector_spec(
    settings: Settings, name: str, config_yaml: pulumi.Input[str], secrets: tuple[SecretValue, ...], ports: tuple[Port, ...],
    samples: bool,
) -> ServiceSpec:
    """Either tier: the same image, memory and queue volume. samples: the tier runs tail sampling."""
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
        scale_on_memory_percentage=SCALING_MEMORY_PERCENTAGE if samples else None,
        user=USER,
        # One writer per queue (bbolt); a replacement task sends what a stopped one queued.
        volumes=(DataVolume("queue", QUEUE_DIR, owner=QUEUE_OWNER, inherited_by_replacements=True),),
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
            secrets = (bearer_token_file(self.bearer_token),)
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
            samples=tier != INGEST,
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
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("observability:components:CollectorSampler", SAMPLER_NAME, None, opts)
        self.config_yaml = render_when_known(
            lambda m: to_yaml(render_collector_config(settings, hosts, m, tier=SAMPLER)), metrics_store
        )
        spec = _collector_spec(settings, SAMPLER_NAME, self.config_yaml, (), ports=(OTLP_GRPC, HEALTH, METRICS), samples=True)
        self.service = platform.run(spec, parent=self, depends_on=depends_on)
        self.register_outputs({"host": self.service.internal_host})
