"""The CDC/ATSDR Social Vulnerability Index: computed from ACS inputs, or read from CDC's files.

`compute_svi` follows the method written in sdoh_sources/catalog/svi.yaml (each release's
variables, themes, rounding and ranking), so nothing here names an ACS variable.
`read_svi_file` reads a CSV as CDC publishes it. The two give frames with CDC's column names
(E_, M_, EP_, MP_, EPL_, SPL_, RPL_, F_); every value column ``X`` comes with ``X_missing``,
None where the value exists and otherwise the typed reason it does not (CDC's -999 is
``svi_not_computed``).

Examples
--------
>>> from ingestion.derive.svi import svi_variables
>>> "S1701_C01_040E" in svi_variables(2020)
True
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingestion.core.datasets import geoid_column, svi_spec
from ingestion.core.errors import InputError
from ingestion.core.geography import check_geoids
from ingestion.derive import moe
from sdoh_sources import load_catalog
from sdoh_sources.svi import (
    Method,
    Percent,
    SviCatalog,
    load_svi_catalog,
    svi_source,
)

log = logging.getLogger(__name__)
GEOID_WIDTHS = {11: "tract", 5: "county"}
# A missing ACS input with no Census annotation (NaN in the frame given).
INPUT_NOT_AVAILABLE = "not_applicable"


def svi_variables(release: int) -> list[str]:
    """The ACS input columns (estimate ``E`` and MOE ``M``) an SVI release is computed from.

    Parameters
    ----------
    release : int
        The SVI release (2020 or 2022); no default, since definitions change between releases.

    Returns
    -------
    list of str
        Sorted API names: ``B06009_002E``, ``B06009_002M``, ``DP03_0009PE``, ...

    Raises
    ------
    CatalogError
        If the release is not in the catalog.

    Examples
    --------
    >>> names = svi_variables(2022)
    >>> "DP05_0019E" in names, "B09001_001E" in names
    (True, False)
    """
    cat = load_svi_catalog()
    cat.release(release)
    formulas = [item.releases[release] for item in (*cat.totals, *cat.variables)]
    return sorted({f"{v}{s}" for f in formulas for v in f.acs_variables for s in "EM"})


# ------------------------------------------------------------------------- arithmetic
def round_half_up(values, decimals: int) -> np.ndarray:
    """Round half away from zero, as CDC does (not numpy's half-to-even).

    Binary noise is dropped first, so 0.145 (stored as 0.14499999...) rounds like the
    decimal it stands for.

    Examples
    --------
    >>> round_half_up(np.array([0.03125, 12.25, 0.145, np.nan]), 2).tolist()
    [0.03, 12.25, 0.15, nan]
    >>> float(round_half_up(0.03125, 4))
    0.0313
    """
    values = np.asarray(values, dtype=float)
    scale = 10.0**decimals
    return np.sign(values) * np.floor(np.round(np.abs(values) * scale, 6) + 0.5) / scale


@dataclass(frozen=True)
class _Column:
    """A computed column and, per row, why a value is missing (None where present)."""

    value: np.ndarray
    reason: np.ndarray

    @classmethod
    def of(cls, value, *reasons: np.ndarray, missing: np.ndarray | None = None,
           because: str | None = None) -> _Column:
        """Combine the first reason among ``reasons`` with ``because`` where ``missing``."""
        value = np.asarray(value, dtype=float)
        reason = np.full(len(value), None, dtype=object)
        for r in reasons:
            reason = np.where(pd.isna(reason), r, reason)
        if missing is not None:
            reason = np.where(pd.isna(reason) & missing, because, reason)
        if because is not None:
            reason = np.where(pd.isna(reason) & np.isnan(value), because, reason)
        return cls(np.where(pd.isna(reason), value, np.nan), reason.astype(object))


class _Inputs:
    """The ACS columns of the input frame as numbers, Census annotations made reasons."""

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        catalog = load_catalog()
        self._estimate_codes = catalog.estimate_annotations
        self._zero_moe = [code for code, meaning in catalog.moe_annotations.items() if meaning == "zero"]

    def _numbers(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        raw = self._frame[column]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"input column {column}, row {row}: {raw.iloc[row]!r} is not a number")
        reason = values.map(self._estimate_codes)
        reason = reason.where(reason.notna(), None).mask(values.isna(), INPUT_NOT_AVAILABLE)
        return values.to_numpy(dtype=float), reason.to_numpy(dtype=object)

    def estimate(self, variable: str) -> _Column:
        """``variable`` + "E": an annotation value becomes NaN with its missing reason."""
        values, reason = self._numbers(f"{variable}E")
        return _Column.of(values, reason)

    def moe(self, variable: str) -> _Column:
        """``variable`` + "M": a controlled estimate's MOE (-555555555) is 0."""
        values, reason = self._numbers(f"{variable}M")
        zero = np.isin(values, self._zero_moe)
        return _Column.of(np.where(zero, 0.0, values), np.where(zero, None, reason))


def _estimate(inputs: _Inputs, terms: tuple[str, ...], method: Method) -> tuple[_Column, _Column]:
    """E_ (the signed sum) and M_ (root of summed squares, every term counted, truncated)."""
    estimates = [inputs.estimate(t.lstrip("-")) for t in terms]
    moes = [inputs.moe(t.lstrip("-")) for t in terms]
    signs = [-1.0 if t.startswith("-") else 1.0 for t in terms]
    total = sum(s * e.value for s, e in zip(signs, estimates, strict=True))
    error = np.sqrt(sum(m.value**2 for m in moes))
    if method.truncate_moe:
        error = np.floor(error)
    e_reasons = [e.reason for e in estimates]
    return (_Column.of(total, *e_reasons),
            _Column.of(error, *e_reasons, *[m.reason for m in moes]))


def _published_percent(inputs: _Inputs, percent: Percent, method: Method) -> tuple[_Column, _Column]:
    """EP_ = the sum of published percents (or 100 minus one); MP_ their summed MOEs."""
    estimates = [inputs.estimate(v) for v in percent.published]
    moes = [inputs.moe(v) for v in percent.published]
    value = sum(e.value for e in estimates)
    if percent.complement:
        value = 100.0 - value
    error = np.sqrt(sum(m.value**2 for m in moes))
    reasons = [e.reason for e in estimates]
    digits = method.percent_decimals
    return (_Column.of(round_half_up(value, digits), *reasons),
            _Column.of(round_half_up(error, digits), *reasons, *[m.reason for m in moes]))


def _ratio_percent(numerator: tuple[_Column, _Column], denominator: tuple[_Column, _Column],
                   method: Method) -> tuple[_Column, _Column]:
    """EP_ = 100 * E_ / denominator (CDC's 0 for a zero denominator); MP_ by the proportion formula.

    MP_ uses the EP_ rounded to one decimal, as CDC does, and falls back to the ratio formula
    where the term under the root is negative (`ingestion.derive.moe.moe_proportion`).
    """
    (num, num_moe), (den, den_moe) = numerator, denominator
    zero = den.value == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(zero, method.zero_denominator_percent, 100 * num.value / den.value)
        ep = round_half_up(share, method.percent_decimals)
        mp = 100 * moe.moe_proportion(ep / 100 * den.value, den.value, num_moe.value, den_moe.value)
    ep_col = _Column.of(ep, num.reason, den.reason)
    mp_col = _Column.of(round_half_up(mp, method.percent_decimals), ep_col.reason, num_moe.reason,
                        den_moe.reason, missing=zero, because="zero_denominator")
    return ep_col, mp_col


# ------------------------------------------------------------------------- ranking
def _reference_keys(geoids: pd.Index, reference: str) -> pd.Series:
    if not all(isinstance(g, str) for g in geoids):
        raise TypeError("values must be indexed by GEOID strings (zero-padded)")
    references = load_svi_catalog().references
    if reference not in references:
        raise InputError(f"reference={reference!r}; expected one of {list(references)}")
    width = references[reference]
    geoid_width = geoids.str.len().max() if len(geoids) else 0
    if width >= geoid_width > 0:
        raise InputError(f"reference={reference!r} groups by the first {width} GEOID digits, but "
                         f"the GEOIDs have {geoid_width}: each area would be its own reference")
    return pd.Series(geoids.str[:width], index=geoids)


def percentile_rank(values: pd.Series, *, reference: str) -> pd.Series:
    """CDC's percentile rank of ``values`` within each reference area.

    ``(min-rank - 1) / (n - 1)``: ties share the lowest rank (Excel PERCENTRANK.INC), NaN
    values are not ranked and stay NaN, and so does the only ranked area of a reference
    area; ranks are rounded half up to 4 decimals.

    Parameters
    ----------
    values : pandas.Series
        Indexed by zero-padded GEOID strings.
    reference : str
        "nation" (all rows), "state" (first 2 GEOID digits) or "county" (first 5; tracts only).

    Returns
    -------
    pandas.Series
        Same index, ranks in [0, 1].

    Raises
    ------
    InputError
        For an unknown reference, or one as fine as the GEOIDs themselves.

    Examples
    --------
    >>> v = pd.Series([5.0, 1.0, 5.0, np.nan, 9.0],
    ...               index=["10001000100", "10001000200", "10001000300", "10001000400", "10001000500"])
    >>> percentile_rank(v, reference="state").tolist()
    [0.3333, 0.0, 0.3333, nan, 1.0]
    """
    keys = _reference_keys(pd.Index(values.index), reference)
    ranked = values.dropna()
    groups = keys.loc[ranked.index].to_numpy()
    rank = ranked.groupby(groups).rank(method="min")
    n = ranked.groupby(groups).transform("size")
    share = (rank - 1) / (n - 1)
    out = pd.Series(round_half_up(share.to_numpy(), load_svi_catalog().method.rank_decimals),
                    index=ranked.index)
    return out.reindex(values.index)


# ------------------------------------------------------------------------- compute
def _check_frame(inputs: pd.DataFrame, release: int, *, level: str | None,
                 states: Collection[str] | None) -> pd.Index:
    """The GEOIDs of ``inputs``, after checking its type, key, level and columns."""
    if not isinstance(inputs, pd.DataFrame):
        raise TypeError(f"inputs must be a pandas DataFrame, got {type(inputs).__name__}")
    if "GEOID" not in inputs.columns:
        raise InputError(f"inputs need a GEOID column; columns are {list(inputs.columns)[:10]}...")
    geoid = inputs["GEOID"]
    if not all(isinstance(g, str) for g in geoid):
        raise TypeError(f"GEOID must hold zero-padded strings, got {geoid.dtype} "
                        "(read files with dtype={'GEOID': str})")
    bad = ~geoid.str.fullmatch("|".join(rf"\d{{{w}}}" for w in GEOID_WIDTHS))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"GEOID {geoid.iloc[row]!r} (row {row}) is not an 11-digit tract or a "
                         "5-digit county GEOID")
    if geoid.str.len().nunique() > 1:
        raise InputError("GEOIDs mix tracts (11 digits) and counties (5 digits); rank one level at a time")
    found = GEOID_WIDTHS[len(geoid.iloc[0])] if len(geoid) else level
    if level is not None and level != found:
        raise InputError(f"level={level!r}, but the GEOIDs are {found} GEOIDs "
                         f"({geoid.iloc[0]!r}); pass the level of the rows given")
    if found is not None:
        check_geoids(geoid, level=found, states=states)
    if geoid.duplicated().any():
        raise InputError(f"GEOIDs repeat: {geoid[geoid.duplicated()].unique()[:5].tolist()}")
    absent = [c for c in svi_variables(release) if c not in inputs.columns]
    if absent:
        raise InputError(f"inputs lack {len(absent)} column(s) SVI {release} needs: {absent}")
    return pd.Index(geoid)


def _values(inputs: _Inputs, cat: SviCatalog, release: int) -> dict[str, _Column]:
    """E_/M_ of the totals and variables, then EP_/MP_ of the variables (CDC's column order)."""
    method = cat.method
    counts = {item.name: _estimate(inputs, item.releases[release].estimate, method)
              for item in (*cat.totals, *cat.variables)}
    out = {f"{p}_{name}": col for name, pair in counts.items() for p, col in zip("EM", pair, strict=True)}
    for v in cat.variables:
        percent = v.releases[release].percent
        if percent.published:
            pair = _published_percent(inputs, percent, method)
        else:
            den = percent.denominator
            denominator = (counts[den.removeprefix("E_")] if den.startswith("E_")
                           else (inputs.estimate(den), inputs.moe(den)))
            pair = _ratio_percent(counts[v.name], denominator, method)
        out[f"EP_{v.name}"], out[f"MP_{v.name}"] = pair
    return out


def _sum(columns: list[_Column], decimals: int) -> np.ndarray:
    return round_half_up(np.sum([c.value for c in columns], axis=0), decimals)


def _ranks(values: dict[str, _Column], cat: SviCatalog, geoids: pd.Index,
           reference: str) -> dict[str, _Column]:
    """EPL_, SPL_ and RPL_ per theme, then the overall SPL_THEMES and RPL_THEMES."""
    method = cat.method
    why = method.missing_reason
    rankable = values["E_TOTPOP"].value > method.rank_population_minimum

    def rank(value: np.ndarray) -> _Column:
        series = pd.Series(np.where(rankable, value, np.nan), index=geoids)
        return _Column.of(percentile_rank(series, reference=reference).to_numpy(), because=why)

    out: dict[str, _Column] = {}
    spl = []
    for theme in cat.themes:
        epl = [rank(values[f"EP_{m}"].value) for m in theme.members]
        out.update({f"EPL_{m}": col for m, col in zip(theme.members, epl, strict=True)})
        spl.append(_Column.of(_sum(epl, method.rank_decimals), because=why))
        out[f"SPL_THEME{theme.number}"] = spl[-1]
        out[f"RPL_THEME{theme.number}"] = rank(spl[-1].value)
    out["SPL_THEMES"] = _Column.of(_sum(spl, method.rank_decimals), because=why)
    out["RPL_THEMES"] = rank(out["SPL_THEMES"].value)
    return out


def _flags(ranks: dict[str, _Column], cat: SviCatalog) -> dict[str, _Column]:
    """F_ = 1 where EPL_ >= the threshold; F_THEMEn and F_TOTAL count them."""
    why = cat.method.missing_reason
    out: dict[str, _Column] = {}
    for theme in cat.themes:
        for m in theme.members:
            epl = ranks[f"EPL_{m}"].value
            out[f"F_{m}"] = _Column.of(np.where(np.isnan(epl), np.nan, epl >= cat.method.flag_threshold),
                                       because=why)
        out[f"F_THEME{theme.number}"] = _Column.of(_sum([out[f"F_{m}"] for m in theme.members], 0),
                                                   because=why)
    out["F_TOTAL"] = _Column.of(_sum([out[f"F_THEME{t.number}"] for t in cat.themes], 0), because=why)
    return out


def compute_svi(inputs: pd.DataFrame, *, release: int, reference: str = "state",
                level: str | None = None, states: Collection[str] | None = None) -> pd.DataFrame:
    """Compute the CDC/ATSDR SVI of tracts or counties from their ACS inputs, as CDC does.

    E_ and M_ are sums (M_ the truncated root of summed squares), EP_ and MP_ percents
    rounded half up to one decimal (a zero denominator gives CDC's EP_ of 0), EPL_ the
    percentile rank of EP_ among areas with E_TOTPOP > 0 in the same reference area,
    SPL_THEMEn the sum of a theme's EPL_, RPL_THEMEn its rank, SPL_THEMES/RPL_THEMES the
    same over the four themes, F_ the flags (EPL_ >= 0.90). Ranks are rounded half up to 4
    decimals. Areas not ranked (no population, or a missing input) get NaN and the reason
    ``svi_not_computed``.

    Parameters
    ----------
    inputs : pandas.DataFrame
        One row per area: a ``GEOID`` column of 11-digit tract or 5-digit county strings and
        the columns `svi_variables(release)` names (API names, e.g. ``B06009_002E`` and
        ``B06009_002M``). Census annotation values (-666666666, ...) and NaN are read as
        missing, with their reasons; a controlled MOE (-555555555) is 0.
    release : int
        The SVI release whose definitions to use (2020 or 2022); no default.
    reference : str
        "state" (CDC's state files), "nation" (all rows given, like CDC's US files) or
        "county" (within each county; tracts only).
    level : {"tract", "county"}, optional
        The level the rows are declared to be; read from the GEOID width when omitted.
        Either way, GEOIDs must start with a state and county FIPS code
        (`ingestion.core.geography.check_geoids`): ZCTAs are not counties.
    states : collection of str, optional
        The state FIPS codes the GEOIDs may start with (`ingestion.core.geography.check_geoids`);
        default the 50 states, DC and Puerto Rico. The demo region passes its "99".

    Returns
    -------
    pandas.DataFrame
        ``GEOID``, ``svi_release``, ``svi_reference``, then CDC's columns in CDC's order, each
        followed by its ``<column>_missing`` reason.

    Raises
    ------
    CatalogError
        If ``release`` is not in sdoh_sources/catalog/svi.yaml.
    InputError
        For missing input columns (all named), malformed or mixed-width GEOIDs, GEOIDs not of
        ``level`` or without a state and county FIPS prefix (ZCTAs given as counties),
        non-numeric inputs, or an unknown reference.
    TypeError
        If ``inputs`` is not a DataFrame or its GEOIDs are not strings.

    Examples
    --------
    The ACS 2016-2020 inputs of Delaware's 262 tracts (``real_data``: real publisher files):

    >>> raw = pd.read_csv(real_data / "de_acs2020_findsvi" / "de_tract_acs5_2020_svi_inputs.csv",
    ...                   dtype={"GEOID": str})
    >>> svi = compute_svi(raw, release=2020, reference="state")
    >>> svi[["GEOID", "RPL_THEMES", "RPL_THEMES_missing"]].head(3)
             GEOID  RPL_THEMES RPL_THEMES_missing
    0  10001040100      0.7608               None
    1  10001040201      0.4706               None
    2  10001040203      0.8157               None
    """
    cat = load_svi_catalog()
    cat.release(release)
    geoids = _check_frame(inputs, release, level=level, states=states)
    _reference_keys(geoids, reference)
    values = _values(_Inputs(inputs.reset_index(drop=True)), cat, release)
    ranks = _ranks(values, cat, geoids, reference)
    columns = {**values, **ranks, **_flags(ranks, cat)}
    out: dict[str, object] = {"GEOID": geoids.to_numpy(), "svi_release": release, "svi_reference": reference}
    for name, col in columns.items():
        out[name], out[f"{name}_missing"] = col.value, col.reason
    return pd.DataFrame(out)


# ------------------------------------------------------------------------- CDC files
# ------------------------------------------------------------------------- publishing
LEVELS = ("tract", "county")


def svi_dataset(svi: pd.DataFrame, *, level: str, reference: str, release: int,
                release_ts: pd.Timestamp, origin: str, synthetic: bool = False) -> pd.DataFrame:
    """The published rows (`svi_spec`) of an SVI frame from `compute_svi` or `read_svi_file`.

    Examples
    --------
    >>> raw = pd.read_csv(real_data / "de_acs2020_findsvi" / "de_tract_acs5_2020_svi_inputs.csv",
    ...                   dtype={"GEOID": str})
    >>> rows = svi_dataset(compute_svi(raw, release=2020, reference="state"), level="tract",
    ...                    reference="state", release=2020, origin="computed_from_acs",
    ...                    release_ts=pd.Timestamp("2022-03-17", tz="UTC"))
    >>> rows.shape, rows.columns[:3].tolist()
    ((262, 51), ['tract_geoid', 'boundary_year', 'vintage'])
    """
    rel = load_svi_catalog().release(release)
    out = {geoid_column(level): svi["GEOID"].to_numpy(), "boundary_year": rel.boundary_vintage,
           "vintage": rel.acs_vintage, "release_ts": release_ts.as_unit("us"), "synthetic": synthetic,
           "origin": origin, "svi_release": release}
    for m in svi_source(reference).measures:
        out[m.name] = svi[m.column].to_numpy(dtype=float)
        out[f"{m.name}_missing"] = svi[f"{m.column}_missing"].to_numpy(dtype=object)
    return pd.DataFrame(out)[list(svi_spec(level, reference).column_names)]


