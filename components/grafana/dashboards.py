"""Dashboards as files: configs/dashboards/<folder>/*.json, one Grafana folder per directory.

Pure functions only: loading, and reading the queries back out for checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.grafana.cloudwatch import CLOUDWATCH_UID, render_dimensions
from components.stackconfig import PROJECT_DIR
from components.yamltext import load_yaml

DASHBOARDS_DIR = PROJECT_DIR / "configs" / "dashboards"


@dataclass(frozen=True)
class Dashboard:
    path: Path
    model: dict[str, Any]

    @property
    def uid(self) -> str:
        return str(self.model["uid"])


@dataclass(frozen=True)
class Folder:
    uid: str
    title: str
    dashboards: tuple[Dashboard, ...]


def load_folders(root: Path = DASHBOARDS_DIR) -> list[Folder]:
    """Each directory is a folder; folder.yaml may give its title (default: the directory name)."""
    folders = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        meta_file = directory / "folder.yaml"
        meta = load_yaml(meta_file.read_text(encoding="utf-8")) if meta_file.exists() else {}
        dashboards = tuple(
            Dashboard(path, json.loads(path.read_text(encoding="utf-8"))) for path in sorted(directory.glob("*.json"))
        )
        folders.append(Folder(uid=directory.name, title=meta.get("title", directory.name), dashboards=dashboards))
    return folders


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(model: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) pairs; a target without its own datasource inherits the panel's."""
    for panel in panels(model):
        for target in panel.get("targets", []):
            yield panel, target


def datasource_uid(panel: dict[str, Any], target: dict[str, Any]) -> str | None:
    source = target.get("datasource") or panel.get("datasource") or {}
    return source.get("uid") if isinstance(source, dict) else None


def for_stack(model: dict[str, Any], datasource_uids: set[str], constants: Mapping[str, Any]) -> dict[str, Any]:
    """The dashboard as one stack shows it: panels that read a data source the stack does not have
    are left out (CloudWatch exists only on aws), and so is a row left with none of its panels (the
    ones nested in it when collapsed, or those below it up to the next row); constant variables
    take the stack's values (e.g. its ECS cluster name), and so do CloudWatch dimensions written
    `$name` (e.g. its S3 buckets, a list)."""

    def kept(panel: dict[str, Any]) -> bool:
        return all(datasource_uid(panel, t) in datasource_uids for t in panel.get("targets", []))

    def filled(panel: dict[str, Any]) -> dict[str, Any]:
        if not any(datasource_uid(panel, t) == CLOUDWATCH_UID for t in panel.get("targets", [])):
            return panel
        rendered = [
            {**t, "dimensions": render_dimensions(t.get("dimensions", {}), constants)} if datasource_uid(panel, t) == CLOUDWATCH_UID else t
            for t in panel["targets"]
        ]
        return {**panel, "targets": rendered}

    sections: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = [(None, [])]
    for panel in model.get("panels", []):
        if panel.get("type") == "row":
            sections.append((panel, []))
        else:
            sections[-1][1].append(panel)
    shown: list[dict[str, Any]] = []
    for row, below in sections:
        nested = row.get("panels", []) if row else []
        if row is not None and (below or nested) and not any(kept(p) for p in [*below, *nested]):
            continue
        if row is not None:
            shown.append({**row, "panels": [filled(p) for p in nested if kept(p)]})
        shown.extend(filled(p) for p in below if kept(p))
    variables = []
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") == "constant" and isinstance(constants.get(variable["name"]), str):
            value = constants[variable["name"]]
            variable = {**variable, "query": value, "current": {"text": value, "value": value}}
        variables.append(variable)
    return {**model, "panels": shown, "templating": {**model.get("templating", {}), "list": variables}}


def promql_queries(model: dict[str, Any], prometheus_uid: str) -> list[tuple[str, str]]:
    """(panel title, expr) for every Prometheus query, template variables included."""
    found = [
        (panel.get("title", ""), target["expr"])
        for panel, target in targets(model)
        if datasource_uid(panel, target) == prometheus_uid and target.get("expr")
    ]
    for variable in model.get("templating", {}).get("list", []):
        query = variable.get("query")
        source = variable.get("datasource") or {}
        if variable.get("type") == "query" and source.get("uid") == prometheus_uid:
            text = query.get("query") if isinstance(query, dict) else query
            match = re.match(r"^label_values\((?:(?P<expr>.+),\s*)?(?P<label>\w+)\)$", text or "")
            if match and match.group("expr"):
                found.append((f"variable {variable['name']}", match.group("expr")))
    return found


# Grafana's built-in and dashboard variables, replaced by a value of the same type for parsing.
_DURATION_VARIABLES = ("$__rate_interval", "$__interval", "$__range")


def expand_variables(expr: str) -> str:
    for name in _DURATION_VARIABLES:
        expr = expr.replace(name, "5m").replace("${" + name[1:] + "}", "5m")
    return re.sub(r"\$\{?(\w+)(?::\w+)?\}?", "placeholder", expr)


_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
    "unless", "inf", "nan", "atan2", "start", "end", "placeholder",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a small lexer, enough for dashboard queries)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expand_variables(expr))
    names: set[str] = set()
    for alternatives in re.findall(r'__name__\s*=~?\s*"([^"]*)"', expr):
        names.update(alternatives.split("|"))
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"(?<![\w:.])\d+(?:\.\d+)?(?:ms|[smhdwy])?(?![\w:])", " ", text)  # numbers, durations
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    # Label lists after grouping modifiers.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end():].lstrip()
        if following.startswith("(") or word.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def label_names(expr: str) -> set[str]:
    """Label names an expression matches on or groups by."""
    text = expand_variables(expr)
    labels: set[str] = set()
    for selector in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels.update(name.strip() for name in group.split(",") if name.strip())
    return labels


def label_replace_targets(expr: str) -> set[str]:
    """Labels an expression creates with label_replace(v, "dst", "replacement", "src", "regex")."""
    return set(re.findall(r',\s*"(\w+)"\s*,\s*"[^"]*"\s*,\s*"\w+"\s*,\s*"[^"]*"\s*\)', expr))
