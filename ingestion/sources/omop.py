"""Patient data from an OMOP CDM 5.4 database: a folder of CSVs, a DuckDB file or PostgreSQL.

`read_omop` reads six tables and returns a `PatientData`:

===================  =======================================================================
OMOP table           becomes
===================  =======================================================================
LOCATION_HISTORY     ``addresses``: rows of the Person domain (``domain_id`` ``Person``, or
 + LOCATION          the concept id 1147314 of the CDM ``person`` table, as the OHDSI GIS
                     sample writes it); ``entity_id`` is the person. ``end_date`` is the last
                     day at the address (OMOP end dates are inclusive), so ``valid_to`` is the
                     day after it (address periods are half-open). Street is ``address_1``;
                     ``address_2`` (a unit) is not read.
PERSON               ``demographics``: birth date from ``birth_datetime``, else
                     year/month/day of birth (a missing month or day is taken as the first);
                     sex from ``gender_concept_id`` (8507 ``M``, 8532 ``F``); race_ethnicity
                     ``hispanic`` when ``ethnicity_concept_id`` is 38003563, else the race
                     concept's group (`RACE_CONCEPTS`).
VISIT_OCCURRENCE     ``events``: ``visit_start_datetime`` (else the date), the visit id, the
                     visit type (`VISIT_CONCEPTS`, else the concept id).
OBSERVATION          ``answers``: the item is ``observation_source_value`` when it is a LOINC
                     code, else ``observation_concept_id`` (system `OMOP_CONCEPT`); the answer
                     code is ``value_source_value`` when it is a LOINC answer (LA) code, else
                     ``value_as_concept_id``; the text ``value_as_string`` (else
                     ``value_as_number``); the time ``observation_datetime`` (else the date).
CONDITION_OCCURRENCE ``conditions``: ``condition_source_value`` when it is an ICD-10-CM code
                     (dotted: ``Z590`` is read ``Z59.0``), else ``condition_concept_id``;
                     onset from the start, abatement from the end.
===================  =======================================================================

Every row is checked; the rows left out are in ``rejects`` with their reason
(`ingestion.sources.patient_rows.REJECT_REASONS`). A table that is absent gives an empty
patient table; what was found and not used (absent tables, LOCATION_HISTORY rows of other
domains, columns that are not OMOP CDM 5.4 columns or that the tables do not need) is listed in
``ignored``. Nothing is looked up in the OMOP vocabulary tables: the concept ids read are the
few listed here.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "PERSON.csv").write_text("person_id,year_of_birth,gender_concept_id\\n7,1980,8532\\n")
>>> data = read_omop(folder)
>>> data.demographics[["patient_id", "sex"]].values.tolist()
[['7', 'F']]
>>> data.ignored["observation"]
'table not found: no answers'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd

from ingestion.core.errors import InputError
from ingestion.core.patient_data import (
    ADDRESS_COLUMNS,
    ANSWER_COLUMNS,
    CONDITION_COLUMNS,
    DEMOGRAPHIC_COLUMNS,
    EVENT_COLUMNS,
    PATIENT_REJECT_COLUMNS,
    PatientData,
)
from ingestion.sources.patient_rows import (
    ICD10CM,
    LOINC,
    OMOP_CONCEPT,
    RowCheck,
    blank_to_none,
    field_count_rejects,
    read_text_csv,
    text_frame,
)

__all__ = ["CDM_COLUMNS", "PERSON_DOMAINS", "RACE_CONCEPTS", "VISIT_CONCEPTS", "read_omop"]

#: The OMOP CDM 5.4 columns of the tables read (LOCATION_HISTORY as CDM 5.3.1 and the OHDSI GIS
#: extension define it). Other columns are reported in ``ignored``.
CDM_COLUMNS = {
    "location": ("location_id", "address_1", "address_2", "city", "state", "zip", "county",
                 "location_source_value", "country_concept_id", "country_source_value",
                 "latitude", "longitude"),
    "location_history": ("location_history_id", "location_id", "relationship_type_concept_id",
                         "domain_id", "entity_id", "start_date", "end_date"),
    "person": ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth",
               "day_of_birth", "birth_datetime", "race_concept_id", "ethnicity_concept_id",
               "location_id", "provider_id", "care_site_id", "person_source_value",
               "gender_source_value", "gender_source_concept_id", "race_source_value",
               "race_source_concept_id", "ethnicity_source_value", "ethnicity_source_concept_id"),
    "visit_occurrence": ("visit_occurrence_id", "person_id", "visit_concept_id",
                         "visit_start_date", "visit_start_datetime", "visit_end_date",
                         "visit_end_datetime", "visit_type_concept_id", "provider_id",
                         "care_site_id", "visit_source_value", "visit_source_concept_id",
                         "admitted_from_concept_id", "admitted_from_source_value",
                         "discharged_to_concept_id", "discharged_to_source_value",
                         "preceding_visit_occurrence_id"),
    "observation": ("observation_id", "person_id", "observation_concept_id", "observation_date",
                    "observation_datetime", "observation_type_concept_id", "value_as_number",
                    "value_as_string", "value_as_concept_id", "qualifier_concept_id",
                    "unit_concept_id", "provider_id", "visit_occurrence_id", "visit_detail_id",
                    "observation_source_value", "observation_source_concept_id",
                    "unit_source_value", "qualifier_source_value", "value_source_value",
                    "observation_event_id", "obs_event_field_concept_id"),
    "condition_occurrence": ("condition_occurrence_id", "person_id", "condition_concept_id",
                             "condition_start_date", "condition_start_datetime",
                             "condition_end_date", "condition_end_datetime",
                             "condition_type_concept_id", "condition_status_concept_id",
                             "stop_reason", "provider_id", "visit_occurrence_id",
                             "visit_detail_id", "condition_source_value",
                             "condition_source_concept_id", "condition_status_source_value"),
}
#: ``domain_id`` values of LOCATION_HISTORY meaning "entity_id is a person": the CDM 5.4
#: domain name, and 1147314, the concept id of the CDM ``person`` table (vocabulary "CDM"),
#: which the OHDSI GIS sample writes in this column.
PERSON_DOMAINS = ("person", "1147314")
#: OMOP race concepts (vocabulary "Race") as race_ethnicity groups.
RACE_CONCEPTS = {"8527": "white", "8516": "black", "8515": "asian",
                 "8657": "american_indian_alaska_native",
                 "8557": "native_hawaiian_pacific_islander"}
HISPANIC_CONCEPT = "38003563"
SEX_CONCEPTS = {"8507": "M", "8532": "F"}
#: OMOP visit concepts (domain "Visit") as event types.
VISIT_CONCEPTS = {"9201": "inpatient", "9202": "outpatient", "9203": "emergency",
                  "262": "emergency_inpatient"}

# The columns each patient table is built from (the rest are reported as not needed).
_USED = {
    "location": ("location_id", "address_1", "city", "state", "zip", "latitude", "longitude"),
    "location_history": ("location_id", "domain_id", "entity_id", "start_date", "end_date"),
    "person": ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth",
               "day_of_birth", "birth_datetime", "race_concept_id", "ethnicity_concept_id"),
    "visit_occurrence": ("visit_occurrence_id", "person_id", "visit_concept_id",
                         "visit_start_date", "visit_start_datetime"),
    "observation": ("person_id", "observation_concept_id", "observation_date",
                    "observation_datetime", "value_as_number", "value_as_string",
                    "value_as_concept_id", "observation_source_value", "value_source_value"),
    "condition_occurrence": ("person_id", "condition_concept_id", "condition_start_date",
                             "condition_start_datetime", "condition_end_date",
                             "condition_end_datetime", "condition_source_value"),
}
_FEEDS = {"location_history": "addresses", "person": "demographics",
          "visit_occurrence": "events", "observation": "answers",
          "condition_occurrence": "conditions", "location": "addresses"}
_LOINC_CODE = re.compile(r"\d{1,7}-\d")
_LOINC_ANSWER = re.compile(r"LA\d{1,7}-\d")
_ICD10CM_CODE = re.compile(r"([A-TV-Z]\d[0-9A-Z])\.?([0-9A-Z]{0,4})")


class SourceTable(NamedTuple):
    """One OMOP table as text: its rows, where they came from, and lines that did not parse."""

    rows: pd.DataFrame
    source_file: str
    records: list[str]
    rejects: pd.DataFrame


def read_omop(source: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]], *,
              schema: str | None = None) -> PatientData:
    """Read the patient tables of an OMOP CDM 5.4 database.

    Parameters
    ----------
    source : str, path or mapping
        One of:

        * a folder of CSV files, one or more per table, found by name (case does not matter):
          ``location.csv``, ``LOCATION.csv``, or ``<table>__<anything>.csv`` as the OHDSI
          sample names its extracts (``location__rows1-40.csv``); several files of one table
          are read in name order and concatenated. Other files are listed in ``ignored``.
        * a mapping from table name to CSV file, for files named otherwise;
        * a DuckDB database file (``.duckdb``, ``.db``), opened read-only;
        * a PostgreSQL URL (``postgresql://user@host:5432/db``), read with psycopg.
    schema : str, optional
        The database schema holding the CDM tables (DuckDB: ``main``; PostgreSQL: the
        connection's current schema, usually ``public``). Not used with CSV files.

    Returns
    -------
    PatientData
        The five tables, the rejected rows, the rows read per table, and what was ignored.

    Raises
    ------
    InputError
        The source is not a folder, a file or a URL that can be read, a CSV is not UTF-8, or the
        database cannot be opened.
    ValueError
        ``schema`` is given for a folder of CSV files.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "location.csv").write_text("location_id,zip,latitude,longitude\\n"
    ...                                           "1,02139,42.37,-71.1\\n")
    >>> _ = (folder / "location_history.csv").write_text(
    ...     "location_id,domain_id,entity_id,start_date,end_date\\n"
    ...     "1,Person,7,2014-01-01,2019-12-31\\n1,Care site,3,2014-01-01,\\n")
    >>> data = read_omop(folder)
    >>> data.addresses[["patient_id", "valid_to", "zip"]].astype(str).values.tolist()
    [['7', '2020-01-01 00:00:00+00:00', '02139']]
    >>> data.ignored["location_history rows of domain_id 'Care site'"]
    '1 rows: not a person (only the Person domain is a patient address)'
    """
    tables, ignored = _load(source, schema=schema)
    for name, table in tables.items():
        for column in table.rows.columns:
            if column not in _USED[name]:
                ignored[f"{name}.{column}"] = ("not an OMOP CDM 5.4 column"
                                               if column not in CDM_COLUMNS[name]
                                               else "not needed by the patient tables")
    for name in CDM_COLUMNS:
        if name not in tables:
            ignored[name] = f"table not found: no {_FEEDS[name]}"
    parts = {
        "addresses": _addresses(tables.get("location_history"), tables.get("location"), ignored),
        "demographics": _demographics(tables.get("person")),
        "events": _events(tables.get("visit_occurrence")),
        "answers": _answers(tables.get("observation")),
        "conditions": _conditions(tables.get("condition_occurrence")),
    }
    rejects = [table.rejects for table in tables.values()] + [p[1] for p in parts.values()]
    rejects = [frame for frame in rejects if len(frame)]
    return PatientData(
        **{name: part[0] for name, part in parts.items()},
        rejects=(pd.concat(rejects, ignore_index=True) if rejects
                 else pd.DataFrame(columns=list(PATIENT_REJECT_COLUMNS))),
        read={name: part[2] for name, part in parts.items()},
        ignored=ignored,
    )


# -- loading ------------------------------------------------------------------------------------


def _load(source: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]], *,
          schema: str | None) -> tuple[dict[str, SourceTable], dict[str, str]]:
    """The CDM tables found in ``source`` (lower-case names) and what else was found."""
    if isinstance(source, Mapping):
        return _csv_tables({name.lower(): [Path(path)] for name, path in source.items()},
                           schema=schema), {}
    text = os.fspath(source)
    if re.match(r"postgres(ql)?(\+\w+)?://", text):
        return _postgres_tables(text, schema=schema), {}
    path = Path(text)
    if path.is_dir():
        files, ignored = _csv_files(path)
        return _csv_tables(files, schema=schema), ignored
    if path.is_file():
        return _duckdb_tables(path, schema=schema), {}
    raise InputError(f"{path}: not found; expected a folder of OMOP CSV files, a DuckDB file "
                     "or a postgresql:// URL")


def _csv_files(folder: Path) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """CSV files of the folder by table: ``<table>.csv`` or ``<table>__<part>.csv``."""
    files: dict[str, list[Path]] = {}
    ignored = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".csv":
            continue
        table = path.stem.lower().split("__")[0]
        if table in CDM_COLUMNS:
            files.setdefault(table, []).append(path)
        else:
            ignored[path.name] = "not an OMOP table these readers use"
    return files, ignored


def _csv_tables(files: Mapping[str, list[Path]], *, schema: str | None
                ) -> dict[str, SourceTable]:
    if schema is not None:
        raise ValueError(f"schema={schema!r} applies to a database, not to CSV files")
    tables = {}
    for name, paths in files.items():
        if name not in CDM_COLUMNS:
            raise ValueError(f"{name!r} is not an OMOP table read here; expected one of "
                             f"{sorted(CDM_COLUMNS)}")
        parts, records, rejects = [], [], []
        for path in paths:
            rows, bad = read_text_csv(path, what=f"an OMOP {name.upper()} CSV file")
            parts.append(rows)
            records += [f"{path.name}:{line}" for line in rows.index]
            rejects.append(field_count_rejects(bad, source_file=path.name, table=_FEEDS[name],
                                               expected=len(rows.columns)))
        rows = pd.concat(parts, ignore_index=True).fillna("")
        tables[name] = SourceTable(rows, ", ".join(p.name for p in paths), records,
                                   pd.concat(rejects, ignore_index=True))
    return tables


def _duckdb_tables(path: Path, *, schema: str | None) -> dict[str, SourceTable]:
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot open as a DuckDB database: {exc}") from exc
    with connection:
        return _database_tables(connection, schema=schema or "main", placeholder="?",
                                where=str(path))


def _postgres_tables(url: str, *, schema: str | None) -> dict[str, SourceTable]:
    import psycopg  # only a PostgreSQL source needs it

    shown = re.sub(r"//[^@/]*@", "//***@", url)  # no password in messages
    try:
        connection = psycopg.connect(url)
    except psycopg.Error as exc:
        raise InputError(f"{shown}: cannot connect to PostgreSQL: {exc}") from exc
    with connection:
        if schema is None:
            schema = connection.execute("SELECT current_schema()").fetchone()[0]
        return _database_tables(connection, schema=schema, placeholder="%s", where=shown)


def _database_tables(connection, *, schema: str, placeholder: str, where: str
                     ) -> dict[str, SourceTable]:
    """The CDM tables of ``schema`` through a DB-API style connection (DuckDB or psycopg)."""
    found = connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = "
        f"{placeholder}", [schema]).fetchall()
    names = {name.lower(): name for (name,) in found}
    tables = {}
    for table in CDM_COLUMNS:
        if table not in names:
            continue
        quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, names[table]))
        cursor = connection.execute(f"SELECT * FROM {quoted}")
        rows = text_frame([d[0] for d in cursor.description], cursor.fetchall())
        source = f"{where} {schema}.{names[table]}"
        records = [f"{names[table]}:{n}" for n in rows.index]
        tables[table] = SourceTable(rows.reset_index(drop=True), source, records,
                                    pd.DataFrame(columns=list(PATIENT_REJECT_COLUMNS)))
    return tables


# -- the patient tables ---------------------------------------------------------------------------

_Part = tuple[pd.DataFrame, pd.DataFrame, int]


def _empty(columns: tuple[str, ...]) -> _Part:
    return pd.DataFrame(columns=list(columns)), pd.DataFrame(columns=list(PATIENT_REJECT_COLUMNS)), 0


def _check(table: SourceTable, rows: pd.DataFrame, *, feeds: str, patient_field: str) -> RowCheck:
    records = [table.records[i] for i in rows.index]
    return RowCheck(rows, table=feeds, source_file=table.source_file, records=records,
                    patient_field=patient_field)


def _read(table: SourceTable, check: RowCheck) -> int:
    """Rows read: those checked, and the CSV lines that could not be split into fields."""
    return len(check.rows) + len(table.rejects)


def _concept(values: pd.Series) -> pd.Series:
    """Concept id text with 0 (OMOP's "no matching concept") as empty."""
    return values.where(values.ne("0"), "")


def _addresses(history: SourceTable | None, location: SourceTable | None,
               ignored: dict[str, str]) -> _Part:
    if history is None:
        return _empty(ADDRESS_COLUMNS)
    domain = history.rows["domain_id"].str.strip() if "domain_id" in history.rows \
        else pd.Series("", index=history.rows.index)
    person = domain.str.lower().isin(PERSON_DOMAINS)
    for value, count in domain[~person].value_counts().items():
        ignored[f"location_history rows of domain_id {value!r}"] = (
            f"{count} rows: not a person (only the Person domain is a patient address)")
    check = _check(history, history.rows[person.to_numpy()], feeds="addresses",
                   patient_field="entity_id")
    check.require("entity_id", "location_id")
    start = check.timestamps("start_date")
    end = check.timestamps("end_date", required=False)
    check.reject((end < start).to_numpy(), field="end_date", reason="inverted_interval",
                 message="end_date is before start_date")
    places, bad_places = _locations(location)
    location_id = check.column("location_id")
    for problem in bad_places.itertuples():
        check.reject(location_id.eq(problem.location_id).to_numpy(), field="location_id",
                     reason="bad_location", message=f"its LOCATION row {problem.record} was "
                     f"rejected: {problem.field} {problem.reason} ({problem.message})")
    check.reject(~location_id.isin(places.index).to_numpy(), field="location_id",
                 reason="unknown_location", message="no LOCATION row has this location_id")
    place = places.reindex(location_id)
    frame = pd.DataFrame({
        "patient_id": check.column("entity_id"), "valid_from": start,
        # the day after the inclusive end_date
        "valid_to": (end + pd.Timedelta(days=1)).astype(start.dtype),
        **{c: place[c].to_numpy() for c in ("street", "city", "state", "zip")},
        "latitude": place["latitude"].to_numpy(), "longitude": place["longitude"].to_numpy(),
    })
    unused = len(places) - int(places.index.isin(location_id[check.ok]).sum())
    if unused:
        ignored["location rows not in a person's history"] = f"{unused} rows"
    return check.accepted(frame)[list(ADDRESS_COLUMNS)], check.rejects(), _read(history, check)


def _locations(location: SourceTable | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accepted LOCATION rows by location_id, and the rejected ones' problems."""
    columns = ["street", "city", "state", "zip", "latitude", "longitude"]
    if location is None:
        return pd.DataFrame(columns=columns), pd.DataFrame(
            columns=["location_id", "record", "field", "reason", "message"])
    check = _check(location, location.rows, feeds="addresses", patient_field="location_id")
    check.require("location_id")
    check.unique("location_id")
    lat, lon = check.coordinates("latitude", "longitude")
    frame = pd.DataFrame({
        "location_id": check.column("location_id"), "street": blank_to_none(check.column("address_1")),
        **{c: blank_to_none(check.column(c)) for c in ("city", "state", "zip")},
        "latitude": lat, "longitude": lon,
    })
    problems = check.rejects().rename(columns={"patient_id": "location_id"})
    return check.accepted(frame).set_index("location_id")[columns], problems


def _demographics(person: SourceTable | None) -> _Part:
    if person is None:
        return _empty(DEMOGRAPHIC_COLUMNS)
    check = _check(person, person.rows, feeds="demographics", patient_field="person_id")
    check.require("person_id")
    check.unique("person_id")
    parts = {p: check.numbers(f"{p}_of_birth") for p in ("year", "month", "day")}
    given = parts["year"].notna()
    composed = pd.to_datetime(pd.DataFrame({
        "year": parts["year"], "month": parts["month"].fillna(1), "day": parts["day"].fillna(1),
    }).where(given), errors="coerce")
    check.reject((given & composed.isna()).to_numpy(), field="year/month/day_of_birth",
                 reason="unparseable_date", message="year, month and day of birth are not a date",
                 values=check.column("year_of_birth") + "-" + check.column("month_of_birth")
                 + "-" + check.column("day_of_birth"))
    born = check.timestamps("birth_datetime", required=False).dt.tz_localize(None).dt.normalize()
    race = _race(check)
    frame = pd.DataFrame({
        "patient_id": check.column("person_id"),
        "birth_date": born.fillna(composed).astype("datetime64[us]"),
        "sex": check.column("gender_concept_id").map(SEX_CONCEPTS),
        "race_ethnicity": race, "preferred_language": None, "payer": None,
    })
    return check.accepted(frame)[list(DEMOGRAPHIC_COLUMNS)], check.rejects(), _read(person, check)


def _race(check: RowCheck) -> pd.Series:
    """Hispanic, else the race group; ``other`` for a race concept not listed, None if none."""
    race = _concept(check.column("race_concept_id"))
    group = race.map(RACE_CONCEPTS).where(race.ne(""), None)
    group = group.where(group.notna() | race.eq(""), "other")
    return group.where(check.column("ethnicity_concept_id").ne(HISPANIC_CONCEPT), "hispanic")


def _events(visits: SourceTable | None) -> _Part:
    if visits is None:
        return _empty(EVENT_COLUMNS)
    check = _check(visits, visits.rows, feeds="events", patient_field="person_id")
    check.require("person_id")
    start = check.timestamps("visit_start_datetime", "visit_start_date")
    concept = _concept(check.column("visit_concept_id"))
    frame = pd.DataFrame({
        "patient_id": check.column("person_id"), "event_timestamp": start,
        "event_id": blank_to_none(check.column("visit_occurrence_id")),
        "event_type": blank_to_none(concept.map(VISIT_CONCEPTS).fillna(concept)),
    })
    return check.accepted(frame)[list(EVENT_COLUMNS)], check.rejects(), _read(visits, check)


def _coded(code: pd.Series, pattern: re.Pattern[str], system: str,
           concept: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(system, code): the source code when it matches ``pattern``, else the concept id."""
    is_code = code.str.fullmatch(pattern).fillna(False).astype(bool)
    systems = pd.Series(np.where(is_code, system, np.where(concept.ne(""), OMOP_CONCEPT, None)),
                        dtype=object)
    return systems, code.where(is_code, concept).where(systems.notna(), None)


def _answers(observations: SourceTable | None) -> _Part:
    if observations is None:
        return _empty(ANSWER_COLUMNS)
    check = _check(observations, observations.rows, feeds="answers", patient_field="person_id")
    check.require("person_id")
    when = check.timestamps("observation_datetime", "observation_date")
    item_system, item_code = _coded(check.column("observation_source_value"), _LOINC_CODE, LOINC,
                                    _concept(check.column("observation_concept_id")))
    check.reject(item_system.isna().to_numpy(), field="observation_concept_id",
                 reason="missing_value", message="neither observation_source_value (a LOINC "
                 "code) nor observation_concept_id names the item")
    value_source = check.column("value_source_value")
    answer_system, answer_code = _coded(value_source, _LOINC_ANSWER, LOINC,
                                        _concept(check.column("value_as_concept_id")))
    text = check.column("value_as_string")
    text = text.where(text.ne(""), value_source.where(answer_system.ne(LOINC), ""))
    text = text.where(text.ne(""), check.column("value_as_number"))
    frame = pd.DataFrame({
        "patient_id": check.column("person_id"), "effective_time": when, "instrument": None,
        "item_system": item_system, "item_code": item_code, "answer_system": answer_system,
        "answer_code": answer_code, "answer_text": blank_to_none(text),
        "record": check.records,
    })
    return check.accepted(frame)[list(ANSWER_COLUMNS)], check.rejects(), _read(observations, check)


def _conditions(conditions: SourceTable | None) -> _Part:
    if conditions is None:
        return _empty(CONDITION_COLUMNS)
    check = _check(conditions, conditions.rows, feeds="conditions", patient_field="person_id")
    check.require("person_id")
    onset = check.timestamps("condition_start_datetime", "condition_start_date")
    abatement = check.timestamps("condition_end_datetime", "condition_end_date", required=False)
    check.reject((abatement < onset).to_numpy(), field="condition_end_date",
                 reason="inverted_interval", message="the end is before the start")
    source = check.column("condition_source_value").str.upper()
    dotted = source.str.replace(_ICD10CM_CODE.pattern, r"\1.\2", regex=True).str.rstrip(".")
    system, code = _coded(source, _ICD10CM_CODE, ICD10CM,
                          _concept(check.column("condition_concept_id")))
    code = dotted.where(system.eq(ICD10CM), code)
    check.reject(system.isna().to_numpy(), field="condition_concept_id", reason="missing_value",
                 message="neither condition_source_value (an ICD-10-CM code) nor "
                 "condition_concept_id names the condition")
    frame = pd.DataFrame({
        "patient_id": check.column("person_id"), "code_system": system, "code": code,
        "onset": onset, "abatement": abatement,
        "recorded": pd.Series(pd.NaT, index=onset.index, dtype=onset.dtype), "record": check.records,
    })
    return check.accepted(frame)[list(CONDITION_COLUMNS)], check.rejects(), _read(conditions, check)

