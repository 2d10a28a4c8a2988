"""The CDC/ATSDR Environmental Justice Index spec on CDC's real Massachusetts download (2022).

The zip is read as CDC ships it: the data member among the dictionary files, unpadded
COUNTYFP, empty cells for values not computed, and ~40,000 lines of bare commas after the data.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from needs import real_path

from feature_repo.definitions.feature_views import publisher_view
from feature_repo.definitions.metadata import view_problems
from ingestion.core.workspace import Workspace
from ingestion.jobs.ingest import ingest_source
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import publisher_source

EJI = publisher_source("eji")


@pytest.fixture(scope="module")
def eji_2022():
    path = real_path("ma_eji2022", "EJI_2022_Massachusetts_CSV.zip")
    raw = read_release_file(path, EJI.release("2022"))
    return raw, *conform_release(raw, EJI, EJI.release("2022"), available_from=dt.date(2023, 8, 24))


def test_rows_read_blank_lines_skipped_and_published(eji_2022):
    raw, frame, report = eji_2022
    assert raw.name.endswith("EJI_2022_Massachusetts_CSV.zip!EJI_2022_Massachusetts.csv")
    assert (report.rows_read, report.blank_rows, report.published) == (1474, 40247, 1474)
    assert report.set_aside == {}
    assert frame["tract_geoid"].str.fullmatch(r"25\d{9}").all()
    assert frame["tract_geoid"].is_unique


def test_hand_checked_tract(eji_2022):
    """Worcester tract 7614 (first data line): COUNTYFP written 27, padded to 025027."""
    _, frame, _ = eji_2022
    row = frame.set_index("tract_geoid").loc["25027761400"]
    assert row[["eji_rank", "eji_environmental_burden_rank", "eji_minority_rank",
                "eji_pm25_days", "eji_population"]].tolist() == [0.259, 0.7427, 0.3504, 6.91, 6569.0]
    assert row["eji_population_moe"] == 28.0  # M_TOTPOP is already a 90% MOE
    assert row["boundary_year"] == 2010 and row["vintage"] == 2022
    assert pd.isna(row["eji_climate_burden_rank"])
    assert row["eji_climate_burden_rank_missing"] == "not_available_in_vintage"


def test_empty_cells_are_typed_missing(eji_2022):
    _, frame, report = eji_2022
    assert report.missing["eji_rank"] == {"publisher_value_missing": 15}
    empty = frame[frame["eji_rank"].isna()]
    assert (empty["eji_rank_missing"] == "publisher_value_missing").all()
    assert frame.loc[frame["eji_rank"].notna(), "eji_rank_missing"].isna().all()


def test_the_2022_release_counts_from_the_corrected_file():
    """CDC replaced the 2022 values on 2023-08-24; a user cannot date them earlier."""
    from ingestion.core.errors import InputError
    from ingestion.jobs.ingest import availability

    release = EJI.release("2022")
    assert availability(release, None) == dt.date(2023, 8, 24)
    with pytest.raises(InputError, match="before release 2022 became public on 2023-08-24"):
        availability(release, dt.date(2022, 8, 10))
    with pytest.raises(InputError, match="no documented availability day"):
        availability(EJI.release("2024"), None)


def test_published_through_the_gate_with_complete_tags(tmp_path):
    ws = Workspace(tmp_path / "ws")
    done = ingest_source("eji", 2022, real_path("ma_eji2022", "EJI_2022_Massachusetts_CSV.zip"),
                         workspace=ws)
    assert (done.published.dataset, done.published.n_rows) == ("eji_tract", 1474)
    view = publisher_view(EJI, "tract", ws)
    assert view_problems(view) == []
    tags = {f.name: f.tags for f in view.features}
    assert tags["eji_rank"]["proxy_for"] == "race,ethnicity,language"
    assert tags["eji_minority_rank"]["fairness_role"] == "stratifier_only"
    assert tags["eji_rank"]["boundary_vintage"] == "2010"
    assert tags["eji_rank"]["release_date"] == "2023-08-24"
    assert tags["eji_population"]["moe_feature"] == "eji_population_moe"
    assert tags["eji_rank"]["moe_feature"] == "none"
