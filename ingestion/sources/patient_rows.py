"""Checking source rows of patient data, shared by the OMOP and Synthea readers.

A reader loads a source table as text (`read_text_csv`, or `text_frame` for database rows),
then checks it with a `RowCheck`: each check parses one field and rejects the rows where it
fails, once per row (the first problem found), with the reason codes of `REJECT_REASONS`.
The rows still accepted go on into the `ingestion.core.patient_data.PatientData` tables.

Examples
--------
>>> rows = pd.DataFrame({"person_id": ["1", ""], "day": ["2020-01-02", "2020-01-03"]})
>>> check = RowCheck(rows, table="events", source_file="visit.csv",
...                  records=["visit.csv:2", "visit.csv:3"], patient_field="person_id")
>>> check.require("person_id")
>>> days = check.timestamps("day")
>>> check.accepted(pd.DataFrame({"day": days}))["day"].dt.strftime("%Y-%m-%d").tolist()
['2020-01-02']
>>> check.rejects()[["record", "field", "reason"]].values.tolist()
[['visit.csv:3', 'person_id', 'missing_value']]
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.core.csv_input import decoded_text
from ingestion.core.errors import InputError
from ingestion.core.patient_data import PATIENT_REJECT_COLUMNS

__all__ = ["ICD10CM", "LOINC", "OMOP_CONCEPT", "REJECT_REASONS", "SNOMED", "RowCheck",
           "blank_to_none", "field_count_rejects", "read_text_csv", "text_frame"]

#: Code systems, as FHIR names them (OMOP concept ids have no FHIR URI: a URN of ours).
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
OMOP_CONCEPT = "urn:ohdsi:omop:concept_id"

#: Why a source row of patient data is rejected.
REJECT_REASONS = {
    "missing_value": "A required field (an id, a date) is empty",
    "unparseable_date": "A date or timestamp is not ISO 8601 (or a birth year/month/day is not one)",
    "unparseable_number": "A number (coordinate, concept id) is not a number",
    "impossible_coordinate": "|latitude| > 90 or |longitude| > 180, or not finite",
    "incomplete_coordinates": "Only one of latitude and longitude is given",
    "inverted_interval": "An end date is before its start date",
    "unknown_location": "A LOCATION_HISTORY row names a location_id that LOCATION lacks",
    "bad_location": "The LOCATION row a LOCATION_HISTORY row names was rejected",
    "duplicate_id": "The same id as an earlier row of the table",
    "wrong_field_count": "A CSV line has more or fewer fields than the header",
}

_TS_DTYPE = "datetime64[us, UTC]"


def read_text_csv(path: Path, *, what: str, quoting: int = csv.QUOTE_MINIMAL
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A CSV file as text cells, with its lines that do not have the header's field count.

    Parameters
    ----------
    path : Path
        The file (UTF-8, with or without a byte-order mark).
    what : str
        What the file should be, for messages ("a Synthea patients.csv").
    quoting : int
        A `csv` quoting rule: ``csv.QUOTE_NONE`` for files that never quote (Synthea writes a
        comma inside a value as a space and never quotes, so a ``"`` is an ordinary character).

    Returns
    -------
    rows : pandas.DataFrame
        Lower-case header names as columns, one row per good line, every value a string ("" when
        empty); its index is the 1-based line number (the header is line 1).
    bad : pandas.DataFrame
        ``line`` and ``fields`` (the count found) of the lines with the wrong field count.

    Raises
    ------
    InputError
        The file cannot be read, is empty, is not UTF-8 (the line is named:
        `ingestion.core.csv_input.decoded_text`) or has no header row.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "observations.csv"
    >>> _ = path.write_text('DATE,VALUE\\n2020-01-01,a "b" c\\n2020-01-02,x,y\\n')
    >>> rows, bad = read_text_csv(path, what="a Synthea file", quoting=csv.QUOTE_NONE)
    >>> rows.to_dict("index"), bad.to_dict("records")
    ({2: {'date': '2020-01-01', 'value': 'a "b" c'}}, [{'line': 3, 'fields': 3}])
    """
    text = decoded_text(path, what=what)
    lines = list(csv.reader(io.StringIO(text, newline=""), quoting=quoting))
    if not lines or not any(lines[0]):
        raise InputError(f"{path}: no header row; expected {what}")
    header = [name.strip().lower() for name in lines[0]]
    good, numbers, bad = [], [], []
    for number, fields in enumerate(lines[1:], start=2):
        if not fields:
            continue  # a blank line (the csv module gives []); nothing to read
        if len(fields) == len(header):
            good.append(fields)
            numbers.append(number)
        else:
            bad.append({"line": number, "fields": len(fields)})
    rows = pd.DataFrame(good, columns=header, index=pd.Index(numbers, dtype="int64"), dtype=object)
    return rows, pd.DataFrame(bad, columns=["line", "fields"])


def text_frame(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> pd.DataFrame:
    """Database rows as text cells like `read_text_csv` gives: "" for NULL, ISO dates.

    The index is the 1-based record number.

    Examples
    --------
    >>> text_frame(["Person_ID", "d"], [(1, dt.date(2020, 1, 2)), (2, None)]).to_dict("list")
    {'person_id': ['1', '2'], 'd': ['2020-01-02', '']}
    """
    def text(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, dt.date):  # datetime too
            return value.isoformat()
        if isinstance(value, float | Decimal) and value == int(value) and abs(value) < 2**53:
            return str(int(value))  # a concept id stored as a float or numeric
        return str(value)

    names = [name.lower() for name in columns]
    cells = [[text(value) for value in row] for row in rows]
    return pd.DataFrame(cells, columns=names, index=pd.RangeIndex(1, len(cells) + 1), dtype=object)


class RowCheck:
    """Checks of one source table's rows; every rejected row is recorded once, with its reason.

    Parameters
    ----------
    rows : pandas.DataFrame
        The source rows as text.
    table : str
        The `PatientData` table the rows feed (``addresses``, ``events``, ...).
    source_file : str
        The file or database table, for the rejects.
    records : sequence of str
        Each row's record name (``observations.csv:12``), aligned with ``rows``.
    patient_field : str
        The column holding the patient id.
    """

    def __init__(self, rows: pd.DataFrame, *, table: str, source_file: str,
                 records: Sequence[str], patient_field: str):
        self.rows = rows.reset_index(drop=True)
        self.table = table
        self.source_file = source_file
        self.records = pd.Series(list(records), dtype=object)
        self.patients = self.column(patient_field)
        self.ok = np.ones(len(self.rows), dtype=bool)
        self._problems: list[pd.DataFrame] = []

    def column(self, name: str) -> pd.Series:
        """The stripped text of a column; all "" when the table lacks it."""
        if name not in self.rows:
            return pd.Series([""] * len(self.rows), dtype=object)
        return self.rows[name].astype(str).str.strip()

    def has(self, name: str) -> bool:
        """Whether the table has the column."""
        return name in self.rows

    def reject(self, bad: np.ndarray | pd.Series, *, field: str, reason: str,
               values: pd.Series | None = None, message: str) -> None:
        """Reject the rows where ``bad`` holds (and that no earlier check rejected)."""
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        new = np.asarray(bad, dtype=bool) & self.ok
        if not new.any():
            return
        values = self.column(field) if values is None else values.reset_index(drop=True)
        self._problems.append(pd.DataFrame({
            "source_file": self.source_file, "record": self.records[new].to_numpy(),
            "patient_id": self.patients[new].to_numpy(), "table": self.table, "field": field,
            "value": values[new].astype(str).to_numpy(), "reason": reason, "message": message,
        }))
        self.ok &= ~new

    def require(self, *fields: str) -> None:
        """Reject rows where any of ``fields`` is empty."""
        for name in fields:
            self.reject(self.column(name).eq("").to_numpy(), field=name, reason="missing_value",
                        message=f"{name} is required and empty")

    def timestamps(self, *fields: str, required: bool = True) -> pd.Series:
        """The first non-empty of ``fields`` as UTC timestamps; unparseable ones rejected.

        A date alone is 00:00 UTC; a timestamp without an offset is read as UTC.
        """
        text = self.column(fields[0])
        for name in fields[1:]:
            text = text.where(text.ne(""), self.column(name))
        given = text.ne("")
        parsed = pd.to_datetime(text.where(given), format="ISO8601", utc=True, errors="coerce")
        field = "/".join(fields)
        self.reject((given & parsed.isna()).to_numpy(), field=field, reason="unparseable_date",
                    values=text, message=f"{field} is not an ISO 8601 date or timestamp")
        if required:
            self.reject((~given).to_numpy(), field=field, reason="missing_value", values=text,
                        message=f"{field} is required and empty")
        return parsed.astype(_TS_DTYPE)

    def numbers(self, field: str) -> pd.Series:
        """A column as floats (NaN when empty); rows where it is not a number rejected."""
        text = self.column(field)
        parsed = pd.to_numeric(text.where(text.ne("")), errors="coerce")
        self.reject((text.ne("") & parsed.isna()).to_numpy(), field=field,
                    reason="unparseable_number", message=f"{field} is not a number")
        return parsed.astype("float64")

    def coordinates(self, lat_field: str, lon_field: str) -> tuple[pd.Series, pd.Series]:
        """Latitude and longitude as floats; impossible or half-given pairs rejected."""
        lat, lon = self.numbers(lat_field), self.numbers(lon_field)
        self.reject((lat.isna() != lon.isna()).to_numpy(), field=f"{lat_field}/{lon_field}",
                    reason="incomplete_coordinates", values=lat.astype(str) + "/" + lon.astype(str),
                    message="only one of latitude and longitude is given")
        given = lat.notna() & lon.notna()
        impossible = given & ~(np.isfinite(lat) & np.isfinite(lon) & lat.abs().le(90)
                               & lon.abs().le(180))
        self.reject(impossible.to_numpy(), field=f"{lat_field}/{lon_field}",
                    reason="impossible_coordinate", values=lat.astype(str) + "/" + lon.astype(str),
                    message="latitude must be within ±90 and longitude within ±180")
        return lat, lon

    def unique(self, field: str) -> None:
        """Reject a row whose ``field`` repeats an earlier (accepted) row's."""
        ids = self.column(field)
        repeated = ids.where(self.ok).duplicated() & ids.ne("")
        self.reject(repeated.to_numpy(), field=field, reason="duplicate_id",
                    message=f"{field} repeats an earlier row's")

    def accepted(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``frame`` (aligned with the source rows) no check rejected."""
        return frame.reset_index(drop=True)[self.ok].reset_index(drop=True)

    def rejects(self) -> pd.DataFrame:
        """The rejected rows, in `PATIENT_REJECT_COLUMNS`."""
        if not self._problems:
            return pd.DataFrame(columns=list(PATIENT_REJECT_COLUMNS))
        return pd.concat(self._problems, ignore_index=True)[list(PATIENT_REJECT_COLUMNS)]


def field_count_rejects(bad: pd.DataFrame, *, source_file: str, table: str,
                        expected: int) -> pd.DataFrame:
    """Rejects for the lines `read_text_csv` found with the wrong field count.

    Examples
    --------
    >>> bad = pd.DataFrame({"line": [3], "fields": [10]})
    >>> field_count_rejects(bad, source_file="x.csv", table="answers", expected=9)["message"][0]
    'line 3 has 10 fields, the header 9'
    """
    return pd.DataFrame({
        "source_file": source_file, "record": [f"{source_file}:{n}" for n in bad["line"]],
        "patient_id": None, "table": table, "field": "", "value": bad["fields"].astype(str),
        "reason": "wrong_field_count",
        "message": [f"line {n} has {k} fields, the header {expected}"
                    for n, k in zip(bad["line"], bad["fields"], strict=True)],
    }, columns=list(PATIENT_REJECT_COLUMNS))


def blank_to_none(values: pd.Series) -> pd.Series:
    """Text with "" as None (null in the patient tables).

    Examples
    --------
    >>> blank_to_none(pd.Series(["a", ""])).tolist()
    ['a', None]
    """
    return values.astype(object).where(values.ne(""), None)
