"""Which GEOID and vintage a patient reads at time t, and why a value is missing: the one home.

Every path reads through these rules: training frames on DuckDB
(`feature_repo.serving.retrieval`), on Spark (`feature_repo.serving.spark`, batch by batch)
and online lookups (`feature_repo.serving.online`, SDK and HTTP alike).

The rules, in order:

1. **Address at t.** The address period in force at t is the latest one with
   ``valid_from <= t`` (Feast's point-in-time join); it has ended when ``valid_to <= t``
   (``valid_to`` is exclusive). `address_reason` then says why the patient has no usable
   address: ``unknown_patient`` (the timeline never held the id), ``no_address_at_event``
   (no period yet, or it ended), else the link's own reason (``po_box``, ``zip_only``, ...),
   None when linked.
2. **Vintage at t.** Per area view, the vintage in force is the one released last on or
   before t (release instants from the published data; none: ``not_yet_released``), and it
   is read on its boundary year's GEOID (ACS 2016-2020 on: 2020 tracts; before: 2010).
3. **GEOID at the view's level.** `area_read` decides per row whether the GEOID is read or
   why not. A GEOID the address holds is read even when the link has a reason for finer
   levels (a ZIP-only patient has a ZCTA but no tract); a state is its county's first two
   digits.
4. **Missing values.** `missing_reason` fills each ``<measure>_missing``: the row's reason
   when nothing was read, ``geography_not_in_vintage`` when the key has no stored value and no
   stored reason, else the stored reason.
5. **Screened needs at t.** The screening-state row in force is the latest one with
   ``effective_time <= t``. `screening_state` reads a domain's state from it: no row (or an
   unknown patient) is ``not_screened``; an answer older than the domain's look-back is
   ``screening_stale`` (an answer exactly the look-back old still counts); else the stored
   state (``positive``, ``negative``, ``declined``, ``not_screened``). `answer_age_days` is the
   answer's age at t in days.

Each rule is a pure function of one case. The vectorised functions (`address_reasons`,
`read_keys`, `finish`, `screening_states_at`) apply the same functions once per distinct case
of a frame (`per_case`), so a frame of millions of rows costs a few function calls per rule.

Examples
--------
>>> address_reason(known=True, found=True, ended=False, link_missing="po_box")
'po_box'
>>> area_read(None, released=True, geoid_found=False, level="zcta")
(False, 'level_not_linked')
>>> screening_state(None, None, pd.Timestamp("2022-06-01", tz="UTC"), lookback_days=365)
'not_screened'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ingestion.core.datasets import TIMELINE_GEOIDS, geoid_column
from ingestion.core.errors import InputError
from sdoh_sources.screening import load_screening_catalog

__all__ = [
    "ADDRESSLESS", "GEOGRAPHY_FEATURES", "GEOGRAPHY_VIEW", "NOT_IN_VINTAGE", "NOT_SCREENED",
    "NOT_YET_RELEASED", "NO_ADDRESS", "SCREENING_STALE", "UNKNOWN_PATIENT", "ViewPlan",
    "address_reason", "address_reasons", "answer_age_days", "answer_stale", "area_read",
    "check_events", "finish", "geoid_missing_column", "geoid_source", "geography_refs",
    "missing_reason", "per_case", "period_ended", "read_keys", "require_event_columns",
    "screening_columns", "screening_lookbacks", "screening_state", "screening_states_at",
    "unlinked_reason",
]

GEOGRAPHY_VIEW = "patient_geography"
GEOGRAPHY_FEATURES = (*TIMELINE_GEOIDS, "valid_to", "link_method", "link_missing")
NO_ADDRESS = "no_address_at_event"
# An id the timeline has never held: not a gap in a known patient's history.
UNKNOWN_PATIENT = "unknown_patient"
# Reasons that leave a patient without any GEOID to look up.
ADDRESSLESS = frozenset({NO_ADDRESS, UNKNOWN_PATIENT})
NOT_YET_RELEASED = "not_yet_released"
NOT_IN_VINTAGE = "geography_not_in_vintage"
NOT_SCREENED = "not_screened"
SCREENING_STALE = "screening_stale"
_DAY = pd.Timedelta(days=1)


def period_ended(valid_to: Any, at: Any) -> Any:
    """Whether an address period has ended at ``at``: ``valid_to`` is exclusive, null never ends.

    Works on scalars (None or NaT for an open period) and on Series alike.

    Examples
    --------
    >>> t = pd.Timestamp("2022-06-01", tz="UTC")
    >>> period_ended(t, t), period_ended(None, t), period_ended(t + pd.Timedelta("1us"), t)
    (True, False, False)
    """
    if valid_to is None:
        return False
    ended = valid_to <= at  # NaT compares False
    return ended if isinstance(ended, pd.Series) else bool(ended)


def address_reason(*, known: bool, found: bool, ended: bool, link_missing: str | None) -> str | None:
    """Why a patient has no usable address at t (None when linked): rule 1 for one case.

    Parameters
    ----------
    known : bool
        The timeline holds the patient's id at all.
    found : bool
        An address period starts on or before t.
    ended : bool
        That period has ended at t (`period_ended`).
    link_missing : str or None
        The period's link reason (why it has no GEOID at some level).

    Examples
    --------
    >>> address_reason(known=False, found=False, ended=False, link_missing=None)
    'unknown_patient'
    >>> address_reason(known=True, found=True, ended=True, link_missing=None)
    'no_address_at_event'
    """
    if not known:
        return UNKNOWN_PATIENT
    if not found or ended:
        return NO_ADDRESS
    return link_missing


def unlinked_reason(level: str) -> str:
    """Why a linked address has no GEOID at ``level``: ZCTAs are linked only on request.

    Examples
    --------
    >>> unlinked_reason("zcta"), unlinked_reason("tract")
    ('level_not_linked', 'outside_boundaries')
    """
    return "level_not_linked" if level == "zcta" else "outside_boundaries"


def area_read(address: str | None, *, released: bool, geoid_found: bool, level: str,
              geoid_missing: str | None = None) -> tuple[bool, str | None]:
    """Whether a row reads its GEOID of a view, or why not: rule 3 for one case.

    Parameters
    ----------
    address : str or None
        The row's `address_reason`.
    released : bool
        A vintage of the view is in force at t.
    geoid_found : bool
        The address holds a GEOID at the view's level on the vintage's boundary year.
    level : str
        The view's geography level.
    geoid_missing : str, optional
        Why that GEOID is absent, when the caller knows better than the link (a location
        given as a GEOID coarser than the level, or on other boundaries).

    Returns
    -------
    (bool, str or None)
        Read the GEOID, and the row's reason when it is not read.

    Examples
    --------
    >>> area_read("zip_only", released=True, geoid_found=True, level="zcta")
    (True, None)
    >>> area_read("zip_only", released=True, geoid_found=False, level="tract")
    (False, 'zip_only')
    >>> area_read(None, released=False, geoid_found=True, level="tract")
    (False, 'not_yet_released')
    """
    if not released:
        return False, NOT_YET_RELEASED
    if address in ADDRESSLESS:
        return False, address
    if geoid_missing:
        return False, geoid_missing
    if geoid_found:
        return True, None
    return False, address or unlinked_reason(level)


def missing_reason(*, read: bool, stored: str | None, value_missing: bool,
                   row_reason: str | None) -> str | None:
    """A ``<measure>_missing`` value: rule 4 for one case.

    Parameters
    ----------
    read : bool
        The row read a GEOID of the view.
    stored : str or None
        The reason the online or offline store holds for the key.
    value_missing : bool
        The measure's value is null (False when the view has no such measure).
    row_reason : str or None
        Why the row read nothing (`area_read`).

    The reasons are passed through, never looked into (`finish` relies on it).

    Examples
    --------
    >>> missing_reason(read=True, stored=None, value_missing=True, row_reason=None)
    'geography_not_in_vintage'
    >>> missing_reason(read=False, stored=None, value_missing=True, row_reason="po_box")
    'po_box'
    """
    if not read:
        return row_reason
    if stored is None and value_missing:
        return NOT_IN_VINTAGE
    return stored


def geoid_source(level: str, year: int) -> tuple[str, int | None]:
    """The timeline column a level's GEOID is read from on ``year`` boundaries, and its prefix.

    Examples
    --------
    >>> geoid_source("tract", 2020), geoid_source("state", 2010)
    (('tract_geoid_2020', None), ('county_geoid_2010', 2))
    """
    if level == "state":
        return f"county_geoid_{year}", 2
    return f"{level}_geoid_{year}", None


def geoid_missing_column(level: str, year: int) -> str:
    """The column saying why a row has no GEOID at ``level`` on ``year`` boundaries (optional).

    Examples
    --------
    >>> geoid_missing_column("state", 2020)
    'state_geoid_2020_missing'
    """
    return f"{level}_geoid_{year}_missing"


def per_case(rule: Callable[..., Any], columns: dict[str, Any], *, outputs: int = 1) -> list[np.ndarray]:
    """Apply a one-case ``rule`` to every row of ``columns``, calling it once per distinct case.

    Parameters
    ----------
    rule : callable
        Takes the columns' names as keyword arguments; nulls are passed as None.
    columns : dict of str to array-like
        Equal-length inputs; each has few distinct values (reasons, flags).
    outputs : int, default 1
        How many values ``rule`` returns (a tuple when more than one).

    Returns
    -------
    list of numpy.ndarray
        One object array per output, row by row.

    Examples
    --------
    >>> per_case(lambda a, b: f"{a}{b}", {"a": ["x", "x", None], "b": [1, 1, 2]})
    [array(['x1', 'x1', 'None2'], dtype=object)]
    """
    key, coded = None, {}
    for name, column in columns.items():
        codes, uniques = pd.factorize(column if isinstance(column, pd.Series) else np.asarray(column),
                                      use_na_sentinel=False)  # a null is a value of its own
        coded[name] = (codes, np.asarray(uniques, dtype=object))
        key = codes.astype(np.int64) if key is None else key * len(uniques) + codes
    case_of_row, cases = pd.factorize(key)
    first = np.empty(len(cases), dtype=np.int64)  # a row of each case: its first
    first[case_of_row[::-1]] = np.arange(len(key))[::-1]
    answers = []
    for row in first:
        case = {name: _none(uniques[codes[row]]) for name, (codes, uniques) in coded.items()}
        answer = rule(**case)
        answers.append(answer if outputs > 1 else (answer,))
    out = []
    for i in range(outputs):
        column = np.empty(len(answers), dtype=object)
        column[:] = [a[i] for a in answers]
        out.append(column[case_of_row])
    return out


def _none(value: Any) -> Any:
    """None for any null (NaN, NaT, pandas.NA), numpy scalars as Python values."""
    if pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def address_reasons(geo: pd.DataFrame, at: pd.Series, *, known: Any) -> pd.Series:
    """`address_reason` for every row of address periods read as of ``at``.

    Parameters
    ----------
    geo : pandas.DataFrame
        ``link_method``, ``valid_to`` and ``link_missing`` of the period found per row (null
        ``link_method``: none found).
    at : pandas.Series
        Each row's time t (UTC).
    known : array-like of bool
        Whether the timeline holds each row's patient.

    Examples
    --------
    >>> geo = pd.DataFrame({"link_method": ["point_in_polygon", None], "valid_to": [None, None],
    ...                     "link_missing": [None, None]})
    >>> address_reasons(geo, pd.Series(pd.Timestamp("2022-01-01", tz="UTC"), index=[0, 1]),
    ...                 known=[True, True]).tolist()
    [None, 'no_address_at_event']
    """
    ended = period_ended(pd.to_datetime(geo["valid_to"], utc=True), at)
    [reason] = per_case(address_reason, {"known": np.asarray(known, dtype=bool),
                                         "found": geo["link_method"].notna().to_numpy(),
                                         "ended": ended.to_numpy(dtype=bool),
                                         "link_missing": geo["link_missing"]})
    return pd.Series(reason, index=geo.index, dtype=object)


def _utc_naive(times: Any) -> np.ndarray:
    """UTC instants as naive microsecond datetimes, comparable whatever the local time zone."""
    times = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    return times.tz_localize(None).to_numpy(dtype="datetime64[us]")


@dataclass(frozen=True)
class ViewPlan:
    """One area view to read: its level, requested features and the vintages it publishes.

    Examples
    --------
    >>> calendar = pd.DataFrame({"vintage": [2019, 2021], "boundary_year": [2010, 2020],
    ...                          "release_ts": pd.to_datetime(["2020-12-10", "2022-12-08"], utc=True)})
    >>> plan = ViewPlan("acs_tract", "tract", ("pct_below_poverty",), calendar)
    >>> plan.in_force_at(pd.Timestamp("2022-12-08", tz="UTC"))  # released that day: in force
    (2021, 2020)
    >>> plan.in_force_at(pd.Timestamp("2020-12-09", tz="UTC")) is None
    True
    """

    name: str
    level: str
    features: tuple[str, ...]
    calendar: pd.DataFrame  # vintage, release_ts, boundary_year; sorted by release_ts
    strings: frozenset[str] = frozenset()  # the features of Feast type String

    @property
    def refs(self) -> list[str]:
        """Feast feature references."""
        return [f"{self.name}:{f}" for f in self.features]

    @property
    def key(self) -> str:
        """The GEOID join key."""
        return geoid_column(self.level)

    @property
    def measures_of(self) -> dict[str, str]:
        """``<measure>_missing`` -> ``<measure>`` for every reason column whose value is read."""
        return {f: f.removesuffix("_missing") for f in self.features
                if f.endswith("_missing") and f.removesuffix("_missing") in self.features}

    def in_force(self, at: pd.Series) -> pd.DataFrame:
        """Rule 2: the vintage and boundary year in force at each time (NaN before any release)."""
        idx = np.searchsorted(_utc_naive(self.calendar["release_ts"]), _utc_naive(at), side="right") - 1
        picked = self.calendar.iloc[np.clip(idx, 0, None)]
        return pd.DataFrame({
            "vintage": picked["vintage"].to_numpy(dtype=float),
            "boundary_year": picked["boundary_year"].to_numpy(dtype=float),
        }, index=at.index).mask(pd.Series(idx < 0, index=at.index), np.nan)

    def in_force_at(self, at: dt.datetime) -> tuple[int, int] | None:
        """`in_force` at one time: (vintage, boundary year), None before any release."""
        force = self.in_force(pd.Series([at])).iloc[0]
        return None if pd.isna(force["vintage"]) else (int(force["vintage"]), int(force["boundary_year"]))


def _geoids(geo: pd.DataFrame, level: str, year: int) -> pd.Series:
    column, prefix = geoid_source(level, year)
    if column not in geo:
        return pd.Series(None, index=geo.index, dtype=object)
    values = geo[column].astype(object)
    return values if prefix is None else values.str[:prefix]


def read_keys(plan: ViewPlan, geo: pd.DataFrame, at: pd.Series, address: pd.Series) -> pd.DataFrame:
    """Rules 2 and 3 per row: the GEOID and vintage to look up, or the reason nothing is read.

    ``geo`` may hold `geoid_missing_column` columns, passed to `area_read` as
    ``geoid_missing`` (locations given as GEOIDs).

    Returns
    -------
    pandas.DataFrame
        ``<level>_geoid`` (None when not read), ``vintage`` (float, NaN before any release)
        and ``row_reason``.
    """
    force = plan.in_force(at)
    geoid = pd.Series(None, index=geo.index, dtype=object)
    why = pd.Series(None, index=geo.index, dtype=object)
    for year in force["boundary_year"].dropna().unique():
        rows = (force["boundary_year"] == year).to_numpy()
        geoid[rows] = _geoids(geo.loc[rows], plan.level, int(year))
        if geoid_missing_column(plan.level, int(year)) in geo:
            why[rows] = geo.loc[rows, geoid_missing_column(plan.level, int(year))]
    read, reason = per_case(
        lambda address, released, geoid_found, geoid_missing: area_read(
            address, released=released, geoid_found=geoid_found, level=plan.level,
            geoid_missing=geoid_missing),
        {"address": address, "released": force["vintage"].notna().to_numpy(),
         "geoid_found": geoid.notna().to_numpy(), "geoid_missing": why}, outputs=2)
    return pd.DataFrame({plan.key: geoid.where(read.astype(bool), None), "vintage": force["vintage"],
                         "row_reason": reason}, index=geo.index)


def finish(plan: ViewPlan, fetched: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Rule 4 over a frame: ``<view>__`` columns, every missing value with its reason.

    Parameters
    ----------
    plan : ViewPlan
        The view.
    fetched : pandas.DataFrame
        The features read per row (any subset of columns; absent rows and columns are null).
    keys : pandas.DataFrame
        `read_keys` of the same rows.

    Returns
    -------
    pandas.DataFrame
        ``<view>__vintage`` (nullable int, null when nothing was read), ``<view>__geoid`` and
        ``<view>__<feature>`` per feature. A string column's null is None in every row,
        whichever way it was read (rows read no area, a chunk read none, Feast's arrow or a
        parquet round trip).
    """
    looked_up = keys[plan.key].notna()
    values = fetched.reindex(columns=list(plan.features))
    for feature in plan.strings.intersection(plan.features):
        values[feature] = values[feature].astype(object).where(values[feature].notna(), None)
    measures = plan.measures_of
    for feature in [f for f in plan.features if f.endswith("_missing")]:
        measure = measures.get(feature)
        value_missing = values[measure].isna() if measure else pd.Series(False, index=values.index)
        values[feature] = _missing_reasons(looked_up.to_numpy(), values[feature], value_missing.to_numpy(),
                                           keys["row_reason"])
    used = pd.DataFrame({"vintage": keys["vintage"].where(looked_up).astype("Int64"),
                         "geoid": keys[plan.key]}, index=keys.index)
    return pd.concat([used, values], axis=1, copy=False).add_prefix(f"{plan.name}__")


def require_event_columns(columns: Sequence[str]) -> None:
    """Raise `InputError` unless events have ``patient_id`` and ``event_timestamp``.

    Examples
    --------
    >>> require_event_columns(["patient_id"])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ingestion.core.errors.InputError: events lack columns ['event_timestamp']; ...
    """
    missing = {"patient_id", "event_timestamp"} - set(columns)
    if missing:
        raise InputError(f"events lack columns {sorted(missing)}; need patient_id and event_timestamp")


_STORED, _ROW = object(), object()  # stand-ins for whichever reason a row holds


def _missing_reasons(read: np.ndarray, stored: pd.Series, value_missing: np.ndarray,
                     row_reason: pd.Series) -> pd.Series:
    """`missing_reason` for every row: once per case of flags, the reasons passed through.

    `missing_reason` only asks whether a reason is there, so each of its 16 cases of
    (read, stored reason present, value missing, row reason present) is decided once, with
    stand-ins for the reasons, and each row takes its own reason where the answer is a stand-in
    (one column of a 5-million-row frame costs a few vectorised passes, not a hash per row).
    """
    stored_values, row_values = stored.to_numpy(dtype=object), row_reason.to_numpy(dtype=object)
    has_stored, has_row = stored.notna().to_numpy(), row_reason.notna().to_numpy()
    case = read.astype(np.int8) * 8 + has_stored * 4 + value_missing.astype(np.int8) * 2 + has_row
    out = np.full(len(case), None, dtype=object)
    for code in np.flatnonzero(np.bincount(case, minlength=16)):
        rows = case == code
        answer = missing_reason(read=bool(code & 8), stored=_STORED if code & 4 else None,
                                value_missing=bool(code & 2), row_reason=_ROW if code & 1 else None)
        chosen = {id(_STORED): stored_values, id(_ROW): row_values}.get(id(answer))
        out[rows] = answer if chosen is None else chosen[rows]
    return pd.Series(out, index=stored.index, dtype=object)


def check_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events with string ``patient_id`` and UTC ``event_timestamp``, indexed 0..n-1.

    Raises
    ------
    InputError
        If a column is missing or a timestamp is empty or unparseable.

    Examples
    --------
    >>> check_events(pd.DataFrame({"patient_id": [7], "event_timestamp": ["2022-06-01"]})).iloc[0].tolist()
    ['7', Timestamp('2022-06-01 00:00:00+0000', tz='UTC')]
    """
    require_event_columns(events.columns)
    out = events.reset_index(drop=True).copy()
    out["patient_id"] = out["patient_id"].astype(str)
    try:
        out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    except ValueError:  # formats differ between rows, or a row is no time: parse row by row
        out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True, format="mixed",
                                                errors="coerce")
    if out["event_timestamp"].isna().any():
        row = int(out["event_timestamp"].isna().to_numpy().nonzero()[0][0])
        raise InputError(f"events row {row}: event_timestamp is empty or unparseable")
    return out


def geography_refs(features: Sequence[str] = GEOGRAPHY_FEATURES) -> list[str]:
    """Feast references of the address period's features (hop one).

    Examples
    --------
    >>> geography_refs()[-1]
    'patient_geography:link_missing'
    """
    return [f"{GEOGRAPHY_VIEW}:{f}" for f in features]


def answer_age_days(screened_at: Any, at: Any) -> Any:
    """Days from a screening answer to t; None (NaN on Series) when no answer is in force at t.

    An answer counts from its own instant, so its age at that instant is 0; an answer after t
    is not in force. Works on scalars (None or NaT: no answer) and on Series alike (UTC).

    Examples
    --------
    >>> t = pd.Timestamp("2022-06-01", tz="UTC")
    >>> answer_age_days(t - pd.Timedelta(hours=36), t), answer_age_days(t, t)
    (1.5, 0.0)
    >>> answer_age_days(t + pd.Timedelta(days=1), t) is None, answer_age_days(None, t) is None
    (True, True)
    """
    if isinstance(screened_at, pd.Series) or isinstance(at, pd.Series):
        age = (pd.to_datetime(at, utc=True) - pd.to_datetime(screened_at, utc=True)) / _DAY
        return age.where(age >= 0)
    if screened_at is None or pd.isna(screened_at):
        return None
    age = (pd.to_datetime(at, utc=True) - pd.to_datetime(screened_at, utc=True)) / _DAY
    return None if age < 0 else float(age)


def answer_stale(age_days: Any, lookback_days: float) -> Any:
    """Whether an answer ``age_days`` old is past the look-back: the boundary is inclusive.

    Works on scalars and Series alike (NaN, no answer, is never stale).

    Examples
    --------
    >>> answer_stale(365.0, 365), answer_stale(365.5, 365)
    (False, True)
    """
    return age_days > lookback_days


def screening_state(stored_state: str | None, screened_at: Any, at: Any, *, lookback_days: float) -> str:
    """A domain's screened-need state at t: rule 5 for one case.

    Parameters
    ----------
    stored_state : str or None
        ``<domain>_state`` of the screening-state row in force at t; None when the patient
        has no row at or before t (or is unknown).
    screened_at : datetime-like or None
        ``<domain>_screened_at`` of that row: the instant of the answer in force.
    at : datetime-like
        The time t.
    lookback_days : float
        The domain's look-back: an answer more than this many days old at t is stale; one
        exactly this old still counts.

    Returns
    -------
    str
        ``not_screened``, ``screening_stale`` or the stored state (``positive``,
        ``negative``, ``declined``).

    Examples
    --------
    >>> t = pd.Timestamp("2022-06-01", tz="UTC")
    >>> screening_state("declined", t - pd.Timedelta(days=365), t, lookback_days=365)
    'declined'
    >>> screening_state("declined", t - pd.Timedelta(days=366), t, lookback_days=365)
    'screening_stale'
    """
    age = answer_age_days(screened_at, at)
    if age is None or stored_state is None or pd.isna(stored_state) or stored_state == NOT_SCREENED:
        return NOT_SCREENED
    if answer_stale(age, lookback_days):
        return SCREENING_STALE
    return stored_state


# Stand-in answer times per case of (answer in force, stale), so that `screening_states_at` asks
# `screening_state` itself once per case instead of once per row.
_CASE_AT = pd.Timestamp("2000-01-01", tz="UTC")


def _case_times(case: str | None, lookback_days: float) -> tuple[Any, Any]:
    if case is None:
        return None, _CASE_AT
    age = pd.Timedelta(days=lookback_days) + _DAY if case == "stale" else pd.Timedelta(0)
    return _CASE_AT - age, _CASE_AT


def screening_states_at(stored_state: pd.Series, screened_at: pd.Series, at: pd.Series, *,
                        lookback_days: float) -> pd.DataFrame:
    """`screening_state` and `answer_age_days` of one domain for every row (rule 5 over a frame).

    Parameters
    ----------
    stored_state : pandas.Series
        ``<domain>_state`` of the row in force per event (null: no row at or before t).
    screened_at : pandas.Series
        ``<domain>_screened_at`` of that row.
    at : pandas.Series
        Each event's time t (UTC).
    lookback_days : float
        The domain's look-back in days.

    Returns
    -------
    pandas.DataFrame
        ``state`` (object) and ``answer_age_days`` (float, NaN when no answer is in force),
        on the index of ``stored_state``.

    Examples
    --------
    >>> t = pd.Series(pd.to_datetime(["2022-06-01"] * 3, utc=True))
    >>> answered = pd.Series(pd.to_datetime(["2022-05-31", "2020-01-01", None], utc=True))
    >>> screening_states_at(pd.Series(["positive", "negative", None]), answered, t,
    ...                     lookback_days=365).to_dict("list")
    {'state': ['positive', 'screening_stale', 'not_screened'], 'answer_age_days': [1.0, 882.0, nan]}
    """
    index = stored_state.index
    age = answer_age_days(screened_at.set_axis(index), at.set_axis(index))
    case = np.where(age.isna(), None, np.where(answer_stale(age, lookback_days), "stale", "fresh"))
    [state] = per_case(lambda stored, case: screening_state(
        stored, *_case_times(case, lookback_days), lookback_days=lookback_days),
        {"stored": stored_state, "case": case})
    return pd.DataFrame({"state": state, "answer_age_days": age.astype(float)}, index=index)


def screening_lookbacks(features: Iterable[str]) -> dict[str, float]:
    """The look-back (days) of each screened-needs domain whose state is among ``features``.

    Examples
    --------
    >>> screening_lookbacks(["food_insecurity_state", "food_insecurity_instrument"])
    {'food_insecurity': 365.0}
    """
    read = set(features)
    return {d.name: float(d.lookback_days) for d in load_screening_catalog().domains
            if f"{d.name}_state" in read}


def screening_columns(stored: pd.DataFrame, at: pd.Series, lookbacks: dict[str, float], *,
                      view: str = "screened_needs") -> pd.DataFrame:
    """Every domain's screened need at each event, from the row in force (rule 5 per domain).

    Parameters
    ----------
    stored : pandas.DataFrame
        Per event, the screening-state row in force (Feast's point-in-time join):
        ``<domain>_state``, ``<domain>_instrument``, ``<domain>_screened_at``; nulls where the
        patient has no row at or before the event.
    at : pandas.Series
        Each event's time t (UTC), on the index of ``stored``.
    lookbacks : dict of str to float
        Each domain's look-back in days, in output order.
    view : str
        The prefix of the output columns.

    Returns
    -------
    pandas.DataFrame
        ``<view>__<domain>_state`` (with ``not_screened`` and ``screening_stale``),
        ``<view>__<domain>_instrument``, ``<view>__<domain>_screened_at`` and
        ``<view>__<domain>_answer_age_days`` per domain.

    Examples
    --------
    >>> t = pd.Series(pd.to_datetime(["2022-06-01", "2022-06-01"], utc=True))
    >>> stored = pd.DataFrame({"food_insecurity_state": ["positive", None],
    ...                        "food_insecurity_instrument": ["HVS", None],
    ...                        "food_insecurity_screened_at": pd.to_datetime(["2022-05-01", None], utc=True)})
    >>> columns = screening_columns(stored, t, {"food_insecurity": 365})
    >>> columns["screened_needs__food_insecurity_state"].tolist()
    ['positive', 'not_screened']
    """
    out = {}
    for domain, lookback in lookbacks.items():
        screened_at = pd.to_datetime(stored[f"{domain}_screened_at"], utc=True)
        states = screening_states_at(stored[f"{domain}_state"], screened_at, at, lookback_days=lookback)
        out[f"{view}__{domain}_state"] = states["state"]
        out[f"{view}__{domain}_instrument"] = stored[f"{domain}_instrument"]
        out[f"{view}__{domain}_screened_at"] = screened_at
        out[f"{view}__{domain}_answer_age_days"] = states["answer_age_days"]
    return pd.DataFrame(out, index=stored.index)
