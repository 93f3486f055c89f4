"""Where a stack runs: one entry per target (the `target` setting)."""

from __future__ import annotations

import importlib

from components.platforms.facts import AwsFacts, DockerFacts, PlatformFacts
from components.platforms.spec import Platform
from components.settings import Settings

# target -> its facts (pure), and the module and class of its platform. The platform is imported
# only when chosen: pulumi_aws costs seconds of import time the docker target never needs.
PLATFORMS = {
    "docker": (DockerFacts, "components.platforms.docker", "DockerPlatform"),
    "aws": (AwsFacts, "components.platforms.aws.platform", "AwsPlatform"),
}


def facts_for(settings: Settings) -> PlatformFacts:
    facts: PlatformFacts = PLATFORMS[settings.target][0](settings)
    return facts


def platform_for(settings: Settings) -> Platform:
    _, module, name = PLATFORMS[settings.target]
    platform: Platform = getattr(importlib.import_module(module), name)(settings)
    return platform
