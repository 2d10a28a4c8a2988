"""Typed, validated models of the catalog files."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

VARIABLE_PATTERN = r"^-?[BCSD][0-9A-Z]+_[0-9]{3}[A-Z]?$"


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


class Measure(EquityMetadata):
    """One SDOH measure: what it is computed from and what it means.

    Examples
    --------
    >>> from sdoh_sources import load_catalog
    >>> m = load_catalog().acs.measure("pct_below_poverty")
    >>> m.variables
    ('C17002_001', 'C17002_002', 'C17002_003')
    """

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    label: str
    universe: str | None = None
    numerator: tuple[Annotated[str, Field(pattern=VARIABLE_PATTERN)], ...] = ()
    denominator: tuple[Annotated[str, Field(pattern=VARIABLE_PATTERN)], ...] = ()
    levels: tuple[str, ...] = ()
    column: str | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        """The ACS variables (without E/M suffix) the measure reads, sorted."""
        return tuple(sorted({v.lstrip("-") for v in (*self.numerator, *self.denominator)}))

    @property
    def value_range(self) -> tuple[float | None, float | None]:
        """The range any published value must fall in."""
        if self.minimum is not None or self.maximum is not None:
            return self.minimum, self.maximum
        if self.measure_type == "percent":
            return 0.0, 100.0
        return 0.0, None


class Source(_Frozen):
    """A catalog file: one public source with its measures and shared metadata."""

    source: str
    title: str
    publisher: str
    license: str
    measurement_level: str
    dataset: str | None = None
    geography_level: str | None = None
    measures: tuple[Measure, ...]
    vintages: tuple[dict, ...] = ()
    suppression_codes: dict[str, str] = {}

    @field_validator("measures")
    @classmethod
    def _unique_names(cls, measures: tuple[Measure, ...]) -> tuple[Measure, ...]:
        names = [m.name for m in measures]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"measure names must be unique, repeated: {duplicated}")
        return measures

    def measure(self, name: str) -> Measure:
        """Return the measure called ``name``."""
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(f"{self.source} has no measure {name!r}; it has {[m.name for m in self.measures]}")

    def measures_at(self, level: str) -> tuple[Measure, ...]:
        """The measures published at a geography level."""
        return tuple(m for m in self.measures if not m.levels or level in m.levels)
