"""The real Census API client against the local replay server (never mocked).

Conformance tests at the end read the real API responses in ../shared/data/real/dc_acs2024
(never copied into the repository). Those files hold estimates (E columns) only, so they are
fetched with `CensusClient.get_table` and parsed with `acs_from_table`, which documents that a
missing M column gives moe NaN with moe_missing "unknown"; `get_acs` itself always requests
both E and M and fails if the API lacks either.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from needs import real_path

from ingestion.core.errors import CensusApiError
from ingestion.core.geography import (
    normalize_counties,
    normalize_county,
    normalize_state,
    normalize_states,
    normalize_zctas,
)
from ingestion.demo.replay import CensusReplayServer
from ingestion.sources.census_api import (
    MAX_VARIABLES,
    STATE_FIPS,
    CensusClient,
    acs_dataset,
    acs_from_table,
    get_acs,
    parse_value,
    redact_key,
)

KEY = "0123456789abcdef0123456789abcdef01234567"
ENV_KEY = "fedcba9876543210fedcba9876543210fedcba98"
MANY = [f"B99001_{i:03d}" for i in range(1, 31)]  # 30 variables: 60 E/M columns


# --------------------------------------------------------------------------- fixtures

def _write(root: Path, level: str, table: list[list]) -> None:
    folder = root / "2024" / "acs" / "acs5"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{level}.json").write_text(json.dumps(table), encoding="utf-8")


def _many_values(tract: int) -> list[str]:
    return [str(value) for i in range(1, 31) for value in (tract * 1000 + i, i)]


def _synthetic_tree(root: Path) -> Path:
    """A synthetic region (state 99, marked as such) in the API's formats."""
    geo = ["state", "county", "tract"]
    header = ["NAME", "B01003_001E", "B01003_001M", "B19013_001E", "B19013_001M",
              *[f"{v}{s}" for v in MANY for s in "EM"], *geo]
    rows = [
        ["Census Tract 1; Synthetic County; Synthetic State", "1000", "-555555555", "250001",
         "-222222222", *_many_values(1), "99", "001", "000100"],
        ["Census Tract 2; Synthetic County; Synthetic State", "2000", "150", "-666666666.0",
         "-222222222", *_many_values(2), "99", "001", "000200"],
        ["Census Tract 3; Other County; Synthetic State", 3000, 200.0, None, None,
         *_many_values(3), "99", "003", "000300"],
        ["Census Tract 4; Other County; Synthetic State", "-999999999", "-999999999",
         "-666666666", "-333333333", *_many_values(4), "99", "003", "000400"],
    ]
    _write(root, "tract", [header, *rows])
    bg = [["B01003_001E", "B01003_001M", "state", "county", "tract", "block group"],
          ["400", "20", "99", "001", "000100", "1"], ["600", "30", "99", "001", "000100", "2"]]
    _write(root, "block_group", bg)
    _write(root, "county", [["B01003_001E", "B01003_001M", "state", "county"],
                            ["3000", "-555555555", "99", "001"], ["7000", "12", "99", "003"]])
    _write(root, "state", [["B01003_001E", "B01003_001M", "state"], ["10000", "0", "99"],
                           ["20000", "0", "98"]])
    _write(root, "zcta", [["B01003_001E", "B01003_001M", "zip code tabulation area"],
                          ["500", "40", "99001"], ["900", "60", "99002"]])
    return root


@pytest.fixture
def server(tmp_path):
    with CensusReplayServer(_synthetic_tree(tmp_path / "replay")) as srv:
        yield srv


@pytest.fixture
def client(server, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    with CensusClient(base_url=server.base_url, api_key=KEY, timeout=2.0, max_retries=3,
                      backoff=0.01, max_delay=0.5) as c:
        yield c


def _tract(client: CensusClient, variables=("B01003_001E",), **kw) -> pd.DataFrame:
    return client.get_table(2024, "acs/acs5", list(variables), "tract", state="99", **kw)


# --------------------------------------------------------------------------- geography

@pytest.mark.parametrize(("given", "expected"), [
    ("10", "10"), (10, "10"), ("9", "09"), (6, "06"), ("99", "99"), (" 11 ", "11"),
    ("DE", "10"), ("de", "10"), ("Delaware", "10"), ("DELAWARE", "10"),
    ("district of columbia", "11"), ("DC", "11"), ("pr", "72"), (" New  York ", "36"),
])
def test_normalize_state(given, expected):
    assert normalize_state(given) == expected


@pytest.mark.parametrize(("given", "error", "match"), [
    ("XX", ValueError, r"unknown state 'XX'; expected a 2-digit FIPS code"),
    ("100", ValueError, r"unknown state '100'"),
    (100, ValueError, r"state 100 is not a code of 1 to 2 digits"),
    (-1, ValueError, r"state -1 is not a code"),
    ("", ValueError, r"unknown state ''"),
    ("Delawar", ValueError, r"postal code \('DE'\) or a state name"),
    (True, TypeError, r"got bool"),
    (10.0, TypeError, r"must be str or int, got float"),
    (None, TypeError, r"got NoneType"),
])
def test_normalize_state_rejects(given, error, match):
    with pytest.raises(error, match=match):
        normalize_state(given)


@pytest.mark.parametrize(("given", "expected"), [("001", "001"), ("1", "001"), (1, "001"),
                                                  (101, "101"), (" 03", "003")])
def test_normalize_county(given, expected):
    assert normalize_county(given) == expected


@pytest.mark.parametrize(("given", "error", "match"), [
    ("10001", ValueError, r"unknown county '10001'; expected a county FIPS code of 1 to 3"),
    (1000, ValueError, r"county 1000 is not a code of 1 to 3 digits"),
    ("Kent", ValueError, r"unknown county 'Kent'"),
    (1.0, TypeError, r"got float"),
])
def test_normalize_county_rejects(given, error, match):
    with pytest.raises(error, match=match):
        normalize_county(given)


# --------------------------------------------------------------------------- get_table

def test_get_table_returns_api_values_unchanged(client):
    table = _tract(client, ["NAME", "B01003_001E", "B19013_001E"])
    assert list(table.columns) == ["GEOID", "NAME", "B01003_001E", "B19013_001E",
                                   "state", "county", "tract"]
    assert table["GEOID"].tolist() == ["99001000100", "99001000200", "99003000300",
                                       "99003000400"]
    assert table["B01003_001E"].tolist() == ["1000", "2000", 3000, "-999999999"]
    assert table["B19013_001E"].tolist() == ["250001", "-666666666.0", None, "-666666666"]


@pytest.mark.parametrize(("geography", "kw", "query", "geoids"), [
    ("state", {}, "for=state:*", ["99", "98"]),
    ("state", {"state": "99"}, "for=state:99", ["99"]),
    ("county", {"state": 99}, "for=county:*&in=state:99", ["99001", "99003"]),
    ("county", {"state": "99", "county": 3}, "for=county:003&in=state:99", ["99003"]),
    ("tract", {"state": "99", "county": "001"}, "for=tract:*&in=state:99&in=county:001",
     ["99001000100", "99001000200"]),
    ("block group", {"state": "99"}, "for=block+group:*&in=state:99&in=county:*&in=tract:*",
     ["990010001001", "990010001002"]),
    ("block_group", {"state": "99", "county": "1"},
     "for=block+group:*&in=state:99&in=county:001&in=tract:*", ["990010001001", "990010001002"]),
    ("county", {"state": "99", "county": [3, "001"]}, "for=county:003,001&in=state:99",
     ["99001", "99003"]),
    ("state", {"state": ["99", 98]}, "for=state:99,98", ["99", "98"]),
    ("zcta", {}, "for=zip+code+tabulation+area:*", ["99001", "99002"]),
])
def test_get_table_geographies(client, server, geography, kw, query, geoids):
    table = client.get_table(2024, "acs/acs5", ["B01003_001E"], geography, **kw)
    assert table["GEOID"].tolist() == geoids
    assert server.requests == [f"/data/2024/acs/acs5?get=B01003_001E&{query}&key=REDACTED"]


@pytest.mark.parametrize(("args", "kw", "error", "match"), [
    ((2024, "acs/acs5", ["X_001E"], "planet"), {}, ValueError, r"unknown geography 'planet'"),
    ((2024, "acs/acs5", ["X_001E"], "tract"), {"state": ["98", "99"], "county": "001"},
     ValueError, r"county='001' needs a single state \(county codes repeat across states\)"),
    ((2024, "acs/acs5", ["X_001E"], "tract"), {"state": "99", "zcta": "99001"}, ValueError,
     r"zcta= only narrows geography 'zcta', not 'tract'"),
    ((2024, "acs/acs5", ["X_001E"], "zcta"), {"zcta": "990011"}, ValueError,
     r"unknown zcta '990011'"),
    ((2024, "acs/acs5", ["X_001E"], "tract"), {"state": []}, ValueError,
     r"state is an empty list"),
    ((2024, "acs/acs5", ["X_001E"], "block group"), {"county": "001"}, ValueError,
     r"county='001' needs a state"),
    ((2024, "acs/acs5", ["X_001E"], "zcta"), {"state": "DE"}, ValueError,
     r"does not nest ZCTAs within states"),
    ((2024, "acs/acs5", ["X_001E"], "state"), {"state": "DE", "county": 1}, ValueError,
     r"county= cannot narrow geography 'state'"),
    (("2024", "acs/acs5", ["X_001E"], "tract"), {"state": "DE"}, TypeError,
     r"year must be an int"),
    ((2024, "acs/../secret", ["X_001E"], "tract"), {"state": "DE"}, ValueError,
     r"dataset must look like 'acs/acs5'"),
    ((2024, "acs/acs5", [], "tract"), {"state": "DE"}, ValueError, r"variables is empty"),
    ((2024, "acs/acs5", ["state"], "tract"), {"state": "DE"}, ValueError,
     r"geography columns"),
    ((2024, "acs/acs5", ["X_001E"], "tract"), {"state": "Atlantis"}, ValueError,
     r"unknown state 'Atlantis'"),
])
def test_get_table_rejects_bad_arguments_before_any_request(client, server, args, kw, error,
                                                             match):
    with pytest.raises(error, match=match):
        client.get_table(*args, **kw)
    assert server.requests == []


def test_more_than_50_variables_are_split_and_rejoined_on_geography(client, server):
    wide = get_acs("tract", ["B01003_001", *MANY], 2024, "99", output="wide", client=client)
    gets = [re.search(r"get=([^&]*)", r).group(1).split(",") for r in server.requests]
    assert len(gets) == 2 and all(len(g) <= MAX_VARIABLES for g in gets)
    assert sum(len(g) for g in gets) == 2 + 2 * len(MANY)
    assert wide["GEOID"].tolist() == ["99001000100", "99001000200", "99003000300",
                                      "99003000400"]
    for tract, row in enumerate(wide.itertuples(index=False), start=1):
        record = row._asdict()
        for i, variable in enumerate(MANY, start=1):
            assert record[f"{variable}E"] == tract * 1000 + i
            assert record[f"{variable}M"] == i
    assert wide.loc[0, "B01003_001E"] == 1000.0


def test_split_requests_keep_the_requested_column_order(client):
    names = [f"{v}{s}" for v in reversed(MANY) for s in "ME"]
    table = _tract(client, names)
    assert list(table.columns) == ["GEOID", *names, "state", "county", "tract"]


# --------------------------------------------------------------------------- table families

DETAILED = ["B01003_001", *MANY]  # 31 variables: 62 API variables, two requests
SUBJECT = ["S1701_C03_001", "S2701_C05_001"]
PROFILE = ["DP03_0009", "DP03_0009P", "DP05_0001"]
FAMILIES = {"acs/acs5": DETAILED, "acs/acs5/subject": SUBJECT, "acs/acs5/profile": PROFILE}
_GEO = {"state": ["state"], "county": ["state", "county"], "tract": ["state", "county", "tract"],
        "block_group": ["state", "county", "tract", "block group"]}


def _value(geoid: str, variable: str, suffix: str) -> str:
    """A deterministic value per GEOID and API variable (estimates > MOEs, percents decimal)."""
    base = int(geoid[-4:]) + 7 * sum(map(ord, variable))
    if variable.endswith("P"):
        return f"{base % 1000 / 10:.1f}" if suffix == "E" else "2.5"
    return str(base * 10) if suffix == "E" else str(base % 97)


def _geographies(states: Sequence[str]) -> dict[str, list[list[str]]]:
    """Two counties per state, two tracts per county, two block groups per tract."""
    out: dict[str, list[list[str]]] = {level: [] for level in _GEO}
    for st in states:
        out["state"].append([st])
        for co in ("001", "003"):
            out["county"].append([st, co])
            for tr in ("000100", "000200"):
                out["tract"].append([st, co, tr])
                out["block_group"] += [[st, co, tr, bg] for bg in ("1", "2")]
    return out


def mixed_tree(root: Path, states: Sequence[str] = ("99", "98"), *, year: int = 2024,
               profile_lacks: bool = False) -> Path:
    """A synthetic region (states 98/99 unless told) with detailed, subject and profile files.

    Subject tables and data profiles have no block group file (the API publishes them down to
    tracts); the profile answers null for DP03_0009 in the first state's last tract (not
    published there: the API keeps the row, as in the real block group file of dc_acs2024) and
    carries a -888888888 annotation in the first. With ``profile_lacks`` the profile leaves that
    tract's row out instead, which the API never does.
    """
    places = _geographies(states)
    for dataset, variables in FAMILIES.items():
        levels = [lv for lv in _GEO if dataset == "acs/acs5" or lv != "block_group"]
        for level in levels:
            header = [f"{v}{s}" for v in variables for s in "EM"] + _GEO[level]
            rows = [[_value("".join(g), v, s) for v in variables for s in "EM"] + g
                    for g in places[level]]
            if dataset == "acs/acs5/profile" and level == "tract":
                last = next(r for r in rows if r[-3:] == [states[0], "003", "000200"])
                last[header.index("DP03_0009E")] = last[header.index("DP03_0009M")] = None
                if profile_lacks:
                    rows.remove(last)
                rows[0][header.index("DP03_0009PE")] = "-888888888"
            folder = root / str(year) / dataset
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{level}.json").write_text(json.dumps([header, *rows]), encoding="utf-8")
    return root


@pytest.fixture
def mixed(tmp_path):
    with CensusReplayServer(mixed_tree(tmp_path / "mixed")) as srv:
        yield srv


def _client(server: CensusReplayServer, **kw) -> CensusClient:
    settings = {"api_key": KEY, "timeout": 2.0, "max_retries": 3, "backoff": 0.01,
                "max_delay": 0.5, "cache_dir": None, "progress": False, **kw}
    return CensusClient(base_url=server.base_url, **settings)


def _dataset_of(request: str) -> str:
    return re.match(r"/data/\d{4}/([^?]+)\?", request).group(1)


@pytest.mark.parametrize(("variable", "dataset"), [
    ("B01001_001", "acs/acs5"), ("C17002_002", "acs/acs5"), ("B01001A_001", "acs/acs5"),
    ("B05001PR_001", "acs/acs5"), ("S1701_C03_001", "acs/acs5/subject"),
    ("S0101_C01_001", "acs/acs5/subject"), ("DP03_0009", "acs/acs5/profile"),
    ("DP03_0009P", "acs/acs5/profile"), ("DP02PR_0001", "acs/acs5/profile"),
])
def test_acs_dataset_routes_by_table_family(variable, dataset):
    assert acs_dataset(variable) == dataset
    assert acs_dataset(variable, survey="acs/acs1") == dataset.replace("acs5", "acs1")


@pytest.mark.parametrize("variable", ["B19013_001E", "DP03_0009PE", "S1701_C03_001M", "NAME",
                                      "K200101_001", "B19013", "X_001"])
def test_acs_dataset_rejects_unknown_families(variable):
    with pytest.raises(ValueError, match=r"cannot tell the table family of"):
        acs_dataset(variable)


def test_mixed_families_in_one_call(mixed):
    variables = ["S1701_C03_001", "B01003_001", "DP03_0009P", "DP03_0009", *MANY]
    with _client(mixed) as client:
        tidy = get_acs("tract", variables, 2024, "99", client=client)
    datasets = [_dataset_of(r) for r in mixed.requests]
    assert sorted(datasets) == ["acs/acs5", "acs/acs5", "acs/acs5/profile", "acs/acs5/subject"]
    gets = {_dataset_of(r): re.search(r"get=([^&]*)", r).group(1) for r in mixed.requests}
    assert gets["acs/acs5/subject"] == "S1701_C03_001E,S1701_C03_001M"
    assert gets["acs/acs5/profile"] == "DP03_0009PE,DP03_0009PM,DP03_0009E,DP03_0009M"
    assert all(len(re.search(r"get=([^&]*)", r).group(1).split(",")) <= MAX_VARIABLES
               for r in mixed.requests)
    assert set(tidy["variable"]) == set(variables)
    assert len(tidy) == 4 * len(variables)
    rows = {(r.GEOID, r.variable): r for r in tidy.itertuples(index=False)}
    for geoid in ("99001000200", "99003000100"):
        for variable in ("S1701_C03_001", "B01003_001", "DP03_0009", MANY[-1]):
            assert rows[geoid, variable].estimate == float(_value(geoid, variable, "E"))
            assert rows[geoid, variable].moe == float(_value(geoid, variable, "M"))
        assert rows[geoid, "DP03_0009P"].estimate == float(_value(geoid, "DP03_0009P", "E"))
    jammed = rows["99001000100", "DP03_0009P"]
    assert math.isnan(jammed.estimate) and jammed.estimate_missing == "not_applicable"
    absent = rows["99003000200", "DP03_0009"]  # null in the profile file
    assert math.isnan(absent.estimate) and absent.estimate_missing == "not_published_at_level"
    assert rows["99003000200", "S1701_C03_001"].estimate_missing is None


def test_a_geography_one_dataset_leaves_out_is_fetched_again_then_an_error(tmp_path):
    """The API answers an unpublished value with null in the row; a missing row is a fault."""
    tree = mixed_tree(tmp_path / "lacks", profile_lacks=True)
    with CensusReplayServer(tree) as server, _client(server) as client, pytest.raises(
            CensusApiError, match=r"answers disagree: GEOID 99003000200 is in the answer of "
                                  r"acs/acs5/subject get=S1701_C03_001E,S1701_C03_001M but not in"
                                  r" that of acs/acs5/profile .*for=tract:\*&in=state:99, 2024\)"
                                  r"\. Nothing was cached: run again"):
        get_acs("tract", ["S1701_C03_001", "DP03_0009"], 2024, "99", client=client)
    assert sorted(_dataset_of(r) for r in server.requests) == [
        "acs/acs5/profile", "acs/acs5/profile", "acs/acs5/subject", "acs/acs5/subject"]


def test_mixed_families_wide(mixed):
    with _client(mixed) as client:
        wide = get_acs("county", ["DP03_0009P", "B01003_001", "S2701_C05_001"], 2024, "98",
                       output="wide", client=client)
    assert list(wide.columns) == ["GEOID", *[f"{v}{s}" for v in ("DP03_0009P", "B01003_001",
                                                                 "S2701_C05_001")
                                             for s in ("E", "M", "E_missing", "M_missing")]]
    assert wide["GEOID"].tolist() == ["98001", "98003"]
    assert wide.loc[1, "S2701_C05_001E"] == float(_value("98003", "S2701_C05_001", "E"))


def test_explicit_dataset_sends_every_variable_there(mixed):
    with _client(mixed) as client:
        tidy = get_acs("county", ["S1701_C03_001"], 2024, "99", dataset="acs/acs5/subject",
                       client=client)
        assert len(tidy) == 2
        with pytest.raises(CensusApiError, match=r"failed: HTTP 400: error: unknown variable "
                                                 r"'S1701_C03_001E' \(GET http://\S+/data/2024/"
                                                 r"acs/acs5\?get=S1701_C03_001E,\S+\)\. Check "
                                                 r"the year, dataset, variables, geography and "
                                                 r"API key of the request against the API's "
                                                 r"message\.$"):
            get_acs("county", ["S1701_C03_001"], 2024, "99", dataset="acs/acs5", client=client)


@pytest.mark.parametrize(("variables", "kw", "match"), [
    (["K200101_001"], {}, r"cannot tell the table family of \['K200101_001'\].*pass dataset="),
    (["DP03_0009PE"], {}, r"without the E/M suffix.*'DP03_0009PE'"),
    (["S1701_C03_001M"], {}, r"without the E/M suffix"),
    (["B01003_001"], {"dataset": "acs/../x"}, r"dataset must look like 'acs/acs5'"),
])
def test_get_acs_rejects_bad_variables_before_any_request(mixed, variables, kw, match):
    with _client(mixed) as client, pytest.raises(ValueError, match=match):
        get_acs("tract", variables, 2024, "99", client=client, **kw)
    assert mixed.requests == []


def test_subject_tables_at_block_group_surface_the_api_error(mixed):
    with _client(mixed) as client, pytest.raises(
            CensusApiError, match=r"HTTP 400: error: unknown/unsupported geography heirarchy "
                                  r"\(GET \S+/acs/acs5/subject\?"):
        get_acs("block group", ["S1701_C03_001"], 2024, "99", client=client)


# --------------------------------------------------------------------------- geographies

@pytest.mark.parametrize(("function", "given", "expected"), [
    (normalize_states, "DE", ("10",)),
    (normalize_states, ["DE", "Delaware", 11, "dc"], ("10", "11")),
    (normalize_states, ("99", "98"), ("99", "98")),
    (normalize_counties, [1, "001", "3"], ("001", "003")),
    (normalize_zctas, [2139, "99001"], ("02139", "99001")),
])
def test_normalize_lists(function, given, expected):
    assert function(given) == expected


@pytest.mark.parametrize(("function", "given", "error", "match"), [
    (normalize_states, [], ValueError, r"state is an empty list"),
    (normalize_states, ["DE", "XX"], ValueError, r"unknown state 'XX'"),
    (normalize_states, {"DE"}, TypeError, r"state must be a str, an int or a list of them"),
    (normalize_counties, [1.0], TypeError, r"got float"),
    (normalize_zctas, "ABCDE", ValueError, r"unknown zcta 'ABCDE'"),
])
def test_normalize_lists_reject(function, given, error, match):
    with pytest.raises(error, match=match):
        function(given)


def test_several_states_are_requested_one_by_one_in_the_order_given(mixed):
    with _client(mixed) as client:
        wide = get_acs("tract", ["B01003_001"], 2024, [98, "99"], output="wide",
                       client=client)
        raw = client.get_table(2024, "acs/acs5", ["B01003_001E"], "tract", state=["99", "98"])
    assert sorted(re.search(r"&(for=.*)&key", r).group(1) for r in mixed.requests) == [
        "for=tract:*&in=state:98", "for=tract:*&in=state:98", "for=tract:*&in=state:99",
        "for=tract:*&in=state:99"]
    assert wide["GEOID"].str[:2].tolist() == ["98"] * 4 + ["99"] * 4  # sorted by GEOID
    assert raw["GEOID"].str[:2].tolist() == ["99"] * 4 + ["98"] * 4  # in the order given


def test_several_counties_of_a_state(mixed):
    with _client(mixed) as client:
        tidy = get_acs("block group", ["B01003_001"], 2024, "99", county=["003", 1],
                       client=client)
    assert sorted(re.search(r"&(for=.*)&key", r).group(1) for r in mixed.requests) == [
        "for=block+group:*&in=state:99&in=county:001&in=tract:*",
        "for=block+group:*&in=state:99&in=county:003&in=tract:*"]
    assert len(tidy) == 8 and tidy["GEOID"].str.fullmatch(r"99\d{10}").all()


def test_state_none_iterates_over_every_state_for_tracts(tmp_path):
    with CensusReplayServer(mixed_tree(tmp_path / "us", STATE_FIPS)) as server:
        with _client(server, max_workers=8) as client:
            tidy = get_acs("tract", ["B01003_001", "DP05_0001"], 2024, None, client=client)
        per_state = [r for r in server.requests if "/acs/acs5?" in r]
        assert len(per_state) == len(STATE_FIPS) == 52
        assert {re.search(r"in=state:(\d\d)", r).group(1) for r in per_state} == set(STATE_FIPS)
        assert tidy["GEOID"].str[:2].unique().tolist() == sorted(STATE_FIPS)
        assert len(tidy) == 52 * 4 * 2
        server.requests.clear()
        with _client(server) as client:
            counties = get_acs("county", ["B01003_001"], 2024, None, client=client)
        assert [re.search(r"&(for=.*)&key", r).group(1) for r in server.requests] == [
            "for=county:*"]
        assert len(counties) == 52 * 2


def test_zcta_is_national_and_filtered_afterwards(server, client):
    tidy = get_acs("zcta", ["B01003_001"], 2024, None, zcta=["99002", 12345], client=client)
    assert server.requests == ["/data/2024/acs/acs5?get=B01003_001E,B01003_001M"
                               "&for=zip+code+tabulation+area:*&key=REDACTED"]
    assert tidy["GEOID"].tolist() == ["99002"]
    with pytest.raises(ValueError, match=r"does not nest ZCTAs within states \(since 2019\)"):
        get_acs("zcta", ["B01003_001"], 2024, "DE", client=client)


# --------------------------------------------------------------------------- concurrency

def _pull(server: CensusReplayServer, workers: int, output: str = "tidy") -> pd.DataFrame:
    with _client(server, max_workers=workers) as client:
        return get_acs("tract", [*DETAILED, *SUBJECT, *PROFILE], 2024, ["99", "98"],
                       output=output, client=client)


@pytest.mark.parametrize("output", ["tidy", "wide"])
def test_concurrency_gives_the_same_output_as_one_worker(mixed, output):
    alone = _pull(mixed, 1, output)
    requests_alone = sorted(mixed.requests)
    mixed.requests.clear()
    together = _pull(mixed, 8, output)
    assert sorted(mixed.requests) == requests_alone and len(requests_alone) == 8
    pd.testing.assert_frame_equal(alone, together)


def test_concurrent_workers_survive_faults(mixed):
    alone = _pull(mixed, 1)
    mixed.requests.clear()
    mixed.inject(429, headers={"Retry-After": "0.05"})
    mixed.inject(500)
    mixed.inject(None, truncate=True)
    together = _pull(mixed, 4)
    assert len(mixed.requests) == 8 + 3
    pd.testing.assert_frame_equal(alone, together)


def test_one_session_per_worker_thread(mixed):
    client = _client(mixed, max_workers=3)
    get_acs("tract", [*DETAILED, *SUBJECT, *PROFILE], 2024, ["99", "98"], client=client)
    assert 1 <= len(client._workers.sessions) <= 3
    client.close()
    assert client._workers.sessions == [] and client._workers.pool is None


# --------------------------------------------------------------------------- retries

@pytest.mark.parametrize(("status", "times"), [(429, 1), (500, 2), (502, 1), (503, 3)])
def test_transient_statuses_are_retried_until_success(client, server, status, times):
    server.inject(status, times=times)
    table = _tract(client)
    assert len(table) == 4
    assert len(server.requests) == times + 1


def test_retry_after_is_honoured_but_capped(server, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    server.inject(429, headers={"Retry-After": "30"})
    client = CensusClient(base_url=server.base_url, backoff=0.0, max_delay=0.3, timeout=2)
    pauses = []
    pause = client._retry.pause
    monkeypatch.setattr(client._retry, "pause", lambda delay: (pauses.append(delay), pause(delay)))
    _tract(client)
    assert pauses == [0.3]  # Retry-After: 30 capped at max_delay, shared by every worker
    assert len(server.requests) == 2


def test_exhausted_retries_name_redacted_url_and_status(client, server):
    server.inject(503, times=10, body="error: service unavailable, try later")
    with pytest.raises(CensusApiError, match=r"^A request to the Census Data API failed after 4 "
                       r"attempts: HTTP 503: error: service unavailable, try later \(GET "
                       r"http://127\.0\.0\.1:\d+/data/2024/acs/acs5\?get=B01003_001E&"
                       r"for=tract:\*&in=state:99&key=REDACTED\)\. The Census Data API is "
                       r"failing, slow or rate-limiting: try again later") as info:
        _tract(client)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert len(server.requests) == 4


def test_timeout_is_retried(server, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    server.inject(None, delay=1.0)
    client = CensusClient(base_url=server.base_url, timeout=0.2, backoff=0.01, max_retries=2)
    assert len(_tract(client)) == 4
    assert len(server.requests) == 2


def test_timeouts_exhausting_retries_say_so(server, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    server.inject(None, delay=0.6, times=2)
    client = CensusClient(base_url=server.base_url, timeout=0.15, backoff=0.01, max_retries=1,
                          api_key=KEY)
    with pytest.raises(CensusApiError, match=r"after 2 attempts: timed out after 0\.15 s "
                                             r".*key=REDACTED\)\. The Census Data API is "
                                             r"failing") as info:
        _tract(client)
    assert KEY not in str(info.value)


def test_connection_refused_is_retried_then_reported_without_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    server = CensusReplayServer(tmp_path)
    base_url = server.base_url
    server.stop()
    client = CensusClient(base_url=base_url, api_key=KEY, timeout=0.5, backoff=0.01,
                          max_retries=1)
    with pytest.raises(CensusApiError, match=r"after 2 attempts: cannot connect to "
                                             r"127\.0\.0\.1:\d+: connection refused .*Check "
                                             r"the network connection") as info:
        _tract(client)
    assert KEY not in str(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_truncated_json_is_retried(client, server):
    server.inject(None, truncate=True)
    assert len(_tract(client)) == 4
    assert len(server.requests) == 2


def test_persistently_truncated_json_is_a_clear_error(client, server):
    server.inject(None, truncate=True, times=10)
    with pytest.raises(CensusApiError, match=r"after 3 attempts: HTTP 200 but the body is not "
                                             r"valid JSON \(\d+ bytes, probably truncated.*\)\. "
                                             r"Nothing was cached: run again to fetch afresh"):
        _tract(client)
    assert len(server.requests) == 3  # the first try and two retries of a bad body


@pytest.mark.parametrize(("status", "body", "match"), [
    (404, "<html><head><title>404 Not Found</title></head><body><h1>Nope</h1></body></html>",
     r"failed: HTTP 404: 404 Not Found \(GET "),
    (400, "<html><body><h1>Bad &amp; wrong</h1><p>details</p></body></html>",
     r"failed: HTTP 400: Bad & wrong \(GET "),
    (200, "<!DOCTYPE html><html><head><title>Invalid Key</title></head></html>",
     r"HTTP 200 with an HTML page instead of JSON: Invalid Key \(the API key is missing"),
])
def test_html_pages_become_short_errors(client, server, status, body, match):
    server.inject(status, body=body)
    with pytest.raises(CensusApiError, match=match):
        _tract(client)
    assert len(server.requests) == 1


def test_html_5xx_page_is_retried_and_reported_by_title(client, server):
    server.inject(502, times=4, body="<html><title>502 Bad Gateway</title><body>x</body></html>")
    with pytest.raises(CensusApiError, match=r"HTTP 502: 502 Bad Gateway \(GET "):
        _tract(client)


def test_unknown_variable_message_surfaces_without_retry(client, server):
    with pytest.raises(CensusApiError, match=r"failed: HTTP 400: error: unknown variable "
                                             r"'B99999_001E' \(GET "):
        _tract(client, ["B01003_001E", "B99999_001E"])
    assert len(server.requests) == 1


def test_no_content_is_a_clear_error(client):
    with pytest.raises(CensusApiError, match=r"failed: HTTP 204 No Content: the API has no data "
                                             r"for this query \(GET \S+county:777&key=REDACTED"):
        _tract(client, county="777")


def test_not_a_table_is_a_clear_error(client, server):
    server.inject(200, body='{"error": "not a table"}')
    with pytest.raises(CensusApiError, match=r"not a Census API table: the JSON is not an array"):
        _tract(client)


# --------------------------------------------------------------------------- API key

def _key_server(tmp_path, key):
    return CensusReplayServer(_synthetic_tree(tmp_path / "replay"), api_key=key)


def test_explicit_key_wins_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CENSUS_API_KEY", ENV_KEY)
    with _key_server(tmp_path, KEY) as server:
        good = CensusClient(base_url=server.base_url, api_key=KEY, max_retries=0)
        assert len(_tract(good)) == 4
        from_env = CensusClient(base_url=server.base_url, max_retries=0)
        with pytest.raises(CensusApiError, match=r"Invalid Key \(the API key is missing or "
                                                 r"invalid") as info:
            _tract(from_env)
        assert ENV_KEY not in str(info.value) and KEY not in str(info.value)
        assert all(KEY not in r and ENV_KEY not in r for r in server.requests)
        assert server.requests[0].endswith("&key=REDACTED")


def test_environment_key_is_used_without_explicit_key(tmp_path, monkeypatch):
    monkeypatch.setenv("CENSUS_API_KEY", KEY)
    with _key_server(tmp_path, KEY) as server:
        assert len(_tract(CensusClient(base_url=server.base_url))) == 4


def test_missing_key_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    with _key_server(tmp_path, KEY) as server:
        client = CensusClient(base_url=server.base_url)
        with pytest.raises(CensusApiError, match=r"Missing Key \(the API key is missing"):
            _tract(client)
        assert "key=" not in server.requests[0]


def test_key_never_logged(client, server, caplog):
    server.inject(500)
    with caplog.at_level(logging.DEBUG):
        _tract(client)
        with pytest.raises(CensusApiError):
            _tract(client, ["B99999_001E"])
    assert "key=REDACTED" in caplog.text
    assert KEY not in caplog.text
    assert KEY not in repr(client) and "api_key=<set>" in repr(client)


@pytest.mark.parametrize(("text", "expected"), [
    ("http://h/data?get=X&key=abc123&for=state:*", "http://h/data?get=X&key=REDACTED&for=state:*"),
    ("GET /data?KEY=abc HTTP/1.1", "GET /data?KEY=REDACTED HTTP/1.1"),
    (f"bad key {KEY}!", "bad key REDACTED!"),
])
def test_redact_key(text, expected):
    assert redact_key(text, KEY) == expected


@pytest.mark.parametrize(("kw", "match"), [
    ({"timeout": 0}, r"timeout must be > 0"),
    ({"max_retries": -1}, r"max_retries must be an int >= 0"),
    ({"backoff": -1.0}, r"backoff and max_delay must be >= 0"),
    ({"base_url": "ftp://x"}, r"base_url must be an http\(s\) URL"),
    ({"base_url": "http://api.census.gov/data"}, r"plain http to a host that is not loopback: "
                                                 r"the request \(and any API key"),
    ({"base_url": "http://10.0.0.7:8080/data"}, r"plain http to a host that is not loopback"),
    ({"base_url": "http://localhost.example.org/data"}, r"plain http"),
])
def test_client_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        CensusClient(**kw)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8080/data", "http://127.0.0.2/data/",
                                      "http://localhost:9/data", "http://[::1]:9/data",
                                      "https://api.census.gov/data", "HTTPS://mirror.example/d"])
def test_https_anywhere_and_plain_http_to_loopback_are_accepted(base_url):
    with CensusClient(base_url=base_url, cache_dir=None) as client:
        assert client.base_url == base_url.rstrip("/")


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize(("raw", "kind", "value", "reason"), [
    ("1262", "estimate", 1262.0, None),
    ("41.9", "estimate", 41.9, None),
    (3000, "estimate", 3000.0, None),
    ("250001", "estimate", 250001.0, None),  # top-code "250,000+" stays a number
    ("0", "estimate", 0.0, None),
    ("-666666666", "estimate", math.nan, "insufficient_sample"),
    ("-666666666.0", "estimate", math.nan, "insufficient_sample"),
    (-666666666, "estimate", math.nan, "insufficient_sample"),
    (-666666666.0, "estimate", math.nan, "insufficient_sample"),
    ("-999999999", "estimate", math.nan, "suppressed_small_sample"),
    ("-888888888", "estimate", math.nan, "not_applicable"),
    ("-222222222", "estimate", math.nan, "insufficient_sample"),
    ("-555555555", "estimate", math.nan, "not_applicable"),
    (None, "estimate", math.nan, "not_published_at_level"),
    ("", "estimate", math.nan, "not_published_at_level"),
    ("-555555555", "moe", 0.0, None),
    ("-555555555.0", "moe", 0.0, None),
    ("-222222222", "moe", math.nan, "unknown"),
    ("-333333333", "moe", math.nan, "unknown"),
    (-999999999, "moe", math.nan, "unknown"),
    (None, "moe", math.nan, "unknown"),
    ("150", "moe", 150.0, None),
])
def test_parse_value(raw, kind, value, reason):
    got_value, got_reason = parse_value(raw, kind=kind)
    assert got_reason == reason
    assert (math.isnan(got_value) and math.isnan(value)) or got_value == value


@pytest.mark.parametrize(("raw", "kw", "error", "match"), [
    ("N", {}, ValueError, r"'N' is not a number"),
    ("nan", {}, ValueError, r"not a finite number"),
    ("-123456789", {}, ValueError, r"annotation value that missing_reasons\.yaml does not know"),
    (True, {}, TypeError, r"got bool"),
    ([1], {}, TypeError, r"got list"),
    ("1", {"kind": "cv"}, ValueError, r"kind must be 'estimate' or 'moe'"),
])
def test_parse_value_rejects(raw, kw, error, match):
    with pytest.raises(error, match=match):
        parse_value(raw, **kw)


MIXED_RAW = ["1262", "41.9", 3000, 250001.0, "-666666666.0", -999999999, None, "", " 12 ",
             "1_000", "-5", "-1.5", "0", "-555555555", "-222222222", "-888888888", 7]


def test_column_parsing_matches_parse_value_cell_by_cell():
    geoids = [f"99{i:09d}" for i in range(len(MIXED_RAW))]
    raw = pd.DataFrame({"GEOID": geoids, "B01003_001E": MIXED_RAW,
                        "B01003_001M": list(reversed(MIXED_RAW))}, dtype=object)
    wide = acs_from_table(raw, ["B01003_001"], output="wide")
    for column, kind, cells in (("B01003_001E", "estimate", MIXED_RAW),
                                ("B01003_001M", "moe", list(reversed(MIXED_RAW)))):
        expected = [parse_value(cell, kind=kind) for cell in cells]
        got = list(zip(wide[column], wide[f"{column}_missing"], strict=True))
        for (value, reason), (want_value, want_reason) in zip(got, expected, strict=True):
            assert reason == want_reason
            assert (math.isnan(value) and math.isnan(want_value)) or value == want_value


@pytest.mark.parametrize(("bad", "match"), [
    ("nan", r"not a finite number"), ("inf", r"not a finite number"), (True, r"got bool"),
    (float("nan"), r"not a finite number"), ("-123456789", r"does not know"),
    ("12abc", r"'12abc' is not a number"),
])
def test_column_parsing_names_the_first_bad_cell(bad, match):
    raw = pd.DataFrame({"GEOID": ["99000000001", "99000000002"], "B01003_001E": ["5", bad]},
                       dtype=object)
    with pytest.raises(CensusApiError, match=rf"B01003_001E for GEOID 99000000002: .*{match}"):
        acs_from_table(raw, ["B01003_001"])


def test_get_acs_tidy(client, server):
    tidy = get_acs("tract", ["B19013_001", "B01003_001"], 2024, 99,
                   client=client)
    assert server.requests[0].startswith(
        "/data/2024/acs/acs5?get=B19013_001E,B19013_001M,B01003_001E,B01003_001M&")
    assert list(tidy.columns) == ["GEOID", "variable", "estimate", "moe", "estimate_missing",
                                  "moe_missing"]
    assert len(tidy) == 8
    assert list(tidy[["GEOID", "variable"]].itertuples(index=False, name=None)) == sorted(
        tidy[["GEOID", "variable"]].itertuples(index=False, name=None))
    rows = {(r.GEOID, r.variable): r for r in tidy.itertuples(index=False)}
    first = rows["99001000100", "B01003_001"]
    assert (first.estimate, first.moe, first.estimate_missing, first.moe_missing) == (
        1000.0, 0.0, None, None)
    income = rows["99001000100", "B19013_001"]
    assert income.estimate == 250001.0 and math.isnan(income.moe)
    assert income.moe_missing == "unknown"
    assert rows["99001000200", "B19013_001"].estimate_missing == "insufficient_sample"
    null = rows["99003000300", "B19013_001"]
    assert math.isnan(null.estimate) and null.estimate_missing == "not_published_at_level"
    assert rows["99003000300", "B01003_001"].estimate == 3000.0  # a JSON number
    suppressed = rows["99003000400", "B01003_001"]
    assert suppressed.estimate_missing == "suppressed_small_sample"
    assert suppressed.moe_missing == "unknown"
    assert tidy["estimate"].dtype == "float64" and tidy["moe"].dtype == "float64"


def test_get_acs_wide(client):
    wide = get_acs("county", "B01003_001", 2024, "99", output="wide", client=client)
    assert list(wide.columns) == ["GEOID", "B01003_001E", "B01003_001M",
                                  "B01003_001E_missing", "B01003_001M_missing"]
    assert wide.to_dict("records") == [
        {"GEOID": "99001", "B01003_001E": 3000.0, "B01003_001M": 0.0,
         "B01003_001E_missing": None, "B01003_001M_missing": None},
        {"GEOID": "99003", "B01003_001E": 7000.0, "B01003_001M": 12.0,
         "B01003_001E_missing": None, "B01003_001M_missing": None},
    ]


@pytest.mark.parametrize(("args", "kw", "match"), [
    (("tract", ["B19013_001"], 2024, "99"), {"output": "long"}, r"unknown output 'long'"),
    (("planet", ["B19013_001"], 2024, "99"), {}, r"unknown geography 'planet'"),
    (("tract", ["B19013_001E"], 2024, "99"), {}, r"without the E/M suffix.*'B19013_001E'"),
    (("tract", ["NAME"], 2024, "99"), {}, r"without the E/M suffix"),
])
def test_get_acs_rejects_bad_arguments(client, server, args, kw, match):
    with pytest.raises(ValueError, match=match):
        get_acs(*args, client=client, **kw)
    assert server.requests == []


def test_get_acs_requires_the_moe_columns(client):
    with pytest.raises(CensusApiError, match=r"unknown variable 'B99002_001E'"):
        get_acs("tract", ["B99002_001"], 2024, "99", client=client)


def test_acs_from_table_rejects_absent_estimate():
    raw = pd.DataFrame({"GEOID": ["11001000101"], "B19013_001M": ["5"]})
    with pytest.raises(ValueError, match=r"lacks columns \['B19013_001E'\]"):
        acs_from_table(raw, ["B19013_001"])


def test_acs_from_table_names_the_bad_value():
    raw = pd.DataFrame({"GEOID": ["11001000101"], "B19013_001E": ["(X)"]})
    with pytest.raises(CensusApiError, match=r"B19013_001E for GEOID 11001000101: '\(X\)'"):
        acs_from_table(raw, ["B19013_001"])


# --------------------------------------------------------------------------- conformance

@pytest.fixture
def real_dir():
    return real_path("dc_acs2024", "acs_2024_dc_tracts.json").parent


def _serve_real(tmp_path: Path, source: Path, level: str) -> CensusReplayServer:
    folder = tmp_path / "replay" / "2024" / "acs" / "acs5"
    folder.mkdir(parents=True)
    shutil.copyfile(source, folder / f"{level}.json")  # at test time, never into the repo
    return CensusReplayServer(tmp_path / "replay")


def test_conformance_dc_tracts(real_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    raw = json.loads((real_dir / "acs_2024_dc_tracts.json").read_text())
    header, rows = raw[0], raw[1:]
    estimates = [h for h in header if h.endswith("E") and h != "NAME"]
    variables = [h[:-1] for h in estimates]
    with _serve_real(tmp_path, real_dir / "acs_2024_dc_tracts.json", "tract") as server:
        client = CensusClient(base_url=server.base_url, backoff=0.01)
        table = client.get_table(2024, "acs/acs5", ["NAME", *estimates], "tract",
                                 state="District of Columbia")
    assert len(table) == 206
    assert table["GEOID"].str.fullmatch(r"11001\d{6}").all()
    tidy = acs_from_table(table, variables)
    assert len(tidy) == 206 * len(variables)
    assert (tidy["moe_missing"] == "unknown").all() and tidy["moe"].isna().all()

    income = tidy[tidy["variable"] == "B19013_001"].set_index("GEOID")
    column = header.index("B19013_001E")
    top_coded = {"".join(r[-3:]) for r in rows if r[column] == "250001"}
    assert top_coded  # the file holds the top-code
    assert (income.loc[sorted(top_coded), "estimate"] == 250001.0).all()

    by_key = tidy.set_index(["GEOID", "variable"])
    for spelling in ("-666666666", "-666666666.0"):
        jammed = [("".join(r[-3:]), h[:-1]) for r in rows
                  for h, v in zip(header, r, strict=True) if v == spelling]
        assert jammed, f"the file holds {spelling}"
        assert by_key.loc[jammed, "estimate"].isna().all()
        assert (by_key.loc[jammed, "estimate_missing"] == "insufficient_sample").all()
    assert tidy["estimate"].dropna().ge(0).all()  # no annotation leaked as a number

    picked = next(r for r in rows if r[-1] == "000101")
    row = table.set_index("GEOID").loc["11001000101"]
    for name, value in zip(header, picked, strict=True):
        assert row[name] == value
        if name in estimates:
            assert by_key.loc[("11001000101", name[:-1]), "estimate"] == float(value)


def test_conformance_dc_block_group_nulls(real_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    source = real_dir / "acs_2024_dc_block_groups_980000.json"
    estimates = [h for h in json.loads(source.read_text())[0] if h.endswith("E")
                 and h != "NAME"]
    with _serve_real(tmp_path, source, "block_group") as server:
        client = CensusClient(base_url=server.base_url, backoff=0.01)
        table = client.get_table(2024, "acs/acs5", estimates, "block group", state="DC",
                                 county="001")
    assert table["GEOID"].tolist() == ["110019800001"]
    wide = acs_from_table(table, [e[:-1] for e in estimates], output="wide").iloc[0]
    for variable in ("B17001_001", "B17001_002"):
        assert math.isnan(wide[f"{variable}E"])
        assert wide[f"{variable}E_missing"] == "not_published_at_level"
    assert wide["B01002_001E_missing"] == "insufficient_sample"  # written -666666666.0
    assert wide["B19013_001E_missing"] == "insufficient_sample"  # written -666666666
    assert wide["B01003_001E"] == 17.0 and wide["B01003_001E_missing"] is None
