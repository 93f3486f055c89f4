"""A real browser (Debian's chromium, driven by playwright-core) runs the sample web frontend against
the real collector and the sample backend, with the dev config (OTLP/HTTP port) and with the prod
config (the browser route, no token; the backend sends with the token): the page's spans arrive, a
page on an origin not in corsAllowedOrigins is refused at the preflight and none of its spans
arrive, and one trace runs from the click through the browser's fetch and the backend's server span
to the database query."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from components.grafana.content import PROMETHEUS_UID
from components.grafana.dashboards import load_folders, promql_queries
from components.services.collector import BROWSER_TRACES_PATH
from components.settings import Settings
from tests.conftest import report
from tests.processes import ROOT, Collector, Prometheus, SampleApp, poll
from tests.stand_ins import LogStore, Span, TraceStore, send_ok
from tests.test_settings import settings_for

FRONTEND = ROOT / "examples" / "opendeck-web"
DRIVER = ROOT / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
STATUS_ERROR = 2
SERVER_TOKEN = "server-sdk-token-for-this-test"


def _needs(path: Path, how: str) -> None:
    assert path.exists(), f"{path} is missing: {how} (.ci/run and scripts/test.sh do)"


@dataclass
class StaticSite:
    """The built frontend on one loopback origin. Its config.js (where the page sends telemetry and
    calls its API) is filled in once the collector and the backend run."""

    origin: str
    config: dict
    server: http.server.ThreadingHTTPServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_frontend(directory: Path, host: str) -> StaticSite:
    config: dict = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/config.js":
                super().do_GET()
                return
            send_ok(self, "text/javascript", f"window.opendeckConfig = {json.dumps(config)};\n".encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return StaticSite(origin=f"http://{host}:{server.server_address[1]}", config=config, server=server)


@pytest.fixture(scope="module")
def bundle() -> Path:
    _needs(CHROMIUM, "apt-get install chromium")
    _needs(FRONTEND / "node_modules", "run `npm ci` in examples/opendeck-web")
    _needs(DRIVER / "node_modules", "run `npm ci` in tests/browser")
    subprocess.run(["npm", "run", "--silent", "build"], cwd=FRONTEND, check=True, capture_output=True, timeout=120)
    return FRONTEND / "dist"


@dataclass
class BrowserRun:
    seen: dict
    settings: Settings
    traces_url: str
    spans: list[Span]
    refused_origin: str
    # The real Prometheus the collector writes its metrics to, span metrics included.
    prometheus: Prometheus


def browser_spans(spans: list[Span], service: str = "opendeck-web") -> list[Span]:
    return [s for s in spans if s.resource.get("service.name") == service]


def database_spans(spans: list[Span]) -> list[Span]:
    return [s for s in spans if "db.system" in s.attributes or "db.system.name" in s.attributes]


def url_of(span: Span) -> str:
    return str(span.attributes.get("url.full") or span.attributes.get("http.url") or "")


@pytest.fixture(scope="module", params=["dev", "prod"])
def run(request, bundle, otelcol, prometheus_bin, tmp_path_factory) -> Iterator[BrowserRun]:
    """One browser session per stack, shared by the tests below. On prod the page uses the browser
    route without a token; the backend uses the server route with one. The collector writes its
    metrics, the span metrics it makes from the browser's spans included, to a real Prometheus."""
    stack = request.param
    workdir = tmp_path_factory.mktemp("browser")
    tempo, loki = TraceStore().start(), LogStore()
    # Two loopback origins: the page the stack lists in corsAllowedOrigins, and one it does not.
    allowed, refused = serve_frontend(bundle, "localhost"), serve_frontend(bundle, "127.0.0.1")
    overrides = {"corsAllowedOrigins": json.dumps([allowed.origin])}
    if stack == "prod":
        overrides["traceSamplingPercentage"] = "100"  # about the route, not prod's sampling
    settings = settings_for(stack, **overrides)
    collector = Collector(
        otelcol, settings, workdir, tempo=f"127.0.0.1:{tempo.port}", loki=f"http://127.0.0.1:{loki.port}/otlp",
        prometheus="http://placeholder", token=SERVER_TOKEN,
    )
    prometheus = Prometheus(prometheus_bin, settings, workdir, collector_metrics=f"127.0.0.1:{collector.metrics}").start()
    collector.write_metrics_to(prometheus.remote_write_url)
    collector.start()
    app_env = {"OPENDECK_WEB_ORIGINS": allowed.origin}
    if settings.otlp_require_token:
        app_env["OTEL_EXPORTER_OTLP_HEADERS"] = f"authorization=Bearer {SERVER_TOKEN}"
        traces_url = f"http://127.0.0.1:{collector.otlp_browser}{BROWSER_TRACES_PATH}"
    else:
        traces_url = f"http://127.0.0.1:{collector.otlp_http}/v1/traces"
    app = SampleApp(workdir, collector.otlp_grpc, app_env)
    allowed.config.update(serviceName="opendeck-web", tracesUrl=traces_url, apiUrl=app.url)
    refused.config.update(serviceName="opendeck-web-elsewhere", tracesUrl=traces_url, apiUrl=app.url)
    try:
        app.start()
        driven = subprocess.run(
            ["node", "drive.mjs", f"{allowed.origin}/index.html", f"{refused.origin}/index.html", traces_url],
            cwd=DRIVER, capture_output=True, text=True, timeout=120,
        )
        assert driven.returncode == 0, driven.stderr[-4000:]
        seen = json.loads(driven.stdout.strip().splitlines()[-1])
        # The refused page ran first; the allowed page's trace, down to the database query, arrives after.
        poll(lambda: database_spans(tempo.received()) and _click_traces_complete(tempo.received()), seconds=30, interval=0.2)
        yield BrowserRun(
            seen=seen, settings=settings, traces_url=traces_url, spans=tempo.received(), refused_origin=refused.origin, prometheus=prometheus
        )
    finally:
        for stop in (refused.stop, allowed.stop, app.stop, collector.stop, prometheus.stop, tempo.stop, loki.stop):
            stop()


def _click_traces_complete(spans: list[Span]) -> bool:
    """Both API calls' server spans and their database spans are in, and the error span."""
    traces = {s.trace_id for s in browser_spans(spans) if s.kind == SPAN_KIND_CLIENT}
    with_database = {s.trace_id for s in database_spans(spans)}
    errors = [s for s in browser_spans(spans) if s.status_code == STATUS_ERROR]
    return len(traces) >= 2 and traces <= with_database and bool(errors)


def test_the_page_ran_in_the_browser(run):
    allowed = run.seen["allowed"]
    assert allowed["steps"] == {"fetch": "decks loaded (200)", "xhr": "deck created (201)", "error": "breaking"}
    assert any("fails here on purpose" in error for error in allowed["errors"]), allowed
    assert allowed["exports"] and {e["status"] for e in allowed["exports"]} == {200}, allowed
    sent = sum(e["bytes"] for e in allowed["exports"])
    report(f"browser ({run.settings.stack}): {len(browser_spans(run.spans))} spans in {len(allowed['exports'])} exports, {sent} bytes of OTLP/JSON"
           f" ({sent // max(1, len(browser_spans(run.spans)))} per span)")
    assert allowed["failed"] == []


def test_document_load_interactions_fetch_xhr_and_errors_reach_the_collector(run):
    spans = browser_spans(run.spans)
    names = {s.name for s in spans}
    assert {"documentLoad", "documentFetch", "click", "GET", "POST", "uncaught error"} <= names, names
    (error,) = [s for s in spans if s.name == "uncaught error"]
    assert error.status_code == STATUS_ERROR and "exception" in error.events
    # The collector's processors ran: the stack's namespace and environment were added.
    assert {s.resource.get("deployment.environment.name") for s in spans} == {run.settings.environment}


def test_a_page_on_an_origin_not_listed_is_refused_at_the_preflight(run):
    refused = run.seen["refused"]
    assert refused["failed"] and refused["exports"] == [], refused
    preflight = httpx.options(
        run.traces_url,
        headers={"Origin": run.refused_origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    # Its spans were exported before the allowed page's, which all arrived: none of its own did.
    assert browser_spans(run.spans, "opendeck-web-elsewhere") == []


@pytest.mark.parametrize(("method", "kind"), [("GET", "fetch"), ("POST", "XHR")])
def test_one_trace_runs_from_the_click_to_the_database_query(run, method, kind):
    by_id = {s.span_id: s for s in run.spans}
    (call,) = [s for s in browser_spans(run.spans) if s.kind == SPAN_KIND_CLIENT and s.name == method and "/api/decks" in url_of(s)]
    click = by_id[call.parent_span_id]
    assert click.name == "click" and click.resource["service.name"] == "opendeck-web", f"{kind} span's parent: {click}"
    (server,) = [s for s in run.spans if s.kind == SPAN_KIND_SERVER and s.parent_span_id == call.span_id]
    assert server.trace_id == call.trace_id and server.resource["service.name"] == "opendeck-backend"
    queries = [s for s in database_spans(run.spans) if s.trace_id == call.trace_id]
    assert queries, f"no database span in the {kind} trace"
    for query in queries:
        ancestor = query
        while ancestor.parent_span_id and ancestor.span_id != server.span_id:
            ancestor = by_id[ancestor.parent_span_id]
        assert ancestor.span_id == server.span_id, f"{query.name} does not descend from the backend's server span"


def test_every_query_of_the_frontend_dashboard_returns_data_from_the_browsers_spans(run):
    """The OpenDeck Frontend dashboard reads the span metrics the collector makes from the real
    browser's spans (document loads, fetch and XHR calls, clicks, errors)."""
    (frontend,) = [d for folder in load_folders() for d in folder.dashboards if d.uid == "opendeck-frontend"]
    queries = [
        (title, expr.replace("$__rate_interval", "1m").replace("$frontend", "opendeck-web"))
        for title, expr in promql_queries(frontend.model, PROMETHEUS_UID)
    ]
    assert queries and not [e for _, e in queries if "$" in e], queries

    def without_data() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not run.prometheus.query(expr)]

    # The span-metrics connector writes on its flush interval; rates need two samples.
    poll(lambda: not without_data(), 90, interval=2)
    assert without_data() == []
    report(f"browser ({run.settings.stack}): all {len(queries)} OpenDeck Frontend dashboard queries return data from the real browser's spans")
