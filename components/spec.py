"""What a service runs, independent of where it runs.

Each component describes itself as a ServiceSpec; a platform (Docker today) turns the spec into
resources and hands back a RunningService with the addresses others need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional, Protocol

import pulumi


@dataclass(frozen=True)
class Port:
    name: str
    container_port: int
    # Published on the host (docker) when set; internal-only otherwise.
    host_port: Optional[int] = None


@dataclass(frozen=True)
class ConfigFile:
    path: str
    content: str


@dataclass(frozen=True)
class SecretValue:
    """A secret handed to the program, by environment variable or by file."""

    env: str
    value: pulumi.Output[str]
    # The program can also read the value from the file named by this variable; platforms that
    # can write files prefer it, so the value never shows in `docker inspect`.
    file_env: Optional[str] = None


@dataclass(frozen=True)
class DataVolume:
    name: str
    path: str
    # "uid:gid" that must be able to write it, for images that bring no directory of their own
    # (a fresh volume is root's); platforms hand it over before the service starts.
    owner: Optional[str] = None


@dataclass(frozen=True)
class HealthCheck:
    # Exec form, run inside the container: only images with the program or a shell can have one.
    command: tuple[str, ...]
    interval_seconds: int = 10
    timeout_seconds: int = 5
    retries: int = 6
    start_period_seconds: int = 15


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str
    memory_mb: int
    command: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    files: tuple[ConfigFile, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[SecretValue, ...] = ()
    volumes: tuple[DataVolume, ...] = ()
    health: Optional[HealthCheck] = None

    def port(self, name: str) -> Port:
        return next(p for p in self.ports if p.name == name)


@dataclass(frozen=True)
class RunningService:
    name: str
    # Address other services use (a network alias on Docker).
    internal_host: str
    # Resolves once the service is up (healthy, where it has a health check).
    ready: pulumi.Output[str]
    # http://host:port for every published port, as people and the Grafana provider reach it.
    external_urls: Mapping[str, pulumi.Output[str]]
    resources: tuple[pulumi.Resource, ...]

    def internal_url(self, port: Port, scheme: str = "http") -> str:
        return f"{scheme}://{self.internal_host}:{port.container_port}"


class Platform(Protocol):
    def internal_host(self, service: str) -> str: ...

    def external_url(self, port: Port) -> str: ...

    def run(
        self,
        spec: ServiceSpec,
        parent: pulumi.Resource,
        depends_on: tuple[RunningService, ...] = (),
    ) -> RunningService: ...
