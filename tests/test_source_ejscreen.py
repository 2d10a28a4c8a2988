"""EPA EJScreen block groups: the national file's layout, three versions, a bad cell."""

from __future__ import annotations

import datetime as dt
import zipfile

import pytest

from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.jobs.ingest import availability, ingest_source
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import publisher_source

HEADER = ("OBJECTID,ID,STATE_NAME,ST_ABBREV,ACSTOTPOP,DEMOGIDX_2,PM25,P_PM25,P_OZONE,P_DSLPM,"
          "P_PTRAF,P_LDPNT,P_PNPL,P_PWDIS,P_D2_PM25")
# ID read as a number loses Alabama's leading zero (10010201001): padded to 12.
ROWS = ["1,10010201001,Alabama,AL,1829,0.33,8.1,45,40,22,51,63,17,,48",
        "2,250250101011,Massachusetts,MA,1204,0.62,7.9,39,18,88,91,95,70,81,80"]
MEMBER = {"2022": "EJSCREEN_2022_Full_with_AS_CNMI_GU_VI.csv",
          "2023": "EJSCREEN_2023_BG_with_AS_CNMI_GU_VI.csv",
          "2024": "EJSCREEN_2024_BG_with_AS_CNMI_GU_VI.csv"}


def _write(tmp_path, release="2022", rows=ROWS):
    path = tmp_path / f"EJSCREEN_{release}.csv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER[release], "\n".join([HEADER, *rows]) + "\n")
    return path


def test_the_national_file_conforms(tmp_path):
    spec = publisher_source("ejscreen")
    release = spec.release("2022")
    frame, report = conform_release(read_release_file(_write(tmp_path), release), spec, release,
                                    available_from=dt.date(2022, 10, 11))
    got = frame.set_index("block_group_geoid")
    assert got.index.tolist() == ["010010201001", "250250101011"]
    assert got.loc["250250101011", "ejscreen_lead_paint_pctile"] == 95
    assert got.loc["010010201001", "ejscreen_demographic_index"] == 0.33
    assert got.loc["010010201001", "ejscreen_wastewater_pctile_missing"] == "publisher_value_missing"
    assert report.missing == {"ejscreen_wastewater_pctile": {"publisher_value_missing": 1}}
    assert (frame["vintage"] == 2022).all() and (frame["boundary_year"] == 2020).all()


@pytest.mark.parametrize(("release", "day"), [
    ("2022", dt.date(2022, 10, 11)), ("2023", None), ("2024", None)])
def test_release_days_are_the_documented_ones_or_required(release, day):
    spec_release = publisher_source("ejscreen").release(release)
    assert spec_release.available_from == day
    if day is None:
        with pytest.raises(InputError, match="no documented availability day"):
            availability(spec_release, None)


def test_ingest_publishes_a_version(tmp_path):
    done = ingest_source("ejscreen", 2024, _write(tmp_path, "2024"),
                         workspace=Workspace(tmp_path / "ws"), available_from=dt.date(2024, 8, 20))
    assert done.published.dataset == "ejscreen_block_group" and done.published.n_rows == 2


@pytest.mark.parametrize(("row", "column", "expected"), [
    ("1,1001020100A,Alabama,AL,1829,0.33,8.1,45,40,22,51,63,17,,48", "ID", "a code of at most 12 digits"),
    ("1,10010201001,Alabama,AL,1829,0.33,8.1,145,40,22,51,63,17,,48", "P_PM25", "within the measure's range"),
    ("1,10010201001,Alabama,AL,1829,None,8.1,45,40,22,51,63,17,,48", "DEMOGIDX_2",
     "a number or a missing code"),
])
def test_a_bad_cell_names_file_line_and_column(tmp_path, row, column, expected):
    spec = publisher_source("ejscreen")
    release = spec.release("2022")
    raw = read_release_file(_write(tmp_path, rows=[row, ROWS[1]]), release)
    where = rf"Full_with_AS_CNMI_GU_VI.csv: line 2, field {column}: .*{expected}"
    with pytest.raises(InputError, match=where):
        conform_release(raw, spec, release, available_from=dt.date(2022, 10, 11))
