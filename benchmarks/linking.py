"""Benchmark: patient geography linking, ours vs a plain geopandas ``sjoin``, per boundary vintage.

Generated data (deterministic, ``--seed``), written once to ``--workdir``:

* **Block groups** of each boundary vintage: a jittered grid over a 10 x 10 degree box, every
  interior vertex moved at random and every edge bent at ``--segments - 1`` shared points, so
  the polygons are valid, tile the box and share their edges exactly. The 2010 and 2020 grids
  differ (2020 has 11% more block groups, as the real 2020 census has). GEOIDs are 12-digit
  strings of the nonexistent state 99 (visibly synthetic), numbered along the grid's columns;
  rows are in GEOID order, as in TIGER/Line files.
* **Points**: uniform over the box and a margin around it (about 4% fall outside every
  polygon), plus 1% exactly on a 2010 grid corner (a vertex shared by 4 polygons) and 1% on a
  2020 bend point (a vertex shared by 2).
* **An address history** with one period per point: 1-3 periods per patient, back to back,
  the last one current; coordinates only.

Each run is a fresh process (peak RSS is that process's own, ``VmHWM``) that reads the data
and makes a warm-up call on 100 rows before the clock starts; the clock (wall and CPU time)
covers exactly one call:

``ours``
    ``ingestion.geo.linking.link_addresses(history, {year: polygons})``: validating the history,
    point in polygon and the full patient geography timeline (every GEOID level, link method,
    precision, missing reason), for one vintage, or both in one call (``ours-both``).
``sjoin``
    ``geopandas.sjoin(points, polygons, predicate="within")`` on a points GeoDataFrame built
    before the clock starts: the index pairs and joined columns, no timeline. Building that
    GeoDataFrame from the history is timed separately and printed beside the table, with the
    ratio of ours to points + sjoin (the clock of ours starts from the history as read).

Then the parent checks that both agree: every point ``sjoin`` places must get the same GEOID
from ours; a point ``sjoin`` leaves out must be outside every polygon for ours too, or lie on
the boundary of the polygon ours chose, which must be the smallest GEOID among the polygons
whose closure holds it. ``ours-both`` must equal the two single-vintage runs. Any difference
exits with status 1.

Run ``python -m benchmarks.linking --help``; ``--small`` is a quick check. Results for this
machine are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
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

GENERATOR_VERSION = 2
EXTENT = (-80.0, 35.0, -70.0, 45.0)  # min lon, min lat, max lon, max lat
MARGIN = 0.1  # degrees of box around EXTENT where points fall outside every polygon
SHARE_ON_VERTEX = 0.01  # of the points, on 2010 grid corners and again on 2020 bend points
MORE_IN_2020 = 1.11  # 2020 block groups per 2010 block group
IMPLEMENTATIONS = {
    "ours-2010": ("ours: link_addresses", (2010,)),
    "sjoin-2010": ("geopandas sjoin within", (2010,)),
    "ours-2020": ("ours: link_addresses", (2020,)),
    "sjoin-2020": ("geopandas sjoin within", (2020,)),
    "ours-both": ("ours: link_addresses", (2010, 2020)),
}
EXAMPLE = """\
examples:
  python -m benchmarks.linking --small
  python -m benchmarks.linking --workdir /tmp/sdoh_bench_link --json /tmp/linking.json
  python -m benchmarks.linking --which ours-2020,sjoin-2020 --repeat 3
"""


@dataclass(frozen=True)
class Params:
    """What the generated data depends on."""

    points: int
    block_groups: int
    segments: int
    seed: int
    generator_version: int = GENERATOR_VERSION


# --------------------------------------------------------------------------------------------
# Data


def jittered_grid(nx: int, ny: int, *, rng: np.random.Generator, segments: int,
                  extent: tuple[float, float, float, float] = EXTENT,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``nx * ny`` valid polygons tiling ``extent``, sharing their edges exactly.

    Interior grid corners move by up to a quarter cell; each edge is bent at ``segments - 1``
    points (moved across the edge by up to 30% of their spacing, at most 8% of a cell, except
    on the outer box), which both polygons on either side of the edge use. Polygon
    ``i * ny + j`` is cell column ``i``, row ``j``.

    Returns
    -------
    polygons : numpy.ndarray of shapely.Polygon
    corners : numpy.ndarray
        The grid corners, shape ``(nx + 1, ny + 1, 2)``.
    bends : numpy.ndarray
        The bend points of the interior horizontal edges, shape ``(m, 2)``.

    Raises
    ------
    ValueError
        A polygon came out invalid (it cannot with these bounds; checked anyway).

    Examples
    --------
    >>> polygons, corners, bends = jittered_grid(3, 2, rng=np.random.default_rng(0), segments=2)
    >>> len(polygons), corners.shape, bends.shape
    (6, (4, 3, 2), (3, 2))
    >>> import shapely
    >>> bool(shapely.is_valid(polygons).all()), round(float(shapely.area(polygons).sum()), 6)
    (True, 100.0)
    """
    x0, y0, x1, y1 = extent
    dx, dy = (x1 - x0) / nx, (y1 - y0) / ny
    gx, gy = np.meshgrid(x0 + dx * np.arange(nx + 1), y0 + dy * np.arange(ny + 1), indexing="ij")
    corners = np.stack([gx, gy], axis=-1)
    corners[1:-1, 1:-1] += rng.uniform(-0.25, 0.25, corners[1:-1, 1:-1].shape) * (dx, dy)
    t = (np.arange(1, segments) / segments)[:, None]
    bend = min(0.08, 0.3 / segments)  # larger bends than this can make edges cross
    # Horizontal edges corners[i, j] -> corners[i + 1, j], bent up or down (not the box's).
    h = corners[:-1, :, None] + (corners[1:, :, None] - corners[:-1, :, None]) * t
    h[:, 1:-1, :, 1] += rng.uniform(-bend, bend, h[:, 1:-1, :, 1].shape) * dy
    # Vertical edges corners[i, j] -> corners[i, j + 1], bent left or right.
    v = corners[:, :-1, None] + (corners[:, 1:, None] - corners[:, :-1, None]) * t
    v[1:-1, :, :, 0] += rng.uniform(-bend, bend, v[1:-1, :, :, 0].shape) * dx
    ring = np.concatenate([
        corners[:-1, :-1, None], h[:, :-1], corners[1:, :-1, None], v[1:],
        corners[1:, 1:, None], h[:, 1:, ::-1], corners[:-1, 1:, None], v[:-1, :, ::-1],
        corners[:-1, :-1, None],
    ], axis=2)
    import shapely

    polygons = shapely.polygons(ring.reshape(nx * ny, -1, 2))
    invalid = ~shapely.is_valid(polygons)
    if invalid.any():
        raise ValueError(f"{int(invalid.sum())} invalid polygons, e.g. "
                         f"{shapely.is_valid_reason(polygons[invalid][0])}")
    return polygons, corners, h[:, 1:-1].reshape(-1, 2)


def _grid_shape(n: int) -> tuple[int, int]:
    """Columns and rows of a near-square grid of at least ``n`` cells."""
    nx = max(int(np.sqrt(n)), 1)
    return nx, -(-n // nx)


def block_groups(n: int, *, year: int, rng: np.random.Generator,
                 segments: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """A boundary vintage: GeoDataFrame (geoid, geometry) in GEOID order, corners, bends.

    Examples
    --------
    >>> frame, _, _ = block_groups(10, year=2010, rng=np.random.default_rng(0), segments=2)
    >>> len(frame), sorted(frame["geoid"])[:2]
    (12, ['990000000011', '990000000012'])
    """
    import geopandas as gpd

    polygons, corners, bends = jittered_grid(*_grid_shape(n), rng=rng, segments=segments)
    i = np.arange(len(polygons))
    first_tract = 1 if year == 2010 else 500_000_001  # renumbered in 2020
    geoids = pd.Series(99 * 10**10 + (i // 4 + first_tract) * 10 + i % 4 + 1).astype(str)
    frame = gpd.GeoDataFrame({"geoid": pd.array(geoids, dtype="string")}, geometry=polygons,
                             crs="EPSG:4269")
    return frame, corners, bends


def points(n: int, *, rng: np.random.Generator, corners: np.ndarray,
           bends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes: uniform with a margin, some exactly on shared vertices.

    Examples
    --------
    >>> corners = np.array([[[-80.0, 35.0], [-75.0, 40.0]]])
    >>> lon, lat = points(200, rng=np.random.default_rng(0), corners=corners,
    ...                   bends=np.array([[-72.5, 41.25]]))
    >>> int((lon == -75.0).sum() + (lon == -80.0).sum()), int((lon == -72.5).sum())
    (2, 2)
    """
    x0, y0, x1, y1 = EXTENT
    lon = rng.uniform(x0 - MARGIN, x1 + MARGIN, n)
    lat = rng.uniform(y0 - MARGIN, y1 + MARGIN, n)
    k = int(n * SHARE_ON_VERTEX)
    picks = rng.permutation(n)[:2 * k]
    on_corner = corners.reshape(-1, 2)[rng.integers(0, corners[:, :, 0].size, k)]
    on_bend = bends[rng.integers(0, len(bends), k)]
    lon[picks], lat[picks] = np.r_[on_corner, on_bend].T
    return lon, lat


def address_history(lon: np.ndarray, lat: np.ndarray, *, rng: np.random.Generator) -> pd.DataFrame:
    """One period per point: 1-3 back-to-back periods per patient, the last one current.

    Sorted by patient and start, as `link_addresses` returns its timeline.

    Examples
    --------
    >>> h = address_history(np.zeros(5), np.zeros(5), rng=np.random.default_rng(1))
    >>> list(h.columns), int(h["valid_to"].isna().sum()) == h["patient_id"].nunique()
    (['patient_id', 'valid_from', 'valid_to', 'latitude', 'longitude'], True)
    """
    n = len(lon)
    who = np.repeat(np.arange(n), rng.integers(1, 4, n))[:n]
    first = np.r_[True, who[1:] != who[:-1]]
    last = np.r_[who[1:] != who[:-1], True]
    rank = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    start = (pd.Timestamp("2012-01-01", tz="UTC")
             + pd.to_timedelta(rank * 700 + rng.integers(0, 300, n), unit="D"))
    end = pd.Series(start).shift(-1).mask(last)
    return pd.DataFrame({
        "patient_id": pd.Series(who).map("P{:08d}".format).astype("string"),
        "valid_from": start.astype("datetime64[us, UTC]"),
        "valid_to": end.astype("datetime64[us, UTC]"),
        "latitude": lat,
        "longitude": lon,
    })


def prepare(params: Params, workdir: Path) -> dict[str, Any]:
    """Generate and write the data unless ``workdir`` already holds it."""
    return harness.reuse_or_generate(workdir, params, lambda: _generate(params, workdir))


def _generate(params: Params, workdir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    frame_2010, corners, _ = block_groups(params.block_groups, year=2010, rng=rng,
                                          segments=params.segments)
    frame_2020, _, bends = block_groups(int(params.block_groups * MORE_IN_2020), year=2020,
                                        rng=rng, segments=params.segments)
    lon, lat = points(params.points, rng=rng, corners=corners, bends=bends)
    history = address_history(lon, lat, rng=rng)
    prep = {"generate_s": time.perf_counter() - t0, "block_groups_2010": len(frame_2010),
            "block_groups_2020": len(frame_2020), "periods": len(history),
            "patients": int(history["patient_id"].nunique()),
            "vertices_per_polygon": params.segments * 4}
    frame_2010.to_parquet(_polygons_path(workdir, 2010))
    frame_2020.to_parquet(_polygons_path(workdir, 2020))
    history.to_parquet(_history_path(workdir), index=False)
    print(f"generated {prep['block_groups_2010']:,} 2010 and {prep['block_groups_2020']:,} 2020 "
          f"block groups, {len(history):,} address periods in {prep['generate_s']:.1f} s")
    return prep


def _polygons_path(workdir: Path, year: int) -> Path:
    return workdir / f"block_groups_{year}.parquet"


def _history_path(workdir: Path) -> Path:
    return workdir / "history.parquet"


# --------------------------------------------------------------------------------------------
# Child process: one implementation, timed


def _child(impl: str, workdir: Path, out: Path) -> None:
    warnings.filterwarnings("ignore")
    import geopandas as gpd

    from ingestion.geo.linking import link_addresses

    years = IMPLEMENTATIONS[impl][1]
    polygons = {year: gpd.read_parquet(_polygons_path(workdir, year)) for year in years}
    history = pd.read_parquet(_history_path(workdir))
    points_s = None
    if impl.startswith("ours"):
        data = history

        def run(rows: Any) -> Any:
            return link_addresses(rows, polygons)
    else:
        (frame,) = polygons.values()
        gpd.points_from_xy(history["longitude"][:100], history["latitude"][:100])  # warm up
        t0 = time.perf_counter()
        data = gpd.GeoDataFrame(
            geometry=gpd.points_from_xy(history["longitude"], history["latitude"]),
            crs="EPSG:4269")
        points_s = time.perf_counter() - t0  # off the clock; reported beside it

        def run(rows: Any) -> Any:
            return gpd.sjoin(rows, frame, predicate="within")
    run(data.head(100))  # warm up: one-time imports and caches (the catalog) stay off the clock
    clock = harness.timed(lambda: run(data))
    result = clock.result

    if impl.startswith("ours"):
        same = (result["patient_id"].equals(history["patient_id"])
                and result["valid_from"].equals(history["valid_from"]))
        if not same:
            raise SystemExit(f"{impl}: the timeline's rows are not the history's rows")
        found = {year: result[f"block_group_geoid_{year}"] for year in years}
    else:
        geoids = pd.Series(pd.NA, index=history.index, dtype="string")
        first = result[~result.index.duplicated(keep="first")]
        geoids[first.index] = first["geoid"]
        found = {years[0]: geoids}
    pd.DataFrame({str(year): values for year, values in found.items()}) \
        .to_parquet(out.with_suffix(".parquet"))
    out.write_text(json.dumps({"impl": impl, "wall_s": clock.wall_s, "cpu_s": clock.cpu_s,
                               "rows_in": len(history), "rows_out": len(result),
                               "peak_rss_mib": clock.peak_rss_mib,
                               "rss_start_mib": clock.rss_start_mib, "points_s": points_s}))


# --------------------------------------------------------------------------------------------
# Parent: run children, check, report


def _run_child(impl: str, workdir: Path, tmp: Path) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / f"{impl}.json"
    child = harness.run_child("benchmarks.linking", impl, out, ["--workdir", str(workdir)])
    return {**child.result, "geoids": str(out.with_suffix(".parquet")),
            "other_load": child.other_load()}


def check(ours: pd.Series, sjoin: pd.Series, *, polygons: Any, lon: np.ndarray,
          lat: np.ndarray) -> dict[str, Any]:
    """Compare one vintage's GEOIDs: equal where sjoin places a point, else explained by an edge.

    A point sjoin's ``within`` leaves out but ours places must lie on the boundary of the
    polygon ours chose, and that must be the smallest GEOID of the polygons it intersects.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> squares = gpd.GeoDataFrame({"geoid": ["2", "1"]},
    ...                            geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    >>> got = check(pd.Series(["2", "1", None]), pd.Series(["2", None, None]), polygons=squares,
    ...             lon=np.array([0.5, 1.0, 5.0]), lat=np.array([0.5, 0.5, 5.0]))
    >>> got["mismatched"], got["on_edges"], got["outside"]
    (0, 1, 1)
    """
    import shapely

    a, b = ours.to_numpy(dtype=object, na_value=None), sjoin.to_numpy(dtype=object, na_value=None)
    ours_placed, placed = ours.notna().to_numpy(), sjoin.notna().to_numpy()
    same = placed & ours_placed & (a == b)
    outside = ~placed & ~ours_placed
    where = np.flatnonzero(~placed & ours_placed)  # on an edge, if ours is right
    geometry = np.asarray(polygons.geometry.array, dtype=object)
    geoid = polygons["geoid"].to_numpy(dtype=object)
    located = shapely.points(lon[where], lat[where])
    point_at, polygon_at = shapely.STRtree(geometry).query(located, predicate="intersects")
    smallest = pd.Series(geoid[polygon_at]).groupby(point_at).min() \
        .reindex(range(len(where))).to_numpy(dtype=object)
    chosen = geometry[pd.Index(geoid).get_indexer(a[where])]
    on_edge = np.zeros(len(a), dtype=bool)
    on_edge[where] = shapely.intersects(shapely.boundary(chosen), located) & (smallest == a[where])
    bad = ~(same | on_edge | outside)
    return {"points": len(a), "placed_by_sjoin": int(placed.sum()), "equal": int(same.sum()),
            "on_edges": int(on_edge.sum()), "outside": int(outside.sum()),
            "mismatched": int(bad.sum()), "first_bad_points": np.flatnonzero(bad)[:5].tolist()}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One implementation's runs: best and median wall time, the highest peak RSS."""
    return {**harness.summarize(runs, ("impl", "rows_in", "rows_out", "rss_start_mib")),
            "cpu_s": min(r["cpu_s"] for r in runs),
            "points_s": min((r["points_s"] for r in runs if r.get("points_s") is not None),
                            default=None)}


def ratios(results: dict[str, dict[str, Any]], *, key: str = "wall_s") -> dict[str, float]:
    """Ours / sjoin best time (``key``), per vintage and for both vintages vs the two sjoins."""
    out = {}
    for year in (2010, 2020):
        if f"ours-{year}" in results and f"sjoin-{year}" in results:
            out[str(year)] = results[f"ours-{year}"][key] / results[f"sjoin-{year}"][key]
    if {"ours-both", "sjoin-2010", "sjoin-2020"} <= set(results):
        out["both"] = results["ours-both"][key] / (
            results["sjoin-2010"][key] + results["sjoin-2020"][key])
    return out


def table(results: dict[str, dict[str, Any]], polygons: dict[int, int]) -> str:
    """The results as a markdown table, each run's ratio to the sjoin of the same vintage(s)."""
    ratio, cpu_ratio = ratios(results), ratios(results, key="cpu_s")
    rows = []
    for impl, r in results.items():
        name, years = IMPLEMENTATIONS[impl]
        key = "both" if len(years) == 2 else str(years[0])
        shown = ([f"{ratio[key]:.2f}", f"{cpu_ratio[key]:.2f}"]
                 if impl.startswith("ours") and key in ratio else ["", ""])
        rows.append([name, " + ".join(map(str, years)), f"{r['rows_in']:,}",
                     f"{sum(polygons[y] for y in years):,}", f"{r['wall_s']:.2f}",
                     f"{r['wall_median_s']:.2f}", f"{r['cpu_s']:.2f}",
                     f"{r['rows_in'] / r['wall_s']:,.0f}", f"{r['peak_rss_mib']:,.0f}",
                     f"{r['rss_start_mib']:,.0f}", *shown])
    return harness.markdown_table(
        ["implementation", "vintage", "points", "polygons", "wall time (s), best", "median",
         "CPU (s)", "points/s", "peak RSS (MiB)", "RSS at start (MiB)", "ours / sjoin, wall",
         "CPU"], rows, align="llrrrrrrrrrr")


def _checks(runs: dict[str, list[dict[str, Any]]], workdir: Path) -> dict[str, Any]:
    import geopandas as gpd

    history = pd.read_parquet(_history_path(workdir))
    lon, lat = history["longitude"].to_numpy(), history["latitude"].to_numpy()
    found = {impl: pd.read_parquet(rs[0]["geoids"]) for impl, rs in runs.items()}
    checks: dict[str, Any] = {}
    for year in (2010, 2020):
        ours, theirs = found.get(f"ours-{year}"), found.get(f"sjoin-{year}")
        if ours is None or theirs is None:
            continue
        polygons = gpd.read_parquet(_polygons_path(workdir, year))
        checks[f"ours_vs_sjoin_{year}"] = check(ours[str(year)], theirs[str(year)],
                                                polygons=polygons, lon=lon, lat=lat)
    for year in (2010, 2020):
        if "ours-both" in found and f"ours-{year}" in found:
            equal = found["ours-both"][str(year)].equals(found[f"ours-{year}"][str(year)])
            checks[f"ours_both_vs_ours_{year}"] = {"points": len(history),
                                                   "mismatched": 0 if equal else len(history)}
    return checks


def _parser() -> argparse.ArgumentParser:
    parser = harness.parser(
        "benchmarks.linking",
        "Time patient geography linking (link_addresses: the full timeline) against a plain "
        "geopandas sjoin of the same points and block groups, per boundary vintage; each run in "
        "its own process, peak RSS per process; checks that both give the same GEOIDs. Not a "
        "test.", EXAMPLE, IMPLEMENTATIONS)
    parser.add_argument("--points", type=int, default=1_000_000,
                        help="address periods, one point each (default 1,000,000)")
    parser.add_argument("--block-groups", type=int, default=200_000,
                        help="2010 block groups (at least; 2020 has 11%% more; default 200,000)")
    parser.add_argument("--segments", type=int, default=4,
                        help="segments per polygon edge: 4 x this many vertices (default 4)")
    parser.add_argument("--small", action="store_true",
                        help="quick check: 20,000 points, 5,000 block groups")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the generated data, reused while the parameters match "
                             "(default $TMPDIR/sdoh_bench_linking, _small with --small)")
    harness.add_run_options(parser, IMPLEMENTATIONS)
    parser.add_argument("--json", type=Path, default=None,
                        help="also write parameters, results and checks to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.small:
        args.points, args.block_groups = 20_000, 5_000
    default = Path(tempfile.gettempdir()) / ("sdoh_bench_linking" + "_small" * args.small)
    workdir = (args.workdir or default).resolve()
    if args.child:
        _child(args.child, workdir, args.child_out)
        return 0
    which = harness.parse_which(args.which, IMPLEMENTATIONS)
    harness.at_least_one(args, "points", "block_groups", "segments", "repeat")

    params = Params(args.points, args.block_groups, args.segments, args.seed)
    prep = prepare(params, workdir)
    polygons = {2010: prep["block_groups_2010"], 2020: prep["block_groups_2020"]}
    print(f"data: {prep['periods']:,} address periods of {prep['patients']:,} patients; "
          f"{polygons[2010]:,} 2010 and {polygons[2020]:,} 2020 block groups of "
          f"{prep['vertices_per_polygon']} vertices; {os.cpu_count()} CPUs")
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in which}
    with tempfile.TemporaryDirectory(prefix="sdoh_bench_link_") as tmp:
        for round_, impl in harness.rounds(which, args.repeat):
            runs[impl].append(_run_child(impl, workdir, Path(tmp) / str(round_)))
            print(harness.run_line(runs[impl][-1]), flush=True)
        results = {impl: summarize(rs) for impl, rs in runs.items()}
        checks = _checks(runs, workdir)

    busy = harness.max_other_load(runs)
    print()
    print(table(results, polygons))
    for year in (2010, 2020):
        ours, theirs = results.get(f"ours-{year}"), results.get(f"sjoin-{year}")
        if ours and theirs and theirs["points_s"] is not None:
            with_points = theirs["wall_s"] + theirs["points_s"]
            print(f"\n{year}: sjoin's points GeoDataFrame took {theirs['points_s']:.2f} s to build "
                  f"(before its clock; ours builds what it needs inside its own): ours / "
                  f"(points + sjoin) = {ours['wall_s'] / with_points:.2f}", end="")
    print()
    note = harness.load_note(busy, consequence="the times are inflated; compare the ratios, "
                                               "measured in the same rounds.")
    if note:
        print(note)
    print()
    failed = False
    for name, c in checks.items():
        detail = {k: v for k, v in c.items() if k not in ("points", "mismatched")}
        print(f"check {name}: {c['points']:,} points, mismatched = {c['mismatched']} {detail}")
        failed |= c["mismatched"] > 0
    if args.json is not None:
        args.json.write_text(json.dumps({"params": asdict(params), "prep": prep,
                                         "results": results, "ratios": ratios(results),
                                         "cpu_ratios": ratios(results, key="cpu_s"),
                                         "checks": checks, "max_other_load": busy},
                                        indent=2, default=str))
        print(f"wrote {args.json}")
    if failed:
        print("FAILED: ours and sjoin disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
