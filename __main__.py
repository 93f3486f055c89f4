"""Read the stack config once, plan the stack, choose where it runs, build it, export its addresses."""

import gc

import pulumi

from components import migrations
from components.grafana.alerts import AlertRulesError, load_rule_groups
from components.grafana.content import DATASOURCE_UIDS
from components.plan import plan_stack
from components.platforms import platform_for
from components.platforms.spec import SpecError
from components.settings import SettingsError, load_from_pulumi
from components.stack import build_stack

# Every object imported so far (the SDKs') lives as long as the program: out of the garbage
# collector's reach, so the run's own garbage is collected without sweeping them again and again
# (benchmarks/replay.md); again once the platform has imported its provider's SDK.
gc.freeze()
try:
    settings = load_from_pulumi()
    alert_groups = load_rule_groups(datasource_uids=DATASOURCE_UIDS)
except (SettingsError, AlertRulesError) as error:
    raise pulumi.RunError(str(error)) from None

# Before the first resource: resources take the stack's transformations when they are made.
migrations.register()
try:
    # The platform may refuse settings only its cloud can judge (more zones than the region has).
    platform = platform_for(settings)
    gc.freeze()
    outputs = build_stack(plan_stack(settings, platform.facts), platform, alert_groups)
except (SettingsError, SpecError) as error:
    raise pulumi.RunError(str(error)) from None
for name, value in outputs.items():
    pulumi.export(name, value)
