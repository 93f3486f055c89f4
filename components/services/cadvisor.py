"""cAdvisor: CPU, memory, network and disk of every container on the Docker host, for Prometheus.

It reads the Docker socket and the host's /sys, /var/lib/docker and / (read-only mounts, as
google/cadvisor docs/running.md lists them). The Docker socket is root-equivalent on the host even
when mounted read-only: anyone who can talk to it can start a privileged container. So cAdvisor
runs unprivileged (no --privileged, no /dev/kmsg: no OOM-kill events), with no-new-privileges,
publishes no host port (only Prometheus on the stack's network reaches it) and can be turned off
with `containerMetrics: false`. Only the docker platform runs it: on aws, ECS Container Insights
measures the tasks.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pulumi

from components.platforms.spec import HostMount, Platform, Port, ServiceSpec

if TYPE_CHECKING:
    from components.plan import StackPlan

NAME = "cadvisor"
HTTP = Port("http", 8080)
JOB = "cadvisor"
HOST_MOUNTS = (
    HostMount("/", "/rootfs"),
    # The socket alone rather than all of /var/run (the docs' example): cAdvisor asks Docker for
    # each container's name and image.
    HostMount("/var/run/docker.sock", "/var/run/docker.sock"),
    HostMount("/sys", "/sys"),
    HostMount("/var/lib/docker", "/var/lib/docker"),
    HostMount("/dev/disk", "/dev/disk"),
)


def cadvisor_args() -> tuple[str, ...]:
    """docs/runtime_options.md: only Docker containers (plus the host's root cgroup), and stats
    gathered once per scrape interval instead of every second."""
    return ("--docker_only=true", "--housekeeping_interval=15s")


class ContainerMetrics(pulumi.ComponentResource):
    def __init__(self, plan: StackPlan, platform: Platform, opts: pulumi.ResourceOptions | None = None):
        super().__init__("observability:components:ContainerMetrics", NAME, None, opts)
        settings = plan.settings
        spec = ServiceSpec(
            name=NAME,
            image=settings.container_metrics.image,
            memory_mb=settings.container_metrics.memory_mb,
            command=cadvisor_args(),
            ports=(dataclasses.replace(HTTP, clients=plan.scrapers(NAME, HTTP)),),
            host_mounts=HOST_MOUNTS,
            stateless=True,
        )
        self.service = platform.run(spec, parent=self)
        self.register_outputs({})
