"""Tests of ingestion.geo.linking: address-history validation, point-in-polygon linking, funnel."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from needs import real_path

from ingestion.core.datasets import LINK_METHODS, LINK_PRECISIONS, geography_timeline_spec
from ingestion.core.errors import InputError, LinkageError
from ingestion.geo.boundaries import load_boundaries
from ingestion.geo.linking import (
    ADDRESS_COLUMNS,
    LINK_MISSING_REASONS,
    PO_BOX_PATTERN,
    REJECT_COLUMNS,
    REJECT_REASONS,
    link_addresses,
    linkage_funnel,
    read_address_history,
)
from ingestion.geo.zip_crosswalk import read_zip_crosswalk
from sdoh_sources import load_catalog

PHL_TRACTS = ("phl_tracts2020", "philadelphia_tracts_2020.geojson")
HEADER = "patient_id,valid_from,valid_to,street,city,state,zip,latitude,longitude"
GOOD = "p1,2019-01-01,,1 Main St,Philadelphia,PA,19107,39.5,-74.5"


def write_csv(folder: Path, lines: list[str], name: str = "addresses.csv") -> Path:
    path = folder / name
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def squares(cells: dict[tuple[int, int], str], *, crs: str = "EPSG:4269") -> gpd.GeoDataFrame:
    """Unit squares: (column, row) -> GEOID; column 0 starts at lon -75, row 0 at lat 39."""
    geoids = list(cells.values())
    geoms = [shapely.box(-75 + c, 39 + r, -74 + c, 40 + r) for c, r in cells]
    return gpd.GeoDataFrame({"geoid": geoids}, geometry=geoms, crs=crs)


def periods(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"valid_from": "2019-01-01", **row} for row in rows])


# -- read_address_history -------------------------------------------------------------------


REJECTION_CASES = [
    ([",2019-01-01,,,,,19107,,"], [(2, "patient_id", "missing_value")]),
    (["p1,,,,,,19107,,"], [(2, "valid_from", "missing_value")]),
    (["p1,2019-02-30,,,,,19107,,"], [(2, "valid_from", "unparseable_date")]),
    (["p1,03/15/2019,,,,,19107,,"], [(2, "valid_from", "unparseable_date")]),
    (["p1,2019,,,,,19107,,"], [(2, "valid_from", "unparseable_date")]),
    (["p1,2019-01-01,soon,,,,19107,,"], [(2, "valid_to", "unparseable_date")]),
    (["p1,2019-05-01,2019-01-01,,,,19107,,"], [(2, "valid_to", "inverted_interval")]),
    (["p1,2019-05-01,2019-05-01,,,,19107,,"], [(2, "valid_to", "inverted_interval")]),
    (["p1,2019-01-01,,,,,,abc,-75"], [(2, "latitude", "unparseable_number")]),
    (["p1,2019-01-01,,,,,,39.9,west"], [(2, "longitude", "unparseable_number")]),
    (["p1,2019-01-01,,,,,,91,-75"], [(2, "latitude", "impossible_coordinate")]),
    (["p1,2019-01-01,,,,,,39.9,181"], [(2, "longitude", "impossible_coordinate")]),
    (["p1,2019-01-01,,,,,,39.9,"], [(2, "longitude", "incomplete_coordinates")]),
    (["p1,2019-01-01,,,,,,,-75.1"], [(2, "latitude", "incomplete_coordinates")]),
    (["p1,2019-01-01,,,,,,0,0"], [(2, "latitude", "placeholder_coordinates")]),
    (["p1,2019-01-01,,,,,,-75.16,39.95"], [(2, "latitude", "swapped_coordinates")]),
    (["p1,2019-01-01,,,,,1910,,"], [(2, "zip", "invalid_zip")]),
    ([GOOD, GOOD], [(3, "", "duplicate_row")]),
    ([GOOD, ",,,,,,,,"], [(3, "", "empty_row")]),
    (["p1,2019-01-01,2020-06-01,,,,19107,,", "p1,2020-01-01,,,,,19103,,"],
     [(2, "valid_from", "overlapping_interval"), (3, "valid_from", "overlapping_interval")]),
    (["p1,2019-01-01,,,,,19107,,", "p1,2020-01-01,,,,,19103,,"],  # two current addresses
     [(2, "valid_from", "overlapping_interval"), (3, "valid_from", "overlapping_interval")]),
    (["p1,2019-01-01,2022-01-01,,,,19107,,", "p1,2020-01-01,2020-02-01,,,,19103,,",
      "p1,2021-01-01,2023-01-01,,,,19104,,", "p1,2023-01-01,,,,,19106,,"],
     [(2, "valid_from", "overlapping_interval"), (3, "valid_from", "overlapping_interval"),
      (4, "valid_from", "overlapping_interval")]),
]


def test_every_rejection_reason_has_a_case():
    produced = {reason for _, expected in REJECTION_CASES for _, _, reason in expected}
    assert produced == set(REJECT_REASONS)


@pytest.mark.parametrize(("lines", "expected"), REJECTION_CASES)
def test_every_rejection_reason(tmp_path, lines, expected):
    path = write_csv(tmp_path, lines)
    accepted, rejects = read_address_history(path)
    assert list(rejects.columns) == list(REJECT_COLUMNS)
    assert list(zip(rejects["row"], rejects["field"], rejects["reason"], strict=True)) == expected
    assert (rejects["source_file"] == str(path)).all()
    assert set(rejects["reason"]) <= set(REJECT_REASONS)
    # Each record names the file, the row, the field and what is wrong with it.
    assert rejects["message"].str.len().gt(0).all()
    # Nothing is dropped without a record.
    data_lines = set(range(2, len(lines) + 2))
    assert set(accepted["row"]) | set(rejects["row"]) == data_lines
    assert not set(accepted["row"]) & set(rejects["row"])


def test_moving_on_the_day_is_not_an_overlap(tmp_path):
    path = write_csv(tmp_path, [
        "p1,2019-01-01,2020-03-01,1 Main St,,,19107,39.5,-74.5",
        "p1,2020-03-01,,2 Oak St,,,19103,39.5,-73.5",
    ])
    accepted, rejects = read_address_history(path)
    assert rejects.empty
    boundaries = {2020: squares({(0, 0): "420010000011", (1, 0): "420010000012"})}
    timeline = link_addresses(accepted, boundaries)
    assert timeline["valid_to"].iloc[0] == timeline["valid_from"].iloc[1]
    assert timeline["block_group_geoid_2020"].tolist() == ["420010000011", "420010000012"]



@pytest.mark.parametrize(("event", "expected"), [
    ("2020-02-29T23:59:59Z", "420010000011"),  # the evening before the move: the old address
    ("2020-03-01T00:00:00Z", "420010000012"),  # the moving day, from its first instant: new
    ("2020-03-01T09:30:00Z", "420010000012"),  # an encounter later that day: new
])
def test_an_encounter_on_the_moving_day_belongs_to_the_new_address(tmp_path, event, expected):
    # The convention: periods are half-open [valid_from, valid_to) and dates are 00:00 UTC, so
    # the new address applies from valid_from on, the whole moving day included.
    path = write_csv(tmp_path, [
        "p1,2019-01-01,2020-03-01,1 Main St,,,19107,39.5,-74.5",
        "p1,2020-03-01,,2 Oak St,,,19103,39.5,-73.5",
    ])
    timeline = link_addresses(read_address_history(path)[0], {
        2020: squares({(0, 0): "420010000011", (1, 0): "420010000012"})})
    at = pd.Timestamp(event)
    at_event = timeline[(timeline["valid_from"] <= at)
                        & (timeline["valid_to"].isna() | (at < timeline["valid_to"]))]
    assert at_event["block_group_geoid_2020"].tolist() == [expected]


def test_gzipped_csv(tmp_path):
    path = tmp_path / "addresses.csv.gz"
    pd.DataFrame({"patient_id": ["p1", "p2"], "valid_from": ["2019-01-01", "2019-13-01"],
                  "street": ["Apt 1\n1 Main St", None]}).to_csv(path, index=False)
    accepted, rejects = read_address_history(path)
    assert accepted["row"].tolist() == [2]
    assert list(zip(rejects["row"], rejects["reason"], strict=True)) == [
        (4, "unparseable_date")]


def test_several_problems_on_one_row_are_all_recorded(tmp_path):
    path = write_csv(tmp_path, ["p1,yesterday,,,,,1234,abc,-75"])
    accepted, rejects = read_address_history(path)
    assert accepted.empty
    assert sorted(zip(rejects["field"], rejects["reason"], strict=True)) == [
        ("latitude", "unparseable_number"), ("valid_from", "unparseable_date"),
        ("zip", "invalid_zip")]


def test_row_is_the_line_number_even_with_blank_and_multiline_records(tmp_path):
    path = tmp_path / "addresses.csv"
    path.write_text(HEADER + "\n"
                    + GOOD + "\n"
                    + "\n"  # line 3: blank
                    + 'p2,2019-01-01,,"Apt 2\n12 Elm St",,,19107,,\n'  # lines 4-5
                    + "p3,2019-01-01,,,,,,91,-75\n",  # line 6
                    encoding="utf-8")
    accepted, rejects = read_address_history(path)
    assert sorted(accepted["row"]) == [2, 4]
    assert list(zip(rejects["row"], rejects["reason"], strict=True)) == [
        (3, "empty_row"), (6, "impossible_coordinate")]
    assert accepted.loc[accepted["patient_id"] == "p2", "street"].item() == "Apt 2\n12 Elm St"


@pytest.mark.parametrize(("lat", "lon", "swapped"), [
    (39.9526, -75.1635, False),   # Philadelphia
    (-75.1635, 39.9526, True),    # Philadelphia, swapped
    (37.7749, -122.4194, False),  # San Francisco
    (-122.4194, 37.7749, True),   # swapped: a |latitude| > 90 is reported as swapped
    (61.2181, -149.9003, False),  # Anchorage
    (-149.9003, 61.2181, True),
    (21.3069, -157.8583, False),  # Honolulu
    (18.4655, -66.1057, False),   # San Juan
    (13.4443, 144.7937, False),   # Guam
    (144.7937, 13.4443, True),
    (-14.2756, -170.7020, False),  # Pago Pago
    (52.8, 173.2, False),          # Attu, west of the antimeridian
    (48.8566, 2.3522, False),      # Paris: not U.S., not flagged (links outside boundaries)
    (-33.8688, 151.2093, False),   # Sydney
])
def test_swapped_coordinate_rule(tmp_path, lat, lon, swapped):
    path = write_csv(tmp_path, [f"p1,2019-01-01,,,,,,{lat},{lon}"])
    accepted, rejects = read_address_history(path)
    assert (rejects["reason"].tolist() == ["swapped_coordinates"]) is swapped
    assert len(accepted) == (0 if swapped else 1)


def test_swap_check_can_be_turned_off(tmp_path):
    path = write_csv(tmp_path, ["p1,2019-01-01,,,,,,-33.87,-70.6"])
    assert read_address_history(path)[1]["reason"].tolist() == []
    path = write_csv(tmp_path, ["p1,2019-01-01,,,,,,-70.6,39.95"], name="b.csv")
    assert read_address_history(path)[1]["reason"].tolist() == ["swapped_coordinates"]
    accepted, rejects = read_address_history(path, check_swapped=False)
    assert rejects.empty and len(accepted) == 1


def test_accepted_values_are_normalized(tmp_path):
    path = write_csv(tmp_path, [
        "p2,2019-01-01T05:00:00-05:00,9999-12-31, 1 Main St ,Phila,pa,19107-1234,39.5,-74.5",
        "p1,2018-06-01,2019-01-01,,,,02134,,",
    ])
    accepted, rejects = read_address_history(path)
    assert rejects.empty
    assert list(accepted.columns) == [*ADDRESS_COLUMNS, "row"]
    assert accepted["patient_id"].tolist() == ["p1", "p2"]  # sorted
    assert str(accepted["valid_from"].dtype) == "datetime64[us, UTC]"
    assert accepted["valid_from"].tolist() == [pd.Timestamp("2018-06-01", tz="UTC"),
                                               pd.Timestamp("2019-01-01 10:00", tz="UTC")]
    assert accepted["valid_to"].iloc[0] == pd.Timestamp("2019-01-01", tz="UTC")
    assert pd.isna(accepted["valid_to"].iloc[1])  # 9999-12-31 means current
    assert accepted["zip"].tolist() == ["02134", "19107"]
    assert accepted["street"].iloc[1] == "1 Main St"
    assert accepted["state"].iloc[1] == "PA"


def test_parquet_history(tmp_path):
    path = tmp_path / "addresses.parquet"
    pd.DataFrame({
        "Patient_ID": [7, 8, 9],
        "valid_from": pd.to_datetime(["2019-01-01", "2019-01-01", "2019-01-01"]),
        "valid_to": pd.to_datetime(["2020-01-01", None, "2018-01-01"]),
        "zip": [2134, 19107, 19107],
        "latitude": [39.5, np.nan, np.nan],
        "longitude": [-74.5, np.nan, np.nan],
    }).to_parquet(path)
    accepted, rejects = read_address_history(path)
    assert accepted["patient_id"].tolist() == ["7", "8"]
    assert accepted["zip"].tolist() == ["02134", "19107"]
    assert accepted["street"].isna().all()
    assert list(zip(rejects["row"], rejects["reason"], strict=True)) == [
        (3, "inverted_interval")]


@pytest.mark.parametrize(("content", "name", "match"), [
    ("patient_id,street\np1,1 Main St\n", "a.csv",
     r"a\.csv: row 1 \(header\): required column 'valid_from' is missing"),
    ("valid_from\n2019-01-01\n", "b.csv", r"required column 'patient_id' is missing"),
    ("x", "c.json", r"expected a \.csv or \.parquet"),
    ("not parquet", "d.parquet", r"cannot read the address history"),
])
def test_unusable_history_file(tmp_path, content, name, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        read_address_history(path)


def test_history_file_not_found(tmp_path):
    with pytest.raises(InputError, match="address history not found"):
        read_address_history(tmp_path / "nope.csv")


# -- link_addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize("cells", [
    {(0, 0): "420010000002", (1, 0): "420010000001"},
    {(0, 0): "420010000001", (1, 0): "420010000002"},
])
@pytest.mark.parametrize("reverse", [False, True])
def test_point_on_shared_edge_gets_smallest_geoid(cells, reverse):
    boundaries = squares(cells)
    if reverse:
        boundaries = boundaries.iloc[::-1]
    history = periods([{"patient_id": "p1", "latitude": 39.5, "longitude": -74.0}])
    out = link_addresses(history, {2020: boundaries})
    assert out["block_group_geoid_2020"].tolist() == ["420010000001"]
    assert out["link_method"].tolist() == ["point_in_polygon"]


@pytest.mark.parametrize("order", [
    ("420010000004", "420010000003", "420010000002", "420010000001"),
    ("420010000001", "420010000004", "420010000003", "420010000002"),
    ("420010000003", "420010000001", "420010000004", "420010000002"),
])
def test_point_on_shared_vertex_gets_smallest_geoid(order):
    cells = dict(zip([(0, 0), (1, 0), (0, 1), (1, 1)], order, strict=True))
    history = periods([{"patient_id": "p1", "latitude": 40.0, "longitude": -74.0}])
    out = link_addresses(history, {2010: squares(cells), 2020: squares(cells)})
    assert out["block_group_geoid_2010"].tolist() == ["420010000001"]
    assert out["block_group_geoid_2020"].tolist() == ["420010000001"]


@pytest.mark.parametrize(("lat", "lon"), [(39.9526, -75.1635), (39.9524, -75.1636)])
def test_real_philadelphia_city_hall_tract(lat, lon):
    tracts = load_boundaries(real_path(*PHL_TRACTS), level="tract", boundary_year=2020)
    history = periods([
        {"patient_id": "city_hall", "latitude": lat, "longitude": lon},
        {"patient_id": "new_york", "latitude": 40.7128, "longitude": -74.0060},
    ])
    out = link_addresses(history, {2020: tracts}, level="tract")
    hall = out.set_index("patient_id").loc["city_hall"]
    assert hall["tract_geoid_2020"] == "42101000500"
    assert hall["county_geoid_2020"] == "42101"
    assert pd.isna(hall["block_group_geoid_2020"])
    assert (hall["link_method"], hall["precision"]) == ("point_in_polygon", "coordinate")
    assert out.set_index("patient_id").loc["new_york", "link_missing"] == "outside_boundaries"


@pytest.mark.parametrize("street", [
    "PO Box 12", "P.O. Box 7", "p.o. box", "P O Box 3", "POBox 44", "PO BX 5",
    "Post Office Box 9", "post office box 1", "POB 4", "pob #4", "12 Main St, PO Box 5",
])
def test_po_box_patterns_match(street):
    assert PO_BOX_PATTERN.search(street)


@pytest.mark.parametrize("street", [
    "Box Elder Rd", "12 Boxwood Ln", "Pobst Rd", "1 Hippo Box Ln", "Post Office Rd",
    "100 Shipbox Ave", "4 Boxer Ct",
])
def test_po_box_patterns_do_not_match(street):
    assert not PO_BOX_PATTERN.search(street)


@pytest.mark.parametrize(("row", "missing", "precision", "method", "geoid"), [
    ({"street": "1 Main St", "latitude": 39.5, "longitude": -74.5},
     None, "coordinate", "point_in_polygon", "420010000011"),
    ({"street": "P.O. Box 12", "zip": "19107", "latitude": 39.5, "longitude": -74.5},
     "po_box", "none", "none", None),
    ({"street": "Post Office Box 3"}, "po_box", "none", "none", None),
    ({"street": "12 Box Elder Rd", "latitude": 39.5, "longitude": -74.5},
     None, "coordinate", "point_in_polygon", "420010000011"),
    ({"zip": "19107"}, "zip_only", "zip", "none", None),
    ({"street": "1 Main St", "zip": "19107"}, "geocode_failed", "none", "none", None),
    ({"city": "Philadelphia", "state": "PA"}, "no_coordinates", "none", "none", None),
    ({}, "no_coordinates", "none", "none", None),
    ({"street": "1 Main St", "latitude": 41.5, "longitude": -74.5},
     "outside_boundaries", "none", "none", None),
])
def test_link_outcomes(row, missing, precision, method, geoid):
    history = periods([{"patient_id": "p1", **row}])
    out = link_addresses(history, {2020: squares({(0, 0): "420010000011"})})
    got = out.iloc[0]
    assert (None if pd.isna(got["link_missing"]) else got["link_missing"]) == missing
    assert (got["precision"], got["link_method"]) == (precision, method)
    assert (None if pd.isna(got["block_group_geoid_2020"])
            else got["block_group_geoid_2020"]) == geoid
    if geoid is None:
        assert out.filter(like="_geoid_").isna().all(axis=None)


def test_timeline_matches_the_spec():
    history = periods([
        {"patient_id": "p2", "latitude": 39.5, "longitude": -74.5},
        {"patient_id": "p1", "valid_from": "2020-03-01", "latitude": 39.5, "longitude": -73.5},
        {"patient_id": "p1", "valid_to": "2020-03-01", "zip": "19107"},
    ])
    boundaries = {2010: squares({(0, 0): "420010000011", (1, 0): "420010000021"}),
                  2020: squares({(0, 0): "420010001001", (1, 0): "420010001002"})}
    out = link_addresses(history, boundaries)
    spec = geography_timeline_spec()
    assert tuple(out.columns) == spec.column_names
    assert list(out.index) == [0, 1, 2]
    assert out["patient_id"].tolist() == ["p1", "p1", "p2"]
    assert out["valid_from"].tolist() == [pd.Timestamp("2019-01-01", tz="UTC"),
                                          pd.Timestamp("2020-03-01", tz="UTC"),
                                          pd.Timestamp("2019-01-01", tz="UTC")]
    for column in ("valid_from", "valid_to"):
        assert str(out[column].dtype) == "datetime64[us, UTC]"
    for rule in spec.columns:
        if rule.dtype == "string":
            assert str(out[rule.name].dtype) == "string", rule.name
            values = out[rule.name].dropna()
            if rule.regex:
                assert values.str.fullmatch(rule.regex).all(), rule.name
            if rule.allowed:
                assert set(values) <= set(rule.allowed), rule.name
        if not rule.nullable:
            assert out[rule.name].notna().all(), rule.name
    linked = out.iloc[1]
    assert linked["block_group_geoid_2010"] == "420010000021"
    assert linked["tract_geoid_2010"] == "42001000002"
    assert linked["county_geoid_2010"] == "42001"
    assert linked["block_group_geoid_2020"] == "420010001002"
    assert linked["tract_geoid_2020"] == "42001000100"
    assert set(out["link_method"]) <= set(LINK_METHODS)
    assert set(out["precision"]) <= set(LINK_PRECISIONS)


def test_inside_one_vintage_only():
    history = periods([{"patient_id": "p1", "latitude": 39.5, "longitude": -73.5}])
    boundaries = {2010: squares({(0, 0): "420010000011"}),
                  2020: squares({(0, 0): "420010001001", (1, 0): "420010001002"})}
    got = link_addresses(history, boundaries).iloc[0]
    assert pd.isna(got["block_group_geoid_2010"])
    assert got["block_group_geoid_2020"] == "420010001002"
    assert (got["link_method"], got["precision"], got["link_missing"]) == (
        "point_in_polygon", "coordinate", "outside_boundaries")


def test_vintage_not_loaded_is_null_and_tract_level_leaves_block_group_null():
    tracts = gpd.GeoDataFrame({"geoid": ["42001000100"]},
                              geometry=[shapely.box(-75, 39, -74, 40)], crs=4269)
    history = periods([{"patient_id": "p1", "latitude": 39.5, "longitude": -74.5}])
    got = link_addresses(history, {2020: tracts}, level="tract").iloc[0]
    assert (got["tract_geoid_2020"], got["county_geoid_2020"]) == ("42001000100", "42001")
    assert pd.isna(got["block_group_geoid_2020"])
    assert pd.isna(got["tract_geoid_2010"]) and pd.isna(got["county_geoid_2010"])
    assert pd.isna(got["link_missing"])


def test_boundaries_in_a_projected_crs():
    boundaries = squares({(0, 0): "420010000011", (1, 0): "420010000012"}).to_crs(3857)
    history = periods([{"patient_id": "p1", "latitude": 39.5, "longitude": -73.5}])
    out = link_addresses(history, {2020: boundaries})
    assert out["block_group_geoid_2020"].tolist() == ["420010000012"]


def test_agrees_with_geopandas_sjoin():
    rng = np.random.default_rng(7)
    cells = {(c, r): f"42001{c:04d}{r:03d}" for c in range(20) for r in range(20)}
    boundaries = squares(cells)
    n = 20_000
    lon = rng.uniform(-75.5, -54.5, n)
    lat = rng.uniform(38.5, 59.5, n)
    history = pd.DataFrame({"patient_id": [f"p{i:05d}" for i in range(n)],
                            "valid_from": "2019-01-01", "latitude": lat, "longitude": lon})
    out = link_addresses(history, {2020: boundaries})
    points = gpd.GeoDataFrame(history[["patient_id"]], geometry=gpd.points_from_xy(lon, lat),
                              crs=4269)
    joined = gpd.sjoin(points, boundaries, predicate="within", how="left")
    expected = joined.set_index("patient_id")["geoid"].reindex(out["patient_id"])
    assert out["block_group_geoid_2020"].fillna("-").tolist() == expected.fillna("-").tolist()
    assert (out["link_missing"].notna() == expected.isna().to_numpy()).all()


@pytest.mark.parametrize(("history", "boundaries", "match"), [
    (pd.DataFrame({"patient_id": ["p1"]}), None, r"lacks column\(s\) \['valid_from'\]"),
    (periods([{"patient_id": "p1"}]), {}, "boundaries must map a boundary vintage"),
    (periods([{"patient_id": "p1"}]), {2015: None}, "boundary year 2015 is not one of"),
    (periods([{"patient_id": "p1"}]), {2020: pd.DataFrame({"geoid": ["1"]})},
     "must be a GeoDataFrame"),
    (periods([{"patient_id": "p1"}]), "tracts", "expects 12 digits"),
    (periods([{"patient_id": "p1", "valid_from": "someday"}]), None, "unparseable date"),
    (periods([{"patient_id": "p1", "valid_to": "2018-01-01"}]), None,
     "valid_to on or before valid_from"),
    (periods([{"patient_id": "p1"}, {"patient_id": "p1"}]), None,
     r"repeats \(patient_id, valid_from\)"),
    (periods([{"patient_id": "p1"}, {"patient_id": "p1", "valid_from": "2020-01-01"}]), None,
     "2 overlapping periods"),
])
def test_link_refuses_unusable_input(history, boundaries, match):
    if boundaries is None:
        boundaries = {2020: squares({(0, 0): "420010000011"})}
    elif boundaries == "tracts":
        boundaries = {2020: gpd.GeoDataFrame({"geoid": ["42001000100"]},
                                             geometry=[shapely.box(-75, 39, -74, 40)], crs=4269)}
    with pytest.raises(LinkageError, match=match):
        link_addresses(history, boundaries)


def test_link_bad_level():
    with pytest.raises(ValueError, match="level must be one of"):
        link_addresses(periods([{"patient_id": "p1"}]), {}, level="zcta")


def test_link_empty_history():
    out = link_addresses(periods([]).reindex(columns=["patient_id", "valid_from"]),
                         {2020: squares({(0, 0): "420010000011"})})
    assert out.empty and tuple(out.columns) == geography_timeline_spec().column_names


# -- ZIP fallback and ZCTAs ---------------------------------------------------------------------

UDS_2020 = """ZIP_CODE,PO_NAME,STATE,ZIP_TYPE,ZCTA,zip_join_type
19107,Philadelphia,PA,ZIP Code Area,19107,ZIP Matches ZCTA
19101,Philadelphia,PA,Post Office or large volume customer,19104,Spatial join to ZCTA
96939,Ngerulmud,PW,ZIP Code Area,No ZCTA,"territory ZIP, no ZCTA available"
"""


@pytest.fixture
def uds(tmp_path):
    path = tmp_path / "ZIPCodetoZCTACrosswalk2020UDS.csv"
    path.write_text(UDS_2020, encoding="utf-8")
    return read_zip_crosswalk(path, boundary_year=2020)


@pytest.mark.parametrize(("row", "missing", "precision", "method", "zcta", "join_type"), [
    ({"zip": "19107"}, "zip_only", "zcta", "zip_crosswalk", "19107", "zip_matches_zcta"),
    ({"zip": "19107-1234", "city": "Philadelphia"}, "zip_only", "zcta", "zip_crosswalk", "19107",
     "zip_matches_zcta"),
    ({"street": "1 Main St", "zip": "19107"}, "geocode_failed", "zcta", "zip_crosswalk", "19107",
     "zip_matches_zcta"),
    ({"zip": "99999"}, "zip_not_in_crosswalk", "zip", "none", None, None),
    ({"zip": "96939"}, "zip_has_no_zcta", "zip", "none", None, "no_zcta"),
    ({"zip": "12AB"}, "invalid_zip", "zip", "none", None, None),
    ({"street": "PO Box 7", "zip": "19107"}, "po_box", "none", "none", None, None),
    ({"street": "1 Main St", "zip": "19107", "latitude": 39.5, "longitude": -74.5},
     None, "coordinate", "point_in_polygon", None, None),
])
def test_zip_fallback_outcomes(uds, row, missing, precision, method, zcta, join_type):
    history = periods([{"patient_id": "p1", **row}])
    got = link_addresses(history, {2020: squares({(0, 0): "420010000011"})},
                         zip_crosswalk=uds).iloc[0]
    assert (None if pd.isna(got["link_missing"]) else got["link_missing"]) == missing
    assert (got["precision"], got["link_method"]) == (precision, method)
    assert (None if pd.isna(got["zcta_geoid_2020"]) else got["zcta_geoid_2020"]) == zcta
    assert (None if pd.isna(got["zip_join_type"]) else got["zip_join_type"]) == join_type
    assert pd.isna(got["zcta_geoid_2010"])
    if method == "zip_crosswalk":
        # A ZIP-only link never reaches block-group, tract or county precision.
        assert got[["block_group_geoid_2020", "tract_geoid_2020", "county_geoid_2020"]] \
            .isna().all()
        assert got["zip_crosswalk_vintage"] == "2020"


def test_a_po_box_zip_is_linked_and_flagged_nonresidential(uds):
    history = periods([{"patient_id": "p1", "zip": "19101"}, {"patient_id": "p2", "zip": "19107"}])
    out = link_addresses(history, {2020: squares({(0, 0): "420010000011"})}, zip_crosswalk=uds)
    assert out["zcta_geoid_2020"].tolist() == ["19104", "19107"]
    assert out["zip_join_type"].tolist() == ["spatial_join_to_zcta", "zip_matches_zcta"]
    assert out["nonresidential_zip"].tolist() == [True, False]
    assert str(out["nonresidential_zip"].dtype) == "bool"


def test_hud_county_crosswalk_gives_county_precision_with_its_ratio(tmp_path):
    path = tmp_path / "ZIP_COUNTY_122023.csv"
    path.write_text("ZIP,COUNTY,RES_RATIO,BUS_RATIO,OTH_RATIO,TOT_RATIO\n"
                    "19107,42101,0.9,0.9,0.9,0.9\n19107,42045,0.1,0.1,0.1,0.1\n")
    history = periods([{"patient_id": "p1", "zip": "19107"}])
    got = link_addresses(history, {2020: squares({(0, 0): "420010000011"})},
                         zip_crosswalk=read_zip_crosswalk(path)).iloc[0]
    assert (got["county_geoid_2020"], got["precision"], got["link_method"]) == (
        "42101", "county", "zip_crosswalk")
    assert pd.isna(got["tract_geoid_2020"]) and pd.isna(got["zcta_geoid_2020"])
    assert (got["zip_join_type"], got["zip_link_ratio"]) == ("hud_max_res_ratio", 0.9)
    assert got["zip_crosswalk_vintage"] == "2023-12"


@pytest.mark.parametrize(("name", "text", "year", "match"), [
    ("ZIP_TRACT_122023.csv", "ZIP,TRACT,RES_RATIO,BUS_RATIO,OTH_RATIO,TOT_RATIO\n"
     "19107,42101000500,1,1,1,1\n", None, "would give ZIP-only patients tract precision"),
    ("ZIPCodetoZCTACrosswalk2020UDS.csv", UDS_2020, None,
     r"boundary_year=2010 or 2020\), or pass --zip-crosswalk-year"),
])
def test_zip_crosswalks_the_timeline_cannot_use(tmp_path, name, text, year, match):
    path = tmp_path / name
    path.write_text(text)
    history = periods([{"patient_id": "p1", "zip": "19107"}])
    with pytest.raises(LinkageError, match=match):
        link_addresses(history, {2020: squares({(0, 0): "420010000011"})},
                       zip_crosswalk=read_zip_crosswalk(path, boundary_year=year))


def test_zcta_boundaries_give_points_their_zcta():
    zctas = gpd.GeoDataFrame({"geoid": ["19107", "19103"]}, crs=4269,
                             geometry=[shapely.box(-75, 39, -74.5, 40),
                                       shapely.box(-74.5, 39, -74, 40)])
    history = periods([
        {"patient_id": "p1", "latitude": 39.5, "longitude": -74.75},
        {"patient_id": "p2", "latitude": 39.5, "longitude": -74.25},
        {"patient_id": "p3", "zip": "19107"},
    ])
    out = link_addresses(history, {2020: squares({(0, 0): "420010000011"})},
                         zcta_boundaries={2010: zctas})
    assert out["zcta_geoid_2010"].tolist()[:2] == ["19107", "19103"]
    assert pd.isna(out["zcta_geoid_2010"].iloc[2])  # no crosswalk: a ZIP alone gives nothing
    assert out["zcta_geoid_2020"].isna().all()
    assert out["block_group_geoid_2020"].tolist()[:2] == ["420010000011"] * 2


def test_a_failed_geocoder_batch_is_its_own_reason():
    history = periods([
        {"patient_id": "p1", "street": "1 Main St", "geocode_missing": "geocoder_unavailable"},
        {"patient_id": "p2", "street": "2 Main St", "geocode_missing": "geocode_failed"},
    ])
    out = link_addresses(history, {2020: squares({(0, 0): "420010000011"})})
    assert out["link_missing"].tolist() == ["geocoder_unavailable", "geocode_failed"]


def test_timeline_patient_ids_are_raw_until_pseudonymized():
    out = link_addresses(periods([{"patient_id": "p1"}]), {2020: squares({(0, 0): "420010000011"})})
    assert out["patient_id_scheme"].tolist() == ["raw"]


# -- linkage_funnel and catalog -----------------------------------------------------------------


def test_linkage_funnel_counts_periods_and_patients():
    history = periods([
        {"patient_id": "p1", "valid_to": "2020-01-01", "latitude": 39.5, "longitude": -74.5},
        {"patient_id": "p1", "valid_from": "2020-01-01", "street": "PO Box 1"},
        {"patient_id": "p2", "latitude": 39.5, "longitude": -74.5},
        {"patient_id": "p3", "zip": "19107"},
        {"patient_id": "p4", "valid_to": "2020-01-01", "zip": "19107"},
        {"patient_id": "p4", "valid_from": "2020-01-01", "street": "1 Main St"},
    ])
    timeline = link_addresses(history, {2020: squares({(0, 0): "420010000011"})})
    funnel = linkage_funnel(timeline).set_index("outcome")
    assert list(funnel.index) == ["all", "linked", *LINK_MISSING_REASONS]
    none = dict.fromkeys(LINK_MISSING_REASONS, 0)
    assert funnel["address_periods"].to_dict() == {
        **none, "all": 6, "linked": 2, "po_box": 1, "zip_only": 2, "geocode_failed": 1}
    assert funnel["patients"].to_dict() == {
        **none, "all": 4, "linked": 2, "po_box": 1, "zip_only": 2, "geocode_failed": 1}
    assert funnel.loc["linked", "share_of_periods"] == pytest.approx(2 / 6)
    assert funnel["zip_fallback"].eq(0).all()


def test_linkage_funnel_counts_rejected_rows_in_the_shares(tmp_path):
    """5 input rows, 3 rejected (one with two problems): 40% linked, not 100%."""
    path = write_csv(tmp_path, [
        "p1,2019-01-01,,,,,,39.5,-74.5",
        "p2,2019-01-01,,,,,,39.5,-74.5",
        "p3,2019-02-30,,,,,,39.5,-74.5",  # unparseable date
        ",2019-01-01,,,,,1910,39.5,-74.5",  # no patient id and a bad ZIP: counted once
        "p5,2019-05-01,2019-01-01,,,,,39.5,-74.5",  # inverted interval
    ])
    accepted, rejects = read_address_history(path)
    assert len(accepted) == 2 and len(rejects) == 4
    timeline = link_addresses(accepted, {2020: squares({(0, 0): "420010000011"})})
    funnel = linkage_funnel(timeline, rejects=rejects).set_index("outcome")
    assert funnel.loc["all", "address_periods"] == 5
    assert funnel.loc["linked", "share_of_periods"] == pytest.approx(0.4)
    rejected = funnel[funnel["stage"] == "reading"]
    assert list(rejected.index) == [f"rejected_{r}" for r in REJECT_REASONS]
    assert rejected["address_periods"][lambda n: n > 0].to_dict() == {
        "rejected_missing_value": 1, "rejected_unparseable_date": 1, "rejected_inverted_interval": 1}
    assert rejected["address_periods"].sum() == 3
    assert funnel.loc["all", "patients"] == 4  # the row without an id adds no patient
    assert funnel["share_of_periods"].drop("all").sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("rejects", "match"), [
    (pd.DataFrame({"row": [2]}), r"rejects lack column\(s\) \['source_file', 'patient_id', 'reason'\]"),
    (pd.DataFrame({"source_file": ["a.csv"], "row": [2], "patient_id": ["p1"], "reason": ["odd"]}),
     r"unknown reason\(s\) \['odd'\]"),
])
def test_linkage_funnel_refuses_other_rejects(rejects, match):
    timeline = link_addresses(periods([{"patient_id": "p1", "latitude": 39.5, "longitude": -74.5}]),
                              {2020: squares({(0, 0): "420010000011"})})
    with pytest.raises(LinkageError, match=match):
        linkage_funnel(timeline, rejects=rejects)


def test_linkage_funnel_counts_zip_fallbacks(uds):
    history = periods([
        {"patient_id": "p1", "zip": "19107"},
        {"patient_id": "p2", "street": "1 Main St", "zip": "19107"},
        {"patient_id": "p3", "zip": "99999"},
    ])
    timeline = link_addresses(history, {2020: squares({(0, 0): "420010000011"})},
                              zip_crosswalk=uds)
    funnel = linkage_funnel(timeline).set_index("outcome")
    assert funnel.loc[["all", "zip_only", "geocode_failed", "zip_not_in_crosswalk"],
                      "zip_fallback"].tolist() == [2, 1, 1, 0]
    assert funnel.loc["zip_not_in_crosswalk", "address_periods"] == 1


@pytest.mark.parametrize(("timeline", "match"), [
    (pd.DataFrame({"patient_id": ["p1"]}),
     r"lacks column\(s\) \['link_missing', 'link_method'\]"),
    (pd.DataFrame({"patient_id": ["p1"], "link_missing": ["lost"], "link_method": ["none"]}),
     "unknown link_missing"),
])
def test_linkage_funnel_refuses_other_frames(timeline, match):
    with pytest.raises(LinkageError, match=match):
        linkage_funnel(timeline)


def test_link_reasons_are_catalog_reasons():
    assert set(LINK_MISSING_REASONS) <= set(load_catalog().missing_reasons)


# -- rejects tied to their run ------------------------------------------------------------------

BAD_DATE = "p9,2019-13-01,,2 Main St,Philadelphia,PA,19107,38.5,-77.5"
BAD_ZIP = "p8,2019-01-01,,3 Main St,Philadelphia,PA,1910,38.5,-77.5"
# A link run in a child process that SIGKILLs itself inside validation, after it wrote its
# rejects and staged its timeline. argv: history, 2010 and 2020 block groups, workspace.
KILLED_LINK = r"""
import os, signal, sys
import ingestion.gate.publish
from ingestion.jobs.pipeline import link_history_file
from ingestion.core.workspace import Workspace

ingestion.gate.publish.validate = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
history, bg2010, bg2020, workspace = sys.argv[1:5]
link_history_file(history, {2010: bg2010, 2020: bg2020}, workspace=Workspace(workspace))
"""


@pytest.fixture
def link_run(tmp_path):
    """Run a link of address lines in-process (or killed in validation, in a child)."""
    import os
    import subprocess
    import sys

    from ingestion.core.workspace import Workspace
    from ingestion.jobs.pipeline import link_history_file

    bg = {}
    for year, geoid in ((2010, "110010001001"), (2020, "110019800001")):
        bg[year] = tmp_path / f"bg{year}.geojson"
        gpd.GeoDataFrame({"GEOID": [geoid]}, geometry=[shapely.box(-75, 39, -74, 40)],
                         crs=4269).to_file(bg[year])
    ws = Workspace(tmp_path / "ws")

    def run(lines: list[str], *, killed: bool = False):
        history = write_csv(tmp_path, lines, name=f"history{len(lines)}{killed}.csv")
        if not killed:
            return link_history_file(history, bg, workspace=ws)
        root = Path(__file__).resolve().parents[1]
        done = subprocess.run([sys.executable, "-c", KILLED_LINK, str(history), str(bg[2010]),
                               str(bg[2020]), str(ws.root)], cwd=root, capture_output=True,
                              env={**os.environ, "PYTHONPATH": str(root)}, check=False)
        assert done.returncode == -9, done.stderr.decode()
        return None

    return ws, run


def test_rejects_describe_the_published_run_and_a_killed_run_leaves_none(link_run):
    from ingestion.gate.publish import published_runs
    from ingestion.gate.rejects import read_published_rejects

    ws, run = link_run
    latest = ws.outputs / "address_rejects.csv"
    first = run([GOOD, BAD_DATE])
    assert first.rejects_path == ws.outputs / "address_rejects" / f"{first.published.run_id}.csv"
    assert latest.resolve() == first.rejects_path
    assert read_published_rejects(ws)["reason"].tolist() == ["unparseable_date"]

    run([GOOD, BAD_DATE, BAD_ZIP], killed=True)  # killed in validation: its rejects are not served
    assert read_published_rejects(ws)["reason"].tolist() == ["unparseable_date"]
    assert pd.read_csv(latest)["reason"].tolist() == ["unparseable_date"]
    assert any(ws.staging.rglob("*.parquet"))  # the killed run's staged timeline, for now

    second = run([GOOD])  # rejects nothing: the pointer must not keep describing the first run
    assert second.rejects_path is None and second.n_rejected == 0
    assert read_published_rejects(ws).empty and pd.read_csv(latest).empty
    kept = sorted(p.stem for p in (ws.outputs / "address_rejects").iterdir())
    assert kept == sorted(published_runs("patient_geography", ws))  # the killed run's are gone
    assert not any(ws.staging.rglob("*.parquet"))


def test_no_published_rejects_without_a_timeline(tmp_path):
    from ingestion.core.workspace import Workspace
    from ingestion.gate.rejects import read_published_rejects

    assert read_published_rejects(Workspace(tmp_path)) is None
