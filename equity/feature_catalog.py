"""Query the equity metadata of every feature: which proxy race, which are unreliable, one domain.

Feast stores each field's tags but cannot filter on them; `feature_catalog` flattens every
field of every view into one row with its tags, adds how reliable each ACS measure's published
rows are, and filters on any key.

Examples
--------
>>> from equity.feature_catalog import feature_catalog
>>> feature_catalog(ws, where={"proxy_for": "race"})["field"].tolist()[:2]
['pct_minority', 'pct_minority_moe']
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Collection, Mapping, Sequence

import duckdb
import pandas as pd
from feast import FeatureService, FeatureView

from feature_repo.definitions.feature_services import feature_services
from feature_repo.definitions.feature_views import feature_views
from feature_repo.definitions.metadata import tag_values
from feature_repo.serving.store import feature_store, store_profile
from ingestion.core.datasets import FIELD_SUFFIXES
from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from sdoh_sources import METADATA_KEYS, load_catalog

log = logging.getLogger(__name__)

# A measure is "low" reliability when more than this share of its published rows with an
# estimate are classed low; "acceptable" otherwise; "not_applicable" without reliability classes.
DEFAULT_LOW_SHARE = 0.2
RELIABILITY_VALUES = ("low", "acceptable", "not_applicable")
CATALOG_KEYS = (*METADATA_KEYS, "reliability")


def feature_definitions(workspace: Workspace, *, profile: str | None = None
                        ) -> tuple[list[FeatureView], list[FeatureService]]:
    """The views and services registered in Feast, else those built for what is published.

    Parameters
    ----------
    workspace : Workspace
        The workspace whose registry (or published data) to read.
    profile : str, optional
        Feast profile (``embedded`` or ``production``); default the ``SDOH_PROFILE`` setting, else embedded.

    Returns
    -------
    tuple of (list of feast.FeatureView, list of feast.FeatureService)
        What is registered if ``sdoh apply`` ran, else the definitions it would register.

    Examples
    --------
    >>> views, services = feature_definitions(ws)
    >>> [s.name for s in services]
    ['model_inputs_v1', 'equity_audit_v1']
    """
    store = feature_store(workspace, profile=profile)
    views = store.list_feature_views()
    if views:
        log.info("reading tags from the Feast registry of project %s", store.project)
        return views, store.list_feature_services()
    log.info("nothing registered in %s: reading the definitions built for what is published",
             workspace.root)
    views = feature_views(workspace, profile=store_profile(store))
    return views, feature_services(views)


def published_columns(view: FeatureView) -> list[str]:
    """The columns of a view's published parquet files; empty if none are published.

    Examples
    --------
    >>> "pct_minority_reliability" in published_columns(store.get_feature_view("acs_tract"))
    True
    """
    if not glob.glob(view.batch_source.path, recursive=True):
        return []
    with duckdb.connect() as con:
        return [row[0] for row in con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?)", [view.batch_source.path]).fetchall()]


def published_value_counts(view: FeatureView, columns: Sequence[str]) -> pd.DataFrame:
    """Rows per non-null value of each column of a view's published data.

    Returns
    -------
    pandas.DataFrame
        Columns ``column``, ``value`` (as text) and ``rows``; nulls are not counted.

    Examples
    --------
    >>> published_value_counts(store.get_feature_view("acs_tract"), ["pct_below_poverty_reliability"])
                              column value  rows
    0  pct_below_poverty_reliability  high     7
    """
    if not columns:
        return pd.DataFrame({"column": [], "value": [], "rows": []})
    quoted = ", ".join(f'"{c}"' for c in columns)
    casts = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in columns)
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT \"column\", value, count(*) AS rows FROM (UNPIVOT (SELECT {casts} FROM "
            f"read_parquet(?)) ON {quoted} INTO NAME \"column\" VALUE value) "
            "GROUP BY ALL ORDER BY \"column\", rows DESC, value", [view.batch_source.path]).df()


def published_present_counts(view: FeatureView, columns: Sequence[str]) -> pd.Series:
    """Non-null rows of each column of a view's published data, plus ``"*"`` for all rows.

    Examples
    --------
    >>> published_present_counts(store.get_feature_view("acs_tract"), ["pct_below_poverty", "pct_minority"])
    *                    7
    pct_below_poverty    7
    pct_minority         0
    Name: 0, dtype: int64
    """
    counts = ", ".join(["count(*) AS \"*\"", *(f'count("{c}") AS "{c}"' for c in columns)])
    with duckdb.connect() as con:
        row = con.execute(f"SELECT {counts} FROM read_parquet(?)", [view.batch_source.path]).df()
    return row.iloc[0].astype("int64")


def measure_of(field_name: str, names: Collection[str]) -> str:
    """The measure a column belongs to: ``pct_minority`` for ``pct_minority_cv``, else itself.

    Parameters
    ----------
    field_name : str
        A field of a view.
    names : collection of str
        Every field name of the view.

    Examples
    --------
    >>> measure_of("pct_minority_cv", {"pct_minority", "pct_minority_cv"})
    'pct_minority'
    >>> measure_of("link_missing", {"link_missing"})
    'link_missing'
    >>> measure_of("chr_adult_smoking_ci_low", {"chr_adult_smoking", "chr_adult_smoking_ci_low"})
    'chr_adult_smoking'
    """
    for suffix in FIELD_SUFFIXES:
        base = field_name.removesuffix(suffix)
        if suffix and base != field_name and base in names:
            return base
    return field_name


def low_reliability_shares(view: FeatureView) -> dict[str, float]:
    """Per measure with reliability classes: the share of published rows with an estimate classed low.

    Rows without an estimate (a missing reason) have no class and are left out.

    Examples
    --------
    >>> float(low_reliability_shares(store.get_feature_view("acs_tract"))["pct_below_poverty"])
    0.0
    """
    available = set(published_columns(view))
    measures = [f.name for f in view.features if f"{f.name}_reliability" in available]
    if not measures:
        return {}
    counts = published_value_counts(view, [f"{m}_reliability" for m in measures])
    low = counts[counts["value"] == "low"].set_index("column")["rows"]
    present = published_present_counts(view, measures)
    return {m: float(low.get(f"{m}_reliability", 0)) / present[m] if present[m] else float("nan")
            for m in measures}


def _reliability(share: float, low_share: float) -> str:
    if pd.isna(share):
        return "not_applicable"
    return "low" if share > low_share else "acceptable"


def catalog_frame(views: Sequence[FeatureView], *, low_share: float = DEFAULT_LOW_SHARE) -> pd.DataFrame:
    """One row per field of ``views``: view, field, measure, dtype, description and every tag.

    ``low_reliability_share`` is the measure's share of published rows with an estimate
    classed low (NaN without classes); ``reliability`` is ``low`` above ``low_share``,
    ``acceptable`` at or below, ``not_applicable`` without classes.

    Examples
    --------
    >>> catalog_frame(store.list_feature_views()).columns[:4].tolist()
    ['view', 'field', 'measure', 'dtype']
    """
    rows = []
    for view in views:
        shares = low_reliability_shares(view)
        names = {f.name for f in view.features}
        for field in view.features:
            measure = measure_of(field.name, names)
            share = shares.get(measure, float("nan"))
            rows.append({"view": view.name, "field": field.name, "measure": measure,
                         "dtype": str(field.dtype), "description": field.description,
                         **{k: field.tags.get(k, "") for k in METADATA_KEYS},
                         "low_reliability_share": share,
                         "reliability": _reliability(share, low_share)})
    return pd.DataFrame(rows, columns=["view", "field", "measure", "dtype", "description",
                                       *METADATA_KEYS, "low_reliability_share", "reliability"])


def _allowed(key: str) -> tuple[str, ...] | None:
    if key == "reliability":
        return RELIABILITY_VALUES
    return load_catalog().vocabularies.get(key)


def _as_lists(where: Mapping[str, str | Collection[str]]) -> dict[str, list[str]]:
    return {k: [v] if isinstance(v, str) else list(v) for k, v in where.items()}


def _check_where(where: Mapping[str, Collection[str]]) -> None:
    for key, values in where.items():
        if key not in CATALOG_KEYS:
            raise InputError(f"unknown metadata key {key!r}; known keys: {', '.join(CATALOG_KEYS)}")
        allowed = _allowed(key)
        unknown = [v for v in values if allowed is not None and v not in allowed]
        if unknown:
            raise InputError(f"{key}={unknown[0]!r} is not a value of {key}; "
                             f"choose from: {', '.join(allowed)}")


def filter_catalog(frame: pd.DataFrame, where: Mapping[str, str | Collection[str]]) -> pd.DataFrame:
    """The rows of a `catalog_frame` whose tags match every key of ``where``.

    A key matches when its tag is one of the given values, or lists one of them among its
    comma-separated values (``proxy_for=race`` matches ``race,ethnicity``); several values for
    one key mean any of them, several keys mean all.

    Raises
    ------
    InputError
        If a key is not a metadata key, or a value is outside the key's vocabulary.

    Examples
    --------
    >>> frame = catalog_frame([store.get_feature_view("acs_tract")])
    >>> filter_catalog(frame, {"proxy_for": "race", "domain": ["education"]})["field"].tolist()
    []
    """
    wanted = _as_lists(where)
    _check_where(wanted)
    keep = pd.Series(True, index=frame.index)
    for key, values in wanted.items():
        keep &= frame[key].map(lambda tag, key=key, values=values:
                               any(v in tag_values({key: tag}, key) for v in values))
    return frame[keep].reset_index(drop=True)


def feature_catalog(workspace: Workspace, *, where: Mapping[str, str | Collection[str]] | None = None,
                    views: Sequence[str] | None = None, low_share: float = DEFAULT_LOW_SHARE,
                    profile: str | None = None) -> pd.DataFrame:
    """Every feature of a workspace with its equity metadata, filtered by any metadata key.

    Parameters
    ----------
    workspace : Workspace
        Read from its Feast registry if definitions are applied, else from the definitions
        built for what it has published.
    where : mapping of str to str or collection of str, optional
        Metadata key to wanted value(s), e.g. ``{"proxy_for": "race"}``; see `filter_catalog`.
        ``reliability`` (``low``, ``acceptable``, ``not_applicable``) selects by the share of
        published rows classed low, see `catalog_frame`.
    views : sequence of str, optional
        Only these feature views.
    low_share : float, default 0.2
        Share of low-reliability rows above which a measure counts as ``reliability=low``.
    profile : str, optional
        Feast profile; default the ``SDOH_PROFILE`` setting, else embedded.

    Returns
    -------
    pandas.DataFrame
        One row per field: view, field, measure, dtype, description, the metadata keys of
        DESIGN.md section 4, ``low_reliability_share`` and ``reliability``.

    Raises
    ------
    InputError
        If a key, value or view is unknown.

    Examples
    --------
    >>> feature_catalog(ws, where={"proxy_for": "race"})[["view", "field"]].head(1)
            view         field
    0  acs_tract  pct_minority
    """
    _check_where(_as_lists(where or {}))  # before reading anything
    defined, _ = feature_definitions(workspace, profile=profile)
    if views:
        known = {v.name: v for v in defined}
        unknown = sorted(set(views) - set(known))
        if unknown:
            raise InputError(f"unknown feature views {unknown}; choose from {sorted(known)}")
        defined = [known[name] for name in views]
    frame = catalog_frame(defined, low_share=low_share)
    return filter_catalog(frame, where or {})
