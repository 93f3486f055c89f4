"""Grafana's data sources (with correlations), folders and dashboards, through the Grafana provider."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Optional

import pulumi
import pulumiverse_grafana as grafana

from components.grafana.cloudwatch import CLOUDWATCH_UID
from components.grafana.dashboards import Folder, for_stack

PROMETHEUS_UID = "prometheus"
TEMPO_UID = "tempo"
LOKI_UID = "loki"
DATASOURCE_UIDS = (PROMETHEUS_UID, TEMPO_UID, LOKI_UID)


@dataclass(frozen=True)
class DataSourceDefinition:
    uid: str
    name: str
    type: str
    # An Output when it names something the platform creates (the managed metrics workspace).
    url: pulumi.Input[str]
    json_data: dict[str, Any]
    is_default: bool = False


def datasource_definitions(
    prometheus_url: pulumi.Input[str],
    tempo_url: str,
    loki_url: str,
    prometheus_sigv4_region: Optional[str] = None,
    cloudwatch_region: Optional[str] = None,
) -> list[DataSourceDefinition]:
    """URLs are the internal addresses Grafana's server reaches; uids are fixed so dashboards and
    correlations can name them. prometheus_sigv4_region: the metrics store is a managed one that
    Grafana queries signed with its own AWS credentials. cloudwatch_region: add CloudWatch (aws)."""
    return [
        _prometheus(prometheus_url, prometheus_sigv4_region),
        _tempo(tempo_url),
        _loki(loki_url),
        *([_cloudwatch(cloudwatch_region)] if cloudwatch_region else []),
    ]


def _prometheus(url: pulumi.Input[str], sigv4_region: Optional[str]) -> DataSourceDefinition:
    sigv4 = {"sigV4Auth": True, "sigV4AuthType": "default", "sigV4Region": sigv4_region} if sigv4_region else {}
    return DataSourceDefinition(
        uid=PROMETHEUS_UID,
        name="Prometheus",
        type="prometheus",
        url=url,
        is_default=True,
        json_data={
            "httpMethod": "POST",
            "prometheusType": "Prometheus",
            # Exemplars link to their trace: the collector's remote-write exporter labels them
            # trace_id (the span-metrics connector's exemplars, and the apps' own).
            "exemplarTraceIdDestinations": [{"name": "trace_id", "datasourceUid": TEMPO_UID}],
            **sigv4,
        },
    )


# Links from a span look this far around it: five minutes before its start to five after its end.
_AROUND_THE_SPAN = {"spanStartTimeShift": "-5m", "spanEndTimeShift": "5m"}
# Span metrics made by the collector's span-metrics connector, from every span.
_SPAN_METRICS_QUERIES = [
    {"name": "Request rate", "query": "sum by (span_name) (rate(traces_span_metrics_calls_total{$__tags}[5m]))"},
    {
        "name": "Error rate",
        "query": 'sum by (span_name) (rate(traces_span_metrics_calls_total{$__tags, status_code="STATUS_CODE_ERROR"}[5m]))',
    },
    {
        "name": "p95 latency",
        "query": "histogram_quantile(0.95, sum by (le, span_name) (rate(traces_span_metrics_duration_seconds_bucket{$__tags}[5m])))",
    },
]


def _tempo(url: str) -> DataSourceDefinition:
    return DataSourceDefinition(
        uid=TEMPO_UID,
        name="Tempo",
        type="tempo",
        url=url,
        json_data={
            "tracesToLogsV2": {
                "datasourceUid": LOKI_UID,
                **_AROUND_THE_SPAN,
                "tags": [{"key": "service.name", "value": "service_name"}],
                # OTLP logs carry trace_id as structured metadata, not in the line: filter on it.
                "customQuery": True,
                "query": '{${__tags}} | trace_id="${__trace.traceId}"',
            },
            "tracesToMetrics": {
                "datasourceUid": PROMETHEUS_UID,
                **_AROUND_THE_SPAN,
                "tags": [{"key": "service.name", "value": "service_name"}],
                "queries": _SPAN_METRICS_QUERIES,
            },
            # The service map reads traces_service_graph_request_total, ..._failed_total and
            # ..._server_seconds, which the collector's service-graph connector writes there.
            "serviceMap": {"datasourceUid": PROMETHEUS_UID},
            "nodeGraph": {"enabled": True},
            "search": {"hide": False},
            "traceQuery": {"timeShiftEnabled": True, **_AROUND_THE_SPAN},
            "streamingEnabled": {"search": True, "metrics": True},
        },
    )


def _loki(url: str) -> DataSourceDefinition:
    return DataSourceDefinition(
        uid=LOKI_UID,
        name="Loki",
        type="loki",
        url=url,
        json_data={
            # OTLP logs keep trace_id as structured metadata, so match the label, not the line.
            "derivedFields": [
                {
                    "name": "TraceID",
                    "matcherType": "label",
                    "matcherRegex": "trace_id",
                    "datasourceUid": TEMPO_UID,
                    "url": "${__value.raw}",
                    "urlDisplayLabel": "View trace",
                }
            ],
        },
    )


def _cloudwatch(region: str) -> DataSourceDefinition:
    # authType default: the AWS SDK's credential chain, i.e. the Grafana task role.
    return DataSourceDefinition(
        uid=CLOUDWATCH_UID, name="CloudWatch", type="cloudwatch", url="", json_data={"authType": "default", "defaultRegion": region}
    )


def _dashboard_json(model: dict[str, Any], datasource_uids: set[str], constants: Mapping[str, Any]) -> str:
    return json.dumps(for_stack(model, datasource_uids, constants), sort_keys=True)


CONTENT_TYPE, CONTENT_NAME = "observability:grafana:Content", "grafana-content"


def grafana_provider(url: pulumi.Output[str], auth: pulumi.Input[str]) -> grafana.Provider:
    """The provider every Grafana resource is created through, at the stack's root: an update that
    targets part of the stack (`pulumi up --target`) always includes the root, never a component
    that was not targeted (the engine refuses a provider whose parent is missing)."""
    return grafana.Provider(
        "grafana",
        url=url,
        auth=pulumi.Output.secret(auth),
        retries=10,
    )


class GrafanaContent(pulumi.ComponentResource):
    """Everything inside Grafana. The provider talks to Grafana's external URL, which resolves only
    once the Grafana service is healthy, so nothing here runs against a Grafana that is starting."""

    def __init__(
        self,
        provider: grafana.Provider,
        datasources: list[DataSourceDefinition],
        folders: list[Folder],
        # Values of the dashboards' constants; Outputs where the platform names them at deploy (buckets).
        dashboard_constants: Optional[Mapping[str, pulumi.Input[Any]]] = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(CONTENT_TYPE, CONTENT_NAME, None, opts)
        self.provider = provider
        in_grafana = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self.datasources = {
            d.uid: grafana.oss.DataSource(
                f"datasource-{d.uid}",
                uid=d.uid,
                name=d.name,
                type=d.type,
                url=d.url,
                access_mode="proxy",
                is_default=d.is_default,
                json_data_encoded=json.dumps(d.json_data, sort_keys=True),
                opts=in_grafana,
            )
            for d in datasources
        }
        # Dashboards name data sources by uid, so they wait for all of them.
        after_datasources = pulumi.ResourceOptions.merge(
            in_grafana, pulumi.ResourceOptions(depends_on=list(self.datasources.values()))
        )
        self.folders = {}
        self.dashboards = {}
        uids = set(self.datasources)
        constants = pulumi.Output.from_input(dict(dashboard_constants or {}))
        for folder in folders:
            grafana_folder = grafana.oss.Folder(f"folder-{folder.uid}", uid=folder.uid, title=folder.title, opts=in_grafana)
            self.folders[folder.uid] = grafana_folder
            for dashboard in folder.dashboards:
                self.dashboards[dashboard.uid] = grafana.oss.Dashboard(
                    f"dashboard-{dashboard.uid}",
                    folder=grafana_folder.uid,
                    config_json=constants.apply(partial(_dashboard_json, dashboard.model, uids)),
                    overwrite=True,
                    opts=after_datasources,
                )
        self.register_outputs(
            {
                "datasources": list(self.datasources),
                "folders": list(self.folders),
                "dashboards": list(self.dashboards),
            }
        )
