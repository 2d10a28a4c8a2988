"""Patient data from a Synthea 3.0 CSV export (patients, encounters, observations, conditions).

`read_synthea` returns a `PatientData`:

================  ==========================================================================
Synthea file      becomes
================  ==========================================================================
patients.csv      ``demographics`` (BIRTHDATE, GENDER, RACE and ETHNICITY as
                  race_ethnicity: ``hispanic``, else `RACE_GROUPS`; the payer of the
                  patient's latest encounter) and ONE ``addresses`` row per patient: Synthea
                  exports the current address only (ADDRESS, CITY, STATE, ZIP, LAT, LON),
                  with no dates, so the period is taken to start at BIRTHDATE and to be open
                  (a patient who moved is linked to the last address for their whole life).
encounters.csv    ``events``: START, Id, ENCOUNTERCLASS.
observations.csv  ``answers``: the rows of CATEGORY ``survey`` (LOINC CODE, DATE, VALUE as
                  the answer text; Synthea writes no answer codes); other categories are
                  counted in ``ignored``.
conditions.csv    ``conditions``: SNOMED CT CODE (ICD-10-CM when a SYSTEM column says so),
                  START as onset, STOP as abatement.
================  ==========================================================================

Names, identity numbers (FIRST, LAST, SSN, DRIVERS, PASSPORT, MAIDEN, PREFIX, SUFFIX) and the
descriptions are dropped as soon as a file is split into fields and are listed in ``ignored``.
Synthea never quotes a field and writes a comma inside a value as a space, so the files are
split on every comma with quotes taken literally; a line with the wrong field count is
rejected (``wrong_field_count``), never re-aligned.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "patients.csv").write_text(
...     "Id,BIRTHDATE,FIRST,SSN,RACE,ETHNICITY,GENDER,ZIP,LAT,LON\\n"
...     "p1,1990-05-01,Ann,999-1,black,nonhispanic,F,02139,42.37,-71.1\\n")
>>> data = read_synthea(folder)
>>> data.demographics[["patient_id", "sex", "race_ethnicity"]].values.tolist()
[['p1', 'F', 'black']]
>>> data.ignored["patients.csv FIRST"]
'a name or identity number: never read'
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

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
    SNOMED,
    RowCheck,
    blank_to_none,
    field_count_rejects,
    read_text_csv,
)

__all__ = ["NEVER_READ", "RACE_GROUPS", "read_synthea"]

#: patients.csv columns naming or identifying a person: dropped unread.
NEVER_READ = ("first", "last", "ssn", "drivers", "passport", "maiden", "prefix", "suffix")
#: Synthea RACE values as race_ethnicity groups (ETHNICITY ``hispanic`` wins).
RACE_GROUPS = {"white": "white", "black": "black", "asian": "asian",
               "native": "american_indian_alaska_native",
               "hawaiian": "native_hawaiian_pacific_islander", "other": "other"}
SEX_CODES = {"M": "M", "F": "F"}

_USED = {
    "patients.csv": ("id", "birthdate", "race", "ethnicity", "gender", "address", "city",
                     "state", "zip", "lat", "lon"),
    "encounters.csv": ("id", "start", "patient", "payer", "encounterclass"),
    "observations.csv": ("date", "patient", "category", "code", "value"),
    "conditions.csv": ("start", "stop", "patient", "code", "system"),
}
_FEEDS = {"patients.csv": "addresses", "encounters.csv": "events",
          "observations.csv": "answers", "conditions.csv": "conditions"}
_TS_DTYPE = "datetime64[us, UTC]"


def read_synthea(folder: str | os.PathLike[str]) -> PatientData:
    """Read the patient tables of a Synthea 3.0 CSV export folder.

    Parameters
    ----------
    folder : str or path
        The ``csv`` output folder; absent files give empty tables (noted in ``ignored``).

    Returns
    -------
    PatientData
        The five tables, the rejected rows, the rows read per table, and what was ignored.

    Raises
    ------
    InputError
        The folder does not exist, or a file is not UTF-8 or has no header row.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "observations.csv").write_text(
    ...     "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE\\n"
    ...     "2023-05-17T17:58:13Z,p1,e1,survey,93030-5,Has lack of transportation kept you "
    ...     "from medical appointments  meetings?,No,,text\\n"
    ...     "2023-05-17T17:58:13Z,p1,e1,vital-signs,8302-2,Body Height,127.9,cm,numeric\\n")
    >>> data = read_synthea(folder)
    >>> data.answers[["item_code", "answer_text", "record"]].values.tolist()
    [['93030-5', 'No', 'observations.csv:2']]
    >>> data.ignored["observations.csv CATEGORY 'vital-signs'"]
    '1 rows: not a screening answer'
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; expected a Synthea CSV export folder "
                         "(patients.csv, encounters.csv, observations.csv, conditions.csv)")
    ignored: dict[str, str] = {}
    files = {name: _read(folder / name, ignored) for name in _USED}
    rejects = [rows[1] for rows in files.values() if rows is not None]
    patients, encounters = files["patients.csv"], files["encounters.csv"]
    parts = {
        "addresses": _addresses(patients),
        "demographics": _demographics(patients, encounters),
        "events": _events(encounters),
        "answers": _answers(files["observations.csv"], ignored),
        "conditions": _conditions(files["conditions.csv"]),
    }
    rejects += [part[1] for part in parts.values()]
    rejects = [frame for frame in rejects if len(frame)]
    read = {name: part[2] for name, part in parts.items()}
    for name, rows in files.items():
        if rows is not None:  # the lines that could not be split count as read
            read[_FEEDS[name]] += len(rows[1])
    return PatientData(
        **{name: part[0] for name, part in parts.items()},
        rejects=(pd.concat(rejects, ignore_index=True) if rejects
                 else pd.DataFrame(columns=list(PATIENT_REJECT_COLUMNS))),
        read=read, ignored=ignored,
    )


_Part = tuple[pd.DataFrame, pd.DataFrame, int]


def _read(path: Path, ignored: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The file's used columns as text and its bad lines' rejects; None when absent."""
    if not path.exists():
        ignored[path.name] = f"file not found: no {_FEEDS[path.name]}"
        return None
    rows, bad = read_text_csv(path, what=f"a Synthea {path.name}", quoting=csv.QUOTE_NONE)
    for column in rows.columns:
        if column not in _USED[path.name]:
            ignored[f"{path.name} {column.upper()}"] = (
                "a name or identity number: never read" if column in NEVER_READ
                else "not needed by the patient tables")
    rejects = field_count_rejects(bad, source_file=path.name, table=_FEEDS[path.name],
                                  expected=len(rows.columns))
    return rows[[c for c in rows.columns if c in _USED[path.name]]], rejects


def _check(rows: pd.DataFrame, name: str, *, feeds: str, patient_field: str) -> RowCheck:
    return RowCheck(rows, table=feeds, source_file=name,
                    records=[f"{name}:{line}" for line in rows.index],
                    patient_field=patient_field)


def _empty(columns: tuple[str, ...]) -> _Part:
    return pd.DataFrame(columns=list(columns)), pd.DataFrame(columns=list(PATIENT_REJECT_COLUMNS)), 0


def _addresses(patients: tuple[pd.DataFrame, pd.DataFrame] | None) -> _Part:
    if patients is None:
        return _empty(ADDRESS_COLUMNS)
    check = _check(patients[0], "patients.csv", feeds="addresses", patient_field="id")
    check.require("id")
    check.unique("id")
    born = check.timestamps("birthdate")
    lat, lon = check.coordinates("lat", "lon")
    frame = pd.DataFrame({
        "patient_id": check.column("id"), "valid_from": born,
        "valid_to": pd.Series(pd.NaT, index=born.index, dtype=_TS_DTYPE),
        "street": blank_to_none(check.column("address")),
        **{c: blank_to_none(check.column(c)) for c in ("city", "state", "zip")},
        "latitude": lat, "longitude": lon,
    })
    return check.accepted(frame)[list(ADDRESS_COLUMNS)], check.rejects(), len(check.rows)


def _demographics(patients: tuple[pd.DataFrame, pd.DataFrame] | None,
                  encounters: tuple[pd.DataFrame, pd.DataFrame] | None) -> _Part:
    if patients is None:
        return _empty(DEMOGRAPHIC_COLUMNS)
    check = _check(patients[0], "patients.csv", feeds="demographics", patient_field="id")
    check.require("id")
    check.unique("id")
    born = check.timestamps("birthdate")
    race = check.column("race").str.lower().map(RACE_GROUPS)
    hispanic = check.column("ethnicity").str.lower().eq("hispanic")
    patient_id = check.column("id")
    frame = pd.DataFrame({
        "patient_id": patient_id,
        "birth_date": born.dt.tz_localize(None).astype("datetime64[us]"),
        "sex": check.column("gender").str.upper().map(SEX_CODES),
        "race_ethnicity": race.where(~hispanic, "hispanic"),
        "preferred_language": None,
        "payer": patient_id.map(_latest_payer(encounters)),
    })
    return check.accepted(frame)[list(DEMOGRAPHIC_COLUMNS)], check.rejects(), len(check.rows)


def _latest_payer(encounters: tuple[pd.DataFrame, pd.DataFrame] | None) -> pd.Series:
    """Each patient's PAYER at their latest encounter (an empty PAYER does not count)."""
    if encounters is None or "payer" not in encounters[0]:
        return pd.Series(dtype=object)
    rows = encounters[0]
    start = pd.to_datetime(rows["start"], format="ISO8601", utc=True, errors="coerce")
    known = rows.assign(start=start)[rows["payer"].ne("") & start.notna()]
    return known.sort_values("start").groupby("patient")["payer"].last()


def _events(encounters: tuple[pd.DataFrame, pd.DataFrame] | None) -> _Part:
    if encounters is None:
        return _empty(EVENT_COLUMNS)
    check = _check(encounters[0], "encounters.csv", feeds="events", patient_field="patient")
    check.require("patient", "id")
    start = check.timestamps("start")
    frame = pd.DataFrame({
        "patient_id": check.column("patient"), "event_timestamp": start,
        "event_id": check.column("id"),
        "event_type": blank_to_none(check.column("encounterclass")),
    })
    return check.accepted(frame)[list(EVENT_COLUMNS)], check.rejects(), len(check.rows)


def _answers(observations: tuple[pd.DataFrame, pd.DataFrame] | None,
             ignored: dict[str, str]) -> _Part:
    if observations is None:
        return _empty(ANSWER_COLUMNS)
    rows = observations[0]
    survey = rows["category"].str.strip().str.lower().eq("survey") if "category" in rows \
        else pd.Series(False, index=rows.index)
    for value, count in rows.loc[~survey, "category"].value_counts().items():
        ignored[f"observations.csv CATEGORY {value!r}"] = f"{count} rows: not a screening answer"
    check = _check(rows[survey], "observations.csv", feeds="answers", patient_field="patient")
    check.require("patient", "code")
    when = check.timestamps("date")
    frame = pd.DataFrame({
        "patient_id": check.column("patient"), "effective_time": when, "instrument": None,
        "item_system": LOINC, "item_code": check.column("code"), "answer_system": None,
        "answer_code": None, "answer_text": blank_to_none(check.column("value")),
        "record": check.records,
    })
    return check.accepted(frame)[list(ANSWER_COLUMNS)], check.rejects(), len(check.rows)


def _conditions(conditions: tuple[pd.DataFrame, pd.DataFrame] | None) -> _Part:
    if conditions is None:
        return _empty(CONDITION_COLUMNS)
    check = _check(conditions[0], "conditions.csv", feeds="conditions", patient_field="patient")
    check.require("patient", "code")
    onset = check.timestamps("start")
    abatement = check.timestamps("stop", required=False)
    check.reject((abatement < onset).to_numpy(), field="stop", reason="inverted_interval",
                 message="STOP is before START")
    icd = check.column("system").str.lower().str.contains("icd")
    frame = pd.DataFrame({
        "patient_id": check.column("patient"),
        "code_system": np.where(icd, ICD10CM, SNOMED), "code": check.column("code"),
        "onset": onset, "abatement": abatement,
        "recorded": pd.Series(pd.NaT, index=onset.index, dtype=_TS_DTYPE),
        "record": check.records,
    })
    return check.accepted(frame)[list(CONDITION_COLUMNS)], check.rejects(), len(check.rows)
