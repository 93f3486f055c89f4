"""Images and their versions: which image each service (and cAdvisor) runs with how much memory, and which
images an ARM64 task may run."""

from __future__ import annotations

from collections.abc import Mapping

from components.settings.model import ARM64_IMAGES, SERVICES, ContainerMetricsSettings, ServiceSettings
from components.settings.reader import ConfigReader


def read_images(reader: ConfigReader) -> tuple[dict[str, ServiceSettings], str]:
    """Each service's image and memory, and the utility image (one-shot helper containers)."""
    services = {
        name: ServiceSettings(
            image=reader.image(f"{name}Image"),
            memory_mb=reader.integer(f"{name}MemoryMb", minimum=128, maximum=120 * 1024),
        )
        for name in SERVICES
    }
    return services, reader.image("utilityImage")


def arm64_confirmed(image: str) -> bool:
    """The image is a confirmed repository and tag (a digest after the tag is the same index)."""
    reference = image.split("@", 1)[0]
    repository, _, tag = reference.rpartition(":")
    if "/" in tag or not repository:
        return False
    return tag in ARM64_IMAGES.get(repository.removeprefix("docker.io/").removeprefix("library/"), ())


def refuse_unconfirmed_arm64(reader: ConfigReader, services: Mapping[str, ServiceSettings], utility_image: str) -> None:
    """On ARM64 tasks, every image must be one confirmed to publish linux/arm64."""
    images = {f"{name}Image": service.image for name, service in services.items()} | {"utilityImage": utility_image}
    for key, image in images.items():
        if image and not arm64_confirmed(image):
            reader.problem(
                key,
                f"{image!r} is not one of the images confirmed to publish linux/arm64 ("
                + ", ".join(f"{repository}:{tag}" for repository, tags in ARM64_IMAGES.items() for tag in tags)
                + "), and an ARM64 task cannot start an image without it; set cpuArchitecture: X86_64, or use a confirmed image",
            )


def read_container_metrics(reader: ConfigReader, target: str) -> ContainerMetricsSettings:
    """cAdvisor's image and memory. Read on every target so a typo fails anywhere; only the docker
    target runs it (on aws, ECS Container Insights measures the tasks)."""
    enabled = reader.boolean("containerMetrics")
    return ContainerMetricsSettings(
        enabled=enabled and target == "docker",
        image=reader.image("cadvisorImage"),
        memory_mb=reader.integer("cadvisorMemoryMb", minimum=64, maximum=4096),
    )
