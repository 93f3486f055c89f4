"""Loki: logs, received over native OTLP from the collector."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

import pulumi

from components.platforms.spec import ObjectStore, Platform, Port, RunningService
from components.services import grafana
from components.services.bucket_store import BucketStore
from components.settings import Settings

if TYPE_CHECKING:
    from components.plan import StackPlan

NAME = "loki"
HTTP = Port("http", 3100)
GRPC = Port("grpc", 9096)
DATA_DIR = "/loki"
CONFIG_PATH = "/etc/loki/loki.yaml"
# First day of the tsdb/v13 schema. Never edit it once a stack has stored logs: add a new period.
SCHEMA_FROM = "2024-04-01"


def render_loki_config(settings: Settings, store: Optional[ObjectStore] = None) -> dict[str, Any]:
    """Loki 3 single binary: tsdb index, schema v13 (structured metadata, where OTLP trace_id
    lands), retention enforced by the compactor. Chunks and index go to the object store when the
    platform gives one, else to the local volume."""
    if store is None:
        object_store = "filesystem"
        storage: dict[str, Any] = {
            "filesystem": {"chunks_directory": f"{DATA_DIR}/chunks", "rules_directory": f"{DATA_DIR}/rules"}
        }
    else:
        object_store = "s3"
        # No keys and no endpoint (derived from the region): the S3 client finds the task role's
        # credentials, as Loki's documented IAM-role setup does.
        storage = {"s3": {"bucketnames": store.bucket, "region": store.region}}
    return {
        "auth_enabled": False,
        "server": {"http_listen_port": HTTP.container_port, "grpc_listen_port": GRPC.container_port},
        "common": {
            "instance_addr": "127.0.0.1",
            "path_prefix": DATA_DIR,
            "storage": storage,
            "replication_factor": 1,
            "ring": {"kvstore": {"store": "inmemory"}},
        },
        "schema_config": {
            "configs": [
                {
                    "from": SCHEMA_FROM,
                    "store": "tsdb",
                    "object_store": object_store,
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "limits_config": {
            "retention_period": settings.loki_retention.go_duration,
            "allow_structured_metadata": True,
        },
        # The WAL may sit on storage that does not outlive the container: flush on every stop.
        "ingester": {"wal": {"flush_on_shutdown": True}},
        "compactor": {
            "working_directory": f"{DATA_DIR}/compactor",
            "retention_enabled": True,
            "delete_request_store": object_store,
        },
        "pattern_ingester": {"enabled": True},
        "analytics": {"reporting_enabled": False},
    }


def loki_ports(plan: StackPlan) -> tuple[Port, ...]:
    """HTTP: the collector tiers' logs (OTLP), queries (Grafana), its own metrics (Prometheus); the
    internal gRPC server talks to no other service."""
    return (dataclasses.replace(HTTP, clients=(*plan.collector.log_writers, *plan.scrapers(NAME, HTTP), grafana.NAME)), GRPC)


class Loki(BucketStore):
    def __init__(
        self,
        plan: StackPlan,
        platform: Platform,
        depends_on: tuple[RunningService, ...] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(
            "observability:components:Loki", NAME, plan.settings, platform, plan.settings.loki_retention.hours, render_loki_config,
            ports=loki_ports(plan), binary="/usr/bin/loki", config_path=CONFIG_PATH, data_dir=DATA_DIR,
            depends_on=depends_on,
            opts=opts,
        )
