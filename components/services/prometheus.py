"""Prometheus: the collector's metrics (remote write) and every component's own (scraped)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import pulumi

from components.platforms.spec import (
    ConfigFile,
    DataVolume,
    HealthCheck,
    MetricsStore,
    Platform,
    Port,
    SecretValue,
    ServiceSpec,
    render_when_known,
    secret_file,
)
from components.services import grafana
from components.yamltext import to_yaml

if TYPE_CHECKING:
    from components.plan import ScrapeTarget, StackPlan

NAME = "prometheus"
HTTP = Port("http", 9090)
DATA_DIR = "/prometheus"
CONFIG_PATH = "/etc/prometheus/prometheus.yml"
OUT_OF_ORDER_WINDOW = "10m"
# Its own metrics, scraped where it runs.
JOB = "prometheus"
GRAFANA_JOB = "grafana"
# Grafana's /metrics asks for this secret (components/services/grafana.py); Prometheus reads it
# from a file only (scrape_config basic_auth.password_file).
GRAFANA_METRICS_PASSWORD = "GRAFANA_METRICS_PASSWORD"
# The image's user (its Dockerfile: USER nobody).
USER = "65534:65534"


def prometheus_args(agent: bool = False) -> tuple[str, ...]:
    if agent:
        # Scrape and forward only: a small WAL, no TSDB, no queries.
        return (f"--config.file={CONFIG_PATH}", "--agent", f"--storage.agent.path={DATA_DIR}")
    # Replacing the image's CMD drops its --config.file and --storage.tsdb.path: repeat both. The
    # collector remote-writes; its OTLP receiver (off by default) stays off: nothing sends OTLP.
    return (
        f"--config.file={CONFIG_PATH}",
        f"--storage.tsdb.path={DATA_DIR}",
        "--web.enable-remote-write-receiver",
        "--enable-feature=exemplar-storage",
    )


def _targets(target: ScrapeTarget) -> dict[str, Any]:
    if target.every_instance:
        # Several tasks behind one service-discovery name with an A record each: resolve it every
        # 30 s and scrape each task, not whichever one the name points at.
        return {"dns_sd_configs": [{"names": [target.host], "type": "A", "port": target.port, "refresh_interval": "30s"}]}
    return {"static_configs": [{"targets": [target.address]}]}


def _credentials(job: str) -> dict[str, Any]:
    if job != GRAFANA_JOB:
        return {}
    return {"basic_auth": {"username": grafana.METRICS_USER, "password_file": secret_file(GRAFANA_METRICS_PASSWORD)}}


def render_prometheus_config(plan: StackPlan, metrics: Optional[MetricsStore] = None) -> dict[str, Any]:
    """Scrapes the plan's scrape targets (every component's own metrics). With a managed metrics
    store, Prometheus runs as an agent that forwards what it scrapes there."""
    settings = plan.settings
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": "15s",
            "evaluation_interval": "15s",
            "external_labels": {"deployment_environment_name": settings.environment},
        },
        # Since 3.8 retention lives here; the command-line flags are deprecated. Whichever limit
        # is reached first deletes the oldest blocks, so the disk never fills with old data.
        "storage": {
            "tsdb": {
                "retention": {
                    "time": settings.prometheus_retention.go_duration,
                    "size": settings.prometheus_storage.retention_size,
                },
                # One app's series reach it through several collectors (the load balancer spreads
                # its exports): a write one of them sends late is older than what another wrote
                # since. Kept, not refused (the collector drops a refused write for good), for as
                # long as a collector retries a write (its remote-write retry_on_failure: 10m).
                "out_of_order_time_window": OUT_OF_ORDER_WINDOW,
            }
        },
        "scrape_configs": [
            {
                "job_name": job,
                **_targets(target),
                **_credentials(job),
                # Prometheus 3 would keep UTF-8 names (dots); dashboards use the underscore form.
                "metric_name_validation_scheme": "legacy",
            }
            for job, target in sorted(plan.scrape_targets.items())
        ],
    }
    if metrics is not None:
        # The store keeps the data (and its retention); SigV4 with the task role's credentials.
        del config["storage"]
        config["remote_write"] = [{"url": metrics.remote_write_url, "sigv4": {"region": metrics.region}}]
    return config


class Prometheus(pulumi.ComponentResource):
    def __init__(
        self,
        plan: StackPlan,
        platform: Platform,
        grafana_metrics_password: pulumi.Output[str],
        metrics_store: Optional[pulumi.Output[MetricsStore]] = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """grafana_metrics_password: what Grafana's /metrics asks for (Prometheus scrapes it)."""
        super().__init__("observability:components:Prometheus", NAME, None, opts)
        settings = plan.settings
        self.config_yaml = render_when_known(lambda m: to_yaml(render_prometheus_config(plan, m)), metrics_store)
        # Its remote-write receiver takes writes without authentication: this machine only. The
        # collector tiers write to it and Grafana queries it, unless a managed store does both.
        clients = () if metrics_store is not None else (*plan.collector.metric_writers, grafana.NAME)
        http = Port(HTTP.name, HTTP.container_port, host_port=settings.host_ports.prometheus, loopback_only=True, clients=clients)
        spec = ServiceSpec(
            name=NAME,
            image=settings.image(NAME),
            memory_mb=settings.memory_mb(NAME),
            command=prometheus_args(agent=metrics_store is not None),
            ports=(http,),
            files=(ConfigFile(CONFIG_PATH, self.config_yaml),),
            secrets=(SecretValue(GRAFANA_METRICS_PASSWORD, grafana_metrics_password, file_only=True),),
            user=USER,
            cpu_units=settings.cpu_units(NAME),
            volumes=(DataVolume("data", DATA_DIR),),
            disk_gib=settings.prometheus_task_disk_gib,
            health=HealthCheck(("wget", "-q", "--spider", f"http://localhost:{HTTP.container_port}/-/ready")),
        )
        self.service = platform.run(spec, parent=self)
        # Internal-only where the platform publishes no host ports (aws): reach it through Grafana.
        self.url = self.service.external_urls.get(HTTP.name)
        self.register_outputs({"url": self.url})
