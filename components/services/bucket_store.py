"""What Tempo and Loki have in common: a distroless single binary that keeps its data in the bucket
the platform makes for it (or on its volume where the platform makes none), read from one config
file it is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import pulumi

from components.platforms.spec import (
    ConfigFile,
    DataVolume,
    HealthCheck,
    ObjectStore,
    Platform,
    Port,
    RunningService,
    ServiceSpec,
    render_when_known,
)
from components.settings import Settings
from components.yamltext import to_yaml


class BucketStore(pulumi.ComponentResource):
    def __init__(
        self,
        type_: str,
        name: str,
        settings: Settings,
        platform: Platform,
        retention_hours: int,
        render: Callable[[Settings, Optional[ObjectStore]], dict[str, Any]],
        ports: tuple[Port, ...],
        binary: str,
        config_path: str,
        data_dir: str,
        depends_on: tuple[RunningService, ...] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        """binary: the program, which also probes its own /ready (`<binary> -health`); the first
        port is the one its own metrics and API answer on."""
        super().__init__(type_, name, None, opts)
        # Its bucket where the platform makes one (aws), else None.
        self.store = store = platform.object_store(name, retention_hours, parent=self)
        self.config_yaml = render_when_known(lambda s: to_yaml(render(settings, s)), store)
        spec = ServiceSpec(
            name=name,
            image=settings.image(name),
            memory_mb=settings.memory_mb(name),
            cpu_units=settings.cpu_units(name),
            command=(f"-config.file={config_path}",),
            ports=ports,
            files=(ConfigFile(config_path, self.config_yaml),),
            volumes=(DataVolume("data", data_dir),),
            health=HealthCheck((binary, "-health")),
        )
        self.service = platform.run(spec, parent=self, depends_on=depends_on)
        self.register_outputs({"url": self.service.internal_url(ports[0])})
