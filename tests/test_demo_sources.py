"""The demo region's publisher files: their layouts, what the source kit reads from them, and
what the demo serves from them (training frame, online lookup, datasheets)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from equity.datasheets import datasheets, to_markdown
from ingestion.demo.publisher_files import DEMO_SOURCES, FILES, RUCA_TRACT_2020_COLUMNS
from ingestion.demo.region import generate_demo_region
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import publisher_source

SEED = 20221208
EJI_2022 = "eji/EJI_2022_Demo_State_CSV.zip"
EJI_2024 = "eji/EJI_2024_Demo_State_CSV.zip"
FOOD = "food_access/FoodAccessResearchAtlasData2019.csv"
CHR = "chr/analytic_data2010.csv"
RUCA = "ruca/2020-rural-urban-commuting-area-codes-census-tracts.csv"
PLACES = "places/PLACES__County_Data__GIS_Friendly_Format___2022_release.csv"
URBAN_CORE_2010 = ["99001000100", "99001000200", "99001000300"]  # Port Synth, within a mile
DAY = dt.date(2024, 1, 1)


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("region")
    return root, generate_demo_region(root, seed=SEED, n_patients=20)


def read(root: Path, source: str, release: str):
    spec = publisher_source(source)
    level = next(s.level for s in DEMO_SOURCES if (s.source, s.release) == (source, release))
    raw = read_release_file(root / FILES[source, release], spec.release(release, level))
    return raw, *conform_release(raw, spec, spec.release(release, level), available_from=DAY,
                                 synthetic=True)


def eji_member(root: Path, path: str, member: str) -> pd.DataFrame:
    """The data CSV of an EJI zip, read with plain pandas (not the kit), blank lines dropped."""
    with zipfile.ZipFile(root / path) as archive:
        data = archive.read(member)
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False).query("STATEFP != ''")


@pytest.mark.parametrize(("source", "release", "rows", "blank", "published", "set_aside"), [
    ("eji", "2022", 13, 3000, 13, 0),  # 12 tracts and the water tract; CDC's filler lines
    ("eji", "2024", 14, 3000, 14, 0),  # tract 000300 split in two
    ("food_access", "2019", 12, 0, 12, 0),  # the Atlas leaves out the water tract
    ("chr", "2010", 2, 0, 1, 1),  # the state row 99000 set aside
    ("ruca", "2020", 14, 0, 14, 0),  # every 2020 tract, the water tract not coded (99)
    ("places", "2022", 1, 0, 1, 0),
])
def test_the_kit_reads_each_file(region, source, release, rows, blank, published, set_aside):
    _, _, report = read(region[0], source, release)
    assert (report.rows_read, report.blank_rows, report.published) == (rows, blank, published)
    assert sum(report.set_aside.values()) == set_aside


def test_eji_2022_zip_holds_a_dictionary_and_unpadded_county_codes(region):
    root = region[0]
    with zipfile.ZipFile(root / EJI_2022) as archive:
        assert archive.namelist() == ["EJI_DATADICTIONARY_2022.csv", "EJI_2022_Demo_State.csv"]
        data = archive.read("EJI_2022_Demo_State.csv")
    lines = data.split(b"\r\n")
    assert lines[1].startswith(b"99,1,000100,1400000US99001000100,99001000100,")
    assert lines[-2] == b"," * 117 and data.count(b"\r\n") == 1 + 13 + 3000
    _, frame, _ = read(root, "eji", "2022")
    assert frame["tract_geoid"].tolist()[:2] == ["99001000100", "99001000200"]


@pytest.mark.parametrize(("release", "tract", "measure", "reason"), [
    ("2022", "99001990000", "eji_rank", "publisher_value_missing"),  # empty cell, water tract
    ("2022", "99001000900", "eji_health_vulnerability_rank", "publisher_value_missing"),
    ("2024", "99001990000", "eji_rank", "publisher_not_computed"),  # -999
    ("2024", "99001001100", "eji_health_vulnerability_rank", "publisher_not_computed"),
    ("2022", "99001000100", "eji_climate_burden_rank", "not_available_in_vintage"),  # 2024 only
])
def test_eji_missing_cells_become_typed_reasons(region, release, tract, measure, reason):
    _, frame, _ = read(region[0], "eji", release)
    row = frame.set_index("tract_geoid").loc[tract]
    assert pd.isna(row[measure]) and row[f"{measure}_missing"] == reason


def test_eji_2024_is_on_2020_tracts(region):
    _, frame, _ = read(region[0], "eji", "2024")
    assert {"99001000301", "99001000302"} <= set(frame["tract_geoid"])
    assert "99001000300" not in set(frame["tract_geoid"])
    assert set(frame["boundary_year"]) == {2020}


def test_food_access_has_a_bom_crlf_and_null(region):
    root = region[0]
    data = (root / FOOD).read_bytes()
    assert data.startswith(b"\xef\xbb\xbfCensusTract,State,County,Urban,")
    assert data.count(b"\r\n") == 13 and b"\n" not in data.replace(b"\r\n", b"")
    _, frame, report = read(root, "food_access", "2019")
    nulls = frame.loc[frame["low_access_share_1mi"].isna(), "tract_geoid"].tolist()
    assert nulls == URBAN_CORE_2010
    assert set(frame.loc[frame["tract_geoid"].isin(nulls), "low_access_share_1mi_missing"]) \
        == {"publisher_value_missing"}
    assert report.missing["low_access_share_1mi"] == {"publisher_value_missing": 3}


def test_chr_intervals_become_moes_only_when_symmetric(region):
    _, frame, report = read(region[0], "chr", "2010")
    row = frame.iloc[0]
    assert row["county_geoid"] == "99001"
    # A 95% interval of half-width 380 (value +- 380): MOE = 380 x 1.645 / 1.96.
    assert row["chr_premature_death_ci_high"] - row["chr_premature_death"] == pytest.approx(380)
    assert row["chr_premature_death_moe"] == pytest.approx(318.9285714)
    # Adult obesity's interval is off-centre: bounds kept, no MOE.
    assert pd.isna(row["chr_adult_obesity_moe"])
    assert row["chr_adult_obesity_ci_low"] < row["chr_adult_obesity"] < row["chr_adult_obesity_ci_high"]
    assert list(report.set_aside.values()) == [1]


def test_ruca_and_places_files_have_the_publishers_layout(region):
    root = region[0]
    ruca = pd.read_csv(root / RUCA, dtype=str, keep_default_na=False)
    assert tuple(ruca.columns) == RUCA_TRACT_2020_COLUMNS
    assert (root / RUCA).read_bytes().count(b"\r\n") == 15
    assert set(ruca["PrimaryRUCA"]) == {"1", "2", "7", "10", "99"}
    _, frame, report = read(root, "ruca", "2020")
    assert report.missing == {"ruca_primary": {"publisher_not_computed": 1},
                              "ruca_secondary": {"publisher_not_computed": 1}}
    places = pd.read_csv(root / PLACES, dtype=str)
    assert places["CountyFIPS"].tolist() == ["99001"]
    assert places["OBESITY_Crude95CI"].str.fullmatch(r"\(\s?\d+\.\d, \s?\d+\.\d\)").all()


@pytest.mark.parametrize(("path", "real"), [
    (FOOD, "ma_food_access2019/FoodAccessResearchAtlasData2019.csv"),
    (PLACES, "ma_places2022_county/PLACES__County_Data__GIS_Friendly_Format___2022_release__MA_subset.csv"),
])
def test_headers_are_the_publishers(region, real_data, path, real):
    ours = pd.read_csv(region[0] / path, nrows=0, encoding="utf-8-sig").columns.tolist()
    theirs = pd.read_csv(real_data / real, nrows=0, encoding="utf-8-sig").columns.tolist()
    assert ours == theirs


def test_eji_2022_header_is_cdcs(region, real_data):
    with zipfile.ZipFile(real_data / "ma_eji2022" / "EJI_2022_Massachusetts_CSV.zip") as archive:
        theirs = archive.read("EJI_2022_Massachusetts.csv").split(b"\r\n", 1)[0]
    assert eji_member(region[0], EJI_2022, "EJI_2022_Demo_State.csv").columns.tolist() \
        == theirs.decode().split(",")


def test_chr_labels_and_names_are_chrs(region, real_data):
    ours = pd.read_csv(region[0] / CHR, header=None, nrows=2, dtype=str).T
    theirs = pd.read_csv(real_data / "ma_chr2010" / "analytic_data2010__MA_subset.csv", header=None,
                         nrows=2, dtype=str).T
    pairs = set(map(tuple, theirs.to_numpy()))
    assert all(tuple(pair) in pairs for pair in ours.to_numpy())


def test_files_are_deterministic(region, tmp_path):
    again = generate_demo_region(tmp_path, seed=SEED, n_patients=20)
    assert again["publisher_files"] == region[1]["publisher_files"]
    for entry in again["publisher_files"]:
        assert (tmp_path / entry["path"]).read_bytes() == (region[0] / entry["path"]).read_bytes()
        assert entry["synthetic"] is True


# -- what the demo serves ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame(demo_run) -> pd.DataFrame:
    workspace, _ = demo_run
    out = pd.read_parquet(workspace.outputs / "training_frame.parquet")
    return out.assign(at=pd.to_datetime(out["event_timestamp"], utc=True))


def release_day(source: str, release: str) -> pd.Timestamp:
    entry = next(e for e in DEMO_SOURCES if (e.source, e.release) == (source, release))
    day = entry.available_from or publisher_source(source).release(release).available_from
    return pd.Timestamp(day, tz="UTC")


@pytest.mark.parametrize(("view", "measure", "source", "release"), [
    ("eji_tract", "eji_rank", "eji", "2022"),
    ("food_access_tract", "lila_1_10", "food_access", "2019"),
])
def test_events_before_the_first_release_read_not_yet_released(frame, view, measure, source, release):
    before = frame[frame["at"] < release_day(source, release)]
    assert len(before) > 1000  # the demo's events span the release
    assert before[f"{view}__{measure}"].isna().all()
    assert set(before[f"{view}__{measure}_missing"]) == {"not_yet_released"}


@pytest.mark.parametrize(("view", "measure", "allowed"), [
    ("eji_tract", "eji_rank", {"publisher_value_missing", "publisher_not_computed"}),
    ("food_access_tract", "lila_1_10", set()),
    ("chr_county", "chr_premature_death", set()),
])
def test_linked_events_after_a_release_have_values(frame, view, measure, allowed):
    read = frame[frame[f"{view}__geoid"].notna()]
    assert len(read) > 500
    missing = read[read[f"{view}__{measure}"].isna()]
    assert set(missing[f"{view}__{measure}_missing"]) <= allowed
    assert len(missing) < 0.1 * len(read)


def test_chr_2010_is_in_force_for_every_event(frame):
    assert (frame["at"] >= release_day("chr", "2010")).all()
    assert set(frame["chr_county__vintage"].dropna()) == {2010}


# Hand-checked: patient P000682 lives in 2010 tract 000300, in the part that became 2020 tract
# 000302 (truth/address_truth.csv). EJI 2022 (2010 tracts) counts from 2023-08-24, EJI 2024
# (2020 tracts) from the demo's 2023-12-14.
@pytest.mark.parametrize(("at", "vintage", "tract", "rank", "member", "path"), [
    ("2023-11-09T13:09:00Z", 2022, "99001000300", 0.5917, "EJI_2022_Demo_State.csv", EJI_2022),
    ("2023-12-19T06:40:00Z", 2024, "99001000302", 0.7007, "EJI_2024_Demo_State.csv", EJI_2024),
])
def test_a_patient_reads_eji_2022_then_2024_on_its_tracts(demo_run, frame, at, vintage, tract, rank,
                                                          member, path):
    workspace, _ = demo_run
    row = frame[(frame["patient_id"] == "P000682") & (frame["at"] == pd.Timestamp(at))].iloc[0]
    assert (row["eji_tract__vintage"], row["eji_tract__geoid"]) == (vintage, tract)
    assert row["eji_tract__eji_rank"] == pytest.approx(rank)
    # The file's RPL_EJI of that tract, read without the kit.
    published = eji_member(workspace.raw / "demo_region", path, member)
    geoid = "GEOID" if vintage == 2022 else "GEOID_2020"
    assert float(published.set_index(geoid).loc[tract, "RPL_EJI"]) == rank
    truth = pd.read_csv(workspace.raw / "demo_region" / "truth" / "address_truth.csv", dtype=str)
    lived = truth[truth["patient_id"] == "P000682"].iloc[-1]
    assert lived[f"residence_block_group_{2010 if vintage == 2022 else 2020}"][:11] == tract


def test_online_lookup_carries_the_new_views(demo_run):
    _, summary = demo_run
    record = summary.online_lookup.iloc[0]
    assert record["eji_tract__vintage"] == 2024
    assert record["food_access_tract__vintage"] == 2019
    assert record["chr_county__vintage"] == 2010
    assert pd.notna(record["chr_county__chr_premature_death"])


@pytest.mark.parametrize(("view", "measures", "release_dates"), [
    ("eji_tract", 11, "2023-08-24,2023-12-14"),
    ("food_access_tract", 10, "2021-03-01"),
    ("chr_county", 9, "2010-02-17"),
])
def test_datasheets_describe_the_new_views(demo_run, view, measures, release_dates):
    workspace, _ = demo_run
    text = to_markdown(datasheets(workspace, [view])[0])
    assert f"({measures} measures)" in text
    assert f"release dates: {release_dates}." in text


def test_online_lookup_carries_rurality_and_places(demo_run):
    _, summary = demo_run
    record = summary.online_lookup.iloc[0]
    assert record["ruca_tract__vintage"] == 2020 and record["places_county__vintage"] == 2022
    assert pd.notna(record["places_county__places_obesity_crude"])


def test_coverage_groups_by_rurality_from_ruca(demo_run, frame):
    """The demo's frame carries RUCA codes: the report's rurality subgroup comes from them."""
    from equity.coverage_report import coverage_report
    from equity.rurality import add_rurality

    workspace, _ = demo_run
    patients = pd.read_csv(workspace.raw / "demo_region" / "patients" / "patients.csv", dtype=str)
    grouped = add_rurality(frame)["rurality"]
    read = frame["ruca_tract__ruca_primary_missing"].isna()
    assert set(grouped[read]) <= {"metropolitan", "small_town", "rural"}
    assert grouped[~read].isna().all()
    page = coverage_report(frame, patients, features=["eji_tract__eji_rank"],
                           by=["rurality"])
    assert "<td>rurality</td>" in page and "<td>metropolitan</td>" in page
