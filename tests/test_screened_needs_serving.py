"""Screened needs served next to the area features: training frames and online lookups.

The hand-built region gains screening answers for patient A (Hunger Vital Sign positive on
2022-06-15, negative on 2023-09-01; PRAPARE housing declined on 2022-06-15), published
through the gate. Events the day before, on and after each answer, and past the look-back,
read the hand-computed states through Feast's point-in-time join and rule 5.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from feature_repo import OnlineLookup, apply_definitions, feature_store, materialize, training_frame
from feature_repo.serving.retrieval import feast_online_features
from ingestion.core.datasets import screened_needs_spec
from ingestion.derive.screening import screening_states
from ingestion.gate.publish import publish

UTC = dt.UTC
LOINC = "http://loinc.org"
ANSWERS = pd.DataFrame([
    # patient, effective time, instrument, item, answer code, answer text
    ("A", "2022-06-15T10:00:00Z", "88121-9", "88122-7", "LA28397-0", "Often true"),
    ("A", "2022-06-15T10:00:00Z", "88121-9", "88123-5", "LA28398-8", "Never true"),
    ("A", "2022-06-15T10:00:00Z", "93025-5", "71802-3", "LA30122-8", "I choose not to answer this question"),
    ("A", "2023-09-01T10:00:00Z", "88121-9", "88122-7", "LA28398-8", "Never true"),
    ("A", "2023-09-01T10:00:00Z", "88121-9", "88123-5", "LA28398-8", "Never true"),
], columns=["patient_id", "effective_time", "instrument", "item_code", "answer_code", "answer_text"])


def answers() -> pd.DataFrame:
    frame = ANSWERS.assign(effective_time=pd.to_datetime(ANSWERS["effective_time"], utc=True),
                           item_system=LOINC, answer_system=LOINC, record="test")
    return frame[["patient_id", "effective_time", "instrument", "item_system", "item_code",
                  "answer_system", "answer_code", "answer_text", "record"]]


@pytest.fixture(scope="module")
def served(tmp_path_factory, hand_built_copy):
    ws = hand_built_copy(tmp_path_factory.mktemp("screened"))
    conditions = pd.DataFrame(columns=["patient_id", "code_system", "code", "onset", "abatement",
                                       "recorded", "record"])
    states, _ = screening_states(answers(), conditions)
    publish(states.assign(patient_id_scheme="raw"), screened_needs_spec(), ws)
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=dt.datetime(2026, 1, 1, tzinfo=UTC), progress=False)
    return store, ws


# event time, food insecurity state, its age in days, housing state
CASES = [
    ("2022-06-14T10:00:00Z", "not_screened", None, "not_screened"),  # the day before
    ("2022-06-15T10:00:00Z", "positive", 0.0, "declined"),  # at the effective time
    ("2022-06-16T10:00:00Z", "positive", 1.0, "declined"),  # the day after
    ("2023-06-15T10:00:00Z", "positive", 365.0, "declined"),  # exactly the look-back: counts
    ("2023-06-16T10:00:00Z", "screening_stale", 366.0, "screening_stale"),
    ("2023-09-01T10:00:00Z", "negative", 0.0, "screening_stale"),  # a newer answer replaces
]


@pytest.fixture(scope="module")
def frame(served):
    store, ws = served
    events = pd.DataFrame({"patient_id": ["A"] * len(CASES) + ["D"],
                           "event_timestamp": pd.to_datetime([c[0] for c in CASES] + ["2023-01-01T00:00:00Z"],
                                                             utc=True)})
    return training_frame(events, store=store, workspace=ws)


@pytest.mark.parametrize("row", range(len(CASES)), ids=[c[0][:10] for c in CASES])
def test_training_frame_reads_the_state_in_force(frame, row):
    _, food, age, housing = CASES[row]
    got = frame.iloc[row]
    assert got["screened_needs__food_insecurity_state"] == food
    assert got["screened_needs__housing_instability_state"] == housing
    if age is None:
        assert pd.isna(got["screened_needs__food_insecurity_answer_age_days"])
    else:
        assert got["screened_needs__food_insecurity_answer_age_days"] == pytest.approx(age)
        assert got["screened_needs__food_insecurity_instrument"] == "HVS"


def test_an_unknown_patient_is_not_screened(frame):
    assert frame.iloc[-1]["screened_needs__food_insecurity_state"] == "not_screened"


def test_area_features_are_still_there(frame):
    assert "acs_tract__pct_below_poverty" in frame.columns


def test_online_lookups_agree_with_the_frame(served):
    store, ws = served
    at = dt.datetime(2023, 9, 2, tzinfo=UTC)
    fast = OnlineLookup(store, ws).patients(["A"], at=at)[0]
    sdk = feast_online_features(["A"], store=store, workspace=ws, at=at).iloc[0]
    for record in (fast, sdk):
        assert record["screened_needs__food_insecurity_state"] == "negative"
        assert record["screened_needs__housing_instability_state"] == "screening_stale"  # 444 days
        assert record["screened_needs__food_insecurity_answer_age_days"] == pytest.approx(
            (pd.Timestamp(at) - pd.Timestamp("2023-09-01T10:00:00Z")).total_seconds() / 86400)
