import numpy as np
import pandas as pd
import pytest

from ingestion.core.datasets import acs_spec
from ingestion.derive.acs import build_acs_measures
from sdoh_sources import load_catalog


def tidy_frame(overrides: dict[str, tuple], *, level="tract", geoid="99001000100", vintage=2021):
    """Every variable the level needs at (100, 10), with (estimate, moe, reason, moe_reason) overrides."""
    variables = load_catalog().acs.variables_for(level, vintage)
    rows = []
    for v in variables:
        est, err, reason, moe_reason = (*overrides.get(v, (100.0, 10.0)), None, None)[:4]
        rows.append({"GEOID": geoid, "variable": v, "estimate": est, "moe": err,
                     "estimate_missing": reason, "moe_missing": moe_reason})
    return pd.DataFrame(rows)


def build(overrides, *, vintage=2021, **kw):
    tidy = tidy_frame(overrides, vintage=vintage)
    return build_acs_measures(tidy, level="tract", vintage=vintage, **kw).iloc[0]


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
    out = build_acs_measures(tidy_frame({}, level="block_group", geoid="990010001001", vintage=2019),
                             level="block_group", vintage=2019)
    assert "pct_no_health_insurance" not in out.columns
    assert out["boundary_year"].iloc[0] == 2010


# -- formula kinds: published percents, differences in a denominator, vintages ------------------


def test_published_percent_is_taken_as_is_with_its_own_moe():
    row = build({"DP02_0072P": (12.5, 2.1)})
    assert row["pct_disability"] == 12.5
    assert row["pct_disability_moe"] == 2.1
    assert row["pct_disability_cv"] == pytest.approx(2.1 / 1.645 / 12.5 * 100)  # 10.21
    assert row["pct_disability_reliability"] == "high"
    assert row["pct_disability_missing"] is None


def test_published_percent_reads_the_vintage_code():
    # 2018 reads DP02_0071P; a value planted in DP02_0072P must not be used.
    tidy = tidy_frame({"DP02_0071P": (30.0, 9.87)}, vintage=2018)
    assert "DP02_0072P" not in set(tidy["variable"])
    row = build_acs_measures(tidy, level="tract", vintage=2018).iloc[0]
    assert row["pct_disability"] == 30.0
    assert row["pct_disability_cv"] == pytest.approx(20.0)  # 9.87 / 1.645 / 30 * 100
    assert row["pct_disability_reliability"] == "medium"


def test_published_percent_jam_value_is_a_reason():
    row = build({"S2701_C05_001": (np.nan, np.nan, "insufficient_sample", "unknown")})
    assert np.isnan(row["pct_uninsured_published"])
    assert row["pct_uninsured_published_missing"] == "insufficient_sample"
    assert row["pct_uninsured_published_reliability"] is None


def test_difference_in_denominator_hand_computed():
    rent = {"B25070_001": (500.0, 40.0), "B25070_011": (50.0, 20.0), "B25070_007": (40.0, 15.0),
            "B25070_008": (30.0, 12.0), "B25070_009": (20.0, 10.0), "B25070_010": (60.0, 18.0)}
    row = build(rent)
    # numerator 150, MOE sqrt(15^2 + 12^2 + 10^2 + 18^2) = sqrt(793);
    # denominator 500 - 50 = 450, MOE sqrt(40^2 + 20^2) = sqrt(2000); p = 1/3
    # MOE = sqrt(793 - 2000 / 9) / 450 * 100
    assert row["pct_renter_cost_burden"] == pytest.approx(100 / 3)
    assert row["pct_renter_cost_burden_moe"] == pytest.approx(np.sqrt(793 - 2000 / 9) / 450 * 100)
    # severe burden: 60 / 450, MOE sqrt(18^2 - (60/450)^2 * 2000) / 450 * 100
    p = 60 / 450
    assert row["pct_renter_severe_cost_burden"] == pytest.approx(100 * p)
    assert row["pct_renter_severe_cost_burden_moe"] == pytest.approx(
        np.sqrt(18**2 - p**2 * 2000) / 450 * 100)


def test_difference_in_denominator_that_cancels_is_zero_denominator():
    row = build({"B25070_001": (80.0, 20.0), "B25070_011": (80.0, 20.0)})
    assert np.isnan(row["pct_renter_cost_burden"])
    assert row["pct_renter_cost_burden_missing"] == "zero_denominator"


def test_owner_burden_subtracts_both_not_computed_cells():
    cells = {f"B25091_{n:03d}": (0.0, 10.0) for n in (8, 9, 10, 11, 19, 20, 21, 22)}
    cells.update({"B25091_001": (400.0, 30.0), "B25091_012": (40.0, 10.0),
                  "B25091_023": (60.0, 10.0), "B25091_008": (90.0, 25.0)})
    row = build(cells)
    assert row["pct_owner_cost_burden"] == pytest.approx(30.0)  # 90 / (400 - 40 - 60)
    # numerator MOE: 25 and the largest zero-estimate MOE (10) once: sqrt(725)
    p, den_moe_sq = 0.3, 30**2 + 10**2 + 10**2
    assert row["pct_owner_cost_burden_moe"] == pytest.approx(
        np.sqrt(725 - p**2 * den_moe_sq) / 300 * 100)


@pytest.mark.parametrize("vintage", [2014, 2015, 2016])
def test_measure_absent_from_a_vintage_is_a_reason_in_every_row(vintage):
    geoids = ["99001000100", "99001000200"]
    tidy = pd.concat([tidy_frame({}, geoid=g, vintage=vintage) for g in geoids])
    assert not tidy["variable"].str.startswith("B28002").any()
    out = build_acs_measures(tidy, level="tract", vintage=vintage)
    assert out["pct_no_internet_subscription"].isna().all()
    assert (out["pct_no_internet_subscription_missing"] == "not_available_in_vintage").all()
    assert out["pct_no_internet_subscription_moe"].isna().all()
    assert out["pct_no_internet_subscription_reliability"].isna().all()
    assert out["pct_no_health_insurance_missing"].isna().all()  # others are computed


def test_published_columns_are_the_same_in_every_vintage():
    columns = {v: tuple(build_acs_measures(tidy_frame({}, vintage=v), level="tract", vintage=v).columns)
               for v in (r.vintage for r in load_catalog().calendar["acs5"])}
    assert len(set(columns.values())) == 1
    assert columns[2014] == acs_spec("tract").column_names


def test_a_missing_variable_is_named():
    tidy = tidy_frame({}).query("variable != 'DP02_0072P'")
    with pytest.raises(ValueError, match=r"lacks variables \['DP02_0072P'\]"):
        build_acs_measures(tidy, level="tract", vintage=2021)
