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
from pathlib import Path
from typing import Any, Optional

from components.grafana.alerts import RuleContext, RuleGroup, load_rule_groups, read_runbook, rule_stages
from components.grafana.content import DATASOURCE_UIDS, datasource_definitions
from components.grafana.dashboards import for_stack, load_folders
from components.grafana.runbook import runbook_dashboard, runbook_links
from components.platforms.spec import MetricsStore, ObjectStore
from components.services import collector, loki, prometheus, tempo
from components.settings import SERVICES, ProblemsError, Settings, load_settings
from components.stack import collector_tiers, dashboard_constants, scrape_targets
from components.stackconfig import PROJECT_DIR, load_stack_config, project_name, stack_names
from components.yamltext import to_yaml


class RenderError(Exception):
    """A stack that cannot be rendered, with the reason in words."""


def internal_hosts(settings: Settings) -> dict[str, str]:
    """How services address each other: Docker network aliases; ECS service discovery names
    (the platforms' internal_host, which needs a running Pulumi program to construct)."""
    names = SERVICES + ((collector.SAMPLER_NAME,) if collector.SAMPLER in render_tiers(settings) else ())
    if settings.target == "aws":
        return {name: f"{name}.{settings.service_domain}" for name in names}
    return {name: name for name in names}


def render_tiers(settings: Settings) -> tuple[str, ...]:
    """The collector tiers the stack deploys: the aws platform runs the sampler tier, docker does not."""
    return collector_tiers(settings, platform_runs_sampler_tier=settings.target == "aws")


def grafana_root_url(settings: Settings) -> str:
    """Grafana's address as people open it (the platforms' external_url): the domain on aws, the
    published port on docker."""
    if settings.aws is not None and settings.target == "aws":
        return f"https://{settings.aws.domain_name}/"
    return f"http://{settings.external_host}:{settings.host_ports.grafana}/"


def stores(settings: Settings) -> tuple[Optional[ObjectStore], Optional[ObjectStore], Optional[MetricsStore]]:
    """What the aws platform creates and names only at deploy time (Tempo's and Loki's buckets, the
    metrics workspace), as placeholders in angle brackets so the storage sections still render."""
    if settings.aws is None:
        return None, None, None
    region = settings.aws.region

    def bucket(service: str) -> ObjectStore:
        return ObjectStore(bucket=f"<{service} bucket, named at deploy>", region=region, endpoint=f"s3.{region}.amazonaws.com")

    metrics = None
    if settings.aws.metrics_backend == "amp":
        workspace = f"https://aps-workspaces.{region}.amazonaws.com/workspaces/<workspace id, known at deploy>"
        metrics = MetricsStore(remote_write_url=f"{workspace}/api/v1/remote_write", query_url=workspace, region=region)
    return bucket(tempo.NAME), bucket(loki.NAME), metrics


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


def render_stack(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """Relative path -> file content for everything the stack deploys as configuration."""
    try:
        config = load_stack_config(stack, project_dir)
    except FileNotFoundError as error:
        raise RenderError(str(error)) from None
    project = project_name(project_dir)
    prefix = f"{project}:"
    try:
        settings = load_settings(
            lambda key: config.get(prefix + key),
            project,
            stack,
            aws_region=config.get("aws:region"),
            given_keys=[key[len(prefix) :] for key in config if key.startswith(prefix)],
        )
        groups = load_rule_groups(datasource_uids=DATASOURCE_UIDS)
    except ProblemsError as error:
        raise RenderError(f"stack {stack!r}: {error}") from None
    hosts = internal_hosts(settings)

    def url(service: str, port: int) -> str:
        return f"http://{hosts[service]}:{port}"

    traces_store, logs_store, metrics_store = stores(settings)
    tiers = render_tiers(settings)
    files = {
        "collector/config.yaml": to_yaml(
            collector.render_collector_config(settings, hosts, metrics_store, tier=tiers[0], sampler_host=hosts.get(collector.SAMPLER_NAME))
        ),
        "prometheus/prometheus.yml": to_yaml(prometheus.render_prometheus_config(
            settings, scrape_targets(hosts, container_metrics=settings.container_metrics.enabled), metrics_store
        )),
        "tempo/tempo.yaml": to_yaml(tempo.render_tempo_config(settings, traces_store)),
        "loki/loki.yaml": to_yaml(loki.render_loki_config(settings, logs_store)),
    }
    if collector.SAMPLER in tiers:
        files[f"{collector.SAMPLER_NAME}/config.yaml"] = to_yaml(
            collector.render_collector_config(settings, hosts, metrics_store, tier=collector.SAMPLER)
        )
    datasources = datasource_definitions(
        prometheus_url=metrics_store.query_url if metrics_store else url(prometheus.NAME, prometheus.HTTP.container_port),
        prometheus_sigv4_region=metrics_store.region if metrics_store else None,
        tempo_url=url(tempo.NAME, tempo.HTTP.container_port),
        loki_url=url(loki.NAME, loki.HTTP.container_port),
        cloudwatch_region=settings.aws.region if settings.aws else None,
    )
    files["grafana/datasources.json"] = _json([vars(d) for d in datasources])
    buckets = [store.bucket for store in (traces_store, logs_store) if store is not None]
    uids, constants = {d.uid for d in datasources}, dashboard_constants(settings, buckets)
    for folder in load_folders():
        files[f"grafana/dashboards/{folder.uid}/folder.json"] = _json({"uid": folder.uid, "title": folder.title})
        for dashboard in folder.dashboards:
            files[f"grafana/dashboards/{folder.uid}/{dashboard.path.name}"] = _json(for_stack(dashboard.model, uids, constants))
    runbook = read_runbook()
    links = runbook_links(runbook, grafana_root_url(settings), settings.runbook_base_url)
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
