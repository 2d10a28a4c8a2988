"""Tests of ingestion.sources.publisher_file: a release file read and conformed as its spec says.

Each test writes a small file in a publisher-like layout and a spec for it; the values are
hand-checked. Every bad cell must fail with the file, line and column named.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pandas as pd
import pytest

from ingestion.core.errors import InputError
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.publisher import PublisherSource

DAY = dt.date(2023, 5, 1)
MEASURE = {"domain": "neighborhood_built_environment", "measure_type": "percent", "unit": "percent",
           "direction": "higher_is_worse", "known_biases": "test", "intended_use": "test",
           "prohibited_use": "test", "estimate": "model", "label": "test"}


def spec(release: dict | None = None, *measures: dict, codes: dict | None = None) -> PublisherSource:
    """A one-release tract source; ``release`` and ``measures`` override the defaults."""
    base = {"release": "2022", "available": {"date": "2023-05-01", "citation": "x" * 20},
            "geography_level": "tract", "boundary_vintage": 2020, "geoid": {"column": "GEOID"}}
    return PublisherSource.model_validate({
        "source": "kit", "title": "Kit", "publisher": "P", "license": "public domain",
        "homepage": "https://example.org", "measurement_level": "area_ecological",
        "missing_codes": codes if codes is not None else {"": "publisher_value_missing"},
        "releases": [base | (release or {})],
        "measures": [MEASURE | m for m in measures or [{"name": "share", "column": "SHARE"}]],
    })


def conform(path, source: PublisherSource):
    release = source.releases[0]
    return conform_release(read_release_file(path, release), source, release, available_from=DAY)


def write(tmp_path, text: str, name: str = "file.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_padding_parts_blank_lines_and_bom(tmp_path):
    """Unpadded county parts, a BOM, CRLF and filler lines of bare commas (CDC's EJI)."""
    text = "\ufeffSTATEFP,COUNTYFP,TRACTCE,SHARE\r\n1,1,20100,12.5\r\n1,3,10200,\r\n,,,\r\n,,,\r\n"
    source = spec({"geoid": {"parts": [{"column": "STATEFP", "width": 2},
                                       {"column": "COUNTYFP", "width": 3},
                                       {"column": "TRACTCE", "width": 6}]}})
    frame, report = conform(write(tmp_path, text), source)
    assert frame["tract_geoid"].tolist() == ["01001020100", "01003010200"]
    assert frame["share"].tolist()[0] == 12.5 and pd.isna(frame["share"].iloc[1])
    assert frame["share_missing"].tolist() == [None, "publisher_value_missing"]
    assert (report.rows_read, report.blank_rows, report.published) == (2, 2, 2)
    assert frame["release_ts"].iloc[0] == pd.Timestamp("2023-05-01", tz="UTC")
    assert frame["boundary_year"].iloc[0] == 2020 and frame["vintage"].iloc[0] == 2022


def test_ten_digit_tract_codes_are_padded(tmp_path):
    frame, _ = conform(write(tmp_path, "GEOID,SHARE\n1001020100,3\n"), spec())
    assert frame["tract_geoid"].tolist() == ["01001020100"]


def test_label_row_above_names_and_summary_rows_set_aside(tmp_path):
    """County Health Rankings: labels in row 1, names in row 2, the state row among counties."""
    text = "FIPS label,Share label\nfipscode,SHARE\n25000,10\n25001,20\n25003,30\n"
    source = spec({"geography_level": "county", "format": {"names_row": 2},
                   "geoid": {"column": "fipscode", "summary": r"^\d{2}000$"}})
    frame, report = conform(write(tmp_path, text), source)
    assert frame["county_geoid"].tolist() == ["25001", "25003"]
    assert list(report.set_aside.values()) == [1]


def test_row_filter_sets_rows_aside_with_reason(tmp_path):
    text = "GEOID,KIND,SHARE\n01001020100,area,1\n01001020200,po box,2\n"
    reason = "a PO box ZIP has no area of its own"
    source = spec({"exclude": [{"column": "KIND", "equals": ["po box"], "reason": reason}]})
    frame, report = conform(write(tmp_path, text), source)
    assert frame["tract_geoid"].tolist() == ["01001020100"] and report.set_aside == {reason: 1}


def test_interval_text_becomes_moe_only_when_symmetric(tmp_path):
    """PLACES-style "( low, high)": 95% half-width x 1.645 / 1.96 where symmetric."""
    text = 'GEOID,PREV,CI\n01001020100,8.0,"( 6.0, 10.0)"\n01001020200,8.3,"( 6.7, 10.4)"\n'
    source = spec(None, {"name": "prev", "column": "PREV",
                         "bounds": {"column": "CI", "level": 95, "symmetric_within": 0.1}})
    frame, _ = conform(write(tmp_path, text), source)
    assert frame["prev_moe"].iloc[0] == pytest.approx(2.0 * 1.645 / 1.96)
    assert pd.isna(frame["prev_moe"].iloc[1])  # 1.6 below, 2.1 above: asymmetric
    assert frame[["prev_ci_low", "prev_ci_high"]].iloc[1].tolist() == [6.7, 10.4]


def test_moe_column_converted_to_90_percent(tmp_path):
    text = "GEOID,POP,POP_MOE95\n01001020100,1000,196\n"
    source = spec(None, {"name": "pop", "column": "POP", "measure_type": "count", "unit": "persons",
                         "moe": {"column": "POP_MOE95", "level": 95}})
    frame, _ = conform(write(tmp_path, text), source)
    assert frame["pop_moe"].iloc[0] == pytest.approx(164.5)


def test_zip_member_and_declared_encoding(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "not data")
        archive.writestr("KIT_2022_Ma\u00f1ana.csv", "GEOID,NAME,SHARE\n01001020100,Espa\u00f1a,4\n"
                         .encode("cp1252"))
    path = tmp_path / "kit.zip"
    path.write_bytes(buffer.getvalue())
    source = spec({"format": {"member": "KIT_2022_*.csv", "encoding": "cp1252"}})
    frame, _ = conform(path, source)
    assert frame["share"].tolist() == [4.0]


def test_xlsx_sheet(tmp_path):
    path = tmp_path / "kit.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"About": ["read me"]}).to_excel(writer, sheet_name="Read Me", index=False)
        pd.DataFrame({"GEOID": ["01001020100"], "SHARE": ["7.5"]}).to_excel(
            writer, sheet_name="Data", index=False)
    frame, _ = conform(path, spec({"format": {"kind": "xlsx", "sheet": "Data"}}))
    assert frame["share"].tolist() == [7.5]


def test_absent_measure_reads_not_available(tmp_path):
    """A measure another release has: every row says why it has no value in this one."""
    two = spec({"absent": ["other"]}, {"name": "share", "column": "SHARE"},
               {"name": "other", "column": "OTHER"}).model_dump()
    two["releases"] = [*two["releases"], two["releases"][0] | {"release": "2024", "absent": []}]
    source = PublisherSource.model_validate(two)
    frame, _ = conform(write(tmp_path, "GEOID,SHARE\n01001020100,1\n"), source)
    assert frame["other_missing"].tolist() == ["not_available_in_vintage"]
    assert pd.isna(frame["other"].iloc[0])


@pytest.mark.parametrize(("text", "message"), [
    ("GEOID,SHARE\n01001020100,abc\n", r"file\.csv: line 2, field SHARE: 'abc' is not a number"),
    ("GEOID,SHARE\n01001020100,150\n", r"line 2, field SHARE: '150' is not within"),
    ("GEOID,SHARE\n01001020100,1\n0100102010x,2\n", r"line 3, field GEOID: '0100102010x'"),
    ("GEOID,SHARE\n01001020100,1\n01001020100,2\n", r"lines \[2, 3\]: GEOID 01001020100 appears"),
    ("GEOID,OTHER\n01001020100,1\n", r"header: missing column\(s\) \['SHARE'\]"),
    # An undeclared -999 is a number out of range, never a silent missing value.
    ("GEOID,SHARE\n01001020100,-999\n", r"'-999' is not within the measure's range 0.0 to 100.0"),
])
def test_bad_cells_name_file_line_and_column(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        conform(write(tmp_path, text), spec())


def test_bad_interval_names_line_and_column(tmp_path):
    text = 'GEOID,PREV,CI\n01001020100,8.0,"6.0 - 10.0"\n'
    source = spec(None, {"name": "prev", "column": "PREV",
                         "bounds": {"column": "CI", "level": 95, "symmetric_within": 0.1}})
    with pytest.raises(InputError, match=r"line 2, field CI: '6.0 - 10.0' is not an interval"):
        conform(write(tmp_path, text), source)


def test_interval_must_hold_its_estimate(tmp_path):
    text = "GEOID,PREV,LO,HI\n01001020100,12.0,6.0,10.0\n"
    source = spec(None, {"name": "prev", "column": "PREV",
                         "bounds": {"low": "LO", "high": "HI", "level": 95, "symmetric_within": 0.1}})
    with pytest.raises(InputError, match=r"line 2, field HI: '10.0' is not an interval holding"):
        conform(write(tmp_path, text), source)


def test_zip_without_the_member_is_refused(tmp_path):
    path = tmp_path / "kit.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README.txt", "no data")
    with pytest.raises(InputError, match=r"expected one zip member matching 'KIT_\*\.csv'"):
        conform(path, spec({"format": {"member": "KIT_*.csv"}}))


def test_wrong_encoding_names_the_line(tmp_path):
    path = write(tmp_path, "GEOID,SHARE\n01001020100,1\n01001020200,\u00e9\n", encoding="latin-1")
    with pytest.raises(InputError, match=r"line 3: byte 0xe9 is not UTF-8"):
        conform(path, spec())
