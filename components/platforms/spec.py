"""What a service runs, independent of where it runs.

Each component describes itself as a ServiceSpec; a platform (Docker or AWS) turns the spec into
resources and hands back a RunningService with the addresses others need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Protocol, TypeVar

import pulumi

if TYPE_CHECKING:
    from components.platforms.facts import PlatformFacts

T = TypeVar("T")


@dataclass(frozen=True)
class PublicRoute:
    """How a platform with one public HTTPS entry point (a load balancer) serves a port.
    Platforms that publish host ports (docker) use Port.host_port instead."""

    # Path patterns this port answers; empty: every request no other route takes.
    paths: tuple[str, ...] = ()
    # gRPC (HTTP/2 end to end) rather than HTTP/1.1.
    grpc: bool = False
    # Where the entry point checks that an instance may take traffic.
    health_path: str = "/"
    # The service's port that answers health_path, when it is not this one.
    health_port: Optional[int] = None
    # A UI people sign in to (not an API for programs): a platform that tells the two apart admits
    # it only from the networks allowed for people.
    for_people: bool = False
    # Takes data without credentials (web pages keep no secret): a platform that can limit each
    # client's request rate on the entry point does, where the stack asks for it.
    anonymous: bool = False


@dataclass(frozen=True)
class Port:
    name: str
    container_port: int
    # Published on the host (docker) when set; internal-only otherwise.
    host_port: Optional[int] = None
    # Published on the host's loopback address only, whatever address the others use: the port
    # takes unauthenticated writes, so only this machine may reach it.
    loopback_only: bool = False
    # Served through the public entry point (aws) when set; internal-only otherwise.
    public: Optional[PublicRoute] = None
    # The services of the stack that connect to this port (by name): a platform that filters
    # traffic between services admits these and no other; the entry point's routes and host ports
    # are the fields above. A client the platform never runs opens nothing.
    clients: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigFile:
    path: str
    # A string, or an Output when it names something the platform creates (a bucket).
    content: pulumi.Input[str]


# Where platforms write secrets handed over as files (one file per secret, see secret_file).
SECRETS_DIR = "/run/secrets"


def secret_file(env: str) -> str:
    """The file a platform writes the secret named env to, for programs whose config names it."""
    return f"{SECRETS_DIR}/{env.lower()}"


@dataclass(frozen=True)
class SecretValue:
    """A secret handed to the program, by environment variable or by file."""

    env: str
    value: pulumi.Output[str]
    # The program can also read the value from the file named by this variable; platforms that
    # can write files prefer it, so the value never shows in `docker inspect`.
    file_env: Optional[str] = None
    # The program reads the value only from its file (secret_file(env), or the one file_env names):
    # every platform writes it there, readable by the program's user, and never sets env itself.
    file_only: bool = False

    @property
    def file(self) -> str:
        return secret_file(self.env)


@dataclass(frozen=True)
class DataVolume:
    name: str
    path: str
    # "uid:gid" that must be able to write it, for images that bring no directory of their own
    # (a fresh volume is root's); platforms hand it over before the service starts.
    owner: Optional[str] = None
    # The program is safe on a network file system (one writer, no mmap-heavy database), so a
    # platform whose instances move between hosts may keep the volume there to outlive them.
    # False: local disk only (a TSDB on NFS corrupts); such data lasts as long as the instance.
    shared_filesystem: bool = False
    # Each instance writes its own copy (a persistent queue), and an instance that replaces a
    # stopped one must take over what that one left: a platform that replaces instances keeps one
    # such volume per instance slot where it outlives them (aws: queue slots on EFS).
    inherited_by_replacements: bool = False


@dataclass(frozen=True)
class HostMount:
    """A path of the host the service reads (always read-only). Only a platform that runs
    containers on a host it owns (docker) can give one; a service that needs one runs only there."""

    host_path: str
    path: str


@dataclass(frozen=True)
class ObjectStore:
    """An S3 bucket a platform created for one service, which only that service may use."""

    bucket: str
    region: str
    endpoint: str


@dataclass(frozen=True)
class MetricsStore:
    """A managed Prometheus-compatible store a platform created: remote write in, PromQL out,
    both signed with AWS SigV4 by the caller's own role."""

    remote_write_url: str
    query_url: str
    region: str


def resolved_when(output: pulumi.Output[Any], value: str) -> pulumi.Output[str]:
    """value, available once output is: an address that is only usable after the resource exists."""
    return output.apply(lambda _: value)


def render_when_known(render: Callable[..., T], *inputs: Optional[pulumi.Output[Any]]) -> pulumi.Input[T]:
    """Render now when the platform created nothing to name (local volumes, local Prometheus),
    else once the names of what it created (bucket, workspace) are known."""
    if all(i is None for i in inputs):
        return render(*inputs)
    return pulumi.Output.all(*inputs).apply(lambda values: render(*values))


@dataclass(frozen=True)
class Scaling:
    """Between min_tasks and max_tasks instances, scaled on their average CPU and, where the
    program's load shows in its memory first, on memory at memory_percentage of the container."""

    min_tasks: int
    max_tasks: int
    memory_percentage: Optional[int] = None


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
    host_mounts: tuple[HostMount, ...] = ()
    # Local disk the service's data needs, in GiB, where a platform sizes it (Fargate task
    # storage); None: the platform's default. Docker volumes take what the host has.
    disk_gib: Optional[int] = None
    health: Optional[HealthCheck] = None
    # TCP ports the program connects to outside the stack besides HTTPS (SMTP, an external
    # database); a platform that filters egress opens these and 443, nothing else.
    egress_ports: tuple[int, ...] = ()
    # Instances are interchangeable: a platform may run several and overlap them in deployments.
    # False: exactly one instance at any time (local state, single-writer data).
    stateless: bool = False
    # Several instances, scaled by load; None: one. Needs stateless, and a platform that scales out.
    scaling: Optional[Scaling] = None
    # CPU the platform reserves for one instance (1024 = one vCPU), where it sizes CPU (Fargate
    # task sizes); None: the platform's default, or unlimited where it sizes none (docker).
    cpu_units: Optional[int] = None
    # Instances of the service find each other (a memberlist ring, alerting peers) on this port,
    # TCP and UDP, through the service's internal host (an address per instance).
    gossip_port: Optional[int] = None
    # "uid:gid" the image runs its program as: secret files are made readable to it.
    user: str = "0:0"

    def port(self, name: str) -> Port:
        return next(p for p in self.ports if p.name == name)


@dataclass(frozen=True)
class RunningService:
    name: str
    # Address other services use (a network alias on Docker).
    internal_host: str
    # http://host:port for every published port, as people and the Grafana provider reach it.
    external_urls: Mapping[str, pulumi.Output[str]]
    resources: tuple[pulumi.Resource, ...]

    def internal_url(self, port: Port, scheme: str = "http") -> str:
        return f"{scheme}://{self.internal_host}:{port.container_port}"


class Platform(Protocol):
    """Where services run. Each platform honours every ServiceSpec field or refuses the spec
    (SpecError, naming the field); it knows no service by name."""

    # What it states before it creates anything (addresses, URL formats, what it can run).
    facts: PlatformFacts

    def object_store(
        self, service: str, retention_hours: int, parent: pulumi.Resource
    ) -> Optional[pulumi.Output[ObjectStore]]:
        """A bucket for the service's data, or None where it keeps data on its volumes."""
        ...

    def metrics_store(
        self, writers: tuple[str, ...], readers: tuple[str, ...], retention_hours: int
    ) -> Optional[pulumi.Output[MetricsStore]]:
        """A managed metrics store the writers remote-write to and the readers query, or None
        where metrics stay in the self-hosted Prometheus."""
        ...

    def cloud_metrics(self, readers: tuple[str, ...]) -> Optional[str]:
        """Lets the readers read the platform's own metrics store (CloudWatch on aws); its region,
        or None where the platform has none."""
        ...

    def run(
        self,
        spec: ServiceSpec,
        parent: pulumi.Resource,
        depends_on: tuple[RunningService, ...] = (),
    ) -> RunningService: ...

    def outputs(self) -> Mapping[str, pulumi.Input[Any]]:
        """Stack outputs of the platform's own (aws: where domainName must point)."""
        ...


class SpecError(ValueError):
    """A ServiceSpec asks for something the platform cannot do."""

    def __init__(self, platform: str, spec: ServiceSpec, field_name: str, why: str):
        super().__init__(f"{spec.name}: the {platform} platform cannot honour ServiceSpec.{field_name}: {why}")
