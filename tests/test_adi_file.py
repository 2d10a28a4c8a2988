import datetime as dt

import pandas as pd
import pytest

from ingestion.core.datasets import adi_spec
from ingestion.core.errors import InputError
from ingestion.sources.adi_file import read_adi_file, vintage_from_filename

CSV = """GISJOIN,FIPS,ADI_NATRANK,ADI_STATERNK
G0100010020100,010010201001,73,6
G0100010020100,010010201002,GQ,GQ
G0100010020200,010010202001,PH,PH
G0100010020200,010010202002,GQ-PH,GQ-PH
G0100010020300,010010203001,QDI,QDI
G0100010020300,010010203002,1,1
"""


@pytest.fixture
def adi_csv(tmp_path):
    path = tmp_path / "AL_2020_ADI_Census Block Group_v3.2.csv"
    path.write_text(CSV)
    return path


def test_reads_ranks_codes_and_keeps_leading_zeros(adi_csv):
    out = read_adi_file(adi_csv, available_from=dt.date(2022, 9, 1))
    assert tuple(out.columns) == adi_spec().column_names
    assert out["block_group_geoid"].tolist()[0] == "010010201001"
    assert out["adi_national_rank"].iloc[0] == 73 and out["adi_state_decile"].iloc[0] == 6
    assert out["adi_national_rank_missing"].tolist() == [
        None, "suppressed_group_quarters", "suppressed_low_population_housing",
        "suppressed_group_quarters_and_low_population", "suppressed_questionable_data_integrity", None]
    assert out["adi_national_rank"].isna().sum() == 4
    assert (out["vintage"] == 2020).all() and (out["boundary_year"] == 2020).all()
    assert out["release_ts"].iloc[0] == pd.Timestamp("2022-09-01", tz="UTC")


def test_gisjoin_only_file(tmp_path):
    path = tmp_path / "US_2015_ADI_Census_Block_Group_v2_0.csv"
    path.write_text("GISJOIN,ADI_NATRANK,ADI_STATERNK\nG01000100201001,73,6\n")
    out = read_adi_file(path, available_from=dt.date(2018, 5, 1))
    assert out["block_group_geoid"].tolist() == ["010010201001"]
    assert out["boundary_year"].iloc[0] == 2010


def test_bad_value_names_file_row_and_field(tmp_path):
    path = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    path.write_text("FIPS,ADI_NATRANK,ADI_STATERNK\n010010201001,73,6\n010010201002,XX,3\n")
    with pytest.raises(InputError, match=r"row 3, field ADI_NATRANK: 'XX'"):
        read_adi_file(path, available_from=dt.date(2022, 9, 1))


@pytest.mark.parametrize(("national", "decile", "field", "value"), [
    ("16.5", "3", "ADI_NATRANK", "'16.5'"),  # a percentile rank is a whole number
    ("0", "3", "ADI_NATRANK", "'0'"),
    ("101", "3", "ADI_NATRANK", "'101'"),
    ("", "3", "ADI_NATRANK", "''"),
    ("50", "11", "ADI_STATERNK", "'11'"),
    ("50", "0", "ADI_STATERNK", "'0'"),
    ("50", "5.5", "ADI_STATERNK", "'5.5'"),
])
def test_ranks_outside_their_bounds_name_file_row_and_field(tmp_path, national, decile, field, value):
    path = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    path.write_text(f"FIPS,ADI_NATRANK,ADI_STATERNK\n010010201001,73,6\n010010201002,{national},{decile}\n")
    bounds = "from 1 to 100" if field == "ADI_NATRANK" else "from 1 to 10"
    with pytest.raises(InputError, match=rf"{path.name}: row 3, field {field}: {value} is neither "
                                         rf"a whole number {bounds}"):
        read_adi_file(path, available_from=dt.date(2022, 9, 1))


@pytest.mark.parametrize(("content", "match"), [
    (b"", r"the file is empty; expected a Neighborhood Atlas ADI file"),
    (b"FIPS,ADI_NATRANK,ADI_STATERNK\n", r"a header row and no data rows"),
    (b"FIPS,ADI_NATRANK,ADI_STATERNK,NAME\n010010201001,73,6,Pe\xf1a\n",
     r"line 2: byte 0xf1 is not UTF-8.*iconv -f latin1 -t utf-8"),
    (b"FIPS,ADI_NATRANK\n010010201001,73\n", r"row 1 \(header\): missing column\(s\) \['ADI_STATERNK'\]"),
    (b"GEOID,ADI_NATRANK,ADI_STATERNK\n010010201001,73,6\n", r"row 1 \(header\): no FIPS or GISJOIN"),
    (b'FIPS,ADI_NATRANK,ADI_STATERNK\n"010010201001,73,6\n', r"malformed CSV"),
])
def test_unusable_files_are_refused_with_the_file_named(tmp_path, content, match):
    path = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as caught:
        read_adi_file(path, available_from=dt.date(2022, 9, 1))
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(("name", "vintage"), [
    ("US_2021_ADI_Census_Block_Group_v4_0_1.csv", 2021), ("MD_2020_ADI_Census Block Group_v3.2.csv", 2020)])
def test_vintage_from_both_file_name_styles(name, vintage):
    assert vintage_from_filename(name) == vintage


def test_unknown_name_asks_for_vintage():
    with pytest.raises(InputError, match="pass vintage="):
        vintage_from_filename("adi.csv")
