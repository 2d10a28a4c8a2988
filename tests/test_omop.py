"""Tests of ingestion.sources.omop: OMOP CDM tables from CSV folders, DuckDB and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from needs import real_path, require_service

from ingestion.core.errors import InputError
from ingestion.sources.omop import read_omop
from ingestion.sources.patient_rows import ICD10CM, LOINC, OMOP_CONCEPT

UTC = "UTC"
# A small valid CDM: person 10 moved on 2020-01-01 (end_date 2019-12-31 is the last day at the
# first address); one LOCATION_HISTORY row is a care site's, not a person's.
VALID = {
    "location": [
        "location_id,address_1,address_2,city,state,zip,county,latitude,longitude",
        "1,1 Main St,Apt 2,Cambridge,MA,02139,Middlesex,42.37,-71.1",
        "2,2 Elm St,,Boston,MA,02118,Suffolk,,",
    ],
    "location_history": [
        "location_id,relationship_type_concept_id,domain_id,entity_id,start_date,end_date",
        "1,32848,Person,10,2015-01-01,2019-12-31",
        "2,32848,1147314,10,2020-01-01,",
        "1,32848,Care site,5,2015-01-01,",
    ],
    "person": [
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,"
        "race_concept_id,ethnicity_concept_id,person_source_value",
        "10,8532,1980,,,,8516,38003564,MRN123",
        "11,8507,1975,3,9,1975-03-09 08:00:00,8527,38003563,MRN456",
        "12,0,1990,7,,,0,0,",
    ],
    "visit_occurrence": [
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime",
        "100,10,9202,2021-03-01,2021-03-01 09:30:00",
        "101,11,9203,2021-04-01,",
        "102,12,581476,2021-05-01,",
    ],
    "observation": [
        "observation_id,person_id,observation_concept_id,observation_date,observation_datetime,"
        "value_as_number,value_as_string,value_as_concept_id,observation_source_value,"
        "value_source_value",
        "1,10,40766229,2021-03-01,2021-03-01 09:40:00,,,4188539,88122-7,LA28397-0",
        "2,11,0,2021-04-01,,,Yes,0,93030-5,Yes",
        "3,12,3012888,2021-05-01,,3,,,,",
    ],
    "condition_occurrence": [
        "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,"
        "condition_end_date,condition_source_value",
        "1,10,4058131,2021-01-05,2021-06-30,Z590",
        "2,11,4058131,2021-02-01,,z59.41",
        "3,12,433316,2020-01-01,,",
    ],
}


def write_cdm(folder: Path, tables: dict[str, list[str]], *, names: dict[str, str] | None = None
              ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table, lines in tables.items():
        name = (names or {}).get(table, f"{table}.csv")
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def ts(*values: str | None) -> list:
    return [None if v is None else pd.Timestamp(v, tz=UTC) for v in values]


def plain(frame: pd.DataFrame, columns: list[str]) -> list[list]:
    """Rows as lists, with NaN/NaT/None all as None, for comparisons."""
    return [[None if pd.isna(v) else v for v in row] for row in frame[columns].values.tolist()]


# -- the real OHDSI GIS sample -------------------------------------------------------------------


def test_real_gis_location_rows_become_address_history():
    data = read_omop(real_path("omop_gis_location"))
    assert data.counts()["addresses"] == {"read": 40, "accepted": 40, "rejected": 0}
    assert data.rejects.empty
    first = data.addresses.iloc[0]
    assert [first.patient_id, first.street, first.city, first.state, first.zip] == \
        ["1", "26 Mill Ln", "Portsmouth Junction", "VA", "12538"]
    assert (first.latitude, first.longitude) == (36.8320322247266, -76.3583633228384)
    # end_date is the last day there (inclusive); valid_to is the day after (half-open periods)
    nine = data.addresses.set_index("patient_id").loc["9"]
    assert [nine.valid_from, nine.valid_to] == ts("2014-01-01", "2016-08-15")
    assert data.addresses["valid_to"].value_counts()[pd.Timestamp("2020-01-01", tz=UTC)] == 38
    assert data.addresses.set_index("patient_id").loc["2", "zip"] == "07221"  # zero kept
    # what was dropped and why: no rows; these columns
    assert data.ignored["location.county_ref_id"] == "not an OMOP CDM 5.4 column"
    for column in ("address_2", "county", "location_source_value", "country_concept_id",
                   "country_source_value"):
        assert data.ignored[f"location.{column}"] == "not needed by the patient tables"
    assert data.ignored["location_history.relationship_type_concept_id"] == \
        "not needed by the patient tables"
    assert data.ignored["person"] == "table not found: no demographics"
    assert not any(key.startswith("location_history rows of") for key in data.ignored)


# -- the CDM tables as patient tables ---------------------------------------------------------


@pytest.fixture
def valid(tmp_path):
    return read_omop(write_cdm(tmp_path / "cdm", VALID))


def test_addresses_from_person_rows_of_location_history(valid):
    assert plain(valid.addresses, list(valid.addresses.columns)) == [
        ["10", *ts("2015-01-01", "2020-01-01"), "1 Main St", "Cambridge", "MA", "02139",
         42.37, -71.1],
        ["10", *ts("2020-01-01", None), "2 Elm St", "Boston", "MA", "02118", None, None],
    ]
    assert valid.ignored["location_history rows of domain_id 'Care site'"] == \
        "1 rows: not a person (only the Person domain is a patient address)"
    assert valid.addresses["valid_to"].dtype == "datetime64[us, UTC]"


def test_demographics_from_person(valid):
    assert plain(valid.demographics, ["patient_id", "birth_date", "sex", "race_ethnicity"]) == [
        ["10", pd.Timestamp("1980-01-01"), "F", "black"],
        ["11", pd.Timestamp("1975-03-09"), "M", "hispanic"],
        ["12", pd.Timestamp("1990-07-01"), None, None],
    ]
    assert valid.ignored["person.person_source_value"] == "not needed by the patient tables"
    assert "MRN123" not in valid.demographics.to_string()


def test_events_from_visit_occurrence(valid):
    assert plain(valid.events, list(valid.events.columns)) == [
        ["10", *ts("2021-03-01 09:30"), "100", "outpatient"],
        ["11", *ts("2021-04-01"), "101", "emergency"],
        ["12", *ts("2021-05-01"), "102", "581476"],
    ]


def test_answers_from_observation(valid):
    columns = ["patient_id", "effective_time", "item_system", "item_code", "answer_system",
               "answer_code", "answer_text", "record"]
    assert plain(valid.answers, columns) == [
        ["10", *ts("2021-03-01 09:40"), LOINC, "88122-7", LOINC, "LA28397-0", None,
         "observation.csv:2"],
        ["11", *ts("2021-04-01"), LOINC, "93030-5", None, None, "Yes", "observation.csv:3"],
        ["12", *ts("2021-05-01"), OMOP_CONCEPT, "3012888", None, None, "3",
         "observation.csv:4"],
    ]


def test_conditions_from_condition_occurrence(valid):
    assert plain(valid.conditions, ["patient_id", "code_system", "code", "onset", "abatement"]) == [
        ["10", ICD10CM, "Z59.0", *ts("2021-01-05", "2021-06-30")],
        ["11", ICD10CM, "Z59.41", *ts("2021-02-01", None)],
        ["12", OMOP_CONCEPT, "433316", *ts("2020-01-01", None)],
    ]


def test_counts_and_missing_tables(tmp_path):
    data = read_omop(write_cdm(tmp_path, {"person": VALID["person"]}))
    assert data.counts()["demographics"] == {"read": 3, "accepted": 3, "rejected": 0}
    assert data.addresses.empty and list(data.addresses.columns)[0] == "patient_id"
    assert data.ignored["location_history"] == "table not found: no addresses"
    assert data.ignored["condition_occurrence"] == "table not found: no conditions"


# -- finding the tables ---------------------------------------------------------------------------


def test_upper_case_and_chunked_file_names(tmp_path):
    history = VALID["location_history"]
    folder = write_cdm(tmp_path, {"location": VALID["location"]}, names={"location": "LOCATION.csv"})
    (folder / "location_history__rows1-2.csv").write_text("\n".join(history[:3]) + "\n")
    (folder / "location_history__rows3-3.csv").write_text("\n".join([history[0], history[3]]))
    (folder / "notes.csv").write_text("a\n1\n")
    data = read_omop(folder)
    assert data.counts()["addresses"] == {"read": 2, "accepted": 2, "rejected": 0}
    assert data.ignored["notes.csv"] == "not an OMOP table these readers use"


def test_mapping_of_tables_to_files(tmp_path):
    folder = write_cdm(tmp_path, VALID, names={t: f"export_{t}.txt" for t in VALID})
    data = read_omop({t: folder / f"export_{t}.txt" for t in VALID})
    assert len(data.addresses) == 2 and len(data.answers) == 3


@pytest.mark.parametrize("source, match", [
    ("missing_folder", "not found; expected a folder of OMOP CSV files"),
    ("not_a_db.duckdb", "cannot open as a DuckDB database"),
])
def test_unreadable_sources(tmp_path, source, match):
    (tmp_path / "not_a_db.duckdb").write_text("hello")
    with pytest.raises(InputError, match=match):
        read_omop(tmp_path / source)


def test_schema_with_csv_files_is_refused(tmp_path):
    with pytest.raises(ValueError, match="applies to a database"):
        read_omop(write_cdm(tmp_path, VALID), schema="cdm")


def test_a_latin1_file_is_refused_with_its_line(tmp_path):
    folder = write_cdm(tmp_path, {"person": VALID["person"]})
    (folder / "person.csv").write_bytes(b"person_id,race_source_value\n1,ok\n2,caf\xe9\n")
    with pytest.raises(InputError, match=r"person.csv: line 3: byte 0xe9 is not UTF-8"):
        read_omop(folder)


# -- rejected rows --------------------------------------------------------------------------------

REJECTS = [
    ({"location_history": ["1,32848,Person,,2015-01-01,"]}, "addresses", "entity_id",
     "missing_value"),
    ({"location_history": ["1,32848,Person,12,2015-13-01,"]}, "addresses", "start_date",
     "unparseable_date"),
    ({"location_history": ["1,32848,Person,12,2016-01-01,2015-12-31"]}, "addresses", "end_date",
     "inverted_interval"),
    ({"location_history": ["9,32848,Person,12,2015-01-01,"]}, "addresses", "location_id",
     "unknown_location"),
    ({"location": ["3,3 Bad St,,X,MA,02118,Suffolk,95,-71"],
      "location_history": ["3,32848,Person,12,2015-01-01,"]}, "addresses", "location_id",
     "bad_location"),
    ({"location_history": ["1,32848,Person,12"]}, "addresses", "", "wrong_field_count"),
    ({"person": ["10,8532,1981,,,,0,0,"]}, "demographics", "person_id", "duplicate_id"),
    ({"person": ["13,8532,1980,13,,,0,0,"]}, "demographics", "year/month/day_of_birth",
     "unparseable_date"),
    ({"person": ["14,8532,nineteen,,,,0,0,"]}, "demographics", "year_of_birth",
     "unparseable_number"),
    ({"visit_occurrence": ["103,10,9202,,"]}, "events", "visit_start_datetime/visit_start_date",
     "missing_value"),
    ({"observation": ["4,10,0,2021-03-01,,,x,,,"]}, "answers", "observation_concept_id",
     "missing_value"),
    ({"condition_occurrence": ["4,10,1,2021-02-01,2021-01-01,"]}, "conditions",
     "condition_end_date", "inverted_interval"),
]


@pytest.mark.parametrize("extra, table, field, reason", REJECTS)
def test_each_bad_row_is_rejected_once_with_its_reason(tmp_path, extra, table, field, reason):
    tables = {name: lines + extra.get(name, []) for name, lines in VALID.items()}
    data = read_omop(write_cdm(tmp_path, tables))
    assert data.rejects[["table", "field", "reason"]].values.tolist() == [[table, field, reason]]
    counts = data.counts()[table]
    assert counts["read"] == counts["accepted"] + counts["rejected"]
    assert data.rejects["message"].str.len().gt(0).all()


def test_a_rejected_location_is_named_in_the_history_reject(tmp_path):
    tables = {**VALID, "location": VALID["location"] + ["3,3 Bad St,,X,MA,02118,S,95,-71"],
              "location_history": VALID["location_history"] + ["3,32848,Person,12,2015-01-01,"]}
    reject = read_omop(write_cdm(tmp_path, tables)).rejects.iloc[0]
    assert (reject.record, reject.patient_id) == ("location_history.csv:5", "12")
    assert "location.csv:4" in reject.message and "impossible_coordinate" in reject.message


# -- databases: the same tables through DuckDB and PostgreSQL -----------------------------------


def column_type(name: str) -> str:
    if name.endswith("datetime"):
        return "TIMESTAMP"
    if name.endswith("_date"):
        return "DATE"
    if name in ("latitude", "longitude", "value_as_number"):
        return "DOUBLE PRECISION"
    if (name.endswith("_id") and name != "domain_id") or name.endswith("_of_birth"):
        return "BIGINT"
    return "TEXT"


def load_tables(connection, placeholder: str, prefix: str = "") -> None:
    for table, lines in VALID.items():
        columns = lines[0].split(",")
        connection.execute(f"CREATE TABLE {prefix}{table.upper()} ("
                           + ", ".join(f"{c} {column_type(c)}" for c in columns) + ")")
        rows = [[v or None for v in line.split(",")] for line in lines[1:]]
        sql = (f"INSERT INTO {prefix}{table.upper()} VALUES ("
               + ", ".join([placeholder] * len(columns)) + ")")
        for row in rows:
            connection.execute(sql, row)


def assert_same_tables(found, expected) -> None:
    for name in ("addresses", "events", "demographics", "answers", "conditions"):
        got, want = getattr(found, name), getattr(expected, name)
        columns = [c for c in want.columns if c != "record"]
        assert plain(got, columns) == plain(want, columns), name
    assert found.counts() == expected.counts()
    assert {k: v for k, v in found.ignored.items()} == expected.ignored


def test_duckdb_file_reads_as_the_csv_folder(tmp_path, valid):
    path = tmp_path / "cdm.duckdb"
    with duckdb.connect(str(path)) as connection:
        load_tables(connection, "?")
    assert_same_tables(read_omop(path), valid)
    assert read_omop(path).answers["record"].tolist() == \
        ["OBSERVATION:1", "OBSERVATION:2", "OBSERVATION:3"]


def test_duckdb_schema_argument(tmp_path, valid):
    path = tmp_path / "cdm.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE SCHEMA omop")
        load_tables(connection, "?", prefix="omop.")
    assert_same_tables(read_omop(path, schema="omop"), valid)
    assert read_omop(path).demographics.empty  # main holds no tables


def test_postgresql_url_reads_as_the_csv_folder(valid):
    require_service("postgres")
    psycopg = pytest.importorskip("psycopg")
    url = "postgresql://127.0.0.1:5432/test"
    schema = f"omop_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        try:
            load_tables(connection, "%s", prefix=f"{schema}.")
            data = read_omop(url, schema=schema)
        finally:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
    assert_same_tables(data, valid)
    assert np.array_equal(data.addresses["latitude"].isna(), [False, True])
