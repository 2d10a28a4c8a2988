"""Equity metadata as Feast Field tags: every field carries every key of DESIGN.md section 4."""

from __future__ import annotations

from dataclasses import dataclass

from sdoh_sources import METADATA_KEYS, CatalogError, EquityMetadata, Measure, Source, load_catalog

# What each per-measure column is, relative to its measure.
ROLE_MEASURE_TYPE = {"_moe": "moe", "_cv": "cv", "_reliability": "reliability_class",
                     "_missing": "missing_reason"}
ROLE_UNIT = {"_cv": "percent", "_reliability": "class", "_missing": "reason"}


@dataclass(frozen=True)
class Publication:
    """What a published dataset holds: its vintages, their release dates and boundaries."""

    level: str
    vintages: tuple[int, ...]
    release_dates: tuple[str, ...]
    boundary_vintages: tuple[int, ...]
    reliability_rules: tuple[str, ...] = ()  # the rules the published rows were built with


def _reliability_rule_text(measure: Measure, publication: Publication) -> str:
    if measure.measure_type in ("percentile_rank", "decile_rank", "index"):
        return "not_applicable: published index without MOE"
    catalog = load_catalog()
    names = publication.reliability_rules or (catalog.default_reliability_rule,)
    rules = {name: catalog.reliability_rules[name] for name in names}
    return "; ".join(f"{name}: CV<={rule['high']}% high, CV<={rule['medium']}% medium, else low; "
                     f"no MOE unknown" for name, rule in rules.items())


def measure_tags(
    measure: Measure, source: Source, publication: Publication, *, suffix: str = ""
) -> dict[str, str]:
    """The tags of one column of a measure (``suffix`` "" for the value, "_moe", "_cv", ...).

    Examples
    --------
    >>> cat = load_catalog()
    >>> pub = Publication("tract", (2021,), ("2022-12-08",), (2020,))
    >>> measure_tags(cat.acs.measure("pct_minority"), cat.acs, pub)["proxy_for"]
    'race,ethnicity'
    """
    has_moe = source.measurement_level == "area_ecological"
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
        "reliability_rule": _reliability_rule_text(measure, publication),
        "proxy_for": ",".join(measure.proxy_for),
        "fairness_role": measure.fairness_role,
        "known_biases": measure.known_biases.strip(),
        "intended_use": measure.intended_use.strip(),
        "prohibited_use": measure.prohibited_use.strip(),
        "license": source.license.strip(),
    }
    check_tags(tags, field=f"{measure.name}{suffix}")
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
    check_tags(tags, field=field)
    return tags


def check_tags(tags: dict[str, str], *, field: str) -> None:
    """Raise `CatalogError` if a field lacks a metadata key or has a value outside its vocabulary.

    Examples
    --------
    >>> check_tags({"domain": "astrology"}, field="x")
    Traceback (most recent call last):
    ...
    sdoh_sources.catalog.CatalogError: field x: missing metadata keys [...]
    """
    missing = [k for k in METADATA_KEYS if not tags.get(k)]
    if missing:
        raise CatalogError(f"field {field}: missing metadata keys {missing}")
    vocab = load_catalog().vocabularies
    bad = [f"{k}={tags[k]!r}" for k in ("domain", "gravity_category", "measure_type", "direction",
                                         "fairness_role", "measurement_level")
           if k in vocab and tags[k] not in vocab[k]]
    bad += [f"proxy_for has {p!r}" for p in tags["proxy_for"].split(",") if p not in vocab["proxy_for"]]
    if bad:
        raise CatalogError(f"field {field}: values outside their vocabularies: {bad}")
