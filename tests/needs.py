"""What a test needs from outside the checkout: local services and ../shared/data/real.

Absent, a test skips with the reason; with SDOH_REQUIRE_SERVICES=1 or SDOH_REQUIRE_REAL_DATA=1
(as CI sets them) it fails instead. Used by tests/conftest.py, the root conftest.py (doctests)
and the test modules.
"""

import os
import socket
from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
SERVICES = {"redis": ("127.0.0.1", 6379), "postgres": ("127.0.0.1", 5432)}


def skip_or_fail(message: str, switch: str) -> None:
    """Skip with ``message``, or fail when the environment sets ``switch`` to 1 (as CI does)."""
    if os.environ.get(switch) == "1":
        pytest.fail(f"{message}; {switch}=1 makes this a failure")
    pytest.skip(f"{message}; start or provide it, or set {switch}=1 to make this fail")


def require_service(name: str) -> None:
    """Skip when a local service is down, or fail when SDOH_REQUIRE_SERVICES=1 (as in CI)."""
    host, port = SERVICES[name]
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        skip_or_fail(f"{name} is not reachable at {host}:{port} ({exc})", "SDOH_REQUIRE_SERVICES")


def real_path(*parts: str) -> Path:
    """A file or folder of ../shared/data/real; skip when absent, fail if SDOH_REQUIRE_REAL_DATA=1."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        skip_or_fail(f"real conformance data not found at {path}", "SDOH_REQUIRE_REAL_DATA")
    return path
