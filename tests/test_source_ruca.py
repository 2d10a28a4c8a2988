"""USDA ERS RUCA codes through the source kit (sdoh_sources/catalog/sources/ruca.yaml).

The 2020 ZIP-code file is the real one (../shared/data/real/ruca2020_zip, 41,146 ZIPs). The
tract files are generated here in ERS's layouts: the 2020 tract CSV's 27 columns in file order
(Windows-1252, quoted where a name holds a comma, CRLF), and the 2010 workbook's "Data" sheet
with its note on row 1 and ERS's long column names on row 2. Cell values in them are examples.
"""

import csv
import datetime as dt
import io

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely
from needs import real_path

from equity.coverage import coverage_table, feature_coverage
from equity.coverage_report import coverage_report
from equity.rurality import add_rurality, rurality
from feature_repo import apply_definitions, feature_store, training_frame
from feature_repo.serving.lookup_rules import geoid_source
from ingestion.core.datasets import geography_timeline_spec
from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.demo.publisher_files import RUCA_TRACT_2020_COLUMNS
from ingestion.gate.publish import publish
from ingestion.geo.linking import link_addresses
from ingestion.geo.zip_crosswalk import read_zip_crosswalk
from ingestion.jobs.ingest import ingest_source
from ingestion.sources.publisher_file import conform_release, read_release_file
from sdoh_sources import CatalogError
from sdoh_sources.publisher import publisher_source
from sdoh_sources.rurality import load_rurality_catalog

RUCA = publisher_source("ruca")
ZIP_FILE = ("ruca2020_zip", "RUCA-codes-2020-zipcode.csv")
PO_BOX = ("PO-box or large-volume-customer ZIP: a point with no area, hence no ZCTA of its own; "
          "its patients read the RUCA of the ZCTA their ZIP crosswalks to (UDS ZIP-to-ZCTA "
          "crosswalk, zip_join_type spatial_join_to_zcta)")
DAY = dt.date(2025, 6, 1)  # a day the user gives: ERS documents none


def conform(path, release, level):
    spec = RUCA.release(release, level)
    return conform_release(read_release_file(path, spec), RUCA, spec, available_from=DAY)


# -- the spec ----------------------------------------------------------------------------------


def test_the_spec_declares_three_releases_on_their_boundaries():
    assert [(r.release, r.geography_level, r.boundary_vintage) for r in RUCA.releases] == [
        ("2010", "tract", 2010), ("2020", "tract", 2020), ("2020", "zcta", 2020)]
    assert all(r.available_from is None for r in RUCA.releases)  # no documented day
    assert RUCA.release(2020, "zcta").format.encoding == "cp1252"
    assert RUCA.dataset("zcta") == "ruca_zcta"


def test_the_measures_are_categories_allowed_as_model_inputs():
    primary, secondary = RUCA.measure("ruca_primary"), RUCA.measure("ruca_secondary")
    assert (primary.measure_type, primary.estimate, primary.direction) == (
        "category", "classification", "neutral")
    assert primary.value_range == (1, 10) and secondary.value_range == (1, 10.3)
    assert primary.fairness_role == secondary.fairness_role == "model_input"
    assert primary.proxy_for == ("none",) and not primary.has_moe


def test_a_zcta_view_reads_the_timelines_zcta_of_its_boundary_year():
    assert geoid_source("zcta", RUCA.release(2020, "zcta").boundary_vintage) == ("zcta_geoid_2020", None)


# -- the real 2020 ZIP-code file ----------------------------------------------------------------


@pytest.fixture(scope="module")
def zip_rows():
    frame, report = conform(real_path(*ZIP_FILE), 2020, "zcta")
    return frame.set_index("zcta_geoid"), report


def test_the_real_zip_file_counts(zip_rows):
    frame, report = zip_rows
    assert (report.rows_read, report.blank_rows, report.published) == (41146, 0, 32294)
    assert report.set_aside == {PO_BOX: 8852}
    assert report.missing == {}
    assert frame.index.str.fullmatch(r"\d{5}").all() and frame.index.is_unique


@pytest.mark.parametrize(("zcta", "primary", "secondary"), [
    ("00601", 10.0, 10.0),  # Adjuntas, PR: leading zeros kept
    ("01238", 7.0, 7.1),  # Lee, MA: a secondary flow to an urbanized area
    ("00006", 10.0, 10.1),  # Matanuska-Susitna, AK
    ("02139", 1.0, 1.0),  # Cambridge, MA
    ("11742", 1.0, 1.0),  # Holtsville, NY: the ZCTA that PO-box ZIP 00501 crosswalks to
])
def test_hand_checked_zips(zip_rows, zcta, primary, secondary):
    row = zip_rows[0].loc[zcta]
    assert (row["ruca_primary"], row["ruca_secondary"]) == (primary, secondary)
    assert row["boundary_year"] == 2020 and row["release_ts"] == pd.Timestamp(DAY, tz="UTC")


@pytest.mark.parametrize("zip_code", ["00501", "00544", "00604"])
def test_po_box_zips_are_set_aside(zip_rows, zip_code):
    assert zip_code not in zip_rows[0].index


def test_the_real_zip_file_is_ascii_so_cp1252_reads_it_as_published():
    data = real_path(*ZIP_FILE).read_bytes()
    assert data.isascii() and data.startswith(b"ZIPCode,State,ZIPCodeType,POName,PrimaryRUCA,")


def test_every_real_code_is_in_the_rurality_codes(zip_rows):
    codes = load_rurality_catalog().codes
    assert set(zip_rows[0]["ruca_primary"]) == set(codes.primary)
    assert set(zip_rows[0]["ruca_secondary"]) <= set(codes.secondary)


def test_the_release_day_must_be_given(tmp_path):
    with pytest.raises(InputError, match="available"):
        ingest_source("ruca", 2020, real_path(*ZIP_FILE), level="zcta", workspace=Workspace(tmp_path))


def test_the_release_needs_its_level():
    with pytest.raises(CatalogError, match=r"exists at \['tract', 'zcta'\]: pass the level"):
        RUCA.release(2020)


# -- a ZIP-only patient reads RUCA through the ZIP crosswalk ------------------------------------

# UDS 2020 layout (tests/test_zip_crosswalk.py): PO-box ZIP 00501 is spatially joined to ZCTA
# 11742; 01238 and 00601 are ZIP Code Areas of their own ZCTA.
UDS_2020 = """ZIP_CODE,PO_NAME,STATE,ZIP_TYPE,ZCTA,zip_join_type
00501,Holtsville,NY,Post Office or large volume customer,11742,Spatial join to ZCTA
01238,Lee,MA,ZIP Code Area,01238,ZIP Matches ZCTA
00601,Adjuntas,PR,ZIP Code Area,00601,ZIP Matches ZCTA
"""


@pytest.fixture(scope="module")
def zip_frame(tmp_path_factory):
    """RUCA 2020 by ZIP and a ZIP-only timeline published, read at events after the release."""
    root = tmp_path_factory.mktemp("ruca_zip")
    workspace = Workspace(root / "ws")
    done = ingest_source("ruca", 2020, real_path(*ZIP_FILE), level="zcta", workspace=workspace,
                         available_from=DAY)
    (root / "ZIPCodetoZCTACrosswalk2020UDS.csv").write_text(UDS_2020, encoding="utf-8")
    crosswalk = read_zip_crosswalk(root / "ZIPCodetoZCTACrosswalk2020UDS.csv", boundary_year=2020)
    history = pd.DataFrame({"patient_id": ["po_box", "lee", "adjuntas"],
                            "valid_from": "2019-01-01", "zip": ["00501", "01238", "00601"]})
    # One block group far from anyone: the patients are placed by their ZIP alone.
    block_groups = gpd.GeoDataFrame({"geoid": ["420010000011"]},
                                    geometry=[shapely.box(-75, 39, -74, 40)], crs=4269)
    timeline = link_addresses(history, {2020: block_groups}, zip_crosswalk=crosswalk)
    publish(timeline, geography_timeline_spec(), workspace)
    store = feature_store(workspace, profile="embedded")
    apply_definitions(store, workspace)
    events = pd.DataFrame({"patient_id": ["po_box", "lee", "adjuntas", "lee"],
                           "event_timestamp": pd.to_datetime(
                               ["2025-07-01", "2025-07-01", "2025-07-01", "2025-05-31"], utc=True)})
    return done, timeline, training_frame(events, store=store, workspace=workspace)


def test_ingest_publishes_the_zip_release_through_the_gate(zip_frame):
    done, _, _ = zip_frame
    assert done.published.dataset == "ruca_zcta" and done.published.n_rows == 32294
    assert done.report.set_aside == {PO_BOX: 8852}


def test_zip_only_patients_read_ruca_of_the_zcta_their_zip_crosswalks_to(zip_frame):
    _, timeline, frame = zip_frame
    links = timeline.set_index("patient_id")
    assert links.loc[["po_box", "lee", "adjuntas"], "zip_join_type"].tolist() == [
        "spatial_join_to_zcta", "zip_matches_zcta", "zip_matches_zcta"]
    assert (links["precision"] == "zcta").all() and (links["link_missing"] == "zip_only").all()
    assert links.loc["po_box", "nonresidential_zip"]
    got = frame[["patient_id", "ruca_zcta__geoid", "ruca_zcta__ruca_primary",
                 "ruca_zcta__ruca_secondary", "ruca_zcta__ruca_primary_missing"]]
    expected = pd.DataFrame({
        "patient_id": ["po_box", "lee", "adjuntas", "lee"],
        "ruca_zcta__geoid": ["11742", "01238", "00601", None],
        "ruca_zcta__ruca_primary": [1.0, 7.0, 10.0, np.nan],
        "ruca_zcta__ruca_secondary": [1.0, 7.1, 10.0, np.nan],
        "ruca_zcta__ruca_primary_missing": [None, None, None, "not_yet_released"],
    })
    pd.testing.assert_frame_equal(got.astype(object), expected.astype(object), check_dtype=False)


def test_rurality_from_the_frame_groups_coverage(zip_frame):
    _, _, frame = zip_frame
    frame = add_rurality(frame, column="ruca_zcta__ruca_primary")
    assert frame["rurality"].astype(object).tolist()[:3] == ["metropolitan", "small_town", "rural"]
    patients = pd.DataFrame({"patient_id": ["po_box", "lee", "adjuntas"]})
    table = coverage_table(frame, patients, features="ruca_zcta__ruca_secondary", by="rurality",
                           exclude_reasons=())
    # Ordered groups, most urban first; the unreleased event has no code: "(not recorded)".
    assert table["group"].tolist() == ["metropolitan", "small_town", "rural", "(not recorded)"]
    assert table["missing_rate"].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_the_coverage_report_groups_by_rurality_from_the_frame(zip_frame):
    _, _, frame = zip_frame
    frame = add_rurality(frame, column="ruca_zcta__ruca_primary")
    patients = pd.DataFrame({"patient_id": ["po_box", "lee", "adjuntas"]})
    page = coverage_report(frame, patients, features=["ruca_zcta__ruca_secondary"],
                           by=["rurality", "payer"])
    assert "<td>small_town</td>" in page and "<td>rurality</td>" in page
    assert "Skipped attributes not in the patients table: [&#x27;payer&#x27;]" in page


# -- the tract releases, on files in ERS's layouts ----------------------------------------------

# The 2020 tract CSV's header in file order, as the demo region writes it.
COLUMNS_2020 = list(RUCA_TRACT_2020_COLUMNS)


def tract_2020_row(tract, primary, secondary, *, tract23=None, destination="", core_type="Urban"):
    values = {c: "" for c in COLUMNS_2020}
    values |= {"TractFIPS23": tract23 or tract, "TractFIPS20": tract, "CountyFIPS20": tract[:-6],
               "StateFIPS20": tract[:-9], "UrbanCoreType": core_type, "PrimaryRUCA": primary,
               "SecondaryRUCA": secondary, "PrimaryDestinationName": destination,
               "CountyName20": "Fremont County, CO" if destination else "Autauga County, AL"}
    return [values[c] for c in COLUMNS_2020]


def write_tract_2020(path, rows):
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS_2020)
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode("cp1252"))
    return path


@pytest.fixture
def tract_2020(tmp_path):
    return write_tract_2020(tmp_path / "2020-rural-urban-commuting-area-codes-census-tracts.csv", [
        tract_2020_row("01001020100", "1", "1"),
        # A Colorado tract written without its leading zero; a destination with a cp1252 letter.
        tract_2020_row("8043978100", "7", "7.2", destination="Cañon City, CO"),
        # A zero-population Connecticut water tract: not coded, no 2023 county.
        tract_2020_row("09001990000", "99", "99", tract23="N/A", core_type="Water"),
    ])


def test_the_2020_tract_file(tract_2020):
    frame, report = conform(tract_2020, 2020, "tract")
    assert (report.rows_read, report.published, report.set_aside) == (3, 3, {})
    assert frame["tract_geoid"].tolist() == ["01001020100", "08043978100", "09001990000"]
    assert frame["ruca_primary"].tolist()[:2] == [1.0, 7.0]
    assert frame["ruca_secondary"].tolist()[:2] == [1.0, 7.2]
    assert np.isnan(frame.loc[2, "ruca_primary"]) and np.isnan(frame.loc[2, "ruca_secondary"])
    assert frame["ruca_primary_missing"].tolist() == [None, None, "publisher_not_computed"]
    assert (frame["boundary_year"] == 2020).all() and (frame["vintage"] == 2020).all()


def test_a_utf8_reading_would_fail_so_the_encoding_is_declared(tract_2020):
    with pytest.raises(UnicodeDecodeError):
        tract_2020.read_bytes().decode("utf-8")
    raw = read_release_file(tract_2020, RUCA.release(2020, "tract"))
    assert raw.rows["PrimaryDestinationName"].iloc[1] == "Cañon City, CO"


def test_a_code_out_of_range_names_file_line_and_field(tmp_path):
    path = write_tract_2020(tmp_path / "ruca.csv", [tract_2020_row("01001020100", "1", "1"),
                                                    tract_2020_row("01001020200", "11", "11")])
    with pytest.raises(InputError, match=r"ruca\.csv: line 3, field PrimaryRUCA: '11' is not within"):
        conform(path, 2020, "tract")


# The 2010 workbook's "Data" sheet: a note on row 1, ERS's long column names on row 2.
COLUMNS_2010 = [
    "State-County FIPS Code", "Select State", "Select County",
    "State-County-Tract FIPS Code (lookup by address at http://www.ffiec.gov/Geocode/)",
    "Primary RUCA Code 2010", "Secondary RUCA Code, 2010 (see errata)", "Tract Population, 2010",
    "Land Area (square miles), 2010", "Population Density (per square mile), 2010",
]


@pytest.fixture
def workbook_2010(tmp_path):
    book = openpyxl.Workbook()
    book.active.title = "RUCA code description"  # the data is not on the first sheet
    book.active.append(["Code", "Classification description"])
    data = book.create_sheet("Data")
    data.append(["Secondary RUCA codes were revised; see errata."])
    data.append(COLUMNS_2010)
    data.append(["01001", "AL", "Autauga County", "01001020100", 2, 2, 1912, 3.79, 504.6])
    data.append(["01001", "AL", "Autauga County", "01001020200", 1, 1.1, 2170, 1.29, 1682.2])
    data.append(["56039", "WY", "Teton County", 56039967700, 10, 10.3, 2251, 1250.6, 1.8])
    data.append(["06037", "CA", "Los Angeles County", "06037599100", 99, 99, 0, 0.0, 0.0])
    path = tmp_path / "2010-rural-urban-commuting-area-codes-revised-732019.xlsx"
    book.save(path)
    return path


def test_the_2010_tract_workbook(workbook_2010):
    frame, report = conform(workbook_2010, 2010, "tract")
    assert (report.rows_read, report.published) == (4, 4)
    assert frame["tract_geoid"].tolist() == ["01001020100", "01001020200", "56039967700",
                                             "06037599100"]
    assert frame["ruca_primary"].tolist()[:3] == [2.0, 1.0, 10.0]
    assert frame["ruca_secondary"].tolist()[:3] == [2.0, 1.1, 10.3]
    assert frame["ruca_secondary_missing"].tolist() == [None, None, None, "publisher_not_computed"]
    assert (frame["boundary_year"] == 2010).all() and (frame["vintage"] == 2010).all()


def test_the_2010_release_reads_its_renamed_columns(workbook_2010):
    spec = RUCA.release(2010, "tract")
    assert spec.columns == {"ruca_primary": "Primary RUCA Code 2010",
                            "ruca_secondary": "Secondary RUCA Code, 2010 (see errata)"}
    raw = read_release_file(workbook_2010, spec)
    assert raw.rows.index[0] == 3  # the sheet row: the note and the names come first


def test_ingest_the_tract_releases_into_one_dataset(tmp_path, tract_2020, workbook_2010):
    workspace = Workspace(tmp_path / "ws")
    first = ingest_source("ruca", 2010, workbook_2010, level="tract", workspace=workspace,
                          available_from=dt.date(2019, 7, 3))
    second = ingest_source("ruca", 2020, tract_2020, level="tract", workspace=workspace,
                           available_from=DAY)
    assert first.published.dataset == second.published.dataset == "ruca_tract"
    # Both vintages are served side by side, each on its own tracts.
    assert (first.published.n_rows, second.published.n_rows) == (4, 7)
    assert (second.report.rows_read, second.report.published) == (3, 3)


# -- rurality ----------------------------------------------------------------------------------

# (scheme, codes, groups) by hand from rurality.yaml.
GROUPINGS = [
    ("metro_micro_small_town_rural", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
     ["metropolitan"] * 3 + ["micropolitan"] * 3 + ["small_town"] * 3 + ["rural"]),
    ("urban_rural", [1, 3, 4, 10], ["urban", "urban", "rural", "rural"]),
    ("urban_large_small_isolated", [1.1, 4.1, 10.1, 4, 6.1, 7.2, 8.2, 9, 10, 10.3],
     ["urban", "urban", "urban", "large_rural", "large_rural", "small_rural", "small_rural",
      "small_rural", "isolated_rural", "isolated_rural"]),
]


@pytest.mark.parametrize(("scheme", "codes", "groups"), GROUPINGS)
def test_rurality_groups_codes_by_hand(scheme, codes, groups):
    assert rurality(pd.Series(codes, dtype=float), scheme=scheme).astype(object).tolist() == groups


def test_rurality_reads_text_codes_and_keeps_nulls_and_order():
    out = rurality(pd.Series(["10", None, "1"], index=[7, 8, 9]))
    assert out.astype(object).tolist() == ["rural", np.nan, "metropolitan"]
    assert out.index.tolist() == [7, 8, 9] and out.cat.ordered
    assert out.cat.categories.tolist() == ["metropolitan", "micropolitan", "small_town", "rural"]


@pytest.mark.parametrize(("codes", "scheme", "match"), [
    ([1.0, 7.1], None,
     r"'7\.1' \(row 1\) is not a primary RUCA code of scheme 'metro_micro_small_town_rural'"),
    ([99.0], "urban_large_small_isolated", r"'99\.0' \(row 0\) is not a secondary RUCA code"),
])
def test_rurality_rejects_codes_of_the_wrong_kind(codes, scheme, match):
    with pytest.raises(InputError, match=match):
        rurality(pd.Series(codes), scheme=scheme)


def test_an_unknown_scheme_lists_the_known_ones():
    with pytest.raises(CatalogError, match="known schemes: metro_micro_small_town_rural"):
        rurality(pd.Series([1.0]), scheme="frontier")


def test_add_rurality_needs_the_ruca_column():
    with pytest.raises(InputError, match="no RUCA column 'ruca_tract__ruca_primary'"):
        add_rurality(pd.DataFrame({"patient_id": ["a"]}), column="ruca_tract__ruca_primary")


def test_rurality_is_an_event_attribute_a_moved_patient_counts_in_both_groups():
    # p1 lived in a metropolitan tract, then a rural one: each event counts where it happened.
    frame = pd.DataFrame({
        "patient_id": ["p1", "p1", "p2"],
        "event_timestamp": pd.to_datetime(["2021-01-01", "2023-01-01", "2023-01-01"], utc=True),
        "ruca_tract__ruca_primary": [1.0, 10.0, 10.0],
        "x__v": [1.0, np.nan, 2.0],
        "x__v_missing": [None, "geography_not_in_vintage", None],
    })
    frame = add_rurality(frame, column="ruca_tract__ruca_primary")
    patients = pd.DataFrame({"patient_id": ["p1", "p2"]})
    table = feature_coverage(frame, patients, feature="x__v", by="rurality")
    assert table[["group", "n", "covered"]].values.tolist() == [["metropolitan", 1, 1], ["rural", 2, 1]]
    by_patient = feature_coverage(frame, patients, feature="x__v", by="rurality", unit="patient")
    assert by_patient[["group", "n", "covered"]].values.tolist() == [["rural", 2, 1]]
