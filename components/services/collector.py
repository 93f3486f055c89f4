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
    settings: Settings, hosts: dict[str, str], metrics: Optional[MetricsStore] = None
) -> dict[str, Any]:
    """The collector config for one stack. hosts maps service name -> address on the service network;
    metrics, when the platform made one, is the managed store metrics go to instead of Prometheus."""
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
            "probabilistic_sampler": {"sampling_percentage": settings.trace_sampling_percentage},
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
                "traces": {
                    "receivers": ["otlp"],
                    "processors": [
                        "memory_limiter",
                        "filter/health",
                        "attributes/scrub",
                        "resource",
                        "probabilistic_sampler",
                    ],
                    "exporters": ["otlp_grpc/tempo"],
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
    if settings.otlp_require_token:
        _require_bearer_token(config)
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


def _write_metrics_with_sigv4(config: dict[str, Any], metrics: MetricsStore) -> None:
    """Remote write to the managed store, signed with the task role's credentials."""
    config["extensions"]["sigv4auth"] = {"region": metrics.region, "service": "aps"}
    exporter = config["exporters"]["prometheus_remote_write"]
    exporter["http"] = {**exporter["http"], "endpoint": metrics.remote_write_url, "auth": {"authenticator": "sigv4auth"}}
    config["service"]["extensions"].append("sigv4auth")


def _require_bearer_token(config: dict[str, Any]) -> None:
    """Both OTLP protocols reject requests without `Authorization: Bearer <token>`; the token
    itself comes from the environment, so the config holds no secret."""
    config["extensions"]["bearertokenauth"] = {"token": f"${{env:{BEARER_TOKEN_ENV}}}"}
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        protocol["auth"] = {"authenticator": "bearertokenauth"}
    config["service"]["extensions"].append("bearertokenauth")


class Collector(pulumi.ComponentResource):
    def __init__(
        self,
        settings: Settings,
        platform: Platform,
        hosts: dict[str, str],
        depends_on: tuple[RunningService, ...] = (),
        metrics_store: Optional[pulumi.Output[MetricsStore]] = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("observability:components:Collector", NAME, None, opts)
        self.config_yaml = render_when_known(lambda m: to_yaml(render_collector_config(settings, hosts, m)), metrics_store)
        ports = settings.host_ports
        self.bearer_token: pulumi.Output[str] | None = None
        secrets: tuple[SecretValue, ...] = ()
        if settings.otlp_require_token:
            token = random.RandomPassword("otlp-bearer-token", length=40, special=False, opts=pulumi.ResourceOptions(parent=self))
            self.bearer_token = pulumi.Output.secret(token.result)
            secrets = (SecretValue(BEARER_TOKEN_ENV, self.bearer_token),)
        spec = ServiceSpec(
            name=NAME,
            image=settings.image(NAME),
            memory_mb=settings.memory_mb(NAME),
            command=(f"--config={CONFIG_PATH}",),
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
            files=(ConfigFile(CONFIG_PATH, self.config_yaml),),
            env={"GOMEMLIMIT": go_memory_limit(settings.memory_mb(NAME))},
            secrets=secrets,
            stateless=True,
            volumes=(DataVolume("queue", QUEUE_DIR, owner=QUEUE_OWNER),),
            # FROM scratch: no shell, nothing to run a health check with. Checked from outside
            # on the health port instead.
            health=None,
        )
        self.service = platform.run(spec, parent=self, depends_on=depends_on)
        self.otlp_grpc_endpoint = self.service.external_urls[OTLP_GRPC.name]
        self.otlp_http_endpoint = self.service.external_urls[OTLP_HTTP.name]
        self.register_outputs({"otlpGrpcEndpoint": self.otlp_grpc_endpoint, "otlpHttpEndpoint": self.otlp_http_endpoint})
