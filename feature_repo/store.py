"""Open the Feast store of a workspace under a profile, register definitions, materialize."""

from __future__ import annotations

import datetime as dt
import logging
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
PROFILES = ("embedded",)


def render_profile(workspace: Workspace, profile: str = "embedded") -> str:
    """The profile's feature_store.yaml text with the workspace filled in.

    Examples
    --------
    >>> "duckdb" in render_profile(Workspace("/tmp/ws"))
    True
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    text = resources.files("feature_repo").joinpath("profiles", f"{profile}.yaml").read_text()
    return Template(text).substitute(SDOH_WORKSPACE=str(workspace.root))


def feature_store(workspace: Workspace, *, profile: str = "embedded") -> FeatureStore:
    """A FeatureStore for ``workspace``; also writes its feature_store.yaml for Feast's CLI and UI.

    Examples
    --------
    >>> store = feature_store(Workspace("/tmp/ws"))  # doctest: +SKIP
    """
    text = render_profile(workspace, profile)
    (workspace.feast / "feature_store.yaml").write_text(text)
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
