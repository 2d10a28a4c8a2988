"""Who is missing SDOH features, how often, and why: coverage by patient subgroup.

A feature column of a training frame (``<view>__<feature>``) is *covered* on a row when its
value is present. Its ``<feature>_missing`` column says why it is not, and its
``<feature>_reliability`` column (ACS estimates) says how far a present value can be trusted.
The functions here turn those columns into the tables an equity review needs:

* `feature_coverage` -- one feature by one patient attribute: coverage with Wilson confidence
  intervals, the share of covered values with low or unknown reliability, the commonest missing
  reasons, and the missing rate's difference (with Newcombe's interval) and ratio against a
  reference group;
* `coverage_table` -- the same for several features and attributes, stacked;
* `largest_gaps` and `describe_gaps` -- per feature and attribute, the group furthest above
  its reference, as a table and in words;
* `missingness_odds_ratios` -- odds ratios of lacking a feature per subgroup, adjusted for
  the other attributes by a logistic regression (`fit_logistic`, Newton's method with Wald
  intervals);
* `missing_reasons_table` -- rows per missing reason, overall or by subgroup;
* `gaps_by_area` -- per area (e.g. 2020 block group), the share of linked events with a missing
  or low-reliability feature, for maps;
* `wilson_interval` and `age_band` -- the helpers behind them.

Rows whose missing reason is in ``exclude_reasons`` (by default ``not_yet_released``: an event
before a vintage was published) are dropped before anything is counted, since they are not a
gap in a patient's coverage. Areas describe places, not persons: these tables say whose
records lack an area-level value, not anything about the persons themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ingestion.core.errors import InputError

__all__ = [
    "DEFAULT_EXCLUDED_REASONS",
    "FLAGGED_RELIABILITY",
    "age_band",
    "attach_group",
    "check_unit",
    "coverage_table",
    "describe_gaps",
    "feature_coverage",
    "fit_logistic",
    "gap_to_reference",
    "gaps_by_area",
    "group_order",
    "largest_gaps",
    "missing_reasons_table",
    "missingness_odds_ratios",
    "reference_group",
    "require_columns",
    "wilson_interval",
]

logger = logging.getLogger(__name__)

#: Missing reasons that are not a coverage gap: the data did not exist yet at the event.
DEFAULT_EXCLUDED_REASONS: tuple[str, ...] = ("not_yet_released",)
#: Reliability classes that flag a present value as doubtful.
FLAGGED_RELIABILITY: tuple[str, ...] = ("low", "unknown")
#: Group label for patients whose attribute is empty or who are absent from the patients table.
NOT_RECORDED = "(not recorded)"
#: Label for a missing value that has no typed reason (the pipeline should never produce one).
UNEXPLAINED = "unexplained"

_UNITS = ("event", "patient")
_AGE_EDGES = (0, 18, 35, 50, 65, 80)


def wilson_interval(
    successes: ArrayLike,
    n: ArrayLike,
    *,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions, element-wise.

    Parameters
    ----------
    successes
        Counts of successes (scalar or array-like), ``0 <= successes <= n``.
    n
        Numbers of trials, broadcastable against ``successes``. Where ``n`` is 0 both bounds
        are NaN.
    confidence
        Two-sided confidence level, strictly between 0 and 1.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lower, upper)``, each of the broadcast shape (0-d for scalar input), within [0, 1];
        the lower bound is exactly 0 when ``successes`` is 0 and the upper exactly 1 when it
        equals ``n``.

    Raises
    ------
    ValueError
        ``confidence`` is not in (0, 1), or a count is negative or exceeds ``n``.

    Examples
    --------
    >>> low, high = wilson_interval(8, 10)
    >>> round(float(low), 4), round(float(high), 4)
    (0.4902, 0.9433)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    k, total = np.broadcast_arrays(np.asarray(successes, dtype=float), np.asarray(n, dtype=float))
    if np.any(k < 0) or np.any(k > total):
        raise ValueError("successes must satisfy 0 <= successes <= n element-wise")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / total
        denom = 1 + z**2 / total
        center = (p + z**2 / (2 * total)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / total + z**2 / (4 * total**2))
    lower = np.where(k == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    upper = np.where(k == total, 1.0, np.clip(center + half, 0.0, 1.0))
    empty = total == 0
    return np.where(empty, np.nan, lower), np.where(empty, np.nan, upper)


def age_band(
    birth_date: pd.Series,
    at: pd.Series | pd.Timestamp | str,
    *,
    edges: Sequence[int] = _AGE_EDGES,
) -> pd.Series:
    """Age in completed years at ``at``, binned into ordered bands such as ``"18-34"``.

    Parameters
    ----------
    birth_date
        Dates of birth (dates, timestamps or ISO strings).
    at
        When to measure age: one time, or a Series aligned with ``birth_date`` by index
        (time-zone-aware times are taken in UTC).
    edges
        Increasing lower edges of the bands, starting at 0; the last band is open
        (``"80+"``).

    Returns
    -------
    pandas.Series
        Ordered categorical with the index of ``birth_date``; NaN where a date is missing or
        ``at`` precedes the birth.

    Raises
    ------
    ValueError
        ``edges`` is empty, does not start at 0 or is not increasing.

    Examples
    --------
    >>> births = pd.Series(["2000-06-15", "1950-01-01"])
    >>> age_band(births, "2018-06-14").tolist()
    ['0-17', '65-79']
    """
    edges = list(edges)
    if not edges or edges[0] != 0 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"edges must be increasing and start at 0, got {edges!r}")
    born = pd.to_datetime(pd.Series(birth_date), errors="coerce")
    when = _naive_times(at, index=born.index)
    before_birthday = (when.dt.month < born.dt.month) | (
        (when.dt.month == born.dt.month) & (when.dt.day < born.dt.day)
    )
    years = when.dt.year - born.dt.year - before_birthday.astype(int)
    years = years.where(born.notna() & when.notna() & (years >= 0))
    labels = [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:], strict=False)] + [f"{edges[-1]}+"]
    return pd.cut(years, bins=[*edges, np.inf], right=False, labels=labels)


def _naive_times(at: pd.Series | pd.Timestamp | str, *, index: pd.Index) -> pd.Series:
    """``at`` in UTC without a time zone, one per row of ``index`` (a scalar is repeated)."""
    if isinstance(at, pd.Series):
        when = pd.to_datetime(at, errors="coerce", utc=True)
    else:
        when = pd.Series(pd.to_datetime(at, utc=True), index=index)
    return when.dt.tz_localize(None)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    """Raise `InputError` naming the ``columns`` that ``frame`` (called ``what``) lacks.

    Examples
    --------
    >>> require_columns(pd.DataFrame(columns=["patient_id"]), ["patient_id"], what="frame")
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        shown = ", ".join(map(str, frame.columns[:12])) + (", ..." if frame.shape[1] > 12 else "")
        raise InputError(f"{what} lacks column(s) {missing}; it has {shown}")


def check_unit(unit: str) -> None:
    """Raise ValueError unless ``unit`` is ``"event"`` or ``"patient"``.

    Examples
    --------
    >>> check_unit("patient")
    """
    if unit not in _UNITS:
        raise ValueError(f"unit must be one of {_UNITS}, got {unit!r}")


def _feature_rows(
    frame: pd.DataFrame, *, feature: str, exclude_reasons: Sequence[str]
) -> pd.DataFrame:
    """Per frame row not excluded: whether ``feature`` is covered, why not, and any doubt.

    ``flagged`` is true for a covered value of low or unknown reliability (NaN without a
    reliability column); ``problem`` is the missing reason, ``"<class>_reliability"`` for a
    flagged value, else None.
    """
    require_columns(frame, ["patient_id", "event_timestamp", feature], what="frame")
    covered = frame[feature].notna()
    reason = frame.get(f"{feature}_missing", pd.Series(None, index=frame.index))
    reason = reason.astype(object).where(~covered, None)
    reason = reason.mask(~covered & reason.isna(), UNEXPLAINED)
    reliability = frame.get(f"{feature}_reliability")
    if reliability is None:
        flagged = pd.Series(np.nan, index=frame.index)
        doubt = pd.Series(None, index=frame.index, dtype=object)
    else:  # a present value without a class has unknown reliability
        level = reliability.astype(object).where(reliability.notna(), "unknown")
        flagged = level.isin(FLAGGED_RELIABILITY) & covered
        doubt = (level.astype(str) + "_reliability").where(flagged, None)
    rows = pd.DataFrame({
        "patient_id": frame["patient_id"].astype(str),
        "event_timestamp": frame["event_timestamp"],
        "covered": covered,
        "reason": reason,
        "flagged": flagged,
        "problem": reason.where(~covered, doubt),
    })
    keep = ~reason.isin(list(exclude_reasons))
    logger.debug("%s: %d of %d rows excluded", feature, int((~keep).sum()), len(rows))
    return rows[keep]


def _latest_per_patient(rows: pd.DataFrame) -> pd.DataFrame:
    """Each patient's latest row (the last in frame order among tied timestamps)."""
    ordered = rows.sort_values("event_timestamp", kind="stable")
    return ordered[~ordered["patient_id"].duplicated(keep="last")].sort_index()


def attach_group(rows: pd.DataFrame, patients: pd.DataFrame, *, by: str,
                  frame: pd.DataFrame) -> pd.Series:
    """Look up ``by`` per row: a patient attribute, else an event attribute of ``frame``.

    ``rows`` holds ``patient_id`` and ``event_timestamp`` on (a subset of) ``frame``'s index.
    ``"age_band"`` is the age at the event; an event attribute such as ``"rurality"`` (of the
    address at the event, `equity.rurality`) is the row's own value. Missing values form the
    group ``"(not recorded)"``.

    Examples
    --------
    >>> rows = pd.DataFrame({"patient_id": ["A", "Z"], "event_timestamp": ["2021-01-01"] * 2})
    >>> attach_group(rows, pd.DataFrame({"patient_id": ["A"], "payer": ["medicaid"]}),
    ...              by="payer", frame=rows).tolist()
    ['medicaid', '(not recorded)']
    """
    if by in frame.columns and by not in patients.columns:
        return _as_group(frame.loc[rows.index, by])
    derived = by == "age_band" and by not in patients.columns
    require_columns(patients, ["patient_id", "birth_date" if derived else by], what="patients")
    ids = patients["patient_id"].astype(str)
    if ids.duplicated().any():
        first = ids[ids.duplicated()].iloc[0]
        raise InputError(f"patients must list each patient once; {first!r} is repeated")
    lookup = patients.set_axis(ids)
    if derived:
        born = rows["patient_id"].map(lookup["birth_date"])
        group = age_band(born, rows["event_timestamp"])
    else:
        group = rows["patient_id"].map(lookup[by])
    return _as_group(group)


def _as_group(group: pd.Series) -> pd.Series:
    """Group labels, with missing values as their own group ``"(not recorded)"``."""
    if isinstance(group.dtype, pd.CategoricalDtype):
        return group.cat.add_categories([NOT_RECORDED]).fillna(NOT_RECORDED)
    return group.astype(object).where(group.notna(), NOT_RECORDED).astype(str)


def _assessed(
    frame: pd.DataFrame,
    patients: pd.DataFrame | None,
    *,
    feature: str,
    by: str | None,
    exclude_reasons: Sequence[str],
    unit: str,
) -> pd.DataFrame:
    check_unit(unit)
    rows = _feature_rows(frame, feature=feature, exclude_reasons=exclude_reasons)
    if unit == "patient":
        rows = _latest_per_patient(rows)
    if by is not None:
        if patients is None:
            raise ValueError(f"patients is required to group by {by!r}")
        rows["group"] = attach_group(rows, patients, by=by, frame=frame)
    return rows


def group_order(counts: pd.Series, group: pd.Series) -> list:
    """Categorical order if the groups have one, else largest group first (ties by name).

    Examples
    --------
    >>> group_order(pd.Series({"b": 1, "a": 1, "c": 5}), pd.Series(["a", "b", "c"]))
    ['c', 'a', 'b']
    """
    if isinstance(group.dtype, pd.CategoricalDtype) and group.cat.ordered:
        return [c for c in group.cat.categories if counts.get(c, 0) > 0]
    return sorted(counts.index, key=lambda g: (-counts[g], str(g)))


def _commonest(values: pd.Series, keys: pd.Series, *, top: int) -> dict:
    """Per key, the ``top`` commonest values as ``"value: count, ..."`` (ties by name)."""
    text = {}
    for key, part in values.groupby(keys, observed=True):
        counts = part.value_counts().sort_index().sort_values(ascending=False, kind="stable")
        text[key] = ", ".join(f"{v}: {n}" for v, n in counts.head(top).items())
    return text


def feature_coverage(
    frame: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    feature: str,
    by: str,
    reference: str | None = None,
    exclude_reasons: Sequence[str] = DEFAULT_EXCLUDED_REASONS,
    unit: str = "event",
    confidence: float = 0.95,
    top_reasons: int = 3,
) -> pd.DataFrame:
    """Coverage of one feature per patient subgroup, with missing-rate gaps against a reference.

    Parameters
    ----------
    frame
        A training frame: ``patient_id``, ``event_timestamp``, the ``feature`` column and,
        when they exist, ``<feature>_missing`` and ``<feature>_reliability``.
    patients
        One row per patient: ``patient_id`` and the ``by`` column (or ``birth_date`` for
        ``by="age_band"``, the age at each event in `age_band`'s default bands).
    feature
        The feature column, e.g. ``"adi_block_group__adi_national_rank"``.
    by
        Patient attribute defining the groups, e.g. ``"race_ethnicity"``, or a column of
        ``frame`` that ``patients`` lacks: an attribute of each event, such as the ``rurality``
        of the address at the event (`equity.rurality.add_rurality`). Patients without a
        value (or absent from ``patients``) form the group ``"(not recorded)"``.
    reference
        Group the missing rate is compared with; by default the largest group (most rows;
        on a tie, the first listed).
    exclude_reasons
        Missing reasons whose rows are dropped first (not a coverage gap).
    unit
        ``"event"`` counts frame rows; ``"patient"`` counts each patient once, at their latest
        event that is not excluded.
    confidence
        Level of the Wilson intervals.
    top_reasons
        How many missing reasons to list per group.

    Returns
    -------
    pandas.DataFrame
        One row per group (largest first; age bands in age order) with ``feature``, ``by``,
        ``group``, ``n``, ``covered``, ``coverage`` and its Wilson interval
        (``coverage_low``, ``coverage_high``), ``missing_rate`` (``1 - coverage``) and its
        interval (``missing_low``, ``missing_high``), ``missing_diff`` (the group's missing
        rate minus the reference group's) with its Newcombe hybrid score interval
        (``missing_diff_low``, ``missing_diff_high``; NaN on the reference row),
        ``missing_ratio`` (the group's missing rate divided by the reference's; ``inf`` when
        only the reference rate is 0, NaN when both are), ``is_reference``,
        ``low_reliability_rate`` (share of covered values whose reliability is low or
        unknown; NaN without a reliability column or without covered values) with its Wilson
        interval (``low_reliability_low``, ``low_reliability_high``) and the same difference,
        interval and ratio against the reference (``low_reliability_diff``,
        ``low_reliability_diff_low``, ``low_reliability_diff_high``,
        ``low_reliability_ratio``), and ``top_missing_reasons``. ``attrs`` holds ``reference``, ``unit`` and
        ``exclude_reasons``.

    Raises
    ------
    InputError
        A required column is absent, or ``patients`` repeats a patient.
    ValueError
        ``unit`` is unknown, ``reference`` is not one of the groups, or no row is left.

    Examples
    --------
    >>> table = feature_coverage(frame, patients, feature="acs_tract__pct_below_poverty",
    ...                          by="race_ethnicity")
    >>> table[["group", "n", "missing_rate", "missing_ratio"]]
       group  n  missing_rate  missing_ratio
    0  black  6      0.666667            1.0
    1  white  6      1.000000            1.5
    """
    rows = _assessed(frame, patients, feature=feature, by=by,
                     exclude_reasons=exclude_reasons, unit=unit)
    if rows.empty:
        raise ValueError(f"no {unit} is left for {feature!r} after excluding {exclude_reasons}")
    stats = rows.groupby("group", observed=True).agg(
        n=("covered", "size"), covered=("covered", "sum"),
        flagged=("flagged", lambda s: s.sum(min_count=1)))
    stats = stats.loc[group_order(stats["n"], rows["group"])]
    reference = reference_group(stats, reference=reference, by=by)
    out = _rates(stats, confidence=confidence)
    out = out.join(gap_to_reference(out, reference=reference, prefix="missing"))
    out["is_reference"] = out.index == reference
    flagged = _low_reliability(stats, confidence=confidence)
    out = out.join(flagged).join(gap_to_reference(flagged, reference=reference,
                                                   prefix="low_reliability"))
    missing = rows.loc[~rows["covered"]]
    reasons = _commonest(missing["reason"], missing["group"], top=top_reasons)
    out["top_missing_reasons"] = [reasons.get(g, "") for g in out.index]
    out = out.rename_axis("group").reset_index()
    out.insert(0, "by", by)
    out.insert(0, "feature", feature)
    out["group"] = out["group"].astype(str)
    out.attrs.update(reference=str(reference), unit=unit, exclude_reasons=tuple(exclude_reasons))
    return out


def reference_group(stats: pd.DataFrame, *, reference: str | None, by: str) -> object:
    """``reference`` if it is a group (an index label) of ``stats``, else by default the largest.

    Examples
    --------
    >>> reference_group(pd.DataFrame({"n": [2, 5]}, index=["a", "b"]), reference=None, by="payer")
    'b'
    """
    if reference is None:
        return stats["n"].idxmax()
    if reference not in stats.index:
        raise ValueError(f"reference {reference!r} is not a group of {by!r}; "
                         f"groups are {[str(g) for g in stats.index]}")
    return reference


def _rates(stats: pd.DataFrame, *, confidence: float) -> pd.DataFrame:
    n, covered = stats["n"].to_numpy(), stats["covered"].to_numpy()
    low, high = wilson_interval(covered, n, confidence=confidence)
    return pd.DataFrame({
        "n": n,
        "covered": covered,
        "coverage": covered / n,
        "coverage_low": low,
        "coverage_high": high,
        "missing_rate": 1 - covered / n,
        "missing_low": 1 - high,
        "missing_high": 1 - low,
    }, index=stats.index)


def _low_reliability(stats: pd.DataFrame, *, confidence: float) -> pd.DataFrame:
    """Share of covered values flagged low or unknown reliability, with its Wilson interval."""
    covered = stats["covered"].where(stats["covered"] > 0)
    low, high = wilson_interval(stats["flagged"].fillna(0), covered.fillna(0), confidence=confidence)
    unknown = stats["flagged"].isna() | covered.isna()
    return pd.DataFrame({
        "low_reliability_rate": stats["flagged"] / covered,
        "low_reliability_low": np.where(unknown, np.nan, low),
        "low_reliability_high": np.where(unknown, np.nan, high),
    }, index=stats.index)


def gap_to_reference(rates: pd.DataFrame, *, reference: object, prefix: str) -> pd.DataFrame:
    """Difference (Newcombe hybrid score interval) and ratio of ``<prefix>_rate`` against a group.

    ``rates`` holds ``<prefix>_rate`` and its Wilson bounds ``<prefix>_low``/``<prefix>_high``;
    the result has ``<prefix>_diff`` (with ``_diff_low`` and ``_diff_high``, NaN on the
    reference row) and ``<prefix>_ratio``.

    Examples
    --------
    >>> rates = pd.DataFrame({"x_rate": [0.5, 0.25], "x_low": [0.3, 0.1], "x_high": [0.7, 0.5]},
    ...                      index=["a", "b"])
    >>> gap_to_reference(rates, reference="b", prefix="x")[["x_diff", "x_ratio"]].loc["a"].tolist()
    [0.25, 2.0]
    """
    p, low, high = (rates[f"{prefix}_{c}"] for c in ("rate", "low", "high"))
    ref_p, ref_low, ref_high = p[reference], low[reference], high[reference]
    diff = p - ref_p
    is_ref = rates.index == reference
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = p.to_numpy() / ref_p
    return pd.DataFrame({
        f"{prefix}_diff": diff,
        f"{prefix}_diff_low": (diff - np.hypot(p - low, ref_high - ref_p)).mask(is_ref),
        f"{prefix}_diff_high": (diff + np.hypot(high - p, ref_p - ref_low)).mask(is_ref),
        f"{prefix}_ratio": ratio,
    }, index=rates.index)


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def coverage_table(
    frame: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    features: str | Sequence[str],
    by: str | Sequence[str],
    reference: Mapping[str, str] | None = None,
    exclude_reasons: Sequence[str] = DEFAULT_EXCLUDED_REASONS,
    unit: str = "event",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """`feature_coverage` for every feature and patient attribute, stacked for display.

    Parameters
    ----------
    frame, patients
        As for `feature_coverage`.
    features
        One feature column or several.
    by
        One patient attribute or several.
    reference
        Reference group per attribute, e.g. ``{"payer": "Commercial"}``; attributes not named
        use their largest group.
    exclude_reasons, unit, confidence
        As for `feature_coverage`.

    Returns
    -------
    pandas.DataFrame
        The `feature_coverage` tables, feature by feature and attribute by attribute, with a
        fresh index.

    Raises
    ------
    InputError, ValueError
        As `feature_coverage`.

    Examples
    --------
    >>> table = coverage_table(frame, patients, features=["acs_tract__pct_below_poverty"],
    ...                        by=["race_ethnicity", "payer"])
    >>> table[["by", "group", "n", "missing_rate"]]
                   by       group  n  missing_rate
    0  race_ethnicity       black  6      0.666667
    1  race_ethnicity       white  6      1.000000
    2           payer  commercial  6      1.000000
    3           payer    medicaid  6      0.666667
    """
    reference = dict(reference or {})
    parts = [
        feature_coverage(frame, patients, feature=f, by=b, reference=reference.get(b),
                         exclude_reasons=exclude_reasons, unit=unit, confidence=confidence)
        for f in _as_list(features) for b in _as_list(by)
    ]
    return pd.concat(parts, ignore_index=True)


def largest_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Per feature and attribute, the group whose missing rate most exceeds the reference's.

    Parameters
    ----------
    table
        A `feature_coverage` or `coverage_table` result.

    Returns
    -------
    pandas.DataFrame
        One row per (``feature``, ``by``): the non-reference group with the largest
        ``missing_ratio`` (ties: larger ``missing_diff``, then table order), with its columns
        plus ``reference``, ``reference_missing_rate`` and ``clear_gap`` (true when the
        difference's interval lies above 0). A ``missing_ratio`` of 1 or less means no group
        lacks the feature more often than the reference.

    Raises
    ------
    InputError
        ``table`` lacks a `feature_coverage` column.

    Examples
    --------
    >>> gaps = largest_gaps(coverage_table(frame, patients, features=["acs_tract__pct_below_poverty"],
    ...                                    by=["race_ethnicity", "payer"]))
    >>> gaps[["by", "group", "missing_rate"]]
                   by     group  missing_rate
    0  race_ethnicity     white      1.000000
    1           payer  medicaid      0.666667
    """
    require_columns(table, ["feature", "by", "group", "is_reference", "missing_rate", "missing_ratio",
                     "missing_diff", "missing_diff_low"], what="table")
    keys = ["feature", "by"]
    refs = table.loc[table["is_reference"], [*keys, "group", "missing_rate"]].rename(
        columns={"group": "reference", "missing_rate": "reference_missing_rate"})
    others = table.loc[~table["is_reference"]].assign(_order=lambda t: np.arange(len(t)))
    ranked = others.sort_values(["missing_ratio", "missing_diff", "_order"],
                                ascending=[False, False, True], na_position="last")
    worst = ranked.drop_duplicates(keys).sort_values("_order").drop(columns="_order")
    out = worst.merge(refs, on=keys, how="left")
    out["clear_gap"] = out["missing_diff_low"] > 0
    return out


def describe_gaps(table: pd.DataFrame, *, unit: str = "event") -> str:
    """Say in Markdown, per feature and attribute, how far the largest gap exceeds the reference.

    Parameters
    ----------
    table
        A `feature_coverage` or `coverage_table` result.
    unit
        The table's unit (``"event"`` or ``"patient"``), used to name what was counted.

    Returns
    -------
    str
        One Markdown bullet per row of `largest_gaps`: the group, its missing rate and
        interval, the ratio to the reference group, and whether the difference's 95% interval
        lies above 0; or that no group lacks the feature more often than the reference. Each
        bullet names the attribute, and the feature too when ``table`` holds several.

    Raises
    ------
    InputError
        ``table`` lacks a `feature_coverage` column.
    ValueError
        ``unit`` is unknown.

    Examples
    --------
    >>> print(describe_gaps(feature_coverage(frame, patients, feature="acs_tract__pct_below_poverty",
    ...                                      by="home_area")))
    - **home_area**: no group lacks it more often than the reference `rural` (100.0%).
    """
    check_unit(unit)
    several = table["feature"].nunique() > 1
    return "\n".join(_gap_sentence(gap, noun=f"{unit}s", named=several)
                     for _, gap in largest_gaps(table).iterrows())


def _gap_sentence(gap: pd.Series, *, noun: str, named: bool) -> str:
    head = f"- {'`' + gap['feature'] + '` by ' if named else ''}**{gap['by']}**: "
    if not gap["missing_ratio"] > 1:
        return (head + f"no group lacks it more often than the reference `{gap['reference']}` "
                f"({gap['reference_missing_rate']:.1%}).")
    verdict = ("a 95% interval above 0" if gap["clear_gap"]
               else "a 95% interval that includes 0, so it may be chance")
    return (head + f"`{gap['group']}` lacks it in {gap['missing_rate']:.1%} of {noun} "
            f"(95% CI {gap['missing_low']:.1%}-{gap['missing_high']:.1%}), "
            f"{gap['missing_ratio']:.2f} times the reference `{gap['reference']}` "
            f"({gap['reference_missing_rate']:.1%}); the difference, "
            f"{100 * gap['missing_diff']:+.1f} percentage points, has {verdict}.")


def missing_reasons_table(
    frame: pd.DataFrame,
    *,
    features: str | Sequence[str],
    patients: pd.DataFrame | None = None,
    by: str | None = None,
    exclude_reasons: Sequence[str] = DEFAULT_EXCLUDED_REASONS,
    unit: str = "event",
) -> pd.DataFrame:
    """How many rows lack each feature, per missing reason (and per subgroup when ``by``).

    Parameters
    ----------
    frame
        A training frame (see `feature_coverage`).
    features
        One feature column or several.
    patients, by
        Patient attribute to split by, as in `feature_coverage`; both or neither.
    exclude_reasons
        Reasons whose rows are dropped first; pass ``()`` to count every reason, including
        ``not_yet_released``.
    unit
        ``"event"`` or ``"patient"`` (each patient at their latest non-excluded event).

    Returns
    -------
    pandas.DataFrame
        Columns ``feature``, ``group`` (only with ``by``), ``reason``, ``rows`` and ``share``
        (of the assessed rows of that feature and group, so a group's shares sum to its
        missing rate); commonest reason first within each feature and group.

    Raises
    ------
    InputError, ValueError
        As `feature_coverage`.

    Examples
    --------
    >>> missing_reasons_table(frame, features="acs_tract__pct_below_poverty", exclude_reasons=())
                            feature                    reason  rows     share
    0  acs_tract__pct_below_poverty       no_address_at_event     3  0.250000
    1  acs_tract__pct_below_poverty                    po_box     3  0.250000
    2  acs_tract__pct_below_poverty                  zip_only     3  0.250000
    3  acs_tract__pct_below_poverty  geography_not_in_vintage     1  0.083333
    """
    keys = ["group"] if by is not None else []
    parts = []
    for feature in _as_list(features):
        rows = _assessed(frame, patients, feature=feature, by=by,
                         exclude_reasons=exclude_reasons, unit=unit)
        totals = rows.groupby(keys, observed=True).size() if keys else len(rows)
        counts = rows.loc[~rows["covered"]].groupby([*keys, "reason"], observed=True).size()
        table = counts.rename("rows").reset_index()
        base = table[keys[0]].map(totals) if keys else totals
        table["share"] = table["rows"] / np.asarray(base, dtype=float)
        table.insert(0, "feature", feature)
        parts.append(table.sort_values([*keys, "rows", "reason"],
                                       ascending=[*([True] * len(keys)), False, True]))
    out = pd.concat(parts, ignore_index=True)
    if keys:
        out["group"] = out["group"].astype(str)
    return out


def gaps_by_area(
    frame: pd.DataFrame,
    timeline: pd.DataFrame,
    *,
    features: str | Sequence[str],
    level: str = "block_group",
    boundary_year: int,
    exclude_reasons: Sequence[str] = DEFAULT_EXCLUDED_REASONS,
    top_reasons: int = 2,
) -> pd.DataFrame:
    """Per area, the share of linked events with a missing or low-reliability feature.

    Each event is placed in the area of the patient's address at the event (the timeline
    period with ``valid_from <= event_timestamp < valid_to``; an open ``valid_to`` is the
    current address), on the boundaries of ``boundary_year``. Events without a linked
    address there cannot be mapped and are left out. An event is *assessed* when at least one
    of ``features`` is not excluded on it, and *flagged* when one of those is missing or has
    low or unknown reliability.

    Parameters
    ----------
    frame
        A training frame (see `feature_coverage`).
    timeline
        The patient geography timeline: ``patient_id``, ``valid_from``, ``valid_to`` and
        ``<level>_geoid_<boundary_year>``.
    features
        One feature column or several (e.g. an ADI rank and ACS block-group estimates).
    level
        Geography level of the timeline GEOID column to use.
    boundary_year
        Boundary vintage of the areas, e.g. 2020.
    exclude_reasons
        As for `feature_coverage`, applied feature by feature.
    top_reasons
        How many reasons to list per area.

    Returns
    -------
    pandas.DataFrame
        One row per area with an assessed event, by GEOID: ``geoid``, ``events``,
        ``patients`` (distinct), ``flagged``, ``missing`` (events lacking a feature),
        ``low_reliability`` (events with a low or unknown reliability value; an event can
        count in both), each also as a share of ``events`` (``flagged_share``,
        ``missing_share``, ``low_reliability_share``), and ``top_reasons`` (the
        commonest problems among the area's feature values, counted per feature and event:
        a missing reason, or ``low_reliability`` / ``unknown_reliability``).

    Raises
    ------
    InputError
        A required column is absent.

    Examples
    --------
    >>> gaps = gaps_by_area(frame, timeline, features=["acs_tract__pct_below_poverty"],
    ...                     boundary_year=2020)
    >>> gaps[["geoid", "events"]]
              geoid  events
    0  990010001001       2
    1  990010003011       1
    """
    features = _as_list(features)
    geoid_col = f"{level}_geoid_{boundary_year}"
    require_columns(timeline, ["patient_id", "valid_from", "valid_to", geoid_col], what="timeline")
    frame = frame.reset_index(drop=True)
    problems = pd.DataFrame(None, index=frame.index, columns=features, dtype=object)
    assessed = pd.Series(False, index=frame.index)
    for feature in features:
        rows = _feature_rows(frame, feature=feature, exclude_reasons=exclude_reasons)
        problems.loc[rows.index, feature] = rows["problem"]
        assessed.loc[rows.index] = True
    geoid = _area_at_event(frame, timeline, geoid_col=geoid_col)
    mapped = assessed & geoid.notna()
    doubtful = problems.isin([f"{level}_reliability" for level in FLAGGED_RELIABILITY])
    events = pd.DataFrame({"geoid": geoid, "patient_id": frame["patient_id"].astype(str),
                           "flagged": problems.notna().any(axis=1),
                           "missing": (problems.notna() & ~doubtful).any(axis=1),
                           "low_reliability": doubtful.any(axis=1)})[mapped]
    out = events.groupby("geoid").agg(events=("flagged", "size"),
                                      patients=("patient_id", "nunique"),
                                      flagged=("flagged", "sum"),
                                      missing=("missing", "sum"),
                                      low_reliability=("low_reliability", "sum"))
    for column in ("flagged", "missing", "low_reliability"):
        out[f"{column}_share"] = out[column] / out["events"]
    found = problems[mapped].melt(ignore_index=False)["value"].dropna()
    top = _commonest(found, geoid[found.index], top=top_reasons)
    out["top_reasons"] = [top.get(g, "") for g in out.index]
    return out.reset_index()


def _area_at_event(frame: pd.DataFrame, timeline: pd.DataFrame, *, geoid_col: str) -> pd.Series:
    """Find the timeline GEOID of each frame row's address at its event (None if none)."""
    def utc(values: pd.Series) -> pd.Series:
        return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]").reset_index(drop=True)

    events = pd.DataFrame({
        "patient_id": frame["patient_id"].astype(str).to_numpy(),
        "at": utc(frame["event_timestamp"]),
        "row": np.arange(len(frame)),
    }).sort_values("at", kind="stable")
    periods = pd.DataFrame({
        "patient_id": timeline["patient_id"].astype(str).to_numpy(),
        "valid_from": utc(timeline["valid_from"]),
        "valid_to": utc(timeline["valid_to"]),
        "geoid": timeline[geoid_col].astype(object).to_numpy(),
    }).sort_values("valid_from", kind="stable")
    joined = pd.merge_asof(events, periods, left_on="at", right_on="valid_from",
                           by="patient_id", direction="backward")
    ended = joined["valid_to"].notna() & (joined["valid_to"] <= joined["at"])
    geoid = joined["geoid"].where(~ended & joined["geoid"].notna(), None)
    by_row = pd.Series(geoid.to_numpy(), index=joined["row"].to_numpy()).sort_index()
    return by_row.set_axis(frame.index)


def fit_logistic(
    design: pd.DataFrame,
    outcome: ArrayLike,
    *,
    confidence: float = 0.95,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> pd.DataFrame:
    """Maximum-likelihood logistic regression by Newton's method, with Wald intervals.

    An intercept is added; ``design`` holds the other regressors (e.g. 0/1 indicators).

    Parameters
    ----------
    design
        One column per regressor, numeric, one row per observation.
    outcome
        0/1 outcomes aligned with ``design``'s rows.
    confidence
        Level of the Wald intervals.
    max_iter, tol
        Newton steps allowed, and the largest coefficient change that counts as converged.

    Returns
    -------
    pandas.DataFrame
        One row per term (``"intercept"`` first, then ``design``'s columns) with ``coef``
        (log odds), ``se``, ``odds_ratio`` (``exp(coef)``), ``odds_ratio_low``,
        ``odds_ratio_high`` (``exp(coef -/+ z * se)``) and ``p_value`` (two-sided Wald).

    Raises
    ------
    InputError
        The regressors are collinear, or the fit does not converge (a group whose rows are
        all or none 0 or 1 separates the outcome): merge or drop such groups.
    ValueError
        ``outcome`` is not 0/1 or its length differs from ``design``'s.

    Examples
    --------
    >>> x = pd.DataFrame({"b": [0] * 40 + [1] * 60})
    >>> y = [1] * 10 + [0] * 30 + [1] * 30 + [0] * 30  # odds 1/3 and 1: OR 3
    >>> round(float(fit_logistic(x, y).loc["b", "odds_ratio"]), 6)
    3.0
    """
    y = np.asarray(outcome, dtype=float)
    if y.shape != (len(design),) or not np.isin(y, (0, 1)).all():
        raise ValueError(f"outcome must be {len(design)} values of 0 or 1")
    x = np.column_stack([np.ones(len(design)), design.to_numpy(dtype=float)])
    names = ["intercept", *map(str, design.columns)]
    beta = np.zeros(x.shape[1])
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-(x @ beta)))
        information = x.T @ (x * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(information, x.T @ (y - p))
        except np.linalg.LinAlgError:
            raise InputError(f"regressors {names[1:]} are collinear (or a column is constant); "
                             "drop one of the collinear groups") from None
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    else:
        raise InputError(f"the logistic fit did not converge in {max_iter} steps: some group "
                         "separates the outcome (none or all of its rows are 1); merge or drop it")
    se = np.sqrt(np.diag(np.linalg.inv(information)))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    wald = np.abs(beta / se)
    return pd.DataFrame({
        "coef": beta, "se": se, "odds_ratio": np.exp(beta),
        "odds_ratio_low": np.exp(beta - z * se), "odds_ratio_high": np.exp(beta + z * se),
        "p_value": [2 * (1 - NormalDist().cdf(w)) for w in wald],
    }, index=pd.Index(names, name="term"))


def missingness_odds_ratios(
    frame: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    feature: str,
    by: str | Sequence[str],
    reference: Mapping[str, str] | None = None,
    exclude_reasons: Sequence[str] = DEFAULT_EXCLUDED_REASONS,
    unit: str = "event",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Odds ratios of lacking a feature per subgroup, adjusted for the other attributes.

    A logistic regression of "``feature`` is missing" on indicators of every group of every
    attribute in ``by`` except its reference group (`fit_logistic`), so each group's odds
    ratio is against its own attribute's reference with the other attributes held fixed.
    A group whose rows are all or none missing separates the outcome: its rows are left out
    of the model (its odds ratio is NaN and ``note`` says why) rather than stopping the fit.

    Parameters
    ----------
    frame, patients, feature, exclude_reasons, unit
        As for `feature_coverage`.
    by
        Patient attributes to adjust for together, e.g. ``["race_ethnicity", "payer"]``.
    reference
        Reference group per attribute; attributes not named use their largest group.
    confidence
        Level of the Wald intervals.

    Returns
    -------
    pandas.DataFrame
        One row per attribute and group (reference first, then largest first; age bands in
        age order): ``feature``, ``by``, ``group``, ``is_reference``, ``n``, ``missing``,
        ``crude_odds_ratio`` (the group against the reference alone: ``ad/bc``),
        ``odds_ratio`` (adjusted; 1 on the reference row), ``odds_ratio_low``,
        ``odds_ratio_high``, ``p_value`` and ``note``. ``attrs`` holds ``n`` (rows in the
        model, without those of separated groups), ``reference`` (per attribute) and ``unit``.

    Raises
    ------
    InputError
        A required column is absent, the attributes are collinear, or the fit fails.
    ValueError
        ``unit`` is unknown, a ``reference`` is not a group, or no row is left.

    Examples
    --------
    A logistic fit needs groups with both covered and missing rows, more than the doctests'
    four patients give (tests/test_coverage.py fits it on the demo):

    >>> odds = missingness_odds_ratios(frame, patients, feature="adi_block_group__adi_national_rank",
    ...                                by=["race_ethnicity", "preferred_language", "payer"])  # doctest: +SKIP
    >>> odds[["by", "group", "odds_ratio", "odds_ratio_low", "odds_ratio_high"]]  # doctest: +SKIP
    """
    rows = _assessed(frame, patients, feature=feature, by=None,
                     exclude_reasons=exclude_reasons, unit=unit)
    if rows.empty:
        raise ValueError(f"no {unit} is left for {feature!r} after excluding {exclude_reasons}")
    missing = (~rows["covered"]).astype(int)
    if missing.nunique() < 2:
        raise InputError(f"{'all' if missing.iloc[0] else 'none'} of the {len(rows)} {unit}s lack "
                         f"{feature!r}: there is no missingness to model")
    reference = dict(reference or {})
    tables, indicators = [], []
    modelled_rows = pd.Series(True, index=rows.index)
    for attribute in _as_list(by):
        group = attach_group(rows, patients, by=attribute, frame=frame)
        table = _group_counts(group, missing, attribute=attribute, reference=reference.get(attribute))
        tables.append(table)
        labels = group.astype(str)
        modelled_rows &= ~labels.isin(table.loc[table["note"].ne(""), "group"])
        modelled = table.loc[~table["is_reference"] & table["note"].eq(""), "group"]
        indicators += [(labels == g).rename(f"{attribute}={g}") for g in modelled]
    design = pd.concat(indicators, axis=1) if indicators else pd.DataFrame(index=rows.index)
    fit = fit_logistic(design[modelled_rows].astype(float), missing[modelled_rows],
                       confidence=confidence)
    out = pd.concat(tables, ignore_index=True)
    terms = out["by"] + "=" + out["group"]
    for column in ("odds_ratio", "odds_ratio_low", "odds_ratio_high", "p_value"):
        out[column] = terms.map(fit[column]).astype(float)
    out.loc[out["is_reference"], "odds_ratio"] = 1.0
    out.insert(0, "feature", feature)
    out.attrs.update(n=int(modelled_rows.sum()), unit=unit,
                     reference=dict(zip(out.loc[out["is_reference"], "by"],
                                        out.loc[out["is_reference"], "group"], strict=True)))
    return out[["feature", "by", "group", "is_reference", "n", "missing", "crude_odds_ratio",
                "odds_ratio", "odds_ratio_low", "odds_ratio_high", "p_value", "note"]]


def _group_counts(group: pd.Series, missing: pd.Series, *, attribute: str,
                  reference: str | None) -> pd.DataFrame:
    """Per group of one attribute: rows, missing rows, crude OR against the reference, note."""
    stats = missing.groupby(group, observed=True).agg(n="size", missing="sum")
    stats = stats.loc[group_order(stats["n"], group)]
    ref = reference_group(stats, reference=reference, by=attribute)
    stats = pd.concat([stats.loc[[ref]], stats.drop(index=ref)])
    a, b = stats["missing"], stats["n"] - stats["missing"]
    with np.errstate(divide="ignore", invalid="ignore"):
        crude = (a * b[ref]) / (b * a[ref])
    separated = (a == 0) | (b == 0)
    if separated[ref]:
        raise InputError(f"{'none' if a[ref] == 0 else 'all'} of the {int(stats.loc[ref, 'n'])} rows "
                         f"of reference group {str(ref)!r} of {attribute!r} lack the feature, so "
                         f"no odds ratio against it exists; pass reference={{{attribute!r}: ...}} "
                         "naming a group with both covered and missing rows")
    note = np.where(a == 0, "no row lacks the feature: not estimable",
                    np.where(b == 0, "every row lacks the feature: not estimable", ""))
    return pd.DataFrame({
        "by": attribute,
        "group": stats.index.astype(str),
        "is_reference": stats.index == ref,
        "n": stats["n"].to_numpy(),
        "missing": a.to_numpy(),
        "crude_odds_ratio": np.where(separated, np.nan, crude.to_numpy(dtype=float)),
        "note": note,
    })
