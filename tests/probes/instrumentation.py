"""Exercise the OpenTelemetry instrumentations the OpenDeck backend uses; print every metric they
emit as JSON (name, kind, unit, attribute keys). OTEL_SEMCONV_STABILITY_OPT_IN is read at import,
so each convention needs its own process."""

import http.server
import json
import sys
import threading
from pathlib import Path

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader, Sum

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

import httpx  # noqa: E402
import sqlalchemy  # noqa: E402
from celery import Celery  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from opentelemetry.instrumentation.celery import CeleryInstrumentor  # noqa: E402
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor  # noqa: E402
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor  # noqa: E402
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor  # noqa: E402
from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor  # noqa: E402

# The sample app's own choice of process metrics, so the probe emits exactly what the app does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "opendeck-app"))
from telemetry import PROCESS_METRICS  # noqa: E402

app = FastAPI()


@app.get("/decks/{deck_id}")
def deck(deck_id: int) -> dict:
    return {"id": deck_id}


FastAPIInstrumentor.instrument_app(app)
HTTPXClientInstrumentor().instrument()
SQLAlchemyInstrumentor().instrument()
CeleryInstrumentor().instrument()
SystemMetricsInstrumentor(config=PROCESS_METRICS).instrument()

TestClient(app).get("/decks/1")

engine = sqlalchemy.create_engine("sqlite://")
with engine.connect() as connection:
    connection.execute(sqlalchemy.text("select 1"))


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
httpx.get(f"http://127.0.0.1:{server.server_port}/")
server.shutdown()

worker = Celery("probe", broker="memory://", backend="cache+memory://")
worker.conf.task_always_eager = True


@worker.task
def add(x, y):
    return x + y


add.delay(1, 2)

emitted = []
for resource_metrics in reader.get_metrics_data().resource_metrics:
    for scope_metrics in resource_metrics.scope_metrics:
        for metric in scope_metrics.metrics:
            data = metric.data
            if isinstance(data, Sum):
                kind = "counter" if data.is_monotonic else "updowncounter"
            elif isinstance(data, Histogram):
                kind = "histogram"
            else:
                kind = "gauge"
            keys = sorted({k for point in data.data_points for k in point.attributes})
            emitted.append({"name": metric.name, "kind": kind, "unit": metric.unit, "attributes": keys})
print(json.dumps(emitted))
