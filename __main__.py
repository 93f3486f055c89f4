"""Read the stack config once, choose where the stack runs, build it, export its addresses."""

import pulumi

from components.alerts import AlertRulesError, load_rule_groups
from components.grafana_content import DATASOURCE_UIDS
from components.settings import SettingsError, load_from_pulumi
from components.stack import build_stack

try:
    settings = load_from_pulumi()
    alert_groups = load_rule_groups(datasource_uids=DATASOURCE_UIDS)
except (SettingsError, AlertRulesError) as error:
    raise pulumi.RunError(str(error)) from None

if settings.target == "docker":
    from components.docker_platform import DockerPlatform

    platform = DockerPlatform(settings)
else:
    raise pulumi.RunError(
        f"target: {settings.target!r} has no platform in this release yet; allowed today: docker"
    )

for name, value in build_stack(settings, platform, alert_groups).items():
    pulumi.export(name, value)
