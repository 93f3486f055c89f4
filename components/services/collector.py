"""OpenTelemetry Collector: the one OTLP entry point; routes traces, metrics and logs to the stores.

Its tiers (collector_tiers.py) run as services of their own; each tier's config is composed in
collector_config.py.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional

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
from components.services.collector_browser import BROWSER_LOGS_PATH, BROWSER_OTLP, BROWSER_TRACES_PATH, has_browser_route
from components.services.collector_config import (
    BEARER_TOKEN_ENV,
    BEARER_TOKEN_FILE_ENV,
    CONFIG_PATH,
    HEALTH,
    LOAD_BALANCING,
    MEMORY_LIMIT_PERCENTAGE,
    METRICS_WRITERS,
    OTLP_GRPC,
    OTLP_HTTP,
    QUEUE_BYTES,
    QUEUE_DIR,
    QUEUE_STORAGE,
    go_memory_limit,
    render_collector_config,
)
from components.services.collector_sampling import (
    INSTANCE_ATTRIBUTE,
    INSTANCE_DETECTION,
    INSTANCE_LABEL,
    SERVICE_GRAPH,
    SPAN_METRICS,
    SPAN_SERIES_WRITER,
    TO_SAMPLING,
)
from components.services.collector_tiers import ALL, INGEST, METRICS, NAME, SAMPLER, SAMPLER_NAME, TIERS, Tier
from components.yamltext import to_yaml

if TYPE_CHECKING:
    from components.plan import StackPlan

# OTLP/HTTP paths and the gRPC services' path prefix, as a shared HTTPS entry point routes them.
OTLP_HTTP_PATHS = ("/v1/traces", "/v1/metrics", "/v1/logs")
OTLP_GRPC_PATHS = ("/opentelemetry.proto.collector.*",)
# The contrib image's user (its Dockerfile: USER 10001:10001).
USER = "10001:10001"
QUEUE_OWNER = USER


def bearer_token_file(token: pulumi.Output[str]) -> SecretValue:
    return SecretValue(BEARER_TOKEN_ENV, token, file_env=BEARER_TOKEN_FILE_ENV, file_only=True)


def entry_ports(plan: StackPlan) -> tuple[Port, ...]:
    """The entry tier's ports: OTLP for apps (published on docker, routed by the load balancer on
    aws), the browser route where apps need a token, the health check and its own metrics."""
    settings, ports = plan.settings, plan.settings.host_ports
    browser = (
        (Port(BROWSER_OTLP.name, BROWSER_OTLP.container_port, host_port=ports.otlp_browser,
              public=PublicRoute(paths=(BROWSER_TRACES_PATH, BROWSER_LOGS_PATH), health_port=HEALTH.container_port,
                                 anonymous=True)),)
        if has_browser_route(settings) else ()
    )
    return (
        Port(OTLP_GRPC.name, OTLP_GRPC.container_port, host_port=ports.otlp_grpc, public=PublicRoute(paths=OTLP_GRPC_PATHS, grpc=True)),
        Port(OTLP_HTTP.name, OTLP_HTTP.container_port, host_port=ports.otlp_http,
             public=PublicRoute(paths=OTLP_HTTP_PATHS, health_port=HEALTH.container_port)),
        *browser,
        Port(HEALTH.name, HEALTH.container_port, host_port=ports.collector_health),
        metrics_port(plan, plan.collector.entry),
    )


def metrics_port(plan: StackPlan, tier: Tier) -> Port:
    """The tier's own metrics, for whoever scrapes them."""
    return dataclasses.replace(METRICS, clients=plan.scrapers(tier.service, METRICS))


def sampler_ports(plan: StackPlan, tier: Tier) -> tuple[Port, ...]:
    """The sampler tier's: OTLP gRPC from the ingest tier only, its health check, its metrics."""
    return (dataclasses.replace(OTLP_GRPC, clients=plan.collector.sampler_senders), HEALTH, metrics_port(plan, tier))


def tier_spec(
    plan: StackPlan, tier: Tier, config_yaml: pulumi.Input[str], secrets: tuple[SecretValue, ...] = ()
) -> ServiceSpec:
    """Every tier: the same image, memory, CPU and queue volume; the entry tier takes the apps'
    ports, the sampler tier OTLP gRPC from the ingest tier only."""
    settings = plan.settings
    return ServiceSpec(
        name=tier.service,
        image=settings.image(NAME),
        memory_mb=settings.memory_mb(NAME),
        cpu_units=settings.cpu_units(NAME),
        command=(f"--config={CONFIG_PATH}",),
        ports=entry_ports(plan) if tier.takes_telemetry else sampler_ports(plan, tier),
        files=(ConfigFile(CONFIG_PATH, config_yaml),),
        env={"GOMEMLIMIT": go_memory_limit(settings.memory_mb(NAME))},
        secrets=secrets,
        stateless=True,
        scaling=tier.scaling,
        user=USER,
        # One writer per queue (bbolt); a replacement task sends what a stopped one queued.
        volumes=(DataVolume("queue", QUEUE_DIR, owner=QUEUE_OWNER, inherited_by_replacements=True),),
        # FROM scratch: no shell, nothing to run a health check with. Checked from outside on
        # the health port instead.
        health=None,
    )


def _config(plan: StackPlan, tier: Tier, metrics_store: Optional[pulumi.Output[MetricsStore]]) -> pulumi.Input[str]:
    return render_when_known(lambda m: to_yaml(render_collector_config(plan, tier.kind, m)), metrics_store)


class Collector(pulumi.ComponentResource):
    """The entry tier: where apps and web pages send (the only collector where it runs once)."""

    def __init__(
        self,
        plan: StackPlan,
        platform: Platform,
        depends_on: tuple[RunningService, ...] = (),
        metrics_store: Optional[pulumi.Output[MetricsStore]] = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("observability:components:Collector", NAME, None, opts)
        tier = plan.collector.entry
        self.config_yaml = _config(plan, tier, metrics_store)
        self.bearer_token: pulumi.Output[str] | None = None
        secrets: tuple[SecretValue, ...] = ()
        if plan.settings.otlp_require_token:
            token = random.RandomPassword("otlp-bearer-token", length=40, special=False, opts=pulumi.ResourceOptions(parent=self))
            self.bearer_token = pulumi.Output.secret(token.result)
            secrets = (bearer_token_file(self.bearer_token),)
        self.service = platform.run(tier_spec(plan, tier, self.config_yaml, secrets), parent=self, depends_on=depends_on)
        self.otlp_grpc_endpoint = self.service.external_urls[OTLP_GRPC.name]
        self.otlp_http_endpoint = self.service.external_urls[OTLP_HTTP.name]
        self.register_outputs({"otlpGrpcEndpoint": self.otlp_grpc_endpoint, "otlpHttpEndpoint": self.otlp_http_endpoint})


class CollectorSampler(pulumi.ComponentResource):
    """The sampler tier, beside the ingest tier where the collector may scale out. Reached only
    inside the service network, on OTLP gRPC, by the ingest collectors."""

    def __init__(
        self,
        plan: StackPlan,
        platform: Platform,
        depends_on: tuple[RunningService, ...] = (),
        metrics_store: Optional[pulumi.Output[MetricsStore]] = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        tier = plan.collector.sampler
        assert tier is not None, "the plan has a sampler tier"
        super().__init__("observability:components:CollectorSampler", tier.service, None, opts)
        self.config_yaml = _config(plan, tier, metrics_store)
        self.service = platform.run(tier_spec(plan, tier, self.config_yaml), parent=self, depends_on=depends_on)
        self.register_outputs({"host": self.service.internal_host})


# The collector's names, for readers (and tests) that look for them here.
__all__ = [
    "ALL",
    "BEARER_TOKEN_ENV",
    "BEARER_TOKEN_FILE_ENV",
    "BROWSER_TRACES_PATH",
    "CONFIG_PATH",
    "HEALTH",
    "INGEST",
    "INSTANCE_ATTRIBUTE",
    "INSTANCE_DETECTION",
    "INSTANCE_LABEL",
    "LOAD_BALANCING",
    "MEMORY_LIMIT_PERCENTAGE",
    "METRICS",
    "METRICS_WRITERS",
    "NAME",
    "OTLP_GRPC",
    "OTLP_HTTP",
    "QUEUE_BYTES",
    "QUEUE_DIR",
    "QUEUE_OWNER",
    "QUEUE_STORAGE",
    "SAMPLER",
    "SAMPLER_NAME",
    "SERVICE_GRAPH",
    "SPAN_METRICS",
    "SPAN_SERIES_WRITER",
    "TIERS",
    "TO_SAMPLING",
    "USER",
    "Collector",
    "CollectorSampler",
    "bearer_token_file",
    "entry_ports",
    "go_memory_limit",
    "render_collector_config",
    "tier_spec",
]
