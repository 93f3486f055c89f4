"""A small OpenDeck backend that emits what the real one does: FastAPI requests, SQLAlchemy queries,
Celery tasks, outgoing HTTPX calls, logs and the plan's custom metrics, all over OTLP.

Run it against the dev stack (from the repository root, after scripts/test.sh or
`pip install -r examples/opendeck-app/requirements.txt -c constraints.txt`):

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 OTEL_SEMCONV_STABILITY_OPT_IN=http \
        python examples/opendeck-app/app.py --port 8000
    python examples/opendeck-app/traffic.py --url http://localhost:8000 --seconds 300
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import time

from telemetry import OpenDeckMetrics, setup_telemetry

setup_telemetry()

import httpx  # noqa: E402
import sqlalchemy  # noqa: E402
from celery import Celery  # noqa: E402
from fastapi import FastAPI, HTTPException, Request  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from sqlalchemy.pool import StaticPool  # noqa: E402

log = logging.getLogger("opendeck")
tracer = trace.get_tracer("opendeck")
opendeck_metrics = OpenDeckMetrics()

engine = sqlalchemy.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
with engine.begin() as db:
    db.execute(sqlalchemy.text("create table decks (id integer primary key, title text, topic text)"))

# The real backend uses Redis; eager mode runs tasks in-process with the same signals and spans.
worker = Celery("opendeck", broker="memory://", backend="cache+memory://")
worker.conf.task_always_eager = True

SUPPORTED_DOCUMENTS = ("pdf", "docx", "txt")


def query(sql: str, **params: object) -> list[sqlalchemy.Row]:
    started = time.perf_counter()
    with engine.begin() as db:
        result = db.execute(sqlalchemy.text(sql), params)
        rows = list(result) if result.returns_rows else []
    opendeck_metrics.db_queries.add(1)
    opendeck_metrics.db_query_duration.record((time.perf_counter() - started) * 1000)
    return rows


@worker.task(name="opendeck.process_document")
def process_document(file_type: str, pages: int) -> int:
    opendeck_metrics.celery_tasks_started.add(1, {"task_name": "process_document"})
    started = time.perf_counter()
    with tracer.start_as_current_span("process_document") as span:
        span.set_attribute("opendeck.document.file_type", file_type)
        try:
            if file_type not in SUPPORTED_DOCUMENTS:
                raise ValueError(f"unsupported file type {file_type!r}")
            time.sleep(0.01 * pages)
            cards = pages * 3
        except ValueError:
            opendeck_metrics.documents_failed.add(1, {"file_type": file_type, "error_type": "unsupported_type"})
            opendeck_metrics.celery_tasks_failed.add(1, {"task_name": "process_document"})
            log.exception("document processing failed")
            raise
    opendeck_metrics.documents_processed.add(1, {"file_type": file_type, "cards_generated": str(cards)})
    opendeck_metrics.document_processing_duration.record(time.perf_counter() - started, {"file_type": file_type, "cards_generated": str(cards)})
    opendeck_metrics.celery_tasks_completed.add(1, {"task_name": "process_document"})
    opendeck_metrics.cards_created.add(cards)
    log.info("document processed into %d cards", cards)
    return cards


app = FastAPI(title="OpenDeck sample backend")
# The web frontend's origins (comma-separated). Browsers send the W3C trace context headers only
# when the preflight allows them: that is what joins the backend's spans to the browser's trace.
app.add_middleware(
    CORSMiddleware,
    allow_origins=[o for o in os.environ.get("OPENDECK_WEB_ORIGINS", "http://localhost:4200").split(",") if o],
    allow_methods=["GET", "POST", "DELETE"],
    allow_headers=["content-type", "traceparent", "tracestate"],
)


class NewDeck(BaseModel):
    title: str
    topic: str = "general"


class Login(BaseModel):
    email: str


class Document(BaseModel):
    file_type: str
    pages: int = 3


@app.get("/health")
def health() -> dict:
    # Polled by load balancers every few seconds: the collector drops these spans.
    return {"status": "ok"}


@app.get("/api/topics")
def topics() -> list[str]:
    return ["languages", "science", "history"]


@app.get("/api/decks")
async def list_decks(request: Request) -> dict:
    # An outgoing call, as the backend makes to its own services.
    async with httpx.AsyncClient(base_url=str(request.base_url)) as client:
        known_topics = (await client.get("/api/topics")).json()
    rows = query("select id, title, topic from decks order by id")
    return {"decks": [dict(r._mapping) for r in rows], "topics": known_topics}


@app.post("/api/decks", status_code=201)
def create_deck(deck: NewDeck) -> dict:
    query("insert into decks (title, topic) values (:title, :topic)", title=deck.title, topic=deck.topic)
    opendeck_metrics.decks_created.add(1, {"topic": deck.topic})
    opendeck_metrics.deck_count.add(1)
    log.info("deck created", extra={"deck.topic": deck.topic})
    return {"title": deck.title, "topic": deck.topic}


@app.delete("/api/decks/{deck_id}", status_code=204)
def delete_deck(deck_id: int) -> None:
    if not query("select id from decks where id = :id", id=deck_id):
        raise HTTPException(status_code=404, detail="no such deck")
    query("delete from decks where id = :id", id=deck_id)
    opendeck_metrics.decks_deleted.add(1)
    opendeck_metrics.deck_count.add(-1)


@app.post("/api/auth/login")
def login(body: Login) -> dict:
    # Apps do put personal data on spans and logs; the collector deletes user.email before storage.
    trace.get_current_span().set_attribute("user.email", body.email)
    log.info("user logged in", extra={"user.email": body.email})
    opendeck_metrics.user_logins.add(1)
    opendeck_metrics.active_users.add(1)
    return {"token": "not-a-real-token"}


@app.post("/api/auth/register", status_code=201)
def register(body: Login) -> dict:
    opendeck_metrics.user_registrations.add(1)
    return {"email": body.email}


@app.post("/api/study-sessions")
def study(deck_id: int = 1, cards: int = 5) -> dict:
    duration = random.uniform(30, 600)
    for card in range(cards):
        opendeck_metrics.cards_studied.add(1, {"deck_id": str(deck_id), "card_id": str(card)})
    opendeck_metrics.study_sessions.add(1)
    opendeck_metrics.study_session_duration.record(duration, {"cards_studied": str(cards)})
    return {"deck_id": deck_id, "cards": cards}


@app.post("/api/documents", status_code=202)
def upload_document(document: Document) -> dict:
    opendeck_metrics.documents_uploaded.add(1, {"file_type": document.file_type, "size_mb": "1"})
    opendeck_metrics.celery_queue_length.add(1)
    try:
        result = process_document.delay(document.file_type, document.pages)
        cards = result.get(propagate=False)
    finally:
        opendeck_metrics.celery_queue_length.add(-1)
    if result.failed():
        raise HTTPException(status_code=422, detail=f"cannot process {document.file_type} documents")
    return {"cards": cards}


@app.get("/api/slow")
async def slow(ms: int = 500) -> dict:
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@app.get("/api/error")
def error() -> dict:
    raise RuntimeError("the sample app fails here on purpose")


@app.exception_handler(RuntimeError)
async def server_error(request: Request, exc: RuntimeError) -> JSONResponse:
    # Logged inside the request's span, so the error line in Loki links to its trace.
    log.error("request failed: %s", exc, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error"})


# Health spans are not excluded here on purpose: the collector drops them for every app.
FastAPIInstrumentor.instrument_app(app)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
