"""Hand a training frame to a model safely, and check the model's predictions for fairness.

* `fairness_roles` and `split_by_fairness_role` -- split a training frame's ``<view>__<feature>``
  columns into model inputs, sensitive attributes, stratifiers and excluded columns by the
  ``fairness_role`` tag of each Feast field (DESIGN.md section 4);
* `fairness_report` -- per patient group, selection rate, true and false positive rates and
  calibration, from fairlearn's `MetricFrame`, and the gaps between groups: demographic parity
  difference and ratio, equalized odds difference, equal opportunity difference (the true
  positive rate gap) and the calibration gap;
* `load_thresholds`, `check_thresholds` and `fairness_check` -- gate the gaps on limits kept in
  a YAML file (default ``sdoh_sources/catalog/fairness_thresholds.yaml``), as
  ``sdoh fairness-check`` does for a deployment pipeline;
* `fairness_drift` and `describe_drift` -- the same gaps per vintage or time window.

A rate that has no denominator in a group (a true positive rate where the group has no
positive outcome) is NaN and left out of that gap, never counted as 0. Gaps are point
estimates: small groups make them noisy, which ``min_group_size`` guards against.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.core.errors import InputError
from sdoh_sources.catalog import CatalogError
from sdoh_sources.fairness import METRICS, FairnessThresholds, load_fairness_thresholds

__all__ = [
    "FAIRNESS_ROLES",
    "METRICS",
    "FairnessReport",
    "FairnessSplit",
    "FairnessThresholds",
    "check_thresholds",
    "describe_drift",
    "fairness_check",
    "fairness_drift",
    "fairness_report",
    "fairness_roles",
    "load_thresholds",
    "split_by_fairness_role",
]

logger = logging.getLogger(__name__)

#: The ``fairness_role`` vocabulary of DESIGN.md section 4.
FAIRNESS_ROLES = ("model_input", "sensitive_attribute", "stratifier_only", "excluded_from_models")
#: Label of the window holding rows without a time value.
NO_WINDOW = "(none)"


# -- splitting a training frame -----------------------------------------------------------------


@dataclass(frozen=True)
class FairnessSplit:
    """A training frame's columns by fairness role; every part keeps the frame's index."""

    model_inputs: pd.DataFrame
    sensitive_attributes: pd.DataFrame
    stratifiers: pd.DataFrame
    excluded: pd.DataFrame
    other: pd.DataFrame  # keys, event columns, outcomes: columns no Feast field describes


def fairness_roles(views: Iterable) -> dict[str, str]:
    """Map each frame column ``<view>__<field>`` to its field's ``fairness_role`` tag.

    Parameters
    ----------
    views
        Feast feature views, e.g. ``store.list_feature_views()``.

    Returns
    -------
    dict
        Column name to role, for every field of every view.

    Raises
    ------
    InputError
        A field has no ``fairness_role`` tag or one outside `FAIRNESS_ROLES`.

    Examples
    --------
    >>> roles = fairness_roles(store.list_feature_views())
    >>> roles["acs_tract__pct_minority"]
    'stratifier_only'
    """
    roles = {}
    for view in views:
        for feast_field in view.features:
            role = feast_field.tags.get("fairness_role")
            if role not in FAIRNESS_ROLES:
                raise InputError(f"field {view.name}.{feast_field.name} has fairness_role {role!r}; "
                                 f"expected one of {FAIRNESS_ROLES}: re-run `sdoh apply`")
            roles[f"{view.name}__{feast_field.name}"] = role
    return roles


def split_by_fairness_role(
    frame: pd.DataFrame,
    roles: Mapping[str, str],
    *,
    sensitive: Sequence[str] = (),
) -> FairnessSplit:
    """Split a training frame into model inputs, sensitive attributes, stratifiers and the rest.

    Parameters
    ----------
    frame
        A training frame (columns ``<view>__<feature>`` plus event columns).
    roles
        Column to ``fairness_role``, as `fairness_roles` returns it.
    sensitive
        Further columns that are sensitive attributes, e.g. patient attributes such as
        ``"race_ethnicity"`` joined to the frame (they are not Feast fields).

    Returns
    -------
    FairnessSplit
        ``model_inputs`` (role ``model_input``), ``sensitive_attributes`` (``sensitive`` and
        role ``sensitive_attribute``), ``stratifiers`` (``stratifier_only``), ``excluded``
        (``excluded_from_models``) and ``other`` (columns without a role: keys, event
        columns, outcomes). A column without a role is never a model input.

    Raises
    ------
    InputError
        A ``sensitive`` column is not in ``frame``, or a role is outside `FAIRNESS_ROLES`.

    Examples
    --------
    >>> frame = pd.DataFrame({"a__x": [1.0], "a__p": [0.2], "race": ["B"], "outcome": [1]})
    >>> split = split_by_fairness_role(frame, {"a__x": "model_input", "a__p": "stratifier_only"},
    ...                                sensitive=["race"])
    >>> list(split.model_inputs), list(split.stratifiers), list(split.other)
    (['a__x'], ['a__p'], ['outcome'])
    """
    absent = [c for c in sensitive if c not in frame.columns]
    if absent:
        raise InputError(f"sensitive column(s) {absent} are not in the frame; join the patient "
                         "attributes to it first")
    bad = {c: r for c, r in roles.items() if r not in FAIRNESS_ROLES}
    if bad:
        raise InputError(f"roles outside {FAIRNESS_ROLES}: {bad}")
    role = {c: "sensitive_attribute" if c in sensitive else roles.get(c) for c in frame.columns}

    def part(name: str | None) -> pd.DataFrame:
        return frame[[c for c in frame.columns if role[c] == name]]

    return FairnessSplit(model_inputs=part("model_input"),
                         sensitive_attributes=part("sensitive_attribute"),
                         stratifiers=part("stratifier_only"),
                         excluded=part("excluded_from_models"),
                         other=part(None))


# -- the report ---------------------------------------------------------------------------------


def _rate(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean()) if where.any() else np.nan


def _selection_rate(y_true, y_pred) -> float:
    return _rate(np.asarray(y_pred), np.full(len(y_pred), True))


def _true_positive_rate(y_true, y_pred) -> float:
    return _rate(np.asarray(y_pred), np.asarray(y_true) == 1)


def _false_positive_rate(y_true, y_pred) -> float:
    return _rate(np.asarray(y_pred), np.asarray(y_true) == 0)


def _observed_rate(y_true, y_pred) -> float:
    return float(np.mean(y_true))


def _mean_predicted(y_true, y_pred) -> float:
    return float(np.mean(y_pred))


def _count(y_true, y_pred) -> int:
    return len(y_true)


@dataclass(frozen=True)
class FairnessReport:
    """Per-group rates, the gaps between groups, and per-group calibration of one model."""

    metrics: pd.Series
    by_group: pd.DataFrame
    calibration: pd.DataFrame | None = None
    dropped_groups: list[str] = field(default_factory=list)


def _binary(values: pd.Series, *, name: str) -> np.ndarray:
    if not values.isin([0, 1, True, False]).all():
        raise InputError(f"column {name!r} must hold 0/1 values; found {sorted(set(values))[:5]}")
    return values.astype(int).to_numpy()


def _groups(predictions: pd.DataFrame, group: str | Sequence[str]) -> pd.Series:
    """One label per row: the group column's value (several joined by ' & '), NaN as a group."""
    columns = [group] if isinstance(group, str) else list(group)
    labels = predictions[columns].astype(object).where(predictions[columns].notna(),
                                                       "(not recorded)").astype(str)
    return labels.agg(" & ".join, axis=1).rename(" & ".join(columns))


def fairness_report(
    predictions: pd.DataFrame,
    *,
    group: str | Sequence[str],
    label: str = "y_true",
    prediction: str = "y_pred",
    score: str | None = None,
    bins: int = 10,
    min_group_size: int = 1,
) -> FairnessReport:
    """Fairness gaps of a binary classifier's predictions across patient groups.

    Parameters
    ----------
    predictions
        One row per prediction, with the outcome, the 0/1 decision, optionally a score, and
        the group column(s).
    group
        Column defining the groups, or several (their combinations form the groups).
    label, prediction
        Columns of the observed 0/1 outcome and the 0/1 decision.
    score
        Column of the predicted probability; enables ``calibration`` and ``calibration_gap``.
    bins
        Number of equal-width probability bins of the calibration table.
    min_group_size
        Groups with fewer rows are dropped before anything is computed (listed in
        ``dropped_groups``).

    Returns
    -------
    FairnessReport
        ``by_group``: per group ``n``, ``positives``, ``selection_rate``,
        ``true_positive_rate``, ``false_positive_rate`` (NaN without positives or
        negatives), plus ``mean_predicted`` and ``observed_rate`` with a score.
        ``metrics``: ``demographic_parity_difference`` and ``_ratio`` (of selection
        rates), ``equal_opportunity_difference`` (largest minus smallest true positive rate),
        ``equalized_odds_difference`` (the larger of the true and false positive rate gaps)
        and ``calibration_gap`` (largest ``|mean_predicted - observed_rate|`` of a group;
        NaN without a score). ``calibration``: per group and score bin ``n``,
        ``mean_predicted`` and ``observed_rate``.

    Raises
    ------
    InputError
        A column is absent, outcome or decision is not 0/1, or no group is left.

    Examples
    --------
    >>> preds = pd.DataFrame({"y_true": [1, 1, 0, 1, 1, 0], "y_pred": [1, 1, 0, 1, 0, 0],
    ...                       "g": ["A", "A", "A", "B", "B", "B"]})
    >>> float(fairness_report(preds, group="g").metrics["equal_opportunity_difference"])
    0.5
    """
    from fairlearn.metrics import MetricFrame

    columns = [label, prediction, *([score] if score else []),
               *([group] if isinstance(group, str) else group)]
    absent = [c for c in columns if c not in predictions.columns]
    if absent:
        raise InputError(f"predictions lack column(s) {absent}; they have {list(predictions.columns)}")
    groups = _groups(predictions, group)
    sizes = groups.value_counts()
    dropped = sorted(sizes.index[sizes < min_group_size])
    keep = ~groups.isin(dropped)
    if not keep.any():
        raise InputError(f"no group has min_group_size={min_group_size} rows; groups: {sizes.to_dict()}")
    rows, groups = predictions[keep], groups[keep]
    y_true, y_pred = _binary(rows[label], name=label), _binary(rows[prediction], name=prediction)
    rates = MetricFrame(
        metrics={"n": _count, "positives": lambda t, p: int(np.sum(t)),
                 "selection_rate": _selection_rate, "true_positive_rate": _true_positive_rate,
                 "false_positive_rate": _false_positive_rate},
        y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    by_group = rates.by_group.astype({"n": int, "positives": int})
    calibration = None
    if score:
        calibrated = _calibration_frames(rows[score].to_numpy(dtype=float), y_true, groups, bins=bins)
        by_group = by_group.join(calibrated.by_group)
        calibration = calibrated.by_group_and_bin
    return FairnessReport(metrics=_gaps(by_group), by_group=by_group, calibration=calibration,
                          dropped_groups=[str(g) for g in dropped])


@dataclass(frozen=True)
class _Calibration:
    by_group: pd.DataFrame
    by_group_and_bin: pd.DataFrame


def _calibration_frames(scores: np.ndarray, y_true: np.ndarray, groups: pd.Series, *,
                        bins: int) -> _Calibration:
    """Mean predicted probability and observed rate per group, and per group and score bin."""
    from fairlearn.metrics import MetricFrame

    if np.isnan(scores).any() or (scores < 0).any() or (scores > 1).any():
        raise InputError("scores must be probabilities in [0, 1] without gaps")
    edges = np.linspace(0, 1, bins + 1)
    labels = [f"{a:.2f}-{b:.2f}" for a, b in zip(edges, edges[1:], strict=False)]
    score_bin = pd.Series(pd.cut(scores, edges, labels=labels, include_lowest=True),
                          index=groups.index, name="score_bin")
    metrics = {"mean_predicted": _mean_predicted, "observed_rate": _observed_rate}
    overall = MetricFrame(metrics=metrics, y_true=y_true, y_pred=scores, sensitive_features=groups)
    binned = MetricFrame(metrics={"n": _count, **metrics}, y_true=y_true, y_pred=scores,
                         sensitive_features=groups, control_features=score_bin)
    table = binned.by_group.dropna(subset=["n"]).astype({"n": int}).reset_index()
    table = table[[groups.name, "score_bin", "n", *metrics]].sort_values([groups.name, "score_bin"])
    return _Calibration(by_group=overall.by_group, by_group_and_bin=table.reset_index(drop=True))


def _gaps(by_group: pd.DataFrame) -> pd.Series:
    def spread(column: str) -> float:
        values = by_group[column].dropna()
        return float(values.max() - values.min()) if len(values) else np.nan

    selection = by_group["selection_rate"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(selection.min() / selection.max()) if selection.max() > 0 else np.nan
    calibration = (float((by_group["mean_predicted"] - by_group["observed_rate"]).abs().max())
                   if "mean_predicted" in by_group else np.nan)
    return pd.Series({
        "demographic_parity_difference": spread("selection_rate"),
        "demographic_parity_ratio": ratio,
        "equalized_odds_difference": max(spread("true_positive_rate"),
                                         spread("false_positive_rate")),
        "equal_opportunity_difference": spread("true_positive_rate"),
        "calibration_gap": calibration,
    }, name="value")


# -- thresholds ---------------------------------------------------------------------------------


def load_thresholds(path: str | Path | None = None) -> FairnessThresholds:
    """Read a fairness thresholds file (default: the project's packaged one).

    Parameters
    ----------
    path
        A YAML file with ``thresholds`` (metric to ``{max: ...}`` and/or ``{min: ...}``),
        optional ``min_group_size`` and ``group_columns``; None reads
        ``sdoh_sources/catalog/fairness_thresholds.yaml``.

    Returns
    -------
    FairnessThresholds

    Raises
    ------
    InputError
        The file at ``path`` is not valid YAML, names a metric outside `METRICS`, a bound is
        not a number under ``max``/``min``, or a key is unknown.
    CatalogError
        The same, in the packaged file.

    Examples
    --------
    >>> load_thresholds().limits["demographic_parity_ratio"]
    {'min': 0.8}
    """
    if path is None:
        return load_fairness_thresholds()
    try:
        return load_fairness_thresholds(path)
    except CatalogError as exc:
        raise InputError(str(exc)) from exc  # a user's file is an input, not the catalog


def check_thresholds(metrics: pd.Series, limits: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Compare each bounded metric with its limits; a metric that could not be computed fails.

    Parameters
    ----------
    metrics
        `FairnessReport.metrics`.
    limits
        Metric to ``{"max": x}`` and/or ``{"min": y}``, as in `FairnessThresholds.limits`.

    Returns
    -------
    pandas.DataFrame
        One row per metric and bound: ``metric``, ``value``, ``bound`` (``max``/``min``),
        ``limit`` and ``passed``.

    Examples
    --------
    >>> check_thresholds(pd.Series({"equal_opportunity_difference": 0.4}),
    ...                  {"equal_opportunity_difference": {"max": 0.1}})["passed"].tolist()
    [False]
    """
    rows = []
    for metric, bounds in limits.items():
        value = float(metrics.get(metric, np.nan))
        for bound, limit in bounds.items():
            passed = value <= limit if bound == "max" else value >= limit
            rows.append({"metric": metric, "value": value, "bound": bound, "limit": limit,
                         "passed": bool(passed)})  # NaN compares False: not shown to pass
    return pd.DataFrame(rows, columns=["metric", "value", "bound", "limit", "passed"])


# -- drift and the gate -------------------------------------------------------------------------


def _windows(predictions: pd.DataFrame, *, time_column: str, window: str | None) -> pd.Series:
    """Label each row with its window: a period of ``time_column``, or its value.

    ``window`` is a pandas period alias such as ``"Y"`` or ``"Q"``; without it each value of
    ``time_column`` (e.g. a vintage) is a window.
    """
    if time_column not in predictions.columns:
        raise InputError(f"predictions lack time column {time_column!r}; "
                         f"they have {list(predictions.columns)}")
    values = predictions[time_column]
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")  # vintages with gaps read as floats: "2021", not "2021.0"
    if window is None:
        labels = values.astype("string").astype(object)
    else:
        times = pd.to_datetime(values, utc=True, errors="coerce").dt.tz_localize(None)
        try:
            labels = times.dt.to_period(window).astype("string").astype(object)
        except ValueError as exc:
            raise InputError(f"window {window!r} is not a pandas period alias; try 'Y', 'Q' "
                             "or 'M'") from exc
    return labels.where(labels.notna(), NO_WINDOW)


def fairness_drift(
    predictions: pd.DataFrame,
    *,
    group: str | Sequence[str],
    time_column: str,
    window: str | None = None,
    label: str = "y_true",
    prediction: str = "y_pred",
    score: str | None = None,
    min_group_size: int = 1,
) -> pd.DataFrame:
    """The fairness gaps per vintage or time window, and how each changed from the window before.

    Parameters
    ----------
    predictions, group, label, prediction, score, min_group_size
        As for `fairness_report`, applied to each window's rows.
    time_column
        Column placing each row in time: a vintage (each value is a window) or a timestamp
        (binned by ``window``).
    window
        Pandas period alias (``"Y"``, ``"Q"``, ``"M"``) to bin a timestamp column by; None
        uses the column's values as they are.

    Returns
    -------
    pandas.DataFrame
        One row per window and metric of `METRICS`, windows in order (rows without a time
        value last, as ``"(none)"``): ``window``, ``n``, ``metric``, ``value`` and ``change``
        (the value minus the previous window's; NaN in the first window).

    Raises
    ------
    InputError
        As `fairness_report`, for any window; or ``time_column`` is absent or ``window`` is
        not a period alias.

    Examples
    --------
    >>> preds = pd.DataFrame({"y_true": [1, 1, 0, 1, 1, 0] * 2, "y_pred": [1, 1, 0, 1, 0, 0] * 2,
    ...                       "g": list("AAABBB") * 2, "vintage": [2021] * 6 + [2022] * 6})
    >>> preds.loc[10, "y_pred"] = 1  # in 2022 group B's second positive is found too
    >>> drift = fairness_drift(preds, group="g", time_column="vintage")
    >>> drift.loc[drift["metric"] == "equal_opportunity_difference", ["window", "value", "change"]]
      window  value  change
    3   2021    0.5     NaN
    8   2022    0.0    -0.5
    """
    labels = _windows(predictions, time_column=time_column, window=window)
    order = sorted(set(labels) - {NO_WINDOW}) + ([NO_WINDOW] if NO_WINDOW in set(labels) else [])
    parts = []
    for name in order:
        rows = predictions[labels == name]
        report = fairness_report(rows, group=group, label=label, prediction=prediction,
                                 score=score, min_group_size=min_group_size)
        parts.append(pd.DataFrame({"window": name, "n": len(rows), "metric": report.metrics.index,
                                   "value": report.metrics.to_numpy()}))
    drift = pd.concat(parts, ignore_index=True)
    drift["change"] = drift.groupby("metric", sort=False)["value"].diff()
    return drift


def describe_drift(drift: pd.DataFrame, *, metric: str = "equalized_odds_difference") -> str:
    """Say in one sentence how a gap moved from the first window to the last, and at the last.

    Parameters
    ----------
    drift
        A `fairness_drift` result; rows without a time value (``"(none)"``) are not compared.
    metric
        Which gap to describe.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        ``metric`` is not in ``drift`` or fewer than two windows hold a value.

    Examples
    --------
    >>> drift = pd.DataFrame({"window": ["2019", "2020", "2021"], "n": 50, "metric": "x",
    ...                       "value": [0.05, 0.12, 0.10], "change": [np.nan, 0.07, -0.02]})
    >>> describe_drift(drift, metric="x")
    'x grew from 0.050 in 2019 to 0.100 in 2021 (+0.050); with 2021 it shrank by 0.020 from 2020.'
    """
    rows = drift[(drift["metric"] == metric) & drift["value"].notna() & (drift["window"] != NO_WINDOW)]
    if len(rows) < 2:
        raise ValueError(f"{metric!r} has a value in {len(rows)} window(s) of the drift table; "
                         "need two to compare (check the metric name and the time column)")
    first, before, last = rows.iloc[0], rows.iloc[-2], rows.iloc[-1]

    def moved(change: float) -> str:
        return "grew" if change > 0 else "shrank" if change < 0 else "held"

    overall, latest = last["value"] - first["value"], last["value"] - before["value"]
    return (f"{metric} {moved(overall)} from {first['value']:.3f} in {first['window']} to "
            f"{last['value']:.3f} in {last['window']} ({overall:+.3f}); with {last['window']} it "
            f"{moved(latest)} by {abs(latest):.3f} from {before['window']}.")


def fairness_check(
    predictions: pd.DataFrame,
    thresholds: FairnessThresholds,
    *,
    group_columns: Sequence[str] = (),
    label: str = "y_true",
    prediction: str = "y_pred",
    score: str | None = None,
    time_column: str | None = None,
    window: str | None = None,
) -> pd.DataFrame:
    """Check every group column's gaps against the thresholds, overall and per time window.

    Parameters
    ----------
    predictions, label, prediction, score
        As for `fairness_report`.
    thresholds
        From `load_thresholds`.
    group_columns
        Attributes to check, each on its own; empty uses ``thresholds.group_columns``.
    time_column, window
        As for `fairness_drift`; when given, each window is checked too.

    Returns
    -------
    pandas.DataFrame
        `check_thresholds` rows with ``group_column`` and ``window`` (``"all"`` for the
        whole file) in front. The check passes when ``passed`` is true on every row.

    Raises
    ------
    InputError
        No group column is given, a column is absent, or a calibration limit is set without
        a ``score`` column.

    Examples
    --------
    Thirty rows per payer (the catalog's ``min_group_size``), medicaid's positives all found:

    >>> preds = pd.DataFrame({"y_true": [1, 1, 0, 1, 1, 0] * 10, "y_pred": [1, 1, 0, 1, 0, 0] * 10,
    ...                       "score": [0.9, 0.8, 0.2, 0.7, 0.4, 0.1] * 10,
    ...                       "payer": (["medicaid"] * 3 + ["commercial"] * 3) * 10})
    >>> checks = fairness_check(preds, load_thresholds(), group_columns=["payer"], score="score")
    >>> checks[["window", "metric", "value", "limit", "passed"]].round(3)
      window                         metric  value  limit  passed
    0    all  demographic_parity_difference  0.333   0.10   False
    1    all       demographic_parity_ratio  0.500   0.80   False
    2    all      equalized_odds_difference  0.500   0.10   False
    3    all   equal_opportunity_difference  0.500   0.10   False
    4    all                calibration_gap  0.267   0.05   False
    """
    columns = list(group_columns) or list(thresholds.group_columns)
    if not columns:
        raise InputError("no group column: pass --group-column or set group_columns in the thresholds file")
    if "calibration_gap" in thresholds.limits and score is None:
        raise InputError("the thresholds bound calibration_gap, which needs predicted probabilities: "
                         "pass the score column (--score-column)")
    options = {"label": label, "prediction": prediction, "score": score,
               "min_group_size": thresholds.min_group_size}
    parts = []
    for column in columns:
        metrics = fairness_report(predictions, group=column, **options).metrics
        per_column = [check_thresholds(metrics, thresholds.limits).assign(window="all")]
        if time_column is not None:
            drift = fairness_drift(predictions, group=column, time_column=time_column,
                                   window=window, **options)
            per_column += [check_thresholds(values.set_index("metric")["value"],
                                            thresholds.limits).assign(window=name)
                           for name, values in drift.groupby("window", sort=False)]
        parts += [part.assign(group_column=column) for part in per_column]
    checks = pd.concat(parts, ignore_index=True)
    return checks[["group_column", "window", *checks.columns.drop(["group_column", "window"])]]
