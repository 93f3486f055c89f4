"""Alert rules as files: configs/alerts/<group>.yaml, one Grafana rule group per file.

Pure functions only: loading and validating the files, turning a rule into the query stages of a
Grafana-managed rule, and deciding which contact point each severity goes to. The resources are
created in components/grafana/alerting.py.

A rule file:

    group: <rule group name>        interval: <evaluation interval, e.g. 1m>
    rules:
      - uid: <stable id, lowercase letters, digits, dashes; at most 40>
        title: <alert name, unique in the folder>
        severity: critical | warning | info
        for: <how long the condition must hold, e.g. 5m>
        no_data_state: OK | NoData | KeepLast | Alerting       (Grafana's names)
        exec_err_state: OK | Error | KeepLast | Alerting
        query: <PromQL, evaluated as an instant query>
        threshold: "> <number>" or "< <number>"
        summary: <one line; Grafana template syntax allowed>
        description: <what it means>
        runbook: <anchor of a section in docs/runbook.md>
        datasource: <data source uid, default prometheus>      (optional)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.grafana.runbook import anchor
from components.settings import ProblemsError
from components.stackconfig import PROJECT_DIR
from components.yamltext import load_yaml

ALERTS_DIR = PROJECT_DIR / "configs" / "alerts"
RUNBOOK_PATH = PROJECT_DIR / "docs" / "runbook.md"
# Where runbook links point: the runbook as the repository shows it.
RUNBOOK_DOC = "docs/runbook.md"

SEVERITIES = ("critical", "warning", "info")
NO_DATA_STATES = ("OK", "NoData", "KeepLast", "Alerting")
EXEC_ERR_STATES = ("OK", "Error", "KeepLast", "Alerting")
# Grafana's server-side expressions are addressed by this pseudo data source uid.
EXPRESSION_UID = "__expr__"
DEFAULT_DATASOURCE = "prometheus"

# Stage names in every rule: A the query, B its last value per series, C the threshold on B.
QUERY_REF, REDUCE_REF, CONDITION_REF = "A", "B", "C"
# The query's time range: enough for the longest range selector the rules use ([15m]).
QUERY_RANGE_SECONDS = 900

_UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_DURATION = re.compile(r"^(?P<count>[1-9][0-9]*)(?P<unit>[smh])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}
_THRESHOLD = re.compile(r"^(?P<op>[<>])\s*(?P<value>-?[0-9]+(?:\.[0-9]+)?)$")
_EVALUATORS = {">": "gt", "<": "lt"}
_RULE_KEYS = {
    "uid", "title", "severity", "for", "no_data_state", "exec_err_state", "query", "threshold",
    "summary", "description", "runbook", "datasource",
}


class AlertRulesError(ProblemsError):
    """One line per problem, each naming the file and the rule."""

    heading = "invalid alert rules"


@dataclass(frozen=True)
class AlertRule:
    uid: str
    title: str
    severity: str
    pending_for: str
    no_data_state: str
    exec_err_state: str
    query: str
    threshold_op: str
    threshold: float
    summary: str
    description: str
    runbook_anchor: str
    datasource_uid: str = DEFAULT_DATASOURCE

    @property
    def labels(self) -> dict[str, str]:
        return {"severity": self.severity}

    def annotations(self, runbook_links: Mapping[str, str]) -> dict[str, str]:
        """runbook_links: anchor -> absolute URL of that runbook section (components/grafana/runbook.py)."""
        return {"summary": self.summary, "description": self.description, "runbook_url": runbook_links[self.runbook_anchor]}


@dataclass(frozen=True)
class RuleGroup:
    name: str
    interval_seconds: int
    rules: tuple[AlertRule, ...]
    path: Path

    @property
    def slug(self) -> str:
        return self.path.stem


def seconds(duration: str) -> int:
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"{duration!r} is not a duration")
    return int(match.group("count")) * _SECONDS[match.group("unit")]


def read_runbook() -> str:
    """The runbook the rules link to (read when needed, so a test may point RUNBOOK_PATH elsewhere)."""
    return RUNBOOK_PATH.read_text(encoding="utf-8")


def runbook_anchors(text: str) -> set[str]:
    """Anchors of the markdown headings, as GitHub derives them."""
    return {anchor(heading) for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)}


def load_rule_groups(
    root: Path | None = None,
    runbook: Path | None = None,
    datasource_uids: tuple[str, ...] = (DEFAULT_DATASOURCE,),
) -> list[RuleGroup]:
    """Every *.yaml under root (configs/alerts), validated; all problems are reported at once."""
    root = root or ALERTS_DIR
    runbook = runbook or RUNBOOK_PATH
    anchors = runbook_anchors(runbook.read_text(encoding="utf-8")) if runbook.exists() else set()
    problems: list[str] = []
    groups: list[RuleGroup] = []
    for path in sorted(root.glob("*.yaml")):
        group = _parse_group(path, anchors, datasource_uids, problems)
        if group:
            groups.append(group)
    if not groups and not problems:
        problems.append(f"{root}: no rule files (*.yaml)")
    _check_unique(groups, problems)
    if problems:
        raise AlertRulesError(problems)
    return groups


def _parse_group(path: Path, anchors: set[str], datasource_uids: tuple[str, ...], problems: list[str]) -> RuleGroup | None:
    where = path.name
    try:
        document = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        problems.append(f"{where}: not valid YAML ({error})")
        return None
    if not isinstance(document, dict):
        problems.append(f"{where}: expected keys group, interval and rules")
        return None
    name = document.get("group")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: group: missing; give the rule group a name")
    interval = str(document.get("interval", ""))
    if not _DURATION.match(interval):
        problems.append(f"{where}: interval: {interval!r} is not a duration; allowed: a whole number with s, m or h (e.g. 1m)")
    elif seconds(interval) % 10:
        problems.append(f"{where}: interval: {interval!r} must be a multiple of 10s (Grafana's base interval)")
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        problems.append(f"{where}: rules: expected a non-empty list of rules")
        return None
    rules = [_parse_rule(raw, f"{where}: rule {i + 1}", anchors, datasource_uids, problems) for i, raw in enumerate(raw_rules)]
    if any(rule is None for rule in rules) or not _DURATION.match(interval) or not isinstance(name, str):
        return None
    return RuleGroup(name=name.strip(), interval_seconds=seconds(interval), rules=tuple(rules), path=path)  # type: ignore[arg-type]


def _parse_rule(
    raw: Any, where: str, anchors: set[str], datasource_uids: tuple[str, ...], problems: list[str]
) -> AlertRule | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping of rule keys")
        return None
    if isinstance(raw.get("uid"), str):
        where = f"{where.rsplit(': ', 1)[0]}: {raw['uid']}"
    before = len(problems)

    def text(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {key}: missing; every rule needs one")
            return ""
        return value.strip()

    def choice(key: str, allowed: tuple[str, ...]) -> str:
        value = raw.get(key)
        if value not in allowed:
            problems.append(f"{where}: {key}: {value!r} is not allowed; allowed: {', '.join(allowed)}")
        return str(value)

    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(_RULE_KEYS))}")
    uid = text("uid")
    if uid and not _UID.match(uid):
        problems.append(f"{where}: uid: {uid!r} is not allowed; allowed: lowercase letters, digits and dashes, at most 40")
    title = text("title")
    severity = choice("severity", SEVERITIES)
    pending_for = str(raw.get("for", ""))
    if not _DURATION.match(pending_for):
        problems.append(f"{where}: for: {pending_for!r} is not a duration; allowed: a whole number with s, m or h (e.g. 5m)")
    no_data = choice("no_data_state", NO_DATA_STATES)
    exec_err = choice("exec_err_state", EXEC_ERR_STATES)
    query = text("query")
    threshold = _THRESHOLD.match(str(raw.get("threshold", "")).strip())
    if not threshold:
        problems.append(f"{where}: threshold: {raw.get('threshold')!r} is not allowed; allowed: '> number' or '< number'")
    summary = text("summary")
    description = text("description")
    anchor = text("runbook")
    if anchor and anchor not in anchors:
        problems.append(f"{where}: runbook: no section #{anchor} in {RUNBOOK_DOC}; add one or fix the anchor")
    datasource = raw.get("datasource", DEFAULT_DATASOURCE)
    if datasource not in datasource_uids:
        problems.append(f"{where}: datasource: {datasource!r} is not a data source of the stack; allowed: {', '.join(datasource_uids)}")
    if len(problems) > before or not threshold:
        return None
    return AlertRule(
        uid=uid,
        title=title,
        severity=severity,
        pending_for=pending_for,
        no_data_state=no_data,
        exec_err_state=exec_err,
        query=query,
        threshold_op=threshold.group("op"),
        threshold=float(threshold.group("value")),
        summary=summary,
        description=description,
        runbook_anchor=anchor,
        datasource_uid=str(datasource),
    )


def _check_unique(groups: list[RuleGroup], problems: list[str]) -> None:
    seen_uids: dict[str, str] = {}
    seen_titles: dict[str, str] = {}
    seen_groups: dict[str, str] = {}
    for group in groups:
        if group.name in seen_groups:
            problems.append(f"{group.path.name}: group: {group.name!r} is also the group of {seen_groups[group.name]}")
        seen_groups[group.name] = group.path.name
        for rule in group.rules:
            if rule.uid in seen_uids:
                problems.append(f"{group.path.name}: {rule.uid}: uid is also used in {seen_uids[rule.uid]}")
            if rule.title in seen_titles:
                problems.append(f"{group.path.name}: {rule.uid}: title {rule.title!r} is also used in {seen_titles[rule.title]}")
            seen_uids[rule.uid] = group.path.name
            seen_titles[rule.title] = group.path.name


def all_rules(groups: list[RuleGroup]) -> list[AlertRule]:
    return [rule for group in groups for rule in group.rules]


@dataclass(frozen=True)
class QueryStage:
    """One entry of a Grafana rule's `data`: a data source query or a server-side expression."""

    ref_id: str
    datasource_uid: str
    model: dict[str, Any]
    relative_from_seconds: int = 0

    @property
    def model_json(self) -> str:
        return json.dumps(self.model, sort_keys=True)


def rule_stages(rule: AlertRule) -> list[QueryStage]:
    """A (instant query) -> B (last value per series) -> C (threshold); C is the condition."""
    expression = {"type": EXPRESSION_UID, "uid": EXPRESSION_UID}
    return [
        QueryStage(
            ref_id=QUERY_REF,
            datasource_uid=rule.datasource_uid,
            relative_from_seconds=QUERY_RANGE_SECONDS,
            model={
                "refId": QUERY_REF,
                "datasource": {"type": "prometheus", "uid": rule.datasource_uid},
                "editorMode": "code",
                "expr": rule.query,
                "instant": True,
                "range": False,
                "intervalMs": 1000,
                "maxDataPoints": 43200,
            },
        ),
        QueryStage(
            ref_id=REDUCE_REF,
            datasource_uid=EXPRESSION_UID,
            model={
                "refId": REDUCE_REF,
                "datasource": expression,
                "type": "reduce",
                "expression": QUERY_REF,
                "reducer": "last",
                # A NaN (0/0) is no evidence either way: drop it rather than alert or clear on it.
                "settings": {"mode": "dropNN"},
            },
        ),
        QueryStage(
            ref_id=CONDITION_REF,
            datasource_uid=EXPRESSION_UID,
            model={
                "refId": CONDITION_REF,
                "datasource": expression,
                "type": "threshold",
                "expression": REDUCE_REF,
                "conditions": [{"evaluator": {"type": _EVALUATORS[rule.threshold_op], "params": [rule.threshold]}}],
            },
        ),
    ]


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
