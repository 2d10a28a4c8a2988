"""The County Health Rankings spec on the real 2010 analytic data (Massachusetts rows).

Two header rows (labels, then variable names), the state row 25000 among the counties, 95%
confidence bounds in vNNN_cilow/vNNN_cihigh, empty cells where CHR gives no value.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from needs import real_path

from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import publisher_source

CHR = publisher_source("chr")


@pytest.fixture(scope="module")
def chr_2010():
    raw = read_release_file(real_path("ma_chr2010", "analytic_data2010__MA_subset.csv"),
                            CHR.release("2010"))
    return conform_release(raw, CHR, CHR.release("2010"), available_from=dt.date(2010, 2, 17))


def test_state_row_set_aside_and_counties_published(chr_2010):
    frame, report = chr_2010
    assert (report.rows_read, report.published) == (15, 14)
    assert list(report.set_aside.values()) == [1]
    assert frame["county_geoid"].tolist()[:3] == ["25001", "25003", "25005"]
    assert "25000" not in frame["county_geoid"].tolist()


def test_symmetric_interval_becomes_a_90_percent_moe(chr_2010):
    """Barnstable (25001) premature death 6004.1 (5617.9, 6390.3): half-width 386.2."""
    frame, _ = chr_2010
    row = frame.set_index("county_geoid").loc["25001"]
    assert row["chr_premature_death"] == 6004.1
    assert row["chr_premature_death_moe"] == pytest.approx(386.2 * 1.645 / 1.96)
    assert row[["chr_premature_death_ci_low", "chr_premature_death_ci_high"]].tolist() == [5617.9, 6390.3]


def test_asymmetric_interval_keeps_bounds_without_moe(chr_2010):
    """Barnstable poor or fair health 0.0976 (0.0827, 0.1147): 0.0149 below, 0.0171 above."""
    frame, _ = chr_2010
    row = frame.set_index("county_geoid").loc["25001"]
    assert pd.isna(row["chr_poor_fair_health_moe"])
    assert row[["chr_poor_fair_health_ci_low", "chr_poor_fair_health_ci_high"]].tolist() == [0.0827, 0.1147]
    assert row["chr_poor_fair_health_missing"] is None


def test_empty_values_are_typed_missing(chr_2010):
    frame, report = chr_2010
    assert report.missing == {"chr_violent_crime": {"publisher_value_missing": 2}}
    assert frame["chr_violent_crime"].isna().sum() == 2


def test_published_with_a_datasheet_of_its_uncertainty(tmp_path):
    from equity.datasheets import datasheets, to_markdown
    from ingestion.core.workspace import Workspace
    from ingestion.jobs.ingest import ingest_source

    ws = Workspace(tmp_path / "ws")
    done = ingest_source("chr", 2010, real_path("ma_chr2010", "analytic_data2010__MA_subset.csv"),
                         workspace=ws)
    assert (done.published.dataset, done.published.n_rows) == ("chr_county", 14)
    sheet = to_markdown(datasheets(ws, ["chr_county"])[0])
    assert "| 2010 | 2010-02-17 | 2010 | 14 | 0 |" in sheet
    assert "39 fields (9 measures)" in sheet
    # Premature death: symmetric except in two small counties (rates of few deaths);
    # poor or fair health: asymmetric everywhere (intervals of a proportion).
    assert "| chr_premature_death | chr_premature_death_moe | 12 (85.7%) | publisher 95%" in sheet
    assert "| chr_poor_fair_health | chr_poor_fair_health_moe | 0 (0.0%) |" in sheet
    assert "chr_premature_death_ci_low | chr_premature_death_moe" not in sheet
