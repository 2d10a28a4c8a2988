"""fast_materialize writes what Feast's own materialize writes, byte for byte.

Every comparison materializes the same published data twice: with Feast's default
``store.materialize`` into one store and with `fast_materialize` into another, then compares
the raw online storage (SQLite rows, Redis hashes), ``get_online_features`` for every entity
key (plus keys that have no row) and the registry's materialization bookkeeping.
"""

import contextlib
import datetime as dt
import shutil
import sqlite3
import threading
import uuid

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.feature_view import FeatureViewState
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, extract_text_and_num
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.types import Float64, String
from hand_built import POVERTY, STATE_POVERTY, TIMELINE, acs_frame, timeline_row
from needs import require_service
from redis_server import RedisServer

from feature_repo import apply_definitions, feature_store
from feature_repo.serving.materialize import (
    _plan,
    encode_column,
    entity_keys,
    fast_materialize,
    latest_rows,
    text_column,
)
from ingestion.core.datasets import acs_spec, geography_timeline_spec
from ingestion.core.errors import PublishError
from ingestion.core.workspace import Workspace
from ingestion.gate.publish import publish
from sdoh_sources import load_catalog

UTC = dt.UTC
END = dt.datetime(2026, 1, 1, tzinfo=UTC)
EPOCH = dt.datetime(1970, 1, 2, tzinfo=UTC)
# The 2020 ACS vintage's release instant: a window boundary that rows sit exactly on.
SPLIT = dt.datetime(2022, 3, 17, tzinfo=UTC)
EARLY = dt.datetime(1960, 1, 1, tzinfo=UTC)  # before the default start: reaches 1960s rows


# --------------------------------------------------------------------------------------------
# Encoders against Feast's own conversion, on awkward values


def _feast_bytes(values, value_type):
    return [p.SerializeToString() for p in python_values_to_proto_values(values, value_type)]


ENCODER_CASES = {
    "doubles": (pa.array([0.0, -0.0, float("nan"), None, float("inf"), -float("inf"), 5e-324,
                          1e308, 0.1, 1 / 3, 123456789.123, -2.5]), ValueType.DOUBLE),
    "doubles from integers": (pa.array([0, -3, None, 2**40], type=pa.int64()), ValueType.DOUBLE),
    "all-null doubles": (pa.array([None, None], type=pa.float64()), ValueType.DOUBLE),
    "strings": (pa.array(["", "é", "日本語", None, "a" * 300, "po_box", "po_box", "\x00x"]),
                ValueType.STRING),
    "all-null strings": (pa.array([None, None], type=pa.string()), ValueType.STRING),
    "timestamps": (pa.array([pd.Timestamp("2021-01-01", tz="UTC"), None,
                             pd.Timestamp("1969-12-31T23:59:59.5", tz="UTC"),
                             pd.Timestamp("2022-03-17T04:05:06.789", tz="UTC")],
                            type=pa.timestamp("us", tz="UTC")), ValueType.UNIX_TIMESTAMP),
    "int64": (pa.array([0, -1, 2**62, None, 7], type=pa.int64()), ValueType.INT64),
    "int64 without nulls": (pa.array([0, -1, 2**63 - 1], type=pa.int64()), ValueType.INT64),
    "booleans": (pa.array([True, False, None]), ValueType.BOOL),
}


@pytest.mark.parametrize("case", ENCODER_CASES)
def test_encoded_values_equal_feasts_protos(case):
    array, value_type = ENCODER_CASES[case]
    expected = _feast_bytes(array.to_numpy(zero_copy_only=False), value_type)
    encoded = encode_column(pa.chunked_array([array[:2], array[2:]]), value_type)
    assert encoded.sqlite_values() == expected
    texts = [extract_text_and_num(ValueProto.FromString(b), False)[0] for b in expected]
    assert encoded.texts() == texts
    field = b"$4\r\n" + _mmh3("view:feature") + b"\r\n"
    assert encoded.redis_items(field) == [field + b"$%d\r\n%s\r\n" % (len(b), b) for b in expected]


@pytest.mark.parametrize(("join_keys", "columns"), [
    ({"tract_geoid": ValueType.STRING, "vintage": ValueType.INT64},
     {"tract_geoid": ["99001000100", "é日", ""], "vintage": [2019, -1, 2**40]}),
    ({"patient_id": ValueType.STRING}, {"patient_id": ["A", "Zoë", "x" * 200]}),
    ({"zeta": ValueType.INT32, "alpha": ValueType.STRING},
     {"zeta": [1, -2, 2**31 - 1], "alpha": ["b", "a", "c"]}),
])
def test_entity_keys_equal_feasts_serialization(join_keys, columns):
    table = pa.table(columns)
    got = entity_keys(table, join_keys)
    attr = {ValueType.STRING: "string_val", ValueType.INT64: "int64_val", ValueType.INT32: "int32_val"}
    for i, key in enumerate(got):
        proto = EntityKeyProto(join_keys=list(join_keys), entity_values=[
            ValueProto(**{attr[t]: columns[k][i]}) for k, t in join_keys.items()])
        assert key == serialize_entity_key(proto, entity_key_serialization_version=3)


def test_duckdb_text_of_doubles_is_pythons_str(tmp_path):
    # value_text of doubles comes from DuckDB's cast in the read query: it must be str(float)
    # for any double, here random bit patterns over the whole range plus awkward values, and
    # for integer columns served as Float64 ('5.0', as Feast's str(double_val)).
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**64, 200_000, dtype=np.uint64)
    x = bits.view(np.float64)
    x = np.concatenate([x[np.isfinite(x)], [0.0, -0.0, 1e16, 1e15, 1e-4, 9.9e-5, 5e-324, 0.1, 1 / 3,
                                            float("inf"), -float("inf"), 2.0**53, 123456789.0]])
    n = len(x)
    pa_table = pa.table({"k": [f"{i:07d}" for i in range(n)], "x": x, "i": rng.integers(-10**6, 10**6, n),
                         "ts": pa.array([pd.Timestamp("2022-01-01", tz="UTC")] * n,
                                        type=pa.timestamp("us", tz="UTC"))})
    pq.write_table(pa_table, tmp_path / "x.parquet")
    view = FeatureView(name="v", entities=[Entity(name="k", join_keys=["k"])],
                       schema=[Field(name="k", dtype=String), Field(name="x", dtype=Float64),
                               Field(name="i", dtype=Float64)],
                       source=FileSource(path=str(tmp_path / "x.parquet"), timestamp_field="ts"))
    got = latest_rows(_plan(view), start=EPOCH, end=END, with_text=True).sort_by("k")
    assert got.column(text_column("x")).to_pylist() == [str(v) for v in x]
    assert got.column(text_column("i")).to_pylist() == [str(float(v)) for v in pa_table["i"].to_pylist()]


def test_null_join_key_is_refused():
    with pytest.raises(ValueError, match="patient_id has null values"):
        entity_keys(pa.table({"patient_id": ["A", None]}), {"patient_id": ValueType.STRING})


# --------------------------------------------------------------------------------------------
# Published data: the hand-built region, a wider timeline and random block groups


def _timeline() -> pd.DataFrame:
    extra = pd.DataFrame([
        # Three periods: the first before the default window's start.
        timeline_row("Zoë-日本", "1965-01-01", "1970-01-03", "99001000300", "99001000301"),
        timeline_row("Zoë-日本", "1975-01-01", "2021-06-01", "99001000100", "99001000100"),
        timeline_row("Zoë-日本", "2023-01-01", None, reason="geocode_failed"),
        # One period before 1970 (a negative, sub-second timestamp), read from an early start.
        timeline_row("old", "1965-01-01", "1969-12-31T23:59:59.5", "99001000300", "99001000301"),
        # Only after the window's end: never materialized.
        timeline_row("late", "2027-01-01", None, "99001000100", "99001000100"),
        # Exactly at the split instant: in both windows (Feast's bounds are inclusive).
        timeline_row("edge", "2022-03-17", "2023-03-17T12:00:00.123456", "99001000300", "99001000302"),
    ])
    return pd.concat([TIMELINE, extra], ignore_index=True)[list(geography_timeline_spec().column_names)]


def _block_groups(seed: int = 7) -> pd.DataFrame:
    """Random ACS block groups in two states and two vintages, with suppressed values."""
    rng = np.random.default_rng(seed)
    catalog = load_catalog()
    spec = acs_spec("block_group")
    frames = []
    for vintage, n in ((2019, 60), (2021, 50)):
        release = catalog.release("acs5", vintage)
        geoids = [f"{s}{i:010d}" for s, i in zip(rng.choice(["98", "99"], n), range(n), strict=True)]
        columns = {"block_group_geoid": geoids, "vintage": vintage,
                   "boundary_year": release.boundary_vintage,
                   "release_ts": pd.Timestamp(release.release_ts), "synthetic": True,
                   "reliability_rule": catalog.default_reliability_rule}
        for m in catalog.acs.measures_at("block_group"):
            low, high = m.value_range
            high = 1e6 if high is None else high
            value = rng.uniform(low or 0.0, high, n)
            value[:3] = [low or 0.0, 1 / 3, 5e-324 if (low or 0.0) == 0.0 else low]
            moe = value * rng.uniform(0.0, 0.5, n)
            moe[0] = -0.0
            cv = np.divide(moe / 1.645, value, out=np.zeros(n), where=value > 0) * 100
            gone = rng.random(n) < 0.2
            value[gone] = moe[gone] = cv[gone] = np.nan
            reliability = np.where(cv <= 12, "high", np.where(cv <= 40, "medium", "low")).astype(object)
            reliability[gone] = None
            reason = np.full(n, None, dtype=object)
            reason[gone] = rng.choice(["insufficient_sample", "not_applicable"], int(gone.sum()))
            columns |= {m.name: value, f"{m.name}_moe": moe, f"{m.name}_cv": cv,
                        f"{m.name}_reliability": reliability, f"{m.name}_missing": reason}
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)[list(spec.column_names)]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Workspace:
    """A workspace with every dataset published once; tests copy its published/ folder."""
    ws = Workspace(tmp_path_factory.mktemp("fast_template"))
    publish(acs_frame("tract", POVERTY), acs_spec("tract"), ws)
    publish(acs_frame("state", STATE_POVERTY), acs_spec("state"), ws)
    publish(_block_groups(), acs_spec("block_group"), ws)
    publish(_timeline(), geography_timeline_spec(), ws)
    return ws


def _workspace(template: Workspace, root) -> Workspace:
    ws = Workspace(root)
    shutil.copytree(template.root / "published", ws.root / "published")
    return ws


def _embedded(template: Workspace, root):
    ws = _workspace(template, root)
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    return store, ws


# --------------------------------------------------------------------------------------------
# Comparisons


def _keys(store, ws, view_name: str) -> pd.DataFrame:
    """Every entity key a view's data has (in any window), and one key that has no row."""
    view = store.get_feature_view(view_name)
    names = [c.name for c in view.entity_columns]
    with duckdb.connect() as con:
        keys = con.execute(f"SELECT DISTINCT {', '.join(names)} FROM read_parquet(?) ORDER BY ALL",
                           [ws.published_glob(view_name)]).df()
    absent = {n: ("no-such-key" if keys[n].dtype == object else 1900) for n in names}
    return pd.concat([keys, pd.DataFrame([absent])], ignore_index=True)


def _online(store, ws) -> dict:
    """get_online_features for every key of every view, all features, as plain dicts."""
    out = {}
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        keys = _keys(store, ws, view.name)
        rows = [{k: (int(v) if isinstance(v, np.integer) else v) for k, v in r.items()}
                for r in keys.to_dict("records")]
        out[view.name] = store.get_online_features(
            features=[f"{view.name}:{f.name}" for f in view.features], entity_rows=rows).to_dict()
    return out


def _sqlite_rows(ws) -> dict:
    con = sqlite3.connect(ws.feast / "online_store.db")
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY entity_key, feature_name').fetchall()
                for t in sorted(tables)}
    finally:
        con.close()


def _bookkeeping(store) -> dict:
    return {v.name: (v.state, v.materialization_intervals) for v in store.list_feature_views()}


def assert_same_online(feast_side, fast_side):
    """Same online values through the SDK, same registry intervals and states."""
    (feast_store, feast_ws), (fast_store, fast_ws) = feast_side, fast_side
    feast_online, fast_online = _online(feast_store, feast_ws), _online(fast_store, fast_ws)
    assert fast_online == feast_online
    assert _bookkeeping(fast_store) == _bookkeeping(feast_store)
    return feast_online


def _latest_counts(ws, start, end) -> dict[str, int]:
    """Entity keys with a row in [start, end], per view: what fast_materialize should write."""
    keys = {"acs_tract": "tract_geoid, vintage", "acs_state": "state_geoid, vintage",
            "acs_block_group": "block_group_geoid, vintage", "patient_geography": "patient_id"}
    ts = {"patient_geography": "valid_from"}
    counts = {}
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        for view, key in keys.items():
            t = ts.get(view, "release_ts")
            counts[view] = con.execute(
                f"SELECT count(DISTINCT ({key})) FROM read_parquet(?) WHERE {t} BETWEEN ? AND ?",
                [ws.published_glob(view), start, end]).fetchone()[0]
    return counts


# --------------------------------------------------------------------------------------------
# SQLite


@pytest.mark.parametrize("batch_rows", [3, 10_000])
def test_sqlite_rows_and_online_values_equal_feasts(template, tmp_path, batch_rows):
    feast_store, feast_ws = feast_side = _embedded(template, tmp_path / "feast")
    fast_store, fast_ws = fast_side = _embedded(template, tmp_path / "fast")
    feast_store.materialize(start_date=EPOCH, end_date=END)
    written = fast_materialize(fast_store, start=EPOCH, end=END, progress=False, batch_rows=batch_rows)

    assert written == _latest_counts(fast_ws, EPOCH, END)
    feast_rows = _sqlite_rows(feast_ws)
    assert _sqlite_rows(fast_ws) == feast_rows  # every column: key, name, value, text, times
    assert sum(len(r) for r in feast_rows.values()) > 10_000
    online = assert_same_online(feast_side, fast_side)
    # The comparison covers what matters: values, missing values, strings and timestamps.
    geo = {k: dict(zip(online["patient_geography"]["patient_id"], v, strict=True))
           for k, v in online["patient_geography"].items()}
    assert geo["link_missing"]["Zoë-日本"] == "geocode_failed"  # its 2023 period is the latest
    assert geo["tract_geoid_2010"]["Zoë-日本"] is None
    assert geo["valid_to"]["edge"] == dt.datetime(2023, 3, 17, 12, tzinfo=UTC)  # whole seconds
    assert geo["tract_geoid_2010"]["old"] is None  # 1965: before the window
    assert geo["tract_geoid_2010"]["late"] is None  # 2027: after it
    assert None in online["acs_block_group"]["pct_below_poverty"]
    assert online["acs_tract"]["pct_below_poverty"][:2] == [5.0, 6.0]


def test_sqlite_incremental_windows_equal_feasts(template, tmp_path):
    feast_side = _embedded(template, tmp_path / "feast")
    fast_side = _embedded(template, tmp_path / "fast")
    (feast_store, _), (fast_store, fast_ws) = feast_side, fast_side

    feast_store.materialize(start_date=EARLY, end_date=SPLIT)
    first = fast_materialize(fast_store, start=EARLY, end=SPLIT, progress=False)
    assert first == _latest_counts(fast_ws, EARLY, SPLIT)
    assert _sqlite_rows(fast_side[1]) == _sqlite_rows(feast_side[1])
    online = assert_same_online(feast_side, fast_side)
    geo = {k: dict(zip(online["patient_geography"]["patient_id"], v, strict=True))
           for k, v in online["patient_geography"].items()}
    assert geo["tract_geoid_2010"]["Zoë-日本"] == "99001000100"  # 1975: latest up to SPLIT
    assert geo["valid_to"]["old"] == dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert geo["tract_geoid_2010"]["edge"] == "99001000300"

    # The second window writes only the rows released in it (new vintages, new addresses).
    feast_store.materialize(start_date=SPLIT, end_date=END)
    second = fast_materialize(fast_store, start=SPLIT, end=END, progress=False)
    assert second == _latest_counts(fast_ws, SPLIT, END)
    assert second["acs_tract"] == 5  # the 2020 vintage (released at SPLIT, so in both) and 2021
    assert second["acs_state"] == 2
    assert _sqlite_rows(fast_side[1]) == _sqlite_rows(feast_side[1])
    online = assert_same_online(feast_side, fast_side)
    assert len(fast_store.get_feature_view("acs_tract").materialization_intervals) == 2
    geo = online["patient_geography"]
    assert geo["tract_geoid_2010"][geo["patient_id"].index("A")] == "99001000100"  # moved in 2022


def test_only_the_named_views_are_materialized(template, tmp_path):
    store, ws = _embedded(template, tmp_path / "ws")
    assert fast_materialize(store, views=["acs_state"], end=END, progress=False) == {"acs_state": 3}
    rows = _sqlite_rows(ws)
    assert len(rows["sdoh_acs_state"]) == 3 * len(store.get_feature_view("acs_state").features)
    assert rows["sdoh_acs_tract"] == []
    book = _bookkeeping(store)
    assert book["acs_state"][0] == FeatureViewState.AVAILABLE_ONLINE
    assert book["acs_tract"] == (FeatureViewState.STATE_UNSPECIFIED, [])


def test_an_empty_window_writes_nothing_but_is_recorded(template, tmp_path):
    store, ws = _embedded(template, tmp_path / "ws")
    start, end = dt.datetime(1980, 1, 1, tzinfo=UTC), dt.datetime(1981, 1, 1, tzinfo=UTC)
    written = fast_materialize(store, start=start, end=end, progress=False)
    assert set(written.values()) == {0}
    assert all(rows == [] for rows in _sqlite_rows(ws).values())
    assert store.get_feature_view("acs_tract").materialization_intervals == [(start, end)]


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"start": END, "end": EPOCH}, ValueError, "is after end"),
    ({"views": ["acs_nowhere"]}, ValueError, r"unknown feature views \['acs_nowhere'\]"),
    ({"views": "acs_state"}, TypeError, "sequence of view names"),
    ({"batch_rows": 0}, ValueError, "batch_rows must be at least 1"),
])
def test_bad_arguments(template, tmp_path, kwargs, error, match):
    store, _ = _embedded(template, tmp_path / "ws")
    with pytest.raises(error, match=match):
        fast_materialize(store, progress=False, **kwargs)


def test_a_missing_online_table_says_to_apply_first(template, tmp_path):
    store, ws = _embedded(template, tmp_path / "ws")
    con = sqlite3.connect(ws.feast / "online_store.db")
    con.execute('DROP TABLE "sdoh_acs_state"')
    con.close()
    with pytest.raises(PublishError, match="sdoh_acs_state does not exist.*apply the definitions"):
        fast_materialize(store, views=["acs_state"], progress=False)
    assert store.get_feature_view("acs_state").materialization_intervals == []


def test_a_failure_half_way_rolls_back_and_records_nothing(template, tmp_path, monkeypatch):
    import feature_repo.serving.materialize as fm

    store, ws = _embedded(template, tmp_path / "ws")
    fast_materialize(store, views=["acs_tract"], end=SPLIT, progress=False)
    before_rows, before_book = _sqlite_rows(ws), _bookkeeping(store)
    assert before_book["acs_tract"][0] == FeatureViewState.AVAILABLE_ONLINE
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2 * len(store.get_feature_view("acs_tract").features):  # third batch
            raise RuntimeError("disk on fire")
        return encode(*args, **kwargs)

    encode = fm.encode_column
    monkeypatch.setattr(fm, "encode_column", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        fast_materialize(store, views=["acs_tract"], end=END, progress=False, batch_rows=2)
    assert _sqlite_rows(ws) == before_rows  # the two batches written before were rolled back
    assert _bookkeeping(store) == before_book  # no new interval; state back to AVAILABLE_ONLINE
    assert not [t for t in threading.enumerate() if t.name.startswith("fast_materialize")]


# --------------------------------------------------------------------------------------------
# Redis (production profile: SQL registry on PostgreSQL, a Redis server of this module's own)
#
# Not the shared 127.0.0.1:6379: other test runs flush its databases (tests/test_production_
# profile.py did, for db 15), which removed these tests' keys mid-test when runs overlapped and
# made the rerun checks below fail "under load" only.


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@contextlib.contextmanager
def _production(template, root, project, redis_address):
    settings = {"SDOH_PROJECT": project, "SDOH_REDIS": redis_address,
                "SDOH_REGISTRY_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test"}
    ws = _workspace(template, root)
    with pytest.MonkeyPatch.context() as env:
        for key, value in settings.items():
            env.setenv(key, value)
        store = feature_store(ws, profile="production")
    try:
        apply_definitions(store, ws)
        yield store, ws
    finally:
        store.registry.delete_project(project, commit=True)


def _redis(store):
    """The client the store itself uses."""
    return store._get_provider().online_store._get_client(store.config.online_store)


@pytest.fixture
def redis_pair(template, tmp_path, own_redis):
    require_service("postgres")
    tag = uuid.uuid4().hex[:8]
    with _production(template, tmp_path / "feast", f"fastmat_feast_{tag}", own_redis.address) as feast_side, \
            _production(template, tmp_path / "fast", f"fastmat_fast_{tag}", own_redis.address) as fast_side:
        yield feast_side, fast_side
    own_redis.client().flushall()  # this module's own server


def _hashes(store, ws) -> dict:
    """Every Redis hash of the store's project, by (view, entity key): all fields and values."""
    client = _redis(store)
    project = store.config.project.encode()
    out = {}
    for view in store.list_feature_views():
        join_keys = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
        for row in _keys(store, ws, view.name).to_dict("records"):
            values = [ValueProto(string_val=row[k]) if t == ValueType.STRING
                      else ValueProto(int64_val=int(row[k])) for k, t in join_keys.items()]
            key = serialize_entity_key(EntityKeyProto(join_keys=list(join_keys), entity_values=values),
                                       entity_key_serialization_version=3)
            out[view.name, key] = client.hgetall(key + project)
    assert client.dbsize() > 0
    return out


def _project_keys(store) -> int:
    return sum(1 for _ in _redis(store).scan_iter(match=b"*" + store.config.project.encode(), count=10_000))


@pytest.mark.services
@pytest.mark.parametrize("ttl", [None, 3600])
def test_redis_hashes_and_online_values_equal_feasts(redis_pair, ttl):
    feast_side, fast_side = redis_pair
    (feast_store, _), (fast_store, fast_ws) = feast_side, fast_side
    for store in (feast_store, fast_store):
        store.config.online_store.key_ttl_seconds = ttl
    feast_store.materialize(start_date=EPOCH, end_date=END)
    written = fast_materialize(fast_store, start=EPOCH, end=END, progress=False, batch_rows=7)

    assert written == _latest_counts(fast_ws, EPOCH, END)
    feast_hashes = _hashes(*feast_side)
    assert _hashes(*fast_side) == feast_hashes
    assert sum(len(h) for h in feast_hashes.values()) > 10_000
    assert _project_keys(fast_store) == _project_keys(feast_store)
    assert_same_online(feast_side, fast_side)
    some_key = next(iter(_redis(fast_store).scan_iter(match=b"*" + fast_store.config.project.encode())))
    assert (_redis(fast_store).ttl(some_key) > 0) == bool(ttl)


@pytest.mark.services
def test_redis_incremental_windows_and_reruns_equal_feasts(redis_pair):
    feast_side, fast_side = redis_pair
    (feast_store, _), (fast_store, fast_ws) = feast_side, fast_side
    feast_store.materialize(start_date=EARLY, end_date=SPLIT)
    assert fast_materialize(fast_store, start=EARLY, end=SPLIT, progress=False) == \
        _latest_counts(fast_ws, EARLY, SPLIT)
    assert _hashes(*fast_side) == _hashes(*feast_side)

    feast_store.materialize(start_date=SPLIT, end_date=END)
    second = fast_materialize(fast_store, start=SPLIT, end=END, progress=False)
    # Rows sitting exactly on SPLIT were written by the first window with the same event
    # time: Feast's Redis writer skips a key whose stored timestamp is not older, and so do we.
    on_split = _latest_counts(fast_ws, SPLIT, SPLIT)
    expected = _latest_counts(fast_ws, SPLIT, END)
    assert second == {v: expected[v] - on_split[v] for v in expected}
    assert _hashes(*fast_side) == _hashes(*feast_side)
    assert_same_online(feast_side, fast_side)

    # A rerun of a whole window finds every stored timestamp as new: nothing is written.
    feast_store.materialize(start_date=EPOCH, end_date=END)
    assert set(fast_materialize(fast_store, start=EPOCH, end=END, progress=False).values()) == {0}
    assert _hashes(*fast_side) == _hashes(*feast_side)


@pytest.mark.services
def test_redis_skip_dedup_rewrites_like_feast(redis_pair):
    feast_side, fast_side = redis_pair
    (feast_store, _), (fast_store, fast_ws) = feast_side, fast_side
    for store in (feast_store, fast_store):
        store.config.online_store.skip_dedup = True
        store.materialize(start_date=SPLIT, end_date=END)
    feast_store.materialize(start_date=EPOCH, end_date=END)
    assert fast_materialize(fast_store, start=EPOCH, end=END, progress=False) == \
        _latest_counts(fast_ws, EPOCH, END)
    assert _hashes(*fast_side) == _hashes(*feast_side)


@pytest.mark.services
@pytest.mark.parametrize("skip_dedup", [False, True], ids=["error reading _ts", "error in the sender"])
def test_a_redis_error_is_raised_not_hung(redis_pair, skip_dedup):
    import redis

    _, (fast_store, fast_ws) = redis_pair
    fast_store.config.online_store.skip_dedup = skip_dedup
    # A string where the hash of one entity key goes: Redis answers WRONGTYPE.
    names = ["patient_id"]
    key = serialize_entity_key(EntityKeyProto(join_keys=names, entity_values=[ValueProto(string_val="B")]),
                               entity_key_serialization_version=3)
    _redis(fast_store).set(key + fast_store.config.project.encode(), b"not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        fast_materialize(fast_store, views=["patient_geography"], end=END, progress=False, batch_rows=1)
    assert fast_store.get_feature_view("patient_geography").materialization_intervals == []
    # The client is usable afterwards: another view goes through.
    assert fast_materialize(fast_store, views=["acs_state"], end=END, progress=False) == {"acs_state": 3}


# --------------------------------------------------------------------------------------------
# feature_repo.materialize and `sdoh materialize`: fast by default, incremental


def _cli(*args):
    from click.testing import CliRunner

    from ingestion.cli import sdoh

    result = CliRunner().invoke(sdoh, [*args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def cli_pair(template, tmp_path, monkeypatch):
    """Two embedded workspaces with definitions applied through the CLI: (Feast's, ours)."""
    monkeypatch.setenv("SDOH_PROFILE", "embedded")
    sides = []
    for name in ("feast", "fast"):
        ws = _workspace(template, tmp_path / name)
        _cli("apply", "--workspace", str(ws.root))
        sides.append((feature_store(ws), ws))
    return sides


def test_cli_fast_and_feast_paths_give_identical_online_values(cli_pair):
    (feast_store, feast_ws), (fast_store, fast_ws) = cli_pair
    feast_out = _cli("materialize", "--feast-default", "--quiet", "--workspace", str(feast_ws.root))
    fast_out = _cli("materialize", "--quiet", "--workspace", str(fast_ws.root))
    assert "written by Feast" in feast_out
    assert "acs_tract                    first" in fast_out and "7 rows written" in fast_out
    assert _sqlite_rows(fast_ws) == _sqlite_rows(feast_ws)
    assert _online(fast_store, fast_ws) == _online(feast_store, feast_ws)
    for store in (feast_store, fast_store):  # one recorded window per view, from 1970 to now
        intervals = [v.materialization_intervals for v in store.list_feature_views()]
        assert all(len(i) == 1 and i[0][0] == EPOCH for i in intervals)


def test_a_second_run_without_new_data_writes_nothing(cli_pair):
    _, (store, ws) = cli_pair
    _cli("materialize", "--quiet", "--workspace", str(ws.root))
    before = _sqlite_rows(ws)
    out = _cli("materialize", "--quiet", "--workspace", str(ws.root))
    assert out.count("incremental") == 4 and out.count(" 0 rows written") == 4
    assert _sqlite_rows(ws) == before
    assert all(len(v.materialization_intervals) == 2 for v in store.list_feature_views())


def test_a_vintage_published_late_is_materialized_and_nothing_else(cli_pair):
    from feature_repo import materialize

    (feast_store, feast_ws), (store, ws) = cli_pair
    for side in cli_pair:
        materialize(side[0], progress=False)
    # A state first published now, for the 2019 vintage (released 2020-12-10): its rows are
    # older than the last window's end, so Feast's materialize-incremental never reads them.
    late = acs_frame("state", {("98", 2019): 4.0})
    for workspace in (feast_ws, ws):
        publish(late, acs_spec("state"), workspace)
    feast_store.materialize_incremental(end_date=dt.datetime.now(UTC))
    done = {w.view: w for w in materialize(store, progress=False)}
    assert done["acs_state"].reason == "files changed" and done["acs_state"].written == 4
    assert {w.written for name, w in done.items() if name != "acs_state"} == {0}
    row = [{"state_geoid": "98", "vintage": 2019}]
    ours = store.get_online_features(features=["acs_state:pct_below_poverty"], entity_rows=row)
    feasts = feast_store.get_online_features(features=["acs_state:pct_below_poverty"], entity_rows=row)
    assert ours.to_dict()["pct_below_poverty"] == [4.0]
    assert feasts.to_dict()["pct_below_poverty"] == [None]  # why the files are tracked


def test_materialize_refuses_an_unknown_view(cli_pair):
    from click.testing import CliRunner

    from ingestion.cli import sdoh

    _, (_, ws) = cli_pair
    result = CliRunner().invoke(sdoh, ["materialize", "--view", "acs_nowhere", "--workspace", str(ws.root)])
    assert result.exit_code == 1
    assert "unknown feature views ['acs_nowhere']" in result.output
