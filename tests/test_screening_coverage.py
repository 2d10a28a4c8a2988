"""Screening coverage on a hand-built frame; every expected value is worked out by hand.

Food insecurity states and the food-access flag (``lila``) per event; payer per patient:

===  =====  ==========  ===============  ====  =========  ==========
pid  payer  event       food state       lila  rurality   housing
===  =====  ==========  ===============  ====  =========  ==========
P1   mcd    2021-01-01  not_screened     1     urban      not_screened
P1   mcd    2022-01-01  positive         1     urban      not_screened
P2   mcd    2021-01-01  screening_stale  1     urban      not_screened
P2   mcd    2022-01-01  not_screened     1     urban      not_screened
P3   mcd    2021-01-01  declined         0     rural      not_screened
P3   mcd    2022-01-01  screening_stale  1     urban      not_screened
P4   mcd    2022-01-01  not_screened     NaN   urban      not_screened
P5   com    2021-06-01  negative         0     urban      negative
P6   com    2021-06-01  positive         0     urban      not_screened
P6   com    2022-06-01  positive         0     urban      not_screened
===  =====  ==========  ===============  ====  =========  ==========

Patients (each at their latest screened event, else their latest): P1 positive (e2, flagged),
P2 never (flagged), P3 declined (e1: not flagged, rural), P4 never (no area value), P5 negative,
P6 positive (not flagged).
By payer: medicaid n 4, never 2, screened 2 (1 positive, 1 declined); commercial n 2, never 0,
screened 2 (1 positive). Medicaid is the reference (largest): commercial's never-screened
difference is 0 - 1/2 = -1/2; against commercial, medicaid's is +1/2.
Events: medicaid 7 rows, never 5 (P1e1, P2 both, P3e2, P4), screened 2; commercial 3, never 0,
screened 3, positive 2.
Against the flag (patients): flagged P1, P2 (never 1, positive 1 of 1 screened); not flagged P3,
P5, P6 (never 0, positive 1 of 3, declined 1); no area P4 (never 1). Positive patients outside
flagged tracts: 1 (P6); never-screened patients inside: 1 (P2).
"""

import numpy as np
import pandas as pd
import pytest

from equity.coverage import wilson_interval
from equity.coverage_report import coverage_report
from equity.screening import (
    needs_vs_area,
    screened_domains,
    screening_column,
    screening_coverage,
)
from ingestion.core.errors import InputError
from sdoh_sources.catalog import CatalogError

FOOD = screening_column("food_insecurity")
HOUSING = screening_column("housing_instability")
LILA = "food_access_tract__lila_1_10"


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = [
        ("P1", "2021-01-01", "not_screened", 1, "urban", "not_screened"),
        ("P1", "2022-01-01", "positive", 1, "urban", "not_screened"),
        ("P2", "2021-01-01", "screening_stale", 1, "urban", "not_screened"),
        ("P2", "2022-01-01", "not_screened", 1, "urban", "not_screened"),
        ("P3", "2021-01-01", "declined", 0, "rural", "not_screened"),
        ("P3", "2022-01-01", "screening_stale", 1, "urban", "not_screened"),
        ("P4", "2022-01-01", "not_screened", None, "urban", "not_screened"),
        ("P5", "2021-06-01", "negative", 0, "urban", "negative"),
        ("P6", "2021-06-01", "positive", 0, "urban", "not_screened"),
        ("P6", "2022-06-01", "positive", 0, "urban", "not_screened"),
    ]
    out = pd.DataFrame(rows, columns=["patient_id", "event_timestamp", FOOD, LILA, "rurality",
                                      HOUSING])
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out


@pytest.fixture
def patients() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [f"P{i}" for i in range(1, 7)],
                         "payer": ["medicaid"] * 4 + ["commercial"] * 2})


def _row(table: pd.DataFrame, group: str, column: str = "group") -> pd.Series:
    [row] = table[table[column] == group].to_dict("records")
    return pd.Series(row)


def test_column_names_come_from_one_place():
    assert screening_column("food_insecurity") == "screened_needs__food_insecurity_state"
    assert screening_column("utilities", "answer_age_days") == "screened_needs__utilities_answer_age_days"
    with pytest.raises(ValueError, match="field must be one of"):
        screening_column("utilities", "age")


def test_screened_domains_in_catalog_order(frame):
    assert screened_domains(frame) == ["food_insecurity", "housing_instability"]
    assert screened_domains(frame.drop(columns=[FOOD, HOUSING])) == []


@pytest.mark.parametrize(("unit", "expected"), [
    # group: (n, never, screened, positive, declined)
    ("patient", {"medicaid": (4, 2, 2, 1, 1), "commercial": (2, 0, 2, 1, 0)}),
    ("event", {"medicaid": (7, 5, 2, 1, 1), "commercial": (3, 0, 3, 2, 0)}),
])
def test_counts_by_payer(frame, patients, unit, expected):
    table = screening_coverage(frame, patients, by="payer", domain="food_insecurity", unit=unit)
    assert table["group"].tolist() == ["medicaid", "commercial"]  # largest first
    for group, counts in expected.items():
        row = _row(table, group)
        assert tuple(row[["n", "never_screened", "screened", "positive", "declined"]]) == counts
        assert row["never_screened_rate"] == pytest.approx(counts[1] / counts[0])
        assert row["positive_rate"] == pytest.approx(counts[3] / counts[2])
        assert row["declined_rate"] == pytest.approx(counts[4] / counts[2])
    assert table.attrs["unit"] == unit


def test_wilson_intervals_match_the_helper(frame, patients):
    table = screening_coverage(frame, patients, by="payer", domain="food_insecurity")
    medicaid, commercial = _row(table, "medicaid"), _row(table, "commercial")
    low, high = wilson_interval(2, 4)
    assert (medicaid["never_screened_low"], medicaid["never_screened_high"]) == (low, high)
    assert float(low) == pytest.approx(0.150039, abs=1e-6)  # Wilson 95% for 2 of 4
    assert commercial["never_screened_low"] == 0.0  # 0 of 2: the lower bound is exactly 0
    assert commercial["never_screened_high"] == float(wilson_interval(0, 2)[1])
    assert (commercial["positive_low"], commercial["positive_high"]) == wilson_interval(1, 2)


def test_gap_sign_and_newcombe_interval(frame, patients):
    default = screening_coverage(frame, patients, by="payer", domain="food_insecurity")
    commercial = _row(default, "commercial")
    assert _row(default, "medicaid")["is_reference"] and not commercial["is_reference"]
    assert commercial["never_screened_diff"] == pytest.approx(-0.5)  # screened more often
    assert commercial["never_screened_ratio"] == 0.0
    assert np.isnan(_row(default, "medicaid")["never_screened_diff_low"])
    # Newcombe hybrid score: diff -/+ hypot of the two Wilson half-widths on each side.
    p_low, p_high = (float(v) for v in wilson_interval(0, 2))
    r_low, r_high = (float(v) for v in wilson_interval(2, 4))
    assert commercial["never_screened_diff_low"] == pytest.approx(-0.5 - np.hypot(0 - p_low, r_high - 0.5))
    assert commercial["never_screened_diff_high"] == pytest.approx(-0.5 + np.hypot(p_high - 0, 0.5 - r_low))
    flipped = screening_coverage(frame, patients, by="payer", domain="food_insecurity",
                                 reference={"payer": "commercial"})
    medicaid = _row(flipped, "medicaid")
    assert medicaid["never_screened_diff"] == pytest.approx(0.5)  # medicaid screened less often
    assert medicaid["never_screened_ratio"] == np.inf


def test_event_attribute_is_read_at_the_patients_screened_event(frame, patients):
    # P3 is counted at their declined answer (rural), not at their later stale event (urban).
    table = screening_coverage(frame, patients, by="rurality", domain="food_insecurity")
    rural = _row(table, "rural")
    assert tuple(rural[["n", "never_screened", "declined"]]) == (1, 0, 1)
    assert _row(table, "urban")["n"] == 5


def test_every_domain_and_attribute_is_stacked(frame, patients):
    table = screening_coverage(frame, patients.assign(everyone="all"), by=["payer", "everyone"])
    assert list(zip(table["domain"], table["by"], table["group"], strict=True)) == [
        ("food_insecurity", "payer", "medicaid"), ("food_insecurity", "payer", "commercial"),
        ("food_insecurity", "everyone", "all"),
        ("housing_instability", "payer", "medicaid"), ("housing_instability", "payer", "commercial"),
        ("housing_instability", "everyone", "all")]
    housing = table[table["domain"] == "housing_instability"]
    assert housing["never_screened"].tolist() == [4, 1, 5]
    # Nobody in medicaid was screened for housing: no share among the screened.
    assert np.isnan(_row(housing, "medicaid")["positive_rate"])


def test_patient_absent_from_the_patients_table_is_not_recorded(frame, patients):
    table = screening_coverage(frame, patients[patients["patient_id"] != "P4"], by="payer",
                               domain="food_insecurity")
    assert tuple(_row(table, "(not recorded)")[["n", "never_screened"]]) == (1, 1)


@pytest.mark.parametrize(("change", "error", "match"), [
    (lambda f: f.assign(**{FOOD: f[FOOD].replace("declined", "refused")}), InputError,
     r"row 4, column 'screened_needs__food_insecurity_state': 'refused' is not a screening state"),
    (lambda f: f.assign(**{FOOD: None}), InputError,
     r"row 0, .*: None is not a screening state .* \(10 such rows\)"),
    (lambda f: f.drop(columns=[FOOD, HOUSING]), InputError, "no screened_needs__<domain>_state"),
])
def test_bad_frames_are_named(frame, patients, change, error, match):
    with pytest.raises(error, match=match):
        screening_coverage(change(frame), patients, by="payer")


def test_unknown_domain_and_unit(frame, patients):
    with pytest.raises(CatalogError, match="no screened domain 'hunger'"):
        screening_coverage(frame, patients, by="payer", domain="hunger")
    with pytest.raises(ValueError, match="unit must be one of"):
        screening_coverage(frame, patients, by="payer", unit="visit")


def test_needs_vs_area_per_patient(frame):
    table = needs_vs_area(frame)
    assert table["area"].tolist() == ["flagged", "not flagged", "(no area value)"]
    counts = table.set_index("area")[["n", "never_screened", "screened", "positive", "declined"]]
    assert counts.to_dict("index") == {
        "flagged": {"n": 2, "never_screened": 1, "screened": 1, "positive": 1, "declined": 0},
        "not flagged": {"n": 3, "never_screened": 0, "screened": 3, "positive": 1, "declined": 1},
        "(no area value)": {"n": 1, "never_screened": 1, "screened": 0, "positive": 0,
                            "declined": 0}}
    flagged, other = _row(table, "flagged", "area"), _row(table, "not flagged", "area")
    assert (other["positive_low"], other["positive_high"]) == wilson_interval(1, 3)
    assert (flagged["never_screened_low"], flagged["never_screened_high"]) == wilson_interval(1, 2)
    assert flagged["positive_diff"] == pytest.approx(1 - 1 / 3)
    assert flagged["never_screened_diff"] == pytest.approx(0.5)
    assert np.isnan(other["positive_diff"])
    assert (table.attrs["positive_outside_flagged"], table.attrs["unscreened_inside_flagged"]) == (1, 1)


def test_needs_vs_area_per_event(frame):
    table = needs_vs_area(frame, unit="event").set_index("area")
    assert table[["n", "never_screened", "positive"]].to_dict("index") == {
        "flagged": {"n": 5, "never_screened": 4, "positive": 1},
        "not flagged": {"n": 4, "never_screened": 0, "positive": 2},
        "(no area value)": {"n": 1, "never_screened": 1, "positive": 0}}


def test_needs_vs_area_without_a_flagged_tract_has_no_difference(frame):
    table = needs_vs_area(frame.assign(**{LILA: 0}))
    assert table["area"].tolist() == ["not flagged"]
    assert "positive_diff" not in table
    assert table.attrs["unscreened_inside_flagged"] == 0


@pytest.mark.parametrize(("change", "match"), [
    (lambda f: f.assign(**{LILA: 2}),
     r"row 0, column 'food_access_tract__lila_1_10': 2 is not a flag \[0, 1\]"),
    (lambda f: f.drop(columns=LILA), "lacks column"),
])
def test_needs_vs_area_bad_flag(frame, change, match):
    with pytest.raises(InputError, match=match):
        needs_vs_area(change(frame))


def _with_feature(frame: pd.DataFrame) -> pd.DataFrame:
    """A feature column with a typed missing reason, which the coverage report needs."""
    missing = np.array([None, "po_box"] * 5, dtype=object)
    return frame.assign(v__x=np.where(missing == None, 1.0, np.nan),  # noqa: E711
                        v__x_missing=missing)


def _page(frame: pd.DataFrame, patients: pd.DataFrame) -> str:
    return coverage_report(frame, patients, by=["payer"])


def test_report_has_a_screening_section_when_the_frame_screens(frame, patients):
    page = _page(_with_feature(frame), patients)
    assert page.index("<section id='tables'>") < page.index("<section id='screening'>")
    assert "Never screened for <code>food_insecurity</code>" in page
    assert "Never screened for <code>housing_instability</code>" in page
    assert "Screened food insecurity against low food access" in page
    assert "1 patients screened positive live outside flagged tracts" in page


def test_report_without_the_flag_has_no_area_table(frame, patients):
    page = _page(_with_feature(frame).drop(columns=LILA), patients)
    assert "<section id='screening'>" in page
    assert "against low food access" not in page


def test_report_without_screening_columns_is_unchanged(frame, patients):
    page = _page(_with_feature(frame).drop(columns=[FOOD, HOUSING]), patients)
    assert "id='screening'" not in page and "screened" not in page.lower()
