"""The synthetic demo region: formats, internal consistency, boundary changes, coverage gaps."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from ingestion.demo.region import generate_demo_region
from ingestion.demo.replay import CensusReplayServer
from ingestion.sources.census_api import CensusClient, get_acs
from sdoh_sources import load_catalog
from sdoh_sources._models import acs_dataset
from sdoh_sources.publisher import publisher_source

YEARS = (2019, 2020, 2021)
LEVELS = ("block_group", "tract", "county")
GEO_COLUMNS = {"block_group": ["state", "county", "tract", "block group"],
               "tract": ["state", "county", "tract"], "county": ["state", "county"]}
GEOID_LENGTH = {"block_group": 12, "tract": 11, "county": 5}
TIGER_COLUMNS = ("STATEFP", "COUNTYFP", "TRACTCE", "BLKGRPCE", "GEOID", "NAMELSAD", "MTFCC",
                 "FUNCSTAT", "ALAND", "AWATER", "INTPTLAT", "INTPTLON")
PO_BOX = re.compile(r"(?i)\b(p\.?\s*o\.?\s*box|post office box)\b")
JAMS = {"-666666666", "-999999999", "-888888888", "-222222222", "-333333333", "-555555555"}
WATER_TRACT = "99001990000"  # offshore, water only, no population (both boundary vintages)
WATER_BLOCK_GROUP = WATER_TRACT + "0"
# Inputs of the indices computed from the ACS: index -> (demo vintages, levels served).
INDEX_INPUTS = {"svi": ((2020,), ("tract", "county")),
                "adi": ((2020, 2021), ("block_group", "tract", "county"))}


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo_region")
    return root, generate_demo_region(root)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _api(root: Path, year: int, level: str, dataset: str = "acs/acs5") -> list[list]:
    return json.loads((root / f"census_api/{year}/{dataset}/{level}.json").read_text())


def _api_frame(root: Path, year: int, level: str, dataset: str = "acs/acs5") -> pd.DataFrame:
    rows = _api(root, year, level, dataset)
    frame = pd.DataFrame(rows[1:], columns=rows[0])
    frame["GEOID"] = frame[GEO_COLUMNS[level]].agg("".join, axis=1)
    return frame


def _number(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column])


def _index_variables(index: str, year: int) -> set[str]:
    """The API names (E and M) an index reads in a demo vintage, from the index module."""
    if index == "svi":
        from ingestion.derive.svi import svi_variables

        return set(svi_variables(2020)) if year == 2020 else set()
    from ingestion.derive.adi import adi_variables

    return set(adi_variables(year))


def _index_served(year: int, level: str) -> set[str]:
    """The index inputs the demo serves in ``year`` at ``level`` (API names)."""
    return {v for index, (years, levels) in INDEX_INPUTS.items()
            if year in years and level in levels for v in _index_variables(index, year)}


def _dataset(api_name: str) -> str:
    return acs_dataset(api_name[:-1])  # without the E/M suffix


def _populated(frame: pd.DataFrame) -> pd.Series:
    return frame["GEOID"].str[:11] != WATER_TRACT


def _history(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "patients/address_history.csv", dtype=str, keep_default_na=False)


def _category(row: pd.Series) -> str:
    """Classify an address row from its text alone, the way a linker has to."""
    if PO_BOX.search(row["street"]):
        return "po_box"
    if not row["street"] and not row["latitude"]:
        return "zip_only"
    if not row["latitude"]:
        return "geocode_failed"
    lon, lat = float(row["longitude"]), float(row["latitude"])
    inside = -70.0 < lon < -69.6 and 38.0 < lat < 38.3
    return "geocoded" if inside else "outside_region"


# -- determinism and manifest ------------------------------------------------------------------


def test_no_generic_fallback_for_any_catalog_variable(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="ingestion.demo.region"):
        generate_demo_region(tmp_path, n_patients=5)
    assert not [r for r in caplog.records if "generic" in r.getMessage()]


def test_same_seed_gives_byte_identical_files(region, tmp_path):
    root, manifest = region
    again = generate_demo_region(tmp_path / "again")
    assert again == manifest
    first, second = _files(root), _files(tmp_path / "again")
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_other_patients(tmp_path):
    a = generate_demo_region(tmp_path / "a", seed=1, n_patients=40)
    b = generate_demo_region(tmp_path / "b", seed=2, n_patients=40)
    assert a["patients"]["patients"]["rows"] == b["patients"]["patients"]["rows"] == 40
    history = "patients/address_history.csv"
    assert (tmp_path / "a" / history).read_bytes() != (tmp_path / "b" / history).read_bytes()


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"seed": "1"}, TypeError, "seed must be an int"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"n_patients": 0}, ValueError, "n_patients must be >= 1"),
    ({"n_patients": 2.5}, TypeError, "n_patients must be an int"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        generate_demo_region(tmp_path, **kwargs)


def test_manifest_describes_every_file(region):
    root, manifest = region
    assert manifest == json.loads((root / "manifest.json").read_text())
    assert manifest["synthetic"] is True and "SYNTHETIC" in manifest["notes"]
    assert (manifest["state_fips"], manifest["county_fips"]) == ("99", "001")
    assert [v["year"] for v in manifest["vintages"]] == list(YEARS)
    assert [v["boundary_vintage"] for v in manifest["vintages"]] == [2010, 2020, 2020]
    paths = [f for v in manifest["vintages"] for f in v["files"].values()]
    paths += [t["path"] for t in manifest["tiger"].values()]
    paths += [a["path"] for a in manifest["adi_files"]]
    paths += [p["path"] for p in manifest["patients"].values()]
    assert all((root / p).is_file() for p in paths)
    assert {a["vintage"]: (a["boundary_vintage"], a["available_from"])
            for a in manifest["adi_files"]} == {2015: (2010, "2018-05-01"),
                                                2020: (2020, "2022-09-01")}
    assert manifest["split_tracts"] == {"99001000300": ["99001000301", "99001000302"]}


# -- Census API responses ----------------------------------------------------------------------


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize("level", LEVELS)
def test_api_response_format(region, year, level):
    root, _ = region
    rows = _api(root, year, level)
    header = rows[0]
    assert header[0] == "NAME" and header[-len(GEO_COLUMNS[level]):] == GEO_COLUMNS[level]
    assert len(rows) > 1 and all(len(r) == len(header) for r in rows)
    assert all(v is None or isinstance(v, str) for r in rows for v in r)
    variables = _detailed({v for m in load_catalog().acs.measures for v in m.variables_for(year)})
    catalog = [f"{v}{s}" for v in sorted(variables) for s in "EM"]
    assert header[1:1 + len(catalog)] == catalog  # the catalog's variables come first
    index = {v for lv in LEVELS for v in _index_served(year, lv) if _dataset(v) == "acs/acs5"}
    assert set(header[1 + len(catalog):-len(GEO_COLUMNS[level])]) == index - set(catalog)
    frame = _api_frame(root, year, level)
    assert (frame["GEOID"].str.len() == GEOID_LENGTH[level]).all()
    assert frame["GEOID"].is_unique and frame["GEOID"].str.startswith("99001").all()
    assert frame["NAME"].str.endswith("Synthetic County, Demo State").all()
    published = set(load_catalog().acs.variables_for(level, year))
    for v in variables:
        assert frame[f"{v}E"].isna().all() == (v not in published), v
    served = _index_served(year, level)
    for name in index:
        assert frame[name].isna().all() == (name not in served), name


def _detailed(variables: set[str]) -> set[str]:
    return {v for v in variables if acs_dataset(v) == "acs/acs5"}


NARROW = ("acs/acs5/subject", "acs/acs5/profile")


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize("level", ["tract", "county"])
@pytest.mark.parametrize("dataset", NARROW)
def test_subject_and_profile_files_hold_the_vintage_percents(region, year, level, dataset):
    root, manifest = region
    wanted = {v for v in load_catalog().acs.variables_for(level, year) if acs_dataset(v) == dataset}
    assert wanted, "the catalog reads subject and profile percents"
    rows = _api(root, year, level, dataset)
    assert rows[0][-len(GEO_COLUMNS[level]):] == GEO_COLUMNS[level]
    index = {v for v in _index_served(year, level) if _dataset(v) == dataset}
    assert set(rows[0][1:-len(GEO_COLUMNS[level])]) == {f"{v}{s}" for v in wanted for s in "EM"} | index
    frame = _api_frame(root, year, level, dataset)
    assert set(frame["GEOID"]) == set(_api_frame(root, year, level)["GEOID"])
    populated = _populated(frame)
    for v in wanted:
        estimate, moe = pd.to_numeric(frame[f"{v}E"]), pd.to_numeric(frame[f"{v}M"])
        assert estimate[populated].between(0, 100).all() and (moe[populated] > 0).all(), v
        assert frame.loc[populated, f"{v}E"].str.fullmatch(r"\d+\.\d").all(), v  # one decimal
        assert (frame.loc[~populated, [f"{v}E", f"{v}M"]] == ["-666666666", "-222222222"]).all().all()
    folder = dataset.rsplit("/", 1)[1]
    entry = next(v for v in manifest["vintages"] if v["year"] == year)
    assert entry["files"][f"{folder}/{level}"] == f"census_api/{year}/{dataset}/{level}.json"
    assert dataset in entry["datasets"]


@pytest.mark.parametrize("dataset", NARROW)
def test_no_subject_or_profile_file_at_block_group(region, dataset):
    assert not (region[0] / f"census_api/2021/{dataset}/block_group.json").exists()


def test_profile_percents_carry_pe_pm_suffixes(region):
    header = _api(region[0], 2021, "tract", "acs/acs5/profile")[0]
    assert {"DP02_0072PE", "DP02_0072PM", "DP02_0115PE", "DP03_0129PM"} <= set(header)
    assert "DP02_0071PE" not in header  # the 2014-2018 code is not read in 2021
    assert {"S2701_C05_001E", "S2701_C05_001M"} == set(
        _api(region[0], 2021, "county", "acs/acs5/subject")[0][1:-2])


def test_published_uninsured_percent_matches_the_detailed_counts(region):
    subject = _api_frame(region[0], 2021, "tract", "acs/acs5/subject").set_index("GEOID")
    detailed = _api_frame(region[0], 2021, "tract").set_index("GEOID")
    uninsured = sum(_number(detailed, f"B27010_{n}E") for n in ("017", "033", "050", "066"))
    expected = (100 * uninsured / _number(detailed, "B27010_001E")).round(1)
    assert (pd.to_numeric(subject["S2701_C05_001E"]) - expected).abs().max() < 0.051


def test_new_tables_are_consistent(region):
    frame = _api_frame(region[0], 2021, "tract")
    frame = frame[_populated(frame)]
    households = _number(frame, "B25003_001E")
    assert (_number(frame, "B11001_001E") == households).all()
    assert (_number(frame, "B25002_001E") - _number(frame, "B25002_003E") == households).all()
    assert (_number(frame, "B25070_001E") == _number(frame, "B25003_003E")).all()
    assert (_number(frame, "B25091_001E") == households - _number(frame, "B25003_003E")).all()
    assert _number(frame, "B19083_001E").between(0, 1).all()
    assert frame["B19083_001E"].str.fullmatch(r"0\.\d{4}").all()
    assert frame["B01002_001E"].str.fullmatch(r"\d{2}\.\d").all()
    gq = frame.set_index("GEOID")["B26001_001E"].astype(int)
    assert gq["99001000100"] > 1000 and (gq.drop("99001000100") < 100).all()


def test_block_group_nulls_where_table_is_not_published(region):
    frame = _api_frame(region[0], 2019, "block_group")
    assert frame["B27010_001E"].isna().all() and frame["B27010_001M"].isna().all()
    assert frame["B01003_001E"].notna().all()
    assert _api_frame(region[0], 2019, "tract")["B27010_001E"].notna().all()
    assert frame["NAME"].iloc[0] == "Block Group 1, Census Tract 1, Synthetic County, Demo State"


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize("level", LEVELS)
def test_numerators_never_exceed_denominators(region, year, level):
    frame = _api_frame(region[0], year, level)
    for m in load_catalog().acs.measures_at(level):
        f = m.formula(year)
        if f is None or not f.denominator:
            continue
        terms = [t.lstrip("-") for t in (*f.numerator, *f.denominator)]
        values = {t: _number(frame, f"{t}E") for t in terms}
        ok = pd.concat(values.values(), axis=1).ge(0).all(axis=1)  # skip jam values
        numerator, denominator = _signed(values, f.numerator), _signed(values, f.denominator)
        assert (numerator[ok] <= denominator[ok]).all(), m.name
        assert (numerator[ok] >= 0).all(), m.name


def _signed(values: dict[str, pd.Series], terms: tuple[str, ...]) -> pd.Series:
    return sum((-1 if t.startswith("-") else 1) * values[t.lstrip("-")] for t in terms)


@pytest.mark.parametrize("year", YEARS)
def test_tracts_sum_their_block_groups_and_county_its_tracts(region, year):
    root = region[0]
    bg, tract, county = (_api_frame(root, year, level) for level in LEVELS)
    by_tract = _number(bg, "B01003_001E").groupby(bg["GEOID"].str[:11]).sum()
    assert by_tract.to_dict() == tract.set_index("GEOID")["B01003_001E"].astype(int).to_dict()
    assert _number(tract, "B01003_001E").sum() == int(county["B01003_001E"].iloc[0])
    assert _number(tract, "B25003_001E").sum() == int(county["B25003_001E"].iloc[0])


@pytest.mark.parametrize("year", YEARS)
def test_moes_are_positive_and_larger_relative_in_small_areas(region, year):
    root = region[0]
    rel = {}
    for level in ("block_group", "tract"):
        frame = _api_frame(root, year, level)
        moe_columns = [c for c in frame if c.endswith("M") and frame[c].notna().all()]
        values = frame[moe_columns]
        assert (values.isin(JAMS) | values.apply(pd.to_numeric).gt(0)).all().all()
        est, moe = _number(frame, "B01003_001E"), _number(frame, "B01003_001M")
        rel[level] = (moe / est).median()
    assert rel["block_group"] > rel["tract"]


def test_census_annotations_are_present(region):
    root = region[0]
    county = _api_frame(root, 2019, "county")
    assert county["B01003_001M"].iloc[0] == "-555555555"
    for year in YEARS:
        bg = _api_frame(root, year, "block_group")
        pairs = set(zip(bg["B19013_001E"], bg["B19013_001M"], strict=True))
        assert ("-666666666", "-222222222") in pairs
        assert sum(e == "250001" and m == "-333333333" for e, m in pairs) == 1
        incomes = _number(bg, "B19013_001E")
        assert incomes[incomes > 0].between(10_000, 250_001).all()
    tiny = _api_frame(root, 2019, "block_group").set_index("GEOID").loc["990010006004"]
    assert int(tiny["B01003_001E"]) < 50
    assert tiny.isin(JAMS - {"-555555555"}).sum() >= 10


def test_median_income_falls_with_poverty(region):
    frame = _api_frame(region[0], 2019, "tract")
    frame = frame[_populated(frame)]
    poverty = (_number(frame, "C17002_002E") + _number(frame, "C17002_003E")) / _number(
        frame, "C17002_001E")
    income = _number(frame, "B19013_001E")
    assert np.corrcoef(poverty, np.log(income))[0, 1] < -0.5


def test_vintages_differ(region):
    root = region[0]
    y2020, y2021 = (_api_frame(root, y, "block_group").set_index("GEOID") for y in (2020, 2021))
    assert list(y2020.index) == list(y2021.index)
    populated = y2020.index != WATER_BLOCK_GROUP
    assert (y2020.loc[populated, "B01003_001E"] != y2021.loc[populated, "B01003_001E"]).all()
    assert y2020.loc[WATER_BLOCK_GROUP, "B01003_001E"] == y2021.loc[WATER_BLOCK_GROUP, "B01003_001E"] == "0"
    tracts = {y: set(_api_frame(root, y, "tract")["GEOID"]) for y in YEARS}
    assert "99001000300" in tracts[2019] and "99001000300" not in tracts[2020]
    assert {"99001000301", "99001000302"} <= tracts[2020] - tracts[2019]
    assert tracts[2020] == tracts[2021]


# -- TIGER boundaries --------------------------------------------------------------------------


@pytest.mark.parametrize(("year", "suffix"), [(2010, "10"), (2020, "")])
def test_tiger_files(region, year, suffix):
    root, manifest = region
    path = root / manifest["tiger"][str(year)]["path"]
    layer = path.stem
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted(
            f"{layer}.{ext}" for ext in ("shp", "shx", "dbf", "prj", "cpg"))
    frame = gpd.read_file(path)
    assert frame.crs.to_epsg() == 4269
    assert all(f"{c}{suffix}" in frame for c in TIGER_COLUMNS)
    geoid = frame[f"GEOID{suffix}"]
    assert (geoid.str.len() == 12).all() and geoid.is_unique
    assert (frame[f"MTFCC{suffix}"] == "G5030").all()
    assert frame[f"INTPTLAT{suffix}"].str.fullmatch(r"\+38\.\d{7}").all()
    assert frame[f"INTPTLON{suffix}"].str.fullmatch(r"-069\.\d{7}").all()
    water = frame[f"TRACTCE{suffix}"].str.startswith("99")  # Census water-only tract codes
    assert (frame[f"ALAND{suffix}"] > 0).all() == (not water.any())
    assert (frame.loc[water, f"ALAND{suffix}"] == 0).all() and (frame.loc[water, f"AWATER{suffix}"] > 0).all()
    assert (frame.loc[~water, f"ALAND{suffix}"] > 0).all()
    assert list(geoid[water]) == [WATER_BLOCK_GROUP]
    vintage = next(v["year"] for v in manifest["vintages"] if v["boundary_vintage"] == year)
    assert set(geoid) == set(_api_frame(root, vintage, "block_group")["GEOID"])


@pytest.mark.parametrize("year", [2010, 2020])
def test_block_groups_tile_the_county(region, year):
    root, manifest = region
    frame = gpd.read_file(root / manifest["tiger"][str(year)]["path"])
    land = frame[frame.filter(regex="^ALAND").iloc[:, 0] > 0].geometry.to_numpy()
    county = shapely.box(-70.0, 38.0, -69.6, 38.3)
    assert shapely.area(land).sum() == pytest.approx(county.area, rel=1e-9)
    assert shapely.union_all(land).area == pytest.approx(county.area, rel=1e-9)
    water = frame[frame.filter(regex="^ALAND").iloc[:, 0] == 0].geometry.to_numpy()
    assert all(w.touches(county) and w.bounds[0] == -69.6 for w in water)  # offshore, east
    overlaps = gpd.sjoin(frame, frame, predicate="overlaps")
    assert overlaps.empty


def test_boundaries_change_between_vintages(region):
    root, manifest = region
    old, new = (gpd.read_file(root / manifest["tiger"][y]["path"]) for y in ("2010", "2020"))
    assert set(old["TRACTCE10"]) != set(new["TRACTCE"])
    assert len(new) > len(old)
    # A point just south of 38.2 in tract 000500 (2010) lies in 000400 in 2020.
    point = gpd.GeoDataFrame(geometry=[shapely.Point(-69.731, 38.19)], crs=4269)
    assert gpd.sjoin(point, old)["TRACTCE10"].item() == "000500"
    assert gpd.sjoin(point, new)["TRACTCE"].item() == "000400"


# -- ADI ---------------------------------------------------------------------------------------


def test_adi_files(region):
    root, manifest = region
    for entry in manifest["adi_files"]:
        adi = pd.read_csv(root / entry["path"], dtype=str, keep_default_na=False)
        assert list(adi.columns) == ["GISJOIN", "FIPS", "ADI_NATRANK", "ADI_STATERNK"]
        assert (adi["FIPS"].str.len() == 12).all()
        assert (adi["GISJOIN"] == "G990001" + "0" + adi["FIPS"].str[5:]).all()
        tiger = gpd.read_file(root / manifest["tiger"][str(entry["boundary_vintage"])]["path"])
        assert set(adi["FIPS"]) == set(tiger.filter(regex="^GEOID").iloc[:, 0])
        assert {"GQ", "PH", "GQ-PH", "QDI"} <= set(adi["ADI_NATRANK"])
        assert adi.set_index("FIPS").loc["990010006004", "ADI_NATRANK"] == "PH"
        ranked = adi[adi["ADI_NATRANK"].str.isdigit()]
        assert pd.to_numeric(ranked["ADI_NATRANK"]).between(1, 100).all()
        assert set(pd.to_numeric(ranked["ADI_STATERNK"])) == set(range(1, 11))


def test_adi_follows_acs_deprivation(region):
    root, _ = region
    adi = pd.read_csv(root / "adi/DS_2020_ADI_Census_Block_Group_v4_0.csv", dtype=str)
    acs = _api_frame(root, 2020, "block_group")
    joined = adi[adi["ADI_NATRANK"].str.isdigit()].merge(acs, left_on="FIPS", right_on="GEOID")
    poverty = (_number(joined, "C17002_002E") + _number(joined, "C17002_003E")) / _number(
        joined, "C17002_001E")
    rank = pd.to_numeric(joined["ADI_NATRANK"])
    assert rank.corr(poverty, method="spearman") > 0.5


# -- inputs of the indices computed from the ACS (SVI, ADI) -------------------------------------


def _file_for(year: int, level: str, name: str) -> str:
    return f"census_api/{year}/{_dataset(name)}/{level}.json"


@pytest.mark.parametrize(("index", "year", "level"), [
    (index, year, level) for index, (years, levels) in INDEX_INPUTS.items()
    for year in years for level in levels])
def test_every_index_input_is_served(region, index, year, level):
    root = region[0]
    names = _index_variables(index, year)
    assert names, f"{index} reads ACS {year}"
    frames = {}
    for name in sorted(names):
        path = _file_for(year, level, name)
        if path not in frames:
            frames[path] = _api_frame(root, year, level, path.split("/", 2)[2].rsplit("/", 1)[0])
        column = frames[path][name]
        populated = _populated(frames[path])
        assert column[populated].notna().all(), (path, name)
        values = pd.to_numeric(column[populated])
        assert ((values >= 0) | column[populated].isin(JAMS)).all(), (path, name)
        if name.endswith("M"):
            assert ((values > 0) | column[populated].isin(JAMS)).all(), (path, name)
        if name.endswith("PE") or name.startswith("S") and "_C02_" in name or name == "S2701_C05_001E":
            assert values[values >= 0].le(100).all(), (path, name)


def test_profile_and_subject_counts_repeat_the_detailed_ones(region):
    root = region[0]
    detailed = _api_frame(root, 2020, "tract").set_index("GEOID")
    subject = _api_frame(root, 2020, "tract", "acs/acs5/subject").set_index("GEOID")
    profile = _api_frame(root, 2020, "tract", "acs/acs5/profile").set_index("GEOID")
    for narrow, twin in (((subject, "S0601_C01_001"), "B01003_001"),
                         ((subject, "S1701_C01_001"), "C17002_001"),
                         ((profile, "DP02_0001"), "B11001_001"),
                         ((profile, "DP04_0001"), "B25002_001"),
                         ((profile, "DP03_0005"), "B23025_005"),
                         ((profile, "DP05_0071"), "B03002_012")):
        frame, name = narrow
        assert (frame[f"{name}E"] == detailed[f"{twin}E"]).all(), name
        assert (frame[f"{name}M"] == detailed[f"{twin}M"]).all(), name  # same cell, same MOE
    county = _api_frame(root, 2020, "county", "acs/acs5/subject")
    assert county["S0601_C01_001M"].item() == "-555555555"  # controlled, like B01003_001


def test_index_tables_add_up(region):
    root = region[0]
    for year, level in ((2020, "tract"), (2020, "block_group"), (2021, "block_group")):
        frame = _api_frame(root, year, level)
        frame = frame[_populated(frame) & frame[[c for c in frame if c.endswith("E")]]
                      .apply(pd.to_numeric, errors="coerce").ge(0).all(axis=1)]

        def total(*cells: str, frame: pd.DataFrame = frame) -> pd.Series:
            return sum(_number(frame, f"{c}E") for c in cells)

        education = [f"B15003_{n:03d}" for n in range(2, 26)]
        assert (total(*education) == total("B15003_001")).all()
        owners, renters = total("B25003_002"), total("B25003_003")
        assert (owners + renters == total("B25003_001")).all()
        assert (total(*[f"B19001_{n:03d}" for n in (2, *range(11, 18))]) <= total("B25003_001")).all()
        assert (total("B11005_005") <= total("B11005_002")).all()
        assert (total("B25043_007") <= owners).all() and (total("B25016_016") <= renters).all()
        assert (total("C24010_003", "C24010_039") <= total("C24010_001")).all()
        assert (total("C24010_001") == total("B23025_003") - total("B23025_005")).all()
    tract = _api_frame(root, 2020, "tract")
    tract = tract[_populated(tract)]
    profile = _api_frame(root, 2020, "tract", "acs/acs5/profile").set_index("GEOID").loc[tract["GEOID"]]
    minority = sum(pd.to_numeric(profile[f"DP05_{n:04d}E"]) for n in (71, *range(78, 84)))
    white = _number(tract, "B03002_003E").to_numpy()  # the rest of the population
    assert (minority.to_numpy() + white == _number(tract, "B03002_001E").to_numpy()).all()
    limited = sum(_number(tract, c) for c in tract if c.startswith("B16005_") and c.endswith("E")
                  and c != "B16005_001E")
    assert (limited <= _number(tract, "B16005_001E")).all()


def test_svi_formulas_never_exceed_their_denominators(region):
    from ingestion.derive.svi import load_svi_catalog

    root = region[0]
    tract = _api_frame(root, 2020, "tract").set_index("GEOID")
    for dataset in NARROW:
        tract = tract.join(_api_frame(root, 2020, "tract", dataset).set_index("GEOID")
                           .drop(columns=["NAME", *GEO_COLUMNS["tract"]]))
    tract = tract.drop(WATER_TRACT)
    totals = {f"E_{t.name}": t.releases[2020].estimate for t in load_svi_catalog().totals}
    checked = 0
    for variable in load_svi_catalog().variables:
        formula = variable.releases[2020]
        if formula.percent.denominator is None:
            continue
        den = formula.percent.denominator
        denominator = totals.get(den, (den,))
        num = sum(pd.to_numeric(tract[f"{t}E"]) for t in formula.estimate)
        assert (num <= sum(pd.to_numeric(tract[f"{t}E"]) for t in denominator)).all(), variable.name
        checked += 1
    assert checked >= 8


def test_adi_formulas_never_exceed_their_denominators(region):
    from sdoh_sources.adi_computed import load_adi_method

    root = region[0]
    for year in (2020, 2021):
        bg = _api_frame(root, year, "block_group")
        bg = bg[_populated(bg)]
        for indicator in load_adi_method().indicators:
            numerator, denominator = indicator.terms(year)
            if indicator.formula != "percent":
                continue
            values = bg[[f"{v}E" for v in (*numerator, *denominator)]].apply(pd.to_numeric)
            ok = values.ge(0).all(axis=1)  # jam values of the tiny block group
            num = values[[f"{v}E" for v in numerator]].sum(axis=1)
            den = values[[f"{v}E" for v in denominator]].sum(axis=1)
            assert (num[ok] <= den[ok]).all(), (year, indicator.name)


def test_new_medians_follow_deprivation(region):
    bg = _api_frame(region[0], 2020, "block_group")
    values = bg[["B19113_001E", "B25088_002E", "B19013_001E", "C17002_001E", "C17002_002E",
                 "C17002_003E"]].apply(pd.to_numeric)
    values = values[(values >= 0).all(axis=1) & (values["C17002_001E"] > 0)]
    poverty = (values["C17002_002E"] + values["C17002_003E"]) / values["C17002_001E"]
    assert values["B19113_001E"].corr(poverty, method="spearman") < -0.5
    assert values["B19113_001E"].corr(values["B19013_001E"], method="spearman") > 0.7
    assert values["B25088_002E"].between(500, 4000).all()
    jammed = bg.set_index("GEOID").loc[WATER_BLOCK_GROUP, ["B19113_001E", "B19113_001M"]]
    assert jammed.tolist() == ["-666666666", "-222222222"]


def test_decennial_group_quarters_file(region):
    root, manifest = region
    assert manifest["decennial"][0]["files"] == {"block_group": "census_api/2020/dec/pl/block_group.json"}
    rows = json.loads((root / "census_api/2020/dec/pl/block_group.json").read_text())
    assert rows[0] == ["NAME", "P5_001N", *GEO_COLUMNS["block_group"]]
    assert all(isinstance(v, str) for r in rows for v in r)
    frame = _api_frame(root, 2020, "block_group", "dec/pl").set_index("GEOID")
    acs = _api_frame(root, 2020, "block_group").set_index("GEOID")
    assert list(frame.index) == list(acs.index)
    share = _number(frame, "P5_001N") / _number(acs, "B01003_001E").replace(0, np.nan)
    specials = manifest["geography"]["special_block_groups"]
    assert share[specials["group_quarters"]] > 0.33 and share[specials["small_group_quarters"]] > 0.33
    assert (share.drop([specials["group_quarters"], specials["small_group_quarters"]]).fillna(0)
            < 0.33).all()
    assert frame.loc[WATER_BLOCK_GROUP, "P5_001N"] == "0"


@pytest.fixture(scope="module")
def fetched(region) -> dict:
    """The index inputs pulled through the real client from a replay server of the region."""
    from ingestion.derive.adi import adi_variables
    from ingestion.derive.svi import svi_variables

    root = region[0]
    out = {}
    with CensusReplayServer(root / "census_api") as server:
        client = CensusClient(base_url=server.base_url)
        svi = sorted({v[:-1] for v in svi_variables(2020)})
        for level in ("tract", "county"):
            out[("svi", level)] = get_acs(level, svi, 2020, "99", output="wide", client=client)
        for year in (2020, 2021):
            adi = sorted({v[:-1] for v in adi_variables(year)})
            out[("adi", year)] = get_acs("block group", adi, year, "99", county="001",
                                         output="wide", client=client)
        out["P5"] = client.get_table(2020, "dec/pl", ["P5_001N"], "block group", state="99")
        client.close()
    return out


@pytest.mark.parametrize("level", ["tract", "county"])
def test_svi_inputs_through_the_real_client(region, fetched, level):
    from ingestion.derive.svi import svi_variables

    frame = fetched[("svi", level)]
    assert set(svi_variables(2020)) <= set(frame.columns)
    expected = set(_api_frame(region[0], 2020, level)["GEOID"])
    assert set(frame["GEOID"]) == expected
    populated = frame["GEOID"] != WATER_TRACT
    assert frame.loc[populated, sorted(svi_variables(2020))].notna().all().all()


@pytest.mark.parametrize("year", [2020, 2021])
def test_adi_inputs_through_the_real_client(region, fetched, year):
    from ingestion.derive.adi import adi_variables

    frame = fetched[("adi", year)]
    assert set(adi_variables(year)) <= set(frame.columns)
    assert set(frame["GEOID"]) == set(_api_frame(region[0], year, "block_group")["GEOID"])
    quarters = fetched["P5"]
    assert set(quarters["GEOID"]) == set(frame["GEOID"])
    assert quarters["P5_001N"].map(lambda v: v.isdigit()).all()


def test_svi_ranks_every_populated_tract(region, fetched):
    from ingestion.derive.svi import compute_svi

    svi = compute_svi(fetched[("svi", "tract")], release=2020, reference="state",
                      states=[region[1]["state_fips"]]).set_index("GEOID")
    populated = svi["E_TOTPOP"] > 0
    assert populated.sum() == len(svi) - 1 and not populated[WATER_TRACT]
    assert svi.loc[populated, "RPL_THEMES"].notna().all()
    assert svi.loc[populated, [f"RPL_THEME{n}" for n in range(1, 5)]].notna().all().all()
    assert np.isnan(svi.loc[WATER_TRACT, "RPL_THEMES"])
    assert svi.loc[WATER_TRACT, "RPL_THEMES_missing"] == "svi_not_computed"
    tract = _api_frame(region[0], 2020, "tract").set_index("GEOID").loc[svi.index[populated]]
    poverty = (_number(tract, "C17002_002E") + _number(tract, "C17002_003E")) / _number(
        tract, "C17002_001E")
    assert svi.loc[populated, "RPL_THEME1"].corr(poverty, method="spearman") > 0.5
    assert svi.loc[populated, "RPL_THEMES"].corr(poverty, method="spearman") > 0.3


@pytest.mark.parametrize("year", [2020, 2021])
def test_computed_adi_suppresses_and_follows_deprivation(region, fetched, year):
    from ingestion.derive.adi import compute_adi

    root, manifest = region
    quarters = fetched["P5"][["GEOID", "P5_001N"]].rename(
        columns={"P5_001N": "group_quarters_population"})
    inputs = fetched[("adi", year)].merge(quarters, on="GEOID", how="left")
    adi = compute_adi(inputs, vintage=year, reference="state",
                      states=[manifest["state_fips"]]).set_index("GEOID")
    reasons = publisher_source("adi").missing_codes
    specials = manifest["geography"]["special_block_groups"]
    expected = {specials["tiny"]: "PH", specials["group_quarters"]: "GQ",
                specials["small_group_quarters"]: "GQ-PH", WATER_BLOCK_GROUP: "PH"}
    for geoid, code in expected.items():
        assert adi.loc[geoid, "adi_missing"] == reasons[code], geoid
        assert np.isnan(adi.loc[geoid, "adi_percentile"])
    ranked = adi["adi_missing"].isna()
    assert ranked.sum() >= 30 and adi.loc[ranked, "adi_percentile"].between(1, 100).all()
    # the block group whose medians the ACS could not compute has no score, and says why
    assert (adi.loc[~ranked, "adi_missing"] == "adi_indicator_missing").sum() >= 1
    bg = _api_frame(root, year, "block_group").set_index("GEOID").loc[adi.index[ranked]]
    poverty = (_number(bg, "C17002_002E") + _number(bg, "C17002_003E")) / _number(bg, "C17002_001E")
    assert adi.loc[ranked, "adi_percentile"].corr(poverty, method="spearman") > 0.5
    atlas = pd.read_csv(root / "adi/DS_2020_ADI_Census_Block_Group_v4_0.csv", dtype=str)
    atlas = atlas.set_index("FIPS").loc[adi.index[ranked], "ADI_NATRANK"]
    numeric = atlas.str.isdigit()
    assert adi.loc[ranked, "adi_percentile"][numeric].corr(
        pd.to_numeric(atlas[numeric]), method="spearman") > 0.5


# -- patients, addresses, encounters -----------------------------------------------------------


def test_patients(region):
    root, manifest = region
    patients = pd.read_csv(root / "patients/patients.csv", dtype=str)
    assert len(patients) == manifest["n_patients"] == 2000
    assert patients["patient_id"].iloc[0] == "P000001" and patients["patient_id"].is_unique
    assert set(patients["sex"]) == {"F", "M"}
    assert set(patients["payer"]) == {"Commercial", "Medicare", "Medicaid", "Uninsured"}
    assert set(patients["preferred_language"]) == {"English", "Spanish", "Other"}
    assert set(patients["home_area"]) == {"urban", "rural"}
    by_area = pd.crosstab(patients["home_area"], patients["race_ethnicity"], normalize="index")
    assert by_area.loc["rural", "NH White"] > by_area.loc["urban", "NH White"] + 0.1


def test_address_periods_are_half_open_and_contiguous(region):
    history = _history(region[0])
    assert history.columns.tolist() == ["patient_id", "valid_from", "valid_to", "street", "city",
                                        "state", "zip", "latitude", "longitude"]
    for _, rows in history.groupby("patient_id"):
        starts, ends = rows["valid_from"].tolist(), rows["valid_to"].tolist()
        assert starts[0] <= "2019-01-01"
        assert starts == sorted(starts) and len(set(starts)) == len(starts)
        assert ends[:-1] == starts[1:] and ends[-1] == ""
    assert history["zip"].str.fullmatch(r"\d{5}").all()
    movers = history.groupby("patient_id").size().gt(1).mean()
    assert 0.25 < movers < 0.35


def test_every_coverage_gap_category_is_present(region):
    root, manifest = region
    history = _history(root)
    category = history.apply(_category, axis=1)
    truth = pd.read_csv(root / "truth/address_truth.csv", dtype=str, keep_default_na=False)
    assert (category == truth["category"]).all()
    counts = category.value_counts()
    assert counts.to_dict() == manifest["patients"]["address_history"]["categories"]
    expected = {"geocoded", "po_box", "geocode_failed", "zip_only", "outside_region"}
    assert set(counts.index) == expected
    assert 0.01 < counts["outside_region"] / len(history) < 0.03
    assert 0.85 <= counts["geocoded"] / len(history) <= 0.90
    po_box = history[category == "po_box"]
    assert (po_box["latitude"] != "").any() and (po_box["latitude"] == "").any()


def test_gaps_differ_by_subgroup(region):
    root = region[0]
    history = _history(root)
    history["category"] = history.apply(_category, axis=1)
    first = history.groupby("patient_id").head(1).merge(
        pd.read_csv(root / "patients/patients.csv", dtype=str), on="patient_id")

    def rate(column: str, value: str, category: str) -> float:
        return (first.loc[first[column] == value, "category"] == category).mean()

    assert rate("home_area", "rural", "po_box") > 2 * rate("home_area", "urban", "po_box")
    assert rate("home_area", "rural", "geocode_failed") > rate("home_area", "urban",
                                                               "geocode_failed")
    assert rate("payer", "Medicaid", "po_box") > rate("payer", "Commercial", "po_box")
    assert rate("preferred_language", "Spanish", "geocode_failed") > rate(
        "preferred_language", "English", "geocode_failed")


def test_geocoded_points_link_as_the_truth_says(region):
    root, manifest = region
    history = _history(root)
    truth = pd.read_csv(root / "truth/address_truth.csv", dtype=str, keep_default_na=False)
    linkable = truth["category"] == "geocoded"
    points = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(history.loc[linkable, "longitude"].astype(float),
                                    history.loc[linkable, "latitude"].astype(float)), crs=4269,
        index=history.index[linkable])
    for year, column in ((2010, "GEOID10"), (2020, "GEOID")):
        bgs = gpd.read_file(root / manifest["tiger"][str(year)]["path"])
        joined = gpd.sjoin(points, bgs, predicate="within")
        assert joined.index.is_unique and len(joined) == linkable.sum()
        expected = truth.loc[joined.index, f"expected_block_group_{year}"]
        assert (joined[column] == expected).all()
    moved = truth[linkable & (truth["expected_block_group_2010"].str[:11]
                              != truth["expected_block_group_2020"].str[:11])]
    assert set(moved["expected_block_group_2010"].str[5:11]) == {"000300", "000500"}


def test_encounters(region):
    root, manifest = region
    encounters = pd.read_csv(root / "patients/encounters.csv", dtype=str)
    assert encounters.columns.tolist() == ["patient_id", "event_timestamp", "encounter_type",
                                           "outcome"]
    assert encounters["event_timestamp"].str.fullmatch(
        r"20(19|2[0-3])-\d\d-\d\dT\d\d:\d\d:00Z").all()
    assert 4.5 < len(encounters) / manifest["n_patients"] < 5.5
    assert set(encounters["encounter_type"]) == {"outpatient", "ED", "inpatient"}
    assert set(encounters["outcome"]) == {"0", "1"}
    assert (encounters["event_timestamp"] == "2022-03-17T00:00:00Z").sum() >= 3
    assert (encounters["event_timestamp"] < "2020-12-10").mean() > 0.3
    history = _history(root)
    moves = history.groupby("patient_id").filter(lambda rows: len(rows) > 1)
    days = set(zip(encounters["patient_id"], encounters["event_timestamp"].str[:10], strict=True))
    on_day = [(p, d) in days for p, d in zip(moves["patient_id"], moves["valid_from"], strict=True)]
    assert sum(on_day) >= 10


def test_outcome_is_likelier_in_deprived_block_groups(region):
    root = region[0]
    encounters = pd.read_csv(root / "patients/encounters.csv", dtype=str)
    truth = pd.read_csv(root / "truth/address_truth.csv", dtype=str, keep_default_na=False)
    adi = pd.read_csv(root / "adi/DS_2015_ADI_Census_Block_Group_v3_2.csv", dtype=str)
    home = truth.groupby("patient_id").head(1)[["patient_id", "residence_block_group_2010"]]
    joined = encounters.merge(home, on="patient_id").merge(
        adi, left_on="residence_block_group_2010", right_on="FIPS")
    joined = joined[joined["ADI_NATRANK"].str.isdigit()]
    high = pd.to_numeric(joined["ADI_NATRANK"]) > 50
    outcome = joined["outcome"].astype(int)
    assert outcome[high].mean() > outcome[~high].mean()
