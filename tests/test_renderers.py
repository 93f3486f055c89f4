"""The pure config renderers: shape and meaning, for every committed stack."""

from __future__ import annotations

import re

import pytest

from components.services import collector, grafana, loki, prometheus, tempo
from components.services.collector import render_collector_config
from components.services.loki import render_loki_config
from components.services.prometheus import prometheus_args, render_prometheus_config
from components.services.tempo import render_tempo_config
from components.settings import SERVICES
from components.stack import scrape_targets
from components.stackconfig import stack_names
from tests.test_settings import settings_for

HOSTS = {name: name for name in SERVICES}
PORTS_BY_HOST = {
    tempo.NAME: {tempo.OTLP_GRPC.container_port, tempo.OTLP_HTTP.container_port, tempo.HTTP.container_port},
    loki.NAME: {loki.HTTP.container_port},
    prometheus.NAME: {prometheus.HTTP.container_port},
    collector.NAME: {collector.METRICS.container_port},
    grafana.NAME: {grafana.HTTP.container_port},
}


@pytest.fixture(params=stack_names())
def settings(request):
    return settings_for(request.param)


# ---- collector


def test_every_collector_pipeline_starts_with_memory_limiter_and_batches(settings):
    config = render_collector_config(settings, HOSTS)
    pipelines = config["service"]["pipelines"]
    browser = {"traces/browser", "logs/browser"} if settings.otlp_require_token else set()
    assert set(pipelines) == {"traces", "metrics", "logs"} | browser
    for name, pipeline in pipelines.items():
        assert pipeline["processors"][0] == ("memory_limiter/browser" if name in browser else "memory_limiter")
        (exporter,) = pipeline["exporters"]
        if exporter in config.get("connectors", {}):
            # Handed on to a main pipeline, which batches.
            continue
        # Either the exporter batches behind its persistent queue, or the batch processor does.
        batched_by_exporter = "batch" in config["exporters"][exporter].get("sending_queue", {})
        assert batched_by_exporter != ("batch" in pipeline["processors"]), name
        if not batched_by_exporter:
            assert pipeline["processors"][-1] == "batch", name


def test_collector_components_are_all_defined_and_all_used(settings):
    config = render_collector_config(settings, HOSTS)
    pipelines = config["service"]["pipelines"].values()
    connectors = set(config.get("connectors", {}))
    for kind in ("receivers", "processors", "exporters"):
        used = {name for p in pipelines for name in p[kind]}
        assert used - connectors == set(config[kind]), kind
    # Each connector both takes from one pipeline and feeds another.
    for connector in connectors:
        assert any(connector in p["exporters"] for p in pipelines) and any(connector in p["receivers"] for p in pipelines), connector
    assert config["service"]["extensions"] == list(config["extensions"])


def test_every_collector_exporter_points_at_a_service_that_exists(settings):
    exporters = render_collector_config(settings, HOSTS)["exporters"]
    assert exporters
    for name, exporter in exporters.items():
        endpoint = exporter.get("endpoint") or exporter["http"]["endpoint"]
        match = re.match(r"^(?:https?://)?([a-z0-9-]+):(\d+)(/.*)?$", endpoint)
        assert match, name
        host, port = match.group(1), int(match.group(2))
        assert host in PORTS_BY_HOST and port in PORTS_BY_HOST[host], f"{name} -> {host}:{port}"
    assert exporters["otlp_http/loki"]["endpoint"].endswith("/otlp")
    assert exporters["prometheus_remote_write"]["http"]["endpoint"].endswith("/api/v1/write")


def test_collector_listens_on_all_interfaces_inside_the_container(settings):
    config = render_collector_config(settings, HOSTS)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert (reader["host"], reader["port"]) == ("0.0.0.0", 8888)


def test_collector_takes_cors_sampling_and_resource_attributes_from_settings(settings):
    config = render_collector_config(settings, HOSTS)
    assert config["receivers"]["otlp"]["protocols"]["http"]["cors"]["allowed_origins"] == list(settings.cors_allowed_origins)
    assert config["processors"]["probabilistic_sampler"]["sampling_percentage"] == settings.trace_sampling_percentage
    attributes = {a["key"]: a for a in config["processors"]["resource"]["attributes"]}
    assert attributes["service.namespace"]["value"] == settings.service_namespace
    assert attributes["deployment.environment.name"]["value"] == settings.environment
    assert {a["action"] for a in attributes.values()} == {"insert"}


def _filter_regexes(settings) -> dict[str, re.Pattern[str]]:
    conditions = render_collector_config(settings, HOSTS)["processors"]["filter/health"]["traces"]["span"]
    found = {}
    for condition in conditions:
        match = re.fullmatch(r'IsMatch\((attributes\["([\w.]+)"\]|name), "(.+)"\)', condition)
        assert match, condition
        found[match.group(2) or "name"] = re.compile(match.group(3))
    return found


def test_health_filter_matches_every_attribute_the_instrumentations_emit(settings):
    regexes = _filter_regexes(settings)
    assert set(regexes) == {"http.route", "url.path", "http.target", "name"}
    for attribute in ("http.route", "url.path", "http.target"):
        for path in ("/health", "/healthz", "/ready", "/metrics", "/health/"):
            assert regexes[attribute].search(path), (attribute, path)
        for path in ("/healthy-decks", "/decks/{deck_id}", "/api/metrics/summary", "/"):
            assert not regexes[attribute].search(path), (attribute, path)
    assert regexes["name"].search("GET /health http send")
    assert regexes["name"].search("GET /metrics")
    assert not regexes["name"].search("GET /decks/{deck_id}")


def test_scrub_removes_credentials_and_personal_data(settings):
    actions = render_collector_config(settings, HOSTS)["processors"]["attributes/scrub"]["actions"]
    assert {a["action"] for a in actions} == {"delete"}
    keys = {a["key"] for a in actions if "key" in a}
    patterns = [re.compile(a["pattern"]) for a in actions if "pattern" in a]

    def removed(attribute: str) -> bool:
        return attribute in keys or any(p.search(attribute) for p in patterns)

    for attribute in (
        "http.request.header.authorization",
        "http.request.header.Authorization",
        "http.request.header.cookie",
        "http.response.header.set_cookie",
        "http.response.header.set-cookie",
        "http.request.header.x_api_key",
        "user.email",
        "db.statement.parameters",
        "db.query.parameter.user_id",
    ):
        assert removed(attribute), attribute
    for attribute in ("http.route", "http.request.header.user_agent", "db.statement", "user.id"):
        assert not removed(attribute), attribute


def test_scrub_runs_on_traces_and_logs_but_not_metrics(settings):
    pipelines = render_collector_config(settings, HOSTS)["service"]["pipelines"]
    assert "attributes/scrub" in pipelines["traces"]["processors"]
    assert "attributes/scrub" in pipelines["logs"]["processors"]
    assert "filter/health" in pipelines["traces"]["processors"]
    # Sampling happens after the health filter so health checks never count against the budget.
    traces = pipelines["traces"]["processors"]
    assert traces.index("filter/health") < traces.index("probabilistic_sampler")


# ---- prometheus


def test_prometheus_scrapes_every_component_itself_and_keeps_retention(settings):
    config = render_prometheus_config(settings, scrape_targets(HOSTS))

    def target(job: dict) -> str:
        if "dns_sd_configs" in job:
            (discovery,) = job["dns_sd_configs"]
            return f"{discovery['names'][0]}:{discovery['port']}"
        return job["static_configs"][0]["targets"][0]

    jobs = {job["job_name"]: target(job) for job in config["scrape_configs"]}
    assert set(jobs) == {"otel-collector", "prometheus", "tempo", "loki", "grafana"}
    for job, target in jobs.items():
        host, port = target.split(":")
        if job == "prometheus":
            assert host == "localhost"
        else:
            assert int(port) in PORTS_BY_HOST[host], job
    assert config["storage"]["tsdb"]["retention"]["time"] == f"{settings.prometheus_retention.hours}h"


def test_a_scaled_out_collector_is_scraped_task_by_task():
    """prod runs up to collectorMaxTasks collectors behind one name; dev runs one."""
    def collector_job(stack: str, **overrides: str) -> dict:
        config = render_prometheus_config(settings_for(stack, **overrides), scrape_targets(HOSTS))
        return next(j for j in config["scrape_configs"] if j["job_name"] == "otel-collector")

    scaled = collector_job("prod")
    assert "static_configs" not in scaled
    assert scaled["dns_sd_configs"] == [{"names": ["collector"], "type": "A", "port": collector.METRICS.container_port, "refresh_interval": "30s"}]
    assert collector_job("prod", collectorMinTasks="1", collectorMaxTasks="1")["static_configs"] == [{"targets": ["collector:8888"]}]
    assert collector_job("dev")["static_configs"] == [{"targets": ["collector:8888"]}]


def test_prometheus_receives_remote_write_and_stores_exemplars():
    args = prometheus_args()
    assert "--web.enable-remote-write-receiver" in args
    assert "--enable-feature=exemplar-storage" in args
    # Overriding the image's command drops its defaults: both must be given again.
    assert f"--config.file={prometheus.CONFIG_PATH}" in args
    assert f"--storage.tsdb.path={prometheus.DATA_DIR}" in args


# ---- tempo


def test_tempo_receives_otlp_on_all_interfaces(settings):
    protocols = render_tempo_config(settings, HOSTS)["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols == {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}


def test_tempo_uses_the_tempo3_layout(settings):
    config = render_tempo_config(settings, HOSTS)
    # Tempo 3 refuses to start on 2.x blocks and on the legacy flat overrides.
    assert not {"ingester", "compactor", "query_frontend_legacy"} & set(config)
    assert "metrics_generator_processors" not in config["overrides"]
    assert config["overrides"]["defaults"]["metrics_generator"]["processors"] == ["service-graphs", "span-metrics"]
    assert config["usage_report"] == {"reporting_enabled": False}


def test_tempo_metrics_generator_writes_to_prometheus_with_exemplars(settings):
    generator = render_tempo_config(settings, HOSTS)["metrics_generator"]
    assert generator["storage"]["path"].startswith(tempo.DATA_DIR)
    (remote_write,) = generator["storage"]["remote_write"]
    assert remote_write == {"url": "http://prometheus:9090/api/v1/write", "send_exemplars": True}


def test_tempo_retention_is_the_same_at_every_layer(settings):
    config = render_tempo_config(settings, HOSTS)
    expected = f"{settings.tempo_retention.hours}h"
    assert config["backend_worker"]["compaction"]["block_retention"] == expected
    assert config["backend_scheduler"]["provider"]["compaction"]["compaction"]["block_retention"] == expected
    assert config["overrides"]["defaults"]["compaction"]["block_retention"] == expected


def test_tempo_keeps_all_data_in_its_volume(settings):
    config = render_tempo_config(settings, HOSTS)
    paths = [config["storage"]["trace"]["wal"]["path"], config["storage"]["trace"]["local"]["path"],
             config["live_store"]["wal"]["path"], config["metrics_generator"]["storage"]["path"]]
    assert all(p.startswith(tempo.DATA_DIR + "/") for p in paths)


# ---- loki


def test_loki_uses_tsdb_v13_for_structured_metadata(settings):
    config = render_loki_config(settings)
    (schema,) = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["index"]["period"]) == ("tsdb", "v13", "24h")
    assert config["limits_config"]["allow_structured_metadata"] is True


def test_loki_retention_is_enforced_by_the_compactor(settings):
    config = render_loki_config(settings)
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    assert config["limits_config"]["retention_period"] == f"{settings.loki_retention.hours}h"
    assert config["analytics"] == {"reporting_enabled": False}
    assert config["ingester"]["wal"]["flush_on_shutdown"] is True


def test_traces_and_logs_wait_on_disk_while_a_store_is_down(settings):
    config = render_collector_config(settings, HOSTS)
    storage = config["extensions"][collector.QUEUE_STORAGE]
    assert storage["directory"] == collector.QUEUE_DIR
    assert collector.QUEUE_STORAGE in config["service"]["extensions"]
    for name in ("otlp_grpc/tempo", "otlp_http/loki"):
        exporter = config["exporters"][name]
        assert exporter["sending_queue"]["enabled"] and exporter["sending_queue"]["storage"] == collector.QUEUE_STORAGE, name
        # 0 means "never give up on a retryable error" to the collector's backoff.
        assert exporter["retry_on_failure"]["max_elapsed_time"] == "0s", name
