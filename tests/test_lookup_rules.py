"""Which GEOID and vintage a patient reads at t (serving.lookup_rules), by hand and on every path.

The hand-built region (tests/hand_built.py): ACS 2019 released 2020-12-10 on 2010 tracts, 2020
released 2022-03-17 and 2021 released 2022-12-08 on 2020 tracts. A lives in tract 000300/000301
until 2022-06-01, then in 000100 (no 2021 row); B is a PO box; C lives in 000300/000302 until
2021-01-01; E is known by a ZIP linked to ZCTA 99101; D is not in the timeline.
"""

import contextlib
import datetime as dt
import importlib.util
import os
import uuid

import numpy as np
import pandas as pd
import pytest
import yaml
from redis_server import RedisServer

from feature_repo import OnlineLookup, apply_definitions, feature_store, materialize, training_frame
from feature_repo.serving.lookup_rules import (
    NO_ADDRESS,
    UNKNOWN_PATIENT,
    ViewPlan,
    address_reason,
    address_reasons,
    area_read,
    missing_reason,
    period_ended,
    read_keys,
)
from feature_repo.serving.store import render_profile
from ingestion.core.settings import default_worker_python
from ingestion.core.workspace import Workspace

UTC = dt.UTC
T = pd.Timestamp("2022-06-01", tz="UTC")


@pytest.mark.parametrize(("valid_to", "ended"), [
    (T, True),  # valid_to is exclusive: the period is over at valid_to itself
    (T - pd.Timedelta("1us"), True),
    (T + pd.Timedelta("1us"), False),
    (None, False),  # an open period
    (pd.NaT, False),
])
def test_a_period_ends_at_its_valid_to(valid_to, ended):
    assert period_ended(valid_to, T) is ended


@pytest.mark.parametrize(("known", "found", "ended", "link", "reason"), [
    (False, False, False, None, UNKNOWN_PATIENT),
    (False, True, False, "po_box", UNKNOWN_PATIENT),  # unknown wins over anything read
    (True, False, False, None, NO_ADDRESS),  # no period starts on or before t
    (True, True, True, "po_box", NO_ADDRESS),  # the period has ended
    (True, True, False, "po_box", "po_box"),
    (True, True, False, None, None),
])
def test_address_reason(known, found, ended, link, reason):
    assert address_reason(known=known, found=found, ended=ended, link_missing=link) == reason


@pytest.mark.parametrize(("address", "released", "found", "level", "why", "answer"), [
    (None, False, True, "tract", None, (False, "not_yet_released")),
    (NO_ADDRESS, False, False, "tract", None, (False, "not_yet_released")),
    (NO_ADDRESS, True, False, "tract", None, (False, NO_ADDRESS)),
    (UNKNOWN_PATIENT, True, False, "state", None, (False, UNKNOWN_PATIENT)),
    (None, True, True, "tract", None, (True, None)),
    ("zip_only", True, True, "zcta", None, (True, None)),  # a ZCTA is read despite the reason
    ("zip_only", True, False, "tract", None, (False, "zip_only")),
    (None, True, False, "tract", None, (False, "outside_boundaries")),
    (None, True, False, "zcta", None, (False, "level_not_linked")),
    (None, True, True, "tract", "location_coarser_than_level", (False, "location_coarser_than_level")),
])
def test_area_read(address, released, found, level, why, answer):
    assert area_read(address, released=released, geoid_found=found, level=level, geoid_missing=why) == answer


@pytest.mark.parametrize(("read", "stored", "value_missing", "row", "reason"), [
    (False, None, True, "po_box", "po_box"),
    (False, "insufficient_sample", True, "po_box", "po_box"),
    (True, None, True, None, "geography_not_in_vintage"),
    (True, "insufficient_sample", True, None, "insufficient_sample"),
    (True, None, False, None, None),
])
def test_missing_reason(read, stored, value_missing, row, reason):
    assert missing_reason(read=read, stored=stored, value_missing=value_missing, row_reason=row) == reason


CALENDAR = pd.DataFrame({"vintage": [2019, 2020, 2021], "boundary_year": [2010, 2020, 2020],
                         "release_ts": pd.to_datetime(["2020-12-10", "2022-03-17", "2022-12-08"], utc=True)})
TRACT = ViewPlan("acs_tract", "tract", ("pct_below_poverty", "pct_below_poverty_missing"), CALENDAR)
STATE = ViewPlan("acs_state", "state", ("pct_below_poverty",), CALENDAR)


@pytest.mark.parametrize(("at", "force"), [
    ("2020-12-09T23:59:59Z", None),  # nothing released yet
    ("2020-12-10T00:00:00Z", (2019, 2010)),  # released at that instant: in force
    ("2022-03-16T23:59:59Z", (2019, 2010)),  # 2020 not out yet: the earlier vintage
    ("2022-03-17T00:00:00Z", (2020, 2020)),
    ("2022-12-08T04:59:59+05:00", (2020, 2020)),  # the release day locally, still the eve in UTC
    ("2030-01-01T00:00:00Z", (2021, 2020)),
])
def test_the_vintage_in_force_and_its_boundary_year(at, force):
    assert TRACT.in_force_at(pd.Timestamp(at).to_pydatetime()) == force


def test_a_frame_of_cases_reads_each_geoid_of_its_vintage_boundaries():
    geo = pd.DataFrame({
        "tract_geoid_2010": ["99001000300", "99001000300", None, "99001000300", None],
        "tract_geoid_2020": ["99001000301", "99001000301", None, "99001000302", None],
        "county_geoid_2010": ["99001", "99001", None, "99001", None],
        "county_geoid_2020": ["99001", "99001", None, "99001", None],
        "link_method": ["point_in_polygon", "point_in_polygon", "none", "point_in_polygon", None],
        "valid_to": [None, None, None, "2021-01-01", None],
        "link_missing": [None, None, "po_box", None, None],
    })
    at = pd.Series(pd.to_datetime(["2021-06-01", "2022-06-01", "2022-06-01", "2021-01-01", "2022-06-01"],
                                  utc=True))
    address = address_reasons(geo, at, known=[True, True, True, True, False])
    assert address.tolist() == [None, None, "po_box", NO_ADDRESS, UNKNOWN_PATIENT]
    keys = read_keys(TRACT, geo, at, address)
    assert keys["tract_geoid"].tolist() == ["99001000300", "99001000301", None, None, None]
    assert keys["vintage"].tolist() == [2019, 2020, 2020, 2019, 2020]
    assert keys["row_reason"].tolist() == [None, None, "po_box", NO_ADDRESS, UNKNOWN_PATIENT]
    assert read_keys(STATE, geo, at, address)["state_geoid"].tolist() == ["99", "99", None, None, None]


# (patient, t) -> acs_tract's (vintage, GEOID, pct_below_poverty, its reason), by hand.
CASES = [
    ("C", "2020-06-01", None, None, np.nan, "not_yet_released"),
    ("C", "2020-12-10", 2019, "99001000300", 10.0, None),  # release instant: in force
    ("C", "2020-12-31T23:59:59", 2019, "99001000300", 10.0, None),
    ("C", "2021-01-01", None, None, np.nan, NO_ADDRESS),  # valid_to itself: ended
    ("B", "2021-06-01", None, None, np.nan, "po_box"),
    ("D", "2021-06-01", None, None, np.nan, UNKNOWN_PATIENT),
    ("E", "2022-03-16", None, None, np.nan, "zip_only"),
    ("E", "2022-03-17", None, None, np.nan, "zip_only"),
    ("C", "2022-03-17", None, None, np.nan, NO_ADDRESS),
    ("A", "2022-06-01", 2020, "99001000100", 6.0, None),  # valid_from itself: in force
    ("A", "2022-12-07T23:59:59", 2020, "99001000100", 6.0, None),
    ("A", "2022-12-08", 2021, "99001000100", np.nan, "geography_not_in_vintage"),
    ("B", "2023-06-01", None, None, np.nan, "po_box"),
    ("D", "2023-06-01", None, None, np.nan, UNKNOWN_PATIENT),
]
# The ZIP-only patient reads its ZCTA: 2019 until 2022-03-17, then 2020.
ZCTA = {("E", "2022-03-16"): (2019, 40.0), ("E", "2022-03-17"): (2020, 41.0)}


@pytest.fixture(scope="module")
def served(tmp_path_factory, hand_built_copy):
    ws = hand_built_copy(tmp_path_factory.mktemp("rules"))
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=dt.datetime(2026, 1, 1, tzinfo=UTC), progress=False)
    return store, ws


@pytest.fixture(scope="module")
def events():
    times = pd.to_datetime([c[1] for c in CASES], utc=True, format="ISO8601")
    return pd.DataFrame({"patient_id": [c[0] for c in CASES], "event_timestamp": times})


@pytest.fixture(scope="module")
def frame(served, events):
    store, ws = served
    return training_frame(events, store=store, workspace=ws)


def test_the_training_frame_gives_the_hand_computed_answers(frame):
    expected = pd.DataFrame(
        [c[2:] for c in CASES],
        columns=["acs_tract__vintage", "acs_tract__geoid", "acs_tract__pct_below_poverty",
                 "acs_tract__pct_below_poverty_missing"]).astype({"acs_tract__vintage": "Int64"})
    pd.testing.assert_frame_equal(frame[expected.columns], expected)
    zcta = frame.set_index([frame["patient_id"], frame["event_timestamp"].dt.strftime("%Y-%m-%d")])
    for key, answer in ZCTA.items():
        assert tuple(zcta.loc[key, ["acs_zcta__vintage", "acs_zcta__pct_below_poverty"]]) == answer
    assert frame.loc[frame["patient_id"] == "A", "acs_state__geoid"].unique().tolist() == ["99"]


def _online(lookup: OnlineLookup, events: pd.DataFrame) -> pd.DataFrame:
    """The online answers for every event: one lookup per distinct time, all its patients at once."""
    records = {}
    for at, group in events.groupby("event_timestamp"):
        found = lookup.patients(group["patient_id"].tolist(), at=at.to_pydatetime())
        records |= dict(zip(group.index, found, strict=True))
    return lookup.frame([records[i] for i in events.index])


def _feature_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The answer columns, with one null per column (online records hold None, frames NaN)."""
    answers = frame[[c for c in frame.columns if "__" in c]].astype(object)
    return answers.where(answers.notna(), None)


def test_online_lookups_answer_as_the_training_frame(served, events, frame):
    """Online reads the latest address period, so each event is at or after its patient's last move."""
    store, ws = served
    online = _online(OnlineLookup(store, ws), events)
    pd.testing.assert_frame_equal(_feature_columns(online), _feature_columns(frame))


@contextlib.contextmanager
def _spark_store(ws: Workspace, redis: RedisServer):
    settings = {"SDOH_PROFILE": "spark", "SDOH_PROJECT": f"sdoh_rules_{uuid.uuid4().hex[:8]}",
                "SDOH_REDIS": redis.address}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        store = feature_store(ws, profile="spark")
        apply_definitions(store, ws)
        yield store


@pytest.mark.spark
@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark is not installed")
def test_spark_answers_as_the_training_frame(events, frame, tmp_path, hand_built_copy):
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    from feature_repo.serving.spark import spark_training_frame

    ws = hand_built_copy(tmp_path / "ws")
    conf = yaml.safe_load(render_profile(ws, "spark"))["offline_store"]["spark_conf"]
    default_worker_python(os.environ)
    SparkSession.builder.config(conf=SparkConf().setAll(list(conf.items()))).getOrCreate()
    redis = RedisServer(tmp_path / "redis").start()
    try:
        with _spark_store(ws, redis) as store:
            got = spark_training_frame(events, store=store, workspace=ws).toPandas()
    finally:
        redis.stop()
    pd.testing.assert_frame_equal(_feature_columns(got), _feature_columns(frame))
