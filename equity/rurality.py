"""Rurality subgroups from RUCA codes, for coverage and fairness analyses by rurality.

A training frame read through the RUCA views (``ruca_zcta__ruca_primary``,
``ruca_tract__ruca_secondary``, ...) holds each event's RUCA code: the code of the area the
patient lived in at the event. `rurality` groups codes by a scheme of
sdoh_sources/catalog/rurality.yaml; `add_rurality` adds that group to the frame as the event
attribute ``rurality``, which `equity.coverage.feature_coverage`, `coverage_table` and the
coverage report group by like a patient attribute (a patient who moved counts in the group of
each event's address). Events without a code form the group ``"(not recorded)"``.

Examples
--------
>>> codes = pd.Series([1.0, 4.0, 7.0, 10.0, None])
>>> rurality(codes).tolist()
['metropolitan', 'micropolitan', 'small_town', 'rural', nan]
>>> rurality(codes, scheme="urban_rural").tolist()
['urban', 'rural', 'rural', 'rural', nan]
"""

from __future__ import annotations

import pandas as pd

from ingestion.core.errors import InputError
from sdoh_sources.rurality import load_rurality_catalog

__all__ = ["RUCA_COLUMNS", "RURALITY", "add_rurality", "ruca_column", "rurality"]

#: The event attribute `add_rurality` writes, as `equity.coverage_report.SUBGROUPS` names it.
RURALITY = "rurality"
#: The frame columns of primary RUCA codes, the finest geography first.
RUCA_COLUMNS = ("ruca_tract__ruca_primary", "ruca_zcta__ruca_primary")


def rurality(codes: pd.Series, *, scheme: str | None = None) -> pd.Series:
    """RUCA codes grouped by a rurality scheme, as an ordered categorical (most urban first).

    Parameters
    ----------
    codes : pandas.Series
        Primary or secondary RUCA codes, as the scheme reads them (numbers or numeric text);
        null where the event has no code.
    scheme : str, optional
        A scheme of sdoh_sources/catalog/rurality.yaml; its ``default_scheme`` (metropolitan,
        micropolitan, small town, rural from the primary code) when None.

    Returns
    -------
    pandas.Series
        Ordered categorical with the scheme's groups as categories, the index of ``codes``,
        NaN where the code is null.

    Raises
    ------
    InputError
        A code is not one of the scheme's (a secondary code read with a primary scheme, or a
        value that is no RUCA code); the message names the first such value.
    CatalogError
        No such scheme.

    Examples
    --------
    >>> rurality(pd.Series([1.1, 4.0, 6.1, 10.3]), scheme="urban_large_small_isolated").tolist()
    ['urban', 'large_rural', 'large_rural', 'isolated_rural']
    """
    catalog = load_rurality_catalog()
    name = scheme or catalog.default_scheme
    chosen = catalog.scheme(name)
    numbers = pd.to_numeric(codes, errors="coerce")
    lookup = {code: label for label, group in chosen.groups.items() for code in group}
    groups = numbers.map(lookup)
    bad = codes.notna() & groups.isna()
    if bad.any():
        raise InputError(f"{codes.name or 'codes'}: '{codes[bad].iloc[0]}' (row "
                         f"{codes.index[bad][0]}) is not a {chosen.code} RUCA code of scheme "
                         f"{name!r} ({chosen.title}); read the {chosen.code} code column with it")
    return pd.Series(pd.Categorical(groups, categories=chosen.labels, ordered=True),
                     index=codes.index, name=RURALITY)


def ruca_column(frame: pd.DataFrame) -> str | None:
    """The frame's primary RUCA column of the finest geography (tract before ZCTA), if any.

    Examples
    --------
    >>> ruca_column(pd.DataFrame(columns=["ruca_zcta__ruca_primary", "ruca_tract__ruca_primary"]))
    'ruca_tract__ruca_primary'
    """
    return next((c for c in RUCA_COLUMNS if c in frame.columns), None)


def add_rurality(frame: pd.DataFrame, *, column: str | None = None,
                 scheme: str | None = None) -> pd.DataFrame:
    """The frame with a ``rurality`` column: the group of each event's RUCA code.

    Parameters
    ----------
    frame : pandas.DataFrame
        A training frame holding ``column``.
    column : str, optional
        Its RUCA column, e.g. ``"ruca_zcta__ruca_primary"``; by default `ruca_column`.
    scheme : str, optional
        As for `rurality`; it must read the kind of code ``column`` holds.

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame`` with ``rurality`` added (or replaced).

    Raises
    ------
    InputError
        ``frame`` lacks ``column``, or a code is not one of the scheme's.

    Examples
    --------
    >>> events = pd.DataFrame({"patient_id": ["a", "b"], "ruca_zcta__ruca_primary": [2.0, 9.0]})
    >>> add_rurality(events, column="ruca_zcta__ruca_primary")["rurality"].tolist()
    ['metropolitan', 'small_town']
    """
    column = column or ruca_column(frame) or RUCA_COLUMNS[0]
    if column not in frame.columns:
        raise InputError(f"the frame has no RUCA column {column!r}; RUCA columns are "
                         f"{[c for c in frame.columns if 'ruca' in c] or 'none'}: read the "
                         "frame with the ruca views published (sdoh ingest source ruca ...)")
    return frame.assign(**{RURALITY: rurality(frame[column], scheme=scheme)})
