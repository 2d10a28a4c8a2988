"""Equity metadata as Feast Field tags: every field carries every key of DESIGN.md section 4.

`check_views` enforces it on the built definitions: `feature_repo.serving.store.apply_definitions`
calls it before registering anything, so a field without a key, or with a value outside its
controlled vocabulary (``sdoh_sources/catalog/vocabularies.yaml``), fails the build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from feast import FeatureView

from sdoh_sources import METADATA_KEYS, CatalogError, EquityMetadata, Measure, Source, load_catalog
from sdoh_sources.publisher import PublisherMeasure, PublisherSource
from sdoh_sources.screening import load_screening_catalog

# What each per-measure column is, relative to its measure.
ROLE_MEASURE_TYPE = {"_moe": "moe", "_cv": "cv", "_reliability": "reliability_class",
                     "_missing": "missing_reason", "_ci_low": "confidence_bound",
                     "_ci_high": "confidence_bound"}
ROLE_UNIT = {"_cv": "percent", "_reliability": "class", "_missing": "reason"}  # else the measure's


@dataclass(frozen=True)
class Publication:
    """What a published dataset holds: its vintages, their release dates and boundaries."""

    level: str
    vintages: tuple[int, ...]
    release_dates: tuple[str, ...]
    boundary_vintages: tuple[int, ...]
    reliability_rules: tuple[str, ...] = ()  # the rules the published rows were built with


ESTIMATE_WORDS = {"survey": "survey-based estimate", "model": "model-based estimate",
                  "index": "index", "classification": "classification",
                  "administrative": "from administrative records"}


def _publisher_uncertainty(measure: PublisherMeasure) -> str:
    if measure.bounds is not None:
        b = measure.bounds
        return (f"publisher {b.level:g}% confidence interval kept in _ci_low/_ci_high; 90% MOE = "
                f"half-width x 1.645/z where the interval is symmetric within "
                f"{b.symmetric_within:g}, else null ({ESTIMATE_WORDS[measure.estimate]})")
    if measure.moe is not None and measure.moe.level == 90:
        return f"publisher's 90% MOE as published ({ESTIMATE_WORDS[measure.estimate]})"
    if measure.moe is not None:
        return (f"publisher's {measure.moe.level:g}% MOE x 1.645/z as a 90% MOE "
                f"({ESTIMATE_WORDS[measure.estimate]})")
    return f"not_applicable: published without uncertainty ({ESTIMATE_WORDS[measure.estimate]})"


def _reliability_rule_text(source: Source, publication: Publication) -> str:
    # Every ACS estimate (the Gini index too) has an MOE and a class; composite indices do not.
    if source.measurement_level != "area_ecological":
        return "not_applicable: published index without MOE"
    catalog = load_catalog()
    names = publication.reliability_rules or (catalog.default_reliability_rule,)
    rules = {name: catalog.reliability_rules[name] for name in names}
    return "; ".join(f"{name}: CV<={rule['high']:g}% high, CV<={rule['medium']:g}% medium, else low; "
                     f"no MOE unknown" for name, rule in rules.items())


def measure_tags(
    measure: Measure | PublisherMeasure, source: Source | PublisherSource,
    publication: Publication, *, suffix: str = ""
) -> dict[str, str]:
    """The tags of one column of a measure (``suffix`` "" for the value, "_moe", "_cv", ...).

    Examples
    --------
    >>> cat = load_catalog()
    >>> pub = Publication("tract", (2021,), ("2022-12-08",), (2020,))
    >>> measure_tags(cat.acs.measure("pct_minority"), cat.acs, pub)["proxy_for"]
    'race,ethnicity'
    """
    publisher = isinstance(measure, PublisherMeasure)
    has_moe = measure.has_moe if publisher else source.measurement_level == "area_ecological"
    tags = {
        "domain": measure.domain,
        "gravity_category": measure.gravity_category,
        "source": source.source,
        "source_variables": ",".join(measure.variables) or (measure.column or ""),
        "vintage": ",".join(map(str, publication.vintages)),
        "release_date": ",".join(publication.release_dates),
        "geography_level": publication.level,
        "boundary_vintage": ",".join(map(str, publication.boundary_vintages)),
        "measurement_level": source.measurement_level,
        "measure_type": ROLE_MEASURE_TYPE.get(suffix, measure.measure_type),
        "unit": ROLE_UNIT.get(suffix, measure.unit),
        "direction": measure.direction if suffix == "" else "neutral",
        "moe_feature": f"{measure.name}_moe" if has_moe else "none",
        "reliability_rule": (_publisher_uncertainty(measure) if publisher
                             else _reliability_rule_text(source, publication)),
        "proxy_for": ",".join(measure.proxy_for),
        "fairness_role": measure.fairness_role,
        "known_biases": measure.known_biases.strip(),
        "intended_use": measure.intended_use.strip(),
        "prohibited_use": measure.prohibited_use.strip(),
        "license": source.license.strip(),
    }
    return tags


# Linkage fields describe one patient's location, which proxies race and national origin
# through residential segregation: they are keys, never model inputs.
LINKAGE_METADATA = EquityMetadata(
    domain="none",
    measure_type="identifier",
    unit="none",
    direction="neutral",
    proxy_for=("race", "ethnicity", "national_origin"),
    fairness_role="excluded_from_models",
    known_biases=("Linkage fails more often for rural, PO-box and limited-English patients, so "
                  "missingness is not at random (see notebooks/coverage_gaps.ipynb)."),
    intended_use="Joining a patient's events to area features as of each event.",
    prohibited_use="Model input; re-identifying patients; inferring race from location.",
)


def linkage_tags(field: str, *, measure_type: str = "identifier") -> dict[str, str]:
    """The tags of a patient-geography field (GEOIDs, linkage method, missing reason)."""
    m = LINKAGE_METADATA
    tags = {
        "domain": m.domain, "gravity_category": "none", "source": "patient_address_history",
        "source_variables": field, "vintage": "none", "release_date": "none",
        "geography_level": "patient", "boundary_vintage": field[-4:] if field[-4:].isdigit() else "none",
        "measurement_level": "individual", "measure_type": measure_type, "unit": "none",
        "direction": m.direction, "moe_feature": "none", "reliability_rule": "not_applicable",
        "proxy_for": ",".join(m.proxy_for), "fairness_role": m.fairness_role,
        "known_biases": m.known_biases, "intended_use": m.intended_use,
        "prohibited_use": m.prohibited_use, "license": "local patient data: never leaves the machine",
    }
    return tags


# What each column of a screened-needs domain is.
SCREENING_PARTS = {"state": ("category", "screening state (positive, negative, declined, "
                                         "not_screened, screening_stale)"),
                   "instrument": ("category", "instrument"), "screened_at": ("timestamp", "instant")}


def screening_tags(domain: str, part: str) -> dict[str, str]:
    """The tags of one screened-needs field (``<domain>_state``, ``_instrument``, ``_screened_at``).

    Examples
    --------
    >>> tags = screening_tags("food_insecurity", "state")
    >>> tags["measurement_level"], tags["gravity_category"], tags["geography_level"]
    ('individual', 'food_insecurity', 'patient')
    """
    catalog = load_screening_catalog()
    equity, about = catalog.equity, catalog.domain(domain)
    measure_type, unit = SCREENING_PARTS[part]
    instruments = [i.name for i in catalog.instruments]
    return {
        "domain": about.domain, "gravity_category": about.gravity_category,
        "source": "patient_screening",
        "source_variables": ",".join([*instruments, "SDOH conditions"]),
        "vintage": "none", "release_date": "none", "geography_level": equity.geography_level,
        "boundary_vintage": "none", "measurement_level": equity.measurement_level,
        "measure_type": measure_type, "unit": unit, "direction": equity.direction,
        "moe_feature": "none",
        "reliability_rule": (f"not_applicable: a screening answer; stale after "
                             f"{about.lookback_days} days (screening_stale)"),
        "proxy_for": ",".join(equity.proxy_for), "fairness_role": equity.fairness_role,
        "known_biases": equity.known_biases.strip(), "intended_use": equity.intended_use.strip(),
        "prohibited_use": equity.prohibited_use.strip(),
        "license": "local patient data: never leaves the machine",
    }


# Keys whose tag lists several values, comma-separated ("race,ethnicity", "2019,2021").
LIST_KEYS = ("proxy_for", "vintage", "release_date", "boundary_vintage")
# Formats of the list keys that have no vocabulary; "none" where a field has no vintage.
FORMATS = {
    "vintage": re.compile(r"^(none|\d{4}(,\d{4})*)$"),
    "boundary_vintage": re.compile(r"^(none|\d{4}(,\d{4})*)$"),
    "release_date": re.compile(r"^(none|\d{4}-\d{2}-\d{2}(,\d{4}-\d{2}-\d{2})*)$"),
}
FIX_HINT = ("fix the measure in sdoh_sources/catalog/*.yaml "
            "(or the tags in feature_repo/definitions/metadata.py), "
            "or add the value to sdoh_sources/catalog/vocabularies.yaml if it is a new category")


def tag_values(tags: Mapping[str, str], key: str) -> list[str]:
    """The values of one tag: the comma-separated items of a list key, else the whole tag.

    Examples
    --------
    >>> tag_values({"proxy_for": "race,ethnicity"}, "proxy_for")
    ['race', 'ethnicity']
    """
    value = tags.get(key, "")
    return value.split(",") if key in LIST_KEYS else [value]


def tag_problems(tags: Mapping[str, str]) -> list[str]:
    """What is wrong with one field's tags: missing keys, values outside vocabularies or formats.

    Every key of DESIGN.md section 4 (`sdoh_sources.METADATA_KEYS`) must be present and
    non-empty; every key with a vocabulary in ``vocabularies.yaml`` must take its values from
    it ("none" alone, never beside another value); vintages and release dates must be years
    and ISO dates.

    Examples
    --------
    >>> tag_problems({"domain": "astrology"})[0]
    "missing metadata key 'gravity_category'"
    """
    problems = [f"missing metadata key {k!r}" for k in METADATA_KEYS if not tags.get(k)]
    vocabularies = load_catalog().vocabularies
    for key in METADATA_KEYS:
        if not tags.get(key):
            continue
        values = tag_values(tags, key)
        if key in vocabularies:
            allowed = vocabularies[key]
            problems += [f"{key}={v!r} is outside its vocabulary; allowed values: {', '.join(allowed)}"
                         for v in values if v not in allowed]
            if "none" in values and len(values) > 1:
                problems.append(f"{key}={tags[key]!r} lists 'none' beside other values")
        if key in FORMATS and not FORMATS[key].match(tags[key]):
            problems.append(f"{key}={tags[key]!r} does not match the format {FORMATS[key].pattern}")
    return problems


def view_problems(view: FeatureView) -> list[str]:
    """`tag_problems` of every field of a view, plus MOE fields the view does not have.

    Examples
    --------
    >>> view_problems(store.get_feature_view("acs_tract"))
    []
    """
    names = {f.name for f in view.features}
    problems = []
    for field in view.features:
        found = tag_problems(field.tags)
        moe = field.tags.get("moe_feature", "none")
        if moe not in ("none", *names):
            found.append(f"moe_feature={moe!r} is not a field of the view")
        problems += [f"feature view {view.name}, field {field.name}: {p}" for p in found]
    return problems


def check_views(views: Iterable[FeatureView]) -> None:
    """Raise `CatalogError` listing every field of ``views`` whose equity metadata is incomplete.

    Parameters
    ----------
    views : iterable of feast.FeatureView
        The definitions about to be registered.

    Raises
    ------
    CatalogError
        Naming the view, field, key and allowed values of each problem, and how to fix it.

    Examples
    --------
    >>> check_views(store.list_feature_views())
    """
    problems = [p for view in views for p in view_problems(view)]
    if problems:
        raise CatalogError(f"{len(problems)} equity metadata problems ({FIX_HINT}):\n  "
                           + "\n  ".join(problems))
