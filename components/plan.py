"""The stack as plain data: which services run, their addresses, the collector's tiers, what
Prometheus scrapes, where Grafana's data sources point and where people reach Grafana. Computed
once from the settings and the platform's facts; the Pulumi program (components/stack.py) turns it
into resources and the offline renderer (components/render.py) into files, so neither holds a
rule of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Optional

import pulumi

from components.grafana.cloudwatch import ECS_CLUSTER_VARIABLE, S3_BUCKETS_VARIABLE
from components.grafana.content import DataSourceDefinition, datasource_definitions
from components.platforms import facts_for
from components.platforms.facts import PlatformFacts
from components.platforms.spec import MetricsStore, ObjectStore, Port
from components.services import cadvisor, collector_config, collector_tiers, grafana, loki, prometheus, tempo
from components.services.collector_tiers import CollectorTopology, collector_topology
from components.settings import SERVICES, Settings


@dataclass(frozen=True)
class ScrapeTarget:
    host: str
    port: int
    # Every instance behind the host (an address each) rather than whichever one it resolves to.
    every_instance: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class StackPlan:
    settings: Settings
    facts: PlatformFacts
    collector: CollectorTopology
    # Every service the stack runs -> the name the others reach it by.
    hosts: Mapping[str, str]
    # Prometheus job -> the component's own metrics endpoint.
    scrape_targets: Mapping[str, ScrapeTarget]
    # Where people open Grafana (its root URL, ending in a slash).
    grafana_root_url: str

    def url(self, service: str, port: Port) -> str:
        return f"http://{self.hosts[service]}:{port.container_port}"

    def scrapers(self, service: str, port: Port) -> tuple[str, ...]:
        """Prometheus, where it scrapes this port of the service (a Port.clients entry)."""
        host = self.hosts[service]
        scraped = any(t.host == host and t.port == port.container_port for t in self.scrape_targets.values())
        return (prometheus.NAME,) if scraped else ()

    def config_documents(self, stores: Stores) -> dict[str, Any]:
        """<service>/<file name> -> the config each service is given, for the offline render (the
        services' components render the same, once the platform has named its stores)."""
        documents: dict[str, Any] = {
            _config_name(tier.service, collector_config.CONFIG_PATH): collector_config.render_collector_config(self, tier.kind, stores.metrics)
            for tier in self.collector.tiers
        }
        documents[_config_name(prometheus.NAME, prometheus.CONFIG_PATH)] = prometheus.render_prometheus_config(self, stores.metrics)
        documents[_config_name(tempo.NAME, tempo.CONFIG_PATH)] = tempo.render_tempo_config(self.settings, stores.traces)
        documents[_config_name(loki.NAME, loki.CONFIG_PATH)] = loki.render_loki_config(self.settings, stores.logs)
        return documents

    def dashboard_constants(self, bucket_names: pulumi.Input[Sequence[str]] = ()) -> dict[str, Any]:
        """Values the dashboards' constants (and the alert rules' CloudWatch dimensions) take where
        the platform has metrics of its own: its cluster and the stack's buckets (names an Output
        until deployed)."""
        if self.facts.cloud_metrics_cluster is None:
            return {}
        return {ECS_CLUSTER_VARIABLE: self.facts.cloud_metrics_cluster, S3_BUCKETS_VARIABLE: bucket_names}

    def writers_of_metrics(self) -> tuple[str, ...]:
        """The services that remote-write metrics: every collector tier and Prometheus."""
        return (*self.collector.metric_writers, prometheus.NAME)

    def datasources(self, managed_query_url: Optional[pulumi.Input[str]], cloudwatch_region: Optional[str]) -> list[DataSourceDefinition]:
        """Grafana's data sources at the services' internal addresses; Prometheus's is the managed
        store's query URL (signed requests) where the platform made one."""
        managed = managed_query_url is not None
        return datasource_definitions(
            prometheus_url=managed_query_url if managed_query_url is not None else self.url(prometheus.NAME, prometheus.HTTP),
            prometheus_sigv4_region=self.facts.metrics_store_region if managed else None,
            tempo_url=self.url(tempo.NAME, tempo.HTTP),
            loki_url=self.url(loki.NAME, loki.HTTP),
            cloudwatch_region=cloudwatch_region,
        )


def _config_name(service: str, path: str) -> str:
    return f"{service}/{PurePosixPath(path).name}"


def plan_stack(settings: Settings, facts: Optional[PlatformFacts] = None) -> StackPlan:
    facts = facts or facts_for(settings)
    return plan_with_collector(settings, facts, collector_topology(settings, facts))


def plan_with_collector(settings: Settings, facts: PlatformFacts, topology: CollectorTopology) -> StackPlan:
    """The plan around a given collector topology (the tests run a scaled one on one machine)."""
    # Every service the settings know (SERVICES), the collector as its tiers.
    services = [tier.service for tier in topology.tiers] + [name for name in SERVICES if name != collector_tiers.NAME]
    if settings.container_metrics.enabled:
        services.append(cadvisor.NAME)
    hosts = {name: facts.internal_host(name) for name in services}
    return StackPlan(
        settings=settings,
        facts=facts,
        collector=topology,
        hosts=hosts,
        scrape_targets=_scrape_targets(settings, topology, hosts),
        grafana_root_url=facts.external_url(grafana.published_port(settings)) + "/",
    )


def _scrape_targets(settings: Settings, topology: CollectorTopology, hosts: Mapping[str, str]) -> dict[str, ScrapeTarget]:
    targets = {
        tier.job: ScrapeTarget(tier.host, collector_tiers.METRICS.container_port, every_instance=tier.scaling is not None)
        for tier in topology.tiers
    }
    targets |= {
        # Prometheus scrapes itself where it runs.
        prometheus.JOB: ScrapeTarget("localhost", prometheus.HTTP.container_port),
        tempo.NAME: ScrapeTarget(hosts[tempo.NAME], tempo.HTTP.container_port),
        loki.NAME: ScrapeTarget(hosts[loki.NAME], loki.HTTP.container_port),
        prometheus.GRAFANA_JOB: ScrapeTarget(hosts[grafana.NAME], grafana.HTTP.container_port),
    }
    if settings.container_metrics.enabled:
        targets[cadvisor.JOB] = ScrapeTarget(hosts[cadvisor.NAME], cadvisor.HTTP.container_port)
    return targets


@dataclass(frozen=True)
class Stores:
    """What the platform creates and names at deploy time: the buckets of Tempo and Loki and a
    managed metrics store; None where it makes none."""

    traces: Optional[ObjectStore] = None
    logs: Optional[ObjectStore] = None
    metrics: Optional[MetricsStore] = None


def placeholder_stores(facts: PlatformFacts) -> Stores:
    """The stores as the offline render shows them: the platform's own formats, with the names it
    learns only at deploy in angle brackets."""
    return Stores(
        traces=facts.object_store(f"<{tempo.NAME} bucket, named at deploy>"),
        logs=facts.object_store(f"<{loki.NAME} bucket, named at deploy>"),
        metrics=facts.metrics_store_placeholder(),
    )
