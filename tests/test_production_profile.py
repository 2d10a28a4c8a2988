"""The production profile (SQL registry on PostgreSQL, Redis online store) on real services."""

import os
import socket
import uuid

import pandas as pd
import pytest
from click.testing import CliRunner
from needs import require_service
from redis_server import RedisServer

from feature_repo import apply_definitions, feature_store, materialize, online_features, training_frame
from feature_repo.serving.store import render_profile
from ingestion.cli import sdoh
from ingestion.core.errors import ServiceUnavailable

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def production(hand_built_copy, tmp_path_factory):
    """The hand-built region on a Redis of this module's own (never the shared one's databases)."""
    require_service("postgres")
    redis_server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    settings = {
        "SDOH_PROJECT": f"sdoh_test_{uuid.uuid4().hex[:8]}",
        "SDOH_REDIS": f"{redis_server.address},db=3",
        "SDOH_REGISTRY_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        ws = hand_built_copy(tmp_path_factory.mktemp("prod"))
        store = feature_store(ws, profile="production")
        apply_definitions(store, ws)
        materialize(store, end=pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime())
        yield store, ws, redis_server.client(db=3)
        store.registry.delete_project(settings["SDOH_PROJECT"], commit=True)
    finally:
        redis_server.stop()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def test_profile_renders_services_from_settings(production):
    _, ws, _ = production
    text = render_profile(ws, "production")
    assert "type: redis" in text and "db=3" in text
    assert "socket_timeout=2,socket_connect_timeout=2," in text  # SDOH_REDIS_TIMEOUT_S
    assert "registry_type: sql" in text and "5432/test" in text


def test_materialized_rows_are_in_redis(production):
    _, _, client = production
    assert client.dbsize() > 0


def test_online_lookup_from_redis(production):
    store, ws, _ = production
    at = pd.Timestamp("2022-07-01", tz="UTC").to_pydatetime()
    frame = online_features(["A", "B"], store=store, workspace=ws, at=at)
    assert frame.loc[0, "acs_tract__pct_below_poverty"] == 6.0
    assert frame.loc[1, "acs_tract__pct_below_poverty_missing"] == "po_box"


def test_training_frame_with_sql_registry_matches_the_embedded_profile(production, hand_built_store):
    store, ws, _ = production
    events = pd.DataFrame({"patient_id": ["A", "A", "C"],
                           "event_timestamp": ["2021-01-01", "2022-03-17", "2021-06-01"]})
    got = training_frame(events, store=store, workspace=ws)
    embedded, embedded_ws, _ = hand_built_store  # the session's embedded store of the same region
    expected = training_frame(events, store=embedded, workspace=embedded_ws)
    pd.testing.assert_frame_equal(got, expected)


def test_online_lookup_reads_redis_in_one_round_trip_per_hop(production):
    from feature_repo import OnlineLookup
    from feature_repo.serving.feast_reads import RedisReader, StoreReader

    store, ws, _ = production
    at = pd.Timestamp("2022-07-01", tz="UTC").to_pydatetime()
    lookup = OnlineLookup(store, ws)
    assert isinstance(lookup.reader, RedisReader)
    ids = ["A", "B", "C", "D"]
    got = lookup.frame(lookup.patients(ids, at=at))
    pd.testing.assert_frame_equal(got, online_features(ids, store=store, workspace=ws, at=at),
                                  check_dtype=False)
    lookup.reader = StoreReader(store)  # Feast's own online_read, view by view
    pd.testing.assert_frame_equal(lookup.frame(lookup.patients(ids, at=at)), got)


def test_feature_server_on_redis_and_postgres(production):
    from test_server import call, check_patients

    from feature_repo.serving.server import create_app, running

    store, ws, _ = production
    with running(create_app(store, ws)) as url:
        assert call(url, "/health") == (200, {"status": "ok", "registry": "ok", "online_store": "ok"})
        check_patients(url)


@pytest.fixture
def registry_down(hand_built_copy, tmp_path, monkeypatch):
    """The production profile with its registry URL on a closed loopback port ("PostgreSQL down")."""
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SDOH_PROFILE", "production")
    monkeypatch.setenv("SDOH_REGISTRY_URL", f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{port}/x")
    return hand_built_copy(tmp_path / "ws"), port


def test_apply_with_the_registry_down_is_a_clear_error(registry_down):
    ws, port = registry_down
    with pytest.raises(ServiceUnavailable, match=rf"cannot reach the Feast registry at "
                                                 rf"postgresql\+psycopg://postgres:\*\*\*@127.0.0.1:{port}/x"):
        apply_definitions(feature_store(ws), ws)


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_sdoh_apply_with_the_registry_down_prints_one_line(registry_down, verbose):
    ws, port = registry_down
    result = CliRunner().invoke(sdoh, [*(["-v"] if verbose else []), "apply",
                                       "--workspace", str(ws.root)])
    assert result.exit_code == 1
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"error: cannot reach the Feast registry at postgresql+psycopg://"
                            f"postgres:***@127.0.0.1:{port}/x (")
    assert "Connection refused" in first
    assert first.endswith("; start PostgreSQL or point SDOH_REGISTRY_URL at a running one, or use "
                          "the embedded profile (unset SDOH_PROFILE)")
    assert "s3cret" not in result.output
    if verbose:
        assert "OperationalError" in "\n".join(rest)  # the cause, under -v only
    else:
        assert rest == [] and "Traceback" not in result.output


def test_the_online_stores_redis_client_is_bounded(production):
    store, _, _ = production
    client = store._get_provider().online_store._get_client(store.config.online_store)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2, 2)
    assert client.get_retry()._retries == 1  # not redis-py's 3 retries with 1+2+4 s of backoff
