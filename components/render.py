"""Write every config a stack would deploy, from its stack file alone: no cloud, no Pulumi CLI.

    python -m components.render --stack prod --out build/

For review: the pull-request workflow uploads the output, so a reviewer reads the collector,
Prometheus, Tempo and Loki configs, Grafana's data sources, the dashboards and the alert rule
groups exactly as the renderers produce them for that stack. Secrets are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from components.grafana.alerts import RuleContext, RuleGroup, load_rule_groups, read_runbook, rule_stages
from components.grafana.content import DATASOURCE_UIDS
from components.grafana.dashboards import for_stack, load_folders
from components.grafana.runbook import runbook_dashboard, runbook_links
from components.plan import placeholder_stores, plan_stack
from components.settings import ProblemsError, load_stack_settings
from components.stackconfig import PROJECT_DIR, stack_names
from components.yamltext import to_yaml


class RenderError(Exception):
    """A stack that cannot be rendered, with the reason in words."""


def rule_group_document(group: RuleGroup, runbook_links: dict[str, str], context: RuleContext) -> dict[str, Any]:
    """A rule group as the Grafana provider creates it (see components/grafana/alerting.py)."""
    return {
        "name": group.name,
        "intervalSeconds": group.interval_seconds,
        "rules": [
            {
                "uid": rule.uid,
                "title": rule.title,
                "for": rule.pending_for,
                "noDataState": rule.no_data_state,
                "execErrState": rule.exec_err_state,
                "labels": rule.labels,
                "annotations": rule.annotations(runbook_links),
                "data": [
                    {"refId": s.ref_id, "datasourceUid": s.datasource_uid, "relativeFromSeconds": s.relative_from_seconds, "model": s.model}
                    for s in rule_stages(rule, context)
                ],
            }
            for rule in context.rules(group)
        ],
    }


def render_stack(stack: str, project_dir: Path = PROJECT_DIR, overrides: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Relative path -> file content for everything the stack deploys as configuration.
    overrides: project keys set as `pulumi config set` would, over the stack file's."""
    try:
        settings = load_stack_settings(stack, project_dir, **(overrides or {}))
        groups = load_rule_groups(datasource_uids=DATASOURCE_UIDS)
    except FileNotFoundError as error:
        raise RenderError(str(error)) from None
    except ProblemsError as error:
        raise RenderError(f"stack {stack!r}: {error}") from None
    plan = plan_stack(settings)
    stores = placeholder_stores(plan.facts)
    files = {name: to_yaml(document) for name, document in plan.config_documents(stores).items()}
    datasources = plan.datasources(stores.metrics.query_url if stores.metrics else None, plan.facts.cloud_metrics_region)
    files["grafana/datasources.json"] = _json([vars(d) for d in datasources])
    buckets = [store.bucket for store in (stores.traces, stores.logs) if store is not None]
    uids, constants = {d.uid for d in datasources}, plan.dashboard_constants(buckets)
    for folder in load_folders():
        files[f"grafana/dashboards/{folder.uid}/folder.json"] = _json({"uid": folder.uid, "title": folder.title})
        for dashboard in folder.dashboards:
            files[f"grafana/dashboards/{folder.uid}/{dashboard.path.name}"] = _json(for_stack(dashboard.model, uids, constants))
    runbook = read_runbook()
    links = runbook_links(runbook, plan.grafana_root_url, settings.runbook_base_url)
    for group in groups:
        files[f"grafana/alert-rules/{group.slug}.json"] = _json(rule_group_document(group, links, RuleContext(frozenset(uids), constants)))
    files["grafana/alert-rules/runbook-dashboard.json"] = _json(runbook_dashboard(runbook))
    return files


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def write(files: dict[str, str], out: Path) -> None:
    for relative, content in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.render", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack", required=True, help=f"stack name, one of: {', '.join(stack_names())}")
    parser.add_argument("--out", type=Path, default=Path("build"), help="output directory (default: build/); files go to <out>/<stack>/")
    args = parser.parse_args(argv)
    try:
        files = render_stack(args.stack)
    except RenderError as error:
        print(f"render: {error}", file=sys.stderr)
        return 2
    out = args.out / args.stack
    write(files, out)
    print(f"wrote {len(files)} files to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
