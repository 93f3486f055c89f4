"""The query stages of a Grafana-managed rule: a rule's PromQL, or its CloudWatch metric where the
stack has CloudWatch, reduced to the last value per series and compared with the threshold."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.grafana.alert_model import DEFAULT_DATASOURCE, AlertRule, CloudWatchCondition, RuleGroup
from components.grafana.cloudwatch import CLOUDWATCH_UID, metric_query, render_dimensions

# Grafana's server-side expressions are addressed by this pseudo data source uid.
EXPRESSION_UID = "__expr__"
# Stage names in every rule: A the query, B its last value per series, C the threshold on B.
QUERY_REF, REDUCE_REF, CONDITION_REF = "A", "B", "C"
# A CloudWatch ratio adds D, the divisor's query; B is then last(A) / last(D).
DIVISOR_REF = "D"
# The query's time range: enough for the longest range selector the rules use ([15m]).
QUERY_RANGE_SECONDS = 900
_EVALUATORS = {">": "gt", "<": "lt"}


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


@dataclass(frozen=True)
class RuleContext:
    """What a stack gives its rules: its data sources, and the values `$name` takes in CloudWatch
    dimensions (e.g. its ECS cluster)."""

    datasource_uids: frozenset[str] = frozenset({DEFAULT_DATASOURCE})
    constants: Mapping[str, Any] = field(default_factory=dict)

    def reads_cloudwatch(self, rule: AlertRule) -> bool:
        return rule.cloudwatch is not None and CLOUDWATCH_UID in self.datasource_uids

    def rules(self, group: RuleGroup) -> tuple[AlertRule, ...]:
        """The group's rules this stack evaluates: a CloudWatch-only rule needs CloudWatch."""
        return tuple(rule for rule in group.rules if rule.query is not None or self.reads_cloudwatch(rule))


_EXPRESSION = {"type": EXPRESSION_UID, "uid": EXPRESSION_UID}


def _last(ref_id: str, of: str) -> QueryStage:
    return QueryStage(
        ref_id=ref_id,
        datasource_uid=EXPRESSION_UID,
        model={
            "refId": ref_id,
            "datasource": _EXPRESSION,
            "type": "reduce",
            "expression": of,
            "reducer": "last",
            # A NaN (0/0) is no evidence either way: drop it rather than alert or clear on it.
            "settings": {"mode": "dropNN"},
        },
    )


def _prometheus_stages(rule: AlertRule) -> list[QueryStage]:
    query = QueryStage(
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
    )
    return [query, _last(REDUCE_REF, QUERY_REF)]


def _cloudwatch_stages(condition: CloudWatchCondition, constants: Mapping[str, Any]) -> list[QueryStage]:
    """A the metric over the last 15 minutes; B its last value per series, or, with a divisor D,
    last(A) / last(D) per series (server-side math pairs series with equal labels, i.e. the same
    dimension values). Reducing first keeps a missing latest point of one metric from voiding both."""
    dimensions = render_dimensions(condition.dimensions, constants)

    def query(ref_id: str, metric: str) -> QueryStage:
        model = metric_query(ref_id, condition.namespace, metric, dimensions, condition.statistic, condition.period_seconds)
        return QueryStage(ref_id=ref_id, datasource_uid=CLOUDWATCH_UID, relative_from_seconds=QUERY_RANGE_SECONDS, model=model)

    if condition.divided_by is None:
        return [query(QUERY_REF, condition.metric), _last(REDUCE_REF, QUERY_REF)]
    last_query, last_divisor = f"{QUERY_REF}_last", f"{DIVISOR_REF}_last"
    # Math names other stages $RefID, or ${RefID} for any name (Grafana: "Write expression queries", Math).
    ratio = {"refId": REDUCE_REF, "datasource": _EXPRESSION, "type": "math", "expression": f"${{{last_query}}} / ${{{last_divisor}}}"}
    return [
        query(QUERY_REF, condition.metric),
        query(DIVISOR_REF, condition.divided_by),
        _last(last_query, QUERY_REF),
        _last(last_divisor, DIVISOR_REF),
        QueryStage(ref_id=REDUCE_REF, datasource_uid=EXPRESSION_UID, model=ratio),
    ]


def rule_stages(rule: AlertRule, context: RuleContext = RuleContext()) -> list[QueryStage]:
    """The stages ending in B, the value per series, then C, the threshold on B (the condition):
    from CloudWatch where the stack has it and the rule reads it, else from the rule's PromQL."""
    if rule.cloudwatch is not None and context.reads_cloudwatch(rule):
        stages = _cloudwatch_stages(rule.cloudwatch, context.constants)
    else:
        stages = _prometheus_stages(rule)
    condition = QueryStage(
        ref_id=CONDITION_REF,
        datasource_uid=EXPRESSION_UID,
        model={
            "refId": CONDITION_REF,
            "datasource": _EXPRESSION,
            "type": "threshold",
            "expression": REDUCE_REF,
            "conditions": [{"evaluator": {"type": _EVALUATORS[rule.threshold_op], "params": [rule.threshold]}}],
        },
    )
    return [*stages, condition]
