"""Fairness hand-off and gates on predictions constructed so every gap is known by hand.

Biased model, 20 rows per group (10 with the outcome, 10 without):

=====  ===============  ===============  ==============  ===========  ========
group  TP of positives  FP of negatives  selection rate  mean score   observed
=====  ===============  ===============  ==============  ===========  ========
A      9 of 10 (0.9)    1 of 10 (0.1)    10/20 = 0.5     0.5          0.5
B      5 of 10 (0.5)    1 of 10 (0.1)    6/20 = 0.3      0.3          0.5
=====  ===============  ===============  ==============  ===========  ========

so demographic parity difference 0.2 and ratio 0.6, equal opportunity difference 0.9 - 0.5 =
0.4, equalized odds difference max(0.4, 0.1 - 0.1) = 0.4 and calibration gap |0.3 - 0.5| = 0.2.
The fair model gives both groups A's rates and scores: every gap 0, ratio 1.
"""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from feast import Field
from feast.types import Float64

from equity.fairness import (
    check_thresholds,
    describe_drift,
    fairness_check,
    fairness_drift,
    fairness_report,
    fairness_roles,
    load_thresholds,
    split_by_fairness_role,
)
from ingestion.cli import sdoh
from ingestion.core.errors import InputError

THRESHOLDS = """\
thresholds:
  demographic_parity_difference: {max: 0.1}
  demographic_parity_ratio: {min: 0.8}
  equalized_odds_difference: {max: 0.1}
  equal_opportunity_difference: {max: 0.1}
  calibration_gap: {max: 0.05}
min_group_size: 10
group_columns: [race]
"""


def _group(name: str, *, true_positives: int, false_positives: int, score: float) -> pd.DataFrame:
    y_true = [1] * 10 + [0] * 10
    y_pred = [1] * true_positives + [0] * (10 - true_positives) + [1] * false_positives + [0] * (
        10 - false_positives)
    return pd.DataFrame({"race": name, "y_true": y_true, "y_pred": y_pred, "y_prob": score})


def predictions(*, biased: bool) -> pd.DataFrame:
    b = {"true_positives": 5, "score": 0.3} if biased else {"true_positives": 9, "score": 0.5}
    return pd.concat([_group("A", true_positives=9, false_positives=1, score=0.5),
                      _group("B", false_positives=1, **b)], ignore_index=True)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "thresholds.yaml"
    path.write_text(THRESHOLDS)
    return path


# --- fairness_report -------------------------------------------------------------------------

def test_report_on_the_biased_model_matches_the_hand_computed_gaps():
    report = fairness_report(predictions(biased=True), group="race", score="y_prob")
    assert report.metrics.to_dict() == pytest.approx({
        "demographic_parity_difference": 0.2, "demographic_parity_ratio": 0.6,
        "equalized_odds_difference": 0.4, "equal_opportunity_difference": 0.4,
        "calibration_gap": 0.2})
    b = report.by_group.loc["B"]
    assert (b["n"], b["positives"]) == (20, 10)
    assert (b["true_positive_rate"], b["false_positive_rate"], b["selection_rate"]) == pytest.approx(
        (0.5, 0.1, 0.3))
    assert (b["mean_predicted"], b["observed_rate"]) == pytest.approx((0.3, 0.5))


def test_report_gaps_agree_with_fairlearns_own_functions():
    metrics = pytest.importorskip("fairlearn.metrics")
    preds = predictions(biased=True)
    args = (preds["y_true"], preds["y_pred"])
    report = fairness_report(preds, group="race").metrics
    assert report["equalized_odds_difference"] == pytest.approx(
        metrics.equalized_odds_difference(*args, sensitive_features=preds["race"]))
    assert report["demographic_parity_ratio"] == pytest.approx(
        metrics.demographic_parity_ratio(*args, sensitive_features=preds["race"]))
    assert report["equal_opportunity_difference"] == pytest.approx(
        metrics.equal_opportunity_difference(*args, sensitive_features=preds["race"]))


def test_unbiased_model_has_no_gap():
    metrics = fairness_report(predictions(biased=False), group="race", score="y_prob").metrics
    assert metrics.to_dict() == pytest.approx({
        "demographic_parity_difference": 0, "demographic_parity_ratio": 1,
        "equalized_odds_difference": 0, "equal_opportunity_difference": 0, "calibration_gap": 0})


def test_calibration_table_per_group_and_score_bin():
    table = fairness_report(predictions(biased=True), group="race", score="y_prob", bins=5).calibration
    assert table[["race", "score_bin", "n"]].values.tolist() == [
        ["A", "0.40-0.60", 20], ["B", "0.20-0.40", 20]]
    assert table["observed_rate"].tolist() == [0.5, 0.5]


def test_a_group_without_positives_has_no_true_positive_rate_rather_than_zero():
    preds = pd.concat([predictions(biased=True),
                       pd.DataFrame({"race": "C", "y_true": [0] * 4, "y_pred": [0, 0, 0, 1]})])
    report = fairness_report(preds, group="race")
    assert np.isnan(report.by_group.loc["C", "true_positive_rate"])
    assert report.metrics["equal_opportunity_difference"] == pytest.approx(0.4)  # A and B only
    assert report.metrics["equalized_odds_difference"] == pytest.approx(0.4)  # FPR: .25 - .1


def test_small_groups_are_dropped_and_listed():
    preds = pd.concat([predictions(biased=True),
                       pd.DataFrame({"race": "C", "y_true": [1, 0], "y_pred": [0, 1]})])
    report = fairness_report(preds, group="race", min_group_size=10)
    assert report.dropped_groups == ["C"] and list(report.by_group.index) == ["A", "B"]


@pytest.mark.parametrize(("change", "match"), [
    ({"y_pred": 2}, "0/1"),
    ({"race": None}, None),  # a missing attribute is its own group, not an error
])
def test_report_input_checks(change, match):
    preds = predictions(biased=True).assign(**change)
    if match is None:
        assert list(fairness_report(preds, group="race").by_group.index) == ["(not recorded)"]
    else:
        with pytest.raises(InputError, match=match):
            fairness_report(preds, group="race")


def test_report_names_absent_columns():
    with pytest.raises(InputError, match=r"\['payer'\]"):
        fairness_report(predictions(biased=True), group="payer")


# --- thresholds ------------------------------------------------------------------------------

def test_thresholds_flag_the_crossed_gaps(config):
    limits = load_thresholds(config).limits
    checks = check_thresholds(fairness_report(predictions(biased=True), group="race",
                                              score="y_prob").metrics, limits)
    assert checks.loc[~checks["passed"], "metric"].tolist() == [
        "demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
        "equal_opportunity_difference", "calibration_gap"]
    fair = check_thresholds(fairness_report(predictions(biased=False), group="race",
                                            score="y_prob").metrics, limits)
    assert fair["passed"].all()


def test_a_metric_that_cannot_be_computed_fails_its_gate():
    checks = check_thresholds(pd.Series({"equal_opportunity_difference": np.nan}),
                              {"equal_opportunity_difference": {"max": 0.1}})
    assert not checks["passed"].any()


def test_packaged_thresholds_load():
    thresholds = load_thresholds()
    assert thresholds.limits["equalized_odds_difference"] == {"max": 0.1}
    assert thresholds.min_group_size == 30 and "race_ethnicity" in thresholds.group_columns


@pytest.mark.parametrize(("text", "match"), [
    ("thresholds: {accuracy: {max: 1}}", "unknown metric"),
    ("thresholds: {calibration_gap: 0.1}", "mapping like"),
    ("thresholds: {calibration_gap: {below: 0.1}}", "mapping like"),
    ("thresholds: [", "not valid YAML"),
])
def test_bad_thresholds_files_are_refused(tmp_path, text, match):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_thresholds(path)


# --- drift -----------------------------------------------------------------------------------

def _two_vintages() -> pd.DataFrame:
    return pd.concat([predictions(biased=False).assign(vintage=2019),
                      predictions(biased=True).assign(vintage=2021)], ignore_index=True)


def test_drift_per_vintage_and_its_change():
    drift = fairness_drift(_two_vintages(), group="race", time_column="vintage")
    odds = drift[drift["metric"] == "equalized_odds_difference"]
    assert odds["window"].tolist() == ["2019", "2021"] and odds["n"].tolist() == [40, 40]
    assert odds["value"].tolist() == pytest.approx([0.0, 0.4])
    assert np.isnan(odds["change"].iloc[0]) and odds["change"].iloc[1] == pytest.approx(0.4)
    assert describe_drift(drift) == (
        "equalized_odds_difference grew from 0.000 in 2019 to 0.400 in 2021 (+0.400); with 2021 "
        "it grew by 0.400 from 2019.")


def test_describe_drift_ignores_rows_without_a_window_and_needs_two():
    drift = fairness_drift(_two_vintages().assign(vintage=lambda t: t["vintage"].where(
        t["vintage"] == 2021)), group="race", time_column="vintage")
    assert drift["window"].unique().tolist() == ["2021", "(none)"]
    with pytest.raises(ValueError, match="in 1 window"):
        describe_drift(drift)


def test_drift_by_time_window_bins_timestamps():
    preds = _two_vintages().assign(when=lambda t: np.where(
        t["vintage"] == 2019, "2022-03-01T10:00:00Z", "2023-11-30T23:00:00Z"))
    untimed = pd.DataFrame({"race": ["A"], "y_true": [0], "y_pred": [0], "when": [None]})
    preds = pd.concat([preds, untimed], ignore_index=True)  # its own window, last
    drift = fairness_drift(preds, group="race", time_column="when", window="Y")
    assert drift["window"].unique().tolist() == ["2022", "2023", "(none)"]
    dp = drift[drift["metric"] == "demographic_parity_difference"].set_index("window")["value"]
    assert dp["2023"] == pytest.approx(0.2) and dp["2022"] == pytest.approx(0.0)


# --- the gate and `sdoh fairness-check` ------------------------------------------------------

def test_fairness_check_per_window(config):
    checks = fairness_check(_two_vintages(), load_thresholds(config), score="y_prob",
                            time_column="vintage")
    crossed = checks[~checks["passed"]]
    assert set(crossed["window"]) == {"all", "2021"} and set(crossed["group_column"]) == {"race"}
    assert checks.loc[checks["window"] == "2019", "passed"].all()


def test_calibration_limit_needs_a_score(config):
    with pytest.raises(InputError, match="--score-column"):
        fairness_check(predictions(biased=False), load_thresholds(config))


def _run(tmp_path, preds: pd.DataFrame, *args: str):
    path = tmp_path / "preds.parquet"
    preds.to_parquet(path)
    return CliRunner().invoke(sdoh, ["fairness-check", "--predictions", str(path), *args])


def test_command_passes_the_unbiased_model(tmp_path, config):
    result = _run(tmp_path, predictions(biased=False), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "all 5 fairness checks passed" in result.output


def test_command_exits_3_and_names_the_crossed_thresholds(tmp_path, config):
    result = _run(tmp_path, predictions(biased=True), "--config", str(config),
                  "--group-column", "race")
    assert result.exit_code == 3
    assert "CROSSED race [all]: equal_opportunity_difference = 0.400, needs <= 0.1" in result.output
    assert "CROSSED race [all]: demographic_parity_ratio = 0.600, needs >= 0.8" in result.output


def test_command_checks_each_vintage(tmp_path, config):
    result = _run(tmp_path, _two_vintages(), "--config", str(config), "--time-column", "vintage")
    assert result.exit_code == 3
    assert "CROSSED race [2021]: equalized_odds_difference = 0.400" in result.output
    assert "[2019]" not in result.output.split("CROSSED", 1)[1]


@pytest.mark.parametrize(("args", "code", "match"), [
    (["--window", "Y"], 2, "--window needs --time-column"),
    (["--group-column", "payer"], 1, "lack column"),
])
def test_command_usage_and_project_errors_have_their_own_codes(tmp_path, config, args, code, match):
    result = _run(tmp_path, predictions(biased=True), "--config", str(config), *args)
    assert result.exit_code == code and match in result.output


# --- splitting a training frame by fairness role ---------------------------------------------

def _view(name: str, roles: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(name=name, features=[
        Field(name=f, dtype=Float64, tags={"fairness_role": r}) for f, r in roles.items()])


def test_split_by_fairness_role():
    roles = fairness_roles([_view("acs_tract", {"pct_poverty": "model_input",
                                                "pct_minority": "stratifier_only"}),
                            _view("patient_geography", {"geoid": "excluded_from_models"})])
    frame = pd.DataFrame({"patient_id": ["P1"], "acs_tract__pct_poverty": [0.1],
                          "acs_tract__pct_minority": [0.4], "patient_geography__geoid": ["X"],
                          "race_ethnicity": ["Hispanic"], "outcome": [1]})
    split = split_by_fairness_role(frame, roles, sensitive=["race_ethnicity"])
    assert list(split.model_inputs) == ["acs_tract__pct_poverty"]
    assert list(split.stratifiers) == ["acs_tract__pct_minority"]
    assert list(split.excluded) == ["patient_geography__geoid"]
    assert list(split.sensitive_attributes) == ["race_ethnicity"]
    assert list(split.other) == ["patient_id", "outcome"]


def test_fields_without_a_valid_role_are_refused():
    with pytest.raises(InputError, match="v.x has fairness_role 'maybe'"):
        fairness_roles([_view("v", {"x": "maybe"})])
    with pytest.raises(InputError, match="not in the frame"):
        split_by_fairness_role(pd.DataFrame({"a": [1]}), {}, sensitive=["race"])
