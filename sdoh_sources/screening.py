"""Screened social needs as data: sdoh_sources/catalog/screening.yaml, validated.

The file lists the screened domains (food insecurity, housing instability, ...) with their
look-back and equity metadata; per instrument (PRAPARE, Hunger Vital Sign, AHC-HRSN) the LOINC
items that screen a domain and which answers (LOINC LA codes or answer texts) are positive,
negative or declined; and the SDOH Condition codes (ICD-10-CM prefixes, SNOMED CT findings)
that make a domain positive. Every mapping names its citation. `ingestion.derive.screening`
turns answers and conditions into domain states with it.

Examples
--------
>>> catalog = load_screening_catalog()
>>> catalog.domain_names[:2]
('food_insecurity', 'housing_instability')
>>> catalog.instrument("hunger vital sign").name, catalog.instrument("96777-8").name
('HVS', 'AHC-HRSN')
>>> item = catalog.instrument("PRAPARE").item("93033-9")
>>> item.answer("LA33-6", None).state, item.answer(None, "I choose not to answer this question").state
('positive', 'declined')
>>> catalog.condition_domain("http://hl7.org/fhir/sid/icd-10-cm", "Z59.41")
'food_insecurity'
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdoh_sources._models import Vocabularies
from sdoh_sources.catalog import CatalogError, read_catalog_file

__all__ = [
    "SCREENING_STATES", "Answer", "ConditionCode", "Domain", "Instrument", "Item",
    "ScreeningCatalog", "answer_key", "load_screening_catalog",
]

CATALOG_FILE = "screening.yaml"
#: The states of a domain: the three an answer can give, and the one before any answer.
SCREENING_STATES = ("positive", "negative", "declined", "not_screened")
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Loinc = Annotated[str, Field(pattern=r"^\d{1,7}-\d$")]
AnswerCode = Annotated[str, Field(pattern=r"^LA\d{1,6}-\d$")]
Citation = Annotated[str, Field(min_length=20)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def answer_key(text: str) -> str:
    """How answer texts are compared: lower case, commas as spaces, single spaces.

    Synthea writes the commas inside values as spaces, so both spellings must meet.

    Examples
    --------
    >>> answer_key("Yes, it has  kept me") == answer_key("yes  it has kept me")
    True
    """
    return " ".join(text.replace(",", " ").lower().split())


class Equity(_Frozen):
    """The equity metadata every screened domain shares (DESIGN.md section 4)."""

    measurement_level: str
    geography_level: str
    measure_type: str
    unit: str
    direction: str
    proxy_for: tuple[str, ...] = Field(min_length=1)
    fairness_role: str
    known_biases: str = Field(min_length=20)
    intended_use: str = Field(min_length=20)
    prohibited_use: str = Field(min_length=20)


class Domain(_Frozen):
    """One screened domain: its features' name stem, look-back and own metadata keys."""

    name: Name
    label: str
    lookback_days: int = Field(gt=0)
    domain: str
    gravity_category: str


class Answer(_Frozen):
    """A coded or text answer and the state it means, or its points in a summed score.

    ``domain`` says which domain a positive answer of a multi-domain item is for.
    """

    code: AnswerCode | None = None
    text: str | None = None
    state: Literal["positive", "negative", "declined"] | None = None
    points: int | None = None
    domain: Name | None = None

    @model_validator(mode="after")
    def _named(self) -> Answer:
        if self.code is None and self.text is None:
            raise ValueError("an answer needs a code or a text")
        if (self.state is None) == (self.points is None):
            raise ValueError(f"answer {self.code or self.text!r} needs a state or points, not both")
        return self


class Item(_Frozen):
    """A LOINC question, the domains it screens and its answers."""

    code: Loinc
    domains: tuple[Name, ...] = Field(min_length=1)
    answers: tuple[Answer, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _answers_fit(self) -> Item:
        codes = [a.code for a in self.answers if a.code]
        texts = [answer_key(a.text) for a in self.answers if a.text]
        twice = sorted({v for v in codes + texts if (codes + texts).count(v) > 1})
        if twice:
            raise ValueError(f"item {self.code}: answers listed twice: {twice}")
        for a in self.answers:
            if a.domain is not None and a.domain not in self.domains:
                raise ValueError(f"item {self.code}: answer {a.code or a.text!r} names domain "
                                 f"{a.domain!r}, not one of the item's {list(self.domains)}")
            if len(self.domains) > 1 and a.state in ("positive", None) and a.domain is None:
                raise ValueError(f"item {self.code} screens {list(self.domains)}: positive or scored "
                                 f"answer {a.code or a.text!r} must name its domain")
        if len({a.points is None for a in self.answers if a.state != "declined"}) > 1:
            raise ValueError(f"item {self.code}: give every answer points, or none")
        return self

    @property
    def scored(self) -> bool:
        """Whether the item's answers are points of a summed score."""
        return any(a.points is not None for a in self.answers)

    def answer(self, code: str | None, text: str | None) -> Answer | None:
        """The answer with LOINC ``code``, else the one with ``text``; None if neither is known."""
        for a in self.answers:
            if code and a.code == code:
                return a
        key = answer_key(text) if text else None
        for a in self.answers:
            if key and a.text and answer_key(a.text) == key:
                return a
        return None


class Instrument(_Frozen):
    """A screening instrument: its panel codes, other names, items and citation key."""

    name: str
    aliases: tuple[str, ...] = ()
    panels: tuple[Loinc, ...] = Field(min_length=1)
    citation: Name
    items: tuple[Item, ...] = Field(min_length=1)
    #: Per domain scored by points: the sum at or above which the domain is positive.
    positive_at_least: dict[Name, int] = {}

    @model_validator(mode="after")
    def _scores_have_thresholds(self) -> Instrument:
        summed = {d for item in self.items if item.scored for d in item.domains}
        if summed != set(self.positive_at_least):
            raise ValueError(f"{self.name}: domains scored by points {sorted(summed)} must be the "
                             f"keys of positive_at_least {sorted(self.positive_at_least)}")
        return self

    def item(self, code: str) -> Item | None:
        """The item with LOINC ``code``, or None."""
        return next((i for i in self.items if i.code == code), None)

    def called(self, label: str) -> bool:
        """Whether ``label`` (a name, alias or panel code, any case) names this instrument."""
        key = answer_key(label)
        return key in {answer_key(n) for n in (self.name, *self.aliases, *self.panels)}


class ConditionCode(_Frozen):
    """An SDOH Condition code (an ICD-10-CM prefix or a SNOMED CT code) and its domain."""

    system: Literal["icd10cm", "snomed"]
    code: Annotated[str, Field(pattern=r"^(?:[A-Z]\d{2}(?:\.[0-9A-Z]{1,4})?|\d{6,18})$")]
    domain: Name
    label: str
    citation: Name


class ScreeningCatalog(_Frozen):
    """screening.yaml: code systems, citations, shared metadata, domains, instruments, conditions."""

    systems: dict[Literal["loinc", "icd10cm", "snomed"], tuple[str, ...]]
    citations: dict[Name, Citation]
    equity: Equity
    domains: tuple[Domain, ...] = Field(min_length=1)
    instruments: tuple[Instrument, ...] = Field(min_length=1)
    conditions: tuple[ConditionCode, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self) -> ScreeningCatalog:
        names = self.domain_names
        problems = [f"domains: {n!r} listed twice" for n in sorted(set(names)) if names.count(n) > 1]
        for i, inst in enumerate(self.instruments):
            if inst.citation not in self.citations:
                problems.append(f"instruments.{i}.citation {inst.citation!r} is not under citations")
            codes = [item.code for item in inst.items]
            problems += [f"instruments.{i}: item {c} listed twice"
                         for c in sorted(set(codes)) if codes.count(c) > 1]
            problems += [f"instruments.{i}: item {item.code} screens unknown domain {d!r}"
                         for item in inst.items for d in item.domains if d not in names]
        keys = [(c.system, c.code) for c in self.conditions]
        for i, c in enumerate(self.conditions):
            if c.domain not in names:
                problems.append(f"conditions.{i}: unknown domain {c.domain!r}")
            if c.citation not in self.citations:
                problems.append(f"conditions.{i}.citation {c.citation!r} is not under citations")
            if keys.count((c.system, c.code)) > 1:
                problems.append(f"conditions.{i}: {c.system} {c.code} listed twice")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def domain_names(self) -> tuple[str, ...]:
        """The domains in file order (the order of the state table's columns)."""
        return tuple(d.name for d in self.domains)

    def domain(self, name: str) -> Domain:
        """The domain ``name``; `CatalogError` listing the known ones otherwise."""
        for d in self.domains:
            if d.name == name:
                return d
        raise CatalogError(f"no screened domain {name!r}; known: {', '.join(self.domain_names)}")

    def instrument(self, label: str) -> Instrument | None:
        """The instrument a name, alias or panel code means, or None."""
        return next((i for i in self.instruments if i.called(label)), None)

    def system(self, spelled: str | None) -> str | None:
        """``loinc``, ``icd10cm`` or ``snomed`` for a source's spelling of a system, or None."""
        key = (spelled or "").strip().lower()
        return next((name for name, spellings in self.systems.items()
                     if key in {s.lower() for s in spellings}), None)

    def condition_domain(self, system: str | None, code: str) -> str | None:
        """The domain of a Condition code (longest ICD-10-CM prefix, exact SNOMED), or None.

        Examples
        --------
        >>> catalog = load_screening_catalog()
        >>> [catalog.condition_domain("ICD-10-CM", c) for c in ("Z59.12", "Z59.19", "Z59.811")]
        ['utilities', None, 'housing_instability']
        >>> catalog.condition_domain("http://snomed.info/sct", "706893006")
        'interpersonal_safety'
        """
        kind = self.system(system)
        code = code.strip().upper()
        if kind == "icd10cm" and re.fullmatch(r"[A-Z]\d{3,}", code.replace(".", "")):
            code = code.replace(".", "")
            code = f"{code[:3]}.{code[3:]}"  # sources write Z5941 as well as Z59.41
        found = [c for c in self.conditions if c.system == kind
                 and (code.startswith(c.code) if kind == "icd10cm" else code == c.code)]
        return max(found, key=lambda c: len(c.code)).domain if found else None


def check_screening_vocabularies(catalog: ScreeningCatalog, vocabularies: Vocabularies) -> None:
    """Raise `CatalogError` naming every metadata value outside vocabularies.yaml."""
    e = catalog.equity
    checks = [("equity.measurement_level", e.measurement_level, vocabularies.measurement_level),
              ("equity.geography_level", e.geography_level, vocabularies.geography_level),
              ("equity.measure_type", e.measure_type, vocabularies.measure_type),
              ("equity.direction", e.direction, vocabularies.direction),
              ("equity.fairness_role", e.fairness_role, vocabularies.fairness_role),
              *((f"equity.proxy_for {p!r}", p, vocabularies.proxy_for) for p in e.proxy_for)]
    for i, d in enumerate(catalog.domains):
        checks += [(f"domains.{i}.domain", d.domain, vocabularies.domain),
                   (f"domains.{i}.gravity_category", d.gravity_category, vocabularies.gravity_category)]
    problems = [f"{where}={value!r}" for where, value, allowed in checks if value not in allowed]
    if problems:
        raise CatalogError("values outside their vocabularies:\n  " + "\n  ".join(problems))


@cache
def load_screening_catalog(path: str | os.PathLike[str] | None = None) -> ScreeningCatalog:
    """Load and check sdoh_sources/catalog/screening.yaml (or a copy of it at ``path``).

    Returns
    -------
    ScreeningCatalog

    Raises
    ------
    CatalogError
        The file breaks the schema, a reference does not resolve, a code is listed twice, or a
        metadata value is outside vocabularies.yaml; the message names the file and the field.

    Examples
    --------
    >>> load_screening_catalog().equity.measurement_level
    'individual'
    """
    catalog = read_catalog_file(CATALOG_FILE, ScreeningCatalog, path=path)
    where = str(path) if path is not None else f"sdoh_sources/catalog/{CATALOG_FILE}"
    try:
        check_screening_vocabularies(catalog, read_catalog_file("vocabularies.yaml", Vocabularies))
    except CatalogError as exc:
        raise CatalogError(f"{where}: {exc}") from exc
    return catalog
