"""Screened needs at t (serving.lookup_rules rule 5): the day before, on and after an answer.

A food-insecurity answer effective at E = 2022-03-15 14:30 UTC, look-back 365 days: it counts
from E itself; 365 days after E it still counts (the boundary is inclusive); one microsecond
later it is stale.
"""

import numpy as np
import pandas as pd
import pytest

from feature_repo.serving.lookup_rules import (
    NOT_SCREENED,
    SCREENING_STALE,
    answer_age_days,
    answer_stale,
    screening_state,
    screening_states_at,
)
from sdoh_sources import load_catalog

E = pd.Timestamp("2022-03-15 14:30", tz="UTC")
DAY = pd.Timedelta(days=1)
LOOKBACK = 365
EDGE = E + LOOKBACK * DAY


@pytest.mark.parametrize(("stored", "at", "state", "age"), [
    # The day before the answer there is no row in force: the join hands the rule nothing.
    (None, E - DAY, NOT_SCREENED, None),
    ("positive", E, "positive", 0.0),
    ("positive", E + DAY, "positive", 1.0),
    ("negative", E + DAY / 2, "negative", 0.5),
    ("positive", EDGE, "positive", 365.0),
    ("positive", EDGE + pd.Timedelta("1us"), SCREENING_STALE, 365 + 1 / 86_400_000_000),
    ("negative", EDGE + DAY, SCREENING_STALE, 366.0),
])
def test_an_answer_counts_from_its_time_until_the_look_back_ends(stored, at, state, age):
    screened_at = E if stored else None
    assert screening_state(stored, screened_at, at, lookback_days=LOOKBACK) == state
    assert answer_age_days(screened_at, at) == age


def test_the_look_back_boundary_is_inclusive_on_scalars_and_series():
    ages = pd.Series([0.0, 365.0, 365.000001, np.nan])
    assert answer_stale(ages, LOOKBACK).tolist() == [False, False, True, False]
    assert [answer_stale(a, LOOKBACK) for a in ages[:3]] == [False, False, True]


@pytest.mark.parametrize(("at", "state"), [
    (E, "declined"), (E + 200 * DAY, "declined"), (EDGE, "declined"),
    (EDGE + DAY, SCREENING_STALE),
])
def test_declined_stays_declined_until_stale(at, state):
    assert screening_state("declined", E, at, lookback_days=LOOKBACK) == state


def test_an_answer_after_t_is_not_in_force():
    # A row whose answer lies after t is a join error upstream; the rule still refuses it.
    assert answer_age_days(E, E - DAY) is None
    assert screening_state("positive", E, E - DAY, lookback_days=LOOKBACK) == NOT_SCREENED


@pytest.mark.parametrize("stored", [None, np.nan, NOT_SCREENED])
def test_never_screened_in_the_domain_or_unknown_patient(stored):
    # A row in force for another domain carries this domain as not_screened, no answer time.
    assert screening_state(stored, None, E, lookback_days=LOOKBACK) == NOT_SCREENED
    assert screening_state(stored, E, E + DAY, lookback_days=LOOKBACK) == NOT_SCREENED


@pytest.mark.parametrize("lookback", [30, 365, 730])
def test_the_look_back_is_the_domains_own(lookback):
    at = E + lookback * DAY
    assert screening_state("positive", E, at, lookback_days=lookback) == "positive"
    assert screening_state("positive", E, at + DAY, lookback_days=lookback) == SCREENING_STALE


def test_naive_times_are_read_as_utc():
    naive = E.tz_localize(None)
    assert answer_age_days(naive, E + DAY) == 1.0
    assert screening_state("positive", naive, EDGE, lookback_days=LOOKBACK) == "positive"


def test_the_frame_rule_agrees_with_the_one_case_rule_row_by_row():
    cases = [(None, None, E - DAY), ("positive", E, E), ("positive", E, E + DAY),
             ("declined", E, EDGE), ("declined", E, EDGE + pd.Timedelta("1us")),
             ("negative", E - 400 * DAY, E), (NOT_SCREENED, None, E), ("positive", E, E - DAY)]
    stored = pd.Series([c[0] for c in cases], index=range(10, 10 + len(cases)), dtype=object)
    screened_at = pd.Series(pd.to_datetime([c[1] for c in cases], utc=True))
    at = pd.Series(pd.to_datetime([c[2] for c in cases], utc=True))
    out = screening_states_at(stored, screened_at, at, lookback_days=LOOKBACK)
    assert list(out.index) == list(stored.index)
    assert out["state"].tolist() == [screening_state(s, a, t, lookback_days=LOOKBACK)
                                     for s, a, t in cases]
    expected = [answer_age_days(a, t) for _, a, t in cases]
    assert out["answer_age_days"].tolist() == pytest.approx(
        [np.nan if x is None else x for x in expected], nan_ok=True)


def test_the_frame_rule_keeps_nulls_apart_from_states():
    stored = pd.Series([None, "positive"] * 3, dtype=object)
    screened_at = pd.Series(pd.to_datetime([None, E] * 3, utc=True))
    at = pd.Series([E + DAY] * 6)
    out = screening_states_at(stored, screened_at, at, lookback_days=LOOKBACK)
    assert out["state"].tolist() == [NOT_SCREENED, "positive"] * 3
    assert out["answer_age_days"].isna().tolist() == [True, False] * 3


@pytest.mark.parametrize("reason", [NOT_SCREENED, SCREENING_STALE])
def test_the_reasons_are_in_the_catalog(reason):
    assert reason in load_catalog().missing_reasons
