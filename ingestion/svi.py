"""The CDC/ATSDR Social Vulnerability Index: computed from ACS inputs, or read from CDC's files.

`compute_svi` follows the method written in sdoh_sources/catalog/svi.yaml (each release's
variables, themes, rounding and ranking), so nothing here names an ACS variable.
`read_svi_file` reads a CSV as CDC publishes it. The two give frames with CDC's column names
(E_, M_, EP_, MP_, EPL_, SPL_, RPL_, F_); every value column ``X`` comes with ``X_missing``,
None where the value exists and otherwise the typed reason it does not (CDC's -999 is
``svi_not_computed``).

Examples
--------
>>> from ingestion.svi import svi_variables
>>> "S1701_C01_040E" in svi_variables(2020)
True
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion import moe
from ingestion.census_api import CensusClient, get_acs
from ingestion.csv_input import read_csv_text
from ingestion.datasets import geoid_column, svi_spec
from ingestion.errors import InputError
from ingestion.geography import check_geoids, normalize_states
from ingestion.publish import PublishResult, publish
from ingestion.workspace import Workspace
from sdoh_sources import load_catalog
from sdoh_sources.svi import (
    Method,
    Percent,
    SviCatalog,
    load_svi_catalog,
    published_columns,
    svi_source,
)

log = logging.getLogger(__name__)
GEOID_WIDTHS = {11: "tract", 5: "county"}
# A missing ACS input with no Census annotation (NaN in the frame given).
INPUT_NOT_AVAILABLE = "not_applicable"
# Columns of a CDC SVI file that are text; every other column is a number or -999.
TEXT_COLUMNS = ("ST", "STATE", "ST_ABBR", "STCNTY", "COUNTY", "FIPS", "GEOID", "LOCATION")
PADDED_COLUMNS = {"ST": 2, "STCNTY": 5}



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
    where the term under the root is negative (`ingestion.moe.moe_proportion`).
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
        (`ingestion.geography.check_geoids`): ZCTAs are not counties.
    states : collection of str, optional
        The state FIPS codes the GEOIDs may start with (`ingestion.geography.check_geoids`);
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
    >>> raw = pd.read_csv("de_tract_acs5_2020_svi_inputs.csv", dtype={"GEOID": str})  # doctest: +SKIP
    >>> svi = compute_svi(raw, release=2020, reference="state")  # doctest: +SKIP
    >>> svi[["GEOID", "RPL_THEMES", "RPL_THEMES_missing"]].head()  # doctest: +SKIP
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
def _padded_codes(raw: pd.Series, *, path: Path, column: str, width: int | None = None) -> pd.Series:
    """Digit codes zero-padded to ``width``, or to 11 (tract) / 5 (county) for the key."""
    text = raw.str.strip()
    if width is None:
        width = 11 if text.str.len().max() > 5 else 5
    bad = ~text.str.fullmatch(r"\d+") | (text.str.len() > width)
    if width == 11:
        bad |= text.str.len() <= 5  # a county code in a tract file
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: row {row + 2}, field {column}: {raw.iloc[row]!r} is not a "
                         f"{width}-digit code; fix the row or download the file again")
    return text.str.zfill(width)


def _file_values(raw: pd.Series, *, path: Path, column: str, method: Method) -> tuple[pd.Series, pd.Series]:
    """A numeric column of a CDC file: -999 becomes NaN and CDC's missing reason."""
    numbers = pd.to_numeric(raw.str.strip(), errors="coerce")
    bad = numbers.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: row {row + 2}, field {column}: {raw.iloc[row]!r} is not a number "
                         f"(CDC writes {method.missing_value:g} for values not computed); fix the "
                         "row or download the file again")
    missing = numbers == method.missing_value
    reason = pd.Series(np.where(missing, method.missing_reason, None), index=raw.index, dtype=object)
    return numbers.astype(float).mask(missing), reason


def read_svi_file(path: str | Path) -> pd.DataFrame:
    """Read an SVI CSV as CDC publishes it (US or state, tract or county).

    The file is UTF-8 with or without a byte-order mark (CDC's files are ASCII; one saved as
    Latin-1 is refused with the line of its first non-UTF-8 byte, not guessed at). FIPS
    (``GEOID`` in some re-exports) is zero-padded to 11 digits in tract files and 5 in county
    files, ST to 2 and STCNTY to 5; every other column except the names is a number, and
    CDC's -999 becomes NaN with the reason ``svi_not_computed`` in ``<column>_missing``.
    Values are CDC's, untouched.

    Parameters
    ----------
    path : str or Path
        The CSV, e.g. ``SVI_2020_US.csv`` or ``Delaware.csv``.

    Returns
    -------
    pandas.DataFrame
        The file's columns in its order, each numeric one followed by its reason column.

    Raises
    ------
    InputError
        Naming the file, row (line in the file) and field of a malformed value, or the
        file and line of a row with the wrong number of fields; for an empty, header-only
        or non-UTF-8 file (`ingestion.csv_input.read_csv_text`).

    Examples
    --------
    >>> svi = read_svi_file("SVI_2020_US.csv")  # doctest: +SKIP
    >>> svi.loc[svi["RPL_THEMES"].isna(), "RPL_THEMES_missing"].unique()  # doctest: +SKIP
    array(['svi_not_computed'], dtype=object)
    """
    path = Path(path)
    raw = read_csv_text(path, what="a CDC SVI file")
    key = next((c for c in ("FIPS", "GEOID") if c in raw.columns), None)
    if key is None:
        raise InputError(f"{path}: row 1 (header): no FIPS (or GEOID) column; columns are "
                         f"{list(raw.columns)[:10]}...: is this a CDC SVI file?")
    method = load_svi_catalog().method
    out: dict[str, pd.Series] = {}
    for column in raw.columns:
        if column == key or column in PADDED_COLUMNS:
            out[column] = _padded_codes(raw[column], path=path, column=column,
                                        width=PADDED_COLUMNS.get(column))
        elif column in TEXT_COLUMNS:
            out[column] = raw[column]
        else:
            out[column], out[f"{column}_missing"] = _file_values(raw[column], path=path, column=column,
                                                                 method=method)
    return pd.DataFrame(out)


# ------------------------------------------------------------------------- publishing
API_GEOGRAPHY = {"tract": "tract", "county": "county"}


def svi_dataset(svi: pd.DataFrame, *, level: str, reference: str, release: int,
                release_ts: pd.Timestamp, origin: str, synthetic: bool = False) -> pd.DataFrame:
    """The published rows (`svi_spec`) of an SVI frame from `compute_svi` or `read_svi_file`.

    Examples
    --------
    >>> svi_dataset(compute_svi(inputs, release=2020), level="tract", reference="state",
    ...             release=2020, release_ts=pd.Timestamp("2022-03-17", tz="UTC"),
    ...             origin="computed_from_acs")  # doctest: +SKIP
    """
    rel = load_svi_catalog().release(release)
    out = {geoid_column(level): svi["GEOID"].to_numpy(), "boundary_year": rel.boundary_vintage,
           "vintage": rel.acs_vintage, "release_ts": release_ts.as_unit("us"), "synthetic": synthetic,
           "origin": origin, "svi_release": release}
    for m in svi_source(reference).measures:
        out[m.name] = svi[m.column].to_numpy(dtype=float)
        out[f"{m.name}_missing"] = svi[f"{m.column}_missing"].to_numpy(dtype=object)
    return pd.DataFrame(out)[list(svi_spec(level, reference).column_names)]


def ingest_svi(
    level: str,
    release: int,
    state: str | list[str] | None,
    *,
    reference: str,
    workspace: Workspace,
    client: CensusClient | None = None,
    synthetic: bool = False,
) -> PublishResult:
    """Compute the SVI from the ACS inputs of its release and publish it through the gate.

    The rows' event time is the release day of the ACS vintage the SVI is computed from: the
    index could be computed from that day on.

    Parameters
    ----------
    level : {"tract", "county"}
    release : int
        SVI release (2020, 2022); no default.
    state : str, list of str or None
        State(s) as FIPS, postal code or name; None for every state (required for the nation
        as reference area).
    reference : {"state", "nation"}
        The area ranks are computed within.
    workspace : Workspace
    client : CensusClient, optional
    synthetic : bool
        Marks the demo region's rows.

    Returns
    -------
    PublishResult

    Raises
    ------
    InputError
        A national reference with a state list (ranks would not be national).

    Examples
    --------
    >>> ingest_svi("tract", 2020, "DE", reference="state", workspace=Workspace("ws"))  # doctest: +SKIP
    """
    if level not in API_GEOGRAPHY:
        raise InputError(f"SVI is published for {list(API_GEOGRAPHY)}, not {level!r}")
    if reference == "nation" and state is not None:
        raise InputError("ranks within the nation need every state: pass state=None (`--state all`)")
    rel = load_svi_catalog().release(release)
    variables = sorted({v[:-1] for v in svi_variables(release)})
    inputs = get_acs(API_GEOGRAPHY[level], variables, rel.acs_vintage, state, client=client,
                     output="wide")
    svi = compute_svi(inputs, release=release, reference=reference, level=level,
                      states=None if state is None else normalize_states(state))
    released = pd.Timestamp(load_catalog().release("acs5", rel.acs_vintage).release_ts)
    frame = svi_dataset(svi, level=level, reference=reference, release=release, release_ts=released,
                        origin="computed_from_acs", synthetic=synthetic)
    return publish(frame, svi_spec(level, reference), workspace, data_docs=True)


def apparent_reference(svi: pd.DataFrame) -> tuple[str, str] | None:
    """The area an SVI file's ranks look computed within, from its values, and the evidence.

    CDC ranks with ``(min-rank - 1) / (n - 1)``, so within each reference area every rank
    column runs from exactly 0 to 1 (the top below 1 only when several areas tie for it).
    A file ranked within each state shows that in every state; a file ranked within the
    nation does not (a single state rarely holds the nation's lowest and highest area of all
    five RPL_ columns). States come from ST, else the GEOID's first two digits.

    Parameters
    ----------
    svi : pandas.DataFrame
        A frame of `read_svi_file`, with ``GEOID`` (or ``FIPS``) and the RPL_ columns.

    Returns
    -------
    tuple of (str, str) or None
        ``("state", why)`` or ``("nation", why)``; None when no state has two ranked areas.

    Examples
    --------
    >>> frame = pd.DataFrame({"GEOID": ["10001000100", "10001000200", "10001000300"],
    ...                       **{c: [0.0, 0.5, 1.0] for c in
    ...                          ["RPL_THEME1", "RPL_THEME2", "RPL_THEME3", "RPL_THEME4", "RPL_THEMES"]}})
    >>> apparent_reference(frame)[0]
    'state'
    """
    cat = load_svi_catalog()
    columns = [f"RPL_THEME{t.number}" for t in cat.themes] + ["RPL_THEMES"]
    key = svi["GEOID"] if "GEOID" in svi else svi["FIPS"]
    states = svi["ST"] if "ST" in svi else key.str[:2]
    checked = 0
    for state, rows in svi.groupby(states.to_numpy()):
        for column in columns:
            values = rows[column].dropna()
            if len(values) < 2:
                continue
            low, top = values.min(), values.max()
            if low != 0 or (top != 1 and (values == top).sum() < 2):
                return "nation", (f"{column} in state {state} runs from {low:g} to {top:g}, not from "
                                  "0 to 1 as in a file ranked within its state")
            checked += 1
    if not checked:
        return None
    return "state", (f"every RPL_ column runs from 0 to 1 within each of its "
                     f"{states.nunique()} state(s), as in a file ranked within its state")


def _check_file_columns(svi: pd.DataFrame, *, path: Path) -> None:
    """Every published SVI column is in the file, or an error naming them all."""
    absent = [c for c in published_columns(load_svi_catalog()) if c not in svi.columns]
    if absent:
        raise InputError(f"{path}: row 1 (header): missing column(s) {absent}, which the feature "
                         "store publishes; pass CDC's full SVI file (every EPL_, RPL_ and F_TOTAL "
                         "column), not an extract")


def _check_reference(svi: pd.DataFrame, *, path: Path, reference: str) -> None:
    """The reference declared is the one the file's ranks show, or an error saying which."""
    seen = apparent_reference(svi)
    if seen is None:
        log.warning("%s: too few ranked areas to tell the reference area of the ranks; "
                    "trusting reference=%r", path, reference)
    elif seen[0] != reference:
        raise InputError(
            f"{path}: reference={reference!r} (--reference {reference}) given, but the ranks look "
            f"computed within the {seen[0]}: {seen[1]}; pass --reference {seen[0]} if this is "
            f"CDC's {'state' if seen[0] == 'state' else 'US'} file, or use the file that matches "
            f"--reference {reference}")


def ingest_svi_file(
    path: str | Path,
    *,
    release: int,
    reference: str,
    available_from: dt.date,
    workspace: Workspace,
) -> PublishResult:
    """Read an SVI file as CDC publishes it and publish its ranks through the gate.

    CDC's US files rank within the nation, its state files within the state: say which with
    ``reference``; the file's ranks must show the same (`apparent_reference`). CDC's download
    page gives no machine-readable release day, so the rows' event time is ``available_from``
    (when the file became available to you).

    Raises
    ------
    InputError
        For a file `read_svi_file` refuses, one without the published columns (RPL_THEMES,
        ...; all named), or one whose ranks look computed within another reference area.

    Examples
    --------
    >>> ingest_svi_file("SVI_2020_US.csv", release=2020, reference="nation",
    ...                 available_from=dt.date(2022, 12, 22), workspace=Workspace("ws"))  # doctest: +SKIP
    """
    path = Path(path)
    svi = read_svi_file(path)
    svi = svi.rename(columns={"FIPS": "GEOID"})
    _check_file_columns(svi, path=path)
    _check_reference(svi, path=path, reference=reference)
    level = GEOID_WIDTHS[svi["GEOID"].str.len().max()]
    frame = svi_dataset(svi, level=level, reference=reference, release=release,
                        release_ts=pd.Timestamp(available_from, tz="UTC"), origin="publisher_file")
    return publish(frame, svi_spec(level, reference), workspace, data_docs=True)
