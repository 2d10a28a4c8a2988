"""Shared fixtures: the real-data folder and the services switch."""

import os
import socket
from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
SERVICES = {"redis": ("127.0.0.1", 6379), "postgres": ("127.0.0.1", 5432)}


def require_service(name: str) -> None:
    """Skip when a local service is down, or fail when SDOH_REQUIRE_SERVICES=1 (as in CI)."""
    host, port = SERVICES[name]
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc})"
        if os.environ.get("SDOH_REQUIRE_SERVICES") == "1":
            pytest.fail(message + "; SDOH_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message + "; start it or set SDOH_REQUIRE_SERVICES=1 to make this fail")


@pytest.fixture
def real_data() -> Path:
    """../shared/data/real, or a skip naming what is missing."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real conformance data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The whole demo pipeline, run once per test session: (workspace, summary)."""
    from ingestion.pipeline import run_demo
    from ingestion.workspace import Workspace

    workspace = Workspace(tmp_path_factory.mktemp("demo"))
    return workspace, run_demo(workspace)
