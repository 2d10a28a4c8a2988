"""Shared fixtures: the real-data folder and the demo run (what a test needs from outside: needs.py)."""

from pathlib import Path

import pytest
from needs import real_path


@pytest.fixture
def real_data() -> Path:
    """../shared/data/real, or a skip (a failure in CI) naming what is missing."""
    return real_path()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The whole demo pipeline, run once per test session: (workspace, summary)."""
    from ingestion.core.workspace import Workspace
    from ingestion.jobs.pipeline import run_demo

    workspace = Workspace(tmp_path_factory.mktemp("demo"))
    return workspace, run_demo(workspace)
