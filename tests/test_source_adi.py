"""Neighborhood Atlas ADI files through the source kit: FIPS or GISJOIN, suppression codes, ranks.

The spec is sdoh_sources/catalog/sources/adi.yaml; the files below are written as the Atlas
ships them (both file-name styles, FIPS and/or NHGIS GISJOIN, codes in the rank columns).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ingestion.core.datasets import adi_spec
from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.jobs.ingest import ingest_source, release_of_file
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import GeoidRule, publisher_source

ADI = publisher_source("adi")
DAY = dt.date(2022, 9, 1)
# GISJOIN: "G" + state(2) + "0" + county(3) + "0" + tract(6) + block group(1). With FIPS present,
# FIPS is read (the GISJOIN of the first rows is short on purpose: it is not read).
CSV = """GISJOIN,FIPS,ADI_NATRANK,ADI_STATERNK
G0100010020100,010010201001,73,6
G0100010020100,010010201002,GQ,GQ
G0100010020200,010010202001,PH,PH
G0100010020200,010010202002,GQ-PH,GQ-PH
G0100010020300,010010203001,QDI,QDI
G0100010020300,010010203002,1,1
G0100010020300,010010203003,PH-GQ,ph-gq
G0100010020300,010010203004,qdi, Gq
"""
HEADER = "FIPS,ADI_NATRANK,ADI_STATERNK\n"


def _read(path, release=None):
    release = release or release_of_file(ADI, path)
    return conform_release(read_release_file(path, release), ADI, release, available_from=DAY)


@pytest.fixture
def adi_csv(tmp_path):
    path = tmp_path / "AL_2020_ADI_Census Block Group_v3.2.csv"
    path.write_text(CSV)
    return path


def test_reads_ranks_codes_and_keeps_leading_zeros(adi_csv):
    out, report = _read(adi_csv)
    assert tuple(out.columns) == adi_spec().column_names
    assert out["block_group_geoid"].tolist()[:2] == ["010010201001", "010010201002"]
    assert out.loc[0, ["adi_national_rank", "adi_state_decile"]].tolist() == [73.0, 6.0]
    assert out.loc[5, ["adi_national_rank", "adi_state_decile"]].tolist() == [1.0, 1.0]
    assert out["adi_national_rank_missing"].tolist() == [
        None, "suppressed_group_quarters", "suppressed_low_population_housing",
        "suppressed_group_quarters_and_low_population", "suppressed_questionable_data_integrity",
        None, "suppressed_group_quarters_and_low_population", "suppressed_questionable_data_integrity"]
    # codes in any case, as the Atlas reader always matched them
    assert out["adi_state_decile_missing"].tolist()[6:] == [
        "suppressed_group_quarters_and_low_population", "suppressed_group_quarters"]
    assert out["adi_national_rank"].isna().sum() == 6
    assert (out["vintage"] == 2020).all() and (out["boundary_year"] == 2020).all()
    assert out["release_ts"].iloc[0] == pd.Timestamp("2022-09-01", tz="UTC")
    assert report.missing["adi_national_rank"]["suppressed_group_quarters_and_low_population"] == 2


def test_every_suppression_code_of_the_spec_is_read(tmp_path):
    codes = ADI.missing_codes
    rows = "".join(f"0100102010{i:02d},{code},{code.lower()}\n" for i, code in enumerate(codes))
    path = tmp_path / "US_2021_ADI_Census_Block_Group_v4_0_1.csv"
    path.write_text(HEADER + rows)
    out, _ = _read(path)
    assert out["adi_national_rank_missing"].tolist() == list(codes.values())
    assert out["adi_state_decile_missing"].tolist() == list(codes.values())
    assert out[["adi_national_rank", "adi_state_decile"]].isna().all().all()


def test_gisjoin_only_file_of_2010_block_groups(tmp_path):
    path = tmp_path / "US_2015_ADI_Census_Block_Group_v2_0.csv"
    path.write_text("GISJOIN,ADI_NATRANK,ADI_STATERNK\nG01000100201001,73,6\nG56004500951002,9,1\n")
    out, _ = _read(path)
    assert out["block_group_geoid"].tolist() == ["010010201001", "560450951002"]
    assert out["vintage"].tolist() == [2015, 2015] and out["boundary_year"].iloc[0] == 2010


@pytest.mark.parametrize("gisjoin", ["G0100010020100", "G01100100201001", "X01000100201001", ""])
def test_a_gisjoin_that_is_not_a_block_group_is_named(tmp_path, gisjoin):
    path = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    path.write_text(f"GISJOIN,ADI_NATRANK,ADI_STATERNK\nG01000100201001,73,6\n{gisjoin},5,1\n")
    with pytest.raises(InputError, match=rf"{path.name}: line 3, field GISJOIN: '{gisjoin}' is not a "
                                         r"code matching .* whose groups make a 12-digit GEOID"):
        _read(path)


@pytest.mark.parametrize(("national", "decile", "field", "value", "expected"), [
    ("16.5", "3", "ADI_NATRANK", "'16.5'", "a whole number"),  # a percentile rank is whole
    ("50", "5.5", "ADI_STATERNK", "'5.5'", "a whole number"),
    ("0", "3", "ADI_NATRANK", "'0'", r"within the measure's range 1.0 to 100.0"),
    ("101", "3", "ADI_NATRANK", "'101'", r"within the measure's range 1.0 to 100.0"),
    ("50", "11", "ADI_STATERNK", "'11'", r"within the measure's range 1.0 to 10.0"),
    ("50", "0", "ADI_STATERNK", "'0'", r"within the measure's range 1.0 to 10.0"),
    ("", "3", "ADI_NATRANK", "''", "a number or a missing code"),
    ("XX", "3", "ADI_NATRANK", "'XX'", "a number or a missing code"),
])
def test_ranks_outside_their_bounds_name_file_line_and_column(tmp_path, national, decile, field,
                                                              value, expected):
    path = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    path.write_text(f"{HEADER}010010201001,73,6\n010010201002,{national},{decile}\n")
    with pytest.raises(InputError, match=rf"{path.name}: line 3, field {field}: {value} is not "
                                         rf"{expected}"):
        _read(path)


@pytest.mark.parametrize(("content", "match"), [
    (b"", r"the file is empty; expected a CSV file of release 2020"),
    (HEADER.encode(), r"a header row and no data rows"),
    (b"FIPS,ADI_NATRANK,ADI_STATERNK,NAME\n010010201001,73,6,Pe\xf1a\n",
     r"line 2: byte 0xf1 is not UTF-8.*iconv -f latin1 -t utf-8"),
    (b"FIPS,ADI_NATRANK\n010010201001,73\n", r"header: missing column\(s\) \['ADI_STATERNK'\]"),
    (b"GEOID,ADI_NATRANK,ADI_STATERNK\n010010201001,73,6\n",
     r"header: no GEOID column\(s\) \['FIPS'\] or \['GISJOIN'\]"),
    (b'FIPS,ADI_NATRANK,ADI_STATERNK\n"010010201001,73,6\n', r"malformed CSV"),
    (b"FIPS,ADI_NATRANK,ADI_STATERNK\n010010201001,73,6\n010010201001,12,2\n",
     r"lines \[2, 3\]: GEOID 010010201001 appears more than once in vintage 2020"),
])
def test_unusable_files_are_refused_with_the_file_named(tmp_path, content, match):
    path = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as caught:
        _read(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(("name", "release", "boundary"), [
    ("US_2021_ADI_Census_Block_Group_v4_0_1.csv", "2021", 2020),
    ("MD_2020_ADI_Census Block Group_v3.2.csv", "2020", 2020),
    ("us_2022_adi_census_block_group_v4_0_1.csv", "2022", 2020),
    ("US_2015_ADI_Census_Block_Group_v2_0.csv", "2015", 2010),
])
def test_the_release_comes_from_both_file_name_styles(name, release, boundary):
    found = release_of_file(ADI, name)
    assert (found.release, found.boundary_vintage) == (release, boundary)


@pytest.mark.parametrize(("name", "match"), [
    ("adi.csv", r"matches none of the release names \{'2015': '_2015_ADI_'"),
    ("US_2019_ADI_Census_Block_Group.csv", r"matches none of the release names"),
    ("US_2020_ADI_to_2021_ADI_x.csv", r"matches the releases \['2020', '2021'\]"),
])
def test_a_name_that_tells_no_release_or_several_asks_for_it(name, match):
    with pytest.raises(InputError, match=rf"{name}: cannot tell the release of adi from the file "
                                         rf"name \(the name {match}.*\): pass the release \(`--release`\)"):
        release_of_file(ADI, name)


def test_a_spec_without_file_names_asks_for_the_release():
    with pytest.raises(InputError, match=r"eji's spec gives no file names\): pass the release"):
        release_of_file(publisher_source("eji"), "EJI_2022_Massachusetts_CSV.zip")


def test_a_given_release_wins_over_the_name(tmp_path):
    path = tmp_path / "adi_block_groups.csv"
    path.write_text(HEADER + "010010201001,73,6\n")
    out, _ = _read(path, ADI.release("2021"))
    assert out["vintage"].tolist() == [2021]


def test_no_release_and_no_file_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"adi: pass the release to download \(`--release`\)"):
        ingest_source("adi", None, workspace=Workspace(tmp_path))


def test_an_alternative_carries_the_rules_summary():
    rule = GeoidRule(alternatives=[GeoidRule(column="FIPS")], summary="99.*")
    assert rule.fitting(["FIPS"]) == GeoidRule(column="FIPS", summary="99.*")
    assert rule.columns == ("FIPS",)


def test_the_demo_regions_atlas_files_publish(tmp_path):
    from ingestion.demo.region import generate_demo_region

    manifest = generate_demo_region(tmp_path / "region", n_patients=20)
    workspace = Workspace(tmp_path / "ws")
    published = {}
    for entry in manifest["adi_files"]:
        done = ingest_source("adi", None, tmp_path / "region" / entry["path"], workspace=workspace,
                             available_from=dt.date.fromisoformat(entry["available_from"]))
        assert done.published.dataset == "adi_block_group"
        published[entry["vintage"]] = done.report.published
    assert published == {2015: 41, 2020: 43}  # the demo's 2010 and 2020 block groups
    served = pd.read_parquet(workspace.published_dir("adi_block_group"))
    assert len(served) == 84 and sorted(served["vintage"].unique()) == [2015, 2020]
    assert set(served.groupby("vintage")["boundary_year"].first()) == {2010, 2020}
    assert served["adi_national_rank_missing"].notna().sum() >= 2 * 4  # PH, GQ, GQ-PH, QDI
