"""What each platform states before it creates anything: how services address each other, how
people reach a published port, the names of the stores it will create, and what it can run.

Pure (no provider SDK): the stack plan reads these, and so does the offline renderer, so an address
or a URL format is written once, here, and the platforms' resources use the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from components.platforms.spec import MetricsStore, ObjectStore, Port
from components.settings import Settings


class PlatformFacts(Protocol):
    # The platform runs several instances of a service behind one discovery name (an address per
    # instance) and scales them (ServiceSpec.scaling); where it cannot, every service runs once.
    scales_out: bool
    # Volumes a replacement instance inherits (DataVolume.inherited_by_replacements) live on
    # network storage, which loses what a stopped instance had not written out.
    inherited_volumes_on_network_storage: bool
    # The region of the platform's own metrics (CloudWatch), where it has them, and the name those
    # metrics group the stack's tasks under (the ECS cluster).
    cloud_metrics_region: Optional[str]
    cloud_metrics_cluster: Optional[str]
    # The region of the managed metrics store, where the settings ask for one (signed requests).
    metrics_store_region: Optional[str]

    def internal_host(self, service: str) -> str:
        """The name other services reach the service by."""
        ...

    def external_url(self, port: Port) -> str:
        """How people and the Grafana provider reach a published port."""
        ...

    def object_store(self, bucket: str) -> Optional[ObjectStore]:
        """The store a bucket of this name is, where the platform makes buckets; else None
        (data stays on the service's volumes)."""
        ...

    def metrics_store(self, endpoint: str) -> Optional[MetricsStore]:
        """The managed metrics store at this endpoint, where the stack's settings ask the platform
        for one; else None (metrics stay in the self-hosted Prometheus)."""
        ...

    def metrics_store_placeholder(self) -> Optional[MetricsStore]:
        """The managed metrics store as the offline render shows it: its address with the part
        known only at deploy in angle brackets."""
        ...


@dataclass(frozen=True)
class DockerFacts:
    """One host: containers find each other by their network alias (the service name) and
    publish ports on the host's address."""

    settings: Settings
    scales_out: bool = False
    inherited_volumes_on_network_storage: bool = False
    cloud_metrics_region: None = None
    cloud_metrics_cluster: None = None
    metrics_store_region: None = None

    def internal_host(self, service: str) -> str:
        return service

    def external_url(self, port: Port) -> str:
        if port.host_port is None:
            raise ValueError(f"port {port.name!r} is not published on the docker target")
        host = "localhost" if port.loopback_only else self.settings.external_host
        return f"http://{host}:{port.host_port}"

    def object_store(self, bucket: str) -> None:
        return None

    def metrics_store(self, endpoint: str) -> None:
        return None

    def metrics_store_placeholder(self) -> None:
        return None


@dataclass(frozen=True)
class AwsFacts:
    """ECS on Fargate: Cloud Map names in the stack's private namespace (an A record per task), one
    HTTPS name on the load balancer for every public port, S3 buckets, and Amazon Managed Service
    for Prometheus where metricsBackend is amp."""

    settings: Settings
    scales_out: bool = True
    # Queue slots on EFS (components/platforms/aws/queue_slots.py).
    inherited_volumes_on_network_storage: bool = True

    @property
    def cloud_metrics_region(self) -> str:
        return self._region

    @property
    def cloud_metrics_cluster(self) -> str:
        # The ECS cluster is named after the stack, lowercased (ECS cluster names are case-sensitive).
        return self.settings.resource_prefix.lower()

    @property
    def metrics_store_region(self) -> Optional[str]:
        assert self.settings.aws is not None
        return self._region if self.settings.aws.metrics_backend == "amp" else None

    def internal_host(self, service: str) -> str:
        return f"{service}.{self.settings.service_domain}"

    def external_url(self, port: Port) -> str:
        if port.public is None:
            raise ValueError(f"port {port.name!r} is internal on the aws target")
        assert self.settings.aws is not None
        # One HTTPS name serves every public port; gRPC clients want the port spelled out.
        return f"https://{self.settings.aws.domain_name}" + (":443" if port.public.grpc else "")

    def object_store(self, bucket: str) -> ObjectStore:
        region = self._region
        # The regional endpoint (AWS General Reference, "Amazon S3 endpoints").
        return ObjectStore(bucket=bucket, region=region, endpoint=f"s3.{region}.amazonaws.com")

    def metrics_store(self, endpoint: str) -> Optional[MetricsStore]:
        if self.metrics_store_region is None:
            return None
        # The workspace's prometheusEndpoint ends in a slash; remote write and queries hang off it
        # (Amazon Managed Service for Prometheus user guide, "Ingest" and "Query").
        base = endpoint.rstrip("/")
        return MetricsStore(remote_write_url=f"{base}/api/v1/remote_write", query_url=base, region=self._region)

    def metrics_store_placeholder(self) -> Optional[MetricsStore]:
        # The workspace's endpoint as the service forms it (the workspace's prometheusEndpoint).
        return self.metrics_store(f"https://aps-workspaces.{self._region}.amazonaws.com/workspaces/<workspace id, known at deploy>/")

    @property
    def _region(self) -> str:
        assert self.settings.aws is not None
        return self.settings.aws.region
