"""HRSA HPSA (primary care) as yearly snapshots: hand-computed designations in force on January 1."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.jobs.ingest import ingest_source
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import publisher_source

# HRSA's documented column names (a subset, in file order); the file ends every line with a
# trailing comma (an empty unnamed last column) and quotes fields holding commas.
HEADER = ["HPSA Name", "HPSA ID", "Designation Type", "HPSA Discipline Class", "HPSA Score",
          "PC MCTA Score", "Primary State Abbreviation", "HPSA Status", "HPSA Designation Date",
          "HPSA Designation Last Update Date", "Metropolitan Indicator",
          "HPSA Geography Identification Number", "HPSA Degree of Shortage", "Withdrawn Date",
          "HPSA Component Type Description", "Common State County FIPS Code"]
ROWS = [
    # designated 2019-06-15, withdrawn 2021-03-01: in force on 2020-01-01 and 2021-01-01
    ['"Suffolk, MA"', "1250001", "Geographic HPSA", "Primary Care", "14", "12", "MA", "Withdrawn",
     "06/15/2019", "06/15/2019", "Metropolitan", "25025", "", "03/01/2021", "Single County", "25025"],
    # proposed for withdrawal: still in force; its score was last updated 2022-07-01
    ["Dukes", "1250002", "High Needs Geographic HPSA", "Primary Care", "18", "15", "MA",
     "Proposed For Withdrawal", "02/01/2018", "07/01/2022", "Non-Metropolitan", "25007", "", "",
     "Single County", "25007"],
    # a second designation of Dukes from 2020-05-01, score 9 since then
    ["Dukes low income", "1250003", "HPSA Population", "Primary Care", "9", "8", "MA",
     "Designated", "05/01/2020", "", "Non-Metropolitan", "25007", "", "", "Single County", "25007"],
    # in force since 2016 with no score given
    ["Nantucket", "1250007", "Geographic HPSA", "Primary Care", "", "", "MA", "Designated",
     "03/10/2016", "", "Non-Metropolitan", "25019", "", "", "Single County", "25019"],
    # set aside: a tract component, a facility point, a state-wide row (XXXXX), another discipline
    ["Tract", "1250004", "Geographic HPSA", "Primary Care", "10", "9", "MA", "Designated",
     "01/05/2017", "", "Metropolitan", "25025010100", "", "", "Census Tract", "25025"],
    ["Clinic", "1250005", "Federally Qualified Health Center", "Primary Care", "16", "14", "MA",
     "Designated", "01/05/2017", "", "Unknown", "POINT", "", "", "Correctional Facility", "25025"],
    ["State", "1250006", "Geographic HPSA", "Primary Care", "5", "4", "MA", "Designated",
     "01/05/2017", "", "Unknown", "25", "", "", "State", "XXXXX"],
    ["Dental", "6250001", "Geographic HPSA", "Dental Health", "20", "", "MA", "Designated",
     "01/05/2017", "", "Metropolitan", "25001", "", "", "Single County", "25001"],
]


def _write(tmp_path, rows=ROWS):
    path = tmp_path / "BCD_HPSA_FCT_DET_PC.csv"
    lines = [",".join(f'"{h}"' for h in HEADER) + ","]
    lines += [",".join(row) + "," for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _conform(path, day=dt.date(2022, 9, 1)):
    spec = publisher_source("hpsa_primary_care")
    release = spec.release("2025")
    return conform_release(read_release_file(path, release), spec, release, available_from=day)


def test_snapshots_hold_what_was_in_force_on_january_1(tmp_path):
    frame, report = _conform(_write(tmp_path))
    assert report.rows_read == 8 and sum(report.set_aside.values()) == 4
    got = frame.set_index(["county_geoid", "vintage"])
    suffolk = got.loc["25025"]
    # designated 2019-06-15, withdrawn 2021-03-01 -> 2020 and 2021 designated, 2022 not
    assert suffolk["hpsa_pc_designated"].to_dict() == {
        2015: 0.0, 2016: 0.0, 2017: 0.0, 2018: 0.0, 2019: 0.0, 2020: 1.0, 2021: 1.0, 2022: 0.0}
    assert suffolk.loc[2020, "hpsa_pc_score"] == 14
    assert suffolk.loc[2022, "hpsa_pc_score_missing"] == "not_designated"
    dukes = got.loc["25007"]
    # 2019-2022: the 2018 designation is in force but its score dates from 2022-07-01 (unknown
    # before); from 2021 the 2020 designation (score 9) is in force and known.
    assert dukes["hpsa_pc_designated"].loc[2018:].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert dukes.loc[2020, "hpsa_pc_score_missing"] == "value_updated_after_snapshot"
    assert dukes.loc[2021, "hpsa_pc_score"] == 9 and dukes.loc[2022, "hpsa_pc_score"] == 9
    nantucket = got.loc["25019"]
    assert nantucket.loc[2017, "hpsa_pc_designated"] == 1
    assert nantucket.loc[2017, "hpsa_pc_score_missing"] == "publisher_value_missing"
    # release instant: January 1 of the vintage, never before the designation it shows
    assert (frame["release_ts"] == pd.to_datetime(frame["vintage"].astype(str) + "-01-01", utc=True)).all()


def test_ingest_publishes_the_snapshots(tmp_path):
    done = ingest_source("hpsa_primary_care", 2025, _write(tmp_path),
                         workspace=Workspace(tmp_path / "ws"), available_from=dt.date(2022, 9, 1))
    assert done.published.dataset == "hpsa_primary_care_county"
    assert done.published.n_rows == 3 * 8  # three counties, snapshots 2015-2022


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("HPSA Designation Date", "2019-06-15", "a date like 06/15/2019"),
    ("Withdrawn Date", "03/01/2018", "a day after the HPSA Designation Date"),
    ("HPSA Score", "high", "a number"),
])
def test_a_bad_cell_names_file_line_and_column(tmp_path, column, value, expected):
    rows = [list(r) for r in ROWS]
    rows[0][HEADER.index(column)] = value
    with pytest.raises(InputError, match=rf"BCD_HPSA_FCT_DET_PC.csv: line 2, field {column}: .*{expected}"):
        _conform(_write(tmp_path, rows))


@pytest.mark.parametrize(("source", "discipline", "prefix"), [
    ("hpsa_primary_care", "Primary Care", "hpsa_pc"),
    ("hpsa_mental_health", "Mental Health", "hpsa_mh"),
    ("hpsa_dental", "Dental Health", "hpsa_dh"),
])
def test_each_discipline_reads_only_its_own_rows(tmp_path, source, discipline, prefix):
    rows = [list(ROWS[0]), list(ROWS[-1])]
    rows[0][HEADER.index("HPSA Discipline Class")] = discipline
    rows[1][HEADER.index("HPSA Discipline Class")] = "Other"
    spec = publisher_source(source)
    release = spec.release("2025")
    frame, report = conform_release(read_release_file(_write(tmp_path, rows), release), spec,
                                    release, available_from=dt.date(2021, 2, 1))
    assert sum(report.set_aside.values()) == 1
    assert frame[f"{prefix}_designated"].tolist() == [0, 0, 0, 0, 0, 1, 1]  # 2015-2021
    assert frame[f"{prefix}_score"].max() == 14


def test_a_day_before_the_first_snapshot_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"before the first snapshot \(January 1, 2015\)"):
        _conform(_write(tmp_path), day=dt.date(2014, 6, 1))


@pytest.mark.parametrize(("change", "match"), [
    ({"flag": "hpsa_nothing"}, "snapshots.flag 'hpsa_nothing' is not a measure"),
    ({"vintage": 2025}, "at most one of vintage, vintage_column and snapshots"),
])
def test_a_snapshot_spec_that_cannot_work_is_refused(change, match):
    spec = publisher_source("hpsa_primary_care")
    data = spec.model_dump()
    release = data["releases"][0]
    if "flag" in change:
        release["snapshots"]["flag"] = change["flag"]
    else:
        release.update(change)
    with pytest.raises(ValueError, match=match):
        type(spec).model_validate(data)
