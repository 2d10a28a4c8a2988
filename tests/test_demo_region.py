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

from ingestion.demo_region import generate_demo_region
from sdoh_sources import load_catalog
from sdoh_sources._models import acs_dataset

YEARS = (2019, 2020, 2021)
LEVELS = ("block_group", "tract", "county")
GEO_COLUMNS = {"block_group": ["state", "county", "tract", "block group"],
               "tract": ["state", "county", "tract"], "county": ["state", "county"]}
GEOID_LENGTH = {"block_group": 12, "tract": 11, "county": 5}
TIGER_COLUMNS = ("STATEFP", "COUNTYFP", "TRACTCE", "BLKGRPCE", "GEOID", "NAMELSAD", "MTFCC",
                 "FUNCSTAT", "ALAND", "AWATER", "INTPTLAT", "INTPTLON")
PO_BOX = re.compile(r"(?i)\b(p\.?\s*o\.?\s*box|post office box)\b")
JAMS = {"-666666666", "-999999999", "-888888888", "-222222222", "-333333333", "-555555555"}


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
    with caplog.at_level("WARNING", logger="ingestion.demo_region"):
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
    assert {f"{v}{s}" for v in variables for s in "EM"} == set(header[1:-len(GEO_COLUMNS[level])])
    frame = _api_frame(root, year, level)
    assert (frame["GEOID"].str.len() == GEOID_LENGTH[level]).all()
    assert frame["GEOID"].is_unique and frame["GEOID"].str.startswith("99001").all()
    assert frame["NAME"].str.endswith("Synthetic County, Demo State").all()
    published = set(load_catalog().acs.variables_for(level, year))
    for v in variables:
        assert frame[f"{v}E"].isna().all() == (v not in published), v


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
    assert set(rows[0][1:-len(GEO_COLUMNS[level])]) == {f"{v}{s}" for v in wanted for s in "EM"}
    frame = _api_frame(root, year, level, dataset)
    assert set(frame["GEOID"]) == set(_api_frame(root, year, level)["GEOID"])
    for v in wanted:
        estimate, moe = pd.to_numeric(frame[f"{v}E"]), pd.to_numeric(frame[f"{v}M"])
        assert estimate.between(0, 100).all() and (moe > 0).all(), v
        assert frame[f"{v}E"].str.fullmatch(r"\d+\.\d").all(), v  # one decimal, as the API
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
    poverty = (_number(frame, "C17002_002E") + _number(frame, "C17002_003E")) / _number(
        frame, "C17002_001E")
    income = _number(frame, "B19013_001E")
    assert np.corrcoef(poverty, np.log(income))[0, 1] < -0.5


def test_vintages_differ(region):
    root = region[0]
    y2020, y2021 = (_api_frame(root, y, "block_group").set_index("GEOID") for y in (2020, 2021))
    assert list(y2020.index) == list(y2021.index)
    assert (y2020["B01003_001E"] != y2021["B01003_001E"]).all()
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
    assert (frame[f"ALAND{suffix}"] > 0).all()
    vintage = next(v["year"] for v in manifest["vintages"] if v["boundary_vintage"] == year)
    assert set(geoid) == set(_api_frame(root, vintage, "block_group")["GEOID"])


@pytest.mark.parametrize("year", [2010, 2020])
def test_block_groups_tile_the_county(region, year):
    root, manifest = region
    frame = gpd.read_file(root / manifest["tiger"][str(year)]["path"])
    county = shapely.box(-70.0, 38.0, -69.6, 38.3).area
    assert shapely.area(frame.geometry.to_numpy()).sum() == pytest.approx(county, rel=1e-9)
    assert shapely.union_all(frame.geometry.to_numpy()).area == pytest.approx(county, rel=1e-9)
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
