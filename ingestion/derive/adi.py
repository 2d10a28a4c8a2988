"""Compute an Area Deprivation Index from ACS 5-year block-group estimates (Singh 2003).

The method lives in ``sdoh_sources/catalog/adi_computed.yaml``: Singh's 17 census indicators,
the ACS variables each reads in each vintage, his factor score coefficients (each with its
citation), the scaling to mean 100 and SD 20, the ranking, and the Neighborhood Atlas
suppression rules. This module only reads it. The result is a *computed* ADI whose every row
says ``adi_kind == "computed_from_acs"`` and its method version: it is not the Neighborhood
Atlas file (the ``adi`` source spec), and its ranks are relative to the reference area given.

Examples
--------
>>> from ingestion.derive.adi import adi_variables, compute_adi
>>> "B19113_001E" in adi_variables(2022)
True

``adi_inputs`` holds the synthetic demo region's ACS 2021 block-group inputs (state 99) and its
2020 Census group quarters, as `ingestion.jobs.ingest.ingest_adi_acs` reads them:

>>> adi = compute_adi(adi_inputs, vintage=2021, reference="state", states=["99"])
>>> adi["adi_decile"].value_counts().sort_index().tolist()  # block groups per decile 1-10
[3, 4, 4, 4, 4, 3, 4, 4, 4, 4]
"""

from __future__ import annotations

import warnings
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingestion.core.datasets import adi_acs_spec
from ingestion.core.errors import InputError
from ingestion.core.geography import check_geoids
from ingestion.derive import moe
from sdoh_sources import SdohError, load_catalog
from sdoh_sources.adi_computed import (
    CATALOG_FILE,
    VARIANT_PREFIX,
    AdiMethod,
    Indicator,
    Suppression,
    adi_acs_source,
    load_adi_method,
)
from sdoh_sources.publisher import publisher_source

GEOID = "GEOID"
REFERENCE_DIGITS = {"nation": 0, "state": 2, "county": 5}
NATION = "US"
# Missing reasons this module gives itself (the rest come from the catalog's annotations and
# the Atlas suppression codes of sources/adi.yaml).
NOT_PUBLISHED = "not_published_at_level"
ZERO_DENOMINATOR = "zero_denominator"
LOG_OF_ZERO = "log_of_zero"
INDICATOR_MISSING = "adi_indicator_missing"
SUPPRESSION_INPUTS_MISSING = "suppression_inputs_missing"
OWN_REASONS = (NOT_PUBLISHED, ZERO_DENOMINATOR, LOG_OF_ZERO, INDICATOR_MISSING,
               SUPPRESSION_INPUTS_MISSING)


class AdiComputeError(SdohError, ValueError):
    """The computed ADI cannot use an input or setting; the message says what and why."""


class UnknownVintageError(AdiComputeError):
    """The vintage is not an ACS 5-year vintage the method covers."""


class MissingColumnsError(AdiComputeError):
    """The input frame lacks columns the method needs; the message names them."""


class BadGeoidError(AdiComputeError):
    """A GEOID is not a unique 12-digit block-group GEOID string."""


class UnverifiedMethodError(AdiComputeError):
    """The catalog has an indicator without a verified coefficient; nothing is computed."""


def _method(vintage: int) -> AdiMethod:
    if not isinstance(vintage, int) or isinstance(vintage, bool):
        raise TypeError(f"vintage must be an int ACS 5-year end year, e.g. 2022; got {vintage!r}")
    method = load_adi_method()
    known = [r.vintage for r in load_catalog().calendar["acs5"]
             if method.first_vintage <= r.vintage <= method.last_vintage]
    if vintage not in known:
        raise UnknownVintageError(f"no computed ADI for ACS 5-year vintage {vintage}; its variable codes "
                                  f"are verified for the released vintages {known} ({CATALOG_FILE} "
                                  "first_vintage..last_vintage)")
    unverified = [i.name for i in method.indicators if i.coefficient is None]
    if unverified:
        raise UnverifiedMethodError(f"indicators {unverified} have no verified coefficient in "
                                    f"{CATALOG_FILE}; the computed ADI refuses to guess one")
    return method


def adi_variables(vintage: int) -> list[str]:
    """The ACS variables (estimate and MOE columns) the computed ADI needs in ``vintage``.

    They are the variables of Singh's 17 indicators in that vintage plus total population and
    housing units for the suppression rules. The group-quarters population is not an ACS
    block-group variable and is not listed: `compute_adi` takes it as its own column.

    Parameters
    ----------
    vintage : int
        ACS 5-year vintage (final survey year): a released vintage from 2014 to 2023, the
        range whose variable codes were verified.

    Returns
    -------
    list of str
        ``{variable}E`` and ``{variable}M`` names, sorted by variable.

    Raises
    ------
    UnknownVintageError
        For a vintage the method does not cover.
    UnverifiedMethodError
        If an indicator's coefficient is missing from the catalog.

    Examples
    --------
    >>> names = adi_variables(2016)
    >>> "B19013_001E" in names, "B19113_001E" in names, names[:2]
    (True, False, ['B01003_001E', 'B01003_001M'])
    """
    method = _method(vintage)
    variables = {v for i in method.indicators for terms in i.terms(vintage) for v in terms}
    variables |= {method.suppression.population, method.suppression.housing_units}
    return [f"{v}{suffix}" for v in sorted(variables) for suffix in "EM"]


def _require(inputs: pd.DataFrame, columns: list[str], vintage: int) -> None:
    absent = [c for c in columns if c not in inputs.columns]
    if absent:
        raise MissingColumnsError(f"inputs lack {len(absent)} column(s) the computed ADI needs for "
                                  f"vintage {vintage}: {absent}; see adi_variables({vintage})")


def _checked_geoids(inputs: pd.DataFrame, vintage: int, *,
                    states: Collection[str] | None) -> pd.Series:
    if not isinstance(inputs, pd.DataFrame):
        raise TypeError(f"inputs must be a pandas DataFrame; got {type(inputs).__name__}")
    _require(inputs, [GEOID], vintage)
    geoid = inputs[GEOID].reset_index(drop=True)
    is_text = geoid.astype(object).map(lambda g: isinstance(g, str))
    bad = ~is_text | ~geoid.astype(str).str.fullmatch(r"\d{12}")
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BadGeoidError(f"GEOID {geoid[row]!r} in row {row} is not a 12-digit block-group GEOID "
                            "string; pass zero-padded strings such as '010010201001'")
    try:
        check_geoids(geoid, level="block_group", states=states)  # a state, a county
    except InputError as exc:
        raise BadGeoidError(str(exc)) from exc
    if geoid.duplicated().any():
        raise BadGeoidError(f"GEOID {geoid[geoid.duplicated()].iloc[0]!r} appears more than once")
    return geoid


@dataclass(frozen=True)
class _Terms:
    """Estimates, MOEs and the first missing reason of a list of ACS variables, per row."""

    estimate: np.ndarray  # (rows, terms), NaN where missing
    moe: np.ndarray
    reason: np.ndarray  # object: the first term's reason, or None

    @property
    def total(self) -> np.ndarray:
        return self.estimate.sum(axis=1)

    @property
    def total_moe(self) -> np.ndarray:
        return self.moe[:, 0] if self.moe.shape[1] == 1 else moe.moe_sum(self.moe, self.estimate)


def _first(*reasons: np.ndarray) -> np.ndarray:
    """Element-wise the first reason that is not None/NaN, else None."""
    out = np.full(len(reasons[0]), None, dtype=object)
    for reason in reversed(reasons):
        out = np.where(pd.notna(reason), reason, out)
    return out


def _estimate_reason(inputs: pd.DataFrame, variable: str, estimate: np.ndarray) -> np.ndarray:
    """A reason where the estimate is missing: as given, else the jam value's, else a null."""
    reason = np.where(np.isnan(estimate), NOT_PUBLISHED, None).astype(object)
    for code, why in load_catalog().estimate_annotations.items():
        reason[estimate == code] = why
    given = inputs.get(f"{variable}E_missing")
    return reason if given is None else _first(given.to_numpy(dtype=object), reason)


def _moe(inputs: pd.DataFrame, variable: str) -> np.ndarray:
    error = inputs[f"{variable}M"].astype(float).to_numpy()
    kinds = load_catalog().moe_annotations
    zero = np.isin(error, [code for code, kind in kinds.items() if kind == "zero"])
    unknown = np.isin(error, [code for code, kind in kinds.items() if kind == "unknown"])
    return np.where(zero, 0.0, np.where(unknown, np.nan, error))


def _terms(inputs: pd.DataFrame, variables: tuple[str, ...]) -> _Terms:
    estimate = np.column_stack([inputs[f"{v}E"].astype(float).to_numpy() for v in variables])
    reasons = [_estimate_reason(inputs, v, estimate[:, j]) for j, v in enumerate(variables)]
    return _Terms(estimate=np.where(pd.notna(np.column_stack(reasons)), np.nan, estimate),
                  moe=np.column_stack([_moe(inputs, v) for v in variables]),
                  reason=_first(*reasons))


# One indicator for every row: value, MOE and missing reason (None where present).
_Values = tuple[np.ndarray, np.ndarray, np.ndarray]


def _ratio_values(ind: Indicator, num: _Terms, den: _Terms, percent_scale: float) -> _Values:
    reason = _first(num.reason, den.reason)
    reason = np.where(pd.isna(reason) & (den.total == 0), ZERO_DENOMINATOR, reason)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = num.total / den.total
        if ind.formula == "percent":
            error = moe.moe_proportion(num.total, den.total, num.total_moe, den.total_moe)
            return percent_scale * ratio, percent_scale * error, reason
        reason = np.where(pd.isna(reason) & (num.total == 0), LOG_OF_ZERO, reason)
        error = moe.moe_ratio(num.total, den.total, num.total_moe, den.total_moe) / ratio
        return np.log(ind.scale * ratio), error, reason


def _indicator_values(ind: Indicator, inputs: pd.DataFrame, vintage: int, percent_scale: float) -> _Values:
    numerator, denominator = ind.terms(vintage)
    num = _terms(inputs, numerator)
    if ind.formula == "median":
        return num.estimate[:, 0], num.moe[:, 0], num.reason
    return _ratio_values(ind, num, _terms(inputs, denominator), percent_scale)


def adi_indicators(inputs: pd.DataFrame, *, vintage: int,
                   states: Collection[str] | None = None) -> pd.DataFrame:
    """Singh's 17 ADI indicators per block group, each with its MOE and missing reason.

    Percent indicators are 0-100 with the Census Bureau's proportion MOE; medians are taken as
    published with their MOE; income disparity is ln(100 x households under $10,000 /
    households at $50,000 or more) with the ratio MOE divided by the ratio (delta method).
    Census annotation ("jam") values, nulls, zero universes and a zero income-disparity
    numerator become typed missing reasons, never numbers.

    Parameters
    ----------
    inputs : pandas.DataFrame
        One row per block group: ``GEOID`` (12-digit string) and the ``{v}E``/``{v}M`` columns
        of `adi_variables` (as `get_acs(..., output="wide")` returns them; optional
        ``{v}E_missing`` columns give the reason of a missing estimate, raw jam values are
        also recognised).
    vintage : int
        ACS 5-year vintage; it fixes the variables (e.g. B19013 for B19113 in 2015-2016).
    states : collection of str, optional
        The state FIPS codes the GEOIDs may start with (`ingestion.core.geography.check_geoids`);
        default the 50 states, DC and Puerto Rico. The demo region passes its "99".

    Returns
    -------
    pandas.DataFrame
        ``GEOID`` then, per indicator in Singh's order, ``{name}``, ``{name}_moe`` and
        ``{name}_missing``.

    Raises
    ------
    UnknownVintageError, MissingColumnsError, BadGeoidError
        For an unknown vintage, absent columns (named) or GEOIDs that are not unique
        12-digit strings starting with a state and county FIPS code
        (`ingestion.core.geography.check_geoids`).
    TypeError
        If ``inputs`` is not a DataFrame or ``vintage`` not an int.

    Examples
    --------
    >>> out = adi_indicators(adi_inputs, vintage=2021, states=["99"])
    >>> round(float(out.loc[0, "pct_no_vehicle"]), 2), out.loc[0, "pct_no_vehicle_missing"]
    (6.83, None)
    """
    method = _method(vintage)
    geoid = _checked_geoids(inputs, vintage, states=states)
    needed = {v for i in method.indicators for terms in i.terms(vintage) for v in terms}
    _require(inputs, [f"{v}{s}" for v in sorted(needed) for s in "EM"], vintage)
    out: dict[str, object] = {GEOID: geoid}
    for ind in method.indicators:
        value, error, reason = _indicator_values(ind, inputs, vintage, method.percent_scale)
        missing = pd.notna(reason)
        out[ind.name] = np.where(missing, np.nan, value)
        out[f"{ind.name}_moe"] = np.where(missing, np.nan, error)
        out[f"{ind.name}_missing"] = _first(reason)
    return pd.DataFrame(out)


def _group_quarters(inputs: pd.DataFrame, column: str) -> pd.Series:
    raw = inputs[column].reset_index(drop=True)
    counts = pd.to_numeric(raw, errors="coerce")
    bad = counts.isna() & raw.notna()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise AdiComputeError(f"{column} must hold counts of people; row {row} has {raw[row]!r}")
    return counts


def _suppression_reasons(inputs: pd.DataFrame, rules: Suppression) -> np.ndarray:
    """The Atlas suppression reason of each block group (PH, GQ, GQ-PH), or None."""
    population = _terms(inputs, (rules.population,)).total
    housing = _terms(inputs, (rules.housing_units,)).total
    quarters = _group_quarters(inputs, rules.group_quarters_column).to_numpy(float)
    low = (population < rules.min_population) | (housing < rules.min_housing_units)
    with np.errstate(divide="ignore", invalid="ignore"):
        many_quarters = quarters / population > rules.max_group_quarters_share
    code = np.select([low & many_quarters, low, many_quarters], ["GQ-PH", "PH", "GQ"], default="")
    reason = pd.Series(code).map(publisher_source("adi").missing_codes).to_numpy(dtype=object)
    unknown = np.isnan(population) | np.isnan(housing) | np.isnan(quarters)
    return np.where(pd.isna(reason) & unknown, SUPPRESSION_INPUTS_MISSING, reason)


def _reference_areas(geoid: pd.Series, reference: str) -> pd.Series:
    if not isinstance(reference, str):
        raise TypeError(f"reference must be a str; got {reference!r}")
    if reference not in REFERENCE_DIGITS:
        raise AdiComputeError(f"reference must be one of {list(REFERENCE_DIGITS)}; got {reference!r}")
    digits = REFERENCE_DIGITS[reference]
    return geoid.str[:digits] if digits else pd.Series(NATION, index=geoid.index)


def _zscores(values: pd.DataFrame, area: pd.Series, ddof: int) -> pd.DataFrame:
    """Values z-scored within each reference area; no spread gives 0."""
    grouped = values.groupby(area)
    spread = grouped.transform("std", ddof=ddof)
    return ((values - grouped.transform("mean")) / spread.where(spread > 0)).fillna(0.0)


def _ranked_scores(values: pd.DataFrame, coefficients: np.ndarray, area: pd.Series,
                   method: AdiMethod, standardized: bool) -> pd.DataFrame:
    """Raw score, scaled score, percentile and decile of the ranked rows, per reference area."""
    scaling = method.scaling
    terms = _zscores(values, area, scaling.sd_ddof) if standardized else values
    raw = pd.Series(terms.to_numpy(float) @ coefficients, index=values.index)
    z = _zscores(raw.to_frame(), area, scaling.sd_ddof).iloc[:, 0]
    rank = raw.groupby(area).rank(method=method.ranking.ties)
    count = raw.groupby(area).transform("count")
    return pd.DataFrame({
        "adi_raw_score": raw,
        "adi_score": scaling.mean + scaling.sd * z,
        "adi_percentile": np.ceil(100 * rank / count),
        "adi_decile": np.ceil(10 * rank / count),
    })


def _warn_small(area: pd.Series, below: int) -> None:
    counts = area.value_counts()
    small = sorted(counts.index[counts < below])
    if small:
        warnings.warn(f"reference areas {small} have fewer than {below} ranked block groups; their "
                      "ADI scores and ranks are unstable", stacklevel=3)


def compute_adi(
    inputs: pd.DataFrame,
    *,
    vintage: int,
    reference: str = "nation",
    standardized: bool = False,
    states: Collection[str] | None = None,
) -> pd.DataFrame:
    """Singh's Area Deprivation Index for block groups, ranked within a reference area.

    The raw score is the sum of Singh's factor score coefficient times each of the 17
    indicators (`adi_indicators`); with ``standardized=True`` each indicator is first z-scored
    within the reference area (Petterson 2023), otherwise indicators keep their units and the
    dollar medians dominate, as in the Neighborhood Atlas ADI. The score is rescaled to mean
    100 and SD 20 within the reference area; percentile (1-100) and decile (1-10) are
    ``ceil(100 r / n)`` and ``ceil(10 r / n)`` of the average rank ``r`` among the ``n`` ranked
    block groups of the area. Block groups the Atlas rules suppress (population < 100,
    housing units < 30, group quarters > 33%) or with an indicator missing get no score and a
    typed reason, and do not enter the reference statistics.

    Parameters
    ----------
    inputs : pandas.DataFrame
        The columns `adi_indicators` needs plus ``group_quarters_population`` (people in group
        quarters, e.g. 2020 Census PL 94-171 P5_001N, which public ACS tables do not publish
        at block group).
    vintage : int
        ACS 5-year vintage of the estimates.
    reference : {"nation", "state", "county"}
        The area ranks and scaling are computed in: every row given, each state (GEOID digits
        1-2) or each county (digits 1-5).
    standardized : bool
        Z-score the indicators before weighting (Petterson's variant).
    states : collection of str, optional
        The state FIPS codes the GEOIDs may start with (`ingestion.core.geography.check_geoids`);
        default the 50 states, DC and Puerto Rico. The demo region passes its "99".

    Returns
    -------
    pandas.DataFrame
        One row per input row: ``GEOID``, ``vintage``, ``adi_kind`` ("computed_from_acs"),
        ``adi_method_version``, ``adi_method`` ("unstandardized" or "standardized"),
        ``adi_reference``, ``adi_reference_area`` ("US", state or county FIPS),
        ``adi_raw_score``, ``adi_score``, ``adi_percentile``, ``adi_decile`` (NaN where not
        ranked) and ``adi_missing`` (the reason, or None).

    Raises
    ------
    UnknownVintageError, MissingColumnsError, BadGeoidError, AdiComputeError
        For an unknown vintage, absent columns, bad GEOIDs, an unknown reference or a
        non-numeric group-quarters count.

    Warns
    -----
    UserWarning
        When a reference area has fewer than 30 ranked block groups.

    Examples
    --------
    >>> adi = compute_adi(adi_inputs, vintage=2021, reference="state", states=["99"])
    >>> adi[["GEOID", "adi_percentile", "adi_decile", "adi_missing"]].head(1)
              GEOID  adi_percentile  adi_decile adi_missing
    0  990010001001             6.0         1.0        None
    """
    method = _method(vintage)
    indicators = adi_indicators(inputs, vintage=vintage, states=states)
    _require(inputs, [method.suppression.group_quarters_column], vintage)
    area = _reference_areas(indicators[GEOID], reference)
    names = [i.name for i in method.indicators]
    incomplete = indicators[[f"{n}_missing" for n in names]].notna().any(axis=1)
    reason = _suppression_reasons(inputs, method.suppression)
    reason = np.where(pd.isna(reason) & incomplete.to_numpy(), INDICATOR_MISSING, reason)
    ranked = pd.Series(pd.isna(reason))
    _warn_small(area[ranked], method.ranking.warn_below)
    coefficients = np.array([i.coefficient for i in method.indicators], dtype=float)
    scores = _ranked_scores(indicators.loc[ranked, names], coefficients, area[ranked], method,
                            standardized)
    out = pd.DataFrame({
        GEOID: indicators[GEOID],
        "vintage": vintage,
        "adi_kind": method.kind,
        "adi_method_version": method.method_version,
        "adi_method": "standardized" if standardized else "unstandardized",
        "adi_reference": reference,
        "adi_reference_area": area,
    })
    return out.join(scores).assign(adi_missing=_first(reason))


# ------------------------------------------------------------------------- publishing
def adi_acs_dataset(inputs: pd.DataFrame, *, vintage: int, reference: str,
                    synthetic: bool = False,
                    states: Collection[str] | None = None) -> pd.DataFrame:
    """Both variants of the computed ADI as the published rows of `adi_acs_spec(reference)`.

    Examples
    --------
    >>> rows = adi_acs_dataset(adi_inputs, vintage=2021, reference="state", synthetic=True, states=["99"])
    >>> rows.shape, rows.columns[:4].tolist()
    ((43, 19), ['block_group_geoid', 'boundary_year', 'vintage', 'release_ts'])
    """
    release = load_catalog().release("acs5", vintage)
    variants = {prefix: compute_adi(inputs, vintage=vintage, reference=reference,
                                    standardized=variant == "standardized", states=states)
                for variant, prefix in VARIANT_PREFIX.items()}
    first = variants[""]
    out = {"block_group_geoid": first[GEOID].to_numpy(), "boundary_year": release.boundary_vintage,
           "vintage": vintage, "release_ts": pd.Timestamp(release.release_ts).as_unit("us"),
           "synthetic": synthetic, "origin": "computed_from_acs",
           "method_version": first["adi_method_version"].to_numpy()}
    for m in adi_acs_source(reference).measures:
        prefix = "std_" if f"_{reference}_std_" in m.name else ""
        out[m.name] = variants[prefix][m.column].to_numpy(dtype=float)
        out[f"{m.name}_missing"] = variants[prefix]["adi_missing"].to_numpy(dtype=object)
    return pd.DataFrame(out)[list(adi_acs_spec(reference).column_names)]


