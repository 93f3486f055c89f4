"""The whole stack, wired once for any platform."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_random as random

from components.grafana.alerting import Alerting
from components.grafana.alerts import RuleContext, RuleGroup, read_runbook
from components.grafana.cloudwatch import ECS_CLUSTER_VARIABLE, S3_BUCKETS_VARIABLE
from components.grafana.content import GrafanaContent, datasource_definitions, grafana_provider
from components.grafana.dashboards import load_folders
from components.grafana.runbook import runbook_dashboard, runbook_links
from components.platforms.spec import Platform
from components.services import cadvisor, collector, grafana, loki, prometheus, tempo
from components.services.cadvisor import ContainerMetrics
from components.services.collector import ALL, INGEST, SAMPLER, SAMPLER_NAME, Collector, CollectorSampler
from components.services.grafana import Grafana
from components.services.loki import Loki
from components.services.prometheus import Prometheus
from components.services.tempo import Tempo
from components.settings import SERVICES, Settings


def scrape_targets(hosts: dict[str, str], container_metrics: bool = False) -> dict[str, str]:
    """Prometheus job -> every component's own metrics endpoint (the sampler tier's and cAdvisor's,
    where they run)."""
    targets = {
        prometheus.COLLECTOR_JOB: f"{hosts[collector.NAME]}:{collector.METRICS.container_port}",
        "prometheus": f"localhost:{prometheus.HTTP.container_port}",
        "tempo": f"{hosts[tempo.NAME]}:{tempo.HTTP.container_port}",
        "loki": f"{hosts[loki.NAME]}:{loki.HTTP.container_port}",
        "grafana": f"{hosts[grafana.NAME]}:{grafana.HTTP.container_port}",
    }
    if SAMPLER_NAME in hosts:
        targets[prometheus.COLLECTOR_SAMPLER_JOB] = f"{hosts[SAMPLER_NAME]}:{collector.METRICS.container_port}"
    if container_metrics:
        targets = {cadvisor.JOB: f"{hosts.get(cadvisor.NAME, cadvisor.NAME)}:{cadvisor.HTTP.container_port}"} | targets
    return targets


def collector_tiers(settings: Settings, platform_runs_sampler_tier: bool) -> tuple[str, ...]:
    """What the collector processes run: one tier doing both jobs where a single collector instance
    runs; an ingest tier and a sampler tier where the collector service may scale out (tail
    sampling and the service graph need every span of a trace in one process). A platform says
    whether it can run the sampler tier (its own service, discovery name and scaling)."""
    scales_out = settings.aws is not None and settings.aws.collector_max_tasks > 1
    return (INGEST, SAMPLER) if scales_out and platform_runs_sampler_tier else (ALL,)


def dashboard_constants(settings: Settings, bucket_names: pulumi.Input[Sequence[str]] = ()) -> dict[str, Any]:
    """Values the dashboards' constants (and the alert rules' CloudWatch dimensions) take on this
    stack: its ECS cluster and the S3 buckets it made (names an Output until deployed)."""
    if not settings.aws:
        return {}
    # The ECS cluster is named after the stack (components/platforms/aws), lowercased.
    return {ECS_CLUSTER_VARIABLE: settings.resource_prefix.lower(), S3_BUCKETS_VARIABLE: bucket_names}


def build_stack(settings: Settings, platform: Platform, alert_groups: list[RuleGroup]) -> dict[str, Any]:
    """Create every service, Grafana's content and alerting; return the stack outputs."""
    hosts = {name: platform.internal_host(name) for name in SERVICES}
    tiers = collector_tiers(settings, platform.runs_collector_sampler_tier)
    if SAMPLER in tiers:
        hosts[SAMPLER_NAME] = platform.internal_host(SAMPLER_NAME)
    # A managed metrics store, where the platform makes one: Prometheus then only scrapes.
    managed = platform.metrics_store(
        writers=(collector.NAME, prometheus.NAME, *((SAMPLER_NAME,) if SAMPLER in tiers else ())),
        readers=(grafana.NAME,),
        retention_hours=settings.prometheus_retention.hours,
    )
    if settings.container_metrics.enabled:
        hosts[cadvisor.NAME] = ContainerMetrics(settings, platform).service.internal_host
    targets = scrape_targets(hosts, container_metrics=settings.container_metrics.enabled)
    grafana_metrics_password: pulumi.Output[str] = pulumi.Output.secret(
        random.RandomPassword("grafana-metrics-password", length=32, special=False).result
    )
    metrics = Prometheus(settings, platform, targets, grafana_metrics_password, metrics_store=managed)
    traces = Tempo(settings, platform)
    logs = Loki(settings, platform)
    stores = (metrics.service, traces.service, logs.service)
    ingest = Collector(settings, platform, hosts, depends_on=stores, metrics_store=managed, tier=tiers[0])
    if SAMPLER in tiers:
        # The ingest tier's queue holds spans on disk until a sampler answers.
        CollectorSampler(settings, platform, hosts, depends_on=stores, metrics_store=managed)
    ui = Grafana(settings, platform, grafana_metrics_password, depends_on=stores, sigv4_auth=managed is not None)
    cloud_metrics_region = platform.cloud_metrics(readers=(grafana.NAME,))
    content = GrafanaContent(
        provider=grafana_provider(url=ui.url, auth=pulumi.Output.concat(ui.admin_user, ":", ui.admin_password)),
        datasources=datasource_definitions(
            prometheus_url=managed.query_url if managed is not None else metrics.service.internal_url(prometheus.HTTP),
            tempo_url=traces.service.internal_url(tempo.HTTP),
            loki_url=logs.service.internal_url(loki.HTTP),
            prometheus_sigv4_region=settings.aws.region if managed is not None and settings.aws else None,
            cloudwatch_region=cloud_metrics_region,
        ),
        folders=load_folders(),
        dashboard_constants=dashboard_constants(
            settings, pulumi.Output.all(*[store.apply(lambda s: s.bucket) for store in (traces.store, logs.store) if store is not None])
        ),
        opts=pulumi.ResourceOptions(depends_on=[ui]),
    )
    runbook = read_runbook()
    alerting = Alerting(
        provider=content.provider,
        groups=alert_groups,
        contacts=settings.alert_contacts,
        depends_on=list(content.datasources.values()),
        # Rules need only what is known before deploy: the cluster, not the buckets.
        context=RuleContext(frozenset(content.datasources), dashboard_constants(settings)),
        runbook=runbook_dashboard(runbook),
        runbook_links=runbook_links(runbook, ui.root_url, settings.runbook_base_url),
    )
    outputs: dict[str, Any] = {
        "grafanaUrl": ui.url,
        "grafanaAdminUser": ui.admin_user,
        "grafanaAdminPassword": ui.admin_password,
        "otlpGrpcEndpoint": ingest.otlp_grpc_endpoint,
        "otlpHttpEndpoint": ingest.otlp_http_endpoint,
        # Which channels each severity reaches ({} when none is configured), and that in words.
        "alertRouting": {severity: list(channels) for severity, channels in alerting.routes.items()},
        "alertNotifications": alerting.summary,
    }
    if metrics.url is not None:
        outputs["prometheusUrl"] = metrics.url
    if managed is not None:
        outputs["metricsQueryUrl"] = managed.query_url
    if ingest.bearer_token is not None:
        outputs["otlpBearerToken"] = ingest.bearer_token
    return outputs
