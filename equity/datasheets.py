"""Datasheets for feature views and services, in Markdown and HTML, from tags and published data.

A datasheet says what a reader needs before using features: sources and licences, vintages and
release dates, geography and boundary vintages, each measure with its MOE column and the
distribution of its reliability classes, coverage and missing reasons, known biases, proxies for
protected attributes, and intended and prohibited uses. Metadata come from the fields' tags
(DESIGN.md section 4); every number comes from the published parquet files the view reads.

Examples
--------
>>> import tempfile
>>> from equity.datasheets import write_datasheets
>>> [p.name for p in write_datasheets(ws, ["acs_tract"], out=tempfile.mkdtemp())]
['acs_tract.md', 'acs_tract.html']
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
from feast import FeatureService, FeatureView, Field

from equity.feature_catalog import (
    feature_definitions,
    measure_of,
    published_columns,
    published_present_counts,
    published_value_counts,
)
from feature_repo.definitions.metadata import tag_values
from ingestion.core.datasets import RELIABILITY_CLASSES
from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace

FORMATS = ("md", "html")
TOP_REASONS = 3
# Columns that explain another column rather than measure something themselves.
COMPANION_TYPES = ("moe", "cv", "reliability_class", "missing_reason")


@dataclass(frozen=True)
class Table:
    """A table of text cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Section:
    """A titled part of a datasheet: paragraphs, then an optional table."""

    title: str
    level: int = 2
    text: tuple[str, ...] = ()
    table: Table | None = None


@dataclass(frozen=True)
class Datasheet:
    """One feature view's or feature service's datasheet, ready to render."""

    name: str
    kind: str  # "feature view" or "feature service"
    sections: tuple[Section, ...]


def _percent(part: int, whole: int) -> str:
    return f"{part:,} ({part / whole:.1%})" if whole else f"{part:,}"


def _by_keys(fields: Sequence[Field], keys: Sequence[str]) -> dict[tuple[str, ...], list[str]]:
    """The fields' names grouped by their values of ``keys``, in first-seen order."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for f in fields:
        groups.setdefault(tuple(f.tags.get(k, "") for k in keys), []).append(f.name)
    return groups


def _grouped(measures: Sequence[Field], key: str) -> Table:
    """Each distinct value of a tag, with the measures carrying it."""
    return Table((key, "measures"), tuple((value, ", ".join(names))
                                          for (value,), names in _by_keys(measures, (key,)).items()))


def _measures(fields: Sequence[Field], names: Collection[str]) -> list[Field]:
    """The field of each measure (the value, not its MOE, CV, class or reason), in order."""
    by_measure = {measure_of(f.name, names): f for f in reversed(fields)
                  if f.tags.get("measure_type") != "missing_reason"}
    return [by_measure[m] for m in dict.fromkeys(measure_of(f.name, names) for f in fields)
            if m in by_measure]


def _reason_column(measure: Field, view: FeatureView, available: Collection[str]) -> str | None:
    """``<measure>_missing``, else for a GEOID the view's single missing-reason field (linkage)."""
    if f"{measure.name}_missing" in available:
        return f"{measure.name}_missing"
    if measure.tags.get("measure_type") != "identifier":
        return None
    reasons = [f.name for f in view.features if f.tags.get("measure_type") == "missing_reason"
               and f.name in available]
    return reasons[0] if len(reasons) == 1 else None


def _tag_union(fields: Sequence[Field], key: str) -> str:
    """Every value a tag takes over ``fields``, sorted: ``2010,2020`` ("none" only alone)."""
    values = {v for f in fields for v in tag_values(f.tags, key)} - {"none", ""}
    return ",".join(sorted(values)) or "none"


def _vintage_section(view: FeatureView, fields: Sequence[Field], available: Collection[str], *,
                     level: int) -> Section:
    text = (f"Geography level: {_tag_union(fields, 'geography_level')}. Boundary vintages: "
            f"{_tag_union(fields, 'boundary_vintage')}. Vintages: {_tag_union(fields, 'vintage')}; "
            f"release dates: {_tag_union(fields, 'release_date')}.",)
    if not {"vintage", "release_ts", "boundary_year"} <= set(available):
        return Section("Vintages, release dates and boundaries", level, text)
    synthetic = "count(*) FILTER (WHERE synthetic)" if "synthetic" in available else "0"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(
            f"SELECT vintage, strftime(release_ts, '%Y-%m-%d'), boundary_year, count(*), {synthetic} "
            "FROM read_parquet(?) GROUP BY ALL ORDER BY 1", [view.batch_source.path]).fetchall()
    table = Table(("vintage", "release date (event time)", "boundary vintage", "rows", "synthetic rows"),
                  tuple((str(v), day, str(b), f"{n:,}", f"{synth:,}") for v, day, b, n, synth in rows))
    return Section("Vintages, release dates and boundaries", level, text, table)


def _missing_reasons(view: FeatureView, reasons: Mapping[str, str]) -> dict[str, list[tuple[str, int]]]:
    """Per measure, its commonest reasons among the published rows without a value."""
    if not reasons:
        return {}
    parts = " UNION ALL ".join(
        f"SELECT '{m}' AS measure, CAST(\"{c}\" AS VARCHAR) AS reason, count(*) AS n FROM src "
        f"WHERE \"{m}\" IS NULL AND \"{c}\" IS NOT NULL GROUP BY ALL" for m, c in reasons.items())
    with duckdb.connect() as con:
        rows = con.execute(f"WITH src AS (SELECT * FROM read_parquet(?)) {parts} "
                           "ORDER BY measure, n DESC, reason", [view.batch_source.path]).fetchall()
    found: dict[str, list[tuple[str, int]]] = {}
    for measure, reason, n in rows:
        found.setdefault(measure, []).append((reason, n))
    return found


def _measure_sections(view: FeatureView, measures: Sequence[Field], available: Collection[str],
                      *, level: int) -> list[Section]:
    """Reliability classes per measure and coverage per measure, from the published data."""
    names = [f.name for f in measures if f.name in available]
    reliability = {m: f"{m}_reliability" for m in names if f"{m}_reliability" in available}
    # Publisher measures: an MOE (from the publisher's MOE or interval) without classes.
    published_moe = {f.name: f.tags["moe_feature"] for f in measures if f.name in available
                     and f.name not in reliability and f.tags.get("moe_feature") in available}
    present = published_present_counts(view, names + list(published_moe.values()))
    counts = published_value_counts(view, list(reliability.values()))
    by_column = {c: dict(zip(g["value"], g["rows"], strict=True)) for c, g in counts.groupby("column")}
    reasons = _missing_reasons(view, {f.name: c for f in measures if f.name in available
                                      and (c := _reason_column(f, view, available))})
    quality = tuple(
        (f.name, f.tags.get("moe_feature", "none"),
         *(_percent(by_column.get(reliability[f.name], {}).get(c, 0), present[f.name])
           for c in RELIABILITY_CLASSES))
        for f in measures if f.name in reliability)
    coverage = tuple(
        (m, f"{present['*']:,}", _percent(present[m], present["*"]),
         "; ".join(f"{reason}: {n:,}" for reason, n in reasons.get(m, [])[:TOP_REASONS]) or "none")
        for m in names)
    rules = sorted({f.tags.get("reliability_rule", "") for f in measures if f.name in reliability})
    uncertainty = tuple(
        (f.name, moe, _percent(present[moe], present[f.name]), f.tags.get("reliability_rule", ""))
        for f in measures if (moe := published_moe.get(f.name)))
    publisher = [Section("Uncertainty as the publisher gives it", level,
                         ("Measures whose publisher gives an MOE or a confidence interval: the "
                          "90% MOE column, the share of rows with a value that have one, and how "
                          "it was derived.",),
                         Table(("measure", "MOE column", "rows with an MOE", "derivation"),
                               uncertainty))] if uncertainty else []
    return [
        *publisher,
        Section("Measures, MOE and reliability", level,
                ("Each measure's 90% margin of error column and its reliability classes over the "
                 "published rows with an estimate (count and share). Rule: " + "; ".join(rules) + "."
                 if quality else "No measure of this view has reliability classes (published "
                 "ranks, publisher values or linkage fields).",),
                Table(("measure", "MOE column", *RELIABILITY_CLASSES), quality) if quality else None),
        Section("Coverage", level,
                ("Share of published rows with a value, and the commonest typed reasons among the "
                 "rows without one.",),
                Table(("measure", "rows", "with a value", f"top {TOP_REASONS} missing reasons"),
                      coverage)),
    ]


def view_sections(view: FeatureView, *, features: Collection[str] | None = None,
                  level: int = 2) -> list[Section]:
    """The sections describing a view, or only the ``features`` of it a service selects.

    Examples
    --------
    >>> [s.title for s in view_sections(store.get_feature_view("acs_tract"))][:2]
    ['Overview', 'Sources and licences']
    """
    fields = [f for f in view.features if features is None or f.name in features]
    names = {f.name for f in view.features}
    measures = _measures(fields, names)
    available = published_columns(view)
    proxies = [f for f in measures if f.tags.get("proxy_for", "none") != "none"]
    return [
        Section("Overview", level, (
            view.description, f"Owner: {view.owner}. Keyed by: {', '.join(view.entities)}. "
            f"{len(fields)} fields ({len(measures)} measures). Published data: "
            f"`{view.batch_source.path}`.")),
        Section("Sources and licences", level, table=Table(
            ("source", "measurement level", "licence", "measures"),
            tuple((*key, ", ".join(ms)) for key, ms in _by_keys(
                measures, ("source", "measurement_level", "license")).items()))),
        _vintage_section(view, fields, available, level=level),
        *_measure_sections(view, measures, available, level=level),
        Section("Proxies for protected attributes", level,
                ("Measures that proxy race, color, national origin, sex, age or disability "
                 "(45 CFR 92.210), with the role they may play in a model.",) if proxies else
                ("No measure of this view is tagged as a proxy for a protected attribute.",),
                Table(("measure", "proxy_for", "fairness_role"),
                      tuple((f.name, f.tags["proxy_for"], f.tags["fairness_role"]) for f in proxies))
                if proxies else None),
        Section("Known biases", level, table=_grouped(measures, "known_biases")),
        Section("Intended use", level, table=_grouped(measures, "intended_use")),
        Section("Prohibited use", level, table=_grouped(measures, "prohibited_use")),
    ]


def view_datasheet(view: FeatureView) -> Datasheet:
    """The datasheet of one feature view.

    Examples
    --------
    >>> view_datasheet(store.get_feature_view("acs_tract")).kind
    'feature view'
    """
    return Datasheet(view.name, "feature view", tuple(view_sections(view)))


def service_datasheet(service: FeatureService, views: Sequence[FeatureView]) -> Datasheet:
    """The datasheet of a feature service: its views, each limited to the features it serves.

    Examples
    --------
    >>> service = store.get_feature_service("equity_audit_v1")
    >>> service_datasheet(service, store.list_feature_views()).sections[0].title
    'Overview'
    """
    by_name = {v.name: v for v in views}
    projections = service.feature_view_projections
    overview = Section("Overview", 2, (
        service.description, f"Owner: {service.owner}. Tags: "
        + ", ".join(f"{k}={v}" for k, v in sorted(service.tags.items())) + "."),
        Table(("feature view", "features served"),
              tuple((p.name, f"{len(p.features):,}") for p in projections)))
    sections = [overview]
    for p in projections:
        sections.append(Section(f"Feature view {p.name}", 2))
        sections += view_sections(by_name[p.name], features={f.name for f in p.features}, level=3)
    return Datasheet(service.name, "feature service", tuple(sections))


def _markdown_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def to_markdown(sheet: Datasheet) -> str:
    """A datasheet as Markdown.

    Examples
    --------
    >>> print(to_markdown(Datasheet("x", "feature view", (Section("Overview", 2, ("Hi.",)),))))
    # Datasheet: x (feature view)
    <BLANKLINE>
    ## Overview
    <BLANKLINE>
    Hi.
    <BLANKLINE>
    """
    lines = [f"# Datasheet: {sheet.name} ({sheet.kind})", ""]
    for s in sheet.sections:
        lines += ["#" * s.level + " " + s.title, ""]
        lines += [line for paragraph in s.text for line in (paragraph, "")]
        if s.table is not None:
            lines.append("| " + " | ".join(s.table.columns) + " |")
            lines.append("|" + "---|" * len(s.table.columns))
            lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in s.table.rows]
            lines.append("")
    return "\n".join(lines)


def to_html(sheet: Datasheet) -> str:
    """A datasheet as a standalone HTML page (every text escaped).

    Examples
    --------
    >>> "<h2>Overview</h2>" in to_html(Datasheet("x", "feature view", (Section("Overview"),)))
    True
    """
    e = html.escape
    title = f"Datasheet: {sheet.name} ({sheet.kind})"
    body = [f"<h1>{e(title)}</h1>"]
    for s in sheet.sections:
        body.append(f"<h{s.level}>{e(s.title)}</h{s.level}>")
        body += [f"<p>{e(paragraph)}</p>" for paragraph in s.text]
        if s.table is not None:
            head = "".join(f"<th>{e(c)}</th>" for c in s.table.columns)
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                           for row in s.table.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}"
            f"</title><style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def datasheets(workspace: Workspace, names: Sequence[str] | None = None, *,
               profile: str | None = None) -> list[Datasheet]:
    """The datasheets of the named feature views and services (default all of them).

    Definitions come from the Feast registry if applied, else from those built for what is
    published (`equity.feature_catalog.feature_definitions`).

    Raises
    ------
    InputError
        If a name is neither a feature view nor a feature service.

    Examples
    --------
    >>> [d.name for d in datasheets(ws, ["acs_tract"])]
    ['acs_tract']
    """
    views, services = feature_definitions(workspace, profile=profile)
    known = {v.name: v for v in views} | {s.name: s for s in services}
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise InputError(f"unknown feature views or services {unknown}; choose from {sorted(known)}")
    return [service_datasheet(obj, views) if isinstance(obj, FeatureService) else view_datasheet(obj)
            for obj in (known[n] for n in names or known)]


def write_datasheets(workspace: Workspace, names: Sequence[str] | None = None, *, out: str | Path,
                     formats: Sequence[str] = FORMATS, profile: str | None = None) -> list[Path]:
    """Write ``<out>/<name>.md`` and/or ``.html`` for the named views and services (default all).

    Parameters
    ----------
    workspace : Workspace
        The workspace whose definitions and published data are described.
    names : sequence of str, optional
        Feature views or services; default every one.
    out : str or Path
        Folder to write into (created if needed).
    formats : sequence of {"md", "html"}, default both
        Output formats.
    profile : str, optional
        Feast profile; default the ``SDOH_PROFILE`` setting, else embedded.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    InputError
        If a name or format is unknown.

    Examples
    --------
    >>> import tempfile
    >>> [p.name for p in write_datasheets(ws, ["equity_audit_v1"], out=tempfile.mkdtemp(), formats=["md"])]
    ['equity_audit_v1.md']
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(f"unknown datasheet formats {bad}; choose from {list(FORMATS)}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    render = {"md": to_markdown, "html": to_html}
    written = []
    for sheet in datasheets(workspace, names, profile=profile):
        for fmt in formats:
            path = folder / f"{sheet.name}.{fmt}"
            path.write_text(render[fmt](sheet), encoding="utf-8")
            written.append(path)
    return written

