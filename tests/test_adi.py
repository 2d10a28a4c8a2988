import math

import numpy as np
import pandas as pd
import pytest
import yaml

from ingestion.derive import adi as adi_compute
from ingestion.derive.adi import (
    AdiComputeError,
    BadGeoidError,
    MissingColumnsError,
    UnknownVintageError,
    UnverifiedMethodError,
    adi_indicators,
    adi_variables,
    compute_adi,
)
from sdoh_sources import METADATA_KEYS, SdohError, Source, check_vocabularies, load_catalog
from sdoh_sources.publisher import publisher_source

# The small reference areas of these tests are on purpose; the warning is tested on its own.
pytestmark = pytest.mark.filterwarnings("ignore:reference areas .* fewer than 30:UserWarning")

VINTAGE = 2022
ATLAS = publisher_source("adi")  # the Neighborhood Atlas file: a different thing

# One block group whose every indicator is easy to compute by hand (MOE 10 everywhere).
BASE = {
    # education, population 25+ = 1000: < 9th grade 20 + 30 = 50; diploma 400 + bachelor 200
    "B15003_001": 1000, "B15003_002": 20, "B15003_012": 30, "B15003_017": 400, "B15003_022": 200,
    # employed 800; management etc. 150 men + 250 women
    "C24010_001": 800, "C24010_003": 150, "C24010_039": 250,
    "B19113_001": 60000,
    # households under $10k = 40; $50k+ = 7 brackets of 100
    "B19001_002": 40, **{f"B19001_{i:03d}": 100 for i in range(11, 18)},
    "B25077_001": 200000, "B25064_001": 1000, "B25088_002": 1500,
    "B25003_001": 500, "B25003_002": 300,
    "B23025_003": 600, "B23025_005": 30,
    "B17010_001": 300, "B17010_002": 30,
    "C17002_001": 1200, "C17002_002": 60, "C17002_003": 60, "C17002_004": 60, "C17002_005": 60,
    "B11005_002": 200, "B11005_005": 50,
    "B25044_001": 500, "B25044_003": 10, "B25044_010": 40,
    "B25043_001": 500, "B25043_007": 5, "B25043_016": 10,
    "B25016_001": 500, "B25016_007": 2, "B25016_016": 3,
    "B25014_001": 500, **{f"B25014_{i:03d}": 5 for i in (5, 6, 7, 11, 12, 13)},
    "B01003_001": 1300, "B25001_001": 550,
}
# Hand-computed indicators of BASE (Singh's order).
EXPECTED = {
    "pct_less_than_9th_grade": 5.0,        # 100 * 50 / 1000
    "pct_high_school_or_more": 60.0,       # 100 * (400 + 200) / 1000
    "pct_white_collar": 50.0,              # 100 * (150 + 250) / 800
    "median_family_income": 60000.0,
    "income_disparity": math.log(100 * 40 / 700),  # ln(5.714...) = 1.74297
    "median_home_value": 200000.0,
    "median_gross_rent": 1000.0,
    "median_monthly_mortgage": 1500.0,
    "pct_owner_occupied": 60.0,            # 100 * 300 / 500
    "pct_unemployed": 5.0,                 # 100 * 30 / 600
    "pct_families_below_poverty": 10.0,    # 100 * 30 / 300
    "pct_below_150_poverty": 20.0,         # 100 * 240 / 1200
    "pct_single_parent_households": 25.0,  # 100 * 50 / 200
    "pct_no_vehicle": 10.0,                # 100 * (10 + 40) / 500
    "pct_no_telephone": 3.0,               # 100 * (5 + 10) / 500
    "pct_no_complete_plumbing": 1.0,       # 100 * (2 + 3) / 500
    "pct_crowded": 6.0,                    # 100 * 30 / 500
}
# Singh 2003 Table 1 factor score coefficients, as the catalog must carry them.
COEFFICIENTS = [0.0849, -0.0970, -0.0874, -0.0977, 0.0936, -0.0688, -0.0781, -0.0770, -0.0615,
                0.0806, 0.0977, 0.1037, 0.0719, 0.0694, 0.0877, 0.0510, 0.0556]

# A block group deprived on every non-dollar indicator (used against home-value dominance).
DEPRIVED = {
    "B15003_002": 300, "B15003_017": 200, "B15003_022": 0,   # < 9th 33%, HS+ 20%
    "C24010_003": 50, "C24010_039": 50,                      # white collar 12.5%
    "B19001_002": 400, "B25003_002": 100, "B23025_005": 150, "B17010_002": 150,
    "C17002_002": 200, "C17002_003": 200, "C17002_004": 200, "C17002_005": 200,
    "B11005_005": 150, "B25044_003": 100, "B25044_010": 150, "B25043_007": 50, "B25043_016": 50,
    "B25016_007": 20, "B25016_016": 20, **{f"B25014_{i:03d}": 20 for i in (5, 6, 7, 11, 12, 13)},
}


def frame(rows: dict[str, dict]) -> pd.DataFrame:
    """A wide ACS input frame: GEOID -> overrides of BASE; every variable of 2022 present."""
    records = []
    for geoid, overrides in rows.items():
        values = {**BASE, **overrides}
        record = {"GEOID": geoid, "group_quarters_population": values.pop("gq", 0)}
        for name in adi_variables(VINTAGE):
            variable = name[:-1]
            record[name] = values.get(variable, 0) if name.endswith("E") else 10.0
        records.append(record)
    return pd.DataFrame(records)


def by_geoid(out: pd.DataFrame) -> pd.DataFrame:
    return out.set_index("GEOID")


def test_indicators_of_one_hand_built_block_group():
    row = adi_indicators(frame({"010010201001": {}}), vintage=VINTAGE).iloc[0]
    for name, value in EXPECTED.items():
        assert row[name] == pytest.approx(value), name
        assert row[f"{name}_missing"] is None
    # proportion MOE: sqrt(10^2 - 0.6^2 * 10^2) / 500 = 8 / 500 -> 1.6 points
    assert row["pct_owner_occupied_moe"] == pytest.approx(1.6)
    assert row["median_home_value_moe"] == 10.0
    # ln(100 a / b): MOE of a/b (ratio formula) over a/b; a = 40, b = 700 (7 terms of MOE 10)
    ratio, moe_b = 40 / 700, math.sqrt(7) * 10
    assert row["income_disparity_moe"] == pytest.approx(math.sqrt(10**2 + ratio**2 * moe_b**2) / 700 / ratio)


def test_raw_score_is_the_weighted_sum_of_the_indicators():
    out = compute_adi(frame({f"01001020100{i}": {"B25077_001": 200000 + i} for i in range(3)}),
                      vintage=VINTAGE)
    # 0.0849*5 - 0.0970*60 - 0.0874*50 - 0.0977*60000 + 0.0936*1.742969 - 0.0688*200000
    # - 0.0781*1000 - 0.0770*1500 - 0.0615*60 + 0.0806*5 + 0.0977*10 + 0.1037*20 + 0.0719*25
    # + 0.0694*10 + 0.0877*3 + 0.0510*1 + 0.0556*6 = -19822.299158
    assert out["adi_raw_score"].iloc[0] == pytest.approx(-19822.299158, abs=1e-6)
    assert out["adi_raw_score"].iloc[0] == pytest.approx(np.dot(COEFFICIENTS, list(EXPECTED.values())))


def test_ranks_with_ties_and_scaling_by_hand():
    # Only home value differs; its coefficient is negative, so the dearest is least deprived.
    values = {"010010201001": 100000, "010010201002": 200000, "010010201003": 200000,
              "010010201004": 300000}
    out = by_geoid(compute_adi(frame({g: {"B25077_001": v} for g, v in values.items()}),
                               vintage=VINTAGE))
    # average ranks 4, 2.5, 2.5, 1 of n = 4: ceil(100 r / 4) and ceil(10 r / 4)
    assert out["adi_percentile"].tolist() == [100, 63, 63, 25]
    assert out["adi_decile"].tolist() == [10, 7, 7, 3]
    # raw deviations +-6880 around the mean, sample SD 6880 * sqrt(2/3): z = +-sqrt(3/2)
    assert out["adi_score"].tolist() == pytest.approx([100 + 20 * math.sqrt(1.5), 100, 100,
                                                       100 - 20 * math.sqrt(1.5)])
    assert (out["adi_kind"] == "computed_from_acs").all()
    assert out["adi_missing"].isna().all()


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"B01003_001": 90}, "suppressed_low_population_housing"),             # population < 100
    ({"B25001_001": 25}, "suppressed_low_population_housing"),             # housing units < 30
    ({"gq": 500}, "suppressed_group_quarters"),                            # 500 / 1300 = 38% > 33%
    ({"B01003_001": 90, "gq": 40}, "suppressed_group_quarters_and_low_population"),
])
def test_suppressed_block_group_gets_a_reason_and_no_rank(overrides, reason):
    rows = {"010010201001": {"B25077_001": 100000}, "010010201002": {"B25077_001": 200000},
            "010010201003": {"B25077_001": 300000}, "010010201009": overrides}
    out = by_geoid(compute_adi(frame(rows), vintage=VINTAGE))
    suppressed = out.loc["010010201009"]
    assert suppressed["adi_missing"] == reason
    assert np.isnan(suppressed["adi_percentile"]) and np.isnan(suppressed["adi_score"])
    # the suppressed row takes no part in the others' ranks: 3 ranked block groups
    assert out["adi_percentile"].drop("010010201009").tolist() == [100, 67, 34]


def test_group_quarters_share_of_exactly_a_third_is_not_suppressed():
    out = compute_adi(frame({"010010201001": {"B01003_001": 300, "gq": 99}}), vintage=VINTAGE)
    assert out["adi_missing"].iloc[0] is None  # 33.0% is not greater than 33%


def test_missing_inputs_become_typed_reasons():
    rows = {
        "010010201001": {"B25077_001": -666666666},                       # jam value
        "010010201002": {"B25043_001": 0, "B25043_007": 0, "B25043_016": 0},  # zero universe
        "010010201003": {"B19001_002": 0},                                # ln(0)
        "010010201004": {"gq": None},                                     # no group quarters count
        "010010201005": {},
    }
    inputs = frame(rows)
    inputs["B25064_001E_missing"] = [None, None, None, None, "suppressed_small_sample"]
    inputs.loc[4, "B25064_001E"] = np.nan
    ind = by_geoid(adi_indicators(inputs, vintage=VINTAGE))
    assert ind.loc["010010201001", "median_home_value_missing"] == "insufficient_sample"
    assert np.isnan(ind.loc["010010201001", "median_home_value"])
    assert ind.loc["010010201002", "pct_no_telephone_missing"] == "zero_denominator"
    assert ind.loc["010010201003", "income_disparity_missing"] == "log_of_zero"
    assert ind.loc["010010201005", "median_gross_rent_missing"] == "suppressed_small_sample"
    out = by_geoid(compute_adi(inputs, vintage=VINTAGE))
    assert out["adi_missing"].tolist() == ["adi_indicator_missing"] * 3 + [
        "suppression_inputs_missing", "adi_indicator_missing"]
    assert out["adi_percentile"].isna().all()


def test_controlled_moe_annotation_is_zero():
    inputs = frame({"010010201001": {}})
    inputs["B25077_001M"] = -555555555
    assert adi_indicators(inputs, vintage=VINTAGE)["median_home_value_moe"].iloc[0] == 0.0


def _two_states() -> pd.DataFrame:
    # State 01 is affluent (home values 400k-600k), state 02 is not (100k-200k); the rest equal.
    values = {"010010201001": 400000, "010010201002": 500000, "010030201001": 600000,
              "020010201001": 100000, "020010201002": 150000, "020010201003": 200000}
    return frame({g: {"B25077_001": v} for g, v in values.items()})


def test_reference_area_moves_ranks():
    national = by_geoid(compute_adi(_two_states(), vintage=VINTAGE, reference="nation"))
    by_state = by_geoid(compute_adi(_two_states(), vintage=VINTAGE, reference="state"))
    # 010010201001 is the most deprived of state 01 but 3rd of 6 nationally (ceil(100*3/6))
    assert by_state.loc["010010201001", ["adi_percentile", "adi_decile"]].tolist() == [100, 10]
    assert national.loc["010010201001", ["adi_percentile", "adi_decile"]].tolist() == [50, 5]
    assert by_state.loc["010010201001", "adi_reference_area"] == "01"
    assert (national["adi_reference_area"] == "US").all()
    # by county: 01001 has two block groups, 01003 one (alone, so percentile 100, score 100)
    by_county = by_geoid(compute_adi(_two_states(), vintage=VINTAGE, reference="county"))
    assert by_county.loc["010010201001", "adi_percentile"] == 100
    assert by_county.loc["010010201002", "adi_percentile"] == 50
    assert by_county.loc["010030201001", ["adi_percentile", "adi_score"]].tolist() == [100, 100]


def test_standardizing_undoes_home_value_dominance():
    # A has by far the dearest homes but is the most deprived on all 14 percent indicators and
    # income disparity; dollar incomes, rents and mortgages are equal everywhere.
    rows = {"010010201001": {**DEPRIVED, "B25077_001": 900000},
            "010010201002": {"B25077_001": 200000, "B17010_002": 30},
            "010010201003": {"B25077_001": 220000, "B17010_002": 40},
            "010010201004": {"B25077_001": 240000, "B17010_002": 50}}
    raw = by_geoid(compute_adi(frame(rows), vintage=VINTAGE))
    standard = by_geoid(compute_adi(frame(rows), vintage=VINTAGE, standardized=True))
    # unstandardized, -0.0688 x 660,000 dollars outweighs everything: A looks least deprived
    assert raw.loc["010010201001", "adi_percentile"] == 25
    # z-scored, home value is one indicator of 17: A is the most deprived
    assert standard.loc["010010201001", "adi_percentile"] == 100
    assert (standard["adi_method"] == "standardized").all()
    assert (raw["adi_method"] == "unstandardized").all()


def test_small_reference_area_warns():
    with pytest.warns(UserWarning, match="fewer than 30 ranked block groups"):
        compute_adi(frame({"010010201001": {}}), vintage=VINTAGE)


def test_median_household_income_replaces_family_income_in_2015_and_2016():
    assert "B19013_001E" in adi_variables(2015) and "B19113_001E" not in adi_variables(2015)
    assert "B19113_001E" in adi_variables(2017) and "B19013_001E" not in adi_variables(2017)


@pytest.mark.parametrize("vintage", [2009, 2013, 2024, 2030])
def test_unknown_vintage(vintage):
    with pytest.raises(UnknownVintageError, match=f"vintage {vintage}"):
        adi_variables(vintage)


def test_missing_columns_are_named():
    inputs = frame({"010010201001": {}}).drop(columns=["B25043_016M", "group_quarters_population"])
    with pytest.raises(MissingColumnsError, match="B25043_016M"):
        adi_indicators(inputs, vintage=VINTAGE)
    with pytest.raises(MissingColumnsError, match="group_quarters_population"):
        compute_adi(frame({"010010201001": {}}).drop(columns=["group_quarters_population"]),
                    vintage=VINTAGE)


@pytest.mark.parametrize(("geoid", "match"), [
    (10010201001, "not a 12-digit"), ("01001020100", "not a 12-digit"), ("01001020100X", "not a 12-digit"),
    # the first two digits are no state: not ranked as if they were one
    ("980010201001", r"GEOID '980010201001' \(row 0\) is not a block_group GEOID: '98' is no state FIPS"),
    ("019990201001", r"'999' is no county FIPS code \(001 to 840\)"),
])
def test_bad_geoids(geoid, match):
    inputs = frame({"010010201001": {}})
    inputs["GEOID"] = inputs["GEOID"].astype(object)
    inputs.loc[0, "GEOID"] = geoid
    with pytest.raises(BadGeoidError, match=match):
        compute_adi(inputs, vintage=VINTAGE)


def test_declared_states_admit_the_demo_region():
    inputs = frame({"990010201001": {}})
    assert compute_adi(inputs, vintage=VINTAGE, states=["99"])["GEOID"].tolist() == ["990010201001"]


def test_duplicate_geoid():
    inputs = pd.concat([frame({"010010201001": {}})] * 2)
    with pytest.raises(BadGeoidError, match="more than once"):
        adi_indicators(inputs, vintage=VINTAGE)


def test_errors_are_value_errors_of_the_project_tree():
    for error in (UnknownVintageError, MissingColumnsError, BadGeoidError, UnverifiedMethodError):
        assert issubclass(error, AdiComputeError)
        assert issubclass(error, SdohError) and issubclass(error, ValueError)
    with pytest.raises(AdiComputeError, match="reference must be one of"):
        compute_adi(frame({"010010201001": {}}), vintage=VINTAGE, reference="tract")
    with pytest.raises(TypeError, match="vintage must be an int"):
        adi_variables("2022")


def test_an_indicator_without_a_coefficient_is_refused(monkeypatch):
    method = adi_compute.load_adi_method()
    indicators = list(method.indicators)
    indicators[14] = indicators[14].model_copy(update={"coefficient": None})
    changed = method.model_copy(update={"indicators": tuple(indicators)})
    monkeypatch.setattr(adi_compute, "load_adi_method", lambda: changed)
    with pytest.raises(UnverifiedMethodError, match="pct_no_telephone"):
        adi_variables(VINTAGE)


# ------------------------------------------------------------------ the catalog

@pytest.fixture(scope="module")
def raw_catalog() -> dict:
    from importlib import resources
    text = resources.files("sdoh_sources").joinpath("catalog", "adi_computed.yaml").read_text()
    return yaml.safe_load(text)


def test_every_coefficient_has_a_citation(raw_catalog):
    citations = raw_catalog["citations"]
    indicators = raw_catalog["indicators"]
    assert [i["coefficient"] for i in indicators] == COEFFICIENTS
    for ind in indicators:
        cite = ind["coefficient_citation"]
        assert cite["primary"] == "singh2003" and cite["table"] == 1, ind["name"]
        assert cite["secondary"], ind["name"]
        for key in (cite["primary"], *cite["secondary"]):
            assert len(citations[key]) > 40, key
        assert len(ind["evidence"]) > 20, ind["name"]


def test_catalog_is_the_computed_kind_with_equity_metadata(raw_catalog):
    assert raw_catalog["kind"] == "computed_from_acs" and raw_catalog["method_version"]
    assert raw_catalog["not_the_same_as"] == ATLAS.source
    measures = [{**raw_catalog["defaults"], **m} for m in raw_catalog["measures"]]
    source = Source.model_validate({**{k: raw_catalog[k] for k in (
        "source", "title", "publisher", "license", "measurement_level", "geography_level")},
        "measures": measures})
    check_vocabularies(source, load_catalog().vocabularies)
    stated = {"domain", "gravity_category", "measure_type", "unit", "direction", "proxy_for",
              "fairness_role", "known_biases", "intended_use", "prohibited_use"}
    assert stated <= set(METADATA_KEYS)
    for m in source.measures:
        assert "Petterson" in m.known_biases and "home value" in m.known_biases
    atlas_names = {m.name for m in ATLAS.measures}
    assert not atlas_names & {m.name for m in source.measures}


def test_reasons_are_in_the_catalog():
    known = set(load_catalog().missing_reasons)
    assert set(adi_compute.OWN_REASONS) <= known
    assert set(ATLAS.missing_codes.values()) <= known
