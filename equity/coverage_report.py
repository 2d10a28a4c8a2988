"""One self-contained HTML page of coverage gaps: the tables of `equity.coverage` and their plots.

`coverage_report` builds it (``sdoh coverage`` writes it): the linkage funnel, each feature's
coverage and low-reliability share, per-subgroup heatmaps of both, the largest gap per feature
and attribute, and per headline feature the subgroup table and the adjusted odds ratios of
missingness. Figures are drawn with matplotlib's object API (no pyplot state) and embedded as
base64 PNG, so the page can be mailed or attached to a ticket as one file.
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

from equity import coverage
from ingestion.core.errors import InputError

__all__ = ["SUBGROUPS", "coverage_report", "headline_features", "heatmaps", "measure_columns"]

logger = logging.getLogger(__name__)

#: Patient attributes a coverage report splits by (``age_band`` is derived from ``birth_date``).
SUBGROUPS = ("race_ethnicity", "preferred_language", "payer", "home_area", "age_band", "sex")
_SUBGROUP_COLUMNS = ["by", "group", "n", "missing_rate", "missing_low", "missing_high",
                     "missing_diff", "missing_diff_low", "missing_diff_high", "missing_ratio",
                     "low_reliability_rate", "low_reliability_ratio", "top_missing_reasons"]
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#eee}
img{max-width:100%}.note{color:#555}"""
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
        Patient attributes to split by, default `SUBGROUPS`; attributes absent from
        ``patients`` (and ``age_band`` without ``birth_date``) are skipped with a note.
    unit
        ``"event"`` or ``"patient"``, as for `coverage.feature_coverage`.
    title
        Page title.

    Returns
    -------
    str
        A complete HTML document with embedded PNG figures.

    Raises
    ------
    InputError
        ``frame`` has no feature column with a missing reason, or a required column is
        absent.

    Examples
    --------
    >>> page = coverage_report(frame, patients, timeline=timeline)  # doctest: +SKIP
    >>> Path("coverage.html").write_text(page)  # doctest: +SKIP
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
    usable = [b for b in by if b in patients.columns or (b == "age_band" and "birth_date" in patients)]
    table = coverage.coverage_table(frame, patients, features=detail, by=usable, unit=unit)
    skipped = set(by) - set(usable)
    body = [f"<h1>{html.escape(title)}</h1>", _summary(frame, features, unit=unit, skipped=skipped)]
    if timeline is not None:
        body += _funnel_section(timeline, rejects)
    body += _overview_section(overview)
    body += _subgroup_section(table)
    for feature in detail:
        body += _feature_section(frame, patients, table, feature=feature, by=usable, unit=unit)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")


def _summary(frame: pd.DataFrame, features: list[str], *, unit: str, skipped: set[str]) -> str:
    note = f" Skipped attributes not in the patients table: {sorted(skipped)}." if skipped else ""
    return (f"<p>{len(frame):,} events of {frame['patient_id'].nunique():,} patients; "
            f"{len(features)} features assessed per {unit}. Rows whose reason is one of "
            f"{list(coverage.DEFAULT_EXCLUDED_REASONS)} are left out (the data did not exist yet). "
            "Intervals are Wilson 95% (rates), Newcombe 95% (differences) and Wald 95% (odds "
            "ratios); events of one patient are not independent, so per-event intervals are "
            f"too narrow.{html.escape(note)} Area features describe places, not persons.</p>")


def _funnel_section(timeline: pd.DataFrame, rejects: pd.DataFrame | None) -> list[str]:
    from ingestion.geo.linking import linkage_funnel

    funnel = linkage_funnel(timeline, rejects=rejects)
    outcomes = funnel.set_index("outcome").drop(index="all")
    fig = Figure(figsize=(7, 0.35 * len(outcomes) + 1))
    ax = fig.subplots()
    ax.barh(outcomes.index, outcomes["address_periods"])
    ax.invert_yaxis()
    ax.set(xlabel="input rows", title="Address history rows by linkage outcome")
    note = [] if rejects is not None else [
        "<p>Rejected input rows are not counted (no rejects were given): shares are of the "
        "accepted address periods only. Pass the linking run's rejects "
        "(<code>sdoh coverage --rejects address_rejects.csv</code>) to count every input row.</p>"]
    return ["<h2>Linkage funnel</h2>", *note, _table(funnel), _image(fig)]


def _overview_section(overview: pd.DataFrame) -> list[str]:
    shown = overview[["feature", "n", "covered", "coverage", "coverage_low", "coverage_high",
                      "low_reliability_rate", "low_reliability_low", "low_reliability_high",
                      "top_missing_reasons"]]
    return ["<h2>Coverage and low-reliability share of every feature</h2>", _table(shown)]


def _subgroup_section(table: pd.DataFrame) -> list[str]:
    gaps = coverage.largest_gaps(table)[["feature", "by", "group", "reference", "missing_rate",
                                         "reference_missing_rate", "missing_ratio",
                                         "missing_diff_low", "missing_diff_high", "clear_gap"]]
    return ["<h2>Missing and low-reliability rates by subgroup</h2>",
            _image(heatmaps(table)),
            "<h3>Largest gap per feature and attribute</h3>", _table(gaps)]


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
    >>> heatmaps(coverage.coverage_table(frame, patients, features=features,
    ...                                  by=["race_ethnicity", "payer"]))  # doctest: +SKIP
    """
    columns = list(dict.fromkeys(zip(table["by"], table["group"], strict=True)))
    features = list(dict.fromkeys(table["feature"]))
    fig = Figure(figsize=(max(8, 0.32 * len(columns) + 4), 2 * (0.4 * len(features) + 1.6)))
    axes = fig.subplots(2, 1)
    for ax, value, name in zip(axes, ["missing_rate", "low_reliability_rate"],
                               ["missing", "low or unknown reliability (of present values)"],
                               strict=True):
        grid = table.pivot_table(index="feature", columns=["by", "group"], values=value,
                                 sort=False, dropna=False).reindex(index=features, columns=columns)
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap=_NO_VALUE_GREY, vmin=0, vmax=1)
        ax.set_yticks(range(len(features)), features, fontsize=7)
        ax.set_xticks(range(len(columns)), [f"{b}: {g}" for b, g in columns], rotation=90, fontsize=7)
        ax.set_title(f"Share {name} (grey: no value)")
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def _feature_section(frame: pd.DataFrame, patients: pd.DataFrame, table: pd.DataFrame, *,
                     feature: str, by: list[str], unit: str) -> list[str]:
    rows = table[table["feature"] == feature]
    section = [f"<h2><code>{html.escape(feature)}</code></h2>", _table(rows[_SUBGROUP_COLUMNS]),
               "<h3>Odds ratios of lacking it, adjusted for the other attributes</h3>"]
    try:
        odds = coverage.missingness_odds_ratios(frame, patients, feature=feature, by=by, unit=unit)
    except InputError as exc:  # e.g. a feature no row lacks: say so and go on with the others
        logger.info("%s: no odds ratios: %s", feature, exc)
        return [*section, f"<p class='note'>Not estimable: {html.escape(str(exc))}</p>"]
    return [*section, _table(odds.drop(columns="feature")), _image(_forest(odds))]


def _forest(odds: pd.DataFrame) -> Figure:
    """Adjusted odds ratios with Wald intervals on a log axis, reference groups left out."""
    shown = odds[~odds["is_reference"] & odds["odds_ratio"].notna()]
    fig = Figure(figsize=(7, 0.25 * len(shown) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(shown))
    ratio, low, high = (shown[c].to_numpy(dtype=float) for c in ("odds_ratio", "odds_ratio_low",
                                                                 "odds_ratio_high"))
    ax.errorbar(ratio, y, xerr=[ratio - low, high - ratio], fmt="o", capsize=3)
    ax.axvline(1, ls="--", c="grey")
    ax.set_xscale("log")
    ax.set_yticks(y, shown["by"] + ": " + shown["group"], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="adjusted odds ratio of missing (95% CI, log scale)")
    fig.tight_layout()
    return fig


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0)


def _image(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='figure' src='data:image/png;base64,{data}'>"
