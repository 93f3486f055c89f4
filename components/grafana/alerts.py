"""Alert rules as files: configs/alerts/<group>.yaml, one Grafana rule group per file.

Pure functions only: loading and validating the files into the rules of alert_model.py. Their query
stages are made in alert_stages.py; the resources, and which contact point each severity goes to,
in alerting.py.

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
        cloudwatch:                        (optional: on stacks with CloudWatch, aws, read this instead)
          namespace: ECS/ContainerInsights
          metric: <metric name as AWS documents it>
          divided_by: <a second metric: the rule compares metric / divided_by>   (optional)
          dimensions: {<name>: <value, "*", a list of values, or $constant of the stack>}
          statistic: Average | Maximum | Minimum | Sum | SampleCount
          period: <a whole number of minutes, e.g. 1m>
        threshold: "> <number>" or "< <number>"
        summary: <one line; Grafana template syntax allowed>
        description: <what it means>
        runbook: <anchor of a section in docs/runbook.md>
        datasource: <data source uid, default prometheus>      (optional)

A rule needs a query, a cloudwatch block or both; one with only a cloudwatch block exists only on
stacks with CloudWatch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from components.grafana.alert_model import DEFAULT_DATASOURCE, SEVERITIES, AlertRule, CloudWatchCondition, RuleGroup

# Where components/render.py and components/stack.py import them from.
from components.grafana.alert_stages import RuleContext, rule_stages  # noqa: F401
from components.grafana.cloudwatch import STACK_CONSTANTS, STATISTICS, documented_metric_problems
from components.grafana.runbook import anchor
from components.settings import ProblemsError
from components.stackconfig import PROJECT_DIR
from components.yamltext import load_yaml

ALERTS_DIR = PROJECT_DIR / "configs" / "alerts"
RUNBOOK_PATH = PROJECT_DIR / "docs" / "runbook.md"
# Where runbook links point: the runbook as the repository shows it.
RUNBOOK_DOC = "docs/runbook.md"

NO_DATA_STATES = ("OK", "NoData", "KeepLast", "Alerting")
EXEC_ERR_STATES = ("OK", "Error", "KeepLast", "Alerting")
_UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_DURATION = re.compile(r"^(?P<count>[1-9][0-9]*)(?P<unit>[smh])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}
_THRESHOLD = re.compile(r"^(?P<op>[<>])\s*(?P<value>-?[0-9]+(?:\.[0-9]+)?)$")
_RULE_KEYS = {
    "uid", "title", "severity", "for", "no_data_state", "exec_err_state", "query", "threshold",
    "summary", "description", "runbook", "datasource", "cloudwatch",
}
_CLOUDWATCH_KEYS = {"namespace", "metric", "divided_by", "dimensions", "statistic", "period"}


class AlertRulesError(ProblemsError):
    """One line per problem, each naming the file and the rule."""

    heading = "invalid alert rules"


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

    def text(key: str, needed: str = "every rule needs one") -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {key}: missing; {needed}")
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
    cloudwatch = _parse_cloudwatch(raw["cloudwatch"], where, problems) if "cloudwatch" in raw else None
    query = text("query", "a rule needs a query, a cloudwatch block or both") if "query" in raw or "cloudwatch" not in raw else None
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
        cloudwatch=cloudwatch,
    )


def _parse_cloudwatch(raw: Any, where: str, problems: list[str]) -> CloudWatchCondition | None:
    where = f"{where}: cloudwatch"
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected keys {', '.join(sorted(_CLOUDWATCH_KEYS))}")
        return None
    before = len(problems)
    unknown = sorted(set(raw) - _CLOUDWATCH_KEYS)
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(_CLOUDWATCH_KEYS))}")
    namespace, metric, divided_by = raw.get("namespace"), raw.get("metric"), raw.get("divided_by")
    dimensions = raw.get("dimensions")
    if not isinstance(dimensions, dict) or not dimensions or not all(
        isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(i, str) for i in v)) for v in dimensions.values()
    ):
        problems.append(f"{where}: dimensions: expected a mapping of dimension name to a value, \"*\" or a list of values")
        dimensions = {}
    placeholders = [v for value in dimensions.values() for v in (value if isinstance(value, list) else [value]) if v.startswith("$")]
    for placeholder in placeholders:
        if placeholder[1:] not in STACK_CONSTANTS:
            problems.append(f"{where}: dimensions: {placeholder} is not a value the stack gives; allowed: {', '.join('$' + c for c in STACK_CONSTANTS)}")
    for name in (metric, *((divided_by,) if "divided_by" in raw else ())):
        problems.extend(f"{where}: {problem}" for problem in documented_metric_problems(str(namespace), str(name), dimensions))
    statistic = raw.get("statistic")
    if statistic not in STATISTICS:
        problems.append(f"{where}: statistic: {statistic!r} is not allowed; allowed: {', '.join(STATISTICS)}")
    period = str(raw.get("period", ""))
    # CloudWatch keeps its standard-resolution metrics per minute.
    if not _DURATION.match(period) or seconds(period) % 60:
        problems.append(f"{where}: period: {period!r} is not allowed; allowed: a whole number of minutes (e.g. 1m)")
    if len(problems) > before:
        return None
    return CloudWatchCondition(
        namespace=str(namespace),
        metric=str(metric),
        dimensions=dict(dimensions),
        statistic=str(statistic),
        period_seconds=seconds(period),
        divided_by=str(divided_by) if divided_by is not None else None,
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


def promql_rules(groups: list[RuleGroup]) -> list[AlertRule]:
    """The rules with a PromQL query (every rule but those that only read CloudWatch)."""
    return [rule for rule in all_rules(groups) if rule.query is not None]
