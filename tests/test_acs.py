import numpy as np
import pandas as pd
import pytest

from ingestion.acs import build_acs_measures
from ingestion.datasets import acs_spec
from sdoh_sources import load_catalog


def tidy_frame(overrides: dict[str, tuple], *, level="tract", geoid="99001000100"):
    """Every variable the level needs at (100, 10), with (estimate, moe, reason, moe_reason) overrides."""
    variables = sorted({v for m in load_catalog().acs.measures_at(level) for v in m.variables})
    rows = []
    for v in variables:
        est, err, reason, moe_reason = (*overrides.get(v, (100.0, 10.0)), None, None)[:4]
        rows.append({"GEOID": geoid, "variable": v, "estimate": est, "moe": err,
                     "estimate_missing": reason, "moe_missing": moe_reason})
    return pd.DataFrame(rows)


def build(overrides, **kw):
    return build_acs_measures(tidy_frame(overrides), level="tract", vintage=2021, **kw).iloc[0]


def test_columns_match_the_published_spec():
    out = build_acs_measures(tidy_frame({}), level="tract", vintage=2021)
    assert tuple(out.columns) == acs_spec("tract").column_names
    assert out["boundary_year"].iloc[0] == 2020
    assert out["release_ts"].iloc[0] == pd.Timestamp("2022-12-08", tz="UTC")


def test_percent_with_propagated_moe_hand_computed():
    row = build({"C17002_001": (1000.0, 50.0), "C17002_002": (100.0, 30.0), "C17002_003": (100.0, 40.0)})
    # numerator 200, MOE sqrt(30^2 + 40^2) = 50; p = 0.2; sqrt(50^2 - 0.04 * 50^2) / 1000 * 100
    assert row["pct_below_poverty"] == pytest.approx(20.0)
    assert row["pct_below_poverty_moe"] == pytest.approx(4.898979485566356)
    assert row["pct_below_poverty_cv"] == pytest.approx(4.898979485566356 / 1.645 / 20 * 100)
    assert row["pct_below_poverty_reliability"] == "medium"
    assert row["pct_below_poverty_missing"] is None


def test_difference_in_numerator():
    row = build({"B03002_001": (1000.0, 60.0), "B03002_003": (600.0, 50.0)})
    # (1000 - 600) / 1000; numerator MOE sqrt(60^2 + 50^2); sqrt(6100 - 0.16 * 3600) / 1000 * 100
    assert row["pct_minority"] == pytest.approx(40.0)
    assert row["pct_minority_moe"] == pytest.approx(np.sqrt(5524) / 10)


def test_zero_estimates_in_a_sum_count_the_largest_moe_once():
    zeros = dict(zip(["B25014_005", "B25014_006", "B25014_007", "B25014_011", "B25014_012", "B25014_013"],
                     [(0.0, 10.0), (0.0, 20.0), (0.0, 30.0), (0.0, 10.0), (0.0, 10.0), (0.0, 10.0)],
                     strict=True))
    row = build({**zeros, "B25014_001": (500.0, 40.0)})
    assert row["pct_crowded"] == 0.0
    assert row["pct_crowded_moe"] == pytest.approx(30 / 500 * 100)
    assert np.isnan(row["pct_crowded_cv"])
    assert row["pct_crowded_reliability"] == "low"


def test_zero_denominator_is_a_reason_not_a_number():
    row = build({"B25003_001": (0.0, 12.0), "B25003_003": (0.0, 12.0)})
    assert np.isnan(row["pct_renter_occupied"])
    assert row["pct_renter_occupied_missing"] == "zero_denominator"
    assert row["pct_renter_occupied_reliability"] is None


def test_jam_value_reason_travels_to_the_measure():
    row = build({"B19013_001": (np.nan, np.nan, "insufficient_sample", "unknown")})
    assert np.isnan(row["median_household_income"])
    assert row["median_household_income_missing"] == "insufficient_sample"


def test_unknown_moe_keeps_estimate_with_unknown_reliability():
    row = build({"B19013_001": (250001.0, np.nan, None, "unknown")})
    assert row["median_household_income"] == 250001.0
    assert row["median_household_income_reliability"] == "unknown"
    assert row["median_household_income_missing"] is None


def test_controlled_count_is_high_reliability():
    row = build({"B01003_001": (4321.0, 0.0)})
    assert row["total_population"] == 4321.0
    assert row["total_population_moe"] == 0.0
    assert row["total_population_reliability"] == "high"


def test_block_group_omits_measures_not_published_there():
    out = build_acs_measures(tidy_frame({}, level="block_group", geoid="990010001001"),
                             level="block_group", vintage=2019)
    assert "pct_no_health_insurance" not in out.columns
    assert out["boundary_year"].iloc[0] == 2010
