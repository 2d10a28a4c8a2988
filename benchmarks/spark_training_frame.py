"""Benchmark: training frames on the Spark profile (local Spark) against the embedded profile.

The data are the demo region's, published by the real pipeline (`ingestion.jobs.pipeline.run_demo`:
ACS, SVI, ADI, 2,000 patients' geography timeline), read through ``model_inputs_v1`` (seven
area views); only the events grow: ``--events`` rows of the demo's patients at seeded times
over 2019-2024. Each implementation runs in its own fresh Python process:

``embedded``
    `feature_repo.training_frame` on the embedded profile (DuckDB): pandas in, pandas out.
``embedded-parquet``
    `feature_repo.write_training_frame` on the embedded profile: the frame computed and
    written 200,000 events at a time (memory holds one chunk).
``spark``
    `feature_repo.training_frame` on the Spark profile: Feast's point-in-time joins run in
    Spark and the result is collected to the driver as pandas.
``spark-parquet``
    `feature_repo.serving.spark.write_training_frame`: the events read by Spark from parquet, the frame
    written as parquet by the executors; nothing is collected to the driver.

Each is compared with the embedded run of the same output (pandas or parquet); at 5,000,000
events only the parquet outputs fit in memory (the pandas frame alone is ~25 GiB).

The clock covers the one call; the Spark session is started before it (its start-up is
reported apart). Peak memory: the driver's own high-water mark (``VmHWM``) and, for Spark,
the JVM's and the Python workers'. Every Spark result is compared with the embedded one on a
seeded sample of rows (every feature column); a mismatch exits 1.

Run ``python -m benchmarks.spark_training_frame --help``; results are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from benchmarks import harness
from benchmarks.training_frame import _sample_rows, compare

IMPLEMENTATIONS = {
    "embedded": "embedded profile (DuckDB), pandas out",
    "embedded-parquet": "embedded profile (DuckDB), parquet out in chunks",
    "spark": "spark profile, local[2], pandas out",
    "spark-parquet": "spark profile, local[2], parquet out (no collect)",
}
SERVICE = "model_inputs_v1"
SEED = 20240601
EXAMPLE = """\
examples:
  python -m benchmarks.spark_training_frame --small
  python -m benchmarks.spark_training_frame --events 1000000 --workdir /tmp/sdoh_spark_bench
  python -m benchmarks.spark_training_frame --events 5000000 --which embedded-parquet,spark-parquet
"""


def _events_path(workdir: Path, n_events: int) -> Path:
    return workdir / "raw" / f"bench_events_{n_events}.parquet"


def prepare(workdir: Path, n_events: int) -> Path:
    """The demo workspace in ``workdir`` (run once) and ``n_events`` seeded events of its patients."""
    from ingestion.core.workspace import Workspace
    from ingestion.jobs.pipeline import run_demo

    ws = Workspace(workdir)
    if not ws.is_published("patient_geography"):
        print(f"running the demo pipeline into {workdir} (once)")
        run_demo(ws)
    path = _events_path(workdir, n_events)
    if not path.exists():
        patients = pd.read_parquet(ws.published_dir("patient_geography"), columns=["patient_id"])
        ids = patients["patient_id"].unique()
        rng = np.random.default_rng(SEED)
        start, span = np.datetime64("2019-01-01", "s"), 6 * 365 * 86_400
        pd.DataFrame({
            "patient_id": ids[rng.integers(0, len(ids), n_events)],
            "event_timestamp": pd.to_datetime(start + rng.integers(0, span, n_events)
                                              .astype("timedelta64[s]")).tz_localize("UTC"),
        }).to_parquet(path, index=False, coerce_timestamps="us")
    return path


def _children(pid: int) -> list[int]:
    """Every descendant of a process (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for path in Path(f"/proc/{parent}/task").glob("*/children"):
            kids = [int(k) for k in path.read_text().split()]
            found += kids
            todo += kids
    return found


def _cpu_of(pid: int) -> float:
    """A process's CPU seconds so far (user + system; 0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spark_peaks(spark) -> dict[str, float]:
    """Peak RSS (MiB) of the session's JVM and the sum of its Python workers', and their CPU."""
    jvm = spark.sparkContext._gateway.proc.pid
    workers = _children(jvm)
    return {"jvm_peak_mib": harness.peak_rss_mib(jvm),
            "workers_peak_mib": sum(harness.peak_rss_mib(p) for p in workers),
            "spark_cpu_s": sum(_cpu_of(p) for p in [jvm, *workers])}


def _open_store(impl: str, workdir: Path):
    """The store of the implementation's profile; the Spark one applied and its session up."""
    from feature_repo import apply_definitions, feature_store
    from ingestion.core.workspace import Workspace

    ws = Workspace(workdir)
    if impl.startswith("embedded"):
        return ws, feature_store(ws, profile="embedded"), None
    os.environ["SDOH_PROFILE"] = "spark"  # the one setting: SparkSources over the same files
    from feature_repo.serving.spark import spark_session

    store = feature_store(ws, profile="spark")
    apply_definitions(store, ws)
    return ws, store, spark_session(store)


def _sampled_rows(path: Path, sample: np.ndarray) -> pd.DataFrame:
    """The sampled rows of a parquet file or folder of part files, read batch by batch."""
    parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    picked, offset = [], 0
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=100_000):
            inside = sample[(sample >= offset) & (sample < offset + batch.num_rows)]
            picked.append(batch.take(inside - offset).to_pandas().set_axis(inside))
            offset += batch.num_rows
    return pd.concat(picked)


def _child(impl: str, workdir: Path, out: Path, verify_rows: int) -> None:
    warnings.filterwarnings("ignore")
    from feature_repo import training_frame, write_training_frame
    from feature_repo.serving.spark import write_training_frame as write_on_spark

    n_events = int(out.stem.rsplit("_", 1)[1])
    t0 = time.perf_counter()
    ws, store, spark = _open_store(impl, workdir)
    startup = time.perf_counter() - t0
    warnings.filterwarnings("ignore")  # feast's modules reset the filters when imported
    frame_path = out.with_suffix(".parquet")
    events_path = _events_path(workdir, n_events)
    runs = {
        "embedded": lambda: training_frame(pd.read_parquet(events_path), store=store, workspace=ws,
                                           feature_service=SERVICE),
        "embedded-parquet": lambda: write_training_frame(pd.read_parquet(events_path), frame_path,
                                                         store=store, workspace=ws, feature_service=SERVICE),
        "spark": lambda: training_frame(pd.read_parquet(events_path), store=store, workspace=ws,
                                        feature_service=SERVICE),
        "spark-parquet": lambda: write_on_spark(spark.read.parquet(str(events_path)), frame_path,
                                                store=store, workspace=ws, feature_service=SERVICE,
                                                mode="overwrite"),
    }
    clock = harness.timed(runs[impl])
    peaks = {"driver_peak_mib": clock.peak_rss_mib, **(_spark_peaks(spark) if spark else {})}
    sample = _sample_rows(n_events, verify_rows, SEED)
    if isinstance(clock.result, pd.DataFrame):
        rows, picked = len(clock.result), clock.result.iloc[sample].set_axis(sample)
    else:
        rows = ds.dataset(frame_path, format="parquet").count_rows()
        picked = _sampled_rows(frame_path, sample)
        if frame_path.is_dir():
            shutil.rmtree(frame_path)
        else:
            frame_path.unlink()
    picked[[c for c in picked.columns if "__" in c]].to_pickle(out.with_suffix(".pkl"))
    out.write_text(json.dumps({"impl": impl, "wall_s": clock.wall_s, "startup_s": startup,
                               "rows": rows, **peaks}))


def _run_child(impl: str, workdir: Path, tmp: Path, n_events: int, verify_rows: int) -> dict[str, Any]:
    child = harness.run_child("benchmarks.spark_training_frame", impl,
                              tmp / f"{impl}_{n_events}.json",
                              ["--workdir", str(workdir), "--verify-rows", str(verify_rows)])
    # The child's JVM and Python workers count as its own, not as other processes' load.
    return {**child.result,
            "other_load": child.other_load(also_own_s=child.result.get("spark_cpu_s", 0.0))}


def _reference(impl: str) -> str:
    """The embedded run a run is compared with: the one of the same output."""
    return "embedded-parquet" if impl.endswith("parquet") else "embedded"


def table(results: list[dict[str, Any]]) -> str:
    """The runs as a markdown table, with the ratio to the embedded run of the same output."""
    by_impl = {r["impl"]: r for r in results}
    rows = []
    for r in results:
        base = by_impl.get(_reference(r["impl"]))
        rows.append([IMPLEMENTATIONS[r["impl"]], f"{r['rows']:,}", f"{r['wall_s']:.1f}",
                     f"{r['wall_s'] / base['wall_s']:.1f}" if base else "-", f"{r['startup_s']:.1f}",
                     f"{r['driver_peak_mib']:,.0f}",
                     f"{r['jvm_peak_mib']:,.0f}" if "jvm_peak_mib" in r else "-",
                     f"{r['workers_peak_mib']:,.0f}" if "workers_peak_mib" in r else "-",
                     f"{r['other_load']:.2f}"])
    return harness.markdown_table(
        ["implementation", "events", "wall (s)", "x embedded, same output", "session start (s)",
         "driver peak (MiB)", "JVM peak (MiB)", "Python workers peak (MiB)", "other load"],
        rows, align="lrrrrrrrr")


def _parser() -> argparse.ArgumentParser:
    parser = harness.parser(
        "benchmarks.spark_training_frame",
        "Training frames on the Spark profile (local Spark) vs the embedded profile.", EXAMPLE,
        IMPLEMENTATIONS)
    parser.add_argument("--events", type=int, default=1_000_000, help="events (default 1,000,000)")
    parser.add_argument("--small", action="store_true", help="20,000 events: a quick check")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sdoh_spark_bench"),
                        help="demo workspace (made on first use; default /tmp/sdoh_spark_bench)")
    parser.add_argument("--which", default=",".join(IMPLEMENTATIONS),
                        help=f"comma-separated subset of {', '.join(IMPLEMENTATIONS)}")
    parser.add_argument("--verify-rows", type=int, default=50_000,
                        help="rows compared with the embedded frame (0: all)")
    parser.add_argument("--json", type=Path, help="write the results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    workdir = args.workdir.resolve()
    n_events = 20_000 if args.small else args.events
    if args.child:
        _child(args.child, workdir, args.child_out, args.verify_rows)
        return 0
    prepare(workdir, n_events)
    which = harness.parse_which(args.which, IMPLEMENTATIONS)
    # The embedded runs first: every Spark run is checked against one of them.
    which = sorted(which, key=lambda impl: not impl.startswith("embedded"))
    if not any(impl.startswith("embedded") for impl in which):
        raise SystemExit("--which needs embedded or embedded-parquet: the results are checked against it")
    tmp = workdir / "spark_bench_runs"
    tmp.mkdir(exist_ok=True)
    results = [_run_child(impl, workdir, tmp, n_events, args.verify_rows) for impl in which]
    base = pd.read_pickle(tmp / f"{which[0]}_{n_events}.pkl")
    failed = False
    for r in results[1:]:
        check = compare(pd.read_pickle(tmp / f"{r['impl']}_{n_events}.pkl"), base)
        r["check"] = check
        failed |= bool(check["mismatched_rows"]) or r["rows"] != results[0]["rows"]
        print(f"{r['impl']}: {check['rows']:,} rows x {check['columns']} columns compared with "
              f"{which[0]}, {check['mismatched_rows']} rows differ {check['mismatched_cells']}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"events": n_events, "results": results}, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
