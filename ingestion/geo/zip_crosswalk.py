"""ZIP-only addresses: read the ZIP crosswalk files users have and link ZIPs through them.

A patient known only by a ZIP code cannot be placed in a block group or tract. What a ZIP can
honestly give is a ZIP-level link, flagged as such (``precision="zip"``), through one of two
published crosswalks. They answer different questions:

* **UDS Mapper "ZIP Code to ZCTA Crosswalk"** (John Snow, Inc., 2009-2022; style
  ``uds_zcta``) maps each ZIP to **one ZCTA** (ZIP Code Tabulation Area, the Census Bureau's
  area approximation of a ZIP). ``zip_join_type`` says how: the ZIP has its own ZCTA
  (``zip_matches_zcta``) or was placed in the ZCTA its location falls in
  (``spatial_join_to_zcta``), or it has none (``no_zcta``).
* **HUD-USPS ZIP Code Crosswalk Files** (``ZIP_TRACT_MMYYYY``, ``ZIP_COUNTY_MMYYYY``; styles
  ``hud_tract`` and ``hud_county``) do **not** map to ZCTAs. They split each ZIP's addresses
  over the tracts (or counties) they lie in: one row per piece, with ``RES_RATIO`` the share
  of the ZIP's residential addresses in that piece. A ZIP is thus an *allocation* over several
  geographies (`zip_allocations`), and its single link (`zip_links`) is only the geography
  holding the largest share of its residences (``join_type="hud_max_res_ratio"``, its share
  in ``ratio``): an approximation, never the patient's located tract. PO-box-only ZIPs are
  not in HUD files at all.

Which columns each publisher used, year by year, and their value vocabularies are data in
sdoh_sources/catalog/zip_crosswalks.yaml, with sources.

Decisions
---------
* **PO box and unique ZIPs** ("Post Office or large volume customer") locate a post office or
  an organisation, not a residence. The UDS crosswalk still assigns them a ZCTA, by a spatial
  join to where the post office is, and the UDS Mapper itself counts them there, so they are
  linked to that ZCTA, but the link says what it is: ``zip_type``
  ``post_office_or_large_volume_customer``, ``nonresidential_zip`` true and the crosswalk's
  ``join_type``. A model or report that should not use them filters on ``nonresidential_zip``.
  (A PO box *street address* is different: `ingestion.geo.linking` never links it.)
* **HUD ZIPs with no residential address** (all ``RES_RATIO`` 0) are linked to the geography
  with the largest ``TOT_RATIO``, with ``join_type="hud_max_tot_ratio"`` and
  ``nonresidential_zip`` true.
* **Missing has a reason** (`ZIP_LINK_MISSING_REASONS`): no ZIP, a malformed ZIP, a ZIP the
  crosswalk does not list, a ZIP the crosswalk lists with no ZCTA.
* **A ZIP-only patient never gets block-group precision**: the links carry no block group and
  their precision is ``"zip"`` (or ``"none"`` when there is no usable ZIP).

Reading is strict: a malformed crosswalk raises `InputError` naming the file, the row (the
spreadsheet or CSV row number, header = row 1) and the field.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ingestion.core.datasets import BOUNDARY_VINTAGES
from ingestion.core.errors import InputError
from sdoh_sources.catalog import catalog_path
from sdoh_sources.zip_crosswalks import (
    CATALOG_FILE,
    RATIO_COLUMNS,
    STYLES,
    CrosswalkStyle,
    load_zip_crosswalk_catalog,
    zip_join_types,
)

__all__ = [
    "ALLOCATION_COLUMNS",
    "CROSSWALK_COLUMNS",
    "STYLES",
    "ZIP_LINK_COLUMNS",
    "ZIP_LINK_MISSING_REASONS",
    "detect_style",
    "read_zip_crosswalk",
    "zip_allocations",
    "zip_join_types",
    "zip_links",
]

logger = logging.getLogger(__name__)

Style = Literal["uds_zcta", "hud_tract", "hud_county"]

#: Columns of the frame `read_zip_crosswalk` returns, one row per crosswalk row.
CROSSWALK_COLUMNS = (
    "zip", "geoid", "target_level", "join_type", "join_type_raw", "zip_type", "zip_type_raw",
    "nonresidential_zip", "res_ratio", "bus_ratio", "oth_ratio", "tot_ratio", "po_name",
    "state", "style", "crosswalk_vintage", "boundary_year", "source_file", "source_row",
)

#: Columns of the frame `zip_links` returns, one row per input ZIP, in the input's order.
ZIP_LINK_COLUMNS = (
    "zip", "zcta_geoid", "tract_geoid", "county_geoid", "boundary_year", "link_method",
    "precision", "join_type", "zip_type", "nonresidential_zip", "ratio", "ratio_basis",
    "candidates", "crosswalk_style", "crosswalk_vintage", "link_missing",
)

#: Columns of the frame `zip_allocations` returns, one row per (input ZIP, geography) piece.
ALLOCATION_COLUMNS = (
    "input_index", "zip", "zcta_geoid", "tract_geoid", "county_geoid", "boundary_year",
    "res_ratio", "tot_ratio", "weight", "weight_basis", "main_link",
)

#: Why `zip_links` could not link a ZIP (to be listed in sdoh_sources/catalog/missing_reasons.yaml).
ZIP_LINK_MISSING_REASONS = {
    "no_zip": "No ZIP code was given",
    "invalid_zip": "The ZIP is not 5 digits, optionally followed by 4 (ZIP+4)",
    "zip_not_in_crosswalk": "The ZIP is not in the ZIP crosswalk used (new, retired or PO-box-only "
                            "ZIP, or outside the crosswalk's coverage)",
    "zip_has_no_zcta": "The ZIP crosswalk lists the ZIP with no ZCTA (e.g. Freely Associated "
                       "States or military ZIPs)",
}

_LINK_METHOD = "zip_crosswalk"
_GEOID_WIDTH = {"zcta": 5, "tract": 11, "county": 5}
# How many digits a GEOID may have in a file before zero-padding (Excel drops leading zeros):
# ZIPs and ZCTAs start at 00501/00601, tracts and counties at state 01.
_DIGITS = {"zip": (3, 5), "zcta": (3, 5), "tract": (10, 11), "county": (4, 5)}
_ZIP_INPUT = re.compile(r"(\d{5})(?:-?\d{4})?")
_RATIO_TOLERANCE = 1e-9
_SUM_TOLERANCE = 0.01
_CATALOG_FILE = catalog_path(CATALOG_FILE)


def _fold(name: object) -> str:
    return str(name).strip().casefold()


# -- reading ------------------------------------------------------------------------------------


def detect_style(columns: list[str] | pd.Index) -> Style:
    """Which crosswalk layout a header row is, from its column names.

    Parameters
    ----------
    columns
        The header row (case and surrounding spaces do not matter).

    Returns
    -------
    str
        ``"uds_zcta"``, ``"hud_tract"`` or ``"hud_county"``.

    Raises
    ------
    InputError
        The header fits none of the styles, or more than one.

    Examples
    --------
    >>> detect_style(["ZIP_CODE", "PO_NAME", "STATE", "ZIP_TYPE", "zcta", "zip_join_type"])
    'uds_zcta'
    >>> detect_style(["zip", "tract", "res_ratio", "bus_ratio", "oth_ratio", "tot_ratio"])
    'hud_tract'
    """
    found = {_fold(c) for c in columns}
    fits = [name for name, spec in load_zip_crosswalk_catalog().styles.items()
            if all(any(_fold(s) in found for s in spec.spellings(f)) for f in spec.required)]
    if len(fits) == 1:
        return fits[0]  # type: ignore[return-value]
    expected = "; ".join(
        f"{name}: " + ", ".join("/".join(spec.spellings(f)) for f in spec.required)
        for name, spec in load_zip_crosswalk_catalog().styles.items())
    if not fits:
        raise InputError(f"the columns {list(columns)} fit no ZIP crosswalk style (required "
                         f"columns per style, any case: {expected}); pass style= or fix the header")
    raise InputError(f"the columns {list(columns)} fit several ZIP crosswalk styles {fits}; "
                     "pass style= to choose")


def read_zip_crosswalk(
    path: str | os.PathLike[str],
    *,
    style: Style | None = None,
    boundary_year: int | None = None,
    sheet: str | int | None = None,
) -> pd.DataFrame:
    """Read a UDS ZIP-to-ZCTA or HUD ZIP-to-tract/county crosswalk into one canonical frame.

    The layout is detected from the header (`detect_style`) unless ``style`` is given. Header
    spellings of every year (``ZIP_CODE`` or ``ZIP``, ``ZCTA``/``zcta``/``ZCTA_USE``, HUD upper
    or lower case, ...) and the value vocabularies come from
    sdoh_sources/catalog/zip_crosswalks.yaml. ZIPs and ZCTAs become zero-padded 5-character
    strings (Excel drops leading zeros: ``501`` is read as ``"00501"``), tracts 11 and
    counties 5 characters.

    Parameters
    ----------
    path
        A ``.csv`` (UTF-8 or Latin-1; optionally ``.csv.gz``) or ``.xlsx`` file, e.g.
        ``ZIPCodetoZCTACrosswalk2021UDS.xlsx`` or ``ZIP_TRACT_122023.xlsx``. Old ``.xls``
        files (UDS 2009-2010) must be saved as CSV or xlsx first.
    style
        ``"uds_zcta"``, ``"hud_tract"`` or ``"hud_county"``; detected from the header when
        omitted.
    boundary_year
        The Census boundary vintage (2010 or 2020) of the file's ZCTAs, tracts or counties.
        For a HUD file named ``ZIP_TRACT_MMYYYY``/``ZIP_COUNTY_MMYYYY`` it is known from the
        quarter (2010 geographies from 2012 Q1, 2020 from 2023 Q1) and a different value is
        an error. A UDS file does not say which ZCTA vintage it uses: pass it, or the
        ``boundary_year`` column stays null.
    sheet
        The worksheet of an xlsx file; by default the first sheet whose header is a crosswalk.

    Returns
    -------
    pandas.DataFrame
        The columns of `CROSSWALK_COLUMNS`, one row per crosswalk row, in file order:
        ``zip`` and ``geoid`` (null where the UDS file says the ZIP has no ZCTA) as strings;
        ``target_level`` (zcta, tract, county); ``join_type`` and ``zip_type`` canonical (see
        the YAML; ``join_type`` is ``"not_recorded"`` for UDS files without that column and
        null for HUD files) with the file's own values in ``*_raw``; ``nonresidential_zip``
        (nullable boolean); the four HUD ratios (NaN for UDS); ``po_name``, ``state``;
        ``style``, ``crosswalk_vintage`` (``"2021"``, ``"2023-12"`` or null, from the file
        name), ``boundary_year`` (Int64), ``source_file`` and ``source_row`` (the row number
        in the file, header = 1).

    Raises
    ------
    InputError
        The file cannot be read, is ``.xls``, is xlsx while openpyxl is not installed, has no
        header of a known style (or not the one asked for), or a row is malformed: a ZIP or
        GEOID that is not digits ("1234A"), an empty required field, a ratio that is not a
        number in [0, 1], a ZIP type or join type outside the YAML's vocabulary, a ZIP listed
        twice in a UDS file or a (ZIP, GEOID) pair twice in a HUD file, a HUD file older than
        2012 Q1 (2000 geographies), or a ``boundary_year`` contradicting the HUD file name.
        The message names the file, the row and the field.
    ValueError
        ``style`` is not one of `STYLES` or ``boundary_year`` not one of 2010, 2020.

    Warns
    -----
    UserWarning
        Columns the style does not know (a renamed column would otherwise be lost silently);
        a UDS ZIP listed twice with no ZCTA in all rows but one (kept: the row with a ZCTA);
        HUD ratios of one ZIP summing to more than 1 (beyond rounding).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "ZIPCodetoZCTACrosswalk2021UDS.csv").write_text(
    ...     "ZIP_CODE,PO_NAME,STATE,ZIP_TYPE,ZCTA,zip_join_type\\n"
    ...     "501,Holtsville,NY,Post Office or large volume customer,11742,Spatial join to ZCTA\\n")
    >>> xw = read_zip_crosswalk(folder / "ZIPCodetoZCTACrosswalk2021UDS.csv", boundary_year=2020)
    >>> xw.loc[0, ["zip", "geoid", "join_type", "zip_type"]].tolist()
    ['00501', '11742', 'spatial_join_to_zcta', 'post_office_or_large_volume_customer']
    """
    if style is not None and style not in STYLES:
        raise ValueError(f"style must be one of {list(STYLES)}, got {style!r}")
    if boundary_year is not None and boundary_year not in BOUNDARY_VINTAGES:
        raise ValueError(f"boundary_year must be one of {list(BOUNDARY_VINTAGES)}, got {boundary_year!r}")
    path = Path(path)
    raw = _read_table(path, style=style, sheet=sheet)
    chosen = style or detect_style(raw.columns)
    spec = load_zip_crosswalk_catalog().styles[chosen]
    fields = _resolve_columns(raw.columns, spec, path=path, style=chosen)

    # Rows where every cell is empty (Excel leaves some) are not data.
    blank = (raw == "").all(axis=1).to_numpy()
    rows = np.arange(2, len(raw) + 2, dtype=np.int64)[~blank]
    raw = raw.loc[~blank].reset_index(drop=True)
    values = {f: _coalesce(raw, cols) for f, cols in fields.items()}

    vintage, hud_boundary = _vintage_from_name(path, spec, chosen)
    if hud_boundary is not None and boundary_year is not None and hud_boundary != boundary_year:
        raise InputError(f"{path}: its name says {vintage} HUD data on {hud_boundary} Census "
                         f"geographies, but boundary_year={boundary_year} was given")
    boundary = boundary_year if boundary_year is not None else hud_boundary

    n = len(raw)
    out = pd.DataFrame(index=range(n))
    header = {f: cols[0] for f, cols in fields.items()}
    out["zip"] = _digits(values["zip"], "zip", path=path, rows=rows, field=header["zip"])
    geoid_text = values["geoid"]
    no_geoid = geoid_text.str.casefold().isin([_fold(v) for v in spec.no_geoid_values]) \
        | (geoid_text == "")
    if not spec.one_row_per_zip and no_geoid.any():
        _fail(path, rows, no_geoid.to_numpy(), header["geoid"], geoid_text,
              f"a {spec.target_level} GEOID is required")
    out["geoid"] = _digits(geoid_text.mask(no_geoid, ""), spec.target_level, path=path,
                           rows=rows, field=header["geoid"], allow_empty=True)
    out["target_level"] = spec.target_level
    _vocabulary_columns(out, values, spec, path=path, rows=rows, header=header)
    for column in RATIO_COLUMNS:
        if column in values:
            out[column] = _ratios(values[column], path=path, rows=rows, field=header[column],
                                  required=column in spec.required)
        else:
            out[column] = np.nan
    for column in ("po_name", "state"):
        text = values.get(column, pd.Series("", index=raw.index))
        out[column] = text.mask(text == "").astype("string")
    out["style"] = chosen
    out["crosswalk_vintage"] = pd.Series(vintage, index=out.index, dtype="string")
    out["boundary_year"] = pd.Series(boundary, index=out.index, dtype="Int64")
    out["source_file"] = str(path)
    out["source_row"] = rows

    if chosen == "uds_zcta":
        out = _check_uds_duplicates(out, path=path, field=header["zip"])
        bad = (out["join_type"] == "no_zcta") & out["geoid"].notna()
        _fail(path, out["source_row"].to_numpy(), bad.to_numpy(), header.get("join_type", "join_type"),
              out["join_type_raw"], f"says no ZCTA but {header['geoid']} holds one")
    else:
        _check_hud(out, path=path, header=header)
    for column in ("zip", "geoid", "target_level", "join_type", "join_type_raw", "zip_type",
                   "zip_type_raw", "style", "source_file"):
        out[column] = out[column].astype("string")
    logger.info("read %d rows of %s crosswalk %s (%d ZIPs)", len(out), chosen, path,
                out["zip"].nunique())
    return out[list(CROSSWALK_COLUMNS)].reset_index(drop=True)


def _read_table(path: Path, *, style: str | None, sheet: str | int | None) -> pd.DataFrame:
    """Every cell as stripped text ("" when empty), with the header as read."""
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith(".xls"):
        raise InputError(f"{path}: legacy .xls workbooks are not read; open it in a spreadsheet "
                         "program and save it as .xlsx or CSV")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        frame = _read_xlsx(path, style=style, sheet=sheet)
    else:
        frame = _read_csv(path)
    return frame.apply(lambda c: c.str.strip())


def _read_csv(path: Path) -> pd.DataFrame:
    last: Exception | None = None
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                               encoding=encoding, skip_blank_lines=True)
        except UnicodeDecodeError as exc:
            last = exc
        except Exception as exc:  # pandas raises many types for a malformed file
            raise InputError(f"{path}: cannot read the CSV: {exc}") from exc
    raise InputError(f"{path}: cannot decode the CSV as UTF-8 or Latin-1: {last}")


def _read_xlsx(path: Path, *, style: str | None, sheet: str | int | None) -> pd.DataFrame:
    try:
        import openpyxl  # noqa: F401
    except ImportError as exc:
        raise InputError(f"{path}: reading .xlsx needs the openpyxl package, which is not "
                         "installed; install it (pip install openpyxl) or save the sheet as "
                         "CSV and read that") from exc
    try:
        sheets = pd.read_excel(path, sheet_name=None if sheet is None else sheet, dtype=str,
                               engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise InputError(f"{path}: cannot read the workbook: {exc}") from exc
    if not isinstance(sheets, dict):
        return sheets.fillna("")
    for name, frame in sheets.items():
        try:
            found = detect_style(frame.columns)
        except InputError:
            continue
        if style is None or found == style:
            logger.info("%s: reading sheet %r", path, name)
            return frame.fillna("")
    raise InputError(f"{path}: no sheet has a ZIP crosswalk header (sheets: {list(sheets)}); "
                     "pass sheet= and style=")


def _resolve_columns(columns: pd.Index, spec: CrosswalkStyle, *, path: Path,
                     style: str) -> dict[str, list[str]]:
    """Canonical field -> the file's columns holding it, in order of preference."""
    folded = [_fold(c) for c in columns]
    repeated = sorted({c for c in folded if folded.count(c) > 1})
    if repeated:
        raise InputError(f"{path}: row 1 (header): column {repeated[0]!r} appears twice")
    by_fold = dict(zip(folded, columns, strict=True))
    fields: dict[str, list[str]] = {}
    for field, spellings in spec.columns.items():
        present = [by_fold[_fold(s)] for s in spellings if _fold(s) in by_fold]
        if present:
            fields[field] = present
    missing = [f for f in spec.required if f not in fields]
    if missing:
        wanted = "; ".join(f"{f}: one of {list(spec.spellings(f))}" for f in missing)
        raise InputError(f"{path}: row 1 (header): a {style} crosswalk needs {wanted} (any case); "
                         f"found {list(columns)}")
    known = {_fold(s) for spellings in spec.columns.values() for s in spellings}
    known |= {_fold(s) for s in spec.ignored}
    unknown = [c for c, f in zip(columns, folded, strict=True) if f not in known]
    if unknown:
        warnings.warn(f"{path}: columns {unknown} are not part of the {style} layout in "
                      f"{_CATALOG_FILE} and are ignored; if one is a renamed known column, add "
                      "the spelling there", stacklevel=4)
    return fields


def _coalesce(raw: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Per row, the first of ``columns`` that has a value."""
    out = raw[columns[0]]
    for column in columns[1:]:
        out = out.mask(out == "", raw[column])
    return out


def _vintage_from_name(path: Path, spec: CrosswalkStyle, style: str) -> tuple[str | None, int | None]:
    match = re.search(spec.filename_pattern, path.name)
    if match is None:
        return None, None
    year = int(match["year"])
    if style == "uds_zcta":
        return str(year), None
    month = int(match["month"])
    if not 1 <= month <= 12:
        return None, None
    quarter = (month - 1) // 3 + 1
    vintage = f"{year}-{month:02d}"
    boundary = None
    rules = load_zip_crosswalk_catalog().hud_boundary_years
    for rule in sorted(rules, key=lambda r: (r.from_year, r.from_quarter)):
        if (year, quarter) >= (rule.from_year, rule.from_quarter):
            boundary = rule.boundary_year
    if boundary is None:
        raise InputError(f"{path}: HUD files before 2012 Q1 use 2000 Census geographies "
                         f"(this one is {vintage}); the project links to 2010 and 2020 geographies")
    return vintage, boundary


def _digits(text: pd.Series, kind: str, *, path: Path, rows: np.ndarray, field: str,
            allow_empty: bool = False) -> pd.Series:
    """Zero-padded GEOIDs of ``kind`` (zip, zcta, tract, county); an error names the first bad row."""
    low, high = _DIGITS[kind]
    width = high
    digits = text.str.replace(r"\.0+$", "", regex=True)  # 501.0 from a numeric Excel cell
    good = digits.str.fullmatch(rf"\d{{{low},{high}}}")
    empty = text == ""
    if not allow_empty:
        _fail(path, rows, empty.to_numpy(), field, text, "is empty")
    bad = ~good & ~empty
    expected = (f"{high} digits" if low == high else f"{high} digits ({low} to {high - 1} are "
                "zero-padded: Excel drops leading zeros)")
    _fail(path, rows, bad.to_numpy(), field, text, f"is not a {kind.upper()} code: expected {expected}")
    return digits.str.zfill(width).mask(empty).astype("string")


def _ratios(text: pd.Series, *, path: Path, rows: np.ndarray, field: str,
            required: bool) -> pd.Series:
    empty = text == ""
    if required:
        _fail(path, rows, empty.to_numpy(), field, text, "is empty")
    number = pd.to_numeric(text.mask(empty), errors="coerce").astype("float64")
    _fail(path, rows, (number.isna() & ~empty).to_numpy(), field, text, "is not a number")
    outside = (number < -_RATIO_TOLERANCE) | (number > 1 + _RATIO_TOLERANCE)
    _fail(path, rows, outside.to_numpy(), field, text, "is outside 0-1 (a ratio is a share)")
    return number.clip(0.0, 1.0)


def _vocabulary_columns(out: pd.DataFrame, values: dict[str, pd.Series], spec: CrosswalkStyle, *,
                        path: Path, rows: np.ndarray, header: dict[str, str]) -> None:
    cat = load_zip_crosswalk_catalog()
    for field, mapping in (("zip_type", spec.zip_types), ("join_type", spec.join_types)):
        if field not in values:
            out[f"{field}_raw"] = pd.Series(pd.NA, index=out.index, dtype="string")
            default = "not_recorded" if field == "join_type" and spec.target_level == "zcta" else pd.NA
            out[field] = pd.Series(default, index=out.index, dtype="string")
            continue
        raw = values[field]
        lookup = {_fold(k): v for k, v in mapping.items()}
        canonical = raw.str.casefold().map(lookup)
        unknown = canonical.isna() & (raw != "")
        _fail(path, rows, unknown.to_numpy(), header[field], raw,
              f"is not a known {field.replace('_', ' ')} (known: {sorted(mapping)}; a new value "
              f"goes in {_CATALOG_FILE} with its source)")
        out[f"{field}_raw"] = raw.mask(raw == "").astype("string")
        if field == "join_type":
            canonical = canonical.fillna("not_recorded")
        out[field] = canonical.astype("string")
    flags = {k: v.nonresidential for k, v in cat.zip_types.items()}
    out["nonresidential_zip"] = out["zip_type"].map(flags).astype("boolean")


def _check_uds_duplicates(out: pd.DataFrame, *, path: Path, field: str) -> pd.DataFrame:
    repeated = out["zip"].duplicated(keep=False)
    if not repeated.any():
        return out
    drop = pd.Series(False, index=out.index)
    for zip_code, group in out[repeated].groupby("zip", sort=True):
        with_zcta = group[group["geoid"].notna()]
        if len(with_zcta) == 1:
            # The 2019 file lists 96898 twice, once with "No ZCTA" (see the YAML, [stata_2019]).
            drop.loc[group.index.difference(with_zcta.index)] = True
            warnings.warn(f"{path}: ZIP {zip_code} is listed {len(group)} times; rows "
                          f"{group['source_row'].tolist()} — keeping row "
                          f"{int(with_zcta['source_row'].iloc[0])}, the only one with a ZCTA",
                          stacklevel=3)
            continue
        first, second = group["source_row"].iloc[0], group["source_row"].iloc[1]
        raise InputError(f"{path}: row {second}, field {field!r}: ZIP {zip_code} is listed "
                         f"again (first at row {first}); a UDS crosswalk has one row per ZIP")
    return out.loc[~drop].reset_index(drop=True)


def _check_hud(out: pd.DataFrame, *, path: Path, header: dict[str, str]) -> None:
    pair = out.duplicated(["zip", "geoid"], keep="first")
    if pair.any():
        row = out[pair].iloc[0]
        first = out[(out["zip"] == row["zip"]) & (out["geoid"] == row["geoid"])]["source_row"].iloc[0]
        raise InputError(f"{path}: row {row['source_row']}, field {header['geoid']!r}: ZIP "
                         f"{row['zip']} and {row['geoid']} are listed again (first at row {first}); "
                         "each ZIP-geography piece is one row")
    sums = out.groupby("zip")["res_ratio"].sum()
    over = sums[sums > 1 + _SUM_TOLERANCE]
    if len(over):
        warnings.warn(f"{path}: the {header['res_ratio']} of {len(over)} ZIP(s) sum to more than "
                      f"1 (e.g. {over.index[0]}: {over.iloc[0]:.4f}); weights are normalised per ZIP",
                      stacklevel=3)


def _fail(path: Path, rows: np.ndarray, bad: np.ndarray, field: str, values: pd.Series,
          problem: str) -> None:
    """Raise `InputError` for the first bad row, counting the others."""
    if not bad.any():
        return
    where = np.flatnonzero(bad)
    first = where[0]
    more = ""
    if len(where) > 1:
        more = (f" ({len(where) - 1} more row(s) with this problem, e.g. row(s) "
                f"{', '.join(str(int(r)) for r in rows[where[1:4]])})")
    raise InputError(f"{path}: row {int(rows[first])}, field {field!r}: "
                     f"{values.iloc[first]!r} {problem}{more}")


# -- linking ------------------------------------------------------------------------------------


def zip_links(zips: pd.Series, crosswalk: pd.DataFrame) -> pd.DataFrame:
    """Link each ZIP to its ZCTA (UDS) or its main tract or county (HUD), flagged as ZIP-level.

    Every input ZIP gets one row with ``link_method`` ``"zip_crosswalk"`` and ``precision``
    ``"zip"`` when linked, or a ``link_missing`` reason (`ZIP_LINK_MISSING_REASONS`) when not.
    There is never a block group and never coordinate precision.

    ===========================================  =====================  ===========  ===========
    the input                                    link_missing           precision    link_method
    ===========================================  =====================  ===========  ===========
    empty or null                                no_zip                 none         none
    not 12345 / 12345-6789 / 123456789           invalid_zip            none         none
    a ZIP the crosswalk does not list            zip_not_in_crosswalk   zip          none
    a ZIP the UDS file lists with no ZCTA        zip_has_no_zcta        zip          none
    a listed ZIP (PO box and unique ZIPs too)    (null)                 zip          zip_crosswalk
    ===========================================  =====================  ===========  ===========

    UDS: ``zcta_geoid`` is the crosswalk's ZCTA and ``join_type`` its zip_join_type
    (zip_matches_zcta, spatial_join_to_zcta, not_recorded). A PO box or unique ZIP is linked to
    the ZCTA the crosswalk gives, by the spatial join to its post office, and flagged with
    ``nonresidential_zip`` true. HUD: the main link is the tract (or county) with the largest
    ``RES_RATIO`` (ties: larger ``TOT_RATIO``, then the smaller GEOID), ``join_type``
    ``"hud_max_res_ratio"``, its share in ``ratio``; a ZIP with no residential address takes
    the largest ``TOT_RATIO`` (``"hud_max_tot_ratio"``, nonresidential). ``candidates`` is the
    number of geographies the crosswalk splits the ZIP into; use `zip_allocations` for all of
    them. For a HUD tract file ``county_geoid`` is the tract's first five digits.

    Parameters
    ----------
    zips
        ZIP codes: text (``"08540"``, ``"08540-1234"``, ``"085401234"``) or numbers, whose lost
        leading zeros are restored (``8540`` -> ``"08540"``).
    crosswalk
        A frame from `read_zip_crosswalk` (one style).

    Returns
    -------
    pandas.DataFrame
        The columns of `ZIP_LINK_COLUMNS`, one row per input element, with the input's index.
        ``zip`` is the normalised 5-digit ZIP (null when unusable); GEOIDs, ``join_type``,
        ``zip_type``, ``link_method``, ``precision``, ``link_missing``, ``ratio_basis``
        (``res_ratio``, ``tot_ratio`` or null), ``crosswalk_style`` and ``crosswalk_vintage``
        are strings; ``nonresidential_zip`` boolean; ``ratio`` float64 (NaN for UDS);
        ``candidates`` and ``boundary_year`` Int64.

    Raises
    ------
    TypeError
        ``zips`` is not a Series or ``crosswalk`` not a DataFrame.
    ValueError
        ``crosswalk`` lacks the columns of `CROSSWALK_COLUMNS` or mixes styles.

    Examples
    --------
    >>> import pandas as pd, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ZIPCodetoZCTACrosswalk2021UDS.csv"
    >>> _ = path.write_text("ZIP_CODE,ZCTA,zip_join_type\\n00501,11742,Spatial join to ZCTA\\n"
    ...                     "00601,00601,ZIP Matches ZCTA\\n")
    >>> xw = read_zip_crosswalk(path)
    >>> zip_links(pd.Series([501, "00601-1234", "99999", "12AB"]), xw)[
    ...     ["zip", "zcta_geoid", "precision", "link_missing"]]
         zip zcta_geoid precision          link_missing
    0  00501      11742       zip                  <NA>
    1  00601      00601       zip                  <NA>
    2  99999       <NA>       zip  zip_not_in_crosswalk
    3   <NA>       <NA>      none           invalid_zip
    """
    xw = _check_crosswalk(zips, crosswalk)
    zip5, reason = _normalise_zips(zips)
    main = _main_links(xw)
    style = xw["style"].iloc[0] if len(xw) else pd.NA
    level = xw["target_level"].iloc[0] if len(xw) else "zcta"

    keyed = pd.DataFrame({"zip": zip5.to_numpy()}).merge(main, on="zip", how="left")
    listed = keyed["candidates"].notna().to_numpy()
    reason = reason.copy()
    has_zip = zip5.notna().to_numpy()
    reason[has_zip & ~listed] = "zip_not_in_crosswalk"
    no_geoid = listed & keyed["geoid"].isna().to_numpy()
    reason[no_geoid] = "zip_has_no_zcta"
    linked = listed & ~no_geoid

    out = pd.DataFrame(index=zips.index)
    out["zip"] = pd.Series(zip5.to_numpy(), index=zips.index, dtype="string")
    geoid = pd.Series(keyed["geoid"].to_numpy(), index=zips.index, dtype="string").where(linked)
    empty = pd.Series(pd.NA, index=zips.index, dtype="string")
    out["zcta_geoid"] = geoid if level == "zcta" else empty
    out["tract_geoid"] = geoid if level == "tract" else empty
    out["county_geoid"] = (geoid.str.slice(0, 5) if level in ("tract", "county") else empty)
    out["boundary_year"] = pd.Series(keyed["boundary_year"].to_numpy(), index=zips.index,
                                     dtype="Int64").where(linked)
    out["link_method"] = pd.Series(np.where(linked, _LINK_METHOD, "none"), index=zips.index,
                                   dtype="string")
    out["precision"] = pd.Series(np.where(has_zip, "zip", "none"), index=zips.index, dtype="string")
    for column in ("join_type", "zip_type"):
        out[column] = pd.Series(keyed[column].to_numpy(), index=zips.index, dtype="string") \
            .where(listed)
    out["nonresidential_zip"] = pd.Series(keyed["nonresidential_zip"].to_numpy(),
                                          index=zips.index, dtype="boolean").where(listed)
    out["ratio"] = pd.Series(keyed["ratio"].to_numpy(dtype="float64"), index=zips.index) \
        .where(linked)
    out["ratio_basis"] = pd.Series(keyed["ratio_basis"].to_numpy(), index=zips.index,
                                   dtype="string").where(linked)
    out["candidates"] = pd.Series(keyed["candidates"].to_numpy(), index=zips.index,
                                  dtype="Int64").where(listed)
    out["crosswalk_style"] = pd.Series(style, index=zips.index, dtype="string")
    out["crosswalk_vintage"] = pd.Series(
        xw["crosswalk_vintage"].iloc[0] if len(xw) else pd.NA, index=zips.index, dtype="string")
    out["link_missing"] = pd.Series(reason, index=zips.index, dtype="string").mask(reason == "")
    counts = pd.Series(reason[reason != ""]).value_counts().to_dict()
    logger.info("linked %d of %d ZIPs through the %s crosswalk (%s)", int(linked.sum()), len(out),
                style, ", ".join(f"{k}: {v}" for k, v in counts.items()) or "all linked")
    return out[list(ZIP_LINK_COLUMNS)]


def zip_allocations(zips: pd.Series, crosswalk: pd.DataFrame) -> pd.DataFrame:
    """Allocate each ZIP over every geography the crosswalk splits it into, with weights.

    For a HUD file a ZIP is one-to-many: one row per tract (or county) piece, with the piece's
    ``RES_RATIO`` and a ``weight`` that is that ratio divided by the ZIP's total (so the
    weights of a ZIP sum to 1 despite HUD's rounding); a ZIP with no residential address is
    weighted by ``TOT_RATIO`` instead (``weight_basis``). For a UDS file each ZIP has one ZCTA
    with weight 1 (``weight_basis`` ``"one_to_one"``). ``main_link`` marks the row `zip_links`
    picks. Input ZIPs that are unusable or not linked have no rows (`zip_links` says why).

    Parameters
    ----------
    zips
        ZIP codes, as for `zip_links`.
    crosswalk
        A frame from `read_zip_crosswalk`.

    Returns
    -------
    pandas.DataFrame
        The columns of `ALLOCATION_COLUMNS`: ``input_index`` (the label of the input element),
        ``zip``, the GEOID columns (as in `zip_links`), ``boundary_year``, ``res_ratio``,
        ``tot_ratio``, ``weight`` (float64), ``weight_basis`` and ``main_link`` (bool), sorted
        by input position, then by descending weight.

    Raises
    ------
    TypeError
        ``zips`` is not a Series or ``crosswalk`` not a DataFrame.
    ValueError
        ``crosswalk`` lacks the columns of `CROSSWALK_COLUMNS` or mixes styles.

    Examples
    --------
    >>> import pandas as pd, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ZIP_TRACT_122023.csv"
    >>> _ = path.write_text("ZIP,TRACT,RES_RATIO,TOT_RATIO\\n03870,33015066000,0.0042,0.005\\n"
    ...                     "03870,33015071000,0.9958,0.995\\n")
    >>> xw = read_zip_crosswalk(path)
    >>> zip_allocations(pd.Series(["03870"]), xw)[["tract_geoid", "weight", "main_link"]]
       tract_geoid  weight  main_link
    0  33015071000  0.9958       True
    1  33015066000  0.0042      False
    """
    xw = _check_crosswalk(zips, crosswalk)
    zip5, _ = _normalise_zips(zips)
    level = xw["target_level"].iloc[0] if len(xw) else "zcta"
    main = _main_links(xw)[["zip", "geoid"]].assign(main_link=True)
    pieces = xw[xw["geoid"].notna()].copy()
    res_sum = pieces.groupby("zip")["res_ratio"].transform("sum")
    tot_sum = pieces.groupby("zip")["tot_ratio"].transform("sum")
    if level == "zcta":
        pieces["weight"] = 1.0
        pieces["weight_basis"] = "one_to_one"
    else:
        by_res = res_sum > 0
        pieces["weight"] = np.where(by_res, pieces["res_ratio"] / res_sum.where(by_res),
                                    pieces["tot_ratio"] / tot_sum.where(tot_sum > 0))
        pieces["weight_basis"] = np.where(by_res, "res_ratio", "tot_ratio")
    pieces = pieces.merge(main, on=["zip", "geoid"], how="left")
    pieces["main_link"] = pieces["main_link"].astype("boolean").fillna(False).astype(bool)

    inputs = pd.DataFrame({"input_index": zips.index, "position": np.arange(len(zips)),
                           "zip": zip5.to_numpy()}).dropna(subset=["zip"])
    out = inputs.merge(pieces, on="zip", how="inner")
    out = out.sort_values(["position", "weight", "geoid"], ascending=[True, False, True],
                          kind="stable").reset_index(drop=True)
    geoid = out["geoid"].astype("string")
    empty = pd.Series(pd.NA, index=out.index, dtype="string")
    out["zcta_geoid"] = geoid if level == "zcta" else empty
    out["tract_geoid"] = geoid if level == "tract" else empty
    out["county_geoid"] = geoid.str.slice(0, 5) if level in ("tract", "county") else empty
    out["zip"] = out["zip"].astype("string")
    out["weight_basis"] = out["weight_basis"].astype("string")
    out["boundary_year"] = out["boundary_year"].astype("Int64")
    out["weight"] = out["weight"].astype("float64")
    return out[list(ALLOCATION_COLUMNS)]


def _check_crosswalk(zips: pd.Series, crosswalk: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(zips, pd.Series):
        raise TypeError(f"zips must be a pandas Series, got {type(zips).__name__}")
    if not isinstance(crosswalk, pd.DataFrame):
        raise TypeError(f"crosswalk must be a pandas DataFrame, got {type(crosswalk).__name__}")
    missing = [c for c in CROSSWALK_COLUMNS if c not in crosswalk.columns]
    if missing:
        raise ValueError(f"crosswalk lacks column(s) {missing}; read it with read_zip_crosswalk")
    styles = crosswalk["style"].dropna().unique().tolist()
    if len(styles) > 1:
        raise ValueError(f"crosswalk mixes styles {styles}; link with one crosswalk at a time")
    return crosswalk


def _normalise_zips(zips: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """5-digit ZIPs (null when unusable) and the reason per element ("" when usable)."""
    values = zips.reset_index(drop=True)
    n = len(values)
    reason = np.full(n, "", dtype=object)
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(object)
    if pd.api.types.is_numeric_dtype(values):
        values = values.astype(object).where(values.notna(), None)
    text = pd.Series(pd.NA, index=values.index, dtype="string")
    for i, value in enumerate(values):
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            reason[i] = "no_zip"
            continue
        if isinstance(value, bool):
            reason[i] = "invalid_zip"
            continue
        if isinstance(value, (int, np.integer)) or (
                isinstance(value, (float, np.floating)) and float(value).is_integer()):
            number = int(value)
            if 0 < number <= 99999:
                text.iloc[i] = f"{number:05d}"
            else:
                reason[i] = "invalid_zip"
            continue
        if isinstance(value, (float, np.floating)):
            reason[i] = "invalid_zip"
            continue
        stripped = str(value).strip()
        if not stripped:
            reason[i] = "no_zip"
            continue
        match = _ZIP_INPUT.fullmatch(stripped)
        if match:
            text.iloc[i] = match[1]
        else:
            reason[i] = "invalid_zip"
    return text, reason


def _main_links(xw: pd.DataFrame) -> pd.DataFrame:
    """One row per ZIP: geoid, join_type, zip_type, flags, ratio and candidates."""
    columns = ["zip", "geoid", "join_type", "zip_type", "nonresidential_zip", "ratio",
               "ratio_basis", "candidates", "boundary_year"]
    if xw.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    frame = xw.copy()
    frame["candidates"] = frame.groupby("zip")["zip"].transform("size").astype("int64")
    if frame["target_level"].iloc[0] == "zcta":
        frame["ratio"] = np.nan
        frame["ratio_basis"] = None
        return frame[columns].drop_duplicates("zip")
    residential = frame.groupby("zip")["res_ratio"].transform("max") > 0
    frame["ratio"] = np.where(residential, frame["res_ratio"], frame["tot_ratio"])
    frame["ratio_basis"] = np.where(residential, "res_ratio", "tot_ratio")
    frame["join_type"] = np.where(residential, "hud_max_res_ratio", "hud_max_tot_ratio")
    frame["nonresidential_zip"] = pd.array(~residential.to_numpy(), dtype="boolean")
    frame["_rank"] = frame["ratio"].fillna(-1.0)
    frame["_tie"] = np.where(residential, frame["tot_ratio"].fillna(-1.0), frame["res_ratio"])
    frame = frame.sort_values(["zip", "_rank", "_tie", "geoid"],
                              ascending=[True, False, False, True], kind="stable")
    return frame[columns].drop_duplicates("zip")

