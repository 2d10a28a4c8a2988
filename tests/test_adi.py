import datetime as dt

import pandas as pd
import pytest

from ingestion.adi import read_adi_file, vintage_from_filename
from ingestion.datasets import adi_spec
from ingestion.errors import InputError

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


@pytest.mark.parametrize(("name", "vintage"), [
    ("US_2021_ADI_Census_Block_Group_v4_0_1.csv", 2021), ("MD_2020_ADI_Census Block Group_v3.2.csv", 2020)])
def test_vintage_from_both_file_name_styles(name, vintage):
    assert vintage_from_filename(name) == vintage


def test_unknown_name_asks_for_vintage():
    with pytest.raises(InputError, match="pass vintage="):
        vintage_from_filename("adi.csv")
