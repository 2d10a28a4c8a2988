"""The Area Deprivation Index computed from ACS (Singh 2003) as data: adi_computed.yaml, validated.

`load_adi_method` reads the method: Singh's 17 indicators with their ACS variables per
vintage and cited factor score coefficients, the scaling, ranking and the Neighborhood Atlas
suppression rules. `adi_acs_source` gives the published scores and ranks as catalog measures.
This index is computed by ingestion.derive.adi; the Neighborhood Atlas files (sources/adi.yaml) are a
different thing and never share a feature name with it.

Examples
--------
>>> from sdoh_sources.adi_computed import load_adi_method
>>> len(load_adi_method().indicators)
17
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from sdoh_sources._models import Source, Variable
from sdoh_sources.catalog import (
    CatalogError,
    catalog_path,
    check_vocabularies,
    load_catalog,
    read_catalog_file,
    validate_catalog_data,
)

CATALOG_FILE = "adi_computed.yaml"
REFERENCES = ("nation", "state")
# Published column stems per variant: the score, its percentile and decile in the reference area.
VARIANT_PREFIX = {"unstandardized": "", "standardized": "std_"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CoefficientCitation(_Frozen):
    """Where a factor score coefficient comes from: Singh's table and secondary reproductions."""

    primary: str
    table: int
    page: int | None
    primary_verified: bool
    secondary: tuple[str, ...]


class IndicatorRule(_Frozen):
    """The ACS variables an indicator reads in a range of vintages (inclusive, open ends allowed)."""

    first: int | None = None
    last: int | None = None
    numerator: tuple[Variable, ...]
    denominator: tuple[Variable, ...] = ()
    evidence: str

    def covers(self, vintage: int) -> bool:
        """Whether the rule applies to ``vintage``."""
        return (self.first is None or vintage >= self.first) and (self.last is None or vintage <= self.last)


class Indicator(_Frozen):
    """One of Singh's 17 indicators: its definition, formula per vintage and coefficient."""

    name: str
    label: str
    definition: str
    formula: Literal["percent", "median", "log_ratio"]
    numerator: tuple[Variable, ...]
    denominator: tuple[Variable, ...] = ()
    scale: float = 1.0
    coefficient: float | None
    coefficient_citation: CoefficientCitation
    evidence: str
    by_vintage: tuple[IndicatorRule, ...] = ()

    @model_validator(mode="after")
    def _terms_fit_formula(self) -> Indicator:
        for rule in (self, *self.by_vintage):
            if self.formula == "median" and (len(rule.numerator) != 1 or rule.denominator):
                raise ValueError(f"{self.name}: a median reads exactly one variable")
            if self.formula != "median" and not (rule.numerator and rule.denominator):
                raise ValueError(f"{self.name}: a {self.formula} needs a numerator and a denominator")
        return self

    def terms(self, vintage: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Numerator and denominator variables in ``vintage``."""
        rule = next((r for r in self.by_vintage if r.covers(vintage)), self)
        return rule.numerator, rule.denominator


class Scaling(_Frozen):
    """How the raw score is rescaled within the reference area (mean 100, SD 20)."""

    mean: float
    sd: float
    sd_ddof: int
    citations: tuple[str, ...]
    note: str


class Variant(_Frozen):
    """The unstandardized (Atlas-like) or standardized (Petterson) weighting."""

    citations: tuple[str, ...]
    note: str


class Ranking(_Frozen):
    """How percentiles and deciles are taken within the reference area."""

    ties: Literal["average"]
    warn_below: int
    citations: tuple[str, ...]
    note: str


class GroupQuartersSource(_Frozen):
    """The decennial table a boundary vintage's group-quarters population is read from."""

    boundary_vintage: int
    year: int
    dataset: str
    variable: str


class Suppression(_Frozen):
    """The Neighborhood Atlas rules that leave a block group unranked."""

    min_population: float
    min_housing_units: float
    max_group_quarters_share: float
    population: Variable
    housing_units: Variable
    group_quarters_column: str
    group_quarters_sources: tuple[GroupQuartersSource, ...]
    citations: tuple[str, ...]

    def group_quarters_source(self, boundary_vintage: int) -> GroupQuartersSource | None:
        """Where block-group group quarters come from on ``boundary_vintage`` boundaries."""
        return next((g for g in self.group_quarters_sources if g.boundary_vintage == boundary_vintage),
                    None)


class AdiMethod(_Frozen):
    """adi_computed.yaml: the method, and the published measures' templates.

    ``defaults`` and ``measures`` are checked as a `Source` per reference area
    (`adi_acs_source`).
    """

    source: str
    title: str
    publisher: str
    license: str
    measurement_level: str
    dataset: str | None = None
    geography_level: str | None = None
    not_the_same_as: str
    kind: Literal["computed_from_acs"]
    method_version: str
    first_vintage: int
    last_vintage: int
    citations: dict[str, str]
    scaling: Scaling
    ranking: Ranking
    variants: dict[Literal["unstandardized", "standardized"], Variant]
    percent_scale: float
    suppression: Suppression
    indicators: tuple[Indicator, ...]
    defaults: dict[str, Any]
    measures: tuple[dict[str, Any], ...]

    @model_validator(mode="after")
    def _complete(self) -> AdiMethod:
        names = [i.name for i in self.indicators]
        if len(names) != 17 or len(set(names)) != 17:
            raise ValueError(f"Singh's ADI has 17 distinct indicators; the catalog has {names}")
        cited = {*self.scaling.citations, *self.ranking.citations, *self.suppression.citations,
                 *(c for v in self.variants.values() for c in v.citations),
                 *(c for i in self.indicators
                   for c in (i.coefficient_citation.primary, *i.coefficient_citation.secondary))}
        unknown = sorted(cited - set(self.citations))
        if unknown:
            raise ValueError(f"citations {unknown} are used but not defined under `citations`")
        return self


def _measures(method: AdiMethod, reference: str) -> list[dict]:
    out = []
    for variant, prefix in VARIANT_PREFIX.items():
        for m in method.measures:
            stem = str(m.get("name")).removeprefix("adi_")
            label = f"{m.get('label')} ({variant}, ranked within the {reference})"
            out.append({**method.defaults, **m, "name": f"adi_acs_{reference}_{prefix}{stem}",
                        "label": label, "column": m.get("name")})
    return out


def _source(method: AdiMethod, reference: str, *, where: str) -> Source:
    if reference not in REFERENCES:
        raise CatalogError(f"the computed ADI is published ranked within {list(REFERENCES)}, "
                           f"not {reference!r}")
    keys = ("source", "title", "publisher", "license", "measurement_level", "dataset", "geography_level")
    data = {**method.model_dump(include=set(keys)), "measures": _measures(method, reference)}
    return validate_catalog_data(data, Source, where=where)


def adi_acs_source(reference: str) -> Source:
    """The computed ADI's published columns within ``reference`` ("nation" or "state").

    Both variants are published: ``adi_acs_<reference>_score``/``_percentile``/``_decile``
    (Singh's unstandardized index, as the Atlas) and ``..._std_...`` (indicators z-scored
    first, Petterson 2023). ``column`` names the `compute_adi` output column.

    Examples
    --------
    >>> [m.name for m in adi_acs_source("state").measures][:2]
    ['adi_acs_state_score', 'adi_acs_state_percentile']
    """
    return _source(load_adi_method(), reference, where=catalog_path(CATALOG_FILE))


@cache
def load_adi_method(path: str | os.PathLike[str] | None = None) -> AdiMethod:
    """Load and check sdoh_sources/catalog/adi_computed.yaml.

    Parameters
    ----------
    path
        A copy of the file to read instead (to check an edit before it replaces the file).

    Returns
    -------
    AdiMethod

    Raises
    ------
    CatalogError
        If the file breaks the schema or a value is outside the shared vocabularies.

    Examples
    --------
    >>> load_adi_method().method_version
    'singh2003-acs5-bg/1'
    """
    method = read_catalog_file(CATALOG_FILE, AdiMethod, path=path)
    where = catalog_path(CATALOG_FILE) if path is None else str(path)
    for reference in REFERENCES:
        check_vocabularies(_source(method, reference, where=where), load_catalog().vocabularies)
    return method
