"""Prometheus: metrics from the collector and Tempo (remote write), and every component's own."""

from __future__ import annotations

from typing import Any, Optional

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
from components.settings import Settings
from components.yamltext import to_yaml

NAME = "prometheus"
HTTP = Port("http", 9090)
DATA_DIR = "/prometheus"
CONFIG_PATH = "/etc/prometheus/prometheus.yml"
COLLECTOR_JOB = "otel-collector"
# The collector's sampler tier, where the collector scales out (components/services/collector.py).
COLLECTOR_SAMPLER_JOB = "otel-collector-sampler"
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
    # Replacing the image's CMD drops its --config.file and --storage.tsdb.path: repeat both.
    return (
        f"--config.file={CONFIG_PATH}",
        f"--storage.tsdb.path={DATA_DIR}",
        "--web.enable-remote-write-receiver",
        "--web.enable-otlp-receiver",
        "--enable-feature=exemplar-storage",
    )


def _targets(settings: Settings, job: str, target: str) -> dict[str, Any]:
    host, port = target.rsplit(":", 1)
    if job in (COLLECTOR_JOB, COLLECTOR_SAMPLER_JOB) and settings.aws is not None and settings.aws.collector_max_tasks > 1:
        # The collector scales out behind one service-discovery name with an A record per task:
        # resolve it every 30 s and scrape each task, not whichever one the name points at.
        return {"dns_sd_configs": [{"names": [host], "type": "A", "port": int(port), "refresh_interval": "30s"}]}
    return {"static_configs": [{"targets": [target]}]}


def _credentials(job: str) -> dict[str, Any]:
    if job != GRAFANA_JOB:
        return {}
    return {"basic_auth": {"username": grafana.METRICS_USER, "password_file": secret_file(GRAFANA_METRICS_PASSWORD)}}


def render_prometheus_config(
    settings: Settings, scrape_targets: dict[str, str], metrics: Optional[MetricsStore] = None
) -> dict[str, Any]:
    """scrape_targets: job name -> host:port of a component's own metrics endpoint. With a managed
    metrics store, Prometheus runs as an agent that forwards what it scrapes there."""
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
                    "time": settings.prometheus_retention.prometheus,
                    "size": settings.prometheus_storage.retention_size,
                }
            }
        },
        "scrape_configs": [
            {
                "job_name": job,
                **_targets(settings, job, target),
                **_credentials(job),
                # Prometheus 3 would keep UTF-8 names (dots); dashboards use the underscore form.
                "metric_name_validation_scheme": "legacy",
            }
            for job, target in sorted(scrape_targets.items())
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
        settings: Settings,
        platform: Platform,
        scrape_targets: dict[str, str],
        grafana_metrics_password: pulumi.Output[str],
        metrics_store: Optional[pulumi.Output[MetricsStore]] = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """grafana_metrics_password: what Grafana's /metrics asks for (Prometheus scrapes it)."""
        super().__init__("observability:components:Prometheus", NAME, None, opts)
        self.config_yaml = render_when_known(
            lambda m: to_yaml(render_prometheus_config(settings, scrape_targets, m)), metrics_store
        )
        http = Port(HTTP.name, HTTP.container_port, host_port=settings.host_ports.prometheus)
        spec = ServiceSpec(
            name=NAME,
            image=settings.image(NAME),
            memory_mb=settings.memory_mb(NAME),
            command=prometheus_args(agent=metrics_store is not None),
            ports=(http,),
            files=(ConfigFile(CONFIG_PATH, self.config_yaml),),
            secrets=(SecretValue(GRAFANA_METRICS_PASSWORD, grafana_metrics_password, file_only=True),),
            user=USER,
            volumes=(DataVolume("data", DATA_DIR),),
            disk_gib=settings.prometheus_storage.disk_gib,
            health=HealthCheck(("wget", "-q", "--spider", f"http://localhost:{HTTP.container_port}/-/ready")),
        )
        self.service = platform.run(spec, parent=self)
        # Internal-only where the platform publishes no host ports (aws): reach it through Grafana.
        self.url = self.service.external_urls.get(HTTP.name)
        self.register_outputs({"url": self.url})
