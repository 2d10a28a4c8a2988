"""The profiles (embedded, production, spark): which feature_store.yaml a workspace runs under.

Kept apart from `feature_repo.serving.store` so that reading a profile costs no Feast import.
"""

from __future__ import annotations

import os
from importlib import resources
from string import Template

from ingestion.core.workspace import Workspace

PROFILES = ("embedded", "production", "spark")
# Settings a profile may use; each can be overridden by the environment variable of its name.
SETTINGS = {
    "SDOH_PROJECT": "sdoh",
    "SDOH_REDIS": "127.0.0.1:6379",
    # Seconds any Redis connect, read or write may take before failing (a JSON 503 when serving);
    # parameters given in SDOH_REDIS itself win.
    "SDOH_REDIS_TIMEOUT_S": "2",
    "SDOH_REGISTRY_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "SDOH_SPARK_MASTER": "local[2]",
    "SDOH_SPARK_DRIVER_MEMORY": "4g",  # Spark's 1g default hangs near 1M entity rows
    "SDOH_SPARK_SHUFFLE_PARTITIONS": "8",  # Spark's 200 default suits a cluster, not local[2]
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
    text = resources.files("feature_repo.definitions").joinpath("profiles", f"{name}.yaml").read_text()
    values = {key: os.environ.get(key, default) for key, default in SETTINGS.items()}
    return Template(text).substitute(values, SDOH_WORKSPACE=str(workspace.root))
