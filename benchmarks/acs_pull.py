"""Benchmark: pulling the ACS catalog through `get_acs` from a local Census API replay server.

Builds a replay tree for one synthetic state (FIPS ``99``, marked synthetic in the tree) with
many counties, tracts and block groups, holding every variable the catalog needs (read at run
time: ``sorted({v for m in load_catalog().acs.measures for v in m.variables})``), each in the
dataset of its table family (detailed ``acs/acs5``, subject ``acs/acs5/subject``, data profile
``acs/acs5/profile``). Then pulls the whole list at county, tract and block group level through
the real client and replay server, three times:

1. cold, ``max_workers=1`` (one request after another);
2. cold, ``max_workers=N`` (default 4) into an empty cache folder;
3. again with that cache: it must make zero requests.

The replay server answers after a simulated round trip (``--latency``, default 0.25 s; the
real API's answers to large block group requests take longer), so that the effect of
concurrency shows; ``--latency 0`` measures the client's own CPU time (parsing dominates).

For each level it prints the wall time of each run, the number of HTTP requests the server
received and the minimum the API's 50-variable limit allows: ``ceil(2 * n / 50)`` per dataset
(each variable is an estimate ``E`` and a margin of error ``M``) per geography request (one per
level here: ``in=state:99`` for tracts and counties, ``in=state:99&in=county:*&in=tract:*``
for block groups). The three results must be identical, or the run fails.

Subject tables and data profiles are published down to tracts, not block groups (the API
answers ``unknown/unsupported geography heirarchy``), so their variables are left out of the
block group pull, as they would have to be against the real API.

Run ``python -m benchmarks.acs_pull`` (``--help`` for sizes). Results for this machine are in
benchmarks/README.md, section "ACS pull".
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks import harness
from ingestion.demo.replay import CensusReplayServer
from ingestion.sources.census_api import CensusClient, acs_dataset, get_acs
from sdoh_sources import load_catalog

STATE = "99"
YEAR = 2024
LEVELS = ("county", "tract", "block group")
FILES = {"county": "county", "tract": "tract", "block group": "block_group"}
GEOGRAPHY_COLUMNS = {"county": ["state", "county"], "tract": ["state", "county", "tract"],
                     "block group": ["state", "county", "tract", "block group"]}
EXAMPLE = """example:
  python -m benchmarks.acs_pull                      # 40 counties x 25 tracts x 3 block groups
  python -m benchmarks.acs_pull --counties 10 --workers 8
"""


@dataclass
class Row:
    level: str
    geographies: int
    variables: dict[str, int]
    minimum: int
    requests: list[int]
    seconds: list[float]


def catalog_variables() -> list[str]:
    """Every ACS variable the catalog's measures read (read now: the catalog grows)."""
    return sorted({v for m in load_catalog().acs.measures for v in m.variables})


def by_dataset(variables: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for v in variables:
        groups.setdefault(acs_dataset(v), []).append(v)
    return groups


def level_variables(variables: list[str], level: str) -> list[str]:
    """What a level can be asked for: no subject/profile variables at block group."""
    if level != "block group":
        return variables
    return [v for v in variables if acs_dataset(v) == "acs/acs5"]


def geographies(counties: int, tracts: int, block_groups: int) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {level: [] for level in LEVELS}
    for c in range(1, counties + 1):
        county = f"{2 * c - 1:03d}"
        out["county"].append([STATE, county])
        for t in range(1, tracts + 1):
            tract = f"{t * 100:06d}"
            out["tract"].append([STATE, county, tract])
            out["block group"] += [[STATE, county, tract, str(b)]
                                   for b in range(1, block_groups + 1)]
    return out


def _values(rng: random.Random, variable: str) -> list[str]:
    if variable.endswith("P"):  # a data profile percent
        return [f"{rng.uniform(0, 100):.1f}", f"{rng.uniform(0.1, 9):.1f}"]
    estimate = rng.randint(0, 5000)
    return [str(estimate), str(rng.randint(1, 40 + estimate // 10))]


def build_tree(root: Path, variables: list[str], places: dict[str, list[list[str]]],
               seed: int = 20240101) -> None:
    """Write ``{root}/{YEAR}/{dataset}/{level}.json`` in the API's format (synthetic values)."""
    rng = random.Random(seed)
    for level in LEVELS:
        for dataset, names in by_dataset(level_variables(variables, level)).items():
            header = [f"{v}{s}" for v in names for s in "EM"] + GEOGRAPHY_COLUMNS[level]
            lines = [json.dumps(header, separators=(",", ":"))]
            for place in places[level]:
                row = [x for v in names for x in _values(rng, v)] + place
                lines.append(json.dumps(row, separators=(",", ":")))
            folder = root / str(YEAR) / dataset
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{FILES[level]}.json").write_text("[" + ",\n".join(lines) + "]",
                                                         encoding="utf-8")
    (root / "SYNTHETIC.txt").write_text(
        "Synthetic Census API responses for benchmarks/acs_pull.py (state 99 is no state). "
        "Not real data.\n", encoding="utf-8")


def pull(server: CensusReplayServer, variables: list[str], level: str, *, workers: int,
         cache_dir: Path | None) -> tuple[pd.DataFrame, int, float]:
    before = len(server.requests)
    client = CensusClient(base_url=server.base_url, api_key=None, cache_dir=cache_dir,
                          max_workers=workers, progress=False)
    start = time.perf_counter()
    with client:
        frame = get_acs(level, level_variables(variables, level), YEAR, STATE, client=client)
    return frame, len(server.requests) - before, time.perf_counter() - start


def minimum_requests(variables: list[str], level: str) -> int:
    groups = by_dataset(level_variables(variables, level))
    return sum(math.ceil(2 * len(names) / 50) for names in groups.values())


def run(args: argparse.Namespace) -> list[Row]:
    variables = catalog_variables()
    bg_levels = {m.name for m in load_catalog().acs.measures_at("block_group")
                 if any(acs_dataset(v) != "acs/acs5" for v in m.variables)}
    if bg_levels:
        print(f"warning: catalog measures at block group read subject/profile tables, which "
              f"the API does not publish there: {sorted(bg_levels)}")
    places = geographies(args.counties, args.tracts, args.block_groups)
    with tempfile.TemporaryDirectory(prefix="acs_pull-") as tmp:
        root, cache = Path(tmp) / "replay", Path(tmp) / "cache"
        start = time.perf_counter()
        build_tree(root, variables, places)
        print(f"replay tree: {len(places['county'])} counties, {len(places['tract']):,} tracts, "
              f"{len(places['block group']):,} block groups, {len(variables)} catalog variables "
              f"{ {k: len(v) for k, v in by_dataset(variables).items()} } "
              f"({time.perf_counter() - start:.1f} s)")
        rows = []
        with CensusReplayServer(root, latency=args.latency) as server:
            for level in LEVELS:
                one, n1, t1 = pull(server, variables, level, workers=1, cache_dir=None)
                many, n2, t2 = pull(server, variables, level, workers=args.workers,
                                    cache_dir=cache)
                again, n3, t3 = pull(server, variables, level, workers=args.workers,
                                     cache_dir=cache)
                pd.testing.assert_frame_equal(one, many)
                pd.testing.assert_frame_equal(one, again)
                if n3 != 0:
                    raise SystemExit(f"the cached rerun at {level} made {n3} requests, not 0")
                rows.append(Row(level, one["GEOID"].nunique(),
                                {k: len(v) for k, v in
                                 by_dataset(level_variables(variables, level)).items()},
                                minimum_requests(variables, level), [n1, n2, n3], [t1, t2, t3]))
    return rows


def table(rows: list[Row], workers: int) -> str:
    cells = [[r.level, f"{r.geographies:,}",
              ", ".join(f"{d.removeprefix('acs/acs5').lstrip('/') or 'detailed'} {n}"
                        for d, n in r.variables.items()),
              r.requests[1], r.minimum, f"{r.seconds[0]:.2f} s", f"{r.seconds[1]:.2f} s",
              f"{r.seconds[2]:.2f} s", r.requests[2]] for r in rows]
    return harness.markdown_table(
        ["level", "geographies", "variables by dataset", "requests",
         "minimum (50-variable limit)", "cold, 1 worker", f"cold, {workers} workers",
         "cached rerun", "cached rerun requests"], cells, align="l" * 9)


def _parser() -> argparse.ArgumentParser:
    parser = harness.parser(
        "benchmarks.acs_pull",
        "Time get_acs pulling the ACS catalog from a local replay server, cold and from the "
        "cache.", EXAMPLE)
    parser.add_argument("--counties", type=int, default=40, help="counties (default 40)")
    parser.add_argument("--tracts", type=int, default=25, help="tracts per county (default 25)")
    parser.add_argument("--block-groups", type=int, default=3,
                        help="block groups per tract (default 3)")
    parser.add_argument("--workers", type=int, default=4,
                        help="max_workers of the concurrent run (default 4)")
    parser.add_argument("--latency", type=float, default=0.25,
                        help="seconds the replay server waits before each answer (default 0.25)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    rows = run(args)
    print()
    print(table(rows, args.workers))
    print(f"\nsimulated latency {args.latency:g} s per request; "
          f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} "
          f"CPUs; total {time.perf_counter() - start:.1f} s; the three runs of each level gave "
          f"identical frames and the cached rerun made 0 requests")


if __name__ == "__main__":
    main()
