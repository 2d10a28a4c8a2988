"""COI 3.0: one file, several data years; each year a vintage, the latest in force."""

from __future__ import annotations

import datetime as dt
import zipfile

import pandas as pd
import pytest

from feature_repo.serving.lookup_rules import ViewPlan
from ingestion.core.datasets import published_calendar
from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.jobs.ingest import ingest_source
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import publisher_source

HEADER = "geoid20,year,z_COI_nat,r_COI_nat,c5_COI_nat,r_ED_nat,r_HE_nat,r_SE_nat"
# geoid20 read as a number by the publisher's tools loses Alabama's leading zero: padded to 11.
ROWS = ["25025010100,2020,-0.41,35,Low,40,31,38",
        "25025010100,2021,-0.39,36,Low,41,30,39",
        "1001020100,2021,0.12,58,Moderate,60,55,52",
        "25025010200,2021,,,,,,"]
DAY = dt.date(2024, 3, 14)


def _write(tmp_path, rows=ROWS):
    path = tmp_path / "coi30_2020_tracts.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("1_index.csv", "\n".join([HEADER, *rows]) + "\n")
    return path


def _conform(path):
    spec = publisher_source("coi")
    release = spec.release("2021")
    return conform_release(read_release_file(path, release), spec, release, available_from=DAY)


def test_each_year_is_a_vintage_available_from_the_release_day(tmp_path):
    frame, report = _conform(_write(tmp_path))
    assert report.published == 4
    got = frame.set_index(["tract_geoid", "vintage"])
    assert got.loc[("25025010100", 2020), "coi_score"] == 35
    assert got.loc[("25025010100", 2021), "coi_z"] == -0.39
    assert got.loc[("01001020100", 2021), "coi_social_economic_score"] == 52
    assert got.loc[("25025010200", 2021), "coi_score_missing"] == "publisher_value_missing"
    assert (frame["release_ts"] == pd.Timestamp(DAY, tz="UTC")).all()
    assert (frame["boundary_year"] == 2020).all()


def test_the_latest_year_is_in_force_from_the_release_day(tmp_path):
    # Every year became public on the same day, so at any time after it the latest year is
    # the most recent information that existed: the lookup rule's tie goes to the latest vintage.
    ws = Workspace(tmp_path / "ws")
    done = ingest_source("coi", 2021, _write(tmp_path), workspace=ws, available_from=DAY)
    assert done.published.dataset == "coi_tract" and done.published.n_rows == 4
    plan = ViewPlan("coi_tract", "tract", ("coi_score",), published_calendar("coi_tract", ws))
    assert plan.in_force_at(pd.Timestamp("2024-03-13", tz="UTC")) is None
    assert plan.in_force_at(pd.Timestamp("2024-03-14", tz="UTC")) == (2021, 2020)


@pytest.mark.parametrize(("row", "column", "expected"), [
    ("25025010100,20x1,-0.41,35,Low,40,31,38", "year", "a year"),
    ("25025010100,2019,-0.41,135,Low,40,31,38", "r_COI_nat", "within the measure's range 1.0 to 100.0"),
])
def test_a_bad_cell_names_file_line_and_column(tmp_path, row, column, expected):
    with pytest.raises(InputError, match=rf"1_index.csv: line 2, field {column}: .*{expected}"):
        _conform(_write(tmp_path, [row, *ROWS[1:]]))


def test_a_year_repeated_for_a_tract_names_both_lines(tmp_path):
    with pytest.raises(InputError, match=r"lines \[3, 4\]: GEOID 25025010100 .* in vintage 2021"):
        _conform(_write(tmp_path, [ROWS[0], ROWS[1], ROWS[1]]))
