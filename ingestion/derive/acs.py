"""Turn raw ACS estimates into the catalog's SDOH measures with MOE, CV, reliability and reasons.

`build_acs_measures` is pure (a tidy frame in, a published-schema frame out); `ingest_acs`
pulls the variables the catalog names for the vintage (detailed, subject and data profile
tables in one `get_acs` call) through the real Census API client, builds and publishes
through the validation gate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingestion.core.datasets import acs_spec, geoid_column
from ingestion.core.errors import InputError
from ingestion.derive import moe
from sdoh_sources import Measure, load_catalog
from sdoh_sources.catalog import NOT_AVAILABLE

log = logging.getLogger(__name__)

API_GEOGRAPHY = {"block_group": "block group", "tract": "tract", "county": "county",
                 "zcta": "zip code tabulation area", "state": "state"}


@dataclass(frozen=True)
class _Terms:
    """Estimates, MOEs and the first missing reason of a list of signed ACS variables."""

    estimate: np.ndarray  # (rows, terms), signed
    moe: np.ndarray
    reason: pd.Series  # first estimate reason among the terms, per row

    @property
    def total(self) -> np.ndarray:
        return self.estimate.sum(axis=1)

    @property
    def total_moe(self) -> np.ndarray:
        if self.estimate.shape[1] == 1:
            return self.moe[:, 0]
        return moe.moe_sum(self.moe, self.estimate)


# One measure's values for every geography: estimate, MOE and missing reason (None if present).
_Values = tuple[np.ndarray, np.ndarray, pd.Series]


def _columns(wide: dict[str, pd.DataFrame], names: list[str]) -> dict[str, pd.DataFrame]:
    absent = [n for n in names if n not in wide["estimate"].columns]
    if absent:
        raise ValueError(f"the tidy ACS frame lacks variables {absent}; request "
                         "Source.variables_for(level, vintage)")
    return {key: frame[names] for key, frame in wide.items()}


def _terms(wide: dict[str, pd.DataFrame], terms: tuple[str, ...]) -> _Terms:
    names = [t.lstrip("-") for t in terms]
    signs = np.array([-1.0 if t.startswith("-") else 1.0 for t in terms])
    cols = _columns(wide, names)
    return _Terms(
        estimate=cols["estimate"].to_numpy(float) * signs,
        moe=cols["moe"].to_numpy(float),
        reason=cols["estimate_missing"].bfill(axis=1).iloc[:, 0],
    )


def _ratio(num: _Terms, den: _Terms) -> _Values:
    """100 * numerator / denominator with the proportion MOE; a zero universe is a reason."""
    reason = num.reason.fillna(den.reason)
    reason = reason.mask(reason.isna() & (den.total == 0), "zero_denominator")
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100 * num.total / den.total
    error = 100 * moe.moe_proportion(num.total, den.total, num.total_moe, den.total_moe)
    return value, error, reason


def _published_percent(wide: dict[str, pd.DataFrame], variable: str) -> _Values:
    """A percent the API publishes (0-100) with its own MOE, taken as it is."""
    cols = _columns(wide, [variable])
    return (cols["estimate"][variable].to_numpy(float), cols["moe"][variable].to_numpy(float),
            cols["estimate_missing"][variable])


def _not_available(index: pd.Index) -> _Values:
    nan = np.full(len(index), np.nan)
    return nan, nan.copy(), pd.Series(NOT_AVAILABLE, index=index, dtype=object)


def _measure_values(m: Measure, vintage: int, wide: dict[str, pd.DataFrame]) -> _Values:
    """Estimate, MOE and missing reason of one measure in one vintage for every geography."""
    formula = m.formula(vintage)
    if formula is None:
        return _not_available(wide["estimate"].index)
    if formula.percent is not None:
        return _published_percent(wide, formula.percent)
    num = _terms(wide, formula.numerator)
    if not formula.denominator:
        return num.total, num.total_moe, num.reason
    return _ratio(num, _terms(wide, formula.denominator))


def _published_columns(name: str, values: _Values, rule: dict[str, float]) -> dict[str, np.ndarray]:
    """The five published columns of a measure: value, MOE, CV, reliability, missing reason."""
    value, error, reason = values
    missing = reason.notna().to_numpy()
    value = np.where(missing, np.nan, value)
    error = np.where(missing, np.nan, error)
    cv = moe.coefficient_of_variation(value, error)
    reliability = moe.reliability_class(cv, error, **rule)
    return {
        name: value,
        f"{name}_moe": error,
        f"{name}_cv": cv,
        f"{name}_reliability": np.where(missing, None, reliability),
        f"{name}_missing": reason.to_numpy(dtype=object),
    }


def build_acs_measures(
    tidy: pd.DataFrame,
    *,
    level: str,
    vintage: int,
    synthetic: bool = False,
    reliability_rule: str | None = None,
) -> pd.DataFrame:
    """Compute every catalog measure published at ``level`` from tidy ACS estimates.

    Each measure uses the formula its catalog entry gives for ``vintage`` (a total, a ratio
    whose terms may be differences, or a percent the API publishes with its MOE); a measure
    with no variable in ``vintage`` gets the reason ``not_available_in_vintage`` in every
    row. The columns are the same for every vintage.

    Parameters
    ----------
    tidy : pandas.DataFrame
        Output of `get_acs(..., output="tidy")`: GEOID, variable, estimate, moe,
        estimate_missing, moe_missing.
    level : str
        "block_group", "tract" or "county".
    vintage : int
        The ACS 5-year vintage (final year), which fixes release date and boundary vintage.
    synthetic : bool
        Marks rows built from the generated demo region.
    reliability_rule : str, optional
        A rule name from the catalog; defaults to the catalog's default (CV 12% / 40%). It is
        stored in every row, so the published fields' tags name the rule that was applied.

    Returns
    -------
    pandas.DataFrame
        One row per geography with the columns of `acs_spec(level)`.

    Raises
    ------
    CatalogError
        If ``vintage`` is not in the release calendar.
    ValueError
        If ``tidy`` lacks a variable a measure reads in ``vintage``.

    Examples
    --------
    >>> variables = load_catalog().acs.variables_for("tract", 2021)  # every variable it reads
    >>> tidy = pd.DataFrame({"GEOID": "99001000100", "variable": variables, "estimate": 100.0,
    ...                      "moe": 10.0, "estimate_missing": None, "moe_missing": None})
    >>> out = build_acs_measures(tidy, level="tract", vintage=2021)
    >>> out.columns[:4].tolist(), len(out)
    (['tract_geoid', 'boundary_year', 'vintage', 'release_ts'], 1)
    """
    catalog = load_catalog()
    release = catalog.release("acs5", vintage)
    rule_name = reliability_rule or catalog.default_reliability_rule
    if rule_name not in catalog.reliability_rules:
        raise InputError(f"unknown reliability rule {rule_name!r}; the catalog has "
                         f"{sorted(catalog.reliability_rules)} (sdoh_sources/catalog/missing_reasons.yaml)")
    rule = catalog.reliability_rules[rule_name]
    spec = acs_spec(level)
    wide = {
        col: tidy.pivot(index="GEOID", columns="variable", values=col)
        for col in ("estimate", "moe", "estimate_missing")
    }
    geoids = wide["estimate"].index
    out = {
        geoid_column(level): geoids.astype(str),
        "boundary_year": release.boundary_vintage,
        "vintage": vintage,
        "release_ts": pd.Timestamp(release.release_ts).as_unit("us"),
        "synthetic": synthetic,
        "reliability_rule": rule_name,
    }
    for m in catalog.acs.measures_at(level):
        out.update(_published_columns(m.name, _measure_values(m, vintage, wide), rule))
    frame = pd.DataFrame(out).reset_index(drop=True)
    return frame[list(spec.column_names)]


def check_vintage(vintage: int) -> None:
    """Refuse an ACS 5-year vintage the release calendar does not know, before any request.

    Parameters
    ----------
    vintage : int
        The ACS 5-year vintage (final year).

    Raises
    ------
    CatalogError
        If ``sdoh_sources/catalog/release_calendar.yaml`` has no ``acs5`` release for
        ``vintage``; the message lists the known vintages.
    TypeError
        If ``vintage`` is not an int.

    Examples
    --------
    >>> check_vintage(2021)
    >>> check_vintage(2030)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sdoh_sources.catalog.CatalogError: no release of 'acs5' for vintage 2030 in the calendar; ...
    """
    if isinstance(vintage, bool) or not isinstance(vintage, int):
        raise TypeError(f"vintage must be an int such as 2021, got {vintage!r}")
    load_catalog().release("acs5", vintage)


