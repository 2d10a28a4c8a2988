"""One self-contained HTML page of coverage gaps: the tables of `equity.coverage` and their plots.

`coverage_report` builds it (``sdoh coverage`` writes it) in reading order: a summary that
explains every feature no assessed row has (with the reasons the data gives), then the plots
(linkage funnel, per-subgroup heatmaps, adjusted odds ratios of missingness per headline
feature), then the tables behind them (funnel, each feature's coverage, the largest gap per
feature and attribute, the subgroup tables and odds ratios). Tables scroll inside their own
box, so a wide one never runs past the page. Figures are drawn with matplotlib's object API
(no pyplot state), laid out so no label is cut off, and embedded as base64 PNG, so the page can
be mailed or attached to a ticket as one file.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation

from equity import coverage, screening
from equity.rurality import RURALITY, add_rurality, ruca_column
from ingestion.core.errors import InputError
from sdoh_sources import load_catalog

__all__ = ["SUBGROUPS", "all_missing", "coverage_report", "funnel_figure", "headline_features",
           "heatmaps", "measure_columns", "odds_ratio_figure"]

logger = logging.getLogger(__name__)

#: Patient attributes a coverage report splits by (``age_band`` is derived from ``birth_date``).
# ``rurality`` is an event attribute: the frame carries it (`equity.rurality.add_rurality`).
SUBGROUPS = ("race_ethnicity", "preferred_language", "payer", "home_area", "rurality", "age_band",
             "sex")
#: The class of the box every table sits in; it scrolls sideways when the table is wider.
TABLE_BOX = "table-box"
_SUBGROUP_COLUMNS = ["by", "group", "n", "missing_rate", "missing_low", "missing_high",
                     "missing_diff", "missing_diff_low", "missing_diff_high", "missing_ratio",
                     "low_reliability_rate", "low_reliability_ratio", "top_missing_reasons"]
# Column names are long snake_case words: let headers break anywhere rather than widen tables.
_CSS = f"""body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:80em;padding:0 1em}}
.{TABLE_BOX}{{overflow-x:auto;max-width:100%;margin:.5em 0 1.5em}}
table{{border-collapse:collapse;font-size:.85em}}
td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right;vertical-align:top}}
th{{background:#eee;overflow-wrap:anywhere;min-width:4em}}
td{{max-width:30em;overflow-wrap:break-word}}
img{{max-width:100%;height:auto}}.note{{color:#555}}"""
_NO_VALUE_GREY = matplotlib.colormaps["OrRd"].with_extremes(bad="lightgrey")


def measure_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns of a training frame that carry a typed missing reason.

    Examples
    --------
    >>> measure_columns(pd.DataFrame(columns=["patient_id", "v__x", "v__x_missing", "v__vintage"]))
    ['v__x']
    """
    return [c for c in frame.columns if f"{c}_missing" in frame.columns]


def headline_features(overview: pd.DataFrame) -> list[str]:
    """Per feature view, its feature with the highest missing rate (ties: first listed).

    Parameters
    ----------
    overview
        A `coverage.coverage_table` over every feature with a single all-patients group.

    Returns
    -------
    list of str
        One ``<view>__<feature>`` per view, in the order views first appear.

    Examples
    --------
    >>> overview = pd.DataFrame({"feature": ["a__x", "a__y", "b__z"], "missing_rate": [.1, .3, .2]})
    >>> headline_features(overview)
    ['a__y', 'b__z']
    """
    view = overview["feature"].str.split("__").str[0]
    ranked = overview.assign(_view=view, _order=np.arange(len(overview)))
    worst = ranked.sort_values(["missing_rate", "_order"], ascending=[False, True])
    first_seen = {v: i for i, v in reversed(list(enumerate(view)))}
    chosen = worst.drop_duplicates("_view").assign(_first=lambda t: t["_view"].map(first_seen))
    return chosen.sort_values("_first")["feature"].tolist()


def coverage_report(
    frame: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    timeline: pd.DataFrame | None = None,
    rejects: pd.DataFrame | None = None,
    features: Sequence[str] | None = None,
    detail: Sequence[str] | None = None,
    by: Sequence[str] | None = None,
    unit: str = "event",
    title: str = "SDOH coverage report",
) -> str:
    """An HTML page of who lacks SDOH features, how often, why, and how reliable they are.

    Parameters
    ----------
    frame, patients
        As for `coverage.feature_coverage`.
    timeline
        The patient geography timeline, for the linkage funnel; None leaves it out.
    rejects
        The rejected rows of the linking run that made ``timeline`` (`sdoh link` writes them
        to ``address_rejects.csv``), counted in the funnel so its shares are of every input
        row; without them the funnel says that rejected rows are not counted.
    features
        Features of the overview; by default every column with a ``_missing`` companion.
    detail
        Features given subgroup tables, heatmap rows and odds ratios; by default
        `headline_features` of the overview.
    by
        Patient attributes to split by, default `SUBGROUPS`, or event attributes of ``frame``
        (``rurality``: added from the frame's RUCA codes, `equity.rurality.ruca_column`, when
        the frame carries them and neither table has it); attributes absent from both (and
        ``age_band`` without ``birth_date``) are skipped with a note.
    unit
        ``"event"`` or ``"patient"``, as for `coverage.feature_coverage`.
    title
        Page title.

    Returns
    -------
    str
        A complete HTML document with embedded PNG figures: sections ``summary``, ``plots``
        and ``tables``, in that order, then ``screening`` when the frame carries screened
        needs (``screened_needs__<domain>_state``): per domain, who is never screened by
        subgroup (`equity.screening.screening_coverage`, per patient) and, for food
        insecurity with the food-access flag in the frame, `equity.screening.needs_vs_area`.

    Raises
    ------
    InputError
        ``frame`` has no feature column with a missing reason, or a required column is
        absent.

    Examples
    --------
    >>> page = coverage_report(frame, patients, timeline=timeline)
    >>> [page.index(f"<section id='{s}'>") > 0 for s in ("summary", "plots", "tables")]
    [True, True, True]
    """
    features = list(features) if features is not None else measure_columns(frame)
    if not features:
        raise InputError("the frame has no feature column with a `<feature>_missing` companion; "
                         "pass a training frame from `sdoh training-frame`")
    everyone = patients.assign(all_patients="all")
    overview = coverage.coverage_table(frame, everyone, features=features, by="all_patients",
                                       unit=unit)
    detail = list(detail) if detail is not None else headline_features(overview)
    by = list(by) if by is not None else list(SUBGROUPS)
    if RURALITY in by and RURALITY not in frame and RURALITY not in patients and ruca_column(frame):
        frame = add_rurality(frame)  # real use: rurality from the RUCA codes the frame carries
    usable = [b for b in by if b in patients.columns or b in frame.columns
              or (b == "age_band" and "birth_date" in patients)]
    table = coverage.coverage_table(frame, patients, features=detail, by=usable, unit=unit)
    odds = {f: _odds_ratios(frame, patients, feature=f, by=usable, unit=unit) for f in detail}
    funnel = None if timeline is None else _funnel(timeline, rejects)
    summary = [_summary(frame, features, unit=unit, skipped=set(by) - set(usable)),
               _all_missing_section(frame, overview, unit=unit)]
    plots = [*([] if funnel is None else ["<h3>Linkage funnel</h3>", _image(funnel_figure(funnel))]),
             "<h3>Missing and low-reliability rates by subgroup</h3>", _image(heatmaps(table))]
    for feature in detail:
        plots += [f"<h3>Odds ratios of lacking <code>{html.escape(feature)}</code>, adjusted for "
                  "the other attributes</h3>", _odds_plot(odds[feature])]
    tables = [*([] if funnel is None else _funnel_tables(funnel, rejects)),
              *_overview_section(overview), *_gaps_section(table)]
    for feature in detail:
        tables += _feature_tables(table, odds[feature], feature=feature)
    body = [f"<h1>{html.escape(title)}</h1>",
            _section("summary", "Summary", summary), _section("plots", "Plots", plots),
            _section("tables", "Tables", tables)]
    if screening.screened_domains(frame):
        body.append(_section("screening", "Screened social needs",
                             _screening_section(frame, patients, by=usable)))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")


def _section(key: str, heading: str, parts: list[str]) -> str:
    return f"<section id='{key}'><h2>{heading}</h2>{''.join(parts)}</section>"


def _summary(frame: pd.DataFrame, features: list[str], *, unit: str, skipped: set[str]) -> str:
    note = f" Skipped attributes not in the patients table: {sorted(skipped)}." if skipped else ""
    return (f"<p>{len(frame):,} events of {frame['patient_id'].nunique():,} patients; "
            f"{len(features)} features assessed per {unit}. Rows whose reason is one of "
            f"{list(coverage.DEFAULT_EXCLUDED_REASONS)} are left out (the data did not exist yet). "
            "Intervals are Wilson 95% (rates), Newcombe 95% (differences) and Wald 95% (odds "
            "ratios); events of one patient are not independent, so per-event intervals are "
            f"too narrow.{html.escape(note)} Area features describe places, not persons.</p>")


def all_missing(frame: pd.DataFrame, overview: pd.DataFrame, *, unit: str = "event") -> pd.DataFrame:
    """Why each feature that no assessed row has is missing: its reasons, from the frame.

    Parameters
    ----------
    frame
        The training frame the overview was computed on.
    overview
        A `coverage.coverage_table` over the features, with a single all-patients group.
    unit
        ``"event"`` or ``"patient"``, as for the overview.

    Returns
    -------
    pandas.DataFrame
        One row per such feature and reason: ``feature``, ``reason``, ``rows``, ``share`` (of
        the assessed rows), ``description`` (the catalog's text for the reason) and ``areas``
        (distinct ``<view>__geoid`` values in the frame, None without that column: a lone
        area has no percentile rank within its reference area, for example).

    Examples
    --------
    >>> frame = pd.DataFrame({"patient_id": ["a", "b"], "event_timestamp": ["2021-01-01"] * 2,
    ...                       "v__x": [None, None], "v__x_missing": ["po_box", "svi_not_computed"],
    ...                       "v__geoid": [None, "99001"]})
    >>> overview = pd.DataFrame({"feature": ["v__x"], "n": [2], "covered": [0]})
    >>> all_missing(frame, overview)[["feature", "reason", "rows", "areas"]]
      feature            reason  rows  areas
    0    v__x            po_box     1      1
    1    v__x  svi_not_computed     1      1
    """
    empty = overview.loc[(overview["covered"] == 0) & (overview["n"] > 0), "feature"].tolist()
    columns = ["feature", "reason", "rows", "share", "description", "areas"]
    if not empty:
        return pd.DataFrame(columns=columns)
    reasons = coverage.missing_reasons_table(frame, features=empty, unit=unit)
    described = load_catalog().missing_reasons
    reasons["description"] = reasons["reason"].map(described)
    views = {f: f.split("__")[0] for f in empty}
    areas = {f: frame[f"{v}__geoid"].nunique() if f"{v}__geoid" in frame else None
             for f, v in views.items()}
    reasons["areas"] = reasons["feature"].map(areas)
    return reasons[columns].reset_index(drop=True)


def _all_missing_section(frame: pd.DataFrame, overview: pd.DataFrame, *, unit: str) -> str:
    reasons = all_missing(frame, overview, unit=unit)
    if reasons.empty:
        return "<p>Every feature has a value for some assessed row.</p>"
    # Features of one view usually share their reasons: explain each distinct set once.
    key = reasons.groupby("feature", sort=False).apply(
        lambda r: tuple(zip(r["reason"], r["rows"], strict=True)), include_groups=False)
    items = []
    for _, features in key.groupby(key, sort=False):
        names = features.index.tolist()
        rows = reasons[reasons["feature"] == names[0]]
        why = "; ".join(
            f"<code>{html.escape(r.reason)}</code> {r.rows:,} ({r.share:.0%})"
            + (f": {html.escape(str(r.description))}" if isinstance(r.description, str) else "")
            for r in rows.itertuples())
        areas = rows["areas"].iloc[0]
        view = html.escape(names[0].split("__")[0])
        where = ("" if pd.isna(areas)
                 else f" Its {unit}s fall in {int(areas):,} area(s) of <code>{view}</code>.")
        shown = ", ".join(f"<code>{html.escape(n)}</code>" for n in names)
        items.append(f"<li>{shown} ({len(names)} feature(s)): missing for every assessed "
                     f"{unit}. Reasons in the data: {why}.{where}</li>")
    return ("<h3>Features missing for every patient, and why</h3>"
            f"<ul class='all-missing'>{''.join(items)}</ul>")


def _funnel(timeline: pd.DataFrame, rejects: pd.DataFrame | None) -> pd.DataFrame:
    from ingestion.geo.linking import linkage_funnel

    return linkage_funnel(timeline, rejects=rejects)


def funnel_figure(funnel: pd.DataFrame) -> Figure:
    """Address history rows by linkage outcome, one labelled bar per outcome.

    Parameters
    ----------
    funnel
        A `ingestion.geo.linking.linkage_funnel` result (its ``all`` row is left out).

    Returns
    -------
    matplotlib.figure.Figure
        Laid out so that long outcome names are not cut off.

    Examples
    --------
    >>> funnel = pd.DataFrame({"outcome": ["all", "linked", "geocode_failed"],
    ...                        "address_periods": [10, 8, 2], "share_of_periods": [1, .8, .2]})
    >>> [t.get_text() for t in funnel_figure(funnel).axes[0].get_yticklabels()]
    ['linked', 'geocode_failed']
    """
    outcomes = funnel.set_index("outcome").drop(index="all")
    fig = Figure(figsize=(8, 0.35 * len(outcomes) + 1.2), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(outcomes.index, outcomes["address_periods"])
    ax.bar_label(bars, labels=[f"{n:,} ({s:.1%})" for n, s in
                               zip(outcomes["address_periods"], outcomes["share_of_periods"],
                                   strict=True)], padding=3, fontsize=8)
    ax.margins(x=0.2)  # room for the bar labels
    ax.invert_yaxis()
    ax.set(xlabel="input rows", title="Address history rows by linkage outcome")
    return fig


def _odds_ratios(frame: pd.DataFrame, patients: pd.DataFrame, *, feature: str,
                 by: list[str], unit: str) -> pd.DataFrame | str:
    """The adjusted odds ratios of lacking ``feature``, or why they cannot be estimated."""
    try:
        return coverage.missingness_odds_ratios(frame, patients, feature=feature, by=by, unit=unit)
    except InputError as exc:  # e.g. a feature no row lacks: say so and go on with the others
        logger.info("%s: no odds ratios: %s", feature, exc)
        return str(exc)


def _not_estimable(reason: str) -> str:
    return f"<p class='note'>Not estimable: {html.escape(reason)}</p>"


def _odds_plot(odds: pd.DataFrame | str) -> str:
    return _not_estimable(odds) if isinstance(odds, str) else _image(odds_ratio_figure(odds))


def _funnel_tables(funnel: pd.DataFrame, rejects: pd.DataFrame | None) -> list[str]:
    note = [] if rejects is not None else [
        "<p>Rejected input rows are not counted (no rejects were given): shares are of the "
        "accepted address periods only. Pass the linking run's rejects "
        "(<code>sdoh coverage --rejects address_rejects.csv</code>) to count every input row.</p>"]
    return ["<h3>Linkage funnel</h3>", *note, _table(funnel)]


def _overview_section(overview: pd.DataFrame) -> list[str]:
    shown = overview[["feature", "n", "covered", "coverage", "coverage_low", "coverage_high",
                      "low_reliability_rate", "low_reliability_low", "low_reliability_high",
                      "top_missing_reasons"]]
    return ["<h3>Coverage and low-reliability share of every feature</h3>", _table(shown)]


def _gaps_section(table: pd.DataFrame) -> list[str]:
    gaps = coverage.largest_gaps(table)[["feature", "by", "group", "reference", "missing_rate",
                                         "reference_missing_rate", "missing_ratio",
                                         "missing_diff_low", "missing_diff_high", "clear_gap"]]
    return ["<h3>Largest gap per feature and attribute</h3>", _table(gaps)]


_SCREENING_COLUMNS = ["by", "group", "n", "never_screened", "never_screened_rate",
                      "never_screened_low", "never_screened_high", "never_screened_diff",
                      "never_screened_diff_low", "never_screened_diff_high", "never_screened_ratio",
                      "screened", "positive_rate", "positive_low", "positive_high",
                      "declined_rate", "declined_low", "declined_high"]
_AREA_COLUMNS = ["area", "n", "never_screened", "never_screened_rate", "never_screened_low",
                 "never_screened_high", "screened", "positive", "positive_rate", "positive_low",
                 "positive_high", "declined", "never_screened_diff", "never_screened_diff_low",
                 "never_screened_diff_high", "positive_diff", "positive_diff_low",
                 "positive_diff_high"]


def _screening_section(frame: pd.DataFrame, patients: pd.DataFrame, *, by: list[str]) -> list[str]:
    """Per screened domain, never-screened rates by subgroup; food insecurity against the flag."""
    table = screening.screening_coverage(frame, patients, by=by, unit="patient")
    parts = ["<p>Per patient: never screened means every event reads <code>not_screened</code> or "
             "<code>screening_stale</code> (no answer within the domain's look-back). Positive "
             "and declined shares are of the screened. A group screened less often has fewer "
             "recorded needs whatever its needs are: read the shares next to the rates.</p>"]
    for domain, rows in table.groupby("domain", sort=False):
        parts += [f"<h3>Never screened for <code>{html.escape(domain)}</code>, by subgroup</h3>",
                  _table(rows[_SCREENING_COLUMNS])]
    area = "food_access_tract__lila_1_10"
    if "food_insecurity" in set(table["domain"]) and area in frame:
        needs = screening.needs_vs_area(frame, domain="food_insecurity", area_column=area)
        parts += ["<h3>Screened food insecurity against low food access (<code>"
                  f"{area}</code>)</h3>",
                  f"<p>{needs.attrs['positive_outside_flagged']:,} patients screened positive "
                  "live outside flagged tracts (need the area flag misses); "
                  f"{needs.attrs['unscreened_inside_flagged']:,} patients in flagged tracts were "
                  "never screened.</p>",
                  _table(needs[[c for c in _AREA_COLUMNS if c in needs]])]
    return parts


def heatmaps(table: pd.DataFrame) -> Figure:
    """Missing rate and low-reliability share as heatmaps, features by (attribute, group).

    Parameters
    ----------
    table
        A `coverage.coverage_table` result.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels; grey cells have no value (e.g. no reliability class for an index).

    Examples
    --------
    >>> table = coverage.coverage_table(frame, patients, by=["race_ethnicity", "payer"],
    ...                                 features=["acs_tract__pct_below_poverty"])
    >>> heatmaps(table).axes[0].get_title()
    'Share missing (grey: no value)'
    """
    columns = list(dict.fromkeys(zip(table["by"], table["group"], strict=True)))
    features = list(dict.fromkeys(table["feature"]))
    labels = [f"{b}: {g}" for b, g in columns]
    label_room = 0.07 * max(map(len, labels), default=0)  # inches for the rotated group names
    fig = Figure(figsize=(max(8, 0.32 * len(columns) + 4), 2 * (0.4 * len(features) + 1.6 + label_room)),
                 layout="constrained")
    axes = fig.subplots(2, 1)
    for ax, value, name in zip(axes, ["missing_rate", "low_reliability_rate"],
                               ["missing", "low or unknown reliability (of present values)"],
                               strict=True):
        grid = table.pivot_table(index="feature", columns=["by", "group"], values=value,
                                 sort=False, dropna=False).reindex(index=features, columns=columns)
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap=_NO_VALUE_GREY, vmin=0, vmax=1)
        ax.set_yticks(range(len(features)), features, fontsize=7)
        ax.set_xticks(range(len(columns)), labels, rotation=90, fontsize=7)
        ax.set_title(f"Share {name} (grey: no value)")
        fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def _feature_tables(table: pd.DataFrame, odds: pd.DataFrame | str, *, feature: str) -> list[str]:
    rows = table[table["feature"] == feature]
    odds_table = _not_estimable(odds) if isinstance(odds, str) else _table(odds.drop(columns="feature"))
    return [f"<h3><code>{html.escape(feature)}</code> by subgroup</h3>",
            _table(rows[_SUBGROUP_COLUMNS]),
            "<h4>Odds ratios of lacking it, adjusted for the other attributes</h4>", odds_table]


class _DecimalLogFormatter(LogFormatterSciNotation):
    """Log-axis labels as plain decimals ("0.4", "2"), on the ticks matplotlib would label."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        shown = super().__call__(x, pos)  # "" where matplotlib leaves a minor tick unlabelled
        return np.format_float_positional(x, precision=3, fractional=False, trim="-") if shown else ""


def odds_ratio_figure(odds: pd.DataFrame) -> Figure:
    """Adjusted odds ratios with Wald intervals on a log axis, reference groups left out.

    Parameters
    ----------
    odds
        A `coverage.missingness_odds_ratios` result.

    Returns
    -------
    matplotlib.figure.Figure
        Ticks read as plain decimals (0.4, 2), not powers of ten; group labels not cut off.

    Examples
    --------
    >>> odds = pd.DataFrame({"by": ["payer"] * 2, "group": ["commercial", "medicaid"],
    ...                      "is_reference": [True, False], "odds_ratio": [1.0, 2.5],
    ...                      "odds_ratio_low": [1.0, 0.4], "odds_ratio_high": [1.0, 9.0]})
    >>> [t.get_text() for t in odds_ratio_figure(odds).axes[0].get_yticklabels()]
    ['payer: medicaid']
    """
    shown = odds[~odds["is_reference"] & odds["odds_ratio"].notna()]
    fig = Figure(figsize=(8, 0.25 * len(shown) + 1.4), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(shown))
    ratio, low, high = (shown[c].to_numpy(dtype=float) for c in ("odds_ratio", "odds_ratio_low",
                                                                 "odds_ratio_high"))
    ax.errorbar(ratio, y, xerr=[ratio - low, high - ratio], fmt="o", capsize=3)
    ax.axvline(1, ls="--", c="grey")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_DecimalLogFormatter())
    ax.xaxis.set_minor_formatter(_DecimalLogFormatter(labelOnlyBase=False))
    ax.set_yticks(y, shown["by"] + ": " + shown["group"], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="adjusted odds ratio of missing (95% CI, log scale)")
    return fig


def _table(frame: pd.DataFrame) -> str:
    table = frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0)
    return f"<div class='{TABLE_BOX}'>{table}</div>"


def _image(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='figure' src='data:image/png;base64,{data}'>"
