"""The published datasets' schemas, derived from the catalog: one place says what a column is.

Every dataset Feast serves is described here as a `DatasetSpec`. The builders produce frames
with exactly these columns, the validation gate turns each spec into a Great Expectations
suite, and the Feast definitions read the same specs, so nothing is written twice by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ingestion.core.workspace import Workspace
from sdoh_sources import Source, boundary_vintages, load_catalog, zip_join_types
from sdoh_sources.adi_computed import adi_acs_source
from sdoh_sources.publisher import PublisherSource, publisher_source
from sdoh_sources.screening import SCREENING_STATES, load_screening_catalog
from sdoh_sources.svi import svi_source

GEOID_LENGTH = {"block_group": 12, "tract": 11, "county": 5, "zcta": 5, "state": 2}
# The boundary vintages of the release calendar: a timeline has GEOID columns for each.
BOUNDARY_VINTAGES = boundary_vintages()
RELIABILITY_CLASSES = ("high", "medium", "low", "unknown")
# Census annotation values: none may ever reach a published number.
JAM_VALUES = (-666666666, -999999999, -888888888, -222222222, -333333333, -555555555)
MEASURE_SUFFIXES = ("", "_moe", "_cv", "_reliability", "_missing")  # an ACS measure's columns
#: Every column a measure may have: publisher measures add their confidence bounds.
FIELD_SUFFIXES = (*MEASURE_SUFFIXES, "_ci_low", "_ci_high")


@dataclass(frozen=True)
class ColumnRule:
    """What one column of a published dataset must satisfy."""

    name: str
    dtype: str  # "string", "int64", "float64", "bool", "timestamp"
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None
    regex: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A published dataset: its name, unique key and column rules.

    Examples
    --------
    >>> spec = acs_spec("tract")
    >>> spec.key_columns
    ('tract_geoid', 'vintage')
    """

    name: str
    key_columns: tuple[str, ...]
    columns: tuple[ColumnRule, ...]
    timestamp_column: str
    measures: tuple[str, ...] = field(default=())
    # Published files are split by these: "vintage" (a column) and "state" (the first two
    # digits of the key's GEOID); none means one file.
    partition_by: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnRule:
        """The rule of column ``name``."""
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in publishing order."""
        return tuple(c.name for c in self.columns)

    def partition_paths(self, frame: pd.DataFrame) -> pd.Series:
        """The file (relative to the dataset's folder) each row is published in.

        Examples
        --------
        >>> import pandas as pd
        >>> acs_spec("tract").partition_paths(
        ...     pd.DataFrame({"tract_geoid": ["10001040100"], "vintage": [2021]})).tolist()
        ['2021/10.parquet']
        """
        needed = [self.key_columns[0] if p == "state" else p for p in self.partition_by]
        if not self.partition_by or any(c not in frame.columns for c in needed):
            return pd.Series("data.parquet", index=frame.index)
        parts = [frame[self.key_columns[0]].astype(str).str[:2] if p == "state"
                 else frame[p].astype(str) for p in self.partition_by]
        return parts[0].str.cat(parts[1:], sep="/") + ".parquet"


def geoid_column(level: str) -> str:
    """The join-key column of a geography level, e.g. ``tract_geoid``."""
    return f"{level}_geoid"


def _geoid_rule(name: str, level: str, *, nullable: bool = False) -> ColumnRule:
    return ColumnRule(name, "string", nullable=nullable, regex=rf"^\d{{{GEOID_LENGTH[level]}}}$")


def _area_columns(level: str) -> tuple[ColumnRule, ...]:
    return (
        _geoid_rule(geoid_column(level), level),
        ColumnRule("boundary_year", "int64", nullable=False,
                   allowed=tuple(str(b) for b in BOUNDARY_VINTAGES)),
        ColumnRule("vintage", "int64", nullable=False, minimum=2009, maximum=2100),
        ColumnRule("release_ts", "timestamp", nullable=False),
        ColumnRule("synthetic", "bool", nullable=False),
    )


def _missing_rule(name: str) -> ColumnRule:
    return ColumnRule(name, "string", allowed=tuple(load_catalog().missing_reasons))


def acs_spec(level: str) -> DatasetSpec:
    """The ACS measures dataset at ``level``: estimate, MOE, CV, reliability, missing reason."""
    catalog = load_catalog()
    measures = catalog.acs.measures_at(level)
    columns = [*_area_columns(level), ColumnRule("reliability_rule", "string", nullable=False,
                                                 allowed=tuple(catalog.reliability_rules))]
    for m in measures:
        low, high = m.value_range
        columns += [
            ColumnRule(m.name, "float64", minimum=low, maximum=high),
            ColumnRule(f"{m.name}_moe", "float64", minimum=0),
            ColumnRule(f"{m.name}_cv", "float64", minimum=0),
            ColumnRule(f"{m.name}_reliability", "string", allowed=RELIABILITY_CLASSES),
            _missing_rule(f"{m.name}_missing"),
        ]
    return DatasetSpec(
        name=f"acs_{level}",
        key_columns=(geoid_column(level), "vintage"),
        columns=tuple(columns),
        timestamp_column="release_ts",
        measures=tuple(m.name for m in measures),
        # ZCTAs are not nested in states.
        partition_by=("vintage",) if level == "zcta" else ("vintage", "state"),
    )


def adi_spec() -> DatasetSpec:
    """The Neighborhood Atlas ADI dataset (`adi_block_group`): the ``adi`` source spec's.

    Examples
    --------
    >>> adi_spec().measures
    ('adi_national_rank', 'adi_state_decile')
    """
    return publisher_spec(publisher_source("adi"), "block_group")


# Where an index row comes from: computed here from ACS, or read from the publisher's file.
INDEX_ORIGINS = ("computed_from_acs", "publisher_file")


def _index_spec(name: str, level: str, source: Source, *extra: ColumnRule) -> DatasetSpec:
    columns = [*_area_columns(level), ColumnRule("origin", "string", nullable=False,
                                                 allowed=INDEX_ORIGINS), *extra]
    for m in source.measures:
        low, high = m.value_range
        columns += [ColumnRule(m.name, "float64", minimum=low, maximum=high),
                    _missing_rule(f"{m.name}_missing")]
    return DatasetSpec(
        name=name,
        key_columns=(geoid_column(level), "vintage"),
        columns=tuple(columns),
        timestamp_column="release_ts",
        measures=tuple(m.name for m in source.measures),
        partition_by=("vintage", "state"),
    )


def svi_spec(level: str, reference: str) -> DatasetSpec:
    """CDC/ATSDR SVI ranks of tracts or counties within a state or the nation (`svi_<level>_<ref>`).

    ``vintage`` is the ACS 5-year vintage the SVI release is computed from (SVI 2020: 2020).

    Examples
    --------
    >>> svi_spec("tract", "state").name
    'svi_tract_state'
    """
    return _index_spec(f"svi_{level}_{reference}", level, svi_source(reference),
                       ColumnRule("svi_release", "int64", nullable=False, minimum=2000, maximum=2100))


def adi_acs_spec(reference: str) -> DatasetSpec:
    """The ADI computed from ACS block groups, ranked within the nation or a state.

    Examples
    --------
    >>> adi_acs_spec("nation").name
    'adi_acs_block_group_nation'
    """
    return _index_spec(f"adi_acs_block_group_{reference}", "block_group", adi_acs_source(reference),
                       ColumnRule("method_version", "string", nullable=False))


def _publisher_rules(name: str, suffix: str, low: float | None, high: float | None) -> ColumnRule:
    column = f"{name}{suffix}"
    if suffix == "_missing":
        return _missing_rule(column)
    if suffix == "_moe":
        return ColumnRule(column, "float64", minimum=0)
    return ColumnRule(column, "float64", minimum=low, maximum=high)  # the value and its bounds


def publisher_spec(source: PublisherSource, level: str) -> DatasetSpec:
    """A publisher source's dataset at ``level`` (`<source>_<level>`), from its spec.

    Each measure has its value, its ``_moe`` (90%) where the publisher gives an MOE or a
    confidence interval, its ``_ci_low``/``_ci_high`` where it gives an interval, and its
    ``_missing`` reason.

    Examples
    --------
    >>> from sdoh_sources.publisher import publisher_source
    >>> spec = publisher_spec(publisher_source("eji"), "tract")
    >>> spec.name, spec.key_columns
    ('eji_tract', ('tract_geoid', 'vintage'))
    >>> [c for c in spec.column_names if c.startswith("eji_population")]
    ['eji_population', 'eji_population_moe', 'eji_population_missing']
    """
    columns = list(_area_columns(level))
    measures = source.measures_at(level)
    for m in measures:
        low, high = m.value_range
        columns += [_publisher_rules(m.name, suffix, low, high) for suffix in m.suffixes]
    return DatasetSpec(
        name=source.dataset(level),
        key_columns=(geoid_column(level), "vintage"),
        columns=tuple(columns),
        timestamp_column="release_ts",
        measures=tuple(m.name for m in measures),
        partition_by=("vintage",) if level == "zcta" else ("vintage", "state"),
    )


LINK_METHODS = ("point_in_polygon", "zip_crosswalk", "none")
#: How precisely a period is placed: a point (coordinate), the ZCTA or the county of its ZIP
#: (zcta, county: from a ZIP crosswalk, never a tract or block group), only a ZIP known and not
#: linked (zip), or nowhere (none).
LINK_PRECISIONS = ("coordinate", "zcta", "county", "zip", "none")
#: The levels of the timeline's GEOID columns, ``<level>_geoid_<boundary year>``.
TIMELINE_LEVELS = ("block_group", "tract", "county", "zcta")
#: ``patient_id`` as given, or an HMAC-SHA256 pseudonym with the key's public fingerprint
#: (see `ingestion.geo.pseudonym`).
PATIENT_ID_SCHEME_PATTERN = r"^(?:raw|hmac_sha256:[0-9a-f]{16})$"
#: The timeline's GEOID columns, ``<level>_geoid_<boundary year>``, 2010 ones first.
TIMELINE_GEOIDS = tuple(f"{level}_geoid_{year}" for year in BOUNDARY_VINTAGES for level in TIMELINE_LEVELS)


def geography_timeline_spec() -> DatasetSpec:
    """The patient geography timeline: one row per address period, GEOIDs per boundary vintage.

    Besides the GEOIDs of every level and boundary vintage, a row says how it was linked
    (``link_method``, ``precision``), why a GEOID is missing (``link_missing``), what a ZIP
    crosswalk link rests on (``zip_join_type``, ``zip_link_ratio``, ``nonresidential_zip``,
    ``zip_crosswalk_vintage``) and whether ``patient_id`` is a pseudonym
    (``patient_id_scheme``).

    Examples
    --------
    >>> spec = geography_timeline_spec()
    >>> spec.key_columns, "zcta_geoid_2020" in spec.column_names
    (('patient_id', 'valid_from'), True)
    """
    columns = [
        ColumnRule("patient_id", "string", nullable=False),
        ColumnRule("valid_from", "timestamp", nullable=False),
        ColumnRule("valid_to", "timestamp"),
    ]
    columns += [_geoid_rule(name, name.split("_geoid_")[0], nullable=True) for name in TIMELINE_GEOIDS]
    columns += [
        ColumnRule("link_method", "string", nullable=False, allowed=LINK_METHODS),
        ColumnRule("precision", "string", nullable=False, allowed=LINK_PRECISIONS),
        _missing_rule("link_missing"),
        ColumnRule("zip_join_type", "string", allowed=zip_join_types()),
        ColumnRule("zip_link_ratio", "float64", minimum=0, maximum=1),
        ColumnRule("nonresidential_zip", "bool", nullable=False),
        ColumnRule("zip_crosswalk_vintage", "string"),
        ColumnRule("patient_id_scheme", "string", nullable=False,
                   regex=PATIENT_ID_SCHEME_PATTERN),
    ]
    return DatasetSpec(
        name="patient_geography",
        key_columns=("patient_id", "valid_from"),
        columns=tuple(columns),
        timestamp_column="valid_from",
    )


def screened_needs_spec() -> DatasetSpec:
    """Screened social needs: per patient and change instant, every domain's state in force.

    Per domain of sdoh_sources/catalog/screening.yaml: ``<domain>_state`` (positive, negative,
    declined, not_screened), ``<domain>_instrument`` and ``<domain>_screened_at`` (the answer or
    Condition in force); ``patient_id_scheme`` says whether ``patient_id`` is a pseudonym.

    Examples
    --------
    >>> spec = screened_needs_spec()
    >>> spec.name, spec.key_columns, spec.timestamp_column
    ('screened_needs', ('patient_id', 'effective_time'), 'effective_time')
    >>> "food_insecurity_screened_at" in spec.column_names
    True
    """
    columns = [ColumnRule("patient_id", "string", nullable=False),
               ColumnRule("effective_time", "timestamp", nullable=False)]
    for domain in load_screening_catalog().domain_names:
        columns += [ColumnRule(f"{domain}_state", "string", nullable=False, allowed=SCREENING_STATES),
                    ColumnRule(f"{domain}_instrument", "string"),
                    ColumnRule(f"{domain}_screened_at", "timestamp")]
    columns.append(ColumnRule("patient_id_scheme", "string", nullable=False,
                              regex=PATIENT_ID_SCHEME_PATTERN))
    return DatasetSpec(name="screened_needs", key_columns=("patient_id", "effective_time"),
                       columns=tuple(columns), timestamp_column="effective_time")


def published_specs() -> tuple[DatasetSpec, ...]:
    """Every dataset the embedded profile publishes."""
    return (*(acs_spec(level) for level in ("block_group", "tract", "county")), adi_spec(),
            *(svi_spec(level, ref) for level in ("tract", "county") for ref in ("state", "nation")),
            *(adi_acs_spec(ref) for ref in ("state", "nation")), geography_timeline_spec())


def published_calendar(dataset: str, workspace: Workspace) -> pd.DataFrame | None:
    """Vintage, release instant (UTC) and boundary year of each vintage a dataset holds.

    Returns None if the dataset is not published yet. Read on a UTC connection: DuckDB shows
    TIMESTAMPTZ values in the session's time zone, which would move releases by hours.

    Examples
    --------
    >>> published_calendar("acs_tract", ws)[["vintage", "boundary_year"]].values.tolist()
    [[2019, 2010], [2020, 2020], [2021, 2020]]
    """
    import duckdb  # only readers of published data need it, not every user of the specs

    if not workspace.is_published(dataset):
        return None
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(
            "SELECT DISTINCT vintage, release_ts, boundary_year FROM read_parquet(?) "
            "ORDER BY release_ts, vintage", [workspace.published_glob(dataset)]
        ).df()
