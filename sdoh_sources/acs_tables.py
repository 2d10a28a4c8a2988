"""ACS table families: which Census API dataset publishes a variable (detailed, subject, profile).

The one rule the catalog's checks, the Census client and the demo region share.

Examples
--------
>>> acs_dataset("B19013_001"), acs_dataset("S2701_C05_001"), acs_dataset("DP02_0072P")
('acs/acs5', 'acs/acs5/subject', 'acs/acs5/profile')
"""

from __future__ import annotations

import re

ACS5 = "acs/acs5"


FAMILIES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("detailed", "", re.compile(r"[BC]\d{5}[A-Z]*_\d{3}")),  # B01001_001, C17002_002, B01001A_001
    ("subject", "/subject", re.compile(r"S\d{4}[A-Z]*_C\d{2}_\d{3}")),  # S1701_C03_001
    ("profile", "/profile", re.compile(r"DP\d{2}[A-Z]*_\d{4}P?")),  # DP03_0009, DP03_0009P
)


FAMILY_EXAMPLES = ("detailed tables ('B01001_001', 'C17002_002'), subject tables "
                    "('S1701_C03_001') or data profiles ('DP03_0009' count, 'DP03_0009P' percent)")


def acs_dataset(variable: str, *, survey: str = ACS5) -> str:
    """Return the API dataset publishing an ACS variable, from its table family.

    Parameters
    ----------
    variable : str
        A variable without its E/M suffix: detailed (``"B19013_001"``, ``"C17002_002"``),
        subject (``"S1701_C03_001"``) or data profile (``"DP03_0009"``, or ``"DP03_0009P"``
        for the percent). A signed term of a catalog formula (``"-B25070_011"``) routes as its
        variable.
    survey : str
        The survey's dataset path, default ``"acs/acs5"``.

    Returns
    -------
    str
        ``survey`` for detailed tables, ``survey + "/subject"`` for subject tables and
        ``survey + "/profile"`` for data profiles.

    Raises
    ------
    ValueError
        If ``variable`` belongs to none of those families (or carries its E/M suffix).

    Examples
    --------
    >>> acs_dataset("C17002_002"), acs_dataset("S1701_C03_001"), acs_dataset("DP03_0009P")
    ('acs/acs5', 'acs/acs5/subject', 'acs/acs5/profile')
    """
    if not isinstance(variable, str):
        raise TypeError(f"variable must be a str, got {type(variable).__name__}")
    for _, suffix, pattern in FAMILIES:
        if pattern.fullmatch(variable.strip().removeprefix("-")):
            return survey.strip("/") + suffix
    raise ValueError(f"cannot tell the table family of {variable!r}; expected {FAMILY_EXAMPLES}, "
                     f"without the E/M suffix (or pass dataset= explicitly)")
