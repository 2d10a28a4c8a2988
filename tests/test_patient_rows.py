"""Tests of ingestion.sources.patient_rows: text cells from files and databases, row checks."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from ingestion.core.errors import InputError
from ingestion.sources.patient_rows import RowCheck, read_text_csv, text_frame


@pytest.mark.parametrize("value, text", [
    (None, ""), (8507, "8507"), (8507.0, "8507"), (Decimal("42.3700"), "42.3700"),
    (42.37, "42.37"), (dt.date(2020, 1, 2), "2020-01-02"),
    (dt.datetime(2020, 1, 2, 9, 30), "2020-01-02T09:30:00"), ("Z59.0", "Z59.0"),
])
def test_database_values_as_text(value, text):
    assert text_frame(["x"], [(value,)])["x"].tolist() == [text]


def test_each_row_is_rejected_once_at_its_first_problem():
    rows = pd.DataFrame({"id": ["", "2", "3"], "day": ["2020-02-30", "bad", "2020-01-01"]})
    check = RowCheck(rows, table="events", source_file="f.csv",
                     records=["f.csv:2", "f.csv:3", "f.csv:4"], patient_field="id")
    check.require("id")
    check.timestamps("day")
    assert check.rejects()[["record", "field", "reason"]].values.tolist() == [
        ["f.csv:2", "id", "missing_value"], ["f.csv:3", "day", "unparseable_date"]]
    assert check.ok.tolist() == [False, False, True]


def test_an_unknown_reason_is_a_programming_error():
    check = RowCheck(pd.DataFrame({"id": ["1"]}), table="events", source_file="f",
                     records=["f:2"], patient_field="id")
    with pytest.raises(ValueError, match="unknown reject reason 'oops'"):
        check.reject([True], field="id", reason="oops", message="")


@pytest.mark.parametrize("content, match", [
    (b"", "the file is empty"),
    (b"\n,\n", "no header row"),
    (b"a,b\n1,\xff\n", "line 2: byte 0xff is not UTF-8"),
])
def test_unreadable_csv(tmp_path, content, match):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        read_text_csv(path, what="a test file", quoting=csv.QUOTE_NONE)
