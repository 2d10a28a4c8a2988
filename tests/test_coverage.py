"""Coverage analysis on a tiny hand-built frame; every expected value is worked out by hand.

The frame (feature ``v__x``; patients P1, P2 in group A and P3, P4, P5 in group B):

===  ===  ==========  =====  ================  ===========
row  pid  event       value  missing           reliability
===  ===  ==========  =====  ================  ===========
r0   P1   2020-01-01  1.0                      high
r1   P1   2021-01-01         po_box
r2   P2   2020-06-01         not_yet_released
r3   P2   2021-06-01  2.0                      low
r4   P3   2021-01-01         geocode_failed
r5   P3   2021-02-01  3.0                      medium
r6   P4   2021-03-01  4.0                      unknown
r7   P5   2021-04-01         geocode_failed
===  ===  ==========  =====  ================  ===========

Events, ``not_yet_released`` excluded: A = r0, r1, r3 (3 rows, 2 covered, missing 1/3, one of
two covered low); B = r4..r7 (4 rows, 2 covered, missing 1/2, one of two covered unknown).
B is the reference (largest): A's missing diff = 1/3 - 1/2 = -1/6, ratio = (1/3)/(1/2) = 2/3.
Patients at their latest event: P1 r1 (missing), P2 r3 (covered, low), P3 r5, P4 r6, P5 r7:
A 1 of 2 covered, B 2 of 3; B is the reference; A diff = 1/2 - 1/3 = 1/6, ratio 3/2.
"""

import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from equity.coverage import (
    age_band,
    coverage_table,
    describe_gaps,
    feature_coverage,
    fit_logistic,
    gaps_by_area,
    largest_gaps,
    missing_reasons_table,
    missingness_odds_ratios,
    wilson_interval,
)
from equity.coverage_report import (
    TABLE_BOX,
    all_missing,
    coverage_report,
    funnel_figure,
    headline_features,
    heatmaps,
    odds_ratio_figure,
)
from ingestion.cli import sdoh
from ingestion.core.errors import InputError

X = "v__x"


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["P1", "P1", "P2", "P2", "P3", "P3", "P4", "P5"],
        "event_timestamp": pd.to_datetime([
            "2020-01-01", "2021-01-01", "2020-06-01", "2021-06-01",
            "2021-01-01", "2021-02-01", "2021-03-01", "2021-04-01"], utc=True),
        X: [1.0, np.nan, np.nan, 2.0, np.nan, 3.0, 4.0, np.nan],
        f"{X}_missing": [None, "po_box", "not_yet_released", None,
                         "geocode_failed", None, None, "geocode_failed"],
        f"{X}_reliability": ["high", None, None, "low", None, "medium", "unknown", None],
    })


@pytest.fixture
def patients() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["P1", "P2", "P3", "P4", "P5"],
        "group": ["A", "A", "B", "B", "B"],
        "birth_date": ["2003-01-01", "1980-06-01", "1960-01-01", "1950-01-01", "2010-01-01"],
    })


def _row(table: pd.DataFrame, group: str) -> pd.Series:
    return table.set_index("group").loc[group]


# --- wilson_interval -------------------------------------------------------------------------

@pytest.mark.parametrize(("k", "n", "confidence", "expected"), [
    (8, 10, 0.95, (0.4902, 0.9433)),
    (0, 10, 0.95, (0.0, 0.2775)),
    (10, 10, 0.95, (0.7225, 1.0)),
    (2, 4, 0.95, (0.1500, 0.8500)),
    (2, 3, 0.95, (0.2077, 0.9385)),
    (8, 10, 0.90, (0.5408, 0.9314)),
])
def test_wilson_interval_matches_hand_computed_values(k, n, confidence, expected):
    low, high = wilson_interval(k, n, confidence=confidence)
    assert (round(float(low), 4), round(float(high), 4)) == expected


def test_wilson_interval_is_exact_at_the_ends_and_vectorised():
    low, high = wilson_interval(pd.Series([0, 8, 10]), np.array([10, 10, 10]))
    assert low.shape == high.shape == (3,)
    assert low[0] == 0.0 and high[2] == 1.0
    assert np.allclose([low[1], high[1]], [0.4902, 0.9433], atol=5e-5)


def test_wilson_interval_is_nan_without_trials():
    low, high = wilson_interval([0, 1], [0, 2])
    assert math.isnan(low[0]) and math.isnan(high[0])
    assert np.isclose(low[1], 0.0945, atol=5e-5)


@pytest.mark.parametrize(("k", "n", "confidence", "match"), [
    (11, 10, 0.95, "0 <= successes <= n"),
    (-1, 10, 0.95, "0 <= successes <= n"),
    (1, 10, 1.0, "strictly between 0 and 1"),
    (1, 10, 0.0, "strictly between 0 and 1"),
])
def test_wilson_interval_rejects_bad_input(k, n, confidence, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(k, n, confidence=confidence)


# --- age_band --------------------------------------------------------------------------------

@pytest.mark.parametrize(("born", "at", "expected"), [
    ("2000-06-15", "2018-06-14", "0-17"),   # the day before the 18th birthday
    ("2000-06-15", "2018-06-15", "18-34"),  # on it
    ("1953-01-02", "2018-01-01", "50-64"),  # 64 for one more day
    ("1938-01-01", "2018-01-01", "80+"),
])
def test_age_band_counts_completed_years(born, at, expected):
    assert age_band(pd.Series([born]), at).tolist() == [expected]


def test_age_band_is_ordered_and_nan_before_birth_or_without_date():
    bands = age_band(pd.Series(["2000-01-01", None, "2030-01-01"]),
                     pd.Series(pd.to_datetime(["2020-01-01"] * 3, utc=True)))
    assert bands.cat.ordered
    assert bands.iloc[0] == "18-34" and bands.iloc[1:].isna().all()


def test_age_band_rejects_edges_not_starting_at_zero():
    with pytest.raises(ValueError, match="start at 0"):
        age_band(pd.Series(["2000-01-01"]), "2020-01-01", edges=(18, 65))


# --- feature_coverage ------------------------------------------------------------------------

def test_event_coverage_rates_intervals_and_gap_to_reference(frame, patients):
    table = feature_coverage(frame, patients, feature=X, by="group")
    assert table["group"].tolist() == ["B", "A"]  # largest first
    assert table.attrs["reference"] == "B"
    a, b = _row(table, "A"), _row(table, "B")
    assert (a["n"], a["covered"], b["n"], b["covered"]) == (3, 2, 4, 2)
    assert a["coverage"] == pytest.approx(2 / 3) and b["missing_rate"] == pytest.approx(0.5)
    assert (round(a["coverage_low"], 4), round(a["coverage_high"], 4)) == (0.2077, 0.9385)
    assert (round(b["missing_low"], 4), round(b["missing_high"], 4)) == (0.15, 0.85)
    assert a["missing_diff"] == pytest.approx(-1 / 6)
    assert a["missing_ratio"] == pytest.approx(2 / 3)
    # Newcombe: -1/6 -/+ hypot of A's and B's Wilson arms (A missing 1/3 in (0.0615, 0.7923)).
    # low = -1/6 - sqrt((1/3 - 0.0615)^2 + (0.85 - 1/2)^2) = -0.6098
    # high = -1/6 + sqrt((0.7923 - 1/3)^2 + (1/2 - 0.15)^2) = 0.4105
    assert round(a["missing_diff_low"], 4) == -0.6098
    assert round(a["missing_diff_high"], 4) == 0.4105
    assert b["missing_diff"] == 0 and b["missing_ratio"] == 1 and b["is_reference"]
    assert np.isnan(b["missing_diff_low"]) and np.isnan(b["missing_diff_high"])
    assert a["low_reliability_rate"] == pytest.approx(0.5)  # r3 low of r0, r3
    assert b["low_reliability_rate"] == pytest.approx(0.5)  # r6 unknown of r5, r6
    assert a["top_missing_reasons"] == "po_box: 1"
    assert b["top_missing_reasons"] == "geocode_failed: 2"


def test_not_yet_released_rows_are_excluded_unless_asked(frame, patients):
    kept = feature_coverage(frame, patients, feature=X, by="group", exclude_reasons=())
    a = _row(kept, "A")
    assert (a["n"], a["covered"]) == (4, 2)
    assert a["top_missing_reasons"] == "not_yet_released: 1, po_box: 1"
    assert kept.attrs["reference"] == "A"  # A and B both have 4 rows: first by name


def test_patient_level_uses_each_patients_latest_event(frame, patients):
    table = feature_coverage(frame, patients, feature=X, by="group", unit="patient")
    a, b = _row(table, "A"), _row(table, "B")
    assert (a["n"], a["covered"], b["n"], b["covered"]) == (2, 1, 3, 2)
    assert table.attrs["reference"] == "B"
    assert a["missing_diff"] == pytest.approx(1 / 6)
    assert a["missing_ratio"] == pytest.approx(1.5)
    assert a["low_reliability_rate"] == 1.0  # P2's latest value (r3) is low
    assert b["top_missing_reasons"] == "geocode_failed: 1"  # P3's earlier failure is not latest


def test_low_reliability_share_has_wilson_interval_and_gap_to_reference(frame, patients):
    # Per patient: A's only covered value (P2's r3) is low: 1 of 1, Wilson (0.2065, 1);
    # B's covered r5 (medium) and r6 (unknown): 1 of 2, Wilson (0.0945, 0.9055).
    table = feature_coverage(frame, patients, feature=X, by="group", unit="patient")
    a, b = _row(table, "A"), _row(table, "B")
    assert (round(a["low_reliability_low"], 4), a["low_reliability_high"]) == (0.2065, 1.0)
    assert (round(b["low_reliability_low"], 4), round(b["low_reliability_high"], 4)) == (
        0.0945, 0.9055)
    assert a["low_reliability_diff"] == pytest.approx(0.5)
    assert a["low_reliability_ratio"] == pytest.approx(2.0)
    # Newcombe: 0.5 - hypot(1 - 0.2065, 0.9055 - 0.5) and 0.5 + hypot(1 - 1, 0.5 - 0.0945)
    assert round(a["low_reliability_diff_low"], 4) == -0.3910
    assert round(a["low_reliability_diff_high"], 4) == 0.9055
    assert b["low_reliability_ratio"] == 1 and np.isnan(b["low_reliability_diff_low"])


def test_low_reliability_interval_is_nan_without_reliability_column(frame, patients):
    table = feature_coverage(frame.drop(columns=f"{X}_reliability"), patients, feature=X, by="group")
    assert table[["low_reliability_low", "low_reliability_high", "low_reliability_ratio"]].isna().all().all()


def test_patient_level_does_not_depend_on_row_order(frame, patients):
    shuffled = frame.sample(frac=1, random_state=3)
    expected = feature_coverage(frame, patients, feature=X, by="group", unit="patient")
    pd.testing.assert_frame_equal(
        feature_coverage(shuffled, patients, feature=X, by="group", unit="patient"), expected)


def test_explicit_reference_and_zero_reference_rate(frame, patients):
    table = feature_coverage(frame, patients, feature=X, by="group", reference="A")
    assert _row(table, "B")["missing_ratio"] == pytest.approx(1.5)
    covered_only = frame.assign(**{X: 1.0, f"{X}_missing": None})
    table = feature_coverage(covered_only, patients, feature=X, by="group")
    assert table["missing_rate"].eq(0).all() and table["missing_ratio"].isna().all()


def test_without_reliability_column_the_rate_is_nan(frame, patients):
    table = feature_coverage(frame.drop(columns=f"{X}_reliability"), patients,
                             feature=X, by="group")
    assert table["low_reliability_rate"].isna().all()


def test_unknown_patients_and_empty_attributes_form_a_not_recorded_group(frame, patients):
    patients = patients.assign(group=["A", "A", "B", "B", None])
    extra = pd.DataFrame({"patient_id": ["P9"], "event_timestamp": pd.to_datetime(
        ["2021-05-01"], utc=True), X: [np.nan], f"{X}_missing": ["zip_only"]})
    table = feature_coverage(pd.concat([frame, extra], ignore_index=True), patients,
                             feature=X, by="group")
    row = _row(table, "(not recorded)")
    assert (row["n"], row["covered"]) == (2, 0)  # P5's r7 and P9
    assert row["top_missing_reasons"] == "geocode_failed: 1, zip_only: 1"


def test_age_band_groups_use_age_at_each_event(frame, patients):
    table = feature_coverage(frame, patients, feature=X, by="age_band", exclude_reasons=())
    # P1 (born 2003-01-01) is 17 at r0 and 18 at r1; P5 is 11; P2 40-41; P3 61; P4 71.
    counts = dict(zip(table["group"], table["n"], strict=True))
    assert counts == {"0-17": 2, "18-34": 1, "35-49": 2, "50-64": 2, "65-79": 1}
    assert table["group"].tolist() == list(counts)  # age order, not size order


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"feature": "v__nope", "by": "group"}, InputError, "v__nope"),
    ({"feature": X, "by": "payer"}, InputError, "payer"),
    ({"feature": X, "by": "group", "unit": "visit"}, ValueError, "unit must be one of"),
    ({"feature": X, "by": "group", "reference": "C"}, ValueError, "not a group"),
])
def test_feature_coverage_rejects_bad_arguments(frame, patients, kwargs, error, match):
    with pytest.raises(error, match=match):
        feature_coverage(frame, patients, **kwargs)


def test_duplicated_patients_are_refused(frame, patients):
    with pytest.raises(InputError, match="P1"):
        feature_coverage(frame, pd.concat([patients, patients.iloc[:1]]), feature=X, by="group")


def test_coverage_table_stacks_features_and_attributes(frame, patients):
    frame = frame.assign(w__y=1.0)
    table = coverage_table(frame, patients, features=[X, "w__y"], by=["group", "age_band"],
                           reference={"group": "A"})
    assert table[["feature", "by"]].drop_duplicates().values.tolist() == [
        [X, "group"], [X, "age_band"], ["w__y", "group"], ["w__y", "age_band"]]
    refs = table.loc[table["is_reference"] & table["by"].eq("group"), "group"]
    assert refs.tolist() == ["A", "A"]


# --- largest_gaps ----------------------------------------------------------------------------

def test_largest_gaps_picks_the_group_furthest_above_the_reference(frame, patients):
    table = coverage_table(frame, patients, features=X, by="group", reference={"group": "A"})
    gap = largest_gaps(table)
    assert len(gap) == 1
    row = gap.iloc[0]
    assert (row["group"], row["reference"]) == ("B", "A")
    assert row["missing_ratio"] == pytest.approx(1.5)
    assert row["reference_missing_rate"] == pytest.approx(1 / 3)
    assert not row["clear_gap"]  # B - A = 1/6, interval (-0.4105, 0.6098) includes 0


def test_largest_gaps_reports_one_row_per_feature_and_attribute(frame, patients):
    table = coverage_table(frame.assign(w__y=1.0), patients, features=[X, "w__y"],
                           by=["group", "age_band"])
    gaps = largest_gaps(table)
    assert gaps[["feature", "by"]].values.tolist() == [
        [X, "group"], [X, "age_band"], ["w__y", "group"], ["w__y", "age_band"]]
    assert not gaps["is_reference"].any()


def test_describe_gaps_states_the_gap_and_its_uncertainty(frame, patients):
    against_a = feature_coverage(frame, patients, feature=X, by="group", reference="A")
    assert describe_gaps(against_a) == (
        "- **group**: `B` lacks it in 50.0% of events (95% CI 15.0%-85.0%), 1.50 times the "
        "reference `A` (33.3%); the difference, +16.7 percentage points, has a 95% interval "
        "that includes 0, so it may be chance.")
    against_b = feature_coverage(frame, patients, feature=X, by="group", unit="patient")
    assert describe_gaps(against_b, unit="patient") == (
        "- **group**: `A` lacks it in 50.0% of patients (95% CI 9.5%-90.5%), 1.50 times the "
        "reference `B` (33.3%); the difference, +16.7 percentage points, has a 95% interval "
        "that includes 0, so it may be chance.")


def test_describe_gaps_says_when_no_group_exceeds_the_reference(frame, patients):
    table = coverage_table(frame.assign(w__y=1.0), patients, features=[X, "w__y"], by="group")
    assert describe_gaps(table).splitlines() == [
        "- `v__x` by **group**: no group lacks it more often than the reference `B` (50.0%).",
        "- `w__y` by **group**: no group lacks it more often than the reference `A` (0.0%).",
    ]


# --- missing_reasons_table -------------------------------------------------------------------

def test_missing_reasons_overall_and_by_group(frame, patients):
    every = missing_reasons_table(frame, features=X, exclude_reasons=())
    assert every[["reason", "rows"]].values.tolist() == [
        ["geocode_failed", 2], ["not_yet_released", 1], ["po_box", 1]]
    assert every["share"].tolist() == pytest.approx([2 / 8, 1 / 8, 1 / 8])
    by_group = missing_reasons_table(frame, features=X, patients=patients, by="group")
    assert by_group[["group", "reason", "rows"]].values.tolist() == [
        ["A", "po_box", 1], ["B", "geocode_failed", 2]]
    assert by_group["share"].tolist() == pytest.approx([1 / 3, 2 / 4])


def test_missing_reasons_by_group_needs_patients(frame):
    with pytest.raises(ValueError, match="patients is required"):
        missing_reasons_table(frame, features=X, by="group")


# --- gaps_by_area ----------------------------------------------------------------------------

@pytest.fixture
def timeline() -> pd.DataFrame:
    # P1 moves from X to Y on 2021-01-01 (half-open periods: r1 on that day is at Y); P3's only
    # address ends 2021-01-15 (r5 has none); P5 has no address.
    return pd.DataFrame({
        "patient_id": ["P1", "P1", "P2", "P3", "P4"],
        "valid_from": pd.to_datetime(["2019-01-01", "2021-01-01", "2019-01-01", "2019-01-01",
                                      "2019-01-01"], utc=True),
        "valid_to": pd.to_datetime(["2021-01-01", None, None, "2021-01-15", None], utc=True),
        "block_group_geoid_2020": ["X", "Y", "X", "Y", "Y"],
    })


def test_gaps_by_area_places_events_at_the_address_then(frame, timeline):
    gaps = gaps_by_area(frame, timeline, features=X, boundary_year=2020).set_index("geoid")
    # X: r0 (high, fine), r3 (low); r2 is not yet released. Y: r1, r4 missing, r6 unknown.
    assert gaps.loc["X", ["events", "patients", "flagged"]].tolist() == [2, 2, 1]
    assert gaps.loc["Y", ["events", "patients", "flagged"]].tolist() == [3, 3, 3]
    assert gaps["flagged_share"].tolist() == [0.5, 1.0]
    assert gaps.loc["X", ["missing", "low_reliability"]].tolist() == [0, 1]  # r3 low
    assert gaps.loc["Y", ["missing", "low_reliability"]].tolist() == [2, 1]  # r1, r4; r6
    assert gaps["missing_share"].tolist() == pytest.approx([0, 2 / 3])
    assert gaps["top_reasons"].tolist() == [
        "low_reliability: 1", "geocode_failed: 1, po_box: 1"]  # Y: ties by name, top 2


def test_gaps_by_area_flags_an_event_when_any_assessed_feature_is_bad(frame, timeline):
    # w__y lacks a value on r0 and is present on r2, where v__x is not yet released.
    frame = frame.assign(w__y=[np.nan, 1, 1, 1, 1, 1, 1, 1],
                         w__y_missing=["zip_only", *[None] * 7])
    gaps = gaps_by_area(frame, timeline, features=[X, "w__y"], boundary_year=2020)
    x = gaps.set_index("geoid").loc["X"]
    assert (x["events"], x["flagged"]) == (3, 2)  # r0 (w__y), r2 (fine), r3 (v__x low)
    assert x["top_reasons"] == "low_reliability: 1, zip_only: 1"


def test_gaps_by_area_needs_the_boundary_years_geoid(frame, timeline):
    with pytest.raises(InputError, match="block_group_geoid_2010"):
        gaps_by_area(frame, timeline, features=X, boundary_year=2010)


# --- odds ratios of missingness --------------------------------------------------------------

def _cells(counts: dict[tuple[str, ...], tuple[int, int]],
           names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A frame of one event per patient and a patients table, from (groups) -> (missing, total)."""
    rows, people = [], []
    for groups, (missing, total) in counts.items():
        for k in range(total):
            pid = f"P{len(people)}"
            people.append({"patient_id": pid, **dict(zip(names, groups, strict=True))})
            rows.append({"patient_id": pid, X: np.nan if k < missing else 1.0,
                         f"{X}_missing": "geocode_failed" if k < missing else None})
    frame = pd.DataFrame(rows).assign(event_timestamp=pd.Timestamp("2021-01-01", tz="UTC"))
    return frame, pd.DataFrame(people)


def test_single_attribute_odds_ratio_is_the_crude_2x2_with_woolf_interval():
    # Reference A: 12 of 60 missing; B: 15 of 30. OR = (15 * 48) / (15 * 12) = 4;
    # SE(log OR) = sqrt(1/15 + 1/15 + 1/12 + 1/48) = 0.48734, so 4 * exp(-/+ 1.96 * SE).
    frame, patients = _cells({("A",): (12, 60), ("B",): (15, 30)}, ["g"])
    odds = missingness_odds_ratios(frame, patients, feature=X, by="g").set_index("group")
    b = odds.loc["B"]
    assert b["odds_ratio"] == pytest.approx(4.0) and b["crude_odds_ratio"] == pytest.approx(4.0)
    assert round(b["odds_ratio_low"], 3) == 1.539 and round(b["odds_ratio_high"], 3) == 10.396
    assert round(b["p_value"], 4) == 0.0044  # z = ln 4 / 0.48734 = 2.845
    assert odds.loc["A", "is_reference"] and odds.loc["A", "odds_ratio"] == 1
    assert (b["n"], b["missing"]) == (30, 15)
    assert odds.attrs["n"] == 90 and odds.attrs["reference"] == {"g": "A"}


def test_adjusted_odds_ratio_removes_confounding_in_an_exact_main_effects_table():
    # Missing odds 1/4 at (no, no), 3/4 at (no, yes), 1/2 at (yes, no), 3/2 at (yes, yes): the
    # table fits a main-effects model exactly, so the MLE is OR_a = 2 and OR_b = 3, while the
    # crude OR of a is (100 * 100) / (80 * 35) = 3.571 (b is commoner where a is yes).
    # Fisher information from the cell weights n p (1 - p) = 16, 60/7, 20/3, 36 gives
    # SE(a) = 0.29324, SE(b) = 0.29872.
    frame, patients = _cells({("no", "no"): (20, 100), ("no", "yes"): (15, 35),
                              ("yes", "no"): (10, 30), ("yes", "yes"): (90, 150)}, ["a", "b"])
    odds = missingness_odds_ratios(frame, patients, feature=X, by=["a", "b"],
                                   reference={"a": "no", "b": "no"})
    a, b = (odds[(odds["by"] == k) & (odds["group"] == "yes")].iloc[0] for k in ("a", "b"))
    assert a["odds_ratio"] == pytest.approx(2.0) and b["odds_ratio"] == pytest.approx(3.0)
    assert a["crude_odds_ratio"] == pytest.approx(100 * 100 / (80 * 35))
    assert (round(a["odds_ratio_low"], 4), round(a["odds_ratio_high"], 4)) == (1.1257, 3.5534)
    assert (round(b["odds_ratio_low"], 4), round(b["odds_ratio_high"], 4)) == (1.6705, 5.3876)
    assert odds["by"].tolist() == ["a", "a", "b", "b"] and odds["is_reference"].sum() == 2


def test_fit_logistic_agrees_with_scikit_learn_on_random_data():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(7)
    design = pd.DataFrame({"u": rng.normal(size=500), "v": rng.integers(0, 2, 500)})
    y = (rng.random(500) < 1 / (1 + np.exp(-(0.3 + 0.8 * design["u"] - design["v"])))).astype(int)
    ours = fit_logistic(design, y)
    theirs = linear_model.LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(design, y)
    assert ours["coef"].to_numpy() == pytest.approx([theirs.intercept_[0], *theirs.coef_[0]], abs=1e-5)


def test_a_group_that_never_misses_is_reported_not_estimable():
    frame, patients = _cells({("A",): (12, 60), ("B",): (15, 30), ("C",): (0, 10)}, ["g"])
    odds = missingness_odds_ratios(frame, patients, feature=X, by="g").set_index("group")
    assert np.isnan(odds.loc["C", "odds_ratio"]) and "not estimable" in odds.loc["C", "note"]
    assert odds.loc["B", "odds_ratio"] == pytest.approx(4.0)  # C's rows are left out
    assert odds.attrs["n"] == 90


@pytest.mark.parametrize(("counts", "kwargs", "match"), [
    ({("A",): (0, 60), ("B",): (15, 30)}, {"by": "g"}, "reference group 'A'"),
    ({("A",): (0, 60), ("B",): (0, 30)}, {"by": "g"}, "no missingness to model"),
    ({("A",): (12, 60), ("B",): (15, 30)}, {"by": ["g", "g_copy"]}, "collinear"),
])
def test_odds_ratios_refuse_what_cannot_be_fitted(counts, kwargs, match):
    frame, patients = _cells(counts, ["g"])
    with pytest.raises(InputError, match=match):
        missingness_odds_ratios(frame, patients.assign(g_copy=patients["g"]), feature=X, **kwargs)


def test_fit_logistic_rejects_outcomes_that_are_not_binary():
    with pytest.raises(ValueError, match="0 or 1"):
        fit_logistic(pd.DataFrame({"u": [0.0, 1.0]}), [0, 2])


# --- the HTML report and `sdoh coverage` -----------------------------------------------------

def test_headline_features_picks_the_worst_covered_feature_per_view():
    overview = pd.DataFrame({"feature": ["a__x", "b__z", "a__y", "b__w"],
                             "missing_rate": [0.1, 0.2, 0.3, 0.2]})
    assert headline_features(overview) == ["a__y", "b__z"]  # b: tie, first listed


def test_report_holds_the_tables_and_embedded_figures(frame, patients):
    page = coverage_report(frame, patients, by=["group", "payer"])
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 2
    assert "Skipped attributes not in the patients table: [&#x27;payer&#x27;]" in page
    assert "<td>0.333</td>" in page  # A's missing rate; heatmap, then the odds-ratio forest plot


@pytest.mark.parametrize("with_rejects", [True, False])
def test_report_funnel_counts_rejected_rows_when_given(frame, patients, with_rejects):
    timeline = pd.DataFrame({"patient_id": ["p1", "p2"], "link_missing": [None, None],
                             "link_method": ["point_in_polygon"] * 2})
    rejects = pd.DataFrame({"source_file": ["a.csv"] * 3, "row": ["4", "5", "6"],
                            "patient_id": ["p3", "p4", "p5"],
                            "reason": ["unparseable_date", "missing_value", "inverted_interval"]})
    page = coverage_report(frame, patients, timeline=timeline,
                           rejects=rejects if with_rejects else None, by=["group"])
    assert "<td>rejected_unparseable_date</td>" in page if with_rejects else "rejected_" not in page
    share = "0.400" if with_rejects else "1.000"  # 2 of 5 input rows linked, or of 2 periods
    assert re.search(rf"<td>linked</td>\s*<td>linking</td>\s*<td>2</td>\s*<td>{share}</td>", page)
    assert ("Rejected input rows are not counted" in page) != with_rejects


def test_coverage_command_writes_the_report(frame, patients, tmp_path):
    frame.to_parquet(tmp_path / "frame.parquet")
    patients.to_csv(tmp_path / "patients.csv", index=False)
    out = tmp_path / "report.html"
    (tmp_path / "ws").mkdir()  # a workspace with nothing published yet
    result = CliRunner().invoke(sdoh, [
        "coverage", "--workspace", str(tmp_path / "ws"), "--frame", str(tmp_path / "frame.parquet"),
        "--patients", str(tmp_path / "patients.csv"), "--by", "group", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "without (no published patient geography)" in result.output
    assert out.read_text().count("<img") == 2


def test_coverage_command_fails_cleanly_on_a_frame_without_features(frame, patients, tmp_path):
    frame[["patient_id", "event_timestamp"]].to_parquet(tmp_path / "frame.parquet")
    patients.to_csv(tmp_path / "patients.csv", index=False)
    result = CliRunner().invoke(sdoh, [
        "coverage", "--workspace", str(tmp_path), "--frame", str(tmp_path / "frame.parquet"),
        "--patients", str(tmp_path / "patients.csv"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "_missing` companion" in result.output


def test_coverage_command_counts_the_published_runs_rejects(frame, patients, tmp_path):
    import geopandas as gpd
    import shapely

    from ingestion.core.workspace import Workspace
    from ingestion.jobs.pipeline import link_history_file

    bg = {}
    for year, geoid in ((2010, "110010001001"), (2020, "110019800001")):
        bg[year] = tmp_path / f"bg{year}.geojson"
        gpd.GeoDataFrame({"GEOID": [geoid]}, geometry=[shapely.box(-75, 39, -74, 40)],
                         crs=4269).to_file(bg[year])
    history = tmp_path / "history.csv"
    history.write_text("patient_id,valid_from,valid_to,street,city,state,zip,latitude,longitude\n"
                       "p1,2019-01-01,,1 Main St,Philadelphia,PA,19107,39.5,-74.5\n"
                       "p9,2019-13-01,,2 Main St,Philadelphia,PA,19107,39.5,-74.5\n")
    ws = Workspace(tmp_path / "ws")
    link_history_file(history, bg, workspace=ws)
    frame.to_parquet(tmp_path / "frame.parquet")
    patients.to_csv(tmp_path / "patients.csv", index=False)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(sdoh, [
        "coverage", "--workspace", str(ws.root), "--frame", str(tmp_path / "frame.parquet"),
        "--patients", str(tmp_path / "patients.csv"), "--by", "group", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<td>rejected_unparseable_date</td>" in page  # no --rejects: the published run's
    assert re.search(r"<td>linked</td>\s*<td>linking</td>\s*<td>1</td>\s*<td>0.500</td>", page)


# --- the report reads as a page ----------------------------------------------------------------

FUNNEL = pd.DataFrame({"outcome": ["all", "linked", "rejected_placeholder_coordinates"],
                       "address_periods": [10, 8, 2], "share_of_periods": [1.0, 0.8, 0.2]})
ODDS = pd.DataFrame({"by": ["preferred_language"] * 3, "group": ["English", "Spanish", "Other"],
                     "is_reference": [True, False, False], "odds_ratio": [1.0, 2.5, 0.6],
                     "odds_ratio_low": [1.0, 1.2, 0.35], "odds_ratio_high": [1.0, 5.0, 0.95]})


def _drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


@pytest.fixture
def with_empty_feature(frame) -> pd.DataFrame:
    """The frame plus ``w__y``, absent on every row, as one county ranked alone would be."""
    return frame.assign(w__y=np.nan, w__y_missing=["po_box", *["svi_not_computed"] * 7],
                        w__geoid=[None, *["99001"] * 7])


class _Boxes(HTMLParser):
    """For each <table>, the class of the element that directly holds it; the order of tags."""

    def __init__(self):
        super().__init__()
        self.open, self.holders, self.order = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.holders.append(self.open[-1] if self.open else None)
        self.order.append((tag, dict(attrs).get("id")))
        self.open.append(dict(attrs).get("class"))

    def handle_endtag(self, tag):
        self.open.pop()


def _parsed(page: str) -> _Boxes:
    boxes = _Boxes()
    boxes.feed(page)
    return boxes


def test_report_puts_summary_then_plots_then_tables(frame, patients, timeline):
    timeline = timeline.assign(link_missing=None, link_method="point_in_polygon")
    order = _parsed(coverage_report(frame, patients, timeline=timeline, by=["group"])).order
    starts = {key: i for i, (tag, key) in enumerate(order) if tag == "section"}
    assert list(starts) == ["summary", "plots", "tables"]
    images = [i for i, (tag, _) in enumerate(order) if tag == "img"]
    tables = [i for i, (tag, _) in enumerate(order) if tag == "table"]
    assert starts["plots"] < min(images) and max(images) < starts["tables"] < min(tables)


def test_every_table_scrolls_inside_its_own_box(frame, patients, timeline):
    timeline = timeline.assign(link_missing=None, link_method="point_in_polygon")
    page = coverage_report(frame, patients, timeline=timeline, by=["group"])
    holders = _parsed(page).holders
    assert len(holders) >= 5 and set(holders) == {TABLE_BOX}
    assert re.search(rf"\.{TABLE_BOX}{{overflow-x:auto;max-width:100%", page)


@pytest.mark.parametrize("figure", [
    lambda: funnel_figure(FUNNEL),
    lambda: odds_ratio_figure(ODDS),
    lambda: heatmaps(pd.DataFrame({
        "feature": ["a_rather_long_view_name__and_a_long_feature_name"] * 2, "by": ["preferred_language"] * 2,
        "group": ["NH Other or Multiple", "English"], "missing_rate": [0.2, 0.1],
        "low_reliability_rate": [np.nan, 0.3]})),
], ids=["funnel", "odds_ratios", "heatmaps"])
def test_figures_keep_every_label_inside_the_image(figure):
    fig = _drawn(figure())
    drawn, page = fig.get_tightbbox(), fig.bbox_inches  # inches: what is drawn, and the image
    assert sum(bool(t.get_text()) for t in fig.findobj(Text)) >= 3
    assert (drawn.x0 >= page.x0 and drawn.y0 >= page.y0
            and drawn.x1 <= page.x1 and drawn.y1 <= page.y1), (drawn, page)


def test_odds_ratio_axis_reads_as_plain_decimals():
    ax = _drawn(odds_ratio_figure(ODDS)).axes[0]
    labels = [t.get_text() for t in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)] if t.get_text()]
    assert labels and not any("10^" in x or "times" in x or "e-" in x for x in labels)
    assert all(re.fullmatch(r"\d+(\.\d+)?", x) for x in labels)
    assert "1" in labels and {"0.4", "2"} <= set(labels)


def test_all_missing_features_are_explained_by_the_reasons_in_the_data(with_empty_feature, patients):
    reasons = all_missing(with_empty_feature, pd.DataFrame({"feature": [X, "w__y"], "n": [7, 7],
                                                            "covered": [4, 0]}))
    # v__x has values; w__y has none of its 8 rows: 7 svi_not_computed, 1 po_box, one area
    assert reasons[["feature", "reason", "rows", "areas"]].values.tolist() == [
        ["w__y", "svi_not_computed", 7, 1], ["w__y", "po_box", 1, 1]]
    assert reasons["description"].str.startswith(("SVI -999", "A PO box")).all()
    page = coverage_report(with_empty_feature, patients, by=["group"])
    summary = page[page.index("<section id='summary'>"):page.index("<section id='plots'>")]
    assert "<code>w__y</code> (1 feature(s)): missing for every assessed event" in summary
    assert "<code>svi_not_computed</code> 7 (88%): SVI -999: not computed" in summary
    assert "<code>po_box</code> 1 (12%)" in summary and "fall in 1 area(s) of <code>w</code>" in summary
    assert f"<code>{X}</code>" not in summary


def test_all_missing_explanation_follows_the_data_not_a_fixed_text(with_empty_feature, patients):
    other = with_empty_feature.assign(w__y_missing="zero_denominator")
    page = coverage_report(other, patients, by=["group"])
    assert "<code>zero_denominator</code> 8 (100%): The universe of a derived measure is zero" in page
    assert "svi_not_computed" not in page


def test_report_says_so_when_no_feature_is_missing_everywhere(frame, patients):
    page = coverage_report(frame, patients, by=["group"])
    assert "Every feature has a value for some assessed row." in page
