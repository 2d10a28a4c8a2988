"""The CDC/ATSDR Social Vulnerability Index method as data: sdoh_sources/catalog/svi.yaml, validated.

`load_svi_catalog` reads the method (releases, variables per release, themes, rounding,
ranking, equity metadata); `svi_source` gives the published SVI ranks as catalog measures,
so the dataset, its validation suite and its Feast fields come from one definition.

Examples
--------
>>> from sdoh_sources.svi import load_svi_catalog
>>> [t.number for t in load_svi_catalog().themes]
[1, 2, 3, 4]
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdoh_sources._models import VARIABLE_PATTERN, Measure, Source, Variable
from sdoh_sources.catalog import CatalogError, load_catalog, read_catalog_file

TOTALS = ("TOTPOP", "HU", "HH")
TOTAL_DENOMINATORS = tuple(f"E_{t}" for t in TOTALS)

class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Percent(_Frozen):
    """How EP_ is formed: a ratio to a ``denominator``, or percents the ACS ``published``."""

    denominator: str | None = None
    published: tuple[Variable, ...] = ()
    complement: bool = False  # EP_ = 100 minus the one published percent

    @model_validator(mode="after")
    def _one_kind(self) -> Percent:
        if (self.denominator is None) == (not self.published):
            raise ValueError("a percent has either a denominator or published percents")
        if self.complement and len(self.published) != 1:
            raise ValueError("complement: true takes exactly one published percent")
        den = self.denominator
        if den is not None and den not in TOTAL_DENOMINATORS and not re.fullmatch(VARIABLE_PATTERN, den):
            raise ValueError(f"denominator {den!r} is neither an ACS variable nor one of "
                             f"{TOTAL_DENOMINATORS}")
        if den is not None and den.startswith("-"):
            raise ValueError(f"denominator {den!r} cannot be signed")
        return self


class Formula(_Frozen):
    """One release's definition of an SVI variable: its estimate, percent and evidence."""

    estimate: tuple[Variable, ...] = Field(min_length=1)
    percent: Percent | None = None
    evidence: Annotated[str, Field(min_length=20)]

    @property
    def acs_variables(self) -> tuple[str, ...]:
        """The ACS variables read (without E/M suffix or sign), in formula order."""
        terms = list(self.estimate)
        if self.percent is not None:
            terms += [*self.percent.published, *filter(None, [self.percent.denominator])]
        return tuple(dict.fromkeys(t.lstrip("-") for t in terms if not t.startswith("E_")))


class _Equity(_Frozen):
    domain: str
    gravity_category: str = "none"
    direction: str = "higher_is_worse"
    known_biases: str
    intended_use: str
    prohibited_use: str


class SviVariable(_Equity):
    """One of the 16 ranked variables, its equity metadata and its formula per release."""

    name: Annotated[str, Field(pattern=r"^[A-Z0-9]+$")]
    label: str
    theme: int
    proxy_for: tuple[str, ...] = ("none",)
    fairness_role: str = "model_input"
    releases: dict[int, Formula]


class Total(_Frozen):
    """E_TOTPOP, E_HU or E_HH: a count read, not ranked."""

    name: str
    label: str
    releases: dict[int, Formula]


class Theme(_Equity):
    """A theme: the variables whose EPL_ are summed into SPL_THEMEn and ranked."""

    number: int
    name: str
    label: str
    members: tuple[str, ...]


class Overall(_Equity):
    """SPL_THEMES and RPL_THEMES: the four themes summed and ranked."""

    label: str


class SviRelease(_Frozen):
    """A release of the SVI and the ACS 5-year vintage it is computed from."""

    release: int
    acs_vintage: int
    boundary_vintage: int
    documentation: str


class Method(_Frozen):
    """CDC's ranking, rounding and flagging rules."""

    rank_population_minimum: float
    percent_decimals: int
    rank_decimals: int
    truncate_moe: bool
    zero_denominator_percent: float
    flag_threshold: float
    missing_value: float
    missing_reason: str


class ColumnKind(_Frozen):
    """The measure type and unit of every column with one prefix."""

    measure_type: str
    unit: str


class SviCatalog(_Frozen):
    """sdoh_sources/catalog/svi.yaml, validated.

    Examples
    --------
    >>> cat = load_svi_catalog()
    >>> [t.name for t in cat.themes][2], cat.equity("EP_MINRTY")["fairness_role"]
    ('racial_ethnic_minority_status', 'stratifier_only')
    """

    source: str
    title: str
    publisher: str
    license: str
    measurement_level: str
    releases: tuple[SviRelease, ...]
    method: Method
    references: dict[str, int]
    columns: dict[str, ColumnKind]
    totals: tuple[Total, ...]
    themes: tuple[Theme, ...]
    overall: Overall
    variables: tuple[SviVariable, ...]

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """``defaults`` fill the keys each variable, theme and the overall index takes."""
        if not (isinstance(data, dict) and isinstance(data.get("defaults"), dict)):
            return data
        defaults = data["defaults"]

        def fill(entry: Any, model: type[BaseModel]) -> Any:
            if not isinstance(entry, dict):
                return entry
            return {**{k: v for k, v in defaults.items() if k in model.model_fields}, **entry}

        out = {k: v for k, v in data.items() if k != "defaults"}
        for key, model in (("variables", SviVariable), ("themes", Theme)):
            if isinstance(out.get(key), list):
                out[key] = [fill(entry, model) for entry in out[key]]
        if "overall" in out:
            out["overall"] = fill(out["overall"], Overall)
        return out

    @model_validator(mode="after")
    def _themes_cover_variables(self) -> SviCatalog:
        members = [m for t in self.themes for m in t.members]
        names = [v.name for v in self.variables]
        if sorted(members) != sorted(names) or len(set(members)) != len(members):
            raise ValueError(f"theme members {members} must list each variable {names} once")
        wrong = [v.name for v in self.variables if v.name not in self.theme(v.theme).members]
        if wrong:
            raise ValueError(f"variables {wrong} name a theme that does not list them")
        return self

    @model_validator(mode="after")
    def _formulas_for_every_release(self) -> SviCatalog:
        known = {r.release for r in self.releases}
        unranked = [v.name for v in self.variables for f in v.releases.values() if f.percent is None]
        if unranked:
            raise ValueError(f"variables {sorted(set(unranked))} need a percent in every release")
        for item in (*self.totals, *self.variables):
            if set(item.releases) != known:
                raise ValueError(f"{item.name} has formulas for {sorted(item.releases)}, not {sorted(known)}")
        return self

    def release(self, release: int) -> SviRelease:
        """The release ``release``, or `CatalogError` naming the known ones."""
        for r in self.releases:
            if r.release == release:
                return r
        raise CatalogError(f"SVI release {release!r} is not in sdoh_sources/catalog/svi.yaml; "
                           f"known releases: {[r.release for r in self.releases]}")

    def theme(self, number: int) -> Theme:
        """Theme ``number`` (1-4)."""
        return next(t for t in self.themes if t.number == number)

    def variable(self, name: str) -> SviVariable:
        """The ranked variable ``name`` (e.g. "POV150")."""
        found = next((v for v in self.variables if v.name == name), None)
        if found is None:
            names = [v.name for v in self.variables]
            raise KeyError(f"{name!r} is not a ranked SVI variable; they are {names}")
        return found

    def equity(self, column: str) -> dict[str, object]:
        """The equity metadata (DESIGN.md section 4) of an SVI column.

        A theme's and the overall index's ``proxy_for`` is the union of their variables'; a
        theme whose variables are all ``stratifier_only`` is ``stratifier_only`` too.

        Examples
        --------
        >>> load_svi_catalog().equity("RPL_THEME2")["proxy_for"]
        ('age', 'disability', 'language', 'national_origin')
        """
        prefix, _, stem = column.partition("_")
        kind = self.columns.get(f"{prefix}_")
        if kind is None:
            raise KeyError(f"{column!r} is not an SVI column (prefixes: {list(self.columns)})")
        if stem in ("THEMES", "TOTAL"):
            source, variables = self.overall, self.variables
        elif stem.startswith("THEME"):
            source = self.theme(int(stem.removeprefix("THEME")))
            variables = tuple(self.variable(m) for m in source.members)
        else:
            source = self.variable(stem)
            variables = (source,)
        proxies = sorted({p for v in variables for p in v.proxy_for} - {"none"}) or ["none"]
        roles = {v.fairness_role for v in variables}
        role = roles.pop() if len(roles) == 1 else "model_input"
        return {**source.model_dump(include=set(_Equity.model_fields)), **kind.model_dump(),
                "proxy_for": tuple(proxies), "fairness_role": role}


def _vocabulary_problems(cat: SviCatalog) -> list[str]:
    shared = load_catalog()
    vocab = shared.vocabularies
    problems = [f"{v.name}.proxy_for has {p!r}" for v in cat.variables for p in v.proxy_for
                if p not in vocab["proxy_for"]]
    problems += [f"{v.name}.fairness_role={v.fairness_role!r}" for v in cat.variables
                 if v.fairness_role not in vocab["fairness_role"]]
    for item in (*cat.variables, *cat.themes, cat.overall):
        problems += [f"{getattr(item, 'name', 'overall')}.{key}={getattr(item, key)!r}"
                     for key in ("domain", "gravity_category", "direction")
                     if getattr(item, key) not in vocab[key]]
    problems += [f"columns.{p}.measure_type={k.measure_type!r}" for p, k in cat.columns.items()
                 if k.measure_type not in vocab["measure_type"]]
    if cat.measurement_level not in vocab["measurement_level"]:
        problems.append(f"measurement_level={cat.measurement_level!r}")
    if cat.method.missing_reason not in shared.missing_reasons:
        problems.append(f"method.missing_reason={cat.method.missing_reason!r} is not in missing_reasons.yaml")
    return problems


@cache
def load_svi_catalog(path: str | os.PathLike[str] | None = None) -> SviCatalog:
    """Load and check sdoh_sources/catalog/svi.yaml.

    Parameters
    ----------
    path
        A copy of the file to read instead (to check an edit before it replaces the file).

    Returns
    -------
    SviCatalog

    Raises
    ------
    CatalogError
        If the file breaks the schema or a value is outside the shared vocabularies.

    Examples
    --------
    >>> sorted(r.release for r in load_svi_catalog().releases)
    [2020, 2022]
    """
    cat = read_catalog_file("svi.yaml", SviCatalog, path=path)
    problems = _vocabulary_problems(cat)
    if problems:
        raise CatalogError("svi.yaml values outside their vocabularies:\n  " + "\n  ".join(problems))
    return cat


REFERENCE_LABELS = {"state": "within its state", "nation": "within the nation"}


def published_columns(cat: SviCatalog) -> list[str]:
    """The SVI columns the feature store serves: the 16 EPL_, 4 RPL_THEMEn, RPL_THEMES, F_TOTAL."""
    return ([f"EPL_{v.name}" for v in cat.variables] + [f"RPL_THEME{t.number}" for t in cat.themes]
            + ["RPL_THEMES", "F_TOTAL"])


def _label(cat: SviCatalog, column: str) -> str:
    stem = column.partition("_")[2]
    if column.startswith("EPL_"):
        return f"SVI percentile rank of: {cat.variable(stem).label}"
    if stem.startswith("THEME") and stem != "THEMES":
        return f"SVI theme {stem[-1]} percentile rank: {cat.theme(int(stem[-1])).label}"
    if column == "F_TOTAL":
        return "SVI flags: variables ranked at or above the 90th percentile"
    return cat.overall.label


def svi_source(reference: str) -> Source:
    """The published SVI columns ranked within ``reference`` ("state" or "nation") as measures.

    Measure names carry the reference area (``svi_state_rpl_themes``), because a rank within a
    state and one within the nation are different features; ``column`` is CDC's name.

    Examples
    --------
    >>> m = svi_source("state").measure("svi_state_epl_minrty")
    >>> m.column, m.fairness_role, m.proxy_for
    ('EPL_MINRTY', 'stratifier_only', ('ethnicity', 'race'))
    """
    if reference not in REFERENCE_LABELS:
        raise CatalogError(f"SVI features are published ranked within {list(REFERENCE_LABELS)}, "
                           f"not {reference!r}")
    cat = load_svi_catalog()
    measures = []
    for column in published_columns(cat):
        equity = cat.equity(column)
        top = len(cat.variables) if column == "F_TOTAL" else 1
        measures.append(Measure(
            name=f"svi_{reference}_{column.lower()}", column=column, minimum=0, maximum=top,
            label=f"{_label(cat, column)} ({REFERENCE_LABELS[reference]})", **equity))
    return Source(source=cat.source, title=cat.title, publisher=cat.publisher, license=cat.license,
                  measurement_level=cat.measurement_level, measures=tuple(measures))
