"""Read Neighborhood Atlas ADI files as users download them and publish them as features.

This is the publisher's index: ranks are kept as published, suppression codes become typed
missing reasons, and nothing here recomputes the index from ACS.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.core.csv_input import read_csv_text
from ingestion.core.datasets import adi_spec
from ingestion.core.errors import InputError
from sdoh_sources import CatalogError, Measure, load_catalog

# Both file-name styles: "MD_2020_ADI_Census Block Group_v3.2.csv" and
# "US_2021_ADI_Census_Block_Group_v4_0_1.csv".
_VINTAGE_IN_NAME = re.compile(r"_(\d{4})_ADI_", re.IGNORECASE)


def vintage_from_filename(path: str | Path) -> int:
    """The ADI vintage in a Neighborhood Atlas file name.

    Examples
    --------
    >>> vintage_from_filename("US_2021_ADI_Census_Block_Group_v4_0_1.csv")
    2021
    """
    match = _VINTAGE_IN_NAME.search(Path(path).name)
    if not match:
        raise InputError(f"{path}: cannot tell the ADI vintage from the file name; pass vintage=")
    return int(match.group(1))


def _fips_from_gisjoin(gisjoin: pd.Series) -> pd.Series:
    # GISJOIN: "G" + state(2) + "0" + county(3) + "0" + tract(6) + block group(1)
    g = gisjoin.str.strip()
    return g.str[1:3] + g.str[4:7] + g.str[8:15]


def _ranks(raw: pd.Series, *, path: Path, measure: Measure,
           codes: dict[str, str]) -> tuple[pd.Series, pd.Series]:
    """A rank column: whole numbers within the measure's bounds, or a suppression code."""
    column, low, high = measure.column, measure.minimum, measure.maximum
    text = raw.astype("string").str.strip().str.upper()
    numeric = pd.to_numeric(text, errors="coerce")
    reason = text.map(codes)
    bad = (numeric.isna() & reason.isna()) | (numeric % 1 != 0) | (numeric < low) | (numeric > high)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}: row {row + 2}, field {column}: {raw.iloc[row]!r} is neither a whole number "
            f"from {low:g} to {high:g} nor a suppression code ({', '.join(codes)}); fix the row "
            "or download the file again"
        )
    return numeric.astype(float), reason.astype(object).where(reason.notna(), None)


def read_adi_file(
    path: str | Path,
    *,
    available_from: dt.date,
    vintage: int | None = None,
    synthetic: bool = False,
) -> pd.DataFrame:
    """Read a Neighborhood Atlas block-group ADI CSV into the published ADI schema.

    Parameters
    ----------
    path : path
        The CSV as downloaded (columns GISJOIN and/or FIPS, ADI_NATRANK, ADI_STATERNK; an
        unnamed index column is tolerated).
    available_from : datetime.date
        The day the file became available: its rows' event timestamp. The Atlas publishes no
        release calendar, so this is never guessed.
    vintage : int, optional
        The ADI vintage; read from the file name when omitted.
    synthetic : bool
        Marks the demo region's file.

    Returns
    -------
    pandas.DataFrame
        Columns of `adi_spec()`; ranks NaN with a typed reason where suppressed.

    Raises
    ------
    InputError
        For an empty, header-only or non-UTF-8 file, missing columns, or (naming the file, row
        and field) a value that is neither a whole-number rank within the measure's bounds
        (national rank 1-100, state decile 1-10) nor a known suppression code.

    Examples
    --------
    A Neighborhood Atlas style file of the synthetic demo region (``demo``):

    >>> adi = read_adi_file(demo / "adi" / "DS_2020_ADI_Census_Block_Group_v4_0.csv",
    ...                     available_from=dt.date(2022, 9, 1))
    >>> adi.shape, adi["vintage"].unique().tolist()
    ((43, 9), [2020])
    """
    path = Path(path)
    adi = load_catalog().adi
    vintage = vintage or vintage_from_filename(path)
    boundary = next((v["boundary_vintage"] for v in adi.vintages if v["vintage"] == vintage), None)
    if boundary is None:
        raise CatalogError(f"ADI vintage {vintage} is not in sdoh_sources/catalog/adi.yaml; known "
                           f"vintages: {[v['vintage'] for v in adi.vintages]}: pass one of them")
    raw = read_csv_text(path, what="a Neighborhood Atlas ADI file")
    if "FIPS" in raw:
        fips = raw["FIPS"].str.strip().str.zfill(12)
    elif "GISJOIN" in raw:
        fips = _fips_from_gisjoin(raw["GISJOIN"])
    else:
        raise InputError(f"{path}: row 1 (header): no FIPS or GISJOIN column; columns are "
                         f"{list(raw.columns)[:10]}: is this a Neighborhood Atlas block-group file?")
    absent = [m.column for m in adi.measures if m.column not in raw]
    if absent:
        raise InputError(f"{path}: row 1 (header): missing column(s) {absent}; columns are "
                         f"{list(raw.columns)[:10]}: is this a Neighborhood Atlas block-group file?")
    out = {
        "block_group_geoid": fips,
        "boundary_year": boundary,
        "vintage": vintage,
        "release_ts": pd.Timestamp(available_from, tz="UTC").as_unit("us"),
        "synthetic": synthetic,
    }
    for m in adi.measures:
        out[m.name], out[f"{m.name}_missing"] = _ranks(
            raw[m.column], path=path, measure=m, codes=adi.suppression_codes
        )
    return pd.DataFrame(out)[list(adi_spec().column_names)]


