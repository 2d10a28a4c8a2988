"""Rurality groupings of RUCA codes as data: sdoh_sources/catalog/rurality.yaml, validated.

The file lists the primary and secondary RUCA codes ERS publishes and named schemes that group
them (ERS's metropolitan / micropolitan / small town / rural headings, HRSA's urban-rural
split, UW RHRC's secondary-code categorization), each with its citation. A scheme must place
every code of its kind in exactly one group. `equity.rurality` reads a frame through them.

Examples
--------
>>> catalog = load_rurality_catalog()
>>> scheme = catalog.scheme("urban_rural")
>>> scheme.code, scheme.group_of(3), scheme.group_of(4)
('primary', 'urban', 'rural')
"""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdoh_sources.catalog import CatalogError, read_catalog_file

CATALOG_FILE = "rurality.yaml"
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Citation = Annotated[str, Field(min_length=20)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RucaCodes(_Frozen):
    """The primary and secondary codes ERS publishes, and where that is documented."""

    primary: tuple[float, ...] = Field(min_length=1)
    secondary: tuple[float, ...] = Field(min_length=1)
    citation: Citation


class RuralityScheme(_Frozen):
    """Named groups of one kind of RUCA code, most urban first."""

    title: str
    code: Literal["primary", "secondary"]
    citation: Citation
    groups: dict[Name, tuple[float, ...]] = Field(min_length=2)

    @property
    def labels(self) -> tuple[str, ...]:
        """The group names, most urban first."""
        return tuple(self.groups)

    def group_of(self, code: float) -> str | None:
        """The group holding ``code``, or None for a code the scheme does not have."""
        for label, codes in self.groups.items():
            if code in codes:
                return label
        return None


class RuralityCatalog(_Frozen):
    """rurality.yaml: the codes, the default scheme and every scheme."""

    codes: RucaCodes
    default_scheme: Name
    schemes: dict[Name, RuralityScheme] = Field(min_length=1)

    @model_validator(mode="after")
    def _schemes_cover_their_codes(self) -> RuralityCatalog:
        if self.default_scheme not in self.schemes:
            raise ValueError(f"default_scheme {self.default_scheme!r} is not one of "
                             f"{sorted(self.schemes)}")
        for name, scheme in self.schemes.items():
            placed = [c for codes in scheme.groups.values() for c in codes]
            known = getattr(self.codes, scheme.code)
            twice = sorted({c for c in placed if placed.count(c) > 1})
            unplaced, unknown = sorted(set(known) - set(placed)), sorted(set(placed) - set(known))
            if twice or unplaced or unknown:
                raise ValueError(f"schemes.{name}.groups: each {scheme.code} code must be in one "
                                 f"group; in several: {twice}, in none: {unplaced}, not a "
                                 f"{scheme.code} code: {unknown}")
        return self

    def scheme(self, name: str | None = None) -> RuralityScheme:
        """The scheme ``name`` (the default scheme when None).

        Raises
        ------
        CatalogError
            No such scheme; the message lists the known ones.
        """
        name = self.default_scheme if name is None else name
        if name not in self.schemes:
            raise CatalogError(f"no rurality scheme {name!r}; known schemes: "
                               f"{', '.join(sorted(self.schemes))} (sdoh_sources/catalog/{CATALOG_FILE})")
        return self.schemes[name]


@cache
def load_rurality_catalog(path: str | os.PathLike[str] | None = None) -> RuralityCatalog:
    """Load and check sdoh_sources/catalog/rurality.yaml.

    Parameters
    ----------
    path
        A copy of the file to read instead (to check an edit before it replaces the file).

    Returns
    -------
    RuralityCatalog

    Raises
    ------
    CatalogError
        The file breaks the schema, or a scheme leaves a code out or places it twice; the
        message names the file and the field.

    Examples
    --------
    >>> load_rurality_catalog().scheme().labels
    ('metropolitan', 'micropolitan', 'small_town', 'rural')
    """
    return read_catalog_file(CATALOG_FILE, RuralityCatalog, path=path)
