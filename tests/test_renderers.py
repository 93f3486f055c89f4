"""The pure config renderers: shape and meaning, for every committed stack."""

from __future__ import annotations

import re

import pytest

from components.plan import plan_stack
from components.services import collector, collector_sampling, grafana, loki, prometheus, tempo
from components.services.loki import render_loki_config
from components.services.prometheus import prometheus_args
from components.services.tempo import render_tempo_config
from components.stackconfig import stack_names
from tests.plans import collector_config, plan_with_tier, prometheus_config
from tests.test_settings import settings_for

PORTS_BY_SERVICE = {
    tempo.NAME: {tempo.OTLP_GRPC.container_port, tempo.HTTP.container_port},
    loki.NAME: {loki.HTTP.container_port},
    prometheus.NAME: {prometheus.HTTP.container_port},
    collector.NAME: {collector.METRICS.container_port},
    grafana.NAME: {grafana.HTTP.container_port},
}


@pytest.fixture(params=stack_names())
def settings(request):
    return settings_for(request.param)


# ---- collector


PIPELINES = {
    collector.ALL: {"traces", "traces/sampling", "metrics/span_metrics", "metrics/service_graph", "metrics", "logs"},
    collector.INGEST: {"traces", "metrics", "logs"},
    collector.SAMPLER: {"traces", "traces/sampling", "metrics/span_metrics", "metrics/service_graph"},
}


def render_tier(settings, tier: str) -> dict:
    return collector_config(settings, tier)


def services_by_host(settings, tier: str = collector.ALL) -> dict[str, str]:
    """Internal host -> service, as the stack's plan (scaled out for a tier of that shape) names them."""
    return {host: service for service, host in plan_with_tier(plan_stack(settings), tier).hosts.items()}


@pytest.mark.parametrize("tier", collector.TIERS)
def test_every_collector_pipeline_starts_with_memory_limiter_but_sampling_and_batches(settings, tier):
    config = render_tier(settings, tier)
    pipelines = config["service"]["pipelines"]
    browser = {"traces/browser", "logs/browser"} if settings.otlp_require_token and tier != collector.SAMPLER else set()
    assert set(pipelines) == PIPELINES[tier] | browser
    for name, pipeline in pipelines.items():
        if name == "traces/sampling":
            # Behind the connectors, where a refusal would make the sender count its spans twice:
            # the traces limiter in front of the connectors guards it.
            assert not any(p.startswith("memory_limiter") for p in pipeline["processors"])
            continue
        # Where tail sampling holds traces, spans meet the stricter limiter that protects it.
        traces_first = collector_sampling.TRACES_MEMORY_LIMITER if name == "traces" and tier != collector.INGEST else "memory_limiter"
        assert pipeline["processors"][0] == ("memory_limiter/browser" if name in browser else traces_first)
        for exporter in pipeline["exporters"]:
            if exporter in config.get("connectors", {}):
                # Handed on to another pipeline, which batches.
                continue
            # Either the exporter batches behind its persistent queue, or the batch processor does.
            batched_by_exporter = "batch" in config["exporters"][exporter].get("sending_queue", {})
            assert batched_by_exporter != ("batch" in pipeline["processors"]), name
            if not batched_by_exporter:
                assert pipeline["processors"][-1] == "batch", name


@pytest.mark.parametrize("tier", collector.TIERS)
def test_collector_components_are_all_defined_and_all_used(settings, tier):
    config = render_tier(settings, tier)
    pipelines = config["service"]["pipelines"].values()
    connectors = set(config.get("connectors", {}))
    for kind in ("receivers", "processors", "exporters"):
        used = {name for p in pipelines for name in p[kind]} - connectors
        assert used == set(config[kind]), kind
    for connector in connectors:
        # A connector is the exporter of one pipeline and the receiver of another.
        assert any(connector in p["exporters"] for p in pipelines), connector
        assert any(connector in p["receivers"] for p in pipelines), connector
    assert config["service"]["extensions"] == list(config["extensions"])


def _endpoint(exporter: dict) -> str:
    if "resolver" in exporter:
        dns = exporter["resolver"]["dns"]
        return f"{dns['hostname']}:{dns['port']}"
    return exporter.get("endpoint") or exporter["http"]["endpoint"]


@pytest.mark.parametrize("tier", collector.TIERS)
def test_every_collector_exporter_points_at_a_service_that_exists(settings, tier):
    exporters = render_tier(settings, tier)["exporters"]
    assert exporters
    ports = {**PORTS_BY_SERVICE, collector.SAMPLER_NAME: {collector.OTLP_GRPC.container_port}}
    services = services_by_host(settings, tier)
    for name, exporter in exporters.items():
        match = re.match(r"^(?:https?://)?([a-z0-9.-]+):(\d+)(/.*)?$", _endpoint(exporter))
        assert match, name
        service, port = services.get(match.group(1)), int(match.group(2))
        assert service in ports and port in ports[service], f"{name} -> {match.group(1)}:{port}"
    if "otlp_http/loki" in exporters:
        assert exporters["otlp_http/loki"]["endpoint"].endswith("/otlp")
    for name in collector.METRICS_WRITERS:
        if name in exporters:
            assert exporters[name]["http"]["endpoint"].endswith("/api/v1/write")


def test_one_collector_makes_span_metrics_and_the_service_graph_from_every_span_before_sampling(settings):
    pipelines = render_tier(settings, collector.ALL)["service"]["pipelines"]
    assert "tail_sampling" not in pipelines["traces"]["processors"]
    assert set(pipelines["traces"]["exporters"]) == {collector.SPAN_METRICS, collector.SERVICE_GRAPH, collector.TO_SAMPLING}
    # Nothing after the connectors refuses (a retry would count the spans twice).
    assert pipelines["traces/sampling"]["processors"] == ["tail_sampling"]
    assert pipelines["traces/sampling"]["exporters"] == ["otlp_grpc/tempo"]
    # Spans are refused before the connectors count them, at a lower heap than metrics and logs.
    processors = render_tier(settings, collector.ALL)["processors"]

    def soft_limit(name: str) -> int:
        return processors[name]["limit_percentage"] - processors[name]["spike_limit_percentage"]

    assert soft_limit(collector_sampling.TRACES_MEMORY_LIMITER) < soft_limit("memory_limiter")
    assert "probabilistic_sampler" not in render_tier(settings, collector.ALL)["processors"]


def test_tail_sampling_keeps_errors_slow_traces_and_a_share_of_the_rest_with_bounded_memory(settings):
    sampling = render_tier(settings, collector.ALL)["processors"]["tail_sampling"]
    policies = {p["name"]: p for p in sampling["policies"]}
    assert policies["errors"]["status_code"] == {"status_codes": ["ERROR"]}
    assert policies["slow"]["latency"] == {"threshold_ms": settings.trace_slow_threshold_ms}
    assert policies["share-of-the-rest"]["probabilistic"] == {"sampling_percentage": settings.trace_sampling_percentage}
    assert sampling["num_traces"] == collector_sampling.pending_traces(settings.memory_mb("collector")) and sampling["block_on_overflow"] is True
    # Held traces take at most a quarter of the container at 16 KiB each.
    assert sampling["num_traces"] * 16 * 1024 <= settings.memory_mb("collector") * 2**20 // 4
    assert sampling["decision_wait"] == f"{collector_sampling.DECISION_WAIT_SECONDS}s"
    # The slowest trace kept as slow still ends (plus the SDK's export delay) within the wait.
    assert settings.trace_slow_threshold_ms + 5000 <= collector_sampling.DECISION_WAIT_SECONDS * 1000


def test_ingest_tier_routes_spans_by_trace_id_to_the_sampler_tier_through_its_persistent_queue(settings):
    config = render_tier(settings, collector.INGEST)
    balancer = config["exporters"][collector.LOAD_BALANCING]
    assert balancer["routing_key"] == "traceID"
    sampler_host = plan_with_tier(plan_stack(settings), collector.INGEST).hosts[collector.SAMPLER_NAME]
    assert balancer["resolver"] == {"dns": {"hostname": sampler_host, "port": "4317", "interval": "5s"}}
    assert balancer["sending_queue"]["storage"] == collector.QUEUE_STORAGE
    # Failures reach the persistent queue: the per-sampler exporter holds nothing in memory.
    assert balancer["protocol"]["otlp"]["sending_queue"] == {"enabled": False}
    assert config["service"]["pipelines"]["traces"]["exporters"] == [collector.LOAD_BALANCING]
    # No span connector and no sampling here (a browser route's forward connector, on prod, is not one).
    assert not set(config.get("connectors", {})) & {collector.SPAN_METRICS, collector.SERVICE_GRAPH, collector.TO_SAMPLING}
    assert "tail_sampling" not in config["processors"]


def test_sampler_tier_takes_only_grpc_and_no_token_on_the_hop_from_the_ingest_tier(settings):
    """bearertokenauth's gRPC credentials demand transport security, so on the plaintext hop the
    ingest tier's exporter would never start: the token stays at the entry point."""
    config = render_tier(settings, collector.SAMPLER)
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc"}
    assert "auth" not in config["receivers"]["otlp"]["protocols"]["grpc"]
    assert "bearertokenauth" not in config["extensions"]
    balancer = render_tier(settings, collector.INGEST)["exporters"][collector.LOAD_BALANCING]["protocol"]["otlp"]
    assert balancer["tls"] == {"insecure": True} and "auth" not in balancer
    ingest_grpc = render_tier(settings, collector.INGEST)["receivers"]["otlp"]["protocols"]["grpc"]
    assert ("auth" in ingest_grpc) == settings.otlp_require_token
    assert config["exporters"]["otlp_grpc/tempo"]["sending_queue"]["storage"] == collector.QUEUE_STORAGE
    assert set(config["connectors"]) == {collector.SPAN_METRICS, collector.SERVICE_GRAPH, collector.TO_SAMPLING}


def test_the_service_graph_series_carry_the_collector_instance(settings):
    config = render_tier(settings, collector.ALL)
    processors = config["service"]["pipelines"]["metrics/service_graph"]["processors"]
    assert processors[1:3] == [collector.INSTANCE_DETECTION, collector.INSTANCE_LABEL]
    detection = config["processors"][collector.INSTANCE_DETECTION]
    assert detection["detectors"] == ["env", "system"] and detection["system"]["hostname_sources"] == ["os"]
    copy, delete = config["processors"][collector.INSTANCE_LABEL]["attributes"]
    assert copy == {"key": collector.INSTANCE_ATTRIBUTE, "from_attribute": "host.name", "action": "upsert"}
    assert delete == {"key": "host.name", "action": "delete"}


def test_series_made_from_spans_are_written_without_the_apps_target_info(settings):
    config = render_tier(settings, collector.SAMPLER)
    assert config["exporters"][collector.SPAN_SERIES_WRITER]["target_info"] == {"enabled": False}
    for name in ("metrics/span_metrics", "metrics/service_graph"):
        assert config["service"]["pipelines"][name]["exporters"] == [collector.SPAN_SERIES_WRITER]


def test_a_tier_the_stack_does_not_run_is_refused(settings):
    with pytest.raises(StopIteration):
        collector.render_collector_config(plan_stack(settings), "both")
    if plan_stack(settings).collector.sampler is None:
        with pytest.raises(StopIteration):
            collector.render_collector_config(plan_stack(settings), collector.INGEST)


def test_collector_listens_on_all_interfaces_inside_the_container(settings):
    config = collector_config(settings)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert (reader["host"], reader["port"]) == ("0.0.0.0", 8888)


def test_collector_takes_cors_and_resource_attributes_from_settings(settings):
    config = collector_config(settings)
    assert config["receivers"]["otlp"]["protocols"]["http"]["cors"]["allowed_origins"] == list(settings.cors_allowed_origins)
    attributes = {a["key"]: a for a in config["processors"]["resource"]["attributes"]}
    assert attributes["service.namespace"]["value"] == settings.service_namespace
    assert attributes["deployment.environment.name"]["value"] == settings.environment
    assert {a["action"] for a in attributes.values()} == {"insert"}


def _filter_regexes(settings) -> dict[str, re.Pattern[str]]:
    conditions = collector_config(settings)["processors"]["filter/health"]["traces"]["span"]
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
    actions = collector_config(settings)["processors"]["attributes/scrub"]["actions"]
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
    pipelines = collector_config(settings)["service"]["pipelines"]
    assert "attributes/scrub" in pipelines["traces"]["processors"]
    assert "attributes/scrub" in pipelines["logs"]["processors"]
    assert "filter/health" in pipelines["traces"]["processors"]
    # Health checks are dropped before the connectors and the sampler ever see them.
    assert pipelines["traces"]["processors"][:2] == [collector_sampling.TRACES_MEMORY_LIMITER, "filter/health"]


# ---- prometheus


def test_prometheus_scrapes_every_component_itself_and_keeps_retention(settings):
    config = prometheus_config(settings)

    def target(job: dict) -> str:
        if "dns_sd_configs" in job:
            (discovery,) = job["dns_sd_configs"]
            return f"{discovery['names'][0]}:{discovery['port']}"
        return job["static_configs"][0]["targets"][0]

    jobs = {job["job_name"]: target(job) for job in config["scrape_configs"]}
    assert set(jobs) == {"otel-collector", "prometheus", "tempo", "loki", "grafana"} | (
        {"cadvisor"} if settings.container_metrics.enabled else set()
    )
    services = services_by_host(settings)
    for job, target in jobs.items():
        host, port = target.split(":")
        if job == "prometheus":
            assert host == "localhost"
        elif job != "cadvisor":
            assert int(port) in PORTS_BY_SERVICE[services[host]], job
    assert config["storage"]["tsdb"]["retention"]["time"] == f"{settings.prometheus_retention.hours}h"


def test_a_scaled_out_collector_is_scraped_task_by_task():
    """prod runs up to collectorMaxTasks collectors behind one name; dev runs one."""
    def collector_job(stack: str, **overrides: str) -> dict:
        config = prometheus_config(settings_for(stack, **overrides))
        return next(j for j in config["scrape_configs"] if j["job_name"] == "otel-collector")

    scaled = collector_job("prod", collectorMaxTasks="4")
    assert "static_configs" not in scaled
    host = "collector.observability-prod.internal"
    assert scaled["dns_sd_configs"] == [{"names": [host], "type": "A", "port": collector.METRICS.container_port, "refresh_interval": "30s"}]
    # Pulumi.prod.yaml runs one collector task (collectorMaxTasks 1).
    assert collector_job("prod")["static_configs"] == [{"targets": [f"{host}:8888"]}]
    assert collector_job("dev")["static_configs"] == [{"targets": ["collector:8888"]}]


def test_prometheus_receives_remote_write_and_stores_exemplars():
    args = prometheus_args()
    assert "--web.enable-remote-write-receiver" in args
    # The collector remote-writes; nothing sends OTLP, so that receiver stays off (it is off by default).
    assert not [a for a in args if "otlp" in a]
    assert "--enable-feature=exemplar-storage" in args
    # Overriding the image's command drops its defaults: both must be given again.
    assert f"--config.file={prometheus.CONFIG_PATH}" in args
    assert f"--storage.tsdb.path={prometheus.DATA_DIR}" in args


# ---- tempo


def test_tempo_receives_otlp_grpc_only_on_all_interfaces(settings):
    # The collector sends spans over gRPC: no OTLP/HTTP receiver for anything else to write to.
    protocols = render_tempo_config(settings)["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols == {"grpc": {"endpoint": "0.0.0.0:4317"}}


def test_tempo_uses_the_tempo3_layout(settings):
    config = render_tempo_config(settings)
    # Tempo 3 refuses to start on 2.x blocks and on the legacy flat overrides.
    assert not {"ingester", "compactor", "query_frontend_legacy"} & set(config)
    assert "metrics_generator_processors" not in config["overrides"]
    assert set(config["overrides"]["defaults"]) == {"compaction"}
    assert config["usage_report"] == {"reporting_enabled": False}


def test_tempo_runs_no_metrics_generator(settings):
    """Span metrics and the service graph come from the collector, made from every span."""
    assert "metrics_generator" not in render_tempo_config(settings)


def test_tempo_retention_is_the_same_at_every_layer(settings):
    config = render_tempo_config(settings)
    expected = f"{settings.tempo_retention.hours}h"
    assert config["backend_worker"]["compaction"]["block_retention"] == expected
    assert config["backend_scheduler"]["provider"]["compaction"]["compaction"]["block_retention"] == expected
    assert config["overrides"]["defaults"]["compaction"]["block_retention"] == expected


def test_tempo_keeps_all_data_in_its_volume(settings):
    config = render_tempo_config(settings)
    paths = [config["storage"]["trace"]["wal"]["path"], config["storage"]["trace"]["local"]["path"],
             config["live_store"]["wal"]["path"]]
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
    config = collector_config(settings)
    storage = config["extensions"][collector.QUEUE_STORAGE]
    assert storage["directory"] == collector.QUEUE_DIR
    assert collector.QUEUE_STORAGE in config["service"]["extensions"]
    for name in ("otlp_grpc/tempo", "otlp_http/loki"):
        exporter = config["exporters"][name]
        assert exporter["sending_queue"]["enabled"] and exporter["sending_queue"]["storage"] == collector.QUEUE_STORAGE, name
        # 0 means "never give up on a retryable error" to the collector's backoff.
        assert exporter["retry_on_failure"]["max_elapsed_time"] == "0s", name
