"""Grafana-managed alerting through the provider: the rule folder and groups, contact points and the
notification policy, and which channels each severity reaches. What the rules say lives in
configs/alerts/ (loaded by components/grafana/alerts.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumiverse_grafana as grafana

from components.grafana.alert_model import SEVERITIES, AlertRule, RuleGroup
from components.grafana.alert_stages import CONDITION_REF, RuleContext, rule_stages
from components.settings import AlertContacts

FOLDER_UID = "alert-rules"
FOLDER_TITLE = "Alert rules"
# Notifications group alerts of one rule in one folder; every route inherits this.
GROUP_BY = ["grafana_folder", "alertname"]


def contact_point_name(severity: str) -> str:
    return f"{severity} alerts"


# Which channels each severity reaches when configured, most urgent first.
SEVERITY_CHANNELS = {
    "critical": ("pagerduty", "slack", "email"),
    "warning": ("slack", "email"),
    "info": ("email",),
}
# When none of a severity's channels is configured it falls back to the least intrusive one that is.
FALLBACK_ORDER = ("email", "slack", "pagerduty")


def severity_routes(configured: set[str]) -> dict[str, tuple[str, ...]]:
    """severity -> the channels its alerts go to; empty when no channel is configured."""
    if not configured:
        return {}
    routes = {}
    for severity, channels in SEVERITY_CHANNELS.items():
        chosen = tuple(c for c in channels if c in configured)
        routes[severity] = chosen or (next(c for c in FALLBACK_ORDER if c in configured),)
    return routes


def describe_routes(routes: dict[str, tuple[str, ...]]) -> str:
    if not routes:
        return (
            "No contact point configured (alertEmailAddresses, alertSlackWebhookUrl, "
            "alertPagerDutyIntegrationKey): alert rules are evaluated and shown in Grafana under "
            "Alerting > Alert rules, but nobody is notified."
        )
    return "; ".join(f"{severity} -> {', '.join(channels)}" for severity, channels in routes.items())


class Alerting(pulumi.ComponentResource):
    """Rule groups in their own folder; when any channel is configured, one contact point per
    severity and a notification policy that routes each severity to its contact point."""

    def __init__(
        self,
        provider: grafana.Provider,
        groups: list[RuleGroup],
        contacts: AlertContacts,
        depends_on: list[pulumi.Resource],
        runbook: dict[str, Any],
        runbook_links: Mapping[str, str],
        context: RuleContext,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("observability:grafana:Alerting", "alerting", None, opts)
        in_grafana = pulumi.ResourceOptions(parent=self, provider=provider)
        self.folder = grafana.oss.Folder("folder-alert-rules", uid=FOLDER_UID, title=FOLDER_TITLE, opts=in_grafana)
        # Rules query data sources by uid: create them only once those exist.
        after_datasources = pulumi.ResourceOptions.merge(in_grafana, pulumi.ResourceOptions(depends_on=depends_on))
        self.rule_groups = {
            group.slug: grafana.alerting.RuleGroup(
                f"rule-group-{group.slug}",
                name=group.name,
                folder_uid=self.folder.uid,
                interval_seconds=group.interval_seconds,
                rules=[_rule_args(rule, runbook_links, context) for rule in context.rules(group)],
                opts=after_datasources,
            )
            for group in groups
            if context.rules(group)
        }

        # The runbook every alert links to, next to the rules (components/grafana/runbook.py).
        self.runbook = grafana.oss.Dashboard(
            "dashboard-runbook", folder=self.folder.uid, config_json=json.dumps(runbook, sort_keys=True), opts=in_grafana
        )
        self.routes = severity_routes(contacts.channels)
        self.contact_points: dict[str, grafana.alerting.ContactPoint] = {}
        for severity, channels in self.routes.items():
            self.contact_points[severity] = grafana.alerting.ContactPoint(
                f"contact-point-{severity}",
                name=contact_point_name(severity),
                **_integrations(channels, contacts, severity),
                opts=in_grafana,
            )
        self.notification_policy = None
        if self.contact_points:
            # Alerts without a severity label (none of ours) go where warnings go.
            self.notification_policy = grafana.alerting.NotificationPolicy(
                "notification-policy",
                contact_point=self.contact_points["warning"].name,
                group_bies=GROUP_BY,
                policies=[
                    grafana.alerting.NotificationPolicyPolicyArgs(
                        matchers=[grafana.alerting.NotificationPolicyPolicyMatcherArgs(label="severity", match="=", value=severity)],
                        contact_point=self.contact_points[severity].name,
                        # Pages repeat sooner than e-mails about a slow queue.
                        repeat_interval={"critical": "1h", "warning": "4h", "info": "24h"}[severity],
                    )
                    for severity in SEVERITIES
                ],
                opts=in_grafana,
            )
        self.summary = describe_routes(self.routes)
        self.register_outputs(
            {
                "folder": FOLDER_UID,
                "ruleGroups": list(self.rule_groups),
                "routes": {severity: list(channels) for severity, channels in self.routes.items()},
                "summary": self.summary,
            }
        )


def _rule_args(rule: AlertRule, runbook_links: Mapping[str, str], context: RuleContext) -> grafana.alerting.RuleGroupRuleArgs:
    return grafana.alerting.RuleGroupRuleArgs(
        uid=rule.uid,
        name=rule.title,
        condition=CONDITION_REF,
        for_=rule.pending_for,
        no_data_state=rule.no_data_state,
        exec_err_state=rule.exec_err_state,
        labels=rule.labels,
        annotations=rule.annotations(runbook_links),
        datas=[
            grafana.alerting.RuleGroupRuleDataArgs(
                ref_id=stage.ref_id,
                datasource_uid=stage.datasource_uid,
                relative_time_range=grafana.alerting.RuleGroupRuleDataRelativeTimeRangeArgs(from_=stage.relative_from_seconds, to=0),
                model=stage.model_json,
            )
            for stage in rule_stages(rule, context)
        ],
    )


def _integrations(channels: tuple[str, ...], contacts: AlertContacts, severity: str) -> dict:
    """Provider arguments for the channels of one contact point; credentials stay secret Outputs."""
    args: dict = {}
    if "email" in channels:
        args["emails"] = [grafana.alerting.ContactPointEmailArgs(addresses=list(contacts.email_addresses))]
    if "slack" in channels and contacts.slack_webhook_url:
        args["slacks"] = [grafana.alerting.ContactPointSlackArgs(url=contacts.slack_webhook_url.output())]
    if "pagerduty" in channels and contacts.pagerduty_integration_key:
        args["pagerduties"] = [
            grafana.alerting.ContactPointPagerdutyArgs(
                integration_key=contacts.pagerduty_integration_key.output(),
                # PagerDuty's own levels match ours: its service decides what pages at night.
                severity=severity,
            )
        ]
    return args
