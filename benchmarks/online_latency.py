"""Benchmark: online lookup latency and throughput, SDK and HTTP, SQLite and Redis, on loopback.

For 1-patient and 100-patient lookups of the ``model_inputs_v1`` service on the demo region
(every view of the service, two hops), it measures, per online store:

``sdk``
    `feature_repo.OnlineLookup.patients` in this process.
``feast-path``
    `feature_repo.serving.retrieval.feast_online_features`, the same lookup through Feast's
    ``get_online_features`` per hop and view (plans rebuilt per call); fewer requests: it is slow.
``http``
    ``POST /patients/features`` on ``sdoh serve`` started as its own process, one keep-alive
    connection, requests one after another.
``floor`` (Redis only)
    redis-py pipelining ``HGETALL`` of exactly the hashes the lookup reads (the patients' and
    each view's (GEOID, vintage) hash) in one round trip: what reading the data costs at least.

Each case runs ``--requests`` calls or ``--seconds``, whichever ends first, after 20 warm-up
calls; it reports p50 and p99 latency, requests per second (calls / wall time) and errors
(any non-200 answer or exception). Ratios are to the floor of the same batch size.

Run ``python -m benchmarks.online_latency --help``; ``--small`` is a quick check.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import harness

REDIS = "127.0.0.1:6379,db=14"
REGISTRY = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
EXAMPLE = """\
examples:
  python -m benchmarks.online_latency --small
  python -m benchmarks.online_latency --workspace /tmp/sdoh_bench_online --requests 2000
"""


def demo_workspace(path: Path):
    """The demo region's workspace, generated once (about a minute)."""
    from ingestion.core.workspace import Workspace
    from ingestion.jobs.pipeline import run_demo

    ws = Workspace(path)
    if not (ws.outputs / "training_frame.parquet").exists():
        print(f"generating the demo workspace in {path} ...", flush=True)
        run_demo(ws)
    return ws


def measure(call, *, requests: int, seconds: float) -> dict:
    """p50/p99 (ms), requests/s and errors of ``call`` run back to back."""
    for _ in range(20):
        call()
    times, errors = [], 0
    start = time.perf_counter()
    while len(times) < requests and time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        try:
            ok = call()
        except Exception:  # noqa: BLE001 - counted, not raised: the benchmark reports errors
            ok = False
        times.append(time.perf_counter() - t0)
        errors += not ok
    wall = time.perf_counter() - start
    ms = np.array(times) * 1000
    return {"n": len(times), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "rps": len(times) / wall, "errors": errors}


@contextlib.contextmanager
def server_process(ws, env: dict) -> str:
    """``sdoh serve`` in its own process on a free loopback port; yields host:port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "sdoh"), "serve", "--workspace", str(ws.root),
                             "--port", str(port)], env={**os.environ, **env}, cwd=harness.REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"sdoh serve did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def http_call(address: str, ids: list[str]):
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"patient_ids": ids})

    def call() -> bool:
        conn.request("POST", "/patients/features", body, {"Content-Type": "application/json"})
        reply = conn.getresponse()
        data = reply.read()
        return reply.status == 200 and len(json.loads(data)["results"]) == len(ids)

    return call


def floor_call(store, lookup, ids: list[str]):
    """One pipelined HGETALL of every hash the lookup of ``ids`` reads."""
    from feast.infra.key_encoding_utils import serialize_entity_key

    from feature_repo.serving.feast_reads import _entity_key

    records = lookup.patients(ids)
    project = store.config.project.encode()
    keys = {serialize_entity_key(_entity_key(lookup.geography, (p,)), 3) + project for p in ids}
    for view in lookup.views:
        for record in records:
            if record[f"{view.name}__geoid"] is not None:
                key = (record[f"{view.name}__geoid"], int(record[f"{view.name}__vintage"]))
                keys.add(serialize_entity_key(_entity_key(view.view, key), 3) + project)
    client = lookup.reader.client
    keys = sorted(keys)

    def call() -> bool:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return all(pipe.execute())

    return call, len(keys)


def run_store(name: str, store, ws, env: dict, ids: list[str], args) -> list[dict]:
    from feature_repo import OnlineLookup
    from feature_repo.serving.retrieval import feast_online_features

    lookup = OnlineLookup(store, ws)
    rows = []
    for n in (1, 100):
        batch = ids[:n]
        cases = {"sdk": (lambda b=batch: len(lookup.patients(b)) == len(b), args.requests)}
        cases["feast-path"] = (
            lambda b=batch: len(feast_online_features(b, store=store, workspace=ws)) == len(b),
            max(10, args.requests // 20))
        if name == "redis":
            call, n_keys = floor_call(store, lookup, batch)
            cases["floor"] = (call, args.requests)
        for path, (call, requests) in cases.items():
            rows.append({"store": name, "patients": n, "path": path,
                         **measure(call, requests=requests, seconds=args.seconds)})
            print(rows[-1], flush=True)
    with server_process(ws, env) as address:
        for n in (1, 100):
            rows.append({"store": name, "patients": n, "path": "http",
                         **measure(http_call(address, ids[:n]), requests=args.requests,
                                   seconds=args.seconds)})
            print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    floors = {r["patients"]: r for r in rows if r["path"] == "floor"}
    cells = []
    for r in rows:
        f = floors.get(r["patients"])
        ratio = (f"{r['p50_ms'] / f['p50_ms']:.1f}", f"{r['p99_ms'] / f['p99_ms']:.1f}") if f else ("", "")
        cells.append([r["store"], r["patients"], r["path"], f"{r['n']:,}", f"{r['p50_ms']:.2f}",
                      f"{r['p99_ms']:.2f}", f"{r['rps']:,.0f}", r["errors"], *ratio])
    return harness.markdown_table(
        ["store", "patients", "path", "calls", "p50 (ms)", "p99 (ms)", "req/s", "errors",
         "p50 / floor", "p99 / floor"], cells, align="lrlrrrrrrr")


def main() -> None:
    parser = harness.parser("benchmarks.online_latency", __doc__.split("\n\n")[0], EXAMPLE)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/sdoh_bench_online"),
                        help="Demo workspace (generated when absent).")
    parser.add_argument("--requests", type=int, default=1000, help="Calls per case (at most).")
    parser.add_argument("--seconds", type=float, default=20.0, help="Time per case (at most).")
    parser.add_argument("--small", action="store_true", help="200 calls / 5 s per case.")
    parser.add_argument("--json", type=Path, help="Write the rows here.")
    args = parser.parse_args()
    if args.small:
        args.requests, args.seconds = 200, 5.0
    os.environ.pop("SDOH_PROFILE", None)
    from feature_repo import apply_definitions, feature_store, materialize

    ws = demo_workspace(args.workspace)
    events = pd.read_parquet(ws.outputs / "training_frame.parquet")
    ids = events["patient_id"].drop_duplicates().tolist()[:100]
    embedded = feature_store(ws, profile="embedded")
    rows = run_store("sqlite", embedded, ws, {"SDOH_PROFILE": "embedded"}, ids, args)
    env = {"SDOH_PROFILE": "production", "SDOH_PROJECT": f"bench_{uuid.uuid4().hex[:8]}",
           "SDOH_REDIS": REDIS, "SDOH_REGISTRY_URL": REGISTRY}
    os.environ.update(env)
    store = feature_store(ws, profile="production")
    try:
        apply_definitions(store, ws)
        materialize(store, progress=False)
        rows += run_store("redis", store, ws, env, ids, args)
    finally:
        store.registry.delete_project(env["SDOH_PROJECT"], commit=True)
        client = __import__("redis").Redis(host="127.0.0.1", port=6379, db=14)
        keys = list(client.scan_iter(match=b"*" + env["SDOH_PROJECT"].encode(), count=10_000))
        if keys:
            client.delete(*keys)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
