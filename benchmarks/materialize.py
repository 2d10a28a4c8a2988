"""Benchmark: loading the online store, Feast's default materialize vs `fast_materialize`.

The shape of DESIGN.md's measurement: 240,000 block groups x 30 float features, one vintage,
published as parquet partitions (``<vintage>/<state>.parquet``, microsecond timestamps) and
served by one feature view keyed by (block_group_geoid, vintage). 3% of values are missing
(NaN), which Feast writes as empty ValueProtos.

Each implementation runs in its own fresh process, into a fresh online store and registry
(file registry; ``store.apply`` before the clock starts), after an ``os.sync()`` so that an
earlier run's gigabytes of dirty pages are not written back during this one:

``feast-sqlite`` / ``feast-redis``
    ``store.materialize(start_date, end_date)``: Feast 0.67's default path (DuckDB offline
    store, local compute engine, ``online_write_batch``).
``ours-sqlite`` / ``ours-redis``
    ``feature_repo.serving.materialize.fast_materialize(store, start=..., end=...)``.

The clock covers exactly that one call. Afterwards, outside the clock, each child digests the
whole online store (SQLite: every row of the view's table, all columns, in key order; Redis:
``HGETALL`` of every entity key's hash) and reads a seeded sample of entity keys back through
``store.get_online_features``. Feast's and ours must have the same digest and the same
sample, or the run exits with status 1.

Run ``python -m benchmarks.materialize --help``; ``--small`` is a quick check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import harness

GENERATOR_VERSION = 1
VIEW = "bench_block_group"
VINTAGE = 2021
RELEASE = pd.Timestamp("2022-12-08", tz="UTC")  # ACS 2017-2021 5-year release day
START = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)  # feature_repo.serving.store.materialize's window
END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SHARE_MISSING = 0.03
IMPLEMENTATIONS = {
    "feast-sqlite": ("Feast materialize", "SQLite"),
    "ours-sqlite": ("fast_materialize", "SQLite"),
    "feast-redis": ("Feast materialize", "Redis"),
    "ours-redis": ("fast_materialize", "Redis"),
}
EXAMPLE = """\
examples:
  python -m benchmarks.materialize --small
  python -m benchmarks.materialize --workdir /tmp/sdoh_bench_mat --json /tmp/materialize.json
  python -m benchmarks.materialize --which ours-sqlite,ours-redis --repeat 3
"""


@dataclass(frozen=True)
class Params:
    """What the generated data depends on."""

    block_groups: int
    features: int
    seed: int
    generator_version: int = GENERATOR_VERSION


def _feature_names(n: int) -> list[str]:
    return [f"measure_{i:02d}" for i in range(n)]


# --------------------------------------------------------------------------------------------
# Data and definitions


def prepare(params: Params, workdir: Path) -> dict[str, Any]:
    """Generate and publish the parquet files unless ``workdir`` already holds them."""
    return harness.reuse_or_generate(workdir, params, lambda: _generate(params, workdir))


def _generate(params: Params, workdir: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingestion.core.workspace import Workspace

    t0 = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    n = params.block_groups
    # State 98/99 (do not exist: visibly synthetic), 12-digit GEOIDs, two partition files.
    i = np.arange(n, dtype=np.int64)
    geoids = pd.Series(98 * 10**10 + (i % 2) * 10**10 + i // 2, dtype="int64").astype(str)
    data: dict[str, Any] = {
        "block_group_geoid": geoids.to_numpy(dtype=object),
        "vintage": np.full(n, VINTAGE, dtype=np.int64),
        "release_ts": pd.Series(RELEASE, index=range(n)).astype("datetime64[us, UTC]"),
    }
    for j, name in enumerate(_feature_names(params.features)):
        values = rng.uniform(0.0, 5000.0, n)
        if j % 3:  # two in three columns rounded like estimates, one like CVs (17 digits)
            values = np.round(values, j % 3)
        values[rng.random(n) < SHARE_MISSING] = np.nan
        data[name] = values
    frame = pd.DataFrame(data)
    folder = Workspace(workdir).published_dir(VIEW) / str(VINTAGE)
    folder.mkdir(parents=True, exist_ok=True)
    for state, part in frame.groupby(frame["block_group_geoid"].str[:2]):
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, folder / f"{state}.parquet", coerce_timestamps="us")
    prep = {"generate_s": time.perf_counter() - t0, "rows": n, "features": params.features,
            "values": n * params.features,
            "missing_values": int(frame[_feature_names(params.features)].isna().sum().sum())}
    print(f"generated {n:,} block groups x {params.features} features in {prep['generate_s']:.1f} s")
    return prep


def _definitions(workdir: Path, features: int) -> list[Any]:
    from feast import FeatureView, Field, FileSource
    from feast.types import Float64

    from feature_repo.definitions.entities import GEOGRAPHY_ENTITIES, vintage
    from ingestion.core.workspace import Workspace

    source = FileSource(name=f"{VIEW}_source", path=Workspace(workdir).published_glob(VIEW),
                        timestamp_field="release_ts")
    view = FeatureView(
        name=VIEW, entities=[GEOGRAPHY_ENTITIES["block_group"], vintage], ttl=None,
        schema=[Field(name=f, dtype=Float64, description=f"synthetic measure {f}")
                for f in _feature_names(features)],
        source=source, description="Synthetic block groups for the materialize benchmark.",
        owner="sdoh-feature-store")
    return [GEOGRAPHY_ENTITIES["block_group"], vintage, view]


def _store(impl: str, workdir: Path, rundir: Path, redis_url: str) -> Any:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    backend = impl.split("-")[1]
    online: dict[str, Any] = ({"type": "sqlite", "path": str(rundir / "online.db")}
                              if backend == "sqlite" else
                              {"type": "redis", "connection_string": redis_url})
    config = RepoConfig(project=f"bench_{impl.replace('-', '_')}", provider="local",
                        registry=str(rundir / "registry.db"), online_store=online,
                        offline_store={"type": "duckdb"}, entity_key_serialization_version=3)
    config.repo_path = rundir
    return FeatureStore(config=config)


# --------------------------------------------------------------------------------------------
# Child process: one implementation, timed, then digested


def _entity_rows(workdir: Path) -> pd.DataFrame:
    import duckdb

    from ingestion.core.workspace import Workspace

    with duckdb.connect() as con:
        return con.execute("SELECT block_group_geoid, vintage FROM read_parquet(?) ORDER BY ALL",
                           [Workspace(workdir).published_glob(VIEW)]).df()


def _sqlite_digest(store: Any, rundir: Path) -> tuple[str, int]:
    import sqlite3

    digest, rows = hashlib.sha256(), 0
    con = sqlite3.connect(rundir / "online.db")
    try:
        cursor = con.execute(f'SELECT entity_key, feature_name, value, value_text, vector_value, '
                             f'event_ts, created_ts FROM "{store.project}_{VIEW}" '
                             f'ORDER BY entity_key, feature_name')
        while batch := cursor.fetchmany(100_000):
            digest.update(pickle.dumps(batch, protocol=5))
            rows += len(batch)
    finally:
        con.close()
    return digest.hexdigest(), rows


def _redis_digest(store: Any, keys: pd.DataFrame) -> tuple[str, int]:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    client = RedisOnlineStore()._get_client(store.config.online_store)
    project = store.project.encode()
    digest, fields = hashlib.sha256(), 0
    names = ["block_group_geoid", "vintage"]
    for start in range(0, len(keys), 20_000):
        part = keys.iloc[start:start + 20_000]
        with client.pipeline(transaction=False) as pipe:
            for geoid, vintage in zip(part["block_group_geoid"], part["vintage"], strict=True):
                key = serialize_entity_key(EntityKey(join_keys=names, entity_values=[
                    Value(string_val=geoid), Value(int64_val=int(vintage))]), 3)
                pipe.hgetall(key + project)
            for stored in pipe.execute():
                items = sorted(stored.items())
                digest.update(pickle.dumps(items, protocol=5))
                fields += len(items)
    return digest.hexdigest(), fields


def _child(impl: str, workdir: Path, out: Path, redis_url: str, sample_rows: int) -> None:
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("feast").setLevel(logging.ERROR)
    from feature_repo.serving.materialize import fast_materialize

    warnings.filterwarnings("ignore")  # feast's modules reset the filters when imported
    params = harness.saved_params(workdir)
    rundir = out.parent / impl
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    store = _store(impl, workdir, rundir, redis_url)
    store.apply(_definitions(workdir, params["features"]))
    if impl.endswith("redis"):
        _redis_client(redis_url).flushdb()  # checked empty by the parent before the first run

    if impl.startswith("feast"):
        def run() -> None:
            store.materialize(start_date=START, end_date=END)
    else:
        def run() -> None:
            fast_materialize(store, start=START, end=END, progress=False)

    gc.collect()
    clock = harness.timed(run)

    keys = _entity_rows(workdir)
    t0 = time.perf_counter()
    if impl.endswith("sqlite"):
        digest, stored = _sqlite_digest(store, rundir)
    else:
        digest, stored = _redis_digest(store, keys)
    digest_s = time.perf_counter() - t0
    picked = keys.sample(min(sample_rows, len(keys)), random_state=params["seed"] + 17)
    rows = [{"block_group_geoid": g, "vintage": int(v)}
            for g, v in zip(picked["block_group_geoid"], picked["vintage"], strict=True)]
    sample = store.get_online_features(
        features=[f"{VIEW}:{f}" for f in _feature_names(params["features"])],
        entity_rows=rows).to_dict()
    if impl.endswith("redis"):
        _redis_client(redis_url).flushdb()
    shutil.rmtree(rundir)  # gigabytes of SQLite: not left for the next run's writeback
    sample_path = out.with_suffix(".pkl")
    sample_path.write_bytes(pickle.dumps(sample))
    out.write_text(json.dumps({
        "impl": impl, "wall_s": clock.wall_s, "rows": len(keys),
        "values": len(keys) * params["features"], "peak_rss_mib": clock.peak_rss_mib,
        "rss_start_mib": clock.rss_start_mib, "digest": digest, "stored": stored,
        "digest_s": digest_s, "sample": str(sample_path)}))


def _redis_client(url: str) -> Any:
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

    return RedisOnlineStore()._get_client(RedisOnlineStoreConfig(connection_string=url))


# --------------------------------------------------------------------------------------------
# Parent: run children, verify, report


def _run_child(impl: str, workdir: Path, tmp: Path, redis_url: str, sample_rows: int) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    os.sync()  # earlier runs' dirty pages are flushed now, not during this run
    child = harness.run_child("benchmarks.materialize", impl, tmp / f"{impl}.json",
                              ["--workdir", str(workdir), "--redis", redis_url,
                               "--sample-rows", str(sample_rows)], quiet=True)
    return {**child.result, "process_s": child.elapsed_s, "process_cpu_s": child.cpu_s,
            "other_load": child.other_load()}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One implementation's runs: best and median wall time, the highest peak RSS."""
    return harness.summarize(runs, ("impl", "rows", "values", "rss_start_mib"))


def table(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table, with each store's speed-up over Feast's default."""
    feast = {IMPLEMENTATIONS[r["impl"]][1]: r["wall_s"] for r in results
             if r["impl"].startswith("feast")}
    rows = []
    for r in results:
        label, backend = IMPLEMENTATIONS[r["impl"]]
        rows.append([backend, label, f"{r['rows']:,}", f"{r['values']:,}", f"{r['wall_s']:.2f}",
                     f"{r['wall_median_s']:.2f}", f"{r['rows'] / r['wall_s']:,.0f}",
                     f"{r['peak_rss_mib']:,.0f}",
                     f"{r['rss_start_mib']:,.0f}" if r["rss_start_mib"] is not None else "n/a",
                     f"{feast[backend] / r['wall_s']:.1f}x" if backend in feast else "n/a"])
    return harness.markdown_table(
        ["online store", "implementation", "entity rows", "values", "wall time (s), best",
         "median", "rows/s", "peak RSS (MiB)", "RSS at start (MiB)", "speed-up vs Feast"],
        rows, align="llrrrrrrrr")


def verify(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Feast's and ours must leave identical stores and read back identical samples."""
    problems = []
    for backend in ("sqlite", "redis"):
        pair = [runs.get(f"feast-{backend}"), runs.get(f"ours-{backend}")]
        if not all(pair):
            continue
        feast_runs, ours_runs = pair
        reference = feast_runs[0]
        for r in feast_runs + ours_runs:
            if (r["digest"], r["stored"]) != (reference["digest"], reference["stored"]):
                problems.append(f"{backend}: {r['impl']} stored {r['stored']:,} items with digest "
                                f"{r['digest'][:12]}, Feast {reference['stored']:,} / "
                                f"{reference['digest'][:12]}")
            sample = pickle.loads(Path(r["sample"]).read_bytes())
            if sample != pickle.loads(Path(reference["sample"]).read_bytes()):
                problems.append(f"{backend}: {r['impl']} reads back other values than Feast")
        print(f"check {backend}: {len(feast_runs) + len(ours_runs)} runs, {reference['stored']:,} "
              f"stored {'rows' if backend == 'sqlite' else 'hash fields'} each, digest "
              f"{reference['digest'][:16]}; sampled get_online_features compared")
    return problems


def _parser() -> argparse.ArgumentParser:
    parser = harness.parser(
        "benchmarks.materialize",
        "Time loading the online store (SQLite and Redis) from published parquet: Feast's "
        "default materialize vs fast_materialize, each in its own process, peak RSS per "
        "process; checks that both leave identical stores. Not a test.", EXAMPLE,
        IMPLEMENTATIONS)
    parser.add_argument("--block-groups", type=int, default=None,
                        help="entity rows, one vintage (default 240,000; 10,000 with --small)")
    parser.add_argument("--features", type=int, default=30, help="float features (default 30)")
    parser.add_argument("--small", action="store_true",
                        help="a quick check (about a minute): 10,000 block groups, in their own "
                             "default workdir")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the generated parquet, regenerated only if absent or "
                             "the parameters changed (default <tmp>/sdoh_bench_materialize, "
                             "<tmp>/sdoh_bench_materialize_small with --small)")
    harness.add_run_options(parser, IMPLEMENTATIONS)
    parser.add_argument("--redis", default="127.0.0.1:6379,db=14",
                        help="Redis connection string in Feast's format; the database must be "
                             "empty, it is flushed after each run (default 127.0.0.1:6379,db=14)")
    parser.add_argument("--sample-rows", type=int, default=2_000,
                        help="entity keys read back through get_online_features and compared "
                             "(default 2,000)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write machine, parameters, results and checks to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.block_groups = args.block_groups or (10_000 if args.small else 240_000)
    default = "sdoh_bench_materialize" + ("_small" if args.small else "")
    workdir = (args.workdir or Path(tempfile.gettempdir()) / default).resolve()
    if args.child:
        _child(args.child, workdir, args.child_out, args.redis, args.sample_rows)
        return 0
    which = harness.parse_which(args.which, IMPLEMENTATIONS)
    harness.at_least_one(args, "block_groups", "features", "repeat")
    if any(w.endswith("redis") for w in which):
        try:
            size = _redis_client(args.redis).dbsize()
        except Exception as exc:  # noqa: BLE001 - any connection failure means "skip Redis"
            print(f"Redis at {args.redis} is not reachable ({exc}): skipping the Redis runs")
            which = [w for w in which if not w.endswith("redis")]
        else:
            if size:
                raise SystemExit(f"Redis {args.redis} holds {size:,} keys: the benchmark flushes "
                                 "its database, so pass an empty one with --redis")

    machine = harness.machine("feast", "duckdb")
    print(harness.machine_line(machine, "feast", "duckdb"))
    params = Params(args.block_groups, args.features, args.seed)
    prep = prepare(params, workdir)
    print(f"data: {prep['rows']:,} block groups x {prep['features']} Float64 features "
          f"({prep['values']:,} values, {prep['missing_values']:,} missing), vintage {VINTAGE}")

    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in which}
    with tempfile.TemporaryDirectory(prefix="sdoh_bench_mat_") as tmp:
        for round_, impl in harness.rounds(which, args.repeat):
            runs[impl].append(_run_child(impl, workdir, Path(tmp) / str(round_), args.redis,
                                         args.sample_rows))
            print(harness.run_line(runs[impl][-1], cpus=machine["nproc"]))
        results = [summarize(runs[impl]) for impl in which]
        print()
        problems = verify(runs)
    print()
    print(table(results))
    note = harness.load_note(harness.max_other_load(runs), cpus=machine["nproc"])
    if note:
        print(note)
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "params": asdict(params),
                                         "prep": prep, "results": results,
                                         "problems": problems}, indent=2, default=str))
        print(f"wrote {args.json}")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
