"""Fault injection on the online store: wiped, killed, frozen; sources that drop entities.

Every Redis here is the test's own (tests/redis_server.py: a free port, no persistence,
stopped by PID); the SQL registry is the shared PostgreSQL under a project of the test's own.
The embedded profile (SQLite) gets the same cases where they apply.
"""

import concurrent.futures
import contextlib
import sqlite3
import uuid

import pandas as pd
import pytest
from click.testing import CliRunner
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from hand_built import POVERTY, TIMELINE, acs_frame
from needs import require_service
from redis_server import RedisServer
from test_server import call

from feature_repo import OnlineLookup, apply_definitions, feature_store, materialize, online_features
from feature_repo.serving.lookup_rules import ADDRESSLESS, NO_ADDRESS, UNKNOWN_PATIENT
from feature_repo.serving.materialize import online_keys
from feature_repo.serving.server import create_app, running
from ingestion.cli import sdoh
from ingestion.core.datasets import acs_spec, geography_timeline_spec
from ingestion.core.errors import OnlineStoreUnavailable
from ingestion.core.workspace import Workspace
from ingestion.gate.publish import publish
from ingestion.geo.pseudonym import PATIENT_KEY_ENV, pseudonymize_ids, pseudonymize_timeline
from sdoh_sources import load_catalog

NOW = "2022-07-01T00:00:00Z"
AT = pd.Timestamp(NOW).to_pydatetime()
BODY = {"patient_ids": ["A", "B", "C", "D"], "at": NOW}
SECRET = "k" * 64
PROFILES = ["embedded", "production"]


class Served:
    """A hand-built workspace (a `hand_built_copy` of its own), applied and materialized under one profile."""

    def __init__(self, profile: str, ws: Workspace, monkeypatch, redis: RedisServer | None):
        self.profile, self.redis = profile, redis
        monkeypatch.setenv("SDOH_PROFILE", profile)
        if profile == "production":
            require_service("postgres")
            monkeypatch.setenv("SDOH_PROJECT", f"faults_{uuid.uuid4().hex[:8]}")
            monkeypatch.setenv("SDOH_REDIS", redis.address)
            monkeypatch.setenv("SDOH_REDIS_TIMEOUT_S", "1")
            monkeypatch.setenv("SDOH_REGISTRY_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
        self.ws = ws
        self.store = feature_store(self.ws)
        apply_definitions(self.store, self.ws)
        materialize(self.store, progress=False)

    def cli_materialize(self) -> str:
        """`sdoh materialize`, in process; its output."""
        result = CliRunner().invoke(sdoh, ["materialize", "--quiet", "--workspace", str(self.ws.root)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def wipe(self) -> None:
        """Empty the online store, as a Redis restart without persistence does."""
        if self.redis is not None:
            self.redis.client().flushall()  # the test's own server
            return
        with contextlib.closing(sqlite3.connect(self.ws.feast / "online_store.db")) as con, con:
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                con.execute(f'DELETE FROM "{table}"')

    def held(self, view: str, ids: list[str]) -> int:
        """How many of these ``patient_id`` (or other single string key) values the store holds."""
        fv = self.store.get_feature_view(view)
        join = fv.entity_columns[0].name
        protos = [EntityKeyProto(join_keys=[join], entity_values=[ValueProto(string_val=i)]) for i in ids]
        keys = [serialize_entity_key(p, entity_key_serialization_version=3) for p in protos]
        return online_keys(self.store, [(fv, keys)])[0]

    def close(self) -> None:
        if self.profile == "production":
            self.store.registry.delete_project(self.store.project, commit=True)


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(params=PROFILES)
def served(request, hand_built_copy, tmp_path, monkeypatch):
    redis = request.getfixturevalue("own_redis") if request.param == "production" else None
    side = Served(request.param, hand_built_copy(tmp_path / "ws"), monkeypatch, redis)
    yield side
    side.close()


@pytest.fixture
def on_redis(hand_built_copy, tmp_path, monkeypatch, own_redis):
    side = Served("production", hand_built_copy(tmp_path / "ws"), monkeypatch, own_redis)
    yield side
    side.close()


def test_reasons_are_in_the_catalog():
    reasons = load_catalog().missing_reasons
    assert {NO_ADDRESS, UNKNOWN_PATIENT} == set(ADDRESSLESS) <= set(reasons)


# --------------------------------------------------------------------------------------------
# A wiped store: 503, never a record of nulls, until `sdoh materialize` refills it


def test_a_wiped_store_is_503_until_materialize_refills_it(served):
    with running(create_app(served.store, served.ws)) as url:
        assert call(url, "/health")[0] == 200
        status, before = call(url, "/patients/features", BODY)
        assert status == 200 and before["results"][0]["acs_tract__pct_below_poverty"] == 6.0
        served.wipe()

        status, health = call(url, "/health")
        assert status == 503 and health["status"] == "unavailable"
        assert set(health["views"]) == {"acs_tract", "acs_zcta", "acs_state", "patient_geography"}
        assert health["views"]["acs_tract"].startswith("empty: 0 of 7 sampled keys present")
        status, reply = call(url, "/patients/features", BODY)
        assert status == 503 and "lost materialized rows: patient_geography empty" in reply["error"]
        with pytest.raises(OnlineStoreUnavailable, match="patient_geography empty.*sdoh materialize"):
            OnlineLookup(served.store, served.ws).patients(["A"], at=AT)

        out = served.cli_materialize()
        assert "acs_tract" in out and "7 rows written; 7 of 7 keys verified, 7 lost keys refilled" in out
        assert "patient_geography" in out and "4 of 4 keys verified, 4 lost keys refilled" in out
        assert call(url, "/health") == (200, {"status": "ok", "registry": "ok", "online_store": "ok"})
        assert call(url, "/patients/features", BODY) == (200, before)


def test_a_second_materialize_verifies_and_writes_nothing(served):
    out = served.cli_materialize()
    assert out.count(" 0 rows written;") == 4 and "lost keys" not in out
    assert "online store up to date: 17 keys of 4 views verified against their sources" in out


def test_an_area_view_wiped_alone_is_not_served_as_geography_not_in_vintage(on_redis):
    client = on_redis.redis.client()
    tract_keys = [k for k in client.scan_iter(count=1000) if b"tract_geoid" in k]
    client.delete(*tract_keys)
    with pytest.raises(OnlineStoreUnavailable, match="acs_tract empty"):
        OnlineLookup(on_redis.store, on_redis.ws).locations(["99001000100"], at=AT)


# --------------------------------------------------------------------------------------------
# Redis killed or frozen under load: values or a JSON 503, never a hang; then it recovers


def _lookups(url: str, n: int, pool: concurrent.futures.Executor) -> list[concurrent.futures.Future]:
    return [pool.submit(call, url, "/patients/features", BODY) for _ in range(n)]


def test_redis_killed_under_load_answers_values_or_503_then_recovers(on_redis):
    with running(create_app(on_redis.store, on_redis.ws)) as url:
        status, expected = call(url, "/patients/features", BODY)
        assert status == 200
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            before = _lookups(url, 60, pool)
            concurrent.futures.wait(before[:6])  # load is on
            on_redis.redis.kill()
            after = _lookups(url, 20, pool)
            done, pending = concurrent.futures.wait(before + after, timeout=30)
        assert not pending
        answers = [f.result() for f in before + after]
        for status, reply in answers:
            assert (status, reply) == (200, expected) or \
                (status == 503 and "the online store (Redis) did not answer" in reply["error"]), reply
        assert all(f.result()[0] == 503 for f in after)
        status, health = call(url, "/health")
        assert status == 503 and health["online_store"].startswith("error: ConnectionError")

        on_redis.redis.start()  # back, empty: no persistence
        status, health = call(url, "/health")
        assert status == 503 and "empty" in health["views"]["patient_geography"]
        assert call(url, "/patients/features", BODY)[0] == 503
        assert "lost keys refilled" in on_redis.cli_materialize()
        assert call(url, "/patients/features", BODY) == (200, expected)
        assert call(url, "/health")[0] == 200


def test_a_frozen_redis_answers_json_503_within_the_timeout(on_redis):
    with running(create_app(on_redis.store, on_redis.ws)) as url:
        status, expected = call(url, "/patients/features", BODY)
        on_redis.redis.freeze()
        try:
            status, reply = call(url, "/patients/features", BODY)  # the client waits 10 s at most
            assert status == 503 and "TimeoutError" in reply["error"], reply
            feast_status, feast_reply = call(url, "/get-online-features", {
                "features": ["acs_state:pct_below_poverty"],
                "entities": {"state_geoid": ["99"], "vintage": [2020]}})
            assert feast_status == 503 and "did not answer" in feast_reply["error"]
            status, health = call(url, "/health")
            assert status == 503 and health["online_store"] == "error: TimeoutError"
        finally:
            on_redis.redis.thaw()
        assert call(url, "/patients/features", BODY) == (200, expected)


# --------------------------------------------------------------------------------------------
# Entities the source dropped are removed; a new id scheme purges the old keys


def test_a_patient_dropped_from_the_timeline_is_no_longer_served(served):
    assert served.held("patient_geography", ["A", "B", "C", "E"]) == 4
    publish(TIMELINE[TIMELINE["patient_id"] != "C"], geography_timeline_spec(), served.ws, merge=False)
    out = served.cli_materialize()
    assert "3 of 3 keys verified, 1 keys no longer in the source removed" in out
    assert served.held("patient_geography", ["A", "B", "C", "E"]) == 3
    assert served.held("patient_geography", ["C"]) == 0
    [c] = OnlineLookup(served.store, served.ws).patients(["C"], at=pd.Timestamp("2020-12-15", tz="UTC"))
    assert (c["acs_tract__pct_below_poverty"], c["acs_tract__pct_below_poverty_missing"]) == \
        (None, UNKNOWN_PATIENT)


def test_an_area_dropped_from_a_dataset_is_removed(served):
    kept = {k: v for k, v in POVERTY.items() if k[0] != "99001000302"}
    publish(acs_frame("tract", kept), acs_spec("tract"), served.ws, merge=False)
    out = served.cli_materialize()
    assert "5 of 5 keys verified, 2 keys no longer in the source removed" in out
    [row] = OnlineLookup(served.store, served.ws).locations(["99001000302"], at=AT)
    assert (row["acs_tract__pct_below_poverty"], row["acs_tract__pct_below_poverty_missing"]) == \
        (None, "geography_not_in_vintage")


def test_switching_to_pseudonymized_ids_purges_the_raw_keys(served, monkeypatch):
    raw = ["A", "B", "C", "E"]
    assert served.held("patient_geography", raw) == 4
    monkeypatch.setenv(PATIENT_KEY_ENV, SECRET)
    publish(pseudonymize_timeline(TIMELINE, secret=SECRET.encode()), geography_timeline_spec(), served.ws,
            merge=False)  # as `sdoh link --pseudonymize` publishes it
    out = served.cli_materialize()
    assert "4 of 4 keys verified, 4 keys no longer in the source removed" in out
    assert served.held("patient_geography", raw) == 0
    hashed = pseudonymize_ids(pd.Series(raw), secret=SECRET.encode()).tolist()
    assert served.held("patient_geography", hashed) == 4
    frame = online_features(["A", "D"], store=served.store, workspace=served.ws, at=AT)
    assert frame.loc[0, "acs_tract__pct_below_poverty"] == 6.0
    assert frame.loc[1, "acs_tract__pct_below_poverty_missing"] == UNKNOWN_PATIENT


# --------------------------------------------------------------------------------------------
# Unknown ids: typed, on the SDK and over HTTP, apart from a real gap


def test_an_unknown_patient_is_typed_on_sdk_and_http(served):
    at = pd.Timestamp("2021-06-01", tz="UTC").to_pydatetime()  # C's address period has ended
    frame = online_features(["C", "nobody"], store=served.store, workspace=served.ws, at=at)
    assert frame["acs_state__pct_below_poverty_missing"].tolist() == [NO_ADDRESS, UNKNOWN_PATIENT]
    with running(create_app(served.store, served.ws)) as url:
        status, reply = call(url, "/patients/features", {"patient_ids": ["C", "nobody"],
                                                         "at": at.isoformat()})
    assert status == 200
    reasons = [r["acs_tract__pct_below_poverty_missing"] for r in reply["results"]]
    assert reasons == [NO_ADDRESS, UNKNOWN_PATIENT]
    assert [r["acs_tract__geoid"] for r in reply["results"]] == [None, None]


def test_keys_of_another_project_ending_alike_are_left_alone(on_redis):
    # Redis keys are the serialized entity key + the project: "other_<project>" also ends in
    # "<project>", and its keys match the scan pattern; they must not be counted or removed.
    client = on_redis.redis.client()
    proto = EntityKeyProto(join_keys=["patient_id"], entity_values=[ValueProto(string_val="Z")])
    key = serialize_entity_key(proto, entity_key_serialization_version=3) + \
        b"other_" + on_redis.store.project.encode()
    client.hset(key, b"_ts:patient_geography", b"")
    out = on_redis.cli_materialize()
    assert "4 of 4 keys verified" in out and "removed" not in out
    assert client.exists(key) == 1
