"""Benchmark: point-in-time training frames, ours vs a raw DuckDB query vs Feast's own join.

Three ways to get the same answer, each timed in its own subprocess on the same published
data (so every peak RSS is that process's own high-water mark):

``ours``
    `feature_repo.training_frame(events, feature_service="equity_audit_v1")`: hop 1 (Feast
    point-in-time join of the events on ``patient_geography``), then the vintage in force, the
    GEOID of its boundary year and a Feast lookup keyed by (GEOID, vintage), typed reasons.
``duckdb``
    The floor: one SQL statement over the same parquet files. ASOF join of the events on the
    address timeline, ASOF join on the release calendar, the boundary year's GEOID, an equality
    join on (GEOID, vintage), the same missing reasons, rows in event order.
``feast``
    Feast's own ``get_historical_features`` for the block-group ACS view on an entity frame
    that already holds (block_group_geoid, vintage, event_timestamp): hop 2 alone, only the
    rows that have a GEOID, result in Feast's (arbitrary) row order.
``feast-hop1``
    Feast's ``get_historical_features`` of the events on ``patient_geography``: hop 1 alone.

Every implementation starts from the events already in a pandas DataFrame and ends with a
pandas DataFrame; the clock covers exactly that call. Ours and DuckDB are then compared cell by
cell on a sample of rows (all 65 block-group features plus GEOID and vintage), and Feast's hop 2
on the sample rows it returns; any mismatch fails the run.

Run ``python -m benchmarks.training_frame --help``. Results for this machine are in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
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
VINTAGES = (2019, 2020, 2021)
VIEW = "acs_block_group"
SERVICE = "equity_audit_v1"
IMPLEMENTATIONS = {
    "ours": "ours: training_frame()",
    "duckdb": "raw DuckDB SQL (floor)",
    "feast": "Feast get_historical_features, hop 2 only",
    "feast-hop1": "Feast get_historical_features, hop 1 only",
}
EXAMPLE = """\
examples:
  python -m benchmarks.training_frame --events 20000 --patients 5000 --block-groups 500
  python -m benchmarks.training_frame --workdir /tmp/sdoh_bench --json /tmp/bench.json
  python -m benchmarks.training_frame --which ours --profile /tmp/ours.pstats
"""

# Synthetic data shape (fixed, so a parameter change is the only reason to regenerate).
SHARE_RENUMBERED_2020 = 0.12  # block groups whose 2020 GEOID is a renumbering of the 2010 one
SHARE_SPLIT_2020 = 0.08  # block groups split in two in 2020
SHARE_MISSING_ROW = 0.005  # (GEOID, vintage) pairs without an ACS row: geography_not_in_vintage
SHARE_SUPPRESSED = 0.03  # measure values missing with a Census annotation reason
SHARE_UNLINKED = 0.04  # address periods that could not be linked
SHARE_OUTSIDE_2010 = 0.003  # linked periods without a 2010 block group: outside_boundaries
SHARE_ENDED = 0.06  # patients whose last address period ended (no address afterwards)
SHARE_UNKNOWN_PATIENTS = 0.02  # event patients without any address history
UNLINKED_REASONS = ("po_box", "geocode_failed", "zip_only", "no_coordinates")
SUPPRESSION_REASONS = ("insufficient_sample", "suppressed_small_sample", "not_applicable")
EVENTS_FROM, EVENTS_TO = np.datetime64("2019-01-01", "s"), np.datetime64("2025-01-01", "s")
ADDRESS_FROM, ADDRESS_TO = np.datetime64("2015-01-01", "s"), np.datetime64("2022-01-01", "s")
DAY = 86_400


@dataclass(frozen=True)
class Params:
    """What the generated data depends on."""

    events: int
    patients: int
    block_groups: int
    seed: int
    generator_version: int = GENERATOR_VERSION


# --------------------------------------------------------------------------------------------
# Synthetic data


def _features() -> list[str]:
    from ingestion.core.datasets import MEASURE_SUFFIXES, acs_spec

    return [f"{m}{s}" for m in acs_spec("block_group").measures for s in MEASURE_SUFFIXES]


def _geoid_strings(values: np.ndarray) -> np.ndarray:
    # State 99 does not exist: every GEOID here is visibly synthetic, and 12 digits long.
    return pd.Series(values, dtype="int64").astype(str).to_numpy(dtype=object)


def _block_groups(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """2010 block groups and, per 2010 block group, its 2020 GEOID(s)."""
    if n > 998 * 2000:
        raise ValueError(f"--block-groups {n}: at most {998 * 2000} fit the synthetic GEOID scheme")
    i = np.arange(n, dtype=np.int64)
    base = 99 * 10**10 + (i // 2000 + 1) * 10**7  # state 99, county 001..998
    tract = (i // 4) % 500 * 100 + 100
    bg = i % 4 + 1
    u = rng.random(n)
    kind = np.where(u < SHARE_RENUMBERED_2020, 1,
                    np.where(u < SHARE_RENUMBERED_2020 + SHARE_SPLIT_2020, 2, 0))
    return {
        "geoid_2010": base + tract * 10 + bg,
        "kind": kind,  # 0 same GEOID in 2020, 1 renumbered, 2 split in two
        "geoid_2020_a": np.where(kind == 0, base + tract * 10 + bg,
                                 np.where(kind == 1, base + (tract + 500_000) * 10 + bg,
                                          base + (tract + 600_000) * 10 + bg)),
        "geoid_2020_b": np.where(kind == 2, base + (tract + 700_000) * 10 + bg, -1),
    }


def _acs_frame(rng: np.random.Generator, geoids: np.ndarray, vintage: int) -> pd.DataFrame:
    """One vintage of the block-group ACS dataset: every catalog measure, MOE, CV, reasons."""
    from ingestion.core.datasets import RELIABILITY_CLASSES
    from sdoh_sources import load_catalog

    catalog = load_catalog()
    release = catalog.release("acs5", vintage)
    geoids = geoids[rng.random(len(geoids)) >= SHARE_MISSING_ROW]
    n = len(geoids)
    data: dict[str, Any] = {
        "block_group_geoid": _geoid_strings(geoids),
        "boundary_year": np.full(n, release.boundary_vintage, dtype=np.int64),
        "vintage": np.full(n, vintage, dtype=np.int64),
        "release_ts": pd.Series(pd.Timestamp(release.release_ts), index=range(n)),
        "synthetic": np.ones(n, dtype=bool),
        "reliability_rule": np.full(n, "cv_12_40", dtype=object),
    }
    high, medium = 12.0, 40.0  # the cv_12_40 rule
    for m in catalog.acs.measures_at("block_group"):
        if m.measure_type == "count":
            value = rng.integers(20, 4000, n).astype(float)
        elif m.measure_type == "median":
            value = np.round(rng.uniform(15_000, 250_000, n), 0)
        else:
            value = np.round(rng.uniform(0.1, 100.0, n), 1)
        moe = np.round(value * rng.uniform(0.02, 0.6, n), 1)
        cv = moe / 1.645 / value * 100
        reliability = np.where(cv <= high, RELIABILITY_CLASSES[0],
                               np.where(cv <= medium, RELIABILITY_CLASSES[1],
                                        RELIABILITY_CLASSES[2])).astype(object)
        gone = rng.random(n) < SHARE_SUPPRESSED
        reason = np.full(n, None, dtype=object)
        reason[gone] = rng.choice(np.array(SUPPRESSION_REASONS, dtype=object), int(gone.sum()))
        value[gone] = moe[gone] = cv[gone] = np.nan
        reliability[gone] = None
        data |= {m.name: value, f"{m.name}_moe": moe, f"{m.name}_cv": cv,
                 f"{m.name}_reliability": reliability, f"{m.name}_missing": reason}
    return pd.DataFrame(data)


def _timeline(rng: np.random.Generator, n_patients: int,
              geo: dict[str, np.ndarray]) -> pd.DataFrame:
    """Address periods (1-3 per patient, valid_to exclusive), linked to 2010 and 2020 GEOIDs."""
    from ingestion.core.datasets import geography_timeline_spec

    periods = rng.integers(1, 4, n_patients)
    who = np.repeat(np.arange(n_patients), periods)
    n = len(who)
    starts = np.r_[0, np.cumsum(periods)[:-1]]
    first_of_patient = np.zeros(n, dtype=bool)
    first_of_patient[starts] = True
    last_of_patient = np.zeros(n, dtype=bool)
    last_of_patient[np.cumsum(periods) - 1] = True
    span = int((ADDRESS_TO - ADDRESS_FROM) / np.timedelta64(1, "s"))
    first = ADDRESS_FROM + rng.integers(0, span, n_patients).astype("timedelta64[s]")
    gaps = rng.integers(90 * DAY, 3 * 365 * DAY, n)
    gaps[first_of_patient] = 0
    moved = np.cumsum(gaps)
    moved -= np.repeat(moved[starts], periods)
    valid_from = first[who] + moved.astype("timedelta64[s]")
    valid_to = np.empty(n, dtype="datetime64[s]")
    valid_to[:-1] = valid_from[1:]
    ended = rng.random(n) < SHARE_ENDED
    valid_to[last_of_patient] = np.datetime64("NaT")
    stop = last_of_patient & ended
    valid_to[stop] = valid_from[stop] + rng.integers(
        180 * DAY, 3 * 365 * DAY, int(stop.sum())).astype("timedelta64[s]")

    where = rng.integers(0, len(geo["geoid_2010"]), n)
    g2010 = geo["geoid_2010"][where]
    pick_b = (geo["kind"][where] == 2) & (rng.random(n) < 0.5)
    g2020 = np.where(pick_b, geo["geoid_2020_b"][where], geo["geoid_2020_a"][where])
    u = rng.random(n)
    unlinked = u < SHARE_UNLINKED
    outside_2010 = ~unlinked & (u < SHARE_UNLINKED + SHARE_OUTSIDE_2010)
    reason = np.full(n, None, dtype=object)
    reason[unlinked] = rng.choice(np.array(UNLINKED_REASONS, dtype=object), int(unlinked.sum()))

    def geoids(values: np.ndarray, blank: np.ndarray) -> dict[str, np.ndarray]:
        bg = _geoid_strings(values)
        bg[blank] = None
        tract = np.array([g[:11] if g else None for g in bg], dtype=object)
        county = np.array([g[:5] if g else None for g in bg], dtype=object)
        return {"block_group": bg, "tract": tract, "county": county}

    by_year = {2010: geoids(g2010, unlinked | outside_2010), 2020: geoids(g2020, unlinked)}
    frame = pd.DataFrame({
        "patient_id": pd.Series(who).map("P{:08d}".format).to_numpy(dtype=object),
        "valid_from": pd.to_datetime(valid_from).tz_localize("UTC"),
        "valid_to": pd.to_datetime(valid_to).tz_localize("UTC"),
        **{f"{level}_geoid_{year}": cols[level]
           for year, cols in by_year.items() for level in ("block_group", "tract", "county")},
        "link_method": np.where(unlinked, "none", "point_in_polygon").astype(object),
        "precision": np.where(~unlinked, "coordinate",
                              np.where(reason == "zip_only", "zip", "none")).astype(object),
        "link_missing": reason,
        # Linked by points only: no ZCTA polygons, no ZIP crosswalk, raw patient ids.
        **{f"zcta_geoid_{year}": np.full(n, None, dtype=object) for year in by_year},
        **{column: np.full(n, None, dtype=object)
           for column in ("zip_join_type", "zip_crosswalk_vintage")},
        "zip_link_ratio": np.full(n, np.nan),
        "nonresidential_zip": np.zeros(n, dtype=bool),
        "patient_id_scheme": np.full(n, "raw", dtype=object),
    })
    return frame[list(geography_timeline_spec().column_names)]


def _events(rng: np.random.Generator, n_events: int, n_patients: int) -> pd.DataFrame:
    """Events spread over 2019-2024; a few patients have no address history at all."""
    known = int(n_patients * (1 + SHARE_UNKNOWN_PATIENTS))
    who = rng.integers(0, known, n_events)
    span = int((EVENTS_TO - EVENTS_FROM) / np.timedelta64(1, "s"))
    at = EVENTS_FROM + rng.integers(0, span, n_events).astype("timedelta64[s]")
    return pd.DataFrame({
        "patient_id": pd.Series(who).map("P{:08d}".format).to_numpy(dtype=object),
        "event_timestamp": pd.to_datetime(at).tz_localize("UTC").astype("datetime64[us, UTC]"),
    })


def _events_path(workdir: Path) -> Path:
    return workdir / "raw" / "events.parquet"


def _hop2_path(workdir: Path) -> Path:
    return workdir / "raw" / "hop2_entities.parquet"


def prepare(params: Params, workdir: Path) -> dict[str, Any]:
    """Generate, publish and register the data unless ``workdir`` already holds it."""
    return harness.reuse_or_generate(workdir, params, lambda: _generate(params, workdir))


def _generate(params: Params, workdir: Path) -> dict[str, Any]:
    from feature_repo import apply_definitions, feature_store
    from ingestion.core.datasets import acs_spec, geography_timeline_spec
    from ingestion.core.workspace import Workspace
    from ingestion.gate.publish import publish

    ws = Workspace(workdir)
    prep: dict[str, Any] = {}
    rng = np.random.default_rng(params.seed)
    t0 = time.perf_counter()
    geo = _block_groups(rng, params.block_groups)
    split = geo["geoid_2020_b"] > 0
    geoids_2020 = np.unique(np.r_[geo["geoid_2020_a"], geo["geoid_2020_b"][split]])
    acs = pd.concat([_acs_frame(rng, geo["geoid_2010"] if v < 2020 else geoids_2020, v)
                     for v in VINTAGES], ignore_index=True)
    timeline = _timeline(rng, params.patients, geo)
    events = _events(rng, params.events, params.patients)
    prep["generate_s"] = time.perf_counter() - t0
    prep["acs_rows"], prep["timeline_rows"] = len(acs), len(timeline)
    prep["block_groups_2010"], prep["block_groups_2020"] = params.block_groups, len(geoids_2020)
    print(f"generated {len(acs):,} ACS rows, {len(timeline):,} address periods, "
          f"{len(events):,} events in {prep['generate_s']:.1f} s")

    for name, frame, spec in (("acs", acs, acs_spec("block_group")),
                              ("timeline", timeline, geography_timeline_spec())):
        t0 = time.perf_counter()
        result = publish(frame, spec, ws, merge=False)
        prep[f"publish_{name}_s"] = time.perf_counter() - t0
        print(f"published {spec.name}: {result.report.summary()} "
              f"(conform + write + Great Expectations + move: {prep[f'publish_{name}_s']:.1f} s)")
    del acs, timeline
    t0 = time.perf_counter()
    views = apply_definitions(feature_store(ws, profile="embedded"), ws)
    prep["apply_s"] = time.perf_counter() - t0
    if sorted(views) != sorted([VIEW, "patient_geography"]):
        raise SystemExit(f"unexpected views registered: {views}")
    _events_path(workdir).parent.mkdir(parents=True, exist_ok=True)
    events.to_parquet(_events_path(workdir), index=False, coerce_timestamps="us")
    # Feast's hop 2 alone needs the keys hop 1 would produce: take them from the reference query.
    with _duckdb(events) as con:
        keys = con.execute(reference_sql(ws, keys_only=True)).df()
    keys.to_parquet(_hop2_path(workdir), index=False, coerce_timestamps="us")
    prep["hop2_rows"] = len(keys)
    return prep


# --------------------------------------------------------------------------------------------
# The raw DuckDB reference


def _q(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def reference_sql(workspace: Any, *, keys_only: bool = False) -> str:
    """The training frame as one DuckDB statement over the published parquet files.

    Reads the registered relation ``events`` (patient_id, event_timestamp, _row). With
    ``keys_only`` it returns the hop-2 entity rows (_row, block_group_geoid, vintage,
    event_timestamp) of the events that have a GEOID to look up.
    """
    timeline = _q(workspace.published_glob("patient_geography"))
    acs = _q(workspace.published_glob(VIEW))
    ctes = f"""
WITH calendar AS (          -- the vintages published, by release instant
    SELECT DISTINCT vintage, release_ts, boundary_year FROM read_parquet({acs})
),
located AS (                -- hop 1: the address period that began last at or before the event
    SELECT e._row, e.patient_id, e.event_timestamp, g.valid_to, g.link_method, g.link_missing,
           g.block_group_geoid_2010, g.block_group_geoid_2020
    FROM events e ASOF LEFT JOIN read_parquet({timeline}) g
      ON e.patient_id = g.patient_id AND e.event_timestamp >= g.valid_from
),
in_force AS (               -- the vintage released last at or before the event
    SELECT l.*, c.vintage, c.boundary_year,
           CASE WHEN l.link_method IS NULL OR l.valid_to <= l.event_timestamp
                THEN 'no_address_at_event' ELSE l.link_missing END AS address_reason
    FROM located l ASOF LEFT JOIN calendar c ON l.event_timestamp >= c.release_ts
),
lookup AS (                 -- the GEOID of that vintage's boundary year, or why there is none
    SELECT _row, patient_id, event_timestamp, vintage,
           CASE WHEN vintage IS NOT NULL AND address_reason IS NULL THEN
                CASE boundary_year WHEN 2010 THEN block_group_geoid_2010
                                   WHEN 2020 THEN block_group_geoid_2020 END
           END AS geoid,
           CASE WHEN vintage IS NULL THEN 'not_yet_released'
                WHEN address_reason IS NOT NULL THEN address_reason
                WHEN (CASE boundary_year WHEN 2010 THEN block_group_geoid_2010
                                         WHEN 2020 THEN block_group_geoid_2020 END) IS NULL
                THEN 'outside_boundaries'
           END AS row_reason
    FROM in_force
)"""
    if keys_only:
        return ctes + """
SELECT _row, geoid AS block_group_geoid, vintage, event_timestamp
FROM lookup WHERE geoid IS NOT NULL ORDER BY _row"""
    features = _features()
    columns = []
    for f in features:
        if f.endswith("_missing"):
            value = f.removesuffix("_missing")
            columns.append(f"CASE WHEN k.geoid IS NULL THEN k.row_reason "
                           f"WHEN a.{value} IS NULL AND a.{f} IS NULL "
                           f"THEN 'geography_not_in_vintage' ELSE a.{f} END AS {VIEW}__{f}")
        else:
            columns.append(f"a.{f} AS {VIEW}__{f}")
    select = ",\n       ".join(columns)
    return ctes + f"""
SELECT k.patient_id, k.event_timestamp,
       CASE WHEN k.geoid IS NOT NULL THEN k.vintage END AS {VIEW}__vintage,
       k.geoid AS {VIEW}__geoid,
       {select}
FROM lookup k LEFT JOIN read_parquet({acs}) a
  ON a.block_group_geoid = k.geoid AND a.vintage = k.vintage
ORDER BY k._row"""


@contextlib.contextmanager
def _duckdb(events: pd.DataFrame):
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("events", events.assign(_row=np.arange(len(events), dtype=np.int64)))
        yield con
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# Child process: one implementation, timed


def _sample_rows(n_events: int, verify_rows: int, seed: int) -> np.ndarray:
    if verify_rows <= 0 or verify_rows >= n_events:
        return np.arange(n_events)
    return np.sort(np.random.default_rng(seed + 17).choice(n_events, verify_rows, replace=False))


def _child(impl: str, workdir: Path, out: Path, verify_rows: int, profile: Path | None) -> None:
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("feast").setLevel(logging.ERROR)
    from feature_repo import feature_store, training_frame
    from feature_repo.serving.lookup_rules import GEOGRAPHY_FEATURES
    from ingestion.core.workspace import Workspace

    warnings.filterwarnings("ignore")  # feast's modules reset the filters when imported

    params = harness.saved_params(workdir)
    ws = Workspace(workdir)
    columns = [f"{VIEW}__geoid", f"{VIEW}__vintage", *(f"{VIEW}__{f}" for f in _features())]
    events = pd.read_parquet(_events_path(workdir))
    store = feature_store(ws, profile="embedded") if impl != "duckdb" else None
    if impl == "ours":
        def run() -> pd.DataFrame:
            return training_frame(events, store=store, workspace=ws, feature_service=SERVICE)
        rows_in = len(events)
    elif impl == "duckdb":
        def run() -> pd.DataFrame:
            with _duckdb(events) as con:
                # Arrow then pandas: 2-3x faster than DuckDB's own .df() here, because
                # to_pandas() makes one Python object per distinct string (reasons, classes).
                return con.execute(reference_sql(ws)).to_arrow_table().to_pandas()
        rows_in = len(events)
    elif impl == "feast":
        entities = pd.read_parquet(_hop2_path(workdir))
        refs = [f"{VIEW}:{f}" for f in _features()]

        def run() -> pd.DataFrame:
            return store.get_historical_features(entity_df=entities, features=refs).to_df()
        rows_in = len(entities)
    elif impl == "feast-hop1":
        frame = events.assign(_row=np.arange(len(events)))
        refs = [f"patient_geography:{f}" for f in GEOGRAPHY_FEATURES]

        def run() -> pd.DataFrame:
            return store.get_historical_features(entity_df=frame, features=refs).to_df()
        rows_in = len(events)
    else:
        raise SystemExit(f"unknown implementation {impl!r}")

    gc.collect()
    if profile is None:
        clock = harness.timed(run)
    else:
        import cProfile

        profiler = cProfile.Profile()
        clock = harness.timed(lambda: profiler.runcall(run))
        profiler.dump_stats(str(profile))
    result = clock.result

    sample = _sample_rows(params["events"], verify_rows, params["seed"])
    sample_path = None
    if impl in ("ours", "duckdb"):
        if len(result) != len(events):
            raise SystemExit(f"{impl}: {len(result)} rows out for {len(events)} events")
        picked = result.iloc[sample][columns].set_axis(sample)
        sample_path = out.with_suffix(".pkl")
        picked.to_pickle(sample_path)
    elif impl == "feast":
        found = result.set_index("_row")
        found = found.loc[found.index.intersection(sample), _features()].sort_index()
        sample_path = out.with_suffix(".pkl")
        found.add_prefix(f"{VIEW}__").to_pickle(sample_path)
    out.write_text(json.dumps({
        "impl": impl, "wall_s": clock.wall_s, "rows_in": rows_in, "rows_out": len(result),
        "columns_out": result.shape[1], "peak_rss_mib": clock.peak_rss_mib,
        "rss_start_mib": clock.rss_start_mib,
        "sample": str(sample_path) if sample_path else None,
    }))


# --------------------------------------------------------------------------------------------
# Parent: run children, verify, report


def _run_child(impl: str, workdir: Path, tmp: Path, verify_rows: int,
               profile: Path | None = None) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    args = ["--workdir", str(workdir), "--verify-rows", str(verify_rows)]
    if profile is not None:
        args += ["--profile", str(profile)]
    child = harness.run_child("benchmarks.training_frame", impl, tmp / f"{impl}.json", args)
    # process_s: including imports and the sample dump.
    return {**child.result, "process_s": child.elapsed_s, "process_cpu_s": child.cpu_s,
            "other_load": child.other_load()}


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Cell-wise equality where two missing values are equal (NaN, None, pd.NA alike)."""
    a_missing, b_missing = a.isna().to_numpy(), b.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(a) or pd.api.types.is_numeric_dtype(b):
        x = pd.to_numeric(a, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        y = pd.to_numeric(b, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        equal = x == y
    else:
        equal = a.astype(object).to_numpy() == b.astype(object).to_numpy()
    return np.where(a_missing | b_missing, a_missing & b_missing, equal)


def _with_row_reasons(found: pd.DataFrame) -> pd.DataFrame:
    """Feast's raw hop-2 values with the one reason Feast cannot know: no row for the key."""
    found = found.copy()
    for col in [c for c in found.columns if c.endswith("_missing")]:
        value = found[col.removesuffix("_missing")]
        found[col] = found[col].mask(value.isna() & found[col].isna(), "geography_not_in_vintage")
    return found


def compare(left: pd.DataFrame, right: pd.DataFrame) -> dict[str, Any]:
    """Rows and cells compared between two samples on their common rows, and the mismatches."""
    rows = left.index.intersection(right.index)
    left, right = left.loc[rows], right.loc[rows]
    bad_rows = np.zeros(len(rows), dtype=bool)
    bad_cells: dict[str, int] = {}
    for col in left.columns:
        ok = _same(left[col], right[col])
        if not ok.all():
            bad_cells[col] = int((~ok).sum())
            bad_rows |= ~ok
    return {"rows": len(rows), "columns": left.shape[1], "mismatched_rows": int(bad_rows.sum()),
            "mismatched_cells": bad_cells,
            "first_bad_rows": [int(r) for r in rows[bad_rows][:5]]}


MACHINE_PACKAGES = ("feast", "duckdb", "pandas", "numpy")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One implementation's runs: best and median wall time, the highest peak RSS."""
    return harness.summarize(runs, ("impl", "rows_in", "rows_out", "columns_out",
                                    "rss_start_mib"))


def table(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table (ratio to the raw DuckDB run when it was measured)."""
    floor = next((r["wall_s"] for r in results if r["impl"] == "duckdb"), None)
    rows = [[IMPLEMENTATIONS[r["impl"]], f"{r['rows_in']:,}", f"{r['wall_s']:.2f}",
             f"{r['wall_median_s']:.2f}", f"{r['rows_in'] / r['wall_s']:,.0f}",
             f"{r['peak_rss_mib']:,.0f}",
             f"{r['rss_start_mib']:,.0f}" if r["rss_start_mib"] is not None else "n/a",
             f"{r['wall_s'] / floor:.1f}" if floor else "n/a"] for r in results]
    return harness.markdown_table(
        ["implementation", "rows in", "wall time (s), best", "median", "events/s",
         "peak RSS (MiB)", "RSS at start (MiB)", "x raw DuckDB"], rows, align="lrrrrrrr")


def _print_profile(path: Path, top: int = 25) -> None:
    import pstats

    print(f"\nprofile of ours written to {path}; top {top} by cumulative time:")
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(top)


def _parser() -> argparse.ArgumentParser:
    parser = harness.parser(
        "benchmarks.training_frame",
        "Time point-in-time training frames on the same synthetic published data: ours "
        "(training_frame), a raw DuckDB SQL reference (the floor) and Feast's "
        "get_historical_features; each in its own process, peak RSS per process; checks that "
        "ours and DuckDB give identical values. Not a test.", EXAMPLE, IMPLEMENTATIONS)
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events (patient_id, event_timestamp) 2019-2024 (default 1,000,000)")
    parser.add_argument("--patients", type=int, default=200_000,
                        help="patients with 1-3 address periods each (default 200,000)")
    parser.add_argument("--block-groups", type=int, default=20_000,
                        help="2010 block groups; 20%% get another GEOID in 2020 (default 20,000)")
    parser.add_argument("--workdir", type=Path, default=Path("bench_workspace"),
                        help="workspace for the generated, published data; regenerated only if "
                             "absent or the parameters changed (default ./bench_workspace)")
    harness.add_run_options(parser, IMPLEMENTATIONS)
    parser.add_argument("--verify-rows", type=int, default=100_000,
                        help="rows of ours and DuckDB compared cell by cell, a seeded sample "
                             "(0: all rows; default 100,000)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write machine, parameters, results and checks to this file")
    parser.add_argument("--profile", type=Path, default=None,
                        help="after the timed runs, run ours once more under cProfile and write "
                             "the stats here (the timed runs are not profiled)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    workdir = args.workdir.resolve()
    if args.child:
        _child(args.child, workdir, args.child_out, args.verify_rows, args.profile)
        return 0
    which = harness.parse_which(args.which, IMPLEMENTATIONS)
    harness.at_least_one(args, "events", "patients", "block_groups", "repeat")

    machine = harness.machine(*MACHINE_PACKAGES)
    print(harness.machine_line(machine, "feast", "duckdb", "pandas"))
    params = Params(args.events, args.patients, args.block_groups, args.seed)
    prep = prepare(params, workdir)
    print(f"data: {params.events:,} events, {params.patients:,} patients "
          f"({prep['timeline_rows']:,} address periods), {prep['block_groups_2010']:,} 2010 and "
          f"{prep['block_groups_2020']:,} 2020 block groups, {prep['acs_rows']:,} ACS rows "
          f"(vintages {', '.join(map(str, VINTAGES))}), {len(_features())} features of {VIEW}; "
          f"{prep['hop2_rows']:,} events have a GEOID to look up")

    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in which}
    checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sdoh_bench_") as tmp:
        for round_, impl in harness.rounds(which, args.repeat):
            r = _run_child(impl, workdir, Path(tmp) / str(round_),
                           args.verify_rows if round_ == 0 else 1)
            print(harness.run_line(r, cpus=machine["nproc"], detail=f", {r['rows_out']:,} rows x "
                                                                    f"{r['columns_out']} columns out"))
            runs[impl].append(r)
        results = [summarize(runs[impl]) for impl in which]
        samples = {impl: pd.read_pickle(rs[0]["sample"]) for impl, rs in runs.items()
                   if rs[0]["sample"]}
        if "ours" in samples and "duckdb" in samples:
            checks["ours_vs_duckdb"] = compare(samples["ours"], samples["duckdb"])
        if "feast" in samples and "duckdb" in samples:
            feast_rows = _with_row_reasons(samples["feast"])
            checks["feast_hop2_vs_duckdb"] = compare(feast_rows,
                                                     samples["duckdb"][feast_rows.columns])
        if args.profile is not None:
            print("profiling ours under cProfile ...", flush=True)
            _run_child("ours", workdir, Path(tmp), 1, profile=args.profile.resolve())

    print()
    print(table(results))
    note = harness.load_note(harness.max_other_load(runs), cpus=machine["nproc"])
    if note:
        print(note)
    print()
    failed = False
    for name, check in checks.items():
        print(f"check {name}: {check['rows']:,} rows x {check['columns']} columns compared, "
              f"mismatched rows = {check['mismatched_rows']}"
              + (f" (cells by column: {check['mismatched_cells']}, "
                 f"rows {check['first_bad_rows']})" if check["mismatched_rows"] else ""))
        failed |= check["mismatched_rows"] > 0 or check["rows"] == 0
    if args.profile is not None:
        _print_profile(args.profile.resolve())
    if args.json is not None:
        from ingestion.core.workspace import Workspace

        args.json.write_text(json.dumps({"machine": machine, "params": asdict(params),
                                         "prep": prep, "results": results, "checks": checks,
                                         "sql": reference_sql(Workspace(workdir))},
                                        indent=2, default=str))
        print(f"wrote {args.json}")
    if failed:
        print("FAILED: the implementations disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
