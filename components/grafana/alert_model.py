"""An alert rule as configs/alerts/<group>.yaml describes it, once alerts.py has validated it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEVERITIES = ("critical", "warning", "info")
DEFAULT_DATASOURCE = "prometheus"


@dataclass(frozen=True)
class CloudWatchCondition:
    """What a rule reads from CloudWatch: a metric per series of its dimensions, or that metric
    divided by a second one over the same dimensions (used / reserved)."""

    namespace: str
    metric: str
    dimensions: dict[str, Any]
    statistic: str
    period_seconds: int
    divided_by: str | None = None


@dataclass(frozen=True)
class AlertRule:
    uid: str
    title: str
    severity: str
    pending_for: str
    no_data_state: str
    exec_err_state: str
    # PromQL; None for a rule that only reads CloudWatch.
    query: str | None
    threshold_op: str
    threshold: float
    summary: str
    description: str
    runbook_anchor: str
    datasource_uid: str = DEFAULT_DATASOURCE
    cloudwatch: CloudWatchCondition | None = None

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
