"""ZIP crosswalk layouts as data: sdoh_sources/catalog/zip_crosswalks.yaml, validated.

`load_zip_crosswalk_catalog` reads, per crosswalk style (UDS ZIP-to-ZCTA, HUD ZIP-to-tract and
ZIP-to-county), the header spellings each publisher used year by year and the value
vocabularies; `ingestion.geo.zip_crosswalk` reads the files with it. `zip_join_types` are the
canonical join types a ZIP link may carry.

Examples
--------
>>> from sdoh_sources.zip_crosswalks import load_zip_crosswalk_catalog
>>> load_zip_crosswalk_catalog().styles["hud_tract"].target_level
'tract'
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdoh_sources.catalog import read_catalog_file

CATALOG_FILE = "zip_crosswalks.yaml"
#: The crosswalk layouts the catalog describes.
STYLES = ("uds_zcta", "hud_tract", "hud_county")
#: HUD's shares of a ZIP's residential, business, other and all addresses in one geography.
RATIO_COLUMNS = ("res_ratio", "bus_ratio", "oth_ratio", "tot_ratio")
#: The canonical fields a style maps header spellings to.
CANONICAL_FIELDS = ("zip", "geoid", "po_name", "state", "zip_type", "join_type", *RATIO_COLUMNS)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CrosswalkStyle(_Frozen):
    """One crosswalk layout: its target geography, header spellings and value vocabularies."""

    title: str
    target_level: Literal["zcta", "tract", "county"]
    one_row_per_zip: bool
    filename_pattern: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    ignored: tuple[str, ...] = ()
    no_geoid_values: tuple[str, ...] = ()
    zip_types: dict[str, str] = Field(default_factory=dict)
    join_types: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> CrosswalkStyle:
        unknown = set(self.columns) - set(CANONICAL_FIELDS)
        if unknown:
            raise ValueError(f"unknown canonical column(s) {sorted(unknown)}; "
                             f"expected {sorted(CANONICAL_FIELDS)}")
        if not set(self.required) <= set(self.columns):
            raise ValueError(f"required {list(self.required)} are not all in columns")
        try:
            re.compile(self.filename_pattern)
        except re.error as exc:
            raise ValueError(f"filename_pattern is not a regular expression: {exc}") from exc
        return self

    def spellings(self, field: str) -> tuple[str, ...]:
        """Header spellings of canonical ``field``, in order of preference."""
        return self.columns.get(field, ())


class HudBoundary(_Frozen):
    """The first quarter from which HUD files use a Census boundary vintage."""

    from_year: int
    from_quarter: int = Field(ge=1, le=4)
    boundary_year: int


class ZipType(_Frozen):
    """A canonical ZIP type: whether its ZIPs locate no residence, and what it means."""

    nonresidential: bool | None
    description: str


class ZipCrosswalkCatalog(_Frozen):
    """sdoh_sources/catalog/zip_crosswalks.yaml, validated."""

    styles: dict[str, CrosswalkStyle]
    hud_boundary_years: tuple[HudBoundary, ...]
    join_types: dict[str, str]
    zip_types: dict[str, ZipType]

    @model_validator(mode="after")
    def _vocabularies(self) -> ZipCrosswalkCatalog:
        if set(self.styles) != set(STYLES):
            raise ValueError(f"styles must be exactly {list(STYLES)}, got {sorted(self.styles)}")
        for name, spec in self.styles.items():
            bad = sorted(set(spec.zip_types.values()) - set(self.zip_types))
            if bad:
                raise ValueError(f"styles.{name}.zip_types maps to unknown zip types {bad}")
            bad = sorted(set(spec.join_types.values()) - set(self.join_types))
            if bad:
                raise ValueError(f"styles.{name}.join_types maps to unknown join types {bad}")
        return self


@cache
def load_zip_crosswalk_catalog(path: str | os.PathLike[str] | None = None) -> ZipCrosswalkCatalog:
    """Load and check sdoh_sources/catalog/zip_crosswalks.yaml.

    Parameters
    ----------
    path
        A copy of the file to read instead (to check an edit before it replaces the file).

    Returns
    -------
    ZipCrosswalkCatalog

    Raises
    ------
    CatalogError
        The file breaks the schema; the message names the file and the field.

    Examples
    --------
    >>> load_zip_crosswalk_catalog().styles["uds_zcta"].spellings("zip")
    ('ZIP_CODE', 'ZIP')
    """
    return read_catalog_file(CATALOG_FILE, ZipCrosswalkCatalog, path=path)


def zip_join_types() -> tuple[str, ...]:
    """The canonical join types a ZIP link writes, from the catalog.

    Returns
    -------
    tuple of str
        The keys of ``join_types`` in sdoh_sources/catalog/zip_crosswalks.yaml.

    Examples
    --------
    >>> "zip_matches_zcta" in zip_join_types()
    True
    """
    return tuple(load_zip_crosswalk_catalog().join_types)
