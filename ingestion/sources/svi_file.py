"""Reading the SVI files CDC publishes: codes padded, -999 kept as a reason, ranks checked.

`read_svi_file` gives CDC's columns untouched (every value column ``X`` with ``X_missing``);
`check_svi_file` refuses an extract without the published columns or a file whose ranks were
computed within another reference area than the one declared.

Examples
--------
>>> frame = pd.DataFrame({"GEOID": ["10001000100", "10001000200"],
...                       **{c: [0.0, 1.0] for c in
...                          ["RPL_THEME1", "RPL_THEME2", "RPL_THEME3", "RPL_THEME4", "RPL_THEMES"]}})
>>> apparent_reference(frame)[0]
'state'
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.core.csv_input import read_csv_text
from ingestion.core.errors import InputError
from sdoh_sources.svi import Method, load_svi_catalog, published_columns

log = logging.getLogger(__name__)
# Columns of a CDC SVI file that are text; every other column is a number or -999.
TEXT_COLUMNS = ("ST", "STATE", "ST_ABBR", "STCNTY", "COUNTY", "FIPS", "GEOID", "LOCATION")
PADDED_COLUMNS = {"ST": 2, "STCNTY": 5}


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
        or non-UTF-8 file (`ingestion.core.csv_input.read_csv_text`).

    Examples
    --------
    CDC's Delaware state file of SVI 2020 (``real_data``: real publisher files), -999 included:

    >>> svi = read_svi_file(real_data / "de_svi2020" / "cdc_svi2020_delaware_tract.csv")
    >>> svi.loc[svi["RPL_THEMES"].isna(), "RPL_THEMES_missing"].unique()
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


def check_svi_file(svi: pd.DataFrame, *, path: Path, reference: str) -> None:
    """Refuse an SVI file without every published column, or ranked within another area.

    Parameters
    ----------
    svi : pandas.DataFrame
        A frame of `read_svi_file`.
    path : Path
        The file, for the messages.
    reference : {"state", "nation"}
        The reference area the user declared.

    Raises
    ------
    InputError
        Naming every missing column, or the evidence that the ranks were computed within the
        other reference area (`apparent_reference`).

    Examples
    --------
    >>> check_svi_file(pd.DataFrame({"GEOID": ["10001000100"]}), path=Path("x.csv"),
    ...                reference="state")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ingestion.core.errors.InputError: x.csv: row 1 (header): missing column(s) [...
    """
    _check_file_columns(svi, path=path)
    _check_reference(svi, path=path, reference=reference)


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
