"""One app's metrics through two ingest collectors (the load balancer spreads its exports over them)
reach Prometheus under identical labels from two writers. When one collector is late with a write
it already acknowledged, its sample is older than what the other wrote since: Prometheus must keep
it (its out-of-order window) instead of rejecting the request, which the collector would drop as a
permanent error. Real collectors and Prometheus, as the stack renders them."""

from __future__ import annotations

import signal
import threading
import time

import httpx
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.conftest import report
from tests.plans import collector_config, prometheus_config
from tests.processes import Collector, Prometheus, poll
from tests.test_settings import settings_for

EXPORTS = 12
STALLED_EXPORT = 5
STALL_SECONDS = 2.5
START_NS = time.time_ns()


def export(value: float, at_ns: int) -> bytes:
    """A cumulative counter as an SDK exports it: the same series, a newer point each time."""
    point = metrics_pb2.NumberDataPoint(start_time_unix_nano=START_NS, time_unix_nano=at_ns, as_double=value)
    total = metrics_pb2.Sum(data_points=[point], aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True)
    metric = metrics_pb2.Metric(name="late.writes.probe", unit="1", sum=total)
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="late-writes"))])
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[metrics_pb2.ResourceMetrics(resource=resource, scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metric])])]
    ).SerializeToString()


def test_a_write_that_comes_late_from_one_of_two_collectors_is_kept(otelcol, prometheus_bin, tmp_path):
    settings = settings_for("dev")
    # As late as a collector may still send it: its remote-write retries stop after the same time.
    retries = collector_config(settings)["exporters"]["prometheus_remote_write"]["retry_on_failure"]
    assert prometheus_config(settings)["storage"]["tsdb"]["out_of_order_time_window"] == retries["max_elapsed_time"]
    collectors = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        collectors.append(Collector(otelcol, settings, tmp_path / name, tempo="127.0.0.1:9", loki="http://127.0.0.1:9/otlp",
                                    prometheus="http://127.0.0.1:9/api/v1/write"))
    prometheus = Prometheus(prometheus_bin, settings, tmp_path, collector_metrics=f"127.0.0.1:{collectors[0].metrics}")
    for collector in collectors:
        collector.write_metrics_to(prometheus.remote_write_url)
    started: list = []
    try:
        for process in (prometheus, *collectors):
            process.start()
            started.append(process)
        for number in range(EXPORTS):
            # Round robin, one export a second, as a load balancer spreads one app's exports.
            collector = collectors[number % 2]
            response = httpx.post(f"http://127.0.0.1:{collector.otlp_http}/v1/metrics", content=export(float(number), time.time_ns()),
                                  headers={"Content-Type": "application/x-protobuf"}, timeout=10)
            assert response.status_code == 200, response.text
            if number == STALLED_EXPORT:
                # Acknowledged, not yet written (the batch waits 200 ms): the collector stalls while
                # the other one writes the next, newer point first.
                collector.process.send_signal(signal.SIGSTOP)
                threading.Timer(STALL_SECONDS, collector.process.send_signal, (signal.SIGCONT,)).start()
            time.sleep(1)

        def stored() -> float:
            result = prometheus.query('count_over_time(late_writes_probe_total{service_name="late-writes"}[10m])')
            return float(result[0]["value"][1]) if result else 0.0

        poll(lambda: stored() >= EXPORTS, 30)
        rejected = prometheus.query("prometheus_tsdb_out_of_order_samples_total")
        failures = [c.scrape().get("otelcol_exporter_send_failed_metric_points_total", 0) for c in collectors]
        report(f"late writes: {int(stored())} of {EXPORTS} points stored, one written {STALL_SECONDS} s late; "
               f"out-of-order rejections {[r['value'][1] for r in rejected]}; points the collectors failed to send {failures}")
        assert stored() == EXPORTS
        assert failures == [0, 0]
    finally:
        for process in reversed(started):
            process.stop()
