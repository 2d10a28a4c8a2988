"""Load and check the catalog files: measures, release calendar, vocabularies.

The catalog is data: what varies by source or vintage lives in the YAML files beside this
module, and everything here only reads and checks them.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sdoh_sources._models import MissingReasons, Release, ReleaseCalendar, Source, Vocabularies
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


Model = TypeVar("Model", bound=BaseModel)


def catalog_path(name: str) -> str:
    """How messages name a packaged catalog file.

    Examples
    --------
    >>> catalog_path("svi.yaml")
    'sdoh_sources/catalog/svi.yaml'
    """
    return f"sdoh_sources/catalog/{name}"


def validate_catalog_data(data: Any, model: type[Model], *, where: str) -> Model:
    """Validate data read from a catalog file with ``model``.

    Parameters
    ----------
    data
        What the YAML file holds.
    model
        The pydantic model of the file.
    where
        The file, as the error message names it.

    Returns
    -------
    Model
        The validated model.

    Raises
    ------
    CatalogError
        Naming ``where`` and, for each problem, the field path (``measures.3.domain``).

    Examples
    --------
    >>> validate_catalog_data({"acs5": [{"vintage": 2020}]}, ReleaseCalendar,
    ...                       where="calendar.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sdoh_sources.catalog.CatalogError: calendar.yaml is invalid:
    2 validation errors for ReleaseCalendar
    acs5.0.release_date
      Field required ...
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"{where} is invalid:\n{exc}") from exc


def parse_catalog_text(text: str, model: type[Model], *, where: str) -> Model:
    """Parse the YAML ``text`` of a catalog file and validate it with ``model``.

    An empty document counts as an empty mapping, so each required key is reported.

    Raises
    ------
    CatalogError
        The text is not YAML, or breaks the model (see `validate_catalog_data`).

    Examples
    --------
    >>> parse_catalog_text("acs5: [", ReleaseCalendar, where="x.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sdoh_sources.catalog.CatalogError: x.yaml is not valid YAML: ...
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{where} is not valid YAML: {exc}") from exc
    return validate_catalog_data({} if data is None else data, model, where=where)


@cache
def _packaged(name: str, model: type[Model]) -> Model:
    text = resources.files("sdoh_sources").joinpath("catalog", name).read_text(encoding="utf-8")
    return parse_catalog_text(text, model, where=catalog_path(name))


def read_catalog_file(name: str, model: type[Model], *,
                      path: str | os.PathLike[str] | None = None) -> Model:
    """Read the catalog file ``name`` (or a copy of it at ``path``), validated by ``model``.

    The packaged file is read and validated once per process; a ``path`` is read every time.

    Parameters
    ----------
    name
        The file in ``sdoh_sources/catalog``, e.g. ``"release_calendar.yaml"``.
    model
        The pydantic model of the file.
    path
        Another file of the same layout (a test's broken copy, a user's thresholds file).

    Returns
    -------
    Model
        The validated model.

    Raises
    ------
    CatalogError
        The file is not YAML or breaks the model; the message names the file and the field.

    Examples
    --------
    >>> calendar = read_catalog_file("release_calendar.yaml", ReleaseCalendar)
    >>> calendar.root["acs5"][0].vintage
    2014
    """
    if path is None:
        return _packaged(name, model)
    return parse_catalog_text(Path(path).read_text(encoding="utf-8"), model, where=str(path))


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
        for level in getattr(m, "levels", ()):  # publisher measures have no level list
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
    vocabularies = read_catalog_file("vocabularies.yaml", Vocabularies).model_dump()
    acs = read_catalog_file("acs.yaml", Source)
    check_vocabularies(acs, vocabularies)
    calendar = read_catalog_file("release_calendar.yaml", ReleaseCalendar).root
    check_vintage_rules(acs, calendar["acs5"])
    missing = read_catalog_file("missing_reasons.yaml", MissingReasons)
    if NOT_AVAILABLE not in missing.reasons:
        raise CatalogError(f"missing_reasons.yaml lacks {NOT_AVAILABLE!r}, used by vintage rules")
    return Catalog(
        acs=acs,
        calendar=calendar,
        vocabularies=vocabularies,
        missing_reasons=dict(missing.reasons),
        estimate_annotations=dict(missing.census_estimate_annotations),
        moe_annotations=dict(missing.census_moe_annotations),
        reliability_rules={k: dict(v) for k, v in missing.reliability.rules.items()},
        default_reliability_rule=missing.reliability.default_rule,
    )


def boundary_vintages() -> tuple[int, ...]:
    """The decennial boundary vintages the released data is published on, from the calendar.

    Each release of ``release_calendar.yaml`` names its ``boundary_vintage``; a location is
    linked to every one of them (DESIGN.md section 3).

    Examples
    --------
    >>> boundary_vintages()
    (2010, 2020)
    """
    calendar = read_catalog_file("release_calendar.yaml", ReleaseCalendar).root
    return tuple(sorted({r.boundary_vintage for rows in calendar.values() for r in rows}))


def release_in_force(releases: tuple[Release, ...], at: dt.datetime) -> Release | None:
    """The latest release on or before ``at``, or None if nothing was released yet."""
    released = [r for r in releases if r.release_ts <= at]
    return max(released, key=lambda r: r.release_ts) if released else None
