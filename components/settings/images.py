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


def _repository_and_tag(image: str) -> tuple[str, str]:
    """The repository (without docker.io/ and library/) and the tag ("" if none) of a reference."""
    reference = image.split("@", 1)[0]
    repository, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:  # no tag, or the ':' was a registry's port
        repository, tag = reference, ""
    return repository.removeprefix("docker.io/").removeprefix("library/"), tag


def arm64_confirmed(image: str) -> bool:
    """The image's repository:tag is one confirmed to publish linux/arm64. What is checked is the
    repository and tag only: a digest after the tag is taken to be that tag's index (nothing here
    fetches it), and an image pinned by a digest alone names no tag, so it cannot be confirmed."""
    repository, tag = _repository_and_tag(image)
    return bool(tag) and tag in ARM64_IMAGES.get(repository, ())


def refuse_unconfirmed_arm64(reader: ConfigReader, services: Mapping[str, ServiceSettings], utility_image: str) -> None:
    """On ARM64 tasks, every image must be one confirmed to publish linux/arm64."""
    images = {f"{name}Image": service.image for name, service in services.items()} | {"utilityImage": utility_image}
    confirmed = ", ".join(f"{repository}:{tag}" for repository, tags in ARM64_IMAGES.items() for tag in tags)
    for key, image in images.items():
        if not image or arm64_confirmed(image):
            continue
        repository, tag = _repository_and_tag(image)
        if "@" in image and not tag:
            known = ARM64_IMAGES.get(repository, ())
            example = f"{repository}:{known[0] if known else '<confirmed tag>'}@sha256:..."
            reader.problem(
                key,
                "is pinned by a digest alone, which cannot be confirmed to publish linux/arm64: the check compares repository:tag "
                f"with the confirmed images ({confirmed}) and a digest names no tag; give the confirmed tag before the digest "
                f"(e.g. {example}, the digest taken to be that tag's index), or set cpuArchitecture: X86_64",
            )
            continue
        unchecked = "; only repository:tag is compared, not the digest" if "@" in image else ""
        reader.problem(
            key,
            f"{image!r} is not one of the images confirmed to publish linux/arm64 ({confirmed}){unchecked}; an ARM64 task cannot "
            "start an image without it; set cpuArchitecture: X86_64, or use a confirmed image",
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
