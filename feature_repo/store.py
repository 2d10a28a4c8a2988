"""Open the Feast store of a workspace under a profile, register definitions, materialize."""

from __future__ import annotations

import datetime as dt
import logging
import os
import warnings
from importlib import resources
from string import Template

import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig

from feature_repo.entities import ALL_ENTITIES
from feature_repo.feature_services import feature_services
from feature_repo.feature_views import feature_views
from ingestion.errors import PublishError
from ingestion.workspace import Workspace

log = logging.getLogger(__name__)
# ibis, under Feast's DuckDB offline store, calls a deprecated DuckDB method on every query;
# set after importing feast, whose own simplefilter("once", DeprecationWarning) would win.
warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated",
                        category=DeprecationWarning)
PROFILES = ("embedded", "production")
# Settings a profile may use; each can be overridden by the environment variable of its name.
SETTINGS = {
    "SDOH_PROJECT": "sdoh",
    "SDOH_REDIS": "127.0.0.1:6379",
    "SDOH_REGISTRY_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
}


def selected_profile(profile: str | None = None) -> str:
    """The profile to use: the argument, else ``SDOH_PROFILE``, else ``embedded``."""
    chosen = profile or os.environ.get("SDOH_PROFILE") or "embedded"
    if chosen not in PROFILES:
        raise ValueError(f"unknown profile {chosen!r}; choose one of {PROFILES} (SDOH_PROFILE)")
    return chosen


def render_profile(workspace: Workspace, profile: str | None = None) -> str:
    """The profile's feature_store.yaml text with the workspace and settings filled in.

    Examples
    --------
    >>> "duckdb" in render_profile(Workspace("/tmp/ws"), "embedded")
    True
    """
    name = selected_profile(profile)
    text = resources.files("feature_repo").joinpath("profiles", f"{name}.yaml").read_text()
    values = {key: os.environ.get(key, default) for key, default in SETTINGS.items()}
    return Template(text).substitute(values, SDOH_WORKSPACE=str(workspace.root))


def feature_store(workspace: Workspace, *, profile: str | None = None) -> FeatureStore:
    """A FeatureStore for ``workspace`` under a profile (argument, ``SDOH_PROFILE``, or embedded).

    Also writes the rendered feature_store.yaml into ``<workspace>/feast`` for Feast's CLI and
    UI; the production profile's file holds connection settings, so the folder stays private.

    Examples
    --------
    >>> store = feature_store(Workspace("/tmp/ws"))  # doctest: +SKIP
    """
    text = render_profile(workspace, profile)
    path = workspace.feast / "feature_store.yaml"
    path.write_text(text)
    path.chmod(0o600)
    config = RepoConfig(**yaml.safe_load(text))
    config.repo_path = workspace.feast
    return FeatureStore(config=config)


def apply_definitions(store: FeatureStore, workspace: Workspace) -> list[str]:
    """Register entities, sources, views and services for what is published; returns view names."""
    views = feature_views(workspace)
    if not views:
        raise PublishError(f"nothing is published in {workspace.root}: run `sdoh ingest` first")
    store.apply([*ALL_ENTITIES, *views, *feature_services(views)])
    return [v.name for v in views]


def materialize(store: FeatureStore, *, end: dt.datetime | None = None) -> None:
    """Load every view's latest rows up to ``end`` (default now) into the online store."""
    end = end or dt.datetime.now(dt.UTC)
    # Release dates go back years; a window from the epoch keeps old vintages' rows.
    store.materialize(start_date=dt.datetime(1970, 1, 2, tzinfo=dt.UTC), end_date=end)
