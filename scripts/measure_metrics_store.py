#!/usr/bin/env python3
"""Measure what a durable metrics store loses on a task replacement (benchmarks/metrics-store.md).

Real binaries on loopback only: moto's S3 server, Prometheus (agent or full), Thanos Receive, sidecar,
Store Gateway, Query and Compactor. A counter we serve is scraped every second; a proxy between the
agent and Receive decodes every remote-write request Receive answered 2xx, so "acknowledged" is
exact. After the stop, a fresh Receive on an empty disk plus a Store Gateway and Query on the same
bucket count what survived.

    measure_metrics_store.py --run a-term|a-kill|b [--seconds 240] [--out result.json]

Needs moto's server in the virtualenv, which the tests do not use yet:
.venv/bin/pip install 'moto[server]==5.2.5' (the version measured); thanos from scripts/build-thanos.sh.
"""

import argparse
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CACHE = os.environ.get("OBSERVABILITY_CACHE_DIR", os.path.expanduser("~/.cache/observability-stack"))
PROMETHEUS = f"{CACHE}/prometheus/3.14.0/prometheus"
THANOS = f"{CACHE}/thanos/v0.42.5/thanos"
SERIES = "probe_counter_total"
BLOCK_MINUTES = 2  # hidden --tsdb.{min,max}-block-duration; 2h in production
BLOCK = f"{BLOCK_MINUTES}m"
STOP_TIMEOUT = 30  # ECS stopTimeout default

# Nothing we start may look for real AWS: placeholder keys, no instance metadata, no proxies.
ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
ENV.update(AWS_ACCESS_KEY_ID="placeholder", AWS_SECRET_ACCESS_KEY="placeholder",
           AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", NO_PROXY="*")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_http(url, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            get(url, 2)
            return
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {seconds}s")


class Procs:
    """Child processes, logs in the work dir; stop() is the ECS stop: SIGTERM, wait, SIGKILL."""

    def __init__(self, work):
        self.work, self.procs = work, {}

    def start(self, name, argv):
        with open(f"{self.work}/{name}.log", "w") as log:  # the child keeps its own copy of the fd
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=ENV,
                                                cwd=self.work, preexec_fn=lambda: os.nice(19))
        return self.procs[name]

    def stop(self, name, kind="term", timeout=STOP_TIMEOUT):
        p = self.procs.pop(name)
        t0 = time.time()
        if kind == "term":
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
                return {"signal": "SIGTERM", "exit_seconds": round(time.time() - t0, 2), "rc": p.returncode}
            except subprocess.TimeoutExpired:
                pass
        p.kill()
        p.wait()
        return {"signal": "SIGKILL" if kind == "kill" else "SIGTERM then SIGKILL",
                "exit_seconds": round(time.time() - t0, 2), "rc": p.returncode}

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name, "kill")


# --- remote-write decoding: snappy block format and the protobuf wire format, just enough. ---

def uvarint(b, i):
    shift = result = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if c < 0x80:
            return result, i
        shift += 7


def snappy_decode(b):
    n, i = uvarint(b, 0)
    out = bytearray()
    while i < len(b):
        tag = b[i]
        i += 1
        kind, ln = tag & 3, tag >> 2
        if kind == 0:  # literal
            if ln >= 60:
                nb = ln - 59
                ln = int.from_bytes(b[i:i + nb], "little")
                i += nb
            out += b[i:i + ln + 1]
            i += ln + 1
            continue
        if kind == 1:
            ln, off = (ln & 7) + 4, ((tag >> 5) << 8) | b[i]
            i += 1
        else:
            nb = 2 if kind == 2 else 4
            ln, off = ln + 1, int.from_bytes(b[i:i + nb], "little")
            i += nb
        for _ in range(ln):  # copies may overlap their own output
            out.append(out[-off])
    assert len(out) == n, "snappy length mismatch"
    return bytes(out)


def fields(b):
    i = 0
    while i < len(b):
        key, i = uvarint(b, i)
        wt = key & 7
        if wt == 0:
            v, i = uvarint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            ln, i = uvarint(b, i)
            v, i = b[i:i + ln], i + ln
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield key >> 3, v


def decode_write_request(body):
    """(metric name, [(ts_ms, value)], exemplar count) per series of a prometheus.WriteRequest."""
    for f, ts in fields(snappy_decode(body)):
        if f != 1:
            continue
        name, samples, exemplars = None, [], 0
        for g, v in fields(ts):
            if g == 1:
                lab = dict(fields(v))
                if lab.get(1) == b"__name__":
                    name = lab.get(2, b"").decode()
            elif g == 2:
                s = dict(fields(v))
                samples.append((s.get(2, 0), struct.unpack("<d", s.get(1, bytes(8)))[0]))
            elif g == 3:
                exemplars += 1
        yield name, samples, exemplars


# --- the scraped counter and the recording proxy ---

def serve(handler):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def exporter():
    state = {"n": 0}

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            state["n"] += 1
            n = state["n"]
            # OpenMetrics, so the exemplar (a trace id) travels with the counter sample.
            body = (f"# TYPE probe_counter counter\n"
                    f"{SERIES} {n} # {{trace_id=\"{n:032x}\"}} 1.0\n# EOF\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    return serve(H)


def recording_proxy():
    rec = {"target": None, "acked": {}, "exemplars": 0, "status": {}}
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = urllib.request.Request(rec["target"], data=body, method="POST", headers={
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    code, reply = r.status, r.read()
            except urllib.error.HTTPError as e:
                code, reply = e.code, e.read()
            except OSError as e:  # Receive gone: the agent must retry, as with a dead task
                code, reply = 503, str(e).encode()
            if 200 <= code < 300:
                with lock:
                    for name, samples, exemplars in decode_write_request(body):
                        if name == SERIES:
                            rec["exemplars"] += exemplars
                            rec["acked"].update((t, v) for t, v in samples if not math.isnan(v))
            with lock:
                rec["status"][code] = rec["status"].get(code, 0) + 1
            self.send_response(code)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *a):
            pass

    return serve(H), rec


# --- S3 (moto) ---

def start_moto(procs, bucket):
    port = free_port()
    procs.start("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    wait_http(f"http://127.0.0.1:{port}/moto-api/")
    import botocore.session
    s3 = botocore.session.get_session().create_client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="placeholder", aws_secret_access_key="placeholder")
    s3.create_bucket(Bucket=bucket)
    objstore = f"{procs.work}/objstore.yml"
    with open(objstore, "w") as f:
        f.write(f"type: S3\nconfig:\n  bucket: {bucket}\n  endpoint: 127.0.0.1:{port}\n  insecure: true\n"
                f"  access_key: placeholder\n  secret_key: placeholder\n  region: us-east-1\n")
    return s3, objstore


def blocks(s3, bucket):
    """ULID -> (minTime, maxTime, numSamples) of every block whose meta.json is in the bucket."""
    out = {}
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        if obj["Key"].endswith("/meta.json"):
            m = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            out[m["ulid"]] = (m["minTime"], m["maxTime"], m["stats"].get("numSamples"))
    return out


# --- Thanos components ---

def thanos(procs, name, sub, *args):
    http, grpc = free_port(), free_port()
    procs.start(name, [THANOS, sub, f"--http-address=127.0.0.1:{http}", f"--grpc-address=127.0.0.1:{grpc}",
                       "--log.level=info", *args])
    return http, grpc


def avoid_prune_minute():
    """Receive v0.42.5 panics (nil tenant TSDB in shouldBeMarkedInactive) if its tenant prune, run in
    each minute of the day divisible by 2 x max block duration, meets a tenant still opening."""
    period = 2 * BLOCK_MINUTES
    while True:
        t = time.localtime()
        m = (t.tm_hour * 60 + t.tm_min) % period
        if m != 0 and not (m == period - 1 and t.tm_sec > 40):
            return
        time.sleep(1)


def receive(procs, name, objstore):
    avoid_prune_minute()
    rw = free_port()
    http, grpc = thanos(procs, name, "receive", f"--tsdb.path={procs.work}/{name}-data",
                        f"--objstore.config-file={objstore}", f"--remote-write.address=127.0.0.1:{rw}",
                        '--label=receive_replica="0"', f"--tsdb.min-block-duration={BLOCK}",
                        f"--tsdb.max-block-duration={BLOCK}", "--tsdb.max-exemplars=10000",
                        # default 0.0.0.0:19391: loopback only, and a port of our own per Receive
                        f"--receive.capnproto-address=127.0.0.1:{free_port()}")
    wait_http(f"http://127.0.0.1:{http}/-/ready")
    return http, grpc, f"http://127.0.0.1:{rw}/api/v1/receive"


def query(procs, name, *grpc_endpoints):
    http, _ = thanos(procs, name, "query", *[f"--endpoint=127.0.0.1:{g}" for g in grpc_endpoints])
    wait_http(f"http://127.0.0.1:{http}/-/ready")
    return f"http://127.0.0.1:{http}"


def instant(base, promql):
    q = urllib.parse.urlencode({"query": promql, "dedup": "false", "partial_response": "false"})
    return json.loads(get(f"{base}/api/v1/query?{q}", 60))


def samples_in(base, minutes):
    res = instant(base, f"{SERIES}[{minutes}m]")["data"]["result"]
    return {round(float(t) * 1000): float(v) for r in res for t, v in r["values"]}


def exemplars_in(base, start, end):
    q = urllib.parse.urlencode({"query": SERIES, "start": start, "end": end})
    data = json.loads(get(f"{base}/api/v1/query_exemplars?{q}", 60))["data"] or []
    return sum(len(s.get("exemplars", [])) for s in data)


def fresh_view(procs, objstore, bucket, s3, minutes):
    """A replacement task: fresh Receive on an empty disk, Store Gateway and Query on the bucket."""
    _, r2_grpc, _ = receive(procs, "receive2", objstore)
    # Resync every 10 s (default 15m) so the retention check sees deletions.
    st_http, st_grpc = thanos(procs, "store", "store", f"--data-dir={procs.work}/store-data",
                              f"--objstore.config-file={objstore}", "--sync-block-duration=10s")
    wait_http(f"http://127.0.0.1:{st_http}/-/ready")
    q = query(procs, "query2", st_grpc, r2_grpc)
    found, deadline = {}, time.time() + 60
    while time.time() < deadline:  # until Query has both endpoints and the count stops moving
        time.sleep(5)
        now = samples_in(q, minutes)
        if now and now == found:
            break
        found = now
    return q, found


def agent_config(path, exporter_port, remote_url):
    with open(path, "w") as f:
        f.write(f"""global: {{scrape_interval: 1s, external_labels: {{prometheus: probe}}}}
scrape_configs:
  - job_name: probe
    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]
""")
        if remote_url:
            # One shard keeps the WAL order; short deadline so acks follow scrapes closely.
            f.write(f"""remote_write:
  - url: {remote_url}
    send_exemplars: true
    queue_config: {{min_shards: 1, max_shards: 1, batch_send_deadline: 1s}}
""")


def summary(acked, found, interval_ms=1000):
    missing = sorted(set(acked) - set(found))
    return {"acknowledged": len(acked), "found_after_replacement": len(set(acked) & set(found)),
            "missing": len(missing),
            "missing_minutes": round(len(missing) * interval_ms / 60000, 2),
            "missing_from_s_before_stop": round((max(acked) - missing[0]) / 1000, 1) if missing else 0,
            "missing_range_ms": [missing[0], missing[-1]] if missing else None}


def run_a(procs, args, kind):
    bucket = f"shape-a-{kind}"
    s3, objstore = start_moto(procs, bucket)
    exp, (proxy, rec) = exporter(), recording_proxy()
    r1_http, r1_grpc, rec["target"] = receive(procs, "receive1", objstore)
    q1 = query(procs, "query1", r1_grpc)
    agent_config(f"{procs.work}/agent.yml", exp.server_port, f"http://127.0.0.1:{proxy.server_port}/")
    procs.start("agent", [PROMETHEUS, "--agent", f"--config.file={procs.work}/agent.yml",
                          f"--storage.agent.path={procs.work}/agent-data",
                          f"--web.listen-address=127.0.0.1:{free_port()}"])
    t0 = time.time()
    time.sleep(args.seconds)
    result = {"run": f"a-{kind}", "seconds_written": args.seconds, "block_duration": BLOCK,
              "exemplars_acknowledged": rec["exemplars"],
              "exemplars_via_query_live": exemplars_in(q1, t0 - 60, time.time()),
              "blocks_before_stop": len(blocks(s3, bucket))}
    with open(f"{args.metrics_dir}/receive-metrics.txt", "wb") as f:
        f.write(get(f"http://127.0.0.1:{r1_http}/metrics"))
    procs.stop("query1", "kill")
    result["stop"] = procs.stop("receive1", kind)
    procs.stop("agent", "kill")  # the agent keeps its WAL; only what Receive acked is in question
    result["blocks_after_stop"] = blocks(s3, bucket)
    minutes = args.seconds // 60 + 5
    q2, found = fresh_view(procs, objstore, bucket, s3, minutes)
    result["exemplars_via_query_after_replacement"] = exemplars_in(q2, t0 - 60, time.time())
    result["remote_write_status_counts"] = rec["status"]
    result.update(summary(rec["acked"], found))
    if args.retention:
        result["retention"] = retention(procs, objstore, s3, bucket, q2, minutes, args.retention)
    return result


def retention(procs, objstore, s3, bucket, q, minutes, keep):
    before = blocks(s3, bucket)
    n_before = len(samples_in(q, minutes))
    # Run-once mode (no --wait) twice: within one pass the cleaner runs before retention marks
    # blocks, so the second pass deletes what the first marked. consistency-delay 0 so minutes-old
    # blocks are considered at all.
    marked = 0
    for i in (1, 2):
        with open(f"{procs.work}/compact{i}.log", "w") as f:
            subprocess.run([THANOS, "compact", f"--data-dir={procs.work}/compact-data",
                            f"--objstore.config-file={objstore}", f"--retention.resolution-raw={keep}",
                            "--downsampling.disable", "--delete-delay=0s", "--consistency-delay=0s",
                            f"--http-address=127.0.0.1:{free_port()}"], env=ENV, stdout=f,
                           stderr=subprocess.STDOUT, timeout=300, preexec_fn=lambda: os.nice(19))
        if i == 1:
            marked = sum(o["Key"].endswith("/deletion-mark.json")
                         for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    after = blocks(s3, bucket)
    now_ms = int(time.time() * 1000)
    time.sleep(20)  # the Store Gateway resyncs on its own schedule; report what it serves too
    return {"raw_retention": keep, "blocks_before": len(before), "marked_by_first_pass": marked,
            "blocks_after_second_pass": len(after),
            "deleted_block_age_s": sorted(round((now_ms - v[1]) / 1000) for k, v in before.items() if k not in after),
            "kept_block_age_s": sorted(round((now_ms - v[1]) / 1000) for v in after.values()),
            "samples_queryable_before": n_before, "samples_queryable_after_20s": len(samples_in(q, minutes))}


def run_b(procs, args):
    bucket = "shape-b"
    s3, objstore = start_moto(procs, bucket)
    exp = exporter()
    agent_config(f"{procs.work}/prom.yml", exp.server_port, None)
    prom_port = free_port()
    procs.start("prometheus", [PROMETHEUS, f"--config.file={procs.work}/prom.yml",
                               f"--storage.tsdb.path={procs.work}/prom-data", f"--web.listen-address=127.0.0.1:{prom_port}",
                               f"--storage.tsdb.min-block-duration={BLOCK}", f"--storage.tsdb.max-block-duration={BLOCK}"])
    prom = f"http://127.0.0.1:{prom_port}"
    wait_http(f"{prom}/-/ready")
    thanos(procs, "sidecar", "sidecar", f"--tsdb.path={procs.work}/prom-data", f"--prometheus.url={prom}",
           f"--objstore.config-file={objstore}")
    time.sleep(args.seconds)
    minutes = args.seconds // 60 + 5
    acked = samples_in(prom, minutes)  # what Prometheus ingested: its own view before the stop
    result = {"run": "b-term", "seconds_written": args.seconds, "block_duration": BLOCK,
              "blocks_before_stop": len(blocks(s3, bucket))}
    # ECS stops every container of the task at once.
    result["stop"] = {"prometheus": procs.stop("prometheus"), "sidecar": procs.stop("sidecar")}
    result["blocks_after_stop"] = blocks(s3, bucket)
    _, found = fresh_view(procs, objstore, bucket, s3, minutes)
    result.update(summary(acked, found))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", choices=["a-term", "a-kill", "b"], required=True)
    ap.add_argument("--seconds", type=int, default=240)
    ap.add_argument("--retention", help="also run the compactor once with this raw retention, e.g. 2m")
    ap.add_argument("--out")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix=f"metrics-store-{args.run}-")
    args.metrics_dir = work
    procs = Procs(work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` stops the children
    try:
        result = run_b(procs, args) if args.run == "b" else run_a(procs, args, args.run[2:])
    finally:
        procs.stop_all()
    result["work_dir"] = work
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
