"""Load and check the catalog files: measures, release calendar, vocabularies.

The catalog is data: what varies by source or vintage lives in the YAML files beside this
module, and everything here only reads and checks them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml
from pydantic import ValidationError

from sdoh_sources._models import Release, Source
from sdoh_sources.errors import SdohError

# Keys that every feature's tags carry (DESIGN.md section 4).
METADATA_KEYS = (
    "domain", "gravity_category", "source", "source_variables", "vintage", "release_date",
    "geography_level", "boundary_vintage", "measurement_level", "measure_type", "unit",
    "direction", "moe_feature", "reliability_rule", "proxy_for", "fairness_role",
    "known_biases", "intended_use", "prohibited_use", "license",
)
VOCABULARY_KEYS = ("domain", "gravity_category", "measure_type", "direction", "fairness_role")
# The missing reason of every row of a vintage in which a measure has no verified variable.
NOT_AVAILABLE = "not_available_in_vintage"


class CatalogError(SdohError, ValueError):
    """A catalog file breaks the schema or a controlled vocabulary."""


def _read(name: str) -> dict:
    text = resources.files("sdoh_sources").joinpath("catalog", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Catalog:
    """All sources, the ACS release calendar, missing reasons and vocabularies.

    Examples
    --------
    >>> cat = load_catalog()
    >>> cat.release("acs5", 2020).release_date.isoformat()
    '2022-03-17'
    """

    acs: Source
    adi: Source
    calendar: dict[str, tuple[Release, ...]]
    vocabularies: dict[str, tuple[str, ...]]
    missing_reasons: dict[str, str]
    estimate_annotations: dict[int, str]
    moe_annotations: dict[int, str]
    reliability_rules: dict[str, dict[str, float]]
    default_reliability_rule: str

    def release(self, source: str, vintage: int) -> Release:
        """Return the release of ``source`` for ``vintage``."""
        for r in self.calendar.get(source, ()):
            if r.vintage == vintage:
                return r
        known = [r.vintage for r in self.calendar.get(source, ())]
        raise CatalogError(
            f"no release of {source!r} for vintage {vintage} in the calendar; known: {known}. "
            "Add it to sdoh_sources/catalog/release_calendar.yaml with its source."
        )



def _apply_defaults(raw: dict) -> dict:
    defaults = raw.pop("defaults", {})
    raw["measures"] = [{**defaults, **m} for m in raw["measures"]]
    return raw


def _load_source(name: str) -> Source:
    try:
        return Source.model_validate(_apply_defaults(_read(name)))
    except ValidationError as exc:
        raise CatalogError(f"sdoh_sources/catalog/{name} is invalid:\n{exc}") from exc


def check_vintage_rules(source: Source, releases: tuple[Release, ...]) -> None:
    """Raise `CatalogError` for a vintage rule that names a vintage the calendar does not know.

    A rule's ``first``/``last`` bound must be a released vintage, so a typo (2108) cannot
    silently switch a measure's variables for every later vintage.

    Examples
    --------
    >>> cat = load_catalog()
    >>> check_vintage_rules(cat.acs, cat.calendar["acs5"])
    """
    known = {r.vintage for r in releases}
    problems = [
        f"{source.source}.{m.name}: by_vintage bound {bound} is not a vintage of the release "
        f"calendar {sorted(known)}"
        for m in source.measures for rule in m.by_vintage
        for bound in (rule.first, rule.last) if bound is not None and bound not in known
    ]
    if problems:
        raise CatalogError("vintage rules outside the calendar:\n  " + "\n  ".join(problems))


def check_vocabularies(source: Source, vocabularies: dict[str, tuple[str, ...]]) -> None:
    """Raise `CatalogError` naming every measure field outside its controlled vocabulary."""
    problems = []
    for m in source.measures:
        for key in VOCABULARY_KEYS:
            value = getattr(m, key)
            if value not in vocabularies[key]:
                allowed = list(vocabularies[key])
                problems.append(f"{source.source}.{m.name}.{key}={value!r} (allowed: {allowed})")
        for proxy in m.proxy_for:
            if proxy not in vocabularies["proxy_for"]:
                problems.append(f"{source.source}.{m.name}.proxy_for has {proxy!r}")
        for level in m.levels:
            if level not in vocabularies["geography_level"]:
                problems.append(f"{source.source}.{m.name}.levels has {level!r}")
    if source.measurement_level not in vocabularies["measurement_level"]:
        problems.append(f"{source.source}.measurement_level={source.measurement_level!r}")
    if problems:
        raise CatalogError("catalog values outside their vocabularies:\n  " + "\n  ".join(problems))


@cache
def load_catalog() -> Catalog:
    """Load, validate and return the catalog shipped in ``sdoh_sources/catalog``.

    Returns
    -------
    Catalog
        The checked catalog.

    Raises
    ------
    CatalogError
        If a file breaks the schema or a value is outside its vocabulary.

    Examples
    --------
    >>> len(load_catalog().acs.measures) >= 8
    True
    """
    vocabularies = {k: tuple(v) for k, v in _read("vocabularies.yaml").items()}
    acs, adi = _load_source("acs.yaml"), _load_source("adi.yaml")
    for source in (acs, adi):
        check_vocabularies(source, vocabularies)
    calendar = {
        source: tuple(Release.model_validate(r) for r in rows)
        for source, rows in _read("release_calendar.yaml").items()
    }
    check_vintage_rules(acs, calendar["acs5"])
    missing = _read("missing_reasons.yaml")
    if NOT_AVAILABLE not in missing["reasons"]:
        raise CatalogError(f"missing_reasons.yaml lacks {NOT_AVAILABLE!r}, used by vintage rules")
    for code, reason in adi.suppression_codes.items():
        if reason not in missing["reasons"]:
            raise CatalogError(f"ADI suppression code {code} maps to unknown reason {reason!r}")
    reliability = missing["reliability"]
    return Catalog(
        acs=acs,
        adi=adi,
        calendar=calendar,
        vocabularies=vocabularies,
        missing_reasons=dict(missing["reasons"]),
        estimate_annotations={int(k): v for k, v in missing["census_estimate_annotations"].items()},
        moe_annotations={int(k): v for k, v in missing["census_moe_annotations"].items()},
        reliability_rules=reliability["rules"],
        default_reliability_rule=reliability["default_rule"],
    )


def release_in_force(releases: tuple[Release, ...], at: dt.datetime) -> Release | None:
    """The latest release on or before ``at``, or None if nothing was released yet."""
    released = [r for r in releases if r.release_ts <= at]
    return max(released, key=lambda r: r.release_ts) if released else None
