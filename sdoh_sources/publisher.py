"""Publisher sources declared as data: one YAML per source in ``sdoh_sources/catalog/sources``.

A source spec says everything the kit needs to bring a publisher's area file in: who publishes
it and under which licence; each release with its download, file format, availability day
(cited, or ``unknown`` and then required from the user), geography level and boundary vintage;
how the GEOID is written; which cell values mean "missing" and why; and the measures, each with
its column, uncertainty and equity metadata. Readers, the validation suite, the Feast view and
the datasheet all come from this one definition. A release's file may hold several vintages
(``vintage_column``: COI's data years) or dated designations served as yearly snapshots
(``snapshots``: HRSA's HPSAs).

Examples
--------
>>> eji = publisher_source("eji")
>>> eji.release("2022").boundary_vintage, eji.release("2022").geography_level
(2010, 'tract')
>>> eji.measure("eji_rank").proxy_for
('race', 'ethnicity', 'language')
"""

from __future__ import annotations

import datetime as dt
import os
import re
import statistics
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sdoh_sources._models import EquityMetadata, MeasuresFile
from sdoh_sources.catalog import CatalogError, check_vocabularies, load_catalog, read_catalog_file

SOURCES_FOLDER = "sources"
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
# The GEOID length of each level a publisher file can be keyed on.
GEOID_LENGTHS = {"block_group": 12, "tract": 11, "county": 5, "zcta": 5, "state": 2}


def z_score(level: float) -> float:
    """The two-sided normal quantile of a confidence level in percent, to three decimals.

    Three decimals give the values publishers and the Census Bureau use (1.645 for 90%, 1.96
    for 95%), so a 90% MOE passes through unchanged.

    Examples
    --------
    >>> z_score(90), z_score(95), z_score(99)
    (1.645, 1.96, 2.576)
    """
    return round(statistics.NormalDist().inv_cdf(0.5 + level / 200), 3)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LongLayout(_Spec):
    """The key columns of a long file: one line per area, measure and kind of value.

    Data portals ship tables such as data.cdc.gov's "PLACES: Local Data for Better Health":
    ``measure`` and ``value_type`` name the columns saying which measure and which kind of
    value (crude, age-adjusted) a line holds, ``value`` the estimate, ``low`` and ``high`` its
    confidence interval. Each measure picks its lines with its `LongKey`; the reader pivots
    the file to one row per area, after which GEOIDs, filters and missing codes work as in a
    wide file. Lines of measures the spec does not read are set aside and counted.

    Examples
    --------
    >>> LongLayout(measure="MeasureId", value="Data_Value").columns
    ('MeasureId', 'Data_Value')
    """

    measure: str
    value_type: str | None = None
    value: str
    low: str | None = None
    high: str | None = None

    @model_validator(mode="after")
    def _both_bounds(self) -> LongLayout:
        if (self.low is None) != (self.high is None):
            raise ValueError("give a long file's interval as both low and high columns, or neither")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """The key columns the file must have."""
        return tuple(c for c in (self.measure, self.value_type, self.value, self.low, self.high)
                     if c is not None)


class LongKey(_Spec):
    """The lines of a long file holding a measure: its measure id and, if any, kind of value."""

    measure: str
    value_type: str | None = None


class FileFormat(_Spec):
    """How a release's file is laid out: CSV or XLSX, maybe inside a zip, and its header rows.

    ``names_row`` is the 1-based row holding the column names; rows above it are labels
    (County Health Rankings: labels in row 1, variable names in row 2), ``skip_rows_after``
    rows below it are more header rows. The encoding accepts a byte-order mark when UTF-8.
    ``long`` names the key columns of a long file (`LongLayout`); without it a file is wide:
    one row per area, one column per value.
    """

    kind: Literal["csv", "xlsx"] = "csv"
    member: str | None = None  # the data file inside a zip (a glob pattern)
    sheet: str | None = None  # xlsx only; the first sheet by default
    encoding: str = "utf-8"
    delimiter: str = ","
    names_row: int = Field(default=1, ge=1)
    skip_rows_after: int = Field(default=0, ge=0)
    long: LongLayout | None = None

    @property
    def layout(self) -> Literal["wide", "long"]:
        """``long`` when the file has a line per area and measure, else ``wide``."""
        return "wide" if self.long is None else "long"

    @model_validator(mode="after")
    def _sheet_is_xlsx(self) -> FileFormat:
        if self.sheet is not None and self.kind != "xlsx":
            raise ValueError(f"sheet: {self.sheet!r} applies to xlsx files only")
        return self


class GeoidPart(_Spec):
    """One column of a GEOID written in parts (state, county, tract), left-padded to ``width``."""

    column: str
    width: int = Field(ge=1, le=12)


class GeoidRule(_Spec):
    """Where a row's GEOID is and how it is normalised to a zero-padded string.

    Either one ``column`` (left-padded with zeros to the level's length: a 10-digit tract
    code of a state below 10 gains its zero) or ``parts`` concatenated after padding each
    (EJI's unpadded COUNTYFP). With ``pattern``, a regular expression the whole cell of
    ``column`` must match, the GEOID is its groups joined (NHGIS's GISJOIN: ``G``, state,
    ``0``, county, ``0``, tract and block group). ``alternatives`` are rules tried in order:
    the first whose columns the file has reads it (Atlas ADI files carry FIPS, GISJOIN or both).
    ``summary`` is a regular expression of normalised GEOIDs that are aggregates, not areas of
    the level (a state row ``25000`` among counties): such rows are set aside and counted,
    never published.

    Examples
    --------
    >>> rule = GeoidRule(alternatives=[GeoidRule(column="FIPS"),
    ...                                GeoidRule(column="GISJOIN", pattern=r"G(\\d{2})0(\\d{3})")])
    >>> rule.fitting(["GISJOIN", "RANK"]).column, rule.fitting(["RANK"])
    ('GISJOIN', None)
    """

    column: str | None = None
    pattern: str | None = None
    parts: tuple[GeoidPart, ...] = ()
    alternatives: tuple[GeoidRule, ...] = ()
    summary: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> GeoidRule:
        if [self.column is not None, bool(self.parts), bool(self.alternatives)].count(True) != 1:
            raise ValueError("give the GEOID as one column, as parts or as alternatives: one of them")
        if any(a.alternatives or a.summary for a in self.alternatives):
            raise ValueError("an alternative is a column or parts; give summary on the rule itself")
        if self.pattern is not None:
            if self.column is None:
                raise ValueError("a GEOID pattern applies to one column")
            try:
                groups = re.compile(self.pattern).groups
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {exc}") from exc
            if not groups:
                raise ValueError(f"pattern {self.pattern!r} has no groups to build the GEOID of")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """The file columns the GEOID is read from (with alternatives: any of theirs)."""
        if self.alternatives:
            return tuple(dict.fromkeys(c for a in self.alternatives for c in a.columns))
        return (self.column,) if self.column else tuple(p.column for p in self.parts)

    def fitting(self, header: Iterable[str]) -> GeoidRule | None:
        """The rule a file with columns ``header`` is read by, or None when none fits.

        The rule itself, or its first alternative whose columns the file has (keeping
        ``summary``).
        """
        if not self.alternatives:
            return self if set(self.columns) <= set(header) else None
        chosen = next((a for a in self.alternatives if set(a.columns) <= set(header)), None)
        return chosen and chosen.model_copy(update={"summary": self.summary})


class RowFilter(_Spec):
    """Rows of a file that are not areas of the dataset, set aside with the reason why.

    Rows whose ``column`` is one of ``equals`` are set aside; or, with ``other_than``, every
    row whose ``column`` is not one of those values (HRSA's component types other than a
    single county).
    """

    column: str
    equals: tuple[str, ...] = ()
    other_than: tuple[str, ...] = ()
    reason: Annotated[str, Field(min_length=20)]

    @model_validator(mode="after")
    def _one_way(self) -> RowFilter:
        if bool(self.equals) == bool(self.other_than):
            raise ValueError("give the values to set aside (equals) or to keep (other_than)")
        return self


class Snapshots(_Spec):
    """A file of dated periods (designations) served as yearly snapshots on January 1.

    Each row is in force from its ``start`` day until its ``end`` day (exclusive; empty while
    in force). Vintage Y holds, for every area the file names, what was in force on January 1
    of Y, released that day: ``flag`` (a measure) is 1 when a row was in force, else 0; every
    other measure is the largest value of the rows in force, missing as ``none_reason`` when
    none was. A row's values count only from its ``values_from`` day (the day the publisher
    last updated them; empty: its start): before it, the value in force then is unknown. Years
    run from ``first_year`` to the year the file became available. A change shows from the
    next January 1: up to a year late, never early.
    """

    start: str
    end: str
    values_from: str | None = None
    date_format: str = "%m/%d/%Y"
    first_year: int = Field(ge=2009, le=2100)
    flag: Name
    none_reason: str


class Availability(_Spec):
    """The day a release became available to the public, and where that is documented.

    ``date: unknown`` states that no public day could be found: the user must then give the
    day the file became available to them when ingesting it.
    """

    date: dt.date | Literal["unknown"]
    citation: Annotated[str, Field(min_length=20)]


class SourceRelease(_Spec):
    """One release of a source at one geography level, as the publisher ships it."""

    release: Annotated[str, Field(pattern=r"^\d{4}$")]
    vintage: int | None = None  # the served vintage key; the release year by default
    # A column giving each row's vintage (a year): one file then holds several vintages, all
    # available from the release's day (COI 3.0: data years 2012-2021, released together).
    vintage_column: str | None = None
    snapshots: Snapshots | None = None  # a file of dated designations (HRSA HPSA)
    available: Availability
    data_years: str | None = None
    geography_level: Literal["block_group", "tract", "county", "zcta", "state"]
    boundary_vintage: Literal[2010, 2020]
    url: Annotated[str, Field(pattern=r"^https://")] | None = None  # none: behind a form
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None  # pins the file
    format: FileFormat = FileFormat()
    geoid: GeoidRule
    exclude: tuple[RowFilter, ...] = ()
    missing_codes: dict[str, str] = {}
    columns: dict[str, str] = {}  # measure name -> its column in this release, where renamed
    absent: tuple[str, ...] = ()  # measures this release does not publish
    # A regular expression found (any case) in the names of this release's files only: it
    # tells the release of a file the user gives without one ("_2020_ADI_").
    file_name: str | None = None

    @model_validator(mode="after")
    def _one_vintage_rule(self) -> SourceRelease:
        rules = [k for k in ("vintage", "vintage_column", "snapshots") if getattr(self, k) is not None]
        if len(rules) > 1:
            raise ValueError(f"give at most one of vintage, vintage_column and snapshots, not {rules}")
        return self

    @field_validator("file_name")
    @classmethod
    def _file_name_compiles(cls, pattern: str | None) -> str | None:
        try:
            re.compile(pattern or "")
        except re.error as exc:
            raise ValueError(f"file_name {pattern!r} is not a regular expression: {exc}") from exc
        return pattern

    def names_file(self, path: str | os.PathLike[str]) -> bool:
        """Whether a file's name matches the release's ``file_name`` (any case).

        Examples
        --------
        >>> publisher_source("adi").release("2021").names_file("US_2021_ADI_Census_Block_Group_v4_0_1.csv")
        True
        """
        name = os.path.basename(path)
        return self.file_name is not None and re.search(self.file_name, name, re.IGNORECASE) is not None

    @property
    def vintage_key(self) -> int:
        """The vintage the release is served as (``vintage``, else the release year)."""
        return self.vintage if self.vintage is not None else int(self.release)

    @property
    def available_from(self) -> dt.date | None:
        """The documented availability day, or None where the user must give it."""
        date = self.available.date
        return None if date == "unknown" else date


class Bounds(_Spec):
    """A published confidence interval: two columns, or one text column like ``( 7.2, 11.3)``.

    The interval becomes a 90% MOE (half-width x 1.645 / z of ``level``) only where it is
    symmetric around the estimate within ``symmetric_within`` (the rounding of the published
    figures: |low + high - 2 x estimate|); the bounds are kept either way.
    """

    level: float = Field(gt=0, lt=100)
    low: str | None = None
    high: str | None = None
    column: str | None = None
    symmetric_within: float = Field(ge=0)

    @model_validator(mode="after")
    def _one_way(self) -> Bounds:
        if (self.column is None) == (self.low is None or self.high is None):
            raise ValueError("give the interval as low and high columns, or as one column")
        return self


class MoeColumn(_Spec):
    """A published margin of error column and its confidence level (90: the Census Bureau's)."""

    column: str
    level: float = Field(default=90, gt=0, lt=100)


class PublisherMeasure(EquityMetadata):
    """One measure of a publisher file: its column, range, uncertainty and equity metadata.

    ``estimate`` says how the publisher got the number: ``survey`` (a sample estimate),
    ``model`` (a model-based small-area estimate), ``index`` (a composite or rank),
    ``classification`` (a code such as RUCA) or ``administrative`` (a count or a flag from
    records or a designation).
    """

    name: Name
    label: str
    column: str
    estimate: Literal["survey", "model", "index", "classification", "administrative"]
    minimum: float | None = None
    maximum: float | None = None
    bounds: Bounds | None = None
    moe: MoeColumn | None = None
    long_key: LongKey | None = None  # its lines in a long file; ``column`` is for wide files
    integer: bool = False  # whole numbers only (ranks): a value with a fraction is refused

    @model_validator(mode="after")
    def _one_uncertainty(self) -> PublisherMeasure:
        if self.bounds is not None and self.moe is not None:
            raise ValueError(f"{self.name}: give bounds or an MOE column, not both")
        return self

    @property
    def has_moe(self) -> bool:
        """Whether the measure has a ``_moe`` column (from an MOE or a confidence interval)."""
        return self.bounds is not None or self.moe is not None

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The published columns of the measure, as suffixes of its name."""
        return ("", *(("_moe",) if self.has_moe else ()),
                *(("_ci_low", "_ci_high") if self.bounds else ()), "_missing")

    @property
    def variables(self) -> tuple[str, ...]:
        """The publisher's column, as the ``source_variables`` tag reads it."""
        return (self.column,)

    @property
    def value_range(self) -> tuple[float | None, float | None]:
        """The range every published value must fall in."""
        if self.minimum is not None or self.maximum is not None:
            return self.minimum, self.maximum
        return (0.0, 100.0) if self.measure_type == "percent" else (None, None)


class PublisherSource(MeasuresFile):
    """A publisher source: its licence, releases and measures (one YAML file).

    Examples
    --------
    >>> [r.release for r in publisher_source("eji").releases_at("tract")]
    ['2022', '2024']
    """

    source: Name
    title: str
    publisher: str
    license: str
    homepage: Annotated[str, Field(pattern=r"^https://")]
    measurement_level: str
    missing_codes: dict[str, str] = {}  # cell text -> missing reason, for every release
    missing_codes_ignore_case: bool = False  # "ph" reads as the code "PH"
    releases: tuple[SourceRelease, ...] = Field(min_length=1)
    measures: tuple[PublisherMeasure, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _releases_fit(self) -> PublisherSource:
        keys = [(r.release, r.geography_level, r.format.layout) for r in self.releases]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"releases repeat (release, level, layout): {repeated}")
        names = {m.name for m in self.measures}
        for r in self.releases:
            unknown = sorted((set(r.columns) | set(r.absent)) - names)
            if unknown:
                raise ValueError(f"release {r.release} ({r.geography_level}) names measures "
                                 f"{unknown} the source does not have")
            if r.snapshots is not None and r.snapshots.flag not in names:
                raise ValueError(f"release {r.release}: snapshots.flag {r.snapshots.flag!r} is not "
                                 "a measure of the source")
            if r.snapshots is not None and any(m.has_moe for m in self.measures):
                raise ValueError(f"release {r.release}: snapshots take the largest value in force; "
                                 "measures with an MOE or interval cannot be combined that way")
            if r.format.long is not None:
                _check_long(r, [m for m in self.measures if m.name not in r.absent])
        return self

    @property
    def levels(self) -> tuple[str, ...]:
        """The geography levels the source has releases at, in the order first declared."""
        return tuple(dict.fromkeys(r.geography_level for r in self.releases))

    def releases_at(self, level: str) -> tuple[SourceRelease, ...]:
        """The releases at one geography level, oldest first."""
        return tuple(sorted((r for r in self.releases if r.geography_level == level),
                            key=lambda r: r.release))

    def release(self, release: str | int, level: str | None = None, *,
                layout: str | None = None) -> SourceRelease:
        """The release ``release`` (at ``level`` when the source has it at several levels).

        Where a release ships both a wide and a long file (``layout``), the wide one is
        returned unless ``layout="long"`` is given.

        Raises
        ------
        CatalogError
            The source has no such release, or has it at several levels and none was given.

        Examples
        --------
        >>> places = publisher_source("places")
        >>> [places.release(2022, "county", layout=x).format.layout for x in (None, "long")]
        ['wide', 'long']
        """
        found = [r for r in self.releases if r.release == str(release)
                 and (level is None or r.geography_level == level)
                 and (layout is None or r.format.layout == layout)]
        if layout is None and len({r.geography_level for r in found}) == 1:
            found = [r for r in found if r.format.layout == "wide"] or found
        if len(found) == 1:
            return found[0]
        known = sorted({f"{r.release} ({r.geography_level})" for r in self.releases})
        if not found:
            raise CatalogError(f"{self.source} has no release {release}"
                               f"{f' at {level}' if level else ''}"
                               f"{f' in {layout} layout' if layout else ''}; known: {', '.join(known)}")
        raise CatalogError(f"{self.source} release {release} exists at "
                           f"{[r.geography_level for r in found]}: pass the level")

    def measure(self, name: str) -> PublisherMeasure:
        """The measure called ``name``."""
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(f"{self.source} has no measure {name!r}; it has "
                       f"{[m.name for m in self.measures]}")

    def measures_at(self, level: str) -> tuple[PublisherMeasure, ...]:
        """The measures of the releases at ``level`` (a measure absent from all is left out)."""
        releases = self.releases_at(level)
        return tuple(m for m in self.measures
                     if any(m.name not in r.absent for r in releases))

    def dataset(self, level: str) -> str:
        """The published dataset (and Feast view) name at ``level``, e.g. ``eji_tract``."""
        return f"{self.source}_{level}"


def _check_long(release: SourceRelease, measures: list[PublisherMeasure]) -> None:
    """Every measure a long release reads names its lines, and they fit the file's columns."""
    where, layout = f"release {release.release} ({release.geography_level}, long)", release.format.long
    if release.columns:
        raise ValueError(f"{where}: a long file has no per-measure columns to rename "
                         f"({sorted(release.columns)}); give each measure a long_key")
    keys = []
    for m in measures:
        key = m.long_key
        if key is None:
            raise ValueError(f"{where}: measure {m.name} has no long_key naming its lines")
        if (key.value_type is None) != (layout.value_type is None):
            raise ValueError(f"{where}: measure {m.name}'s long_key must give a value_type exactly "
                             f"when the file has a value type column ({layout.value_type})")
        if m.moe is not None or (m.bounds is not None and layout.low is None):
            raise ValueError(f"{where}: measure {m.name} has an MOE or interval, but the long "
                             "file names no low and high columns")
        keys.append((key.measure, key.value_type))
    repeated = sorted({k for k in keys if keys.count(k) > 1}, key=str)
    if repeated:
        raise ValueError(f"{where}: measures share the long_key {repeated}")


def source_file(name: str) -> str:
    """The packaged spec file of source ``name`` (relative to ``sdoh_sources/catalog``)."""
    return f"{SOURCES_FOLDER}/{name}.yaml"


def _check_codes(spec: PublisherSource, reasons: dict[str, str], where: str) -> None:
    codes = {**spec.missing_codes, **{c: r for rel in spec.releases
                                       for c, r in rel.missing_codes.items()}}
    snapshot_reasons = {r.snapshots.none_reason for r in spec.releases if r.snapshots}
    unknown = sorted({r for r in {*codes.values(), *snapshot_reasons} if r not in reasons})
    if unknown:
        raise CatalogError(f"{where}: missing_codes map to reasons {unknown} that are not in "
                           "sdoh_sources/catalog/missing_reasons.yaml; add them there with "
                           "their meaning")


def publisher_source(name: str, *, path: str | os.PathLike[str] | None = None) -> PublisherSource:
    """Load and check the spec of publisher source ``name`` (or a copy of it at ``path``).

    Checks the schema, the controlled vocabularies of every measure, and that every missing
    code maps to a declared missing reason. The packaged file is read once per process.

    Raises
    ------
    CatalogError
        Naming the file and the field; or listing the known sources for an unknown name.

    Examples
    --------
    >>> publisher_source("eji").publisher
    'CDC/ATSDR'
    """
    if path is None:
        return _packaged_source(name)
    return _checked(read_catalog_file(source_file(name), PublisherSource, path=path), name,
                    where=str(path))


@cache
def _packaged_source(name: str) -> PublisherSource:
    if name not in publisher_source_names():
        raise CatalogError(f"no publisher source {name!r}; known sources: "
                           f"{', '.join(publisher_source_names())}")
    return _checked(read_catalog_file(source_file(name), PublisherSource), name,
                    where=f"sdoh_sources/catalog/{source_file(name)}")


def _checked(spec: PublisherSource, name: str, *, where: str) -> PublisherSource:
    if spec.source != name:
        raise CatalogError(f"{where}: source is {spec.source!r}; it must be the file's name {name!r}")
    catalog = load_catalog()
    try:
        check_vocabularies(spec, catalog.vocabularies)
    except CatalogError as exc:
        raise CatalogError(f"{where}: {exc}") from exc
    _check_codes(spec, catalog.missing_reasons, where)
    return spec


@cache
def publisher_source_names() -> tuple[str, ...]:
    """The names of every packaged source spec, sorted.

    Examples
    --------
    >>> "eji" in publisher_source_names()
    True
    """
    folder = resources.files("sdoh_sources").joinpath("catalog", SOURCES_FOLDER)
    return tuple(sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                        if p.name.endswith(".yaml")))


def source_releases() -> list[dict[str, str]]:
    """One record per release of every packaged source spec: what `sdoh sources` lists.

    Examples
    --------
    >>> eji = [r for r in source_releases() if r["source"] == "eji"]
    >>> [(r["release"], r["boundary_vintage"], r["available_from"]) for r in eji]
    [('2022', '2010', '2023-08-24'), ('2024', '2020', 'unknown')]
    """
    records = []
    for source in map(publisher_source, publisher_source_names()):
        proxies = sorted({p for m in source.measures for p in m.proxy_for} - {"none"})
        for r in source.releases:
            read = [m for m in source.measures_at(r.geography_level) if m.name not in r.absent]
            records.append({
                "source": source.source, "title": source.title, "level": r.geography_level,
                "release": r.release, "layout": r.format.layout,
                "boundary_vintage": str(r.boundary_vintage),
                "available_from": str(r.available_from or "unknown"),
                "download": "url" if r.url else "file only", "measures": str(len(read)),
                "proxy_for": ",".join(proxies) or "none",
            })
    return records
