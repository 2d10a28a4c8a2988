"""CDC PLACES as a source-kit spec: the real 2022 county file, generated tract, ZCTA and long files.

The long tables (data.cdc.gov "PLACES: Local Data for Better Health") and the tract and ZCTA
GIS-friendly files are generated here in the publisher's layout from the real county numbers.
"""

import csv
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from needs import real_path
from pydantic import ValidationError

from ingestion.cli import sdoh
from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.jobs.ingest import ingest_source
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources.catalog import CatalogError
from sdoh_sources.publisher import PublisherSource, publisher_source, source_file

PLACES = publisher_source("places")
DAY = dt.date(2022, 10, 1)  # the release day is unknown: any day the user gives
COUNTY_FILE = ("ma_places2022_county",
               "PLACES__County_Data__GIS_Friendly_Format___2022_release__MA_subset.csv")
LONG_HEADER = ["Year", "StateAbbr", "StateDesc", "LocationName", "DataSource", "Category", "Measure",
               "Data_Value_Unit", "Data_Value_Type", "Data_Value", "Data_Value_Footnote_Symbol",
               "Data_Value_Footnote", "Low_Confidence_Limit", "High_Confidence_Limit",
               "TotalPopulation", "LocationID", "CategoryID", "MeasureId", "DataValueTypeID",
               "Short_Question_Text", "Geolocation"]
KINDS = {"Crude": ("CrdPrv", "Crude prevalence"), "Adj": ("AgeAdjPrv", "Age-adjusted prevalence")}


def county_rows() -> list[dict[str, str]]:
    with real_path(*COUNTY_FILE).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def measure_ids(row: dict[str, str]) -> list[str]:
    return [c.removesuffix("_CrudePrev") for c in row if c.endswith("_CrudePrev")]


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def long_lines(rows: list[dict[str, str]], geoid: str, kinds: tuple[str, ...]) -> list[dict]:
    """The wide rows as data.cdc.gov's long table: a line per area, measure and value type."""
    lines = []
    for row in rows:
        for mid in measure_ids(row):
            for kind in kinds:
                low, high = row[f"{mid}_{kind}95CI"].strip("()").split(",")
                type_id, type_name = KINDS[kind]
                lines.append({
                    "Year": "2022", "StateAbbr": "MA", "StateDesc": "Massachusetts",
                    "LocationName": row.get("CountyName", ""), "DataSource": "BRFSS",
                    "Category": "Health Outcomes", "Measure": mid, "Data_Value_Unit": "%",
                    "Data_Value_Type": type_name, "Data_Value": row[f"{mid}_{kind}Prev"],
                    "Low_Confidence_Limit": low.strip(), "High_Confidence_Limit": high.strip(),
                    "TotalPopulation": row["TotalPopulation"], "LocationID": row[geoid],
                    "CategoryID": "HLTHOUT", "MeasureId": mid, "DataValueTypeID": type_id,
                    "Short_Question_Text": mid, "Geolocation": "POINT (-71.0 42.6)"})
    return lines[::-1]  # line order carries no meaning


def tract_rows() -> list[dict[str, str]]:
    """Two tracts and two ZCTAs carrying the crude numbers of two real counties."""
    rows = county_rows()[:2]
    codes = [("25009201100", "01810"), ("25009201200", "01002")]
    return [{**r, "TractFIPS": tract, "ZCTA5": zcta} for r, (tract, zcta) in zip(rows, codes, strict=True)]


def conformed(path: Path, level: str, layout: str | None = None) -> tuple[pd.DataFrame, object]:
    release = PLACES.release(2022, level, layout=layout)
    return conform_release(read_release_file(path, release), PLACES, release, available_from=DAY)


def by_geoid(frame: pd.DataFrame, level: str) -> pd.DataFrame:
    return frame.sort_values(f"{level}_geoid").reset_index(drop=True)


def crude_header(geoid: str, row: dict[str, str]) -> list[str]:
    ids = measure_ids(row)
    return ["StateAbbr", "StateDesc", "CountyName", "CountyFIPS", geoid, "TotalPopulation",
            *[c for mid in ids for c in (f"{mid}_CrudePrev", f"{mid}_Crude95CI")], "Geolocation"]


# --- the real 2022 county file --------------------------------------------------------------

def test_real_county_file_is_read_whole():
    frame, report = conformed(real_path(*COUNTY_FILE), "county")
    assert (report.rows_read, report.published, report.set_aside, report.missing) == (14, 14, {}, {})
    assert sorted(frame["county_geoid"]) == [f"250{n:02d}" for n in range(1, 28, 2)]
    assert set(frame["boundary_year"]) == {2020} and set(frame["vintage"]) == {2022}


# Essex (25009), read off the file; 90% MOE = half-width x 1.645 / 1.96 where the interval is
# symmetric within 0.2 (|low + high - 2 x estimate|).
@pytest.mark.parametrize(("measure", "value", "low", "high", "moe"), [
    # 6.7 + 10.0 - 16.6 = 0.1: symmetric within rounding; (10.0 - 6.7) / 2 x 1.645 / 1.96
    ("places_uninsured_crude", 8.3, 6.7, 10.0, 1.65 * 1.645 / 1.96),
    ("places_uninsured_adj", 8.8, 7.0, 10.6, 1.8 * 1.645 / 1.96),
    # 71.6 + 77.1 - 149.0 = -0.3: asymmetric, the bounds stay and the MOE is null
    ("places_dental_visit_crude", 74.5, 71.6, 77.1, None),
    # "19" in the file (no decimal) for the age-adjusted depression prevalence
    ("places_depression_adj", 19.0, 18.0, 20.1, 1.05 * 1.645 / 1.96),
])
def test_real_county_values_by_hand(measure, value, low, high, moe):
    frame, _ = conformed(real_path(*COUNTY_FILE), "county")
    essex = frame.set_index("county_geoid").loc["25009"]
    assert (essex[measure], essex[f"{measure}_ci_low"], essex[f"{measure}_ci_high"]) == (value, low, high)
    if moe is None:
        assert pd.isna(essex[f"{measure}_moe"])
    else:
        assert essex[f"{measure}_moe"] == pytest.approx(moe, abs=1e-12)
    assert essex[f"{measure}_missing"] is None


def test_real_county_file_is_published_through_the_gate(tmp_path):
    done = ingest_source("places", 2022, real_path(*COUNTY_FILE), level="county",
                         workspace=Workspace(tmp_path), available_from=DAY)
    assert (done.published.dataset, done.report.rows_read, done.published.n_rows) == \
        ("places_county", 14, 14)


def test_unknown_release_day_must_be_given(tmp_path):
    with pytest.raises(InputError, match="available"):
        ingest_source("places", 2022, real_path(*COUNTY_FILE), level="county",
                      workspace=Workspace(tmp_path))


# --- tract and ZCTA GIS-friendly files ------------------------------------------------------

@pytest.mark.parametrize(("level", "column", "geoids", "boundary"), [
    ("tract", "TractFIPS", ["25009201100", "25009201200"], 2010),
    ("zcta", "ZCTA5", ["01810", "01002"], 2010),
])
def test_small_area_files_have_crude_prevalence_only(tmp_path, level, column, geoids, boundary):
    rows = tract_rows()
    path = write_csv(tmp_path / f"{level}.csv", crude_header(column, rows[0]), rows)
    frame, report = conformed(path, level)
    assert report.published == 2 and frame[f"{level}_geoid"].tolist() == geoids
    assert set(frame["boundary_year"]) == {boundary}
    assert not [c for c in frame.columns if "_adj" in c]
    assert frame["places_uninsured_crude"].tolist() == [float(r["ACCESS2_CrudePrev"]) for r in rows]


def test_zcta_that_lost_its_leading_zero_is_padded(tmp_path):
    rows = [{**tract_rows()[1], "ZCTA5": "1002"}]
    path = write_csv(tmp_path / "zcta.csv", crude_header("ZCTA5", rows[0]), rows)
    assert conformed(path, "zcta")[0]["zcta_geoid"].tolist() == ["01002"]


# --- long tables ----------------------------------------------------------------------------

def test_long_county_table_publishes_the_wide_rows(tmp_path):
    rows = county_rows()
    path = write_csv(tmp_path / "long.csv", LONG_HEADER,
                     long_lines(rows, "CountyFIPS", ("Crude", "Adj")))
    wide, _ = conformed(real_path(*COUNTY_FILE), "county")
    long, report = conformed(path, "county", "long")
    pd.testing.assert_frame_equal(by_geoid(long, "county"), by_geoid(wide, "county"))
    # 14 counties x 30 measures (the file's *_CrudePrev columns) x 2 value types; 10 of them read
    assert len(measure_ids(rows[0])) == 30
    assert report.rows_read == 14 * 30 * 2 and report.published == 14
    assert report.set_aside == {"line of a MeasureId/DataValueTypeID the spec does not read": 14 * 20 * 2}


def test_long_tract_table_equals_the_wide_tract_file(tmp_path):
    rows = tract_rows()
    wide_path = write_csv(tmp_path / "tract.csv", crude_header("TractFIPS", rows[0]), rows)
    long_path = write_csv(tmp_path / "long.csv", LONG_HEADER, long_lines(rows, "TractFIPS", ("Crude",)))
    pd.testing.assert_frame_equal(by_geoid(conformed(long_path, "tract", "long")[0], "tract"),
                                  by_geoid(conformed(wide_path, "tract")[0], "tract"))


def test_long_county_table_through_the_gate(tmp_path):
    path = write_csv(tmp_path / "long.csv", LONG_HEADER,
                     long_lines(county_rows(), "CountyFIPS", ("Crude", "Adj")))
    done = ingest_source("places", 2022, path, level="county", layout="long",
                         workspace=Workspace(tmp_path / "ws"), available_from=DAY)
    assert (done.published.dataset, done.published.n_rows) == ("places_county", 14)


def test_long_table_from_the_command_line(tmp_path):
    path = write_csv(tmp_path / "long.csv", LONG_HEADER,
                     long_lines(tract_rows(), "TractFIPS", ("Crude",)))
    result = CliRunner().invoke(sdoh, ["ingest", "source", "places", str(path), "--release", "2022",
                                       "--level", "tract", "--layout", "long", "--available-from",
                                       "2022-10-01", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert "set aside 40: line of a MeasureId/DataValueTypeID the spec does not read" in result.output


def test_missing_long_line_reads_as_missing_value(tmp_path):
    lines = long_lines(tract_rows(), "TractFIPS", ("Crude",))
    kept = [x for x in lines if not (x["LocationID"] == "25009201200" and x["MeasureId"] == "OBESITY")]
    frame, report = conformed(write_csv(tmp_path / "long.csv", LONG_HEADER, kept), "tract", "long")
    second = frame.set_index("tract_geoid").loc["25009201200"]
    assert pd.isna(second["places_obesity_crude"]) and pd.isna(second["places_obesity_crude_ci_low"])
    assert second["places_obesity_crude_missing"] == "publisher_value_missing"
    assert report.missing == {"places_obesity_crude": {"publisher_value_missing": 1}}


# --- errors name the file, line and column --------------------------------------------------

def test_malformed_interval_names_file_line_and_column(tmp_path):
    rows = county_rows()
    rows[1]["ACCESS2_Crude95CI"] = "( 6.7; 10.0)"
    path = write_csv(tmp_path / "county.csv", list(rows[0]), rows)
    with pytest.raises(InputError, match=r"county\.csv: line 3, field ACCESS2_Crude95CI: "
                                         r"'\( 6\.7; 10\.0\)' is not an interval"):
        conformed(path, "county")


@pytest.mark.parametrize(("index", "column", "value", "message"), [
    (3, "Data_Value", "8,3", r"line 5, field Data_Value \(MeasureId=\w+, DataValueTypeID=CrdPrv\): "
                             r"'8,3' is not a number"),
    (5, "High_Confidence_Limit", "1.0",
     r"line 7, field High_Confidence_Limit \(MeasureId=\w+, DataValueTypeID=CrdPrv\): "
     r"'1.0' is not an interval holding the estimate"),
    (0, "LocationID", "2500920110X", r"line 2, field LocationID: '2500920110X' is not a code"),
])
def test_bad_long_cell_names_its_line(tmp_path, index, column, value, message):
    lines = [x for x in long_lines(tract_rows(), "TractFIPS", ("Crude",))
             if x["MeasureId"] in ("ACCESS2", "OBESITY", "DIABETES")]
    lines = [x for x in lines if x["MeasureId"] != "OBESITY"] + \
        [x for x in lines if x["MeasureId"] == "OBESITY"]
    lines[index] = {**lines[index], column: value}  # file line index + 2
    path = write_csv(tmp_path / "long.csv", LONG_HEADER, lines)
    with pytest.raises(InputError, match=message):
        conformed(path, "tract", "long")


def test_repeated_long_line_is_an_error(tmp_path):
    lines = long_lines(tract_rows(), "TractFIPS", ("Crude",))
    path = write_csv(tmp_path / "long.csv", LONG_HEADER, [*lines, lines[0]])
    with pytest.raises(InputError, match=rf"lines \[2, {len(lines) + 2}\]: LocationID 25009201200, "
                                         "MeasureId \\w+, DataValueTypeID CrdPrv appears more than once"):
        conformed(path, "tract", "long")


def test_missing_long_line_without_empty_code_is_an_error(tmp_path):
    strict = PLACES.model_copy(update={"missing_codes": {}})
    release = strict.release(2022, "tract", layout="long")
    lines = [x for x in long_lines(tract_rows(), "TractFIPS", ("Crude",)) if x["MeasureId"] != "DENTAL"
             or x["LocationID"] != "25009201100"]
    raw = read_release_file(write_csv(tmp_path / "long.csv", LONG_HEADER, lines), release)
    with pytest.raises(InputError, match="LocationID 25009201100\\) has no line for MeasureId=DENTAL, "
                                         "DataValueTypeID=CrdPrv"):
        conform_release(raw, strict, release, available_from=DAY)


def test_long_table_missing_a_key_column(tmp_path):
    lines = long_lines(tract_rows(), "TractFIPS", ("Crude",))
    path = write_csv(tmp_path / "long.csv", [c for c in LONG_HEADER if c != "DataValueTypeID"], lines)
    with pytest.raises(InputError, match=r"header: missing column\(s\) \['DataValueTypeID'\]"):
        conformed(path, "tract", "long")


# --- the spec ---------------------------------------------------------------------------------

def spec_data() -> dict:
    path = Path(__file__).resolve().parents[1] / "sdoh_sources" / "catalog" / source_file("places")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def long_county(data: dict) -> dict:
    return next(r for r in data["releases"] if r["geography_level"] == "county" and "long" in
                r.get("format", {}))


def drop_key(data: dict) -> None:
    data["measures"][0].pop("long_key")


def drop_type(data: dict) -> None:
    data["measures"][0]["long_key"] = {"measure": "ACCESS2"}


def drop_bounds(data: dict) -> None:
    long_county(data)["format"] = {"long": {"measure": "MeasureId", "value_type": "DataValueTypeID",
                                            "value": "Data_Value"}}


def share_key(data: dict) -> None:
    data["measures"][1]["long_key"] = data["measures"][0]["long_key"]


def repeat_release(data: dict) -> None:
    data["releases"].append(long_county(data))


def rename_column(data: dict) -> None:
    long_county(data)["columns"] = {"places_uninsured_crude": "X"}


@pytest.mark.parametrize(("change", "message"), [
    (drop_key, "measure places_uninsured_crude has no long_key"),
    (drop_type, "long_key must give a value_type exactly when"),
    (drop_bounds, "has an MOE or interval, but the long file names no low and high"),
    (share_key, "measures share the long_key"),
    (repeat_release, r"releases repeat \(release, level, layout\)"),
    (rename_column, "a long file has no per-measure columns to rename"),
])
def test_spec_checks_long_releases(change, message):
    data = spec_data()
    change(data)
    with pytest.raises(ValidationError, match=message):
        PublisherSource.model_validate(data)


def test_spec_is_model_based_with_bounds():
    assert {m.estimate for m in PLACES.measures} == {"model"}
    assert all("Model-based" in m.known_biases and m.bounds.level == 95 for m in PLACES.measures)
    assert [len(PLACES.measures_at(level)) for level in ("county", "tract", "zcta")] == [20, 10, 10]
    assert {r.available_from for r in PLACES.releases} == {None}


@pytest.mark.parametrize(("level", "layout", "expected"), [
    ("county", None, "CountyFIPS"), ("county", "wide", "CountyFIPS"), ("county", "long", "LocationID"),
    ("tract", "long", "LocationID"), ("zcta", None, "ZCTA5"),
])
def test_release_by_layout(level, layout, expected):
    assert PLACES.release(2022, level, layout=layout).geoid.column == expected


def test_release_without_long_table():
    with pytest.raises(CatalogError, match="no release 2022 at zcta in long layout"):
        PLACES.release(2022, "zcta", layout="long")
