"""The Food Access Research Atlas spec on the real 2019 Massachusetts rows (2010 tracts).

A CSV saved from ERS's XLSX: UTF-8 with a byte-order mark, CRLF line ends, the string NULL for
missing values, 0/1 low-income and low-access flags at several distances.
"""

from __future__ import annotations

import datetime as dt

import pytest
from needs import real_path

from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import publisher_source

FARA = publisher_source("food_access")


@pytest.fixture(scope="module")
def fara_2019():
    path = real_path("ma_food_access2019", "FoodAccessResearchAtlasData2019.csv")
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf" and b"\r\n" in path.read_bytes()[:4000]
    raw = read_release_file(path, FARA.release("2019"))
    return conform_release(raw, FARA, FARA.release("2019"), available_from=dt.date(2021, 6, 1))


def test_every_tract_published_on_2010_boundaries(fara_2019):
    frame, report = fara_2019
    assert (report.rows_read, report.published, report.set_aside) == (1467, 1467, {})
    assert frame["tract_geoid"].str.fullmatch(r"25\d{9}").all()
    assert (frame["boundary_year"] == 2010).all() and (frame["vintage"] == 2019).all()


def test_hand_checked_tract(fara_2019):
    """Barnstable tract 101 (first data line): LILA at 1/2 and 10 miles only."""
    frame, _ = fara_2019
    row = frame.set_index("tract_geoid").loc["25001010100"]
    assert row[["lila_1_10", "lila_half_10", "lila_1_20", "lila_vehicle", "urban_tract",
                "low_income_tract"]].tolist() == [0, 1, 0, 0, 1, 1]
    assert row[["low_access_share_1mi", "low_access_share_half_mi"]].tolist() == [7.7, 33.63]


def test_null_is_a_typed_missing_value(fara_2019):
    frame, report = fara_2019
    assert report.missing["low_access_share_1mi"] == {"publisher_value_missing": 510}
    assert frame["lila_1_10_missing"].isna().all()  # the flags are never NULL


def test_unknown_release_day_must_be_given():
    from ingestion.core.errors import InputError
    from ingestion.jobs.ingest import availability

    with pytest.raises(InputError, match="pass available_from"):
        availability(FARA.release("2019"), None)
    assert availability(FARA.release("2019"), dt.date(2021, 6, 1)) == dt.date(2021, 6, 1)
