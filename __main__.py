"""Read the stack config once, choose where the stack runs, build it, export its addresses."""

import pulumi

from components import migrations
from components.grafana.alerts import AlertRulesError, load_rule_groups
from components.grafana.content import DATASOURCE_UIDS
from components.settings import SettingsError, load_from_pulumi
from components.stack import build_stack

try:
    settings = load_from_pulumi()
    alert_groups = load_rule_groups(datasource_uids=DATASOURCE_UIDS)
except (SettingsError, AlertRulesError) as error:
    raise pulumi.RunError(str(error)) from None

# Before the first resource: resources take the stack's transformations when they are made.
migrations.register()
if settings.target == "docker":
    from components.platforms.docker import DockerPlatform

    platform = DockerPlatform(settings)
else:
    # Imported only here: pulumi_aws costs seconds of import time the docker target never needs.
    from components.platforms.aws.platform import AwsPlatform

    platform = AwsPlatform(settings)

for name, value in build_stack(settings, platform, alert_groups).items():
    pulumi.export(name, value)
if settings.target == "aws":
    # Where domainName must point when the stack manages no DNS record.
    pulumi.export("loadBalancerDnsName", platform.load_balancer.dns_name)
