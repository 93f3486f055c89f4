"""The whole stack, wired once for any platform from the stack plan (components/plan.py)."""

from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_random as random

from components.grafana.alerting import Alerting
from components.grafana.alerts import RuleContext, RuleGroup, read_runbook
from components.grafana.content import DataSourceDefinition, GrafanaContent, grafana_provider
from components.grafana.dashboards import load_folders
from components.grafana.runbook import runbook_dashboard, runbook_links
from components.plan import StackPlan
from components.platforms.spec import MetricsStore, Platform
from components.services import grafana
from components.services.cadvisor import ContainerMetrics
from components.services.collector import Collector, CollectorSampler
from components.services.grafana import Grafana
from components.services.loki import Loki
from components.services.prometheus import Prometheus
from components.services.tempo import Tempo


def build_stack(plan: StackPlan, platform: Platform, alert_groups: list[RuleGroup]) -> dict[str, Any]:
    """Create every service, Grafana's content and alerting; return the stack outputs."""
    settings = plan.settings
    # A managed metrics store, where the platform makes one: Prometheus then only scrapes.
    managed = platform.metrics_store(
        writers=plan.writers_of_metrics(), readers=(grafana.NAME,), retention_hours=settings.prometheus_retention.hours
    )
    if settings.container_metrics.enabled:
        ContainerMetrics(plan, platform)
    grafana_metrics_password: pulumi.Output[str] = pulumi.Output.secret(
        random.RandomPassword("grafana-metrics-password", length=32, special=False).result
    )
    metrics = Prometheus(plan, platform, grafana_metrics_password, metrics_store=managed)
    traces = Tempo(plan, platform)
    logs = Loki(plan, platform)
    stores = (metrics.service, traces.service, logs.service)
    entry = Collector(plan, platform, depends_on=stores, metrics_store=managed)
    if plan.collector.sampler is not None:
        # The ingest tier's queue holds spans on disk until a sampler answers.
        CollectorSampler(plan, platform, depends_on=stores, metrics_store=managed)
    ui = Grafana(plan, platform, grafana_metrics_password, depends_on=stores, sigv4_auth=managed is not None)
    content = GrafanaContent(
        provider=grafana_provider(url=ui.url, auth=pulumi.Output.concat(ui.admin_user, ":", ui.admin_password)),
        datasources=managed_datasources(plan, platform, managed),
        folders=load_folders(),
        dashboard_constants=plan.dashboard_constants(
            pulumi.Output.all(*[store.apply(lambda s: s.bucket) for store in (traces.store, logs.store) if store is not None])
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
        context=RuleContext(frozenset(content.datasources), plan.dashboard_constants()),
        runbook=runbook_dashboard(runbook),
        runbook_links=runbook_links(runbook, plan.grafana_root_url, settings.runbook_base_url),
    )
    outputs: dict[str, Any] = {
        "grafanaUrl": ui.url,
        "grafanaAdminUser": ui.admin_user,
        "grafanaAdminPassword": ui.admin_password,
        "otlpGrpcEndpoint": entry.otlp_grpc_endpoint,
        "otlpHttpEndpoint": entry.otlp_http_endpoint,
        # Which channels each severity reaches ({} when none is configured), and that in words.
        "alertRouting": {severity: list(channels) for severity, channels in alerting.routes.items()},
        "alertNotifications": alerting.summary,
    }
    if metrics.url is not None:
        outputs["prometheusUrl"] = metrics.url
    if managed is not None:
        outputs["metricsQueryUrl"] = managed.apply(lambda m: m.query_url)
    if entry.bearer_token is not None:
        outputs["otlpBearerToken"] = entry.bearer_token
    return outputs | dict(platform.outputs())


def managed_datasources(plan: StackPlan, platform: Platform, managed: Optional[pulumi.Output[MetricsStore]]) -> list[DataSourceDefinition]:
    """Grafana's data sources, the managed metrics store's query URL once it is known. Grafana may
    read the platform's own metrics where it has them."""
    cloudwatch_region = platform.cloud_metrics(readers=(grafana.NAME,))
    return plan.datasources(managed.apply(lambda m: m.query_url) if managed is not None else None, cloudwatch_region)
