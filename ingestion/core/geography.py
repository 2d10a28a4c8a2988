"""Normalise geography the way users say it into the zero-padded FIPS codes the Census API uses.

``state`` may be a FIPS code (``"10"``, ``10``), a postal code (``"DE"``) or a name
(``"Delaware"``, any case); ``county`` a 3-digit FIPS code; a ZCTA a 5-digit code. Any two
digits are accepted as a state, including codes that are no state (the synthetic demo region
uses ``"99"``). The plural forms take one value or a list and return a tuple without
duplicates, in the order given.

Examples
--------
>>> normalize_state("de"), normalize_state(11), normalize_state("District of Columbia")
('10', '11', '11')
>>> normalize_county(1)
'001'
>>> normalize_states(["DE", "dc", 10])
('10', '11')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence

import numpy as np
import pandas as pd

from ingestion.core.errors import InputError

__all__ = [
    "STATES",
    "STATE_FIPS",
    "check_geoids",
    "normalize_counties",
    "normalize_county",
    "normalize_state",
    "normalize_states",
    "normalize_zcta",
    "normalize_zctas",
]

# (FIPS, postal code, name): the 50 states, the District of Columbia and Puerto Rico.
STATES: tuple[tuple[str, str, str], ...] = (
    ("01", "AL", "Alabama"), ("02", "AK", "Alaska"), ("04", "AZ", "Arizona"),
    ("05", "AR", "Arkansas"), ("06", "CA", "California"), ("08", "CO", "Colorado"),
    ("09", "CT", "Connecticut"), ("10", "DE", "Delaware"), ("11", "DC", "District of Columbia"),
    ("12", "FL", "Florida"), ("13", "GA", "Georgia"), ("15", "HI", "Hawaii"),
    ("16", "ID", "Idaho"), ("17", "IL", "Illinois"), ("18", "IN", "Indiana"),
    ("19", "IA", "Iowa"), ("20", "KS", "Kansas"), ("21", "KY", "Kentucky"),
    ("22", "LA", "Louisiana"), ("23", "ME", "Maine"), ("24", "MD", "Maryland"),
    ("25", "MA", "Massachusetts"), ("26", "MI", "Michigan"), ("27", "MN", "Minnesota"),
    ("28", "MS", "Mississippi"), ("29", "MO", "Missouri"), ("30", "MT", "Montana"),
    ("31", "NE", "Nebraska"), ("32", "NV", "Nevada"), ("33", "NH", "New Hampshire"),
    ("34", "NJ", "New Jersey"), ("35", "NM", "New Mexico"), ("36", "NY", "New York"),
    ("37", "NC", "North Carolina"), ("38", "ND", "North Dakota"), ("39", "OH", "Ohio"),
    ("40", "OK", "Oklahoma"), ("41", "OR", "Oregon"), ("42", "PA", "Pennsylvania"),
    ("44", "RI", "Rhode Island"), ("45", "SC", "South Carolina"), ("46", "SD", "South Dakota"),
    ("47", "TN", "Tennessee"), ("48", "TX", "Texas"), ("49", "UT", "Utah"),
    ("50", "VT", "Vermont"), ("51", "VA", "Virginia"), ("53", "WA", "Washington"),
    ("54", "WV", "West Virginia"), ("55", "WI", "Wisconsin"), ("56", "WY", "Wyoming"),
    ("72", "PR", "Puerto Rico"),
)

# The FIPS codes of the 50 states, DC and Puerto Rico: what "all states" means for levels the
# Census API only serves within a state (tracts, block groups).
STATE_FIPS: tuple[str, ...] = tuple(fips for fips, _, _ in STATES)

# GEOID widths of the levels `check_geoids` knows; the last county FIPS code in use is 840
# (Winchester city, Virginia, 51840; Census national county file), and no county is 000.
_GEOID_WIDTHS = {"block_group": 12, "tract": 11, "county": 5, "zcta": 5}
_GEOID_PARTS = {"block_group": "2-digit state + 3-digit county + 6-digit tract + block group",
                "tract": "2-digit state + 3-digit county + 6-digit tract",
                "county": "2-digit state + 3-digit county FIPS", "zcta": "5 digits"}
_LAST_COUNTY = 840

_BY_POSTAL = {postal: fips for fips, postal, _ in STATES}
_BY_NAME = {name.casefold(): fips for fips, _, name in STATES}
_STATE_ACCEPTS = "a 2-digit FIPS code (e.g. '10' or 10), a postal code ('DE') or a state name"


def _digits(value: str | int, *, width: int, what: str, accepts: str) -> str | None:
    """Zero-pad ``value`` to ``width`` digits if it is a small enough integer, else None."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be str or int, got bool {value!r}; expected {accepts}")
    if isinstance(value, int):
        if 0 <= value < 10**width:
            return str(value).zfill(width)
        raise ValueError(f"{what} {value!r} is not a code of 1 to {width} digits; "
                         f"expected {accepts}")
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str or int, got {type(value).__name__}; "
                        f"expected {accepts}")
    text = value.strip()
    if re.fullmatch(rf"\d{{1,{width}}}", text):
        return text.zfill(width)
    return None


def normalize_state(state: str | int) -> str:
    """Turn a state given as FIPS code, postal code or name into its 2-digit FIPS string.

    Parameters
    ----------
    state : str or int
        A FIPS code (any one or two digits, e.g. ``"10"``, ``"9"``, ``10`` or ``"99"`` for the
        synthetic demo region), a postal code (``"DE"``, any case) or a state name
        (``"Delaware"``, any case). The table covers the 50 states, DC and Puerto Rico.

    Returns
    -------
    str
        The zero-padded 2-digit FIPS code.

    Raises
    ------
    ValueError
        If ``state`` is none of the accepted forms.
    TypeError
        If ``state`` is neither ``str`` nor ``int``.

    Examples
    --------
    >>> normalize_state("Delaware"), normalize_state("dc"), normalize_state(6)
    ('10', '11', '06')
    """
    fips = _digits(state, width=2, what="state", accepts=_STATE_ACCEPTS)
    if fips is not None:
        return fips
    text = str(state).strip()
    found = _BY_POSTAL.get(text.upper()) or _BY_NAME.get(" ".join(text.split()).casefold())
    if found is None:
        raise ValueError(f"unknown state {state!r}; expected {_STATE_ACCEPTS}")
    return found


def normalize_county(county: str | int) -> str:
    """Turn a county FIPS code into its zero-padded 3-digit string.

    Parameters
    ----------
    county : str or int
        The county's FIPS code within its state, one to three digits (``"001"``, ``"1"``,
        ``1``). A 5-digit county GEOID is not accepted: pass its state separately.

    Returns
    -------
    str
        The zero-padded 3-digit county code.

    Raises
    ------
    ValueError
        If ``county`` is not one to three digits.
    TypeError
        If ``county`` is neither ``str`` nor ``int``.

    Examples
    --------
    >>> normalize_county("1"), normalize_county(101)
    ('001', '101')
    """
    accepts = "a county FIPS code of 1 to 3 digits (e.g. '001' or 1)"
    fips = _digits(county, width=3, what="county", accepts=accepts)
    if fips is None:
        raise ValueError(f"unknown county {county!r}; expected {accepts}")
    return fips


def normalize_zcta(zcta: str | int) -> str:
    """Turn a ZIP Code Tabulation Area code into its zero-padded 5-digit string.

    Parameters
    ----------
    zcta : str or int
        The ZCTA code, one to five digits (``"02139"``, ``2139``). A ZCTA is not a ZIP code:
        the Census Bureau builds ZCTAs from blocks, and not every ZIP code has one.

    Returns
    -------
    str
        The zero-padded 5-digit code.

    Raises
    ------
    ValueError
        If ``zcta`` is not one to five digits.
    TypeError
        If ``zcta`` is neither ``str`` nor ``int``.

    Examples
    --------
    >>> normalize_zcta(2139), normalize_zcta("99001")
    ('02139', '99001')
    """
    accepts = "a ZCTA code of 1 to 5 digits (e.g. '02139')"
    code = _digits(zcta, width=5, what="zcta", accepts=accepts)
    if code is None:
        raise ValueError(f"unknown zcta {zcta!r}; expected {accepts}")
    return code


def _many(values: str | int | Sequence[str | int], one: Callable[[str | int], str],
          what: str) -> tuple[str, ...]:
    """Apply ``one`` to a single value or to each of a list; drop duplicates, keep order."""
    items = [values] if isinstance(values, (str, int)) else values
    if not isinstance(items, Sequence):
        raise TypeError(f"{what} must be a str, an int or a list of them, "
                        f"got {type(values).__name__}")
    if not items:
        raise ValueError(f"{what} is an empty list; give at least one, or None for all")
    return tuple(dict.fromkeys(one(v) for v in items))


def normalize_states(states: str | int | Sequence[str | int]) -> tuple[str, ...]:
    """Normalise one state or a list of states (FIPS, postal code or name) to FIPS codes.

    Parameters
    ----------
    states : str, int or sequence of str or int
        One state or several, each in any form `normalize_state` accepts.

    Returns
    -------
    tuple of str
        The 2-digit FIPS codes without duplicates, in the order given.

    Raises
    ------
    ValueError
        If a state is unknown or the list is empty.
    TypeError
        If ``states`` or one of its items has the wrong type.

    Examples
    --------
    >>> normalize_states("Delaware"), normalize_states(["DC", 10, "11"])
    (('10',), ('11', '10'))
    """
    return _many(states, normalize_state, "state")


def normalize_counties(counties: str | int | Sequence[str | int]) -> tuple[str, ...]:
    """Normalise one county FIPS code or a list of them to 3-digit strings.

    Parameters
    ----------
    counties : str, int or sequence of str or int
        One county code or several, each in any form `normalize_county` accepts.

    Returns
    -------
    tuple of str
        The 3-digit codes without duplicates, in the order given.

    Raises
    ------
    ValueError
        If a code is not one to three digits or the list is empty.
    TypeError
        If ``counties`` or one of its items has the wrong type.

    Examples
    --------
    >>> normalize_counties([1, "003", "1"])
    ('001', '003')
    """
    return _many(counties, normalize_county, "county")


def normalize_zctas(zctas: str | int | Sequence[str | int]) -> tuple[str, ...]:
    """Normalise one ZCTA code or a list of them to 5-digit strings.

    Parameters
    ----------
    zctas : str, int or sequence of str or int
        One ZCTA code or several, each in any form `normalize_zcta` accepts.

    Returns
    -------
    tuple of str
        The 5-digit codes without duplicates, in the order given.

    Raises
    ------
    ValueError
        If a code is not one to five digits or the list is empty.
    TypeError
        If ``zctas`` or one of its items has the wrong type.

    Examples
    --------
    >>> normalize_zctas(["99001", 2139])
    ('99001', '02139')
    """
    return _many(zctas, normalize_zcta, "zcta")


def check_geoids(geoids: pd.Series, *, level: str,
                 states: Collection[str] | None = None) -> None:
    """Refuse GEOIDs that cannot be of ``level``: wrong width, no state, no county.

    A tract, block group or county GEOID starts with the FIPS code of a state (one of
    ``states``) followed by a county code from 001 to 840.
    So ZCTAs or ZIP codes passed as counties (both 5 digits) are refused when their first two
    digits are no state or their last three no county, instead of being ranked as if their
    first two digits were a state.

    Parameters
    ----------
    geoids : pandas.Series
        GEOID strings, zero-padded.
    level : {"block_group", "tract", "county", "zcta"}
        The geography level the GEOIDs are declared to be.
    states : collection of str, optional
        The 2-digit state codes the GEOIDs may start with; default `STATE_FIPS` (the 50
        states, DC and Puerto Rico). The synthetic demo region passes its own ("99").

    Raises
    ------
    InputError
        Naming the first bad GEOID, its row (0-based position) and why, and what to pass.
    TypeError
        If a GEOID is not a string.

    Examples
    --------
    >>> check_geoids(pd.Series(["10001", "42101"]), level="county")
    >>> check_geoids(pd.Series(["10001", "98101"]), level="county")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ingestion.core.errors.InputError: GEOID '98101' (row 1) is not a county GEOID: '98' is no state ...
    """
    if level not in _GEOID_WIDTHS:
        raise ValueError(f"level={level!r}; expected one of {list(_GEOID_WIDTHS)}")
    text = geoids.astype(object)
    if not text.map(lambda g: isinstance(g, str)).all():
        raise TypeError(f"GEOIDs must be zero-padded strings, got {geoids.dtype}")
    width = _GEOID_WIDTHS[level]
    why = pd.Series(np.where(~geoids.str.fullmatch(rf"\d{{{width}}}"), f"not {width} digits", ""),
                    index=geoids.index)
    if level != "zcta":
        county = pd.to_numeric(geoids.str[2:5], errors="coerce")
        why = why.mask(why.eq("") & ~geoids.str[:2].isin(STATE_FIPS if states is None else states),
                       "'" + geoids.str[:2] + "' is no state FIPS code")
        why = why.mask(why.eq("") & ~county.between(1, _LAST_COUNTY),
                       "'" + geoids.str[2:5] + f"' is no county FIPS code (001 to {_LAST_COUNTY})")
    bad = why.ne("").to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        not_zip = "" if level == "zcta" else ", not ZCTAs or ZIP codes"
        raise InputError(f"GEOID {geoids.iloc[row]!r} (row {row}) is not a {level} GEOID: "
                         f"{why.iloc[row]}; pass {level} GEOIDs ({_GEOID_PARTS[level]}){not_zip}")
