"""Point-in-time semantics pinned on the hand-built region of tests/hand_built.py."""

import pandas as pd
import pytest

from feature_repo import (
    online_features,
    training_frame,
    write_training_frame,
)
from ingestion.core.errors import InputError

# pandas 3 turns these into errors (a frame mixing None and NaN in one column warns on compare).
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")


@pytest.fixture
def served(hand_built_store):
    """(store, ws) of the hand-built region: the root conftest's, shared with the doctests."""
    store, ws, _ = hand_built_store
    return store, ws


CASES = [
    # patient, event time, expected value, expected reason, why
    ("A", "2020-06-01T12:00:00Z", None, "not_yet_released", "before the first release"),
    ("A", "2020-12-09T23:59:59Z", None, "not_yet_released", "one second before the release"),
    ("A", "2020-12-10T00:00:00Z", 10.0, None, "at the release instant: 2019 on 2010 tracts"),
    ("A", "2022-03-16T23:59:59Z", 10.0, None, "still 2019 and the 2010 tract"),
    ("A", "2022-03-17T00:00:00Z", 20.0, None, "2020 vintage switches to the 2020 tract 000301"),
    ("A", "2022-05-31T23:00:00Z", 20.0, None, "the old address the evening before the move"),
    ("A", "2022-06-01T09:00:00Z", 6.0, None, "moved that morning: the new address's tract"),
    ("A", "2022-12-08T00:00:00Z", None, "geography_not_in_vintage", "000100 has no 2021 row"),
    ("B", "2022-06-01T00:00:00Z", None, "po_box", "a PO box is never linked"),
    ("C", "2020-12-15T00:00:00Z", 10.0, None, "address still valid"),
    ("C", "2021-06-01T00:00:00Z", None, "no_address_at_event", "address period ended"),
    ("D", "2022-06-01T00:00:00Z", None, "unknown_patient", "an id the timeline never held"),
    ("E", "2022-06-01T00:00:00Z", None, "zip_only", "a ZIP never gives a tract"),
]


def case_events() -> pd.DataFrame:
    """One event per case of CASES, in order, with an extra column the frame must keep."""
    return pd.DataFrame({"patient_id": [c[0] for c in CASES], "event_timestamp": [c[1] for c in CASES],
                         "outcome": range(len(CASES))})


@pytest.fixture(scope="module")
def shared_case_frame(hand_built_store):
    """The training frame of `case_events`, built once: one Feast call for every case."""
    store, ws, _ = hand_built_store
    return training_frame(case_events(), store=store, workspace=ws)


@pytest.fixture
def case_frame(shared_case_frame):
    """A copy of the module's case frame (row i is CASES[i]), so no test changes another's."""
    return shared_case_frame.copy()


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[4] for c in CASES])
def test_training_frame_point_in_time(case_frame, case):
    patient, at, value, reason, why = CASES[case]
    row = case_frame.iloc[case]
    assert (row["patient_id"], row["event_timestamp"]) == (patient, pd.Timestamp(at)), why
    got = row["acs_tract__pct_below_poverty"]
    if value is None:
        assert pd.isna(got), why
    else:
        assert got == value, why
    got_reason = row["acs_tract__pct_below_poverty_missing"]
    assert (got_reason if pd.notna(got_reason) else None) == reason, why


def test_training_frame_keeps_event_order_and_extra_columns(case_frame):
    frame = case_frame
    assert frame["outcome"].tolist() == list(range(len(CASES)))
    got = frame["acs_tract__pct_below_poverty"].tolist()
    assert [None if pd.isna(g) else g for g in got] == [c[2] for c in CASES]
    assert frame.loc[4, "acs_tract__geoid"] == "99001000301"
    assert frame.loc[4, "acs_tract__vintage"] == 2020


def test_training_frame_equals_feasts_own_join_for_looked_up_rows(served, case_frame):
    store, ws = served
    frame = case_frame
    looked_up = frame[frame["acs_tract__geoid"].notna()]
    entity_df = pd.DataFrame({"tract_geoid": looked_up["acs_tract__geoid"],
                              "vintage": looked_up["acs_tract__vintage"].astype("int64"),
                              "event_timestamp": looked_up["event_timestamp"], "_row": looked_up.index})
    feast_df = store.get_historical_features(entity_df=entity_df, features=["acs_tract:pct_below_poverty"]) \
        .to_df().set_index("_row").sort_index()
    pd.testing.assert_series_equal(looked_up["acs_tract__pct_below_poverty"],
                                   feast_df["pct_below_poverty"], check_names=False)


def test_written_frame_in_chunks_equals_the_frame(served, case_frame, tmp_path):
    store, ws = served
    # Chunks of 3 events: a chunk of only patient B reads no tract at all (its columns all null).
    path = write_training_frame(case_events(), tmp_path / "frame.parquet", store=store, workspace=ws,
                                chunk_events=3)
    expected = case_frame
    # Nulls compare strictly (one null per column in both paths); the written file carries no
    # pandas metadata, so a nullable Int64 vintage reads back as float64.
    vintages = dict.fromkeys([c for c in expected if c.endswith("__vintage")], "float64")
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected.astype(vintages))
    assert [p.name for p in tmp_path.iterdir()] == ["frame.parquet"]


def test_event_times_in_mixed_formats_are_parsed_row_by_row(served):
    store, ws = served
    events = pd.DataFrame({"patient_id": ["A", "A"],
                           "event_timestamp": ["2022-03-17", "2022-06-01T09:00:00Z"]})
    frame = training_frame(events, store=store, workspace=ws)
    assert frame["acs_tract__pct_below_poverty"].tolist() == [20.0, 6.0]


def test_failed_write_keeps_the_previous_frame(served, tmp_path):
    store, ws = served
    path = tmp_path / "frame.parquet"
    path.write_bytes(b"the frame a model was trained on")
    bad = pd.DataFrame({"patient_id": ["A", "A"], "event_timestamp": ["2021-01-01", "not a time"]})
    with pytest.raises(InputError, match="row 1: event_timestamp"):
        write_training_frame(bad, path, store=store, workspace=ws)
    assert path.read_bytes() == b"the frame a model was trained on"
    assert [p.name for p in tmp_path.iterdir()] == ["frame.parquet"]


def test_state_is_read_through_the_county_prefix(served):
    store, ws = served
    cases = [("2021-01-01", 1.0), ("2022-06-01", 2.0), ("2023-01-01", 3.0)]  # event time, state value
    events = pd.DataFrame({"patient_id": ["A"] * len(cases), "event_timestamp": [c[0] for c in cases]})
    frame = training_frame(events, store=store, workspace=ws)
    for (at, value), (_, row) in zip(cases, frame.iterrows(), strict=True):
        assert (row["acs_state__geoid"], row["acs_state__pct_below_poverty"]) == ("99", value), at


def test_online_lookup_uses_current_address_and_vintage(served):
    store, ws = served
    at = pd.Timestamp("2023-06-01", tz="UTC").to_pydatetime()
    frame = online_features(["A", "B", "C"], store=store, workspace=ws, at=at)
    a, b, c = (frame.iloc[i] for i in range(3))
    # A lives in 000100 since 2022-06; the 2021 vintage is in force and has no row for it.
    assert a["acs_tract__geoid"] == "99001000100" and a["acs_tract__vintage"] == 2021
    assert a["acs_tract__pct_below_poverty_missing"] == "geography_not_in_vintage"
    assert b["acs_tract__pct_below_poverty_missing"] == "po_box"
    assert c["acs_tract__pct_below_poverty_missing"] == "no_address_at_event"


def test_online_lookup_before_the_move(served):
    store, ws = served
    # The online store keeps each patient's latest period, so "now" must be after it began.
    at = pd.Timestamp("2022-07-01", tz="UTC").to_pydatetime()
    row = online_features(["A"], store=store, workspace=ws, at=at).iloc[0]
    assert row["acs_tract__vintage"] == 2020
    assert row["acs_tract__pct_below_poverty"] == 6.0


ZIP_CASES = [
    # patient, event time, expected ZCTA value, expected reason
    ("E", "2020-06-01", None, "not_yet_released"),
    ("E", "2021-01-01", 40.0, None),   # 2019 vintage on 2010 ZCTAs
    ("E", "2023-01-01", 42.0, None),
    ("A", "2023-01-01", None, "level_not_linked"),  # linked by a point, without ZCTA polygons
    ("B", "2023-01-01", None, "po_box"),
]


@pytest.fixture(scope="module")
def zip_frame(hand_built_store):
    """The training frame of every ZIP_CASES event, built once (row i is ZIP_CASES[i])."""
    store, ws, _ = hand_built_store
    events = pd.DataFrame({"patient_id": [c[0] for c in ZIP_CASES],
                           "event_timestamp": [c[1] for c in ZIP_CASES]})
    return training_frame(events, store=store, workspace=ws)


@pytest.mark.parametrize("case", range(len(ZIP_CASES)), ids=["-".join(c[:2]) for c in ZIP_CASES])
def test_zip_only_patients_get_zcta_features_and_nothing_finer(served, zip_frame, case):
    store, ws = served
    patient, at, value, reason = ZIP_CASES[case]
    row = zip_frame.iloc[case]
    assert (row["patient_id"], row["event_timestamp"]) == (patient, pd.Timestamp(at, tz="UTC"))
    online = online_features([patient], store=store, workspace=ws,
                             at=pd.Timestamp(at, tz="UTC").to_pydatetime()).iloc[0]
    for got in (row, online):
        assert (None if pd.isna(got["acs_zcta__pct_below_poverty"]) else
                got["acs_zcta__pct_below_poverty"]) == value
        missing = got["acs_zcta__pct_below_poverty_missing"]
        assert (None if pd.isna(missing) else missing) == reason
    if patient == "E" and value is not None:
        assert row["acs_zcta__geoid"] == "99101"
        assert row["acs_tract__pct_below_poverty_missing"] == "zip_only"
        assert online["acs_tract__pct_below_poverty_missing"] == "zip_only"
