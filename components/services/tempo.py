"""Tempo: the traces the collector keeps."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

import pulumi

from components.platforms.spec import ObjectStore, Platform, Port
from components.services import grafana
from components.services.bucket_store import BucketStore
from components.settings import Settings

if TYPE_CHECKING:
    from components.plan import StackPlan

NAME = "tempo"
HTTP = Port("http", 3200)
GRPC = Port("grpc", 9095)
# The collector sends spans over gRPC: Tempo runs no OTLP/HTTP receiver.
OTLP_GRPC = Port("otlp-grpc", 4317)
DATA_DIR = "/var/tempo"
CONFIG_PATH = "/etc/tempo/tempo.yaml"


def _trace_storage(store: Optional[ObjectStore]) -> dict[str, Any]:
    wal = {"path": f"{DATA_DIR}/wal"}
    if store is None:
        return {"backend": "local", "wal": wal, "local": {"path": f"{DATA_DIR}/blocks"}}
    # No keys: the S3 client finds the task's role credentials.
    return {"backend": "s3", "wal": wal, "s3": {"bucket": store.bucket, "endpoint": store.endpoint, "region": store.region}}


def render_tempo_config(settings: Settings, store: Optional[ObjectStore] = None) -> dict[str, Any]:
    """Tempo 3 single binary (target all: distributor, live-store, querier, backend scheduler/worker).
    No Kafka in this mode; 2.x blocks such as ingester/compactor are refused. Blocks go to the object
    store when the platform gives one, else to the local volume. No metrics generator: span metrics
    and the service graph are made by the collector from every span, before sampling, where Tempo
    would only see the sampled share."""
    retention = settings.tempo_retention.go_duration
    single_ring = {"kvstore": {"store": "inmemory"}, "instance_addr": "127.0.0.1"}
    return {
        "target": "all",
        "stream_over_http_enabled": True,
        "server": {"http_listen_port": HTTP.container_port, "grpc_listen_port": GRPC.container_port},
        "distributor": {
            # OTLP receivers bind to localhost unless told otherwise (since 2.7).
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC.container_port}"}}}},
            "ring": single_ring,
        },
        # One instance: in-memory rings, and a fixed address (interface lookup fails on Fargate).
        "live_store": {
            "ring": single_ring,
            "partition_ring": {"kvstore": {"store": "inmemory"}},
            "wal": {"path": f"{DATA_DIR}/live-store/traces"},
            "shutdown_marker_dir": f"{DATA_DIR}/live-store/shutdown-marker",
        },
        # Retention is enforced by the backend worker; the scheduler and the per-tenant default
        # carry the same value so no layer disagrees.
        "backend_scheduler": {"provider": {"compaction": {"compaction": {"block_retention": retention}}}},
        "backend_worker": {"compaction": {"block_retention": retention}},
        "storage": {"trace": _trace_storage(store)},
        "overrides": {
            "defaults": {"compaction": {"block_retention": retention}}
        },
        "usage_report": {"reporting_enabled": False},
    }


def tempo_ports(plan: StackPlan) -> tuple[Port, ...]:
    """Queries (Grafana) and its own metrics (Prometheus) on HTTP, the sampling collector tiers' spans
    on OTLP gRPC; the internal gRPC server talks to no other service."""
    return (
        dataclasses.replace(HTTP, clients=(*plan.scrapers(NAME, HTTP), grafana.NAME)),
        GRPC,
        dataclasses.replace(OTLP_GRPC, clients=plan.collector.trace_writers),
    )


class Tempo(BucketStore):
    def __init__(
        self,
        plan: StackPlan,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(
            "observability:components:Tempo", NAME, plan.settings, platform, plan.settings.tempo_retention.hours, render_tempo_config,
            ports=tempo_ports(plan), binary="/tempo", config_path=CONFIG_PATH, data_dir=DATA_DIR,
            opts=opts,
        )
