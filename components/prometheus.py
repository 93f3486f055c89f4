"""Prometheus: metrics from the collector and Tempo (remote write), and every component's own."""

from __future__ import annotations

from typing import Any

import pulumi

from components.settings import Settings
from components.spec import ConfigFile, DataVolume, HealthCheck, Platform, Port, ServiceSpec
from components.yamltext import to_yaml

NAME = "prometheus"
HTTP = Port("http", 9090)
DATA_DIR = "/prometheus"
CONFIG_PATH = "/etc/prometheus/prometheus.yml"


def prometheus_args() -> tuple[str, ...]:
    # Replacing the image's CMD drops its --config.file and --storage.tsdb.path: repeat both.
    return (
        f"--config.file={CONFIG_PATH}",
        f"--storage.tsdb.path={DATA_DIR}",
        "--web.enable-remote-write-receiver",
        "--web.enable-otlp-receiver",
        "--enable-feature=exemplar-storage",
    )


def render_prometheus_config(settings: Settings, scrape_targets: dict[str, str]) -> dict[str, Any]:
    """scrape_targets: job name -> host:port of a component's own metrics endpoint."""
    return {
        "global": {
            "scrape_interval": "15s",
            "evaluation_interval": "15s",
            "external_labels": {"deployment_environment_name": settings.environment},
        },
        # Since 3.8 retention lives here; the command-line flags are deprecated.
        "storage": {"tsdb": {"retention": {"time": settings.prometheus_retention.prometheus}}},
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [target]}],
                # Prometheus 3 would keep UTF-8 names (dots); dashboards use the underscore form.
                "metric_name_validation_scheme": "legacy",
            }
            for job, target in sorted(scrape_targets.items())
        ],
    }


class Prometheus(pulumi.ComponentResource):
    def __init__(
        self,
        settings: Settings,
        platform: Platform,
        scrape_targets: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("observability:components:Prometheus", NAME, None, opts)
        self.config_yaml = to_yaml(render_prometheus_config(settings, scrape_targets))
        http = Port(HTTP.name, HTTP.container_port, host_port=settings.host_ports.prometheus)
        spec = ServiceSpec(
            name=NAME,
            image=settings.image(NAME),
            memory_mb=settings.memory_mb(NAME),
            command=prometheus_args(),
            ports=(http,),
            files=(ConfigFile(CONFIG_PATH, self.config_yaml),),
            volumes=(DataVolume("data", DATA_DIR),),
            health=HealthCheck(("wget", "-q", "--spider", f"http://localhost:{HTTP.container_port}/-/ready")),
        )
        self.service = platform.run(spec, parent=self)
        self.url = self.service.external_urls[HTTP.name]
        self.register_outputs({"url": self.url})
