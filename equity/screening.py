"""Who is screened for social needs, and what screening finds that area data miss.

A training frame carries, per screened domain ``d`` of ``sdoh_sources/catalog/screening.yaml``,
``screened_needs__<d>_state`` (``positive``, ``negative``, ``declined``, ``not_screened`` or
``screening_stale``) with ``_instrument``, ``_screened_at`` and ``_answer_age_days``
(`screening_column` names them). An event is *screened* when its state is positive, negative
or declined: an answer in force within the domain's look-back. A patient is *never screened*
when every one of their events reads ``not_screened`` or ``screening_stale``.

* `screening_coverage` -- the never-screened rate per patient subgroup with Wilson intervals
  and its gap (Newcombe interval, ratio) to a reference group, and the positive and declined
  shares among the screened;
* `needs_vs_area` -- screened needs against an area flag (food insecurity against low food
  access): per kind of tract, the share never screened and the positive share among the
  screened, so one sees how many positive patients the area flag misses and how many patients
  in flagged tracts nobody asked.

Unequal screening is itself a bias (the catalog's ``known_biases``): a group screened less often
has fewer recorded needs whatever its real needs are, so read the positive shares next to the
never-screened rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from equity.coverage import (
    attach_group,
    check_unit,
    gap_to_reference,
    group_order,
    reference_group,
    require_columns,
    wilson_interval,
)
from feature_repo.serving.lookup_rules import NOT_SCREENED, SCREENING_STALE
from ingestion.core.errors import InputError
from sdoh_sources.screening import load_screening_catalog

__all__ = [
    "LOW_ACCESS", "NOT_LOW_ACCESS", "SCREENED_STATES", "SCREENING_VIEW", "UNKNOWN_AREA",
    "needs_vs_area", "screened_domains", "screening_column", "screening_coverage",
]

#: The feature view (and column prefix) of screened needs in a training frame.
SCREENING_VIEW = "screened_needs"
#: States of an answer in force: the event counts as screened.
SCREENED_STATES = ("positive", "negative", "declined")
_STATES = (*SCREENED_STATES, NOT_SCREENED, SCREENING_STALE)
_FIELDS = ("state", "instrument", "screened_at", "answer_age_days")
#: Area groups of `needs_vs_area`.
LOW_ACCESS, NOT_LOW_ACCESS, UNKNOWN_AREA = "flagged", "not flagged", "(no area value)"


def screening_column(domain: str, field: str = "state") -> str:
    """The training-frame column of one field of a screened domain.

    Parameters
    ----------
    domain
        A domain name of the screening catalog, e.g. ``"food_insecurity"``.
    field
        ``"state"``, ``"instrument"``, ``"screened_at"`` or ``"answer_age_days"``.

    Returns
    -------
    str
        ``screened_needs__<domain>_<field>``.

    Raises
    ------
    ValueError
        ``field`` is not one of the four.

    Examples
    --------
    >>> screening_column("food_insecurity")
    'screened_needs__food_insecurity_state'
    """
    if field not in _FIELDS:
        raise ValueError(f"field must be one of {_FIELDS}, got {field!r}")
    return f"{SCREENING_VIEW}__{domain}_{field}"


def screened_domains(frame: pd.DataFrame) -> list[str]:
    """The catalog's domains whose state column ``frame`` has, in catalog order.

    Examples
    --------
    >>> screened_domains(pd.DataFrame(columns=["patient_id", screening_column("utilities")]))
    ['utilities']
    """
    return [d for d in load_screening_catalog().domain_names if screening_column(d) in frame]


def _states(frame: pd.DataFrame, domain: str) -> pd.Series:
    """The domain's state per row, checked against the five states (row and value named)."""
    load_screening_catalog().domain(domain)  # an unknown domain says which ones exist
    column = screening_column(domain)
    require_columns(frame, ["patient_id", "event_timestamp", column], what="frame")
    states = frame[column]
    _check_values(states, _STATES, what="a screening state")
    return states.astype(str)


def _check_values(values: pd.Series, allowed: Sequence, *, what: str) -> None:
    """Raise `InputError` naming the first row, the column and the value outside ``allowed``."""
    bad = np.flatnonzero(~values.isin(allowed))
    if len(bad):
        first = bad[0]
        raise InputError(f"frame row {values.index.tolist()[first]!r}, column {values.name!r}: "
                         f"{values.tolist()[first]!r} is not {what} {list(allowed)} "
                         f"({len(bad)} such rows)")


def _screening_rows(frame: pd.DataFrame, domain: str, *, unit: str) -> pd.DataFrame:
    """Per event, or per patient at one representative event: the state and whether screened.

    A patient's event is their latest screened one, or their latest if none is screened, so
    a patient counts as never screened only when no event of theirs is screened.
    """
    check_unit(unit)
    states = _states(frame, domain)
    rows = pd.DataFrame({"patient_id": frame["patient_id"].astype(str),
                         "event_timestamp": frame["event_timestamp"],
                         "state": states, "screened": states.isin(SCREENED_STATES)})
    if unit == "patient":
        ordered = rows.assign(_at=pd.to_datetime(rows["event_timestamp"], utc=True)).sort_values(
            ["screened", "_at"], kind="stable")
        rows = ordered[~ordered["patient_id"].duplicated(keep="last")].drop(columns="_at").sort_index()
    return rows


def _share(count: pd.Series, n: pd.Series, *, prefix: str, confidence: float) -> pd.DataFrame:
    """``count / n`` as ``<prefix>_rate`` with its Wilson interval (NaN where ``n`` is 0)."""
    low, high = wilson_interval(count.to_numpy(), n.to_numpy(), confidence=confidence)
    rate = count / n.where(n > 0)
    return pd.DataFrame({prefix: count, f"{prefix}_rate": rate, f"{prefix}_low": low,
                         f"{prefix}_high": high}, index=count.index)


def _state_counts(rows: pd.DataFrame, keys: pd.Series, *, confidence: float) -> pd.DataFrame:
    """Per key: n, never screened (rate, interval), screened, positive and declined shares."""
    counted = rows.assign(never=~rows["screened"], positive=rows["state"].eq("positive"),
                          declined=rows["state"].eq("declined"))
    stats = counted.groupby(keys, observed=True).agg(
        n=("state", "size"), never=("never", "sum"), screened=("screened", "sum"),
        positive=("positive", "sum"), declined=("declined", "sum"))
    return pd.concat([
        stats[["n"]],
        _share(stats["never"], stats["n"], prefix="never_screened", confidence=confidence),
        stats[["screened"]],
        _share(stats["positive"], stats["screened"], prefix="positive", confidence=confidence),
        _share(stats["declined"], stats["screened"], prefix="declined", confidence=confidence),
    ], axis=1)


def screening_coverage(
    frame: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    by: str | Sequence[str],
    domain: str | None = None,
    reference: Mapping[str, str] | None = None,
    unit: str = "patient",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Who is never screened for a social need, per subgroup, and what screening finds.

    Parameters
    ----------
    frame
        A training frame with ``patient_id``, ``event_timestamp`` and
        ``screened_needs__<domain>_state``.
    patients
        One row per patient with ``patient_id`` and the ``by`` attributes (``birth_date`` for
        ``age_band``), as for `equity.coverage.feature_coverage`; an attribute ``patients``
        lacks is read from ``frame`` as an event attribute (e.g. ``rurality``).
    by
        One attribute or several, stacked.
    domain
        A screened domain; by default every catalog domain the frame carries, stacked.
    reference
        Reference group per attribute; attributes not named use their largest group.
    unit
        ``"patient"``: a patient is never screened when every event of theirs reads
        ``not_screened`` or ``screening_stale``, and is grouped (and their positive or
        declined state read) at their latest screened event, else their latest event.
        ``"event"``: each row on its own.
    confidence
        Level of the Wilson intervals.

    Returns
    -------
    pandas.DataFrame
        One row per domain, attribute and group (largest first; age bands in age order):
        ``domain``, ``by``, ``group``, ``n``; ``never_screened`` (count),
        ``never_screened_rate`` with its Wilson interval (``never_screened_low``,
        ``never_screened_high``), its difference to the reference group with Newcombe's
        interval (``never_screened_diff``, ``never_screened_diff_low``,
        ``never_screened_diff_high``; positive: screened less often than the reference) and
        ratio (``never_screened_ratio``); ``is_reference``; ``screened``; ``positive`` and
        ``declined`` (counts) with their shares of the screened and Wilson intervals
        (``positive_rate``, ``positive_low``, ``positive_high``, and the same for
        ``declined``; NaN for a group nobody screened). ``attrs`` holds ``unit``.

    Raises
    ------
    InputError
        A required column is absent, a state is not one of the five, or the frame carries no
        screened domain.
    ValueError
        ``unit`` is unknown or a ``reference`` is not a group.

    Examples
    --------
    >>> state = screening_column("food_insecurity")
    >>> frame = pd.DataFrame({"patient_id": ["A", "A", "B", "C"],
    ...                       "event_timestamp": ["2021-01-01", "2022-01-01"] * 2,
    ...                       state: ["not_screened", "positive", "screening_stale", "negative"]})
    >>> people = pd.DataFrame({"patient_id": ["A", "B", "C"], "payer": ["medicaid"] * 2 + ["commercial"]})
    >>> screening_coverage(frame, people, by="payer")[["group", "n", "never_screened", "positive"]]
            group  n  never_screened  positive
    0    medicaid  2               1         1
    1  commercial  1               0         0
    """
    domains = [domain] if domain is not None else screened_domains(frame)
    if not domains:
        raise InputError("the frame has no screened_needs__<domain>_state column; pass a "
                         "training frame that includes the screened_needs view")
    reference = dict(reference or {})
    parts = [_coverage_one(frame, patients, domain=d, by=b, reference=reference.get(b), unit=unit,
                           confidence=confidence)
             for d in domains for b in ([by] if isinstance(by, str) else by)]
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(unit=unit)
    return out


def _coverage_one(frame: pd.DataFrame, patients: pd.DataFrame, *, domain: str, by: str,
                  reference: str | None, unit: str, confidence: float) -> pd.DataFrame:
    rows = _screening_rows(frame, domain, unit=unit)
    group = attach_group(rows, patients, by=by, frame=frame)
    stats = _state_counts(rows, group, confidence=confidence)
    stats = stats.loc[group_order(stats["n"], group)]
    ref = reference_group(stats, reference=reference, by=by)
    gap = gap_to_reference(stats, reference=ref, prefix="never_screened")
    out = pd.concat([stats.iloc[:, :5], gap, stats.iloc[:, 5:]], axis=1)
    out.insert(9, "is_reference", out.index == ref)
    out = out.rename_axis("group").reset_index()
    out["group"] = out["group"].astype(str)
    out.insert(0, "by", by)
    out.insert(0, "domain", domain)
    return out


def needs_vs_area(
    frame: pd.DataFrame,
    *,
    domain: str = "food_insecurity",
    area_column: str = "food_access_tract__lila_1_10",
    unit: str = "patient",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Screened need against an area flag: what each measure sees that the other misses.

    Patients are placed by the flag of their area at the event used (as in
    `screening_coverage`: their latest screened event, else their latest): flagged (e.g. a
    low-income, low-access tract), not flagged, or without an area value.

    Parameters
    ----------
    frame
        A training frame with ``patient_id``, ``event_timestamp``, the domain's state column
        and ``area_column`` (1/0 or true/false; null where the area has no value).
    domain
        The screened domain, by default food insecurity.
    area_column
        The area flag, by default USDA's low income and low access at 1 and 10 miles.
    unit, confidence
        As for `screening_coverage`.

    Returns
    -------
    pandas.DataFrame
        One row per area group (``flagged``, ``not flagged``, ``(no area value)``; a group with
        no patient is left out): ``area``, ``n``, ``never_screened`` with its rate and Wilson
        interval, ``screened``, ``positive`` and ``declined`` with their shares of the
        screened and intervals (as in `screening_coverage`), and the flagged group's
        differences to the ``not flagged`` group with Newcombe intervals
        (``never_screened_diff``, ``positive_diff``, each with ``_low``/``_high``, NaN on the
        other rows). The ``positive`` count of ``not flagged`` is the screened need the flag
        misses; the ``never_screened`` count of ``flagged`` is who lives where the flag points
        but was never asked. ``attrs`` holds ``domain``, ``area_column``, ``unit``,
        ``positive_outside_flagged`` and ``unscreened_inside_flagged``.

    Raises
    ------
    InputError
        A required column is absent, a state is not one of the five, or a flag is not 0/1.

    Examples
    --------
    >>> state = screening_column("food_insecurity")
    >>> frame = pd.DataFrame({"patient_id": ["A", "B", "C", "D"],
    ...                       "event_timestamp": ["2022-01-01"] * 4,
    ...                       state: ["positive", "not_screened", "positive", "negative"],
    ...                       "food_access_tract__lila_1_10": [1, 1, 0, 0]})
    >>> table = needs_vs_area(frame)
    >>> table[["area", "n", "never_screened", "positive", "positive_rate"]]
              area  n  never_screened  positive  positive_rate
    0      flagged  2               1         1            1.0
    1  not flagged  2               0         1            0.5
    >>> table.attrs["positive_outside_flagged"], table.attrs["unscreened_inside_flagged"]
    (1, 1)
    """
    require_columns(frame, [area_column], what="frame")
    flag = frame[area_column]
    _check_values(flag[flag.notna()], (0, 1), what="a flag")
    rows = _screening_rows(frame, domain, unit=unit)
    area = _area_groups(flag[rows.index])
    stats = _state_counts(rows, area, confidence=confidence)
    stats = stats.reindex([g for g in (LOW_ACCESS, NOT_LOW_ACCESS, UNKNOWN_AREA) if g in stats.index])
    out = stats.copy()
    if {LOW_ACCESS, NOT_LOW_ACCESS} <= set(stats.index):
        for prefix in ("never_screened", "positive"):
            gap = gap_to_reference(stats, reference=NOT_LOW_ACCESS, prefix=prefix)
            out = out.join(gap.loc[[LOW_ACCESS]].drop(columns=f"{prefix}_ratio"))
    out = out.rename_axis("area").reset_index()
    counts = stats.reindex([LOW_ACCESS, NOT_LOW_ACCESS]).fillna(0)
    out.attrs.update(domain=domain, area_column=area_column, unit=unit,
                     positive_outside_flagged=int(counts.loc[NOT_LOW_ACCESS, "positive"]),
                     unscreened_inside_flagged=int(counts.loc[LOW_ACCESS, "never_screened"]))
    return out


def _area_groups(flag: pd.Series) -> pd.Series:
    """``flagged`` / ``not flagged`` / ``(no area value)`` from a checked 0/1 flag."""
    known = flag.notna()
    labels = np.where(flag.eq(1) & known, LOW_ACCESS, NOT_LOW_ACCESS)
    return pd.Series(labels, index=flag.index).where(known, UNKNOWN_AREA)
