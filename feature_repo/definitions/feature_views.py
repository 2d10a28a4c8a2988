"""Feature views, generated from the catalog and the published datasets' vintages.

One view per published dataset: ACS measures per geography level, the SVI and the ADI computed
from ACS per reference area, and each publisher source's file per level (the Neighborhood Atlas
ADI among them), each keyed by (GEOID, vintage); and the patient geography timeline keyed by
patient.
"""

from __future__ import annotations

import duckdb
from feast import FeatureView, Field
from feast.types import Bool, Float64, String, UnixTimestamp

from feature_repo.definitions.data_sources import published_source
from feature_repo.definitions.entities import GEOGRAPHY_ENTITIES, patient, vintage
from feature_repo.definitions.metadata import (
    SCREENING_PARTS,
    Publication,
    linkage_tags,
    measure_tags,
    screening_tags,
)
from ingestion.core.datasets import (
    TIMELINE_GEOIDS,
    DatasetSpec,
    acs_spec,
    adi_acs_spec,
    geography_timeline_spec,
    published_calendar,
    publisher_spec,
    screened_needs_spec,
    svi_spec,
)
from ingestion.core.workspace import Workspace
from sdoh_sources import Source, load_catalog
from sdoh_sources.adi_computed import adi_acs_source
from sdoh_sources.publisher import PublisherSource, publisher_source, publisher_source_names
from sdoh_sources.screening import load_screening_catalog
from sdoh_sources.svi import svi_source

INDEX_REFERENCES = ("state", "nation")

SUFFIX_DTYPE = {"": Float64, "_moe": Float64, "_cv": Float64, "_reliability": String, "_missing": String,
                "_ci_low": Float64, "_ci_high": Float64}
SUFFIX_DESCRIPTION = {
    "": "{label}",
    "_moe": "90% margin of error of: {label}",
    "_cv": "Coefficient of variation (percent) of: {label}",
    "_reliability": "Reliability class (high/medium/low/unknown) of: {label}",
    "_missing": "Why the value is missing (typed reason), null when present: {label}",
    "_ci_low": "Lower bound of the publisher's confidence interval of: {label}",
    "_ci_high": "Upper bound of the publisher's confidence interval of: {label}",
}
ACS_SUFFIXES = ("", "_moe", "_cv", "_reliability", "_missing")
INDEX_SUFFIXES = ("", "_missing")  # published indices: ranks without MOE


def read_publication(spec: DatasetSpec, workspace: Workspace, *, level: str) -> Publication | None:
    """The vintages a published dataset holds, or None if it is not published yet."""
    calendar = published_calendar(spec.name, workspace)
    if calendar is None:
        return None
    by_vintage = calendar.sort_values("vintage")
    return Publication(
        level=level,
        vintages=tuple(int(v) for v in by_vintage["vintage"]),
        release_dates=tuple(by_vintage["release_ts"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")),
        boundary_vintages=tuple(sorted({int(b) for b in by_vintage["boundary_year"]})),
        reliability_rules=_published_rules(spec, workspace),
    )


def _published_rules(spec: DatasetSpec, workspace: Workspace) -> tuple[str, ...]:
    """The reliability rules a published dataset's rows were built with (none for indices)."""
    if "reliability_rule" not in spec.column_names:
        return ()
    with duckdb.connect() as con:
        rows = con.execute("SELECT DISTINCT reliability_rule FROM read_parquet(?) ORDER BY 1",
                           [workspace.published_glob(spec.name)]).fetchall()
    return tuple(r[0] for r in rows)


def _measure_fields(source: Source | PublisherSource, level: str, publication: Publication,
                    suffixes: tuple[str, ...] | None) -> list[Field]:
    """Fields of every measure at ``level``; ``suffixes`` None: each measure's own columns."""
    return [
        Field(
            name=f"{m.name}{suffix}",
            dtype=SUFFIX_DTYPE[suffix],
            description=SUFFIX_DESCRIPTION[suffix].format(label=m.label),
            tags=measure_tags(m, source, publication, suffix=suffix),
        )
        for m in source.measures_at(level)
        for suffix in (m.suffixes if suffixes is None else suffixes)
    ]


def _area_view(spec: DatasetSpec, source: Source | PublisherSource, level: str,
               suffixes: tuple[str, ...] | None, workspace: Workspace,
               description: str, *, profile: str) -> FeatureView | None:
    publication = read_publication(spec, workspace, level=level)
    if publication is None:
        return None
    return FeatureView(
        name=spec.name,
        entities=[GEOGRAPHY_ENTITIES[level], vintage],
        ttl=None,  # the (GEOID, vintage) key already pins the vintage in force
        schema=_measure_fields(source, level, publication, suffixes),
        source=published_source(spec, workspace, profile=profile),
        description=description,
        owner="sdoh-feature-store",
        tags={"source": source.source, "geography_level": level,
              "vintage": ",".join(map(str, publication.vintages))},
    )


def acs_view(level: str, workspace: Workspace, *, profile: str = "embedded") -> FeatureView | None:
    """ACS SDOH measures at one geography level (`acs_<level>`), if published."""
    return _area_view(acs_spec(level), load_catalog().acs, level, ACS_SUFFIXES, workspace,
                      f"ACS 5-year SDOH measures by {level}, with MOE, CV, reliability and reasons.",
                      profile=profile)


def svi_view(level: str, reference: str, workspace: Workspace, *,
             profile: str = "embedded") -> FeatureView | None:
    """CDC/ATSDR SVI ranks within a state or the nation (`svi_<level>_<reference>`), if published."""
    return _area_view(svi_spec(level, reference), svi_source(reference), level, INDEX_SUFFIXES,
                      workspace, f"CDC/ATSDR Social Vulnerability Index by {level}, ranked within "
                      f"the {reference} (computed from ACS or read from CDC's file: see origin).",
                      profile=profile)


def adi_acs_view(reference: str, workspace: Workspace, *, profile: str = "embedded") -> FeatureView | None:
    """The ADI computed from ACS block groups, ranked within the nation or a state, if published."""
    return _area_view(adi_acs_spec(reference), adi_acs_source(reference), "block_group",
                      INDEX_SUFFIXES, workspace,
                      f"Area Deprivation Index computed from ACS (Singh 2003 coefficients), ranked "
                      f"within the {reference}; not the Neighborhood Atlas file.", profile=profile)


def publisher_view(source: PublisherSource, level: str, workspace: Workspace, *,
                   profile: str = "embedded") -> FeatureView | None:
    """A publisher source's measures at one level (`<source>_<level>`), if published."""
    return _area_view(publisher_spec(source, level), source, level, None, workspace,
                      f"{source.title} ({source.publisher}) by {level}, as published: values, "
                      "uncertainty where given, and typed missing reasons.", profile=profile)


# Levels a patient's address reaches: the timeline's GEOIDs (ZCTAs from ZCTA polygons or a ZIP
# crosswalk), and the state (county's first two digits).
LINKED_LEVELS = ("block_group", "tract", "county", "zcta", "state")
GEOGRAPHY_FIELDS = TIMELINE_GEOIDS


def patient_geography_view(workspace: Workspace, *, profile: str = "embedded") -> FeatureView | None:
    """Each patient's address period as of an event: GEOIDs per boundary vintage and link status."""
    spec = geography_timeline_spec()
    if not workspace.is_published(spec.name):
        return None
    fields = [Field(name=f, dtype=String, description=f"GEOID ({f})", tags=linkage_tags(f))
              for f in GEOGRAPHY_FIELDS]
    fields += [
        Field(name="valid_to", dtype=UnixTimestamp, description="End of the address period (exclusive).",
              tags=linkage_tags("valid_to", measure_type="timestamp")),
        Field(name="link_method", dtype=String, description="How the address was linked.",
              tags=linkage_tags("link_method", measure_type="category")),
        Field(name="precision", dtype=String, description="Precision of the link.",
              tags=linkage_tags("precision", measure_type="category")),
        Field(name="link_missing", dtype=String, description="Why the address has no GEOID.",
              tags=linkage_tags("link_missing", measure_type="missing_reason")),
        Field(name="zip_join_type", dtype=String,
              description="How the ZIP crosswalk placed a ZIP-only address (null otherwise).",
              tags=linkage_tags("zip_join_type", measure_type="category")),
        Field(name="nonresidential_zip", dtype=Bool,
              description="The address's ZIP is a PO-box, unique or military ZIP.",
              tags=linkage_tags("nonresidential_zip", measure_type="category")),
    ]
    return FeatureView(
        name=spec.name,
        entities=[patient],
        ttl=None,  # valid_to, not a TTL, ends an address period
        schema=fields,
        source=published_source(spec, workspace, profile=profile),
        description="Patient address history linked to 2010 and 2020 geographies.",
        owner="sdoh-feature-store",
        tags={"source": "patient_address_history", "pii": "location"},
    )


SCREENING_DTYPE = {"state": String, "instrument": String, "screened_at": UnixTimestamp}


def screened_needs_view(workspace: Workspace, *, profile: str = "embedded") -> FeatureView | None:
    """Each patient's screened social needs as of an event: per domain its state in force."""
    spec = screened_needs_spec()
    if not workspace.is_published(spec.name):
        return None
    catalog = load_screening_catalog()
    fields = [Field(name=f"{d.name}_{part}", dtype=SCREENING_DTYPE[part],
                    description=f"{d.label}: {part.replace('_', ' ')} of the answer in force",
                    tags=screening_tags(d.name, part))
              for d in catalog.domains for part in SCREENING_PARTS]
    return FeatureView(
        name=spec.name,
        entities=[patient],
        ttl=None,  # the look-back of each domain, not a TTL, makes an answer stale
        schema=fields,
        source=published_source(spec, workspace, profile=profile),
        description="Screened social needs (PRAPARE, AHC-HRSN, Hunger Vital Sign, SDOH "
                    "conditions) per domain, carried forward from each answer.",
        owner="sdoh-feature-store",
        tags={"source": "patient_screening", "geography_level": "patient",
              "measurement_level": "individual"},
    )


def feature_views(workspace: Workspace, *, profile: str = "embedded") -> list[FeatureView]:
    """Every view whose dataset is published in ``workspace``, with the profile's source kind.

    ``profile="spark"`` gives views over ``SparkSource``s, any other over `feast.FileSource`s
    (the same files either way).

    Examples
    --------
    >>> [v.name for v in feature_views(ws)]
    ['acs_tract', 'acs_zcta', 'acs_state', 'patient_geography']
    """
    views = [acs_view(level, workspace, profile=profile) for level in GEOGRAPHY_ENTITIES]
    views += [svi_view(level, ref, workspace, profile=profile)
              for level in ("tract", "county") for ref in INDEX_REFERENCES]
    views += [adi_acs_view(ref, workspace, profile=profile) for ref in INDEX_REFERENCES]
    views += [publisher_view(source, level, workspace, profile=profile)
              for source in map(publisher_source, publisher_source_names()) for level in source.levels]
    views += [patient_geography_view(workspace, profile=profile),
              screened_needs_view(workspace, profile=profile)]
    return [v for v in views if v is not None]
