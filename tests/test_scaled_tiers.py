"""The collector tiers of a scaled prod stack (collectorMaxTasks above 1) as rendered for it, the
OTLP token included: two ingest collectors behind the load balancer route spans by trace id to a
sampler, which keeps what tail sampling keeps and sends it to Tempo (a stand-in). Changed only in
hosts and ports, as everywhere in tests/processes.py."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from components.services.collector_tiers import INGEST, SAMPLER
from tests.conftest import report
from tests.processes import Collector, poll
from tests.stand_ins import LogStore, TraceStore
from tests.test_faults import spans_request
from tests.test_settings import settings_for

TOKEN = "scaled-tier-token-for-tests"
REQUESTS, SPANS = 20, 25


def test_spans_sent_with_the_token_reach_the_sampler_and_tempo_through_both_ingest_collectors(otelcol, tmp_path):
    settings = settings_for("prod", collectorMaxTasks="4")
    assert settings.otlp_require_token
    tempo, loki = TraceStore().start(), LogStore()
    (tmp_path / "sampler").mkdir()
    # The sampler keeps every span here, so every span sent can be counted at Tempo.
    sampler = Collector(otelcol, settings, tmp_path / "sampler", tempo=f"127.0.0.1:{tempo.port}", loki="http://127.0.0.1:9/otlp",
                        prometheus="http://127.0.0.1:9/api/v1/write", token=TOKEN, tier=SAMPLER)
    for policy in sampler.config["processors"]["tail_sampling"]["policies"]:
        if policy["type"] == "probabilistic":
            policy["probabilistic"]["sampling_percentage"] = 100
    ingest = []
    for index in range(2):
        (tmp_path / f"ingest-{index}").mkdir()
        ingest.append(Collector(otelcol, settings, tmp_path / f"ingest-{index}", tempo="127.0.0.1:9",
                                loki=f"http://127.0.0.1:{loki.port}/otlp", prometheus="http://127.0.0.1:9/api/v1/write",
                                token=TOKEN, tier=INGEST, samplers=(f"127.0.0.1:{sampler.otlp_grpc}",)))
    started: list[Collector] = []
    try:
        for process in (sampler, *ingest):
            process.start()
            started.append(process)
        sent = 0
        for index, collector in enumerate(ingest):
            with grpc.insecure_channel(f"127.0.0.1:{collector.otlp_grpc}") as channel:
                stub = trace_service_pb2_grpc.TraceServiceStub(channel)
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Export(spans_request(1, 10), timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, f"ingest-{index} takes spans without the token"
                for _ in range(REQUESTS):
                    stub.Export(spans_request(SPANS, 100), timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))
                    sent += SPANS
        assert poll(lambda: sampler.scrape().get("otelcol_receiver_accepted_spans_total", 0) >= sent, 60), (
            f"the sampler took {sampler.scrape().get('otelcol_receiver_accepted_spans_total', 0)} of {sent} spans"
        )
        assert poll(lambda: len(tempo.received()) >= sent, 60), f"Tempo received {len(tempo.received())} of {sent} spans"
        report(f"scaled prod tiers with the token: {sent} spans sent through two ingest collectors, {len(tempo.received())} at Tempo")
    finally:
        for process in reversed(started):
            process.stop()
        tempo.stop()
        loki.stop()
