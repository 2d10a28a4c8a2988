"""Where the Census Bureau publishes boundary shapefiles, as data: boundaries.yaml, validated.

`load_boundary_catalog` reads the URL patterns of TIGER/Line and cartographic boundary (cb)
files per level, the years each covers, the gaps (years refused, with the reason) and the
sources that corroborate each pattern; `ingestion.sources.tiger` builds every URL from it.

Examples
--------
>>> from sdoh_sources.boundaries import load_boundary_catalog
>>> catalog = load_boundary_catalog()
>>> catalog.levels
('tract', 'block_group', 'county', 'zcta')
>>> [p.path for p in catalog.patterns if p.covers(2010) and p.level == "county"]
['TIGER2010/COUNTY/2010/tl_2010_us_county10.zip', 'GENZ2010/gz_2010_us_050_00_{resolution}.zip']
"""

from __future__ import annotations

import os
import string
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from sdoh_sources.catalog import catalog_path, read_catalog_file, validate_catalog_data

CATALOG_FILE = "boundaries.yaml"
CATALOG_FORMAT = "sdoh-boundary-catalog/1"
#: The Census Bureau's root of TIGER/Line (``TIGER{year}/``) and CB (``GENZ{year}/``) files.
DEFAULT_BASE_URL = "https://www2.census.gov/geo/tiger"
#: ``"tiger"``: TIGER/Line (full detail, shorelines into the water); ``"cb"``: cartographic
#: boundary files (generalised, clipped to the shoreline).
KINDS = ("tiger", "cb")
#: What a pattern's path may fill in.
PATH_FIELDS = ("resolution", "state", "year")

Years = tuple[StrictInt | None, StrictInt | None]


def _overlap(a: Years, b: Years) -> bool:
    low = max(a[0] if a[0] is not None else -10**9, b[0] if b[0] is not None else -10**9)
    high = min(a[1] if a[1] is not None else 10**9, b[1] if b[1] is not None else 10**9)
    return low <= high


def _in_order(years: Years) -> Years:
    first, last = years
    if first is not None and last is not None and first > last:
        raise ValueError(f"first year after last in {list(years)!r}")
    return years


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BoundaryPattern(_Frozen):
    """One URL pattern: a level, kind, year range and scope, and the file's facts.

    ``level`` and ``kind`` are the keys the pattern is listed under in ``layers``.
    """

    level: str
    kind: Literal["tiger", "cb"]
    years: Years
    scope: Literal["state", "national"]
    path: str
    resolutions: tuple[str, ...] = ()
    geoid_field: str
    boundary_vintage: StrictInt | Literal["decade"]
    sources: tuple[str, ...]
    note: str | None = None
    loads_with_load_boundaries: StrictBool = True

    @field_validator("years")
    @classmethod
    def _has_first_year(cls, years: Years) -> Years:
        if years[0] is None:
            raise ValueError(f"a pattern needs a first year, got {list(years)!r}")
        return _in_order(years)

    @field_validator("sources")
    @classmethod
    def _cited(cls, sources: tuple[str, ...]) -> tuple[str, ...]:
        if not sources:
            raise ValueError("every pattern must cite its sources")
        return sources

    @field_validator("note")
    @classmethod
    def _note_on_one_line(cls, note: str | None) -> str | None:
        return None if note is None else _one_line(note)

    @model_validator(mode="after")
    def _path_fits(self) -> BoundaryPattern:
        path = self.path
        if path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"path must be a relative URL path, got {path!r}")
        fields = {name for _, name, _, _ in string.Formatter().parse(path) if name is not None}
        if not fields <= set(PATH_FIELDS):
            raise ValueError(f"path uses {sorted(fields - set(PATH_FIELDS))}; only "
                             f"{sorted(PATH_FIELDS)} are filled in")
        if (self.scope == "state") != ("state" in fields):
            raise ValueError(f"a {self.scope} file's path must "
                             f"{'' if self.scope == 'state' else 'not '}contain {{state}}")
        if self.kind == "tiger" and (self.resolutions or "resolution" in fields):
            raise ValueError("TIGER/Line files have no resolution")
        if self.kind == "cb" and not self.resolutions:
            raise ValueError("cb patterns need a list of resolutions")
        if self.kind == "cb" and "resolution" not in fields and len(self.resolutions) != 1:
            raise ValueError("several resolutions need {resolution} in the path")
        return self

    @property
    def first(self) -> int:
        """The first year covered."""
        return self.years[0]  # type: ignore[return-value]  # checked: never None

    @property
    def last(self) -> int | None:
        """The last year covered, or None: every later year so far."""
        return self.years[1]

    @property
    def loadable(self) -> bool:
        """Whether `ingestion.geo.boundaries.load_boundaries` reads the files."""
        return self.loads_with_load_boundaries

    @property
    def span(self) -> str:
        """The years covered, e.g. ``2014-`` or ``2010-2010``."""
        return f"{self.first}-{'' if self.last is None else self.last}"

    def covers(self, year: int) -> bool:
        """Whether the pattern covers ``year``."""
        return self.first <= year and (self.last is None or year <= self.last)

    def vintage(self, year: int) -> int:
        """The boundary vintage of the file of ``year``: stated, or the year's decade."""
        return year // 10 * 10 if self.boundary_vintage == "decade" else self.boundary_vintage


class BoundaryGap(_Frozen):
    """Years of a level and kind that are refused, and why."""

    level: str
    kind: Literal["tiger", "cb"]
    years: Years
    reason: str
    sources: tuple[str, ...] = ()

    @field_validator("years")
    @classmethod
    def _ordered(cls, years: Years) -> Years:
        return _in_order(years)

    def covers(self, year: int) -> bool:
        """Whether the gap covers ``year``."""
        first, last = self.years
        return (first is None or first <= year) and (last is None or year <= last)


class BoundaryLayer(_Frozen):
    """The patterns of one level, per kind, and its gaps."""

    tiger: tuple[BoundaryPattern, ...] = ()
    cb: tuple[BoundaryPattern, ...] = ()
    gaps: tuple[BoundaryGap, ...] = ()


def _with_keys(entries: Any, where: str, **keys: str) -> Any:
    """Entries of a layer, each told the ``keys`` it is listed under."""
    if not isinstance(entries, list):
        return entries
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            clash = sorted(set(entry) & set(keys))
            if clash:
                raise ValueError(f"{where}.{i}: unknown keys {clash}")
            entry = {**entry, **keys}
        out.append(entry)
    return out


class BoundaryCatalog(_Frozen):
    """sdoh_sources/catalog/boundaries.yaml, validated."""

    format: Literal[CATALOG_FORMAT]
    base_url: str = DEFAULT_BASE_URL
    required_members: tuple[Annotated[str, Field(pattern=r"^\.")], ...]
    sources: dict[str, str] = Field(min_length=1)
    layers: dict[str, BoundaryLayer] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _tell_entries_where_they_are(cls, data: Any) -> Any:
        layers = data.get("layers") if isinstance(data, dict) else None
        if not isinstance(layers, dict):
            return data
        told = {}
        for level, layer in layers.items():
            if isinstance(layer, dict):
                layer = {**layer, **{kind: _with_keys(layer[kind], f"layers.{level}.{kind}",
                                                       level=level, kind=kind)
                                     for kind in KINDS if kind in layer}}
                if "gaps" in layer:
                    layer["gaps"] = _with_keys(layer["gaps"], f"layers.{level}.gaps", level=level)
            told[level] = layer
        return {**data, "layers": told}

    @field_validator("required_members")
    @classmethod
    def _lower_case(cls, members: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.lower() for m in members)

    @field_validator("sources")
    @classmethod
    def _sources_on_one_line(cls, sources: dict[str, str]) -> dict[str, str]:
        return {k: _one_line(v) for k, v in sources.items()}

    @model_validator(mode="after")
    def _cited_and_disjoint(self) -> BoundaryCatalog:
        for level, layer in self.layers.items():
            for kind in KINDS:
                for i, p in enumerate(getattr(layer, kind)):
                    missing = [s for s in p.sources if s not in self.sources]
                    if missing:
                        raise ValueError(f"layers.{level}.{kind}.{i}: sources {missing} are not "
                                         "in the sources table")
            for i, gap in enumerate(layer.gaps):
                if any(s not in self.sources for s in gap.sources):
                    raise ValueError(f"layers.{level}.gaps.{i}: unknown sources {list(gap.sources)}")
        patterns = self.patterns
        for i, a in enumerate(patterns):
            for b in patterns[i + 1:]:
                if (a.level, a.kind, a.scope) == (b.level, b.kind, b.scope) and _overlap(a.years, b.years):
                    raise ValueError(f"{a.level} {a.kind} {a.scope} patterns {a.path!r} and "
                                     f"{b.path!r} cover the same years")
            for gap in self.gaps:
                if (gap.level, gap.kind) == (a.level, a.kind) and _overlap(a.years, gap.years):
                    raise ValueError(f"the {a.level} {a.kind} gap {gap.reason!r} overlaps "
                                     f"pattern {a.path!r}")
        return self

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels the catalog has patterns for."""
        return tuple(self.layers)

    @property
    def patterns(self) -> tuple[BoundaryPattern, ...]:
        """Every pattern, level by level, TIGER/Line before cb."""
        return tuple(p for layer in self.layers.values() for kind in KINDS for p in getattr(layer, kind))

    @property
    def gaps(self) -> tuple[BoundaryGap, ...]:
        """Every gap, level by level."""
        return tuple(g for layer in self.layers.values() for g in layer.gaps)


def parse_boundary_catalog(data: Any, *, where: str = catalog_path(CATALOG_FILE)) -> BoundaryCatalog:
    """Validate a boundary catalog already read from YAML (a test's or a tool's).

    Parameters
    ----------
    data
        The mapping a boundaries.yaml file holds.
    where
        The file, as an error names it.

    Returns
    -------
    BoundaryCatalog

    Raises
    ------
    CatalogError
        ``data`` breaks the schema; the message names ``where`` and the field.

    Examples
    --------
    >>> parse_boundary_catalog({"format": "sdoh-boundary-catalog/1"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sdoh_sources.catalog.CatalogError: sdoh_sources/catalog/boundaries.yaml is invalid:
    3 validation errors for BoundaryCatalog
    required_members
      Field required ...
    """
    return validate_catalog_data(data, BoundaryCatalog, where=where)


@cache
def load_boundary_catalog(path: str | os.PathLike[str] | None = None) -> BoundaryCatalog:
    """Load and check sdoh_sources/catalog/boundaries.yaml.

    Parameters
    ----------
    path
        A copy of the file to read instead (to check an edit before it replaces the file).

    Returns
    -------
    BoundaryCatalog

    Raises
    ------
    CatalogError
        The file breaks the schema; the message names the file and the field.

    Examples
    --------
    >>> load_boundary_catalog().required_members
    ('.shp', '.shx', '.dbf', '.prj')
    """
    return read_catalog_file(CATALOG_FILE, BoundaryCatalog, path=path)
