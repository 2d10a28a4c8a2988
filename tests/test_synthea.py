"""Tests of ingestion.sources.synthea: a Synthea 3.0 CSV export as the patient tables."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from needs import real_path

from ingestion.core.errors import InputError
from ingestion.geo.boundaries import load_boundaries
from ingestion.geo.linking import link_addresses, linkage_funnel
from ingestion.sources.patient_rows import LOINC, SNOMED
from ingestion.sources.synthea import NEVER_READ, read_synthea

# A named patient of the real export (Winchester, MA): PRAPARE answered on 2023-05-17.
WINCHESTER = "1d3d16ce-a3a4-5e9e-1b4d-58a391895443"
CAMBRIDGE = ("cambridge_ma_boundaries",)


@pytest.fixture(scope="module")
def real() -> Path:
    return real_path("synthea_ma")


@pytest.fixture(scope="module")
def data(real):
    return read_synthea(real)


def test_real_export_counts_per_table(data):
    # hand-counted: wc -l minus the header; 432 observations.csv rows of CATEGORY survey
    assert data.counts() == {
        "addresses": {"read": 27, "accepted": 27, "rejected": 0},
        "events": {"read": 604, "accepted": 604, "rejected": 0},
        "demographics": {"read": 27, "accepted": 27, "rejected": 0},
        "answers": {"read": 432, "accepted": 432, "rejected": 0},
        "conditions": {"read": 438, "accepted": 438, "rejected": 0},
    }
    assert data.ignored["observations.csv CATEGORY 'laboratory'"] == \
        "251 rows: not a screening answer"
    assert data.ignored["observations.csv CATEGORY 'vital-signs'"] == \
        "228 rows: not a screening answer"
    assert data.ignored["observations.csv CATEGORY ''"] == "75 rows: not a screening answer"


def test_named_patient_rows(data):
    address = data.addresses.set_index("patient_id").loc[WINCHESTER]
    # Synthea exports the current address only: taken as held from birth, open-ended
    assert address.valid_from == pd.Timestamp("1996-06-05", tz="UTC")
    assert pd.isna(address.valid_to)
    assert (address.street, address.city, address.zip) == \
        ("455 Labadie Underpass Suite 69", "Winchester", "01890")
    person = data.demographics.set_index("patient_id").loc[WINCHESTER]
    assert (person.birth_date, person.sex, person.race_ethnicity) == \
        (pd.Timestamp("1996-06-05"), "F", "white")
    assert person.payer == "b1c428d6-4f07-31e0-90f0-68ffa6ff8c76"
    own = {name: getattr(data, name)["patient_id"].eq(WINCHESTER).sum()
           for name in ("events", "answers", "conditions")}
    assert own == {"events": 8, "answers": 23, "conditions": 10}  # grep -c by hand
    answers = data.answers[data.answers["patient_id"].eq(WINCHESTER)].set_index("item_code")
    transport = answers.loc["93030-5"]
    assert (transport.effective_time, transport.answer_text, transport.record,
            transport.item_system) == (pd.Timestamp("2023-05-17T17:58:13Z"), "No",
                                       "observations.csv:59", LOINC)
    assert answers.loc["93031-3", "answer_text"] == "I choose not to answer this question"
    assert answers.loc["63586-2", "answer_text"] == "47384"


def test_hispanic_ethnicity_wins_and_empty_zip_is_null(data):
    by_id = data.demographics.set_index("patient_id")
    assert by_id.loc["42c09e08-1dbf-546f-fe06-f8e92891c41e", "race_ethnicity"] == "hispanic"
    # hand-counted from RACE and ETHNICITY of patients.csv
    assert by_id["race_ethnicity"].value_counts().to_dict() == \
        {"white": 24, "black": 1, "asian": 1, "hispanic": 1}
    addresses = data.addresses.set_index("patient_id")
    assert addresses.loc["9d188916-8390-282b-3ec2-73fce6e08649", "zip"] is None


def test_conditions_are_snomed_with_onset_and_abatement(data):
    first = data.conditions.iloc[0]
    assert (first.patient_id, first.code_system, first.code, first.onset, first.abatement) == (
        "3edac2e3-d223-6fae-d515-daf96ef6bc76", SNOMED, "195662009",
        pd.Timestamp("2023-01-27", tz="UTC"), pd.Timestamp("2023-02-09", tz="UTC"))


def test_no_names_or_identity_numbers_anywhere(real, data):
    with (real / "patients.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    secrets = {row[c] for row in rows for c in ("FIRST", "LAST", "SSN", "DRIVERS", "PASSPORT",
                                                "MAIDEN", "PREFIX", "SUFFIX") if row[c]}
    assert len(secrets) > 54  # every patient has a first name, a last name and an SSN
    for name in ("addresses", "events", "demographics", "answers", "conditions", "rejects"):
        cells = {str(v) for v in getattr(data, name).to_numpy().ravel()}
        assert not cells & secrets, name
    for column in NEVER_READ:
        assert data.ignored[f"patients.csv {column.upper()}"] == \
            "a name or identity number: never read"


def test_real_patients_link_outside_cambridge(data):
    folder = real_path(*CAMBRIDGE)
    boundaries = {year: load_boundaries(folder / f"DEMOGRAPHICS_BlockGroups{year}.geojson",
                                        level="block_group", boundary_year=year)
                  for year in (2010, 2020)}
    tracts = {year: load_boundaries(folder / f"DEMOGRAPHICS_Tracts{year}.geojson",
                                    level="tract", boundary_year=year) for year in (2010, 2020)}
    for polygons, level in ((boundaries, "block_group"), (tracts, "tract")):
        timeline = link_addresses(data.addresses, polygons, level=level)
        assert len(timeline) == 27 and timeline["patient_id"].nunique() == 27  # none dropped
        assert timeline["link_missing"].value_counts().to_dict() == {"outside_boundaries": 27}
        assert timeline["precision"].eq("none").all()
        geoids = [c for c in timeline.columns if "_geoid_" in c]
        assert timeline[geoids].isna().all().all()
    funnel = linkage_funnel(timeline).set_index("outcome")
    assert funnel.loc["outside_boundaries", ["address_periods", "patients"]].tolist() == [27, 27]
    assert funnel.loc["linked", "address_periods"] == 0


# -- reading rules ------------------------------------------------------------------------------

HEADER = "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE"


def write(folder: Path, name: str, lines: list[str]) -> Path:
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_quotes_are_literal_and_extra_commas_reject_the_line(tmp_path):
    write(tmp_path, "observations.csv", [
        HEADER,
        '2023-01-01T00:00:00Z,p1,e1,survey,93030-5,Said "no" twice,"No",,text',
        "2023-01-01T00:00:00Z,p1,e1,survey,93031-3,Food, clothing,Yes,,text",
    ])
    data = read_synthea(tmp_path)
    assert data.answers["answer_text"].tolist() == ['"No"']
    assert data.rejects[["record", "table", "reason", "value"]].values.tolist() == [
        ["observations.csv:3", "answers", "wrong_field_count", "10"]]
    assert data.counts()["answers"] == {"read": 2, "accepted": 1, "rejected": 1}


@pytest.mark.parametrize("name, lines, field, reason", [
    ("observations.csv", [HEADER, "2023-13-01,p1,e1,survey,93030-5,Q,No,,text"], "date",
     "unparseable_date"),
    ("observations.csv", [HEADER, "2023-01-01,,e1,survey,93030-5,Q,No,,text"], "patient",
     "missing_value"),
    ("encounters.csv", ["Id,START,PATIENT,ENCOUNTERCLASS", "e1,,p1,wellness"], "start",
     "missing_value"),
    ("conditions.csv", ["START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION",
                        "2020-02-01,2020-01-01,p1,e1,706893006,Victim of intimate partner abuse"],
     "stop", "inverted_interval"),
    ("patients.csv", ["Id,BIRTHDATE,LAT,LON", "p1,1990-01-01,42.3,"], "lat/lon",
     "incomplete_coordinates"),
    ("patients.csv", ["Id,BIRTHDATE,LAT,LON", "p1,1990-01-01,-71.1,542.3"], "lat/lon",
     "impossible_coordinate"),
])
def test_bad_rows_are_rejected(tmp_path, name, lines, field, reason):
    data = read_synthea(write(tmp_path, name, lines))
    assert (data.rejects["field"] == field).all() and (data.rejects["reason"] == reason).all()
    assert len(data.rejects) >= 1


def test_missing_files_give_empty_tables(tmp_path):
    data = read_synthea(write(tmp_path, "encounters.csv", ["Id,START,PATIENT,ENCOUNTERCLASS"]))
    assert data.counts()["events"] == {"read": 0, "accepted": 0, "rejected": 0}
    assert data.ignored["patients.csv"] == "file not found: no addresses"


def test_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder; expected a Synthea CSV export"):
        read_synthea(tmp_path / "nowhere")
