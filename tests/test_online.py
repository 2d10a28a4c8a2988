"""Online lookups by patient and by location (feature_repo.serving.online) on the hand-built region."""

import datetime as dt

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from feature_repo import OnlineLookup, online_features_at
from feature_repo.serving.retrieval import feast_online_features
from ingestion.core.errors import InputError

UTC = dt.UTC
# Records hold None where retrieval's frames hold NaN in object columns: both mean missing.
pytestmark = pytest.mark.filterwarnings("ignore:Mismatched null-like values")


def at(text: str) -> dt.datetime:
    return pd.Timestamp(text, tz="UTC").to_pydatetime()


@pytest.fixture
def served(hand_built_store):
    """(store, ws) of the hand-built region: the root conftest's, read-only, shared by the session."""
    store, ws, _ = hand_built_store
    return store, ws


# A square around (39.5, -75.5): block group 990010003001 on 2010 boundaries, 990010003011 on 2020.
BOUNDARIES = {
    2010: gpd.GeoDataFrame({"geoid": ["990010003001"]}, geometry=[shapely.box(-76, 39, -75, 40)], crs=4269),
    2020: gpd.GeoDataFrame({"geoid": ["990010003011"]}, geometry=[shapely.box(-76, 39, -75, 40)], crs=4269),
}


@pytest.mark.parametrize("now", ["2020-06-01", "2021-06-01", "2022-07-01", "2023-01-01"])
def test_patient_lookup_equals_feasts_own_read_path(served, now):
    store, ws = served
    ids = ["A", "B", "C", "D", "A"]
    lookup = OnlineLookup(store, ws)
    got = lookup.frame(lookup.patients(ids, at=at(now)))
    expected = feast_online_features(ids, store=store, workspace=ws, at=at(now))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_patient_lookup_gives_values_and_reasons(served):
    store, ws = served
    a, b, c, d = OnlineLookup(store, ws).patients(["A", "B", "C", "D"], at=at("2022-07-01"))
    assert (a["acs_tract__geoid"], a["acs_tract__vintage"], a["acs_tract__pct_below_poverty"]) == \
        ("99001000100", 2020, 6.0)
    assert a["acs_state__pct_below_poverty"] == 2.0
    assert b["acs_tract__pct_below_poverty"] is None
    assert b["acs_tract__pct_below_poverty_missing"] == "po_box"
    assert c["acs_state__pct_below_poverty_missing"] == "no_address_at_event"  # period ended
    assert d["acs_state__pct_below_poverty_missing"] == "unknown_patient"  # never in the timeline
    # Every missing value has a reason, for every measure.
    for record in (a, b, c, d):
        for name, value in record.items():
            if name.endswith("_missing"):
                assert value is not None or record[name.removesuffix("_missing")] is not None, name


@pytest.mark.parametrize("n", [1, 40])
def test_one_read_per_hop_whatever_the_number_of_patients(served, n):
    store, ws = served
    lookup = OnlineLookup(store, ws)
    reads = []
    original = lookup.reader.read
    lookup.reader.read = lambda batch: reads.append(batch) or original(batch)
    lookup.patients(["A", "C", "B"] * n, at=at("2020-12-15"))
    assert len(reads) == 2  # hop 1, then every area view at once
    hop1, hop2 = reads
    assert len(hop1) == 1 and len(hop1[0][1]) == 3 * n
    tract = next(keys for view, keys, _ in hop2 if view.name == "acs_tract")
    assert tract == [("99001000100", 2019), ("99001000300", 2019)]  # distinct keys; B has none


@pytest.mark.parametrize(("location", "year", "now", "tract", "state"), [
    ("99001000100", None, "2022-07-01", (6.0, None), (2.0, None)),
    ("990010001001", None, "2022-07-01", (6.0, None), (2.0, None)),  # a block group's tract
    ("99001000100", None, "2023-01-01", (None, "geography_not_in_vintage"), (3.0, None)),
    ("99001000300", 2010, "2021-06-01", (10.0, None), (1.0, None)),
    ("99001000300", 2010, "2022-07-01", (None, "geoid_of_other_boundary_vintage"),
     (None, "geoid_of_other_boundary_vintage")),
    ("99001", None, "2022-07-01", (None, "location_coarser_than_level"), (2.0, None)),
    ("99", None, "2020-06-01", (None, "not_yet_released"), (None, "not_yet_released")),
])
def test_location_lookup_by_geoid(served, location, year, now, tract, state):
    store, ws = served
    [row] = OnlineLookup(store, ws).locations([location], boundary_year=year, at=at(now))
    assert row["location"] == location
    assert (row["acs_tract__pct_below_poverty"], row["acs_tract__pct_below_poverty_missing"]) == tract
    assert (row["acs_state__pct_below_poverty"], row["acs_state__pct_below_poverty_missing"]) == state


def test_location_lookup_by_coordinates(served):
    store, ws = served
    frame = online_features_at([(39.5, -75.5), (10.0, 10.0), "99001000302"], store=store, workspace=ws,
                               boundaries=BOUNDARIES, at=at("2022-07-01"))
    assert frame["location"].tolist() == ["39.5,-75.5", "10.0,10.0", "99001000302"]
    assert frame["acs_tract__geoid"].tolist() == ["99001000301", None, "99001000302"]
    assert frame["acs_tract__pct_below_poverty"].tolist()[::2] == [20.0, 30.0]
    assert frame.loc[1, "acs_tract__pct_below_poverty_missing"] == "outside_boundaries"
    assert frame["acs_tract__vintage"].dtype == "Int64"


def test_one_location_gives_one_row(served):
    store, ws = served
    frame = online_features_at("99001000100", store=store, workspace=ws, at=at("2022-07-01"))
    assert frame.shape[0] == 1 and frame.loc[0, "acs_tract__pct_below_poverty"] == 6.0


@pytest.mark.parametrize(("locations", "kwargs", "match"), [
    (["9900100010"], {}, "is not a GEOID: give 12 digits"),
    (["99001-00100"], {}, "is not a GEOID"),
    ([(39.5, -75.5)], {}, "need block-group boundaries"),
    ([(139.5, -75.5)], {"boundaries": BOUNDARIES}, "pass \\(latitude, longitude\\)"),
    ([("x", 1)], {"boundaries": BOUNDARIES}, "neither a GEOID string nor"),
    (["99001000100"], {"boundary_year": 2015}, "boundary_year must be one of"),
    (["99001000100"], {"at": dt.datetime(2022, 1, 1)}, "has no time zone"),
])
def test_bad_locations_say_what_to_give(served, locations, kwargs, match):
    store, ws = served
    boundaries = kwargs.pop("boundaries", None)
    with pytest.raises(InputError, match=match):
        OnlineLookup(store, ws, boundaries=boundaries).locations(locations, **kwargs)
