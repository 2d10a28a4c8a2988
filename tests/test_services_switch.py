"""SDOH_REQUIRE_SERVICES turns a service test's skip into a failure (as CI sets it)."""

import socket

import needs
import pytest


@pytest.fixture
def closed_port(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(needs.SERVICES, "redis", ("127.0.0.1", port))


def test_down_service_skips_by_default(closed_port, monkeypatch):
    monkeypatch.delenv("SDOH_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="set SDOH_REQUIRE_SERVICES=1"):
        needs.require_service("redis")


def test_down_service_fails_when_required(closed_port, monkeypatch):
    monkeypatch.setenv("SDOH_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="makes this a failure"):
        needs.require_service("redis")
