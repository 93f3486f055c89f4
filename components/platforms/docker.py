"""Runs any ServiceSpec as a container on the local Docker engine."""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_docker as docker

from components.platforms.facts import DockerFacts
from components.platforms.spec import HealthCheck, RunningService, ServiceSpec, SpecError, resolved_when
from components.settings import Settings

LOOPBACK = "127.0.0.1"


class DockerPlatform(pulumi.ComponentResource):
    """One user-defined network; per service an image, named volumes and a container.

    Honours every ServiceSpec field but the ones a single host cannot give: several instances
    (scaling), a CPU reservation and a disk size (it runs one container per service on whatever
    the host has). Volumes outlive containers, so DataVolume.shared_filesystem and
    inherited_by_replacements hold as they are; egress is not filtered, so egress_ports are open;
    every container shares one network, so a gossip port is reachable between instances and a
    port's clients (Port.clients) reach it (so does every other container: one network filters
    nothing between them)."""

    def __init__(self, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("observability:platform:Docker", "docker", None, opts)
        self._settings = settings
        self._prefix = settings.resource_prefix
        self.facts = DockerFacts(settings)
        self.network = docker.Network(
            "network",
            name=self._prefix,
            driver="bridge",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"network": self.network.name})

    def outputs(self) -> dict[str, pulumi.Input[str]]:
        return {}

    def object_store(self, service: str, retention_hours: int, parent: pulumi.Resource) -> None:
        """Local volumes hold every store's data on Docker."""
        return None

    def metrics_store(self, writers: tuple[str, ...], readers: tuple[str, ...], retention_hours: int) -> None:
        """Metrics stay in the Prometheus container."""
        return None

    def cloud_metrics(self, readers: tuple[str, ...]) -> None:
        """No cloud metrics on Docker: cAdvisor measures the containers."""
        return None

    def _hand_over(self, spec: ServiceSpec, volumes: list[docker.Volume], opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """One-shot root containers that give each owned volume to the user the service runs as."""
        setups: list[pulumi.Resource] = []
        for volume, v in zip(volumes, spec.volumes):
            if v.owner is None:
                continue
            image = docker.RemoteImage(f"{spec.name}-{v.name}-setup-image", name=self._settings.utility_image, keep_locally=True, opts=opts)
            setups.append(
                docker.Container(
                    f"{spec.name}-{v.name}-setup",
                    name=f"{self._prefix}-{spec.name}-{v.name}-setup",
                    image=image.image_id,
                    user="0",
                    command=["chown", "-R", v.owner, "/volume"],
                    volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path="/volume")],
                    # Runs to completion during `up` (a non-zero exit fails it); never restarted.
                    attach=True,
                    must_run=False,
                    restart="no",
                    network_mode="none",
                    opts=opts,
                )
            )
        return setups

    def run(
        self,
        spec: ServiceSpec,
        parent: pulumi.Resource,
        depends_on: tuple[RunningService, ...] = (),
    ) -> RunningService:
        _refuse_what_one_host_cannot_do(spec)
        child = pulumi.ResourceOptions(parent=parent)
        image = docker.RemoteImage(f"{spec.name}-image", name=spec.image, keep_locally=True, opts=child)
        volumes = [
            docker.Volume(f"{spec.name}-{v.name}", name=f"{self._prefix}-{spec.name}-{v.name}", opts=child)
            for v in spec.volumes
        ]
        ready_volumes = self._hand_over(spec, volumes, child)
        uploads, envs, group_adds = _files_and_environment(spec)
        container = docker.Container(
            spec.name,
            name=f"{self._prefix}-{spec.name}",
            image=image.image_id,
            command=list(spec.command) or None,
            envs=envs or None,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=self.network.name, aliases=[spec.name])],
            ports=[
                docker.ContainerPortArgs(internal=p.container_port, external=p.host_port, ip=LOOPBACK if p.loopback_only else self._settings.host_address)
                for p in spec.ports
                if p.host_port is not None
            ],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=volume.name, container_path=v.path)
                for volume, v in zip(volumes, spec.volumes)
            ]
            + [docker.ContainerVolumeArgs(host_path=m.host_path, container_path=m.path, read_only=True) for m in spec.host_mounts],
            # A process that reads the host gains no privileges beyond those it starts with.
            security_opts=["no-new-privileges:true"] if spec.host_mounts else None,
            uploads=uploads or None,
            group_adds=group_adds,
            healthcheck=_healthcheck(spec.health),
            # Pulumi waits for a healthy container, so dependants start after it.
            wait=spec.health is not None,
            wait_timeout=180 if spec.health else None,
            restart="unless-stopped",
            memory=spec.memory_mb,
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "3"},
            opts=pulumi.ResourceOptions(
                parent=parent,
                depends_on=[r for d in depends_on for r in d.resources] + ready_volumes,
                # The container name is fixed, so the old one must go before its replacement starts.
                delete_before_replace=True,
            ),
        )
        external_urls = {
            p.name: resolved_when(container.id, self.facts.external_url(p))
            for p in spec.ports
            if p.host_port is not None
        }
        return RunningService(
            name=spec.name,
            internal_host=self.facts.internal_host(spec.name),
            external_urls=external_urls,
            resources=(container,),
        )


def _refuse_what_one_host_cannot_do(spec: ServiceSpec) -> None:
    if spec.scaling is not None:
        raise SpecError("docker", spec, "scaling", "one host runs one container per service")
    if spec.cpu_units is not None:
        raise SpecError("docker", spec, "cpu_units", "containers share the host's CPUs; it reserves none")
    if spec.disk_gib is not None:
        raise SpecError("docker", spec, "disk_gib", "volumes take what the host's disk has; it sizes none")


def _files_and_environment(spec: ServiceSpec) -> tuple[list[docker.ContainerUploadArgs], list[pulumi.Input[str]], Optional[list[str]]]:
    """Config files and file secrets as uploads, the rest as environment, and the group that lets
    the program read the secret files."""
    uploads = [docker.ContainerUploadArgs(file=f.path, content=f.content) for f in spec.files]
    envs: list[pulumi.Input[str]] = [f"{key}={value}" for key, value in sorted(spec.env.items())]
    secret_files = [s for s in spec.secrets if s.file_env or s.file_only]
    for secret in spec.secrets:
        if secret in secret_files:
            # Uploads are root's (uid 0, gid 0); 0440 lets group 0 read them.
            uploads.append(docker.ContainerUploadArgs(file=secret.file, content=secret.value, permissions="0440"))
            if secret.file_env:
                envs.append(f"{secret.file_env}={secret.file}")
        else:
            envs.append(pulumi.Output.concat(secret.env, "=", secret.value))
    # A program outside group 0 (collector: 10001, Prometheus: nobody) joins it to read them;
    # a supplementary group is not root: it adds only what root's group may read.
    group_adds = ["0"] if secret_files and spec.user.split(":")[1] != "0" else None
    return uploads, envs, group_adds


def _healthcheck(health: Optional[HealthCheck]) -> Optional[docker.ContainerHealthcheckArgs]:
    if health is None:
        return None
    return docker.ContainerHealthcheckArgs(
        tests=["CMD", *health.command],
        interval=f"{health.interval_seconds}s",
        timeout=f"{health.timeout_seconds}s",
        retries=health.retries,
        start_period=f"{health.start_period_seconds}s",
    )
