"""Typed, validated models of the catalog files."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from sdoh_sources.acs_tables import acs_dataset

# A signed ACS variable without its E/M suffix: detailed (B19013_001, C17002_002, B01001A_001),
# subject (S2701_C05_001) or data profile (DP02_0072 a count, DP02_0072P a percent).
VARIABLE_PATTERN = (r"^-?(?:[BC]\d{5}[A-Z]{0,2}_\d{3}"
                    r"|S\d{4}[A-Z]{0,2}_C\d{2}_\d{3}"
                    r"|DP0[2-5](?:PR)?_\d{4}P?)$")
# A percent the API publishes directly (estimate and MOE in percent, 0-100): a subject table
# percent column or a data profile percent, whose API names end in PE/PM.
PERCENT_PATTERN = r"^(?:S\d{4}[A-Z]{0,2}_C\d{2}_\d{3}|DP0[2-5](?:PR)?_\d{4}P)$"
# The API dataset of each table family; subject and profile tables stop at the tract.
TRACT_AND_ABOVE = ("acs/acs5/subject", "acs/acs5/profile")

Variable = Annotated[str, Field(pattern=VARIABLE_PATTERN)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Release(_Frozen):
    """One published vintage of a source: when it became public and on which boundaries."""

    vintage: int
    release_date: dt.date
    boundary_vintage: int
    period: str | None = None
    note: str | None = None

    @property
    def release_ts(self) -> dt.datetime:
        """The release instant: 00:00 UTC of the release day."""
        return dt.datetime.combine(self.release_date, dt.time(), tzinfo=dt.UTC)


class EquityMetadata(_Frozen):
    """The per-measure equity keys of DESIGN.md section 4 that a catalog entry states."""

    domain: str
    gravity_category: str = "none"
    measure_type: str
    unit: str
    direction: str
    proxy_for: tuple[str, ...] = ("none",)
    fairness_role: str = "model_input"
    known_biases: str
    intended_use: str
    prohibited_use: str


class Formula(_Frozen):
    """How a measure is computed from ACS variables.

    Three kinds: a ``total`` (sum of signed ``numerator`` terms, e.g. a count or a median), a
    ``ratio`` (100 * numerator / denominator; a leading "-" subtracts a term, on either side)
    and a ``published_percent`` (the API's own percent and its MOE, taken as they are).

    Examples
    --------
    >>> Formula(percent="DP02_0072P").kind, Formula(numerator=("B25003_003",),
    ...                                             denominator=("B25003_001",)).kind
    ('published_percent', 'ratio')
    """

    numerator: tuple[Variable, ...] = ()
    denominator: tuple[Variable, ...] = ()
    percent: Annotated[str, Field(pattern=PERCENT_PATTERN)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Formula:
        if self.percent is not None and (self.numerator or self.denominator):
            raise ValueError(f"a published percent ({self.percent}) takes no numerator or denominator")
        if self.denominator and not self.numerator:
            raise ValueError(f"a denominator {list(self.denominator)} needs a numerator")
        return self

    @property
    def kind(self) -> str:
        """``published_percent``, ``ratio``, ``total`` or ``none`` (no variables)."""
        if self.percent is not None:
            return "published_percent"
        if self.denominator:
            return "ratio"
        return "total" if self.numerator else "none"

    @property
    def variables(self) -> tuple[str, ...]:
        """The ACS variables (without E/M suffix) the formula reads, sorted."""
        terms = (*self.numerator, *self.denominator, *((self.percent,) if self.percent else ()))
        return tuple(sorted({v.lstrip("-") for v in terms}))


class VintageRule(Formula):
    """What a measure reads in a range of vintages where the current formula does not hold.

    ``first`` and ``last`` are inclusive ACS 5-year vintages (end years); either may be open.
    ``available: false`` says the measure has no verified variable in those vintages (the table
    is not published, or its layout differs), so every row gets the missing reason
    ``not_available_in_vintage``. Otherwise the rule's formula replaces the measure's own.
    ``evidence`` says where the codes were verified.
    """

    first: int | None = None
    last: int | None = None
    available: bool = True
    evidence: Annotated[str, Field(min_length=20)]

    @model_validator(mode="after")
    def _consistent(self) -> VintageRule:
        if self.first is not None and self.last is not None and self.first > self.last:
            raise ValueError(f"first vintage {self.first} is after last vintage {self.last}")
        if not self.available and self.kind != "none":
            raise ValueError("a rule with available: false lists no variables")
        if self.available and self.kind == "none":
            raise ValueError("a rule with available: true needs a numerator or a percent")
        return self

    def covers(self, vintage: int) -> bool:
        """Whether the rule applies to ``vintage``."""
        return (self.first is None or vintage >= self.first) and (self.last is None or vintage <= self.last)

    @property
    def span(self) -> str:
        """The vintages covered, e.g. ``..2018`` or ``2019..2019``."""
        return f"{self.first or ''}..{self.last or ''}"


class Measure(EquityMetadata, Formula):
    """One SDOH measure: what it is computed from (per vintage) and what it means.

    The measure's own ``numerator``/``denominator``/``percent`` is its formula in the latest
    vintages; ``by_vintage`` rules replace it where codes differ or the table is absent.

    Examples
    --------
    >>> from sdoh_sources import load_catalog
    >>> m = load_catalog().acs.measure("pct_below_poverty")
    >>> m.variables
    ('C17002_001', 'C17002_002', 'C17002_003')
    >>> load_catalog().acs.measure("pct_disability").variables_for(2018)
    ('DP02_0071P',)
    """

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    label: str
    universe: str | None = None
    by_vintage: tuple[VintageRule, ...] = ()
    levels: tuple[str, ...] = ()
    column: str | None = None
    minimum: float | None = None
    maximum: float | None = None

    @model_validator(mode="after")
    def _vintage_rules_fit(self) -> Measure:
        rules = sorted(self.by_vintage, key=lambda r: (r.first or 0, r.last or 9999))
        for before, after in zip(rules, rules[1:], strict=False):
            if before.last is None or after.first is None or after.first <= before.last:
                raise ValueError(f"{self.name}: vintage rules {before.span} and {after.span} overlap")
        for rule in self.by_vintage:
            if rule.available and self.kind != "none" and rule.kind != self.kind:
                raise ValueError(f"{self.name}: the rule for {rule.span} is a {rule.kind} but the "
                                 f"measure is a {self.kind}; published columns must mean the same")
        return self

    @model_validator(mode="after")
    def _levels_fit_datasets(self) -> Measure:
        narrow = [v for v in self.variables if acs_dataset(v) in TRACT_AND_ABOVE]
        if narrow and "block_group" in self.levels:
            raise ValueError(f"{self.name}: subject and data profile tables ({narrow}) are not "
                             "published at block group; drop block_group from levels")
        return self

    @property
    def formulas(self) -> tuple[Formula, ...]:
        """The measure's own formula, then those of its vintage rules."""
        own = Formula(numerator=self.numerator, denominator=self.denominator, percent=self.percent)
        return (own, *(r for r in self.by_vintage if r.available))

    def formula(self, vintage: int) -> Formula | None:
        """The formula in force in ``vintage``, or None where the measure is not available.

        Examples
        --------
        >>> from sdoh_sources import load_catalog
        >>> load_catalog().acs.measure("pct_no_internet_subscription").formula(2016) is None
        True
        """
        for rule in self.by_vintage:
            if rule.covers(vintage):
                return rule if rule.available else None
        return self.formulas[0]

    def variables_for(self, vintage: int) -> tuple[str, ...]:
        """The ACS variables the measure reads in ``vintage`` (empty where not available)."""
        formula = self.formula(vintage)
        return formula.variables if formula is not None else ()

    @property
    def variables(self) -> tuple[str, ...]:
        """Every ACS variable (without E/M suffix) the measure reads in any vintage, sorted."""
        return tuple(sorted({v for f in self.formulas for v in f.variables}))

    @property
    def value_range(self) -> tuple[float | None, float | None]:
        """The range any published value must fall in."""
        if self.minimum is not None or self.maximum is not None:
            return self.minimum, self.maximum
        if self.measure_type == "percent":
            return 0.0, 100.0
        return 0.0, None


def apply_defaults(data: Any) -> Any:
    """A catalog file's ``defaults`` fill every measure's missing keys.

    Examples
    --------
    >>> apply_defaults({"defaults": {"unit": "percent"}, "measures": [{"name": "a"}]})
    {'measures': [{'unit': 'percent', 'name': 'a'}]}
    """
    if not (isinstance(data, dict) and "defaults" in data):
        return data
    defaults, measures = data["defaults"], data.get("measures")
    if not isinstance(defaults, dict):
        raise ValueError(f"defaults must be a mapping, got {defaults!r:.60}")
    rest = {k: v for k, v in data.items() if k != "defaults"}
    if isinstance(measures, list | tuple):
        rest["measures"] = [{**defaults, **m} if isinstance(m, dict) else m for m in measures]
    return rest


class MeasuresFile(_Frozen):
    """A catalog file of measures: its ``defaults`` fill each measure; measure names are unique.

    Examples
    --------
    >>> class Example(MeasuresFile):
    ...     measures: tuple[dict, ...]
    >>> Example.model_validate({"defaults": {"unit": "%"}, "measures": [{"name": "a"}]}).measures
    ({'unit': '%', 'name': 'a'},)
    """

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        return apply_defaults(data)

    @field_validator("measures", check_fields=False)
    @classmethod
    def _unique_names(cls, measures: tuple[Any, ...]) -> tuple[Any, ...]:
        names = [m["name"] if isinstance(m, dict) else m.name for m in measures]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"measure names must be unique, repeated: {repeated}")
        return measures


class Source(MeasuresFile):
    """A catalog file: one public source with its measures and shared metadata."""

    source: str
    title: str
    publisher: str
    license: str
    measurement_level: str
    dataset: str | None = None
    geography_level: str | None = None
    measures: tuple[Measure, ...]

    def measure(self, name: str) -> Measure:
        """Return the measure called ``name``."""
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(f"{self.source} has no measure {name!r}; it has {[m.name for m in self.measures]}")

    def measures_at(self, level: str) -> tuple[Measure, ...]:
        """The measures published at a geography level.

        ZCTAs and states get every table published at tract, so a measure listed at tract is
        published for them too.
        """
        wanted = "tract" if level in ("zcta", "state") else level
        return tuple(m for m in self.measures if not m.levels or wanted in m.levels)

    def variables_for(self, level: str, vintage: int) -> tuple[str, ...]:
        """Every ACS variable the measures at ``level`` read in ``vintage``, sorted.

        Examples
        --------
        >>> from sdoh_sources import load_catalog
        >>> "B28002_013" in load_catalog().acs.variables_for("tract", 2016)
        False
        """
        return tuple(sorted({v for m in self.measures_at(level) for v in m.variables_for(vintage)}))


class ReleaseCalendar(RootModel[dict[str, tuple[Release, ...]]]):
    """release_calendar.yaml: each source's releases, oldest first."""

    model_config = ConfigDict(frozen=True)


class Vocabularies(_Frozen):
    """vocabularies.yaml: the allowed values of each controlled metadata key."""

    domain: tuple[str, ...] = Field(min_length=1)
    gravity_category: tuple[str, ...] = Field(min_length=1)
    measurement_level: tuple[str, ...] = Field(min_length=1)
    measure_type: tuple[str, ...] = Field(min_length=1)
    direction: tuple[str, ...] = Field(min_length=1)
    proxy_for: tuple[str, ...] = Field(min_length=1)
    fairness_role: tuple[str, ...] = Field(min_length=1)
    geography_level: tuple[str, ...] = Field(min_length=1)


class Reliability(_Frozen):
    """The CV bounds of each reliability rule, and the rule used when none is asked for."""

    default_rule: str
    rules: dict[str, dict[Literal["high", "medium"], float]]

    @model_validator(mode="after")
    def _default_is_a_rule(self) -> Reliability:
        if self.default_rule not in self.rules:
            raise ValueError(f"default_rule {self.default_rule!r} is not one of {sorted(self.rules)}")
        return self


class MissingReasons(_Frozen):
    """missing_reasons.yaml: the typed missing reasons and what Census annotations mean."""

    reasons: dict[str, str]
    census_estimate_annotations: dict[int, str]
    census_moe_annotations: dict[int, Literal["unknown", "zero"]]
    reliability: Reliability

    @model_validator(mode="after")
    def _annotations_are_reasons(self) -> MissingReasons:
        unknown = sorted(set(self.census_estimate_annotations.values()) - set(self.reasons))
        if unknown:
            raise ValueError(f"census_estimate_annotations map to reasons {unknown} that are "
                             "not under reasons")
        return self
