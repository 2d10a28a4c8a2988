"""The embedded online store read without Feast (feature_repo.serving.online_sqlite): Feast's answers.

The same `OnlineLookup` runs on a FeatureStore (Feast's registry and ``online_read``) and on
the recorded plan with Feast's SQLite tables read directly; values, reasons and errors must
be identical.
"""

import contextlib
import datetime as dt
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from feature_repo import OnlineLookup, apply_definitions, feature_store, materialize
from feature_repo.serving.online import online_features, workspace_online_features
from feature_repo.serving.online_sqlite import PLAN_FILE, plan_source, serialize_key
from ingestion.core.errors import OnlineStoreUnavailable
from ingestion.core.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
IDS = ["A", "B", "C", "D", "E", "A"]


def at(text: str) -> dt.datetime:
    return pd.Timestamp(text, tz="UTC").to_pydatetime()


def served_copy(ws: Workspace) -> tuple:
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=at("2026-01-01"), progress=False)
    return store, ws


@pytest.fixture(scope="module")
def served_once(tmp_path_factory, hand_built_copy):
    """A served copy of the hand-built region for the tests that only read (lookups rewrite the plan)."""
    return served_copy(hand_built_copy(tmp_path_factory.mktemp("ws")))


@pytest.fixture
def served(tmp_path, hand_built_copy):
    """A served copy of the region of the test's own, for the tests that damage it."""
    return served_copy(hand_built_copy(tmp_path / "ws"))


def _never(views):
    raise AssertionError(f"no key should be missing from {[v.name for v in views]}")


@pytest.mark.parametrize(("key", "value"), [
    (["patient_id"], ["A"]),
    (["tract_geoid", "vintage"], ["99001000100", 2021]),
    (["vintage", "tract_geoid"], [2021, "99001000100"]),  # Feast sorts by join key
])
def test_entity_keys_serialize_as_feasts(key, value):
    proto = EntityKeyProto(join_keys=key, entity_values=[
        ValueProto(int64_val=v) if isinstance(v, int) else ValueProto(string_val=v) for v in value])
    assert serialize_key(key, value) == serialize_entity_key(proto, entity_key_serialization_version=3)


@pytest.mark.parametrize("service", ["model_inputs_v1", "equity_audit_v1"])
@pytest.mark.parametrize("now", ["2020-06-01", "2021-06-01", "2022-07-01", "2023-01-01"])
def test_the_sqlite_reader_answers_as_feast(served_once, service, now):
    store, ws = served_once
    through_feast = OnlineLookup(store, ws, feature_service=service)
    direct = OnlineLookup(plan_source(ws, service, on_missing_rows=lambda views: None), ws,
                          feature_service=service)
    expected = through_feast.frame(through_feast.patients(IDS, at=at(now)))
    pd.testing.assert_frame_equal(direct.frame(direct.patients(IDS, at=at(now))), expected)
    # and with the one function the command line calls (keys missing: checked through Feast)
    got = workspace_online_features(IDS, workspace=ws, feature_service=service, at=at(now))
    pd.testing.assert_frame_equal(got, expected)


def test_a_plan_older_than_the_registry_is_not_used(served):
    store, ws = served
    assert plan_source(ws, "model_inputs_v1", on_missing_rows=_never) is not None
    registry = ws.feast / "registry.db"
    stat = registry.stat()
    os.utime(registry, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # `sdoh apply` elsewhere
    assert plan_source(ws, "model_inputs_v1", on_missing_rows=_never) is None
    OnlineLookup(store, ws)  # a lookup through Feast records the plan again
    assert plan_source(ws, "model_inputs_v1", on_missing_rows=_never) is not None
    assert plan_source(ws, "no_such_service", on_missing_rows=_never) is None
    assert plan_source(ws, "model_inputs_v1", profile="production", on_missing_rows=_never) is None


def _empty(ws: Workspace, table: str) -> None:
    with contextlib.closing(sqlite3.connect(ws.feast / "online_store.db")) as con, con:
        con.execute(f'DELETE FROM "{table}"')


def _error(call) -> str:
    with pytest.raises(OnlineStoreUnavailable) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize("damage", ["empty_rows", "drop_table"])
def test_a_damaged_store_raises_the_same_error_on_both_paths(served, damage):
    store, ws = served
    if damage == "empty_rows":
        _empty(ws, "sdoh_acs_tract")
    else:
        with contextlib.closing(sqlite3.connect(ws.feast / "online_store.db")) as con, con:
            con.execute('DROP TABLE "sdoh_acs_tract"')
    expected = _error(lambda: online_features(["A"], store=store, workspace=ws, at=at("2022-07-01")))
    assert plan_source(ws, "model_inputs_v1", on_missing_rows=_never) is not None
    assert _error(lambda: workspace_online_features(["A"], workspace=ws, at=at("2022-07-01"))) == expected


def test_the_command_line_lookup_does_not_import_feast(served_once):
    _, ws = served_once
    code = ("import sys, datetime as dt\n"
            "from feature_repo.serving.online import workspace_online_features\n"
            "from ingestion.core.workspace import Workspace\n"
            f"frame = workspace_online_features(['B'], workspace=Workspace({str(ws.root)!r}),\n"
            "                                   at=dt.datetime(2022, 7, 1, tzinfo=dt.UTC))\n"
            "print(frame.loc[0, 'acs_tract__pct_below_poverty_missing'], 'feast' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["po_box", "False"]
    assert (ws.feast / PLAN_FILE).exists()
