"""The profiles (embedded, production, spark): which feature_store.yaml a workspace runs under.

Kept apart from `feature_repo.serving.store` so that reading a profile costs no Feast import.
"""

from __future__ import annotations

from importlib import resources
from string import Template

from ingestion.core.settings import PROFILES, Settings, load_settings
from ingestion.core.workspace import Workspace


def selected_profile(profile: str | None = None, *, settings: Settings | None = None) -> str:
    """The profile to use: the argument, else the settings' (``SDOH_PROFILE``), else ``embedded``.

    Examples
    --------
    >>> selected_profile("spark", settings=Settings(profile="production"))
    'spark'
    >>> selected_profile(settings=Settings(profile="production"))
    'production'
    """
    chosen = profile or (settings or load_settings()).profile
    if chosen not in PROFILES:
        raise ValueError(f"unknown profile {chosen!r}; choose one of {PROFILES} (SDOH_PROFILE)")
    return chosen


def render_profile(workspace: Workspace, profile: str | None = None, *,
                   settings: Settings | None = None) -> str:
    """The profile's feature_store.yaml text with the workspace and settings filled in.

    Parameters
    ----------
    workspace : Workspace
        The workspace whose registry and online store the profile names.
    profile : str, optional
        ``embedded``, ``production`` or ``spark``; default the settings'.
    settings : Settings, optional
        Connection and Spark settings; default read from the environment now.

    Examples
    --------
    >>> "duckdb" in render_profile(Workspace("/tmp/ws"), "embedded")
    True
    """
    settings = settings or load_settings()
    name = selected_profile(profile, settings=settings)
    text = resources.files("feature_repo.definitions").joinpath("profiles", f"{name}.yaml").read_text()
    return Template(text).substitute(settings.profile_values(workspace.root))
