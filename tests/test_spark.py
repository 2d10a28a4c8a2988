"""The Spark profile and the Spark jobs give the values of the embedded profile and local path.

One SparkSession serves the whole run (session fixture, configured as the profile configures
it); the demo region is the data. A Redis of the module's own backs the profile's online store
(never the shared one, which other test runs use at the same time).
"""

import contextlib
import json
import os
import shutil
import uuid
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from hand_built import POVERTY, TIMELINE, acs_frame
from redis_server import RedisServer

pytest.importorskip("pyspark")

from feast import FeatureService  # noqa: E402
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource  # noqa: E402
from pyspark import SparkConf  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402

from feature_repo import apply_definitions, feature_store, materialize, online_features, training_frame  # noqa: E402
from feature_repo import write_training_frame as write_any_profile  # noqa: E402
from feature_repo.definitions.data_sources import published_source  # noqa: E402
from feature_repo.serving.spark import spark_training_frame, write_training_frame  # noqa: E402
from feature_repo.serving.store import render_profile  # noqa: E402
from ingestion.core.datasets import acs_spec, geography_timeline_spec  # noqa: E402
from ingestion.core.errors import InputError, LinkageError  # noqa: E402
from ingestion.core.settings import default_worker_python  # noqa: E402
from ingestion.core.workspace import Workspace  # noqa: E402
from ingestion.demo.replay import CensusReplayServer  # noqa: E402
from ingestion.derive.adi import adi_variables, compute_adi  # noqa: E402
from ingestion.derive.svi import compute_svi, svi_variables  # noqa: E402
from ingestion.gate.publish import publish  # noqa: E402
from ingestion.geo.boundaries import load_boundary_set  # noqa: E402
from ingestion.geo.linking import link_addresses, read_address_history  # noqa: E402
from ingestion.geo.pseudonym import PATIENT_KEY_ENV, pseudonymize_timeline  # noqa: E402
from ingestion.jobs.ingest import group_quarters_inputs  # noqa: E402
from ingestion.jobs.spark_jobs import (  # noqa: E402
    compute_adi_spark,
    compute_svi_spark,
    link_addresses_spark,
)
from ingestion.sources.census_api import CensusClient, get_acs  # noqa: E402

pytestmark = pytest.mark.spark
SECRET = "s3cret-" + "0123456789abcdef" * 2
SERVICE = "spark_check_v1"  # a small service: tract ACS (boundary vintage moves) and county SVI
AT = pd.Timestamp("2023-06-01", tz="UTC").to_pydatetime()


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The run's one SparkSession, with the spark profile's spark_conf (Feast reuses it)."""
    text = render_profile(Workspace(tmp_path_factory.mktemp("conf")), "spark")
    conf = yaml.safe_load(text)["offline_store"]["spark_conf"]
    default_worker_python(os.environ)
    session = SparkSession.builder.config(conf=SparkConf().setAll(list(conf.items()))).getOrCreate()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def demo(demo_run):
    """The demo workspace and its region's manifest."""
    ws, _ = demo_run
    root = ws.raw / "demo_region"
    return ws, root, json.loads((root / "manifest.json").read_text())


@pytest.fixture(scope="module")
def events(demo):
    _, root, manifest = demo
    return pd.read_csv(root / manifest["patients"]["encounters"]["path"], dtype={"patient_id": str})


def _copy_published(demo_ws: Workspace, ws: Workspace) -> Workspace:
    shutil.copytree(demo_ws.root / "published", ws.root / "published")
    return ws


def _with_small_service(store) -> None:
    tract, county = store.get_feature_view("acs_tract"), store.get_feature_view("svi_county_state")
    store.apply([FeatureService(name=SERVICE, features=[
        tract[["pct_below_poverty", "median_household_income"]], county[["svi_state_rpl_themes"]]])])


@pytest.fixture(scope="module")
def embedded(demo, tmp_path_factory):
    """The embedded profile on a copy of the demo's published data (SQLite online store)."""
    ws = _copy_published(demo[0], Workspace(tmp_path_factory.mktemp("embedded")))
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    _with_small_service(store)
    materialize(store, end=AT, progress=False)
    return store, ws


@pytest.fixture(scope="module")
def spark_redis(tmp_path_factory):
    """A Redis of this module's own for the spark profile's online store."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@contextlib.contextmanager
def _spark_profile(ws: Workspace, redis_server: RedisServer):
    """The spark profile's store of ``ws``, definitions applied (Redis online store)."""
    settings = {"SDOH_PROFILE": "spark", "SDOH_PROJECT": f"sdoh_spark_{uuid.uuid4().hex[:8]}",
                "SDOH_REDIS": redis_server.address}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        store = feature_store(ws, profile="spark")
        apply_definitions(store, ws)
        yield store


@pytest.fixture(scope="module")
def on_spark(demo, embedded, spark, spark_redis, tmp_path_factory):
    """The spark profile on another copy: Spark offline store, Redis online store."""
    ws = _copy_published(demo[0], Workspace(tmp_path_factory.mktemp("spark")))
    with _spark_profile(ws, spark_redis) as store:
        _with_small_service(store)
        yield store, ws


@pytest.fixture(scope="module")
def expected(embedded, events):
    store, ws = embedded
    return training_frame(events, store=store, workspace=ws, feature_service=SERVICE)


def test_profile_renders_spark_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SDOH_SPARK_MASTER", "spark://head:7077")
    text = render_profile(Workspace(tmp_path), "spark")
    config = yaml.safe_load(text)
    assert config["offline_store"]["type"] == "spark"
    assert config["offline_store"]["spark_conf"]["spark.master"] == "spark://head:7077"
    assert config["offline_store"]["spark_conf"]["spark.sql.session.timeZone"] == "UTC"
    assert config["online_store"]["type"] == "redis"


def test_sources_switch_with_the_profile(tmp_path, monkeypatch):
    spec, ws = geography_timeline_spec(), Workspace(tmp_path)
    monkeypatch.setenv("SDOH_PROFILE", "spark")  # the argument decides, not the environment
    assert not isinstance(published_source(spec, ws, profile="embedded"), SparkSource)
    monkeypatch.delenv("SDOH_PROFILE")
    source = published_source(spec, ws, profile="spark")
    assert isinstance(source, SparkSource) and source.path.endswith("patient_geography/*.parquet")


def test_training_frame_matches_the_embedded_profile(on_spark, expected, events):
    store, ws = on_spark
    got = training_frame(events, store=store, workspace=ws, feature_service=SERVICE)
    pd.testing.assert_frame_equal(got, expected)
    # Both boundary vintages were read: 2019 on 2010 tracts, 2020 on (other) 2020 tracts.
    assert {2019, 2020, 2021} <= set(got["acs_tract__vintage"].dropna())


def _as_expected(frame: pd.DataFrame, expected: pd.DataFrame) -> pd.DataFrame:
    """Spark's pandas frame in the pandas path's dtypes (Spark: naive UTC, float for Int64).

    Text columns hold None where Spark's is null and NaN in pandas' own: both null is equal.
    """
    at = frame["event_timestamp"]
    frame = frame.assign(event_timestamp=at.dt.tz_localize("UTC") if at.dt.tz is None else at)
    frame = frame.astype(expected.dtypes.to_dict())
    text = [c for c, kind in expected.dtypes.items() if kind == np.dtype(object)]
    both_null = {c: frame[c].isna() & expected[c].isna() for c in text}
    return frame.assign(**{c: frame[c].mask(null, expected[c]) for c, null in both_null.items()})


def test_spark_frame_stays_in_spark_and_writes_the_same_values(on_spark, expected, events, spark,
                                                                tmp_path):
    store, ws = on_spark
    as_spark = spark.createDataFrame(events)  # timestamps as text, parsed by Spark
    frame = spark_training_frame(as_spark, store=store, workspace=ws, feature_service=SERVICE)
    assert isinstance(frame, DataFrame)
    path = write_training_frame(events, tmp_path / "frame.parquet", store=store, workspace=ws,
                                feature_service=SERVICE)
    written = pd.read_parquet(path)
    pd.testing.assert_frame_equal(_as_expected(written, expected), expected)
    pd.testing.assert_frame_equal(_as_expected(frame.toPandas(), expected), expected)


def test_many_areas_are_joined_by_a_shuffle_with_the_same_frame(on_spark, expected, events, monkeypatch,
                                                                 tmp_path):
    store, ws = on_spark
    # every view "too large" to broadcast
    monkeypatch.setattr("feature_repo.serving.spark.BROADCAST_CELLS", 0)
    frame = spark_training_frame(events, store=store, workspace=ws, feature_service=SERVICE)
    assert "SortMergeJoin" in frame._jdf.queryExecution().executedPlan().toString()
    pd.testing.assert_frame_equal(_as_expected(frame.toPandas(), expected), expected)
    path = write_training_frame(events, tmp_path / "frame.parquet", store=store, workspace=ws,
                                feature_service=SERVICE)  # Spark's own writer, then
    pd.testing.assert_frame_equal(_as_expected(pd.read_parquet(path), expected), expected)


def test_the_profiles_writer_runs_on_spark_and_replaces_a_frame_only_when_done(on_spark, expected,
                                                                             events, tmp_path):
    store, ws = on_spark
    path = tmp_path / "frame.parquet"
    path.mkdir()
    (path / "part-old.parquet").write_bytes(b"an older frame")
    with pytest.raises(InputError, match="event_timestamp"):
        write_any_profile(events.assign(event_timestamp="not a time"), path, store=store, workspace=ws,
                          feature_service=SERVICE)
    assert [p.name for p in path.iterdir()] == ["part-old.parquet"]
    write_any_profile(events, path, store=store, workspace=ws, feature_service=SERVICE)
    pd.testing.assert_frame_equal(_as_expected(pd.read_parquet(path), expected), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["frame.parquet"]


def test_pseudonymized_ids_are_hashed_on_the_executors(spark, spark_redis, tmp_path, monkeypatch):
    ws = Workspace(tmp_path)
    publish(acs_frame("tract", POVERTY), acs_spec("tract"), ws)
    publish(pseudonymize_timeline(TIMELINE, secret=SECRET.encode()), geography_timeline_spec(), ws)
    events = pd.DataFrame({"patient_id": ["A", "A", "B"],
                           "event_timestamp": ["2022-05-31T23:00:00Z", "2022-06-01T09:00:00Z",
                                               "2022-06-01T00:00:00Z"]})
    with _spark_profile(ws, spark_redis) as store:
        monkeypatch.setenv(PATIENT_KEY_ENV, SECRET)
        frame = spark_training_frame(events, store=store, workspace=ws).toPandas()
        assert frame["patient_id"].tolist() == ["A", "A", "B"]  # the caller's ids come back
        assert frame["acs_tract__pct_below_poverty"].tolist()[:2] == [20.0, 6.0]
        assert frame.loc[2, "acs_tract__pct_below_poverty_missing"] == "po_box"
        monkeypatch.setenv(PATIENT_KEY_ENV, "other-" + "fedcba9876543210" * 2)
        with pytest.raises(LinkageError, match="is not the secret"):
            spark_training_frame(events, store=store, workspace=ws)


def test_online_lookup_from_redis_matches_sqlite(on_spark, embedded):
    store, ws = on_spark
    # Feast's own materialization, reading through Spark (fast_materialize takes FileSources).
    materialize(store, views=["patient_geography", "acs_tract", "svi_county_state"], end=AT,
                feast_default=True, progress=False)
    patients = ["P000001", "P000002", "P000003"]
    got = online_features(patients, store=store, workspace=ws, feature_service=SERVICE, at=AT)
    sqlite_store, sqlite_ws = embedded
    pd.testing.assert_frame_equal(got, online_features(patients, store=sqlite_store, workspace=sqlite_ws,
                                                       feature_service=SERVICE, at=AT))
    assert got["acs_tract__pct_below_poverty"].notna().any()


def test_linking_on_spark_matches_the_local_path(demo, spark):
    _, root, manifest = demo
    accepted, _ = read_address_history(root / manifest["patients"]["address_history"]["path"])
    boundaries = load_boundary_set({int(y): root / e["path"] for y, e in manifest["tiger"].items()})
    local = link_addresses(accepted, boundaries)
    got = link_addresses_spark(spark.createDataFrame(accepted), boundaries, buckets=3).toPandas()
    got = got.sort_values(["patient_id", "valid_from"], ignore_index=True)
    for column in ("valid_from", "valid_to"):
        got[column] = got[column].dt.tz_localize("UTC").astype(local[column].dtype)
    pd.testing.assert_frame_equal(got.astype(local.dtypes.to_dict()), local)


def _two_states(inputs: pd.DataFrame) -> pd.DataFrame:
    """The demo state and a copy ("98") whose areas hold the values of their neighbours."""
    values = [c for c in inputs.columns if c != "GEOID"]
    copy = inputs.assign(GEOID="98" + inputs["GEOID"].str[2:])
    copy[values] = np.roll(inputs[values].to_numpy(), 1, axis=0)
    return pd.concat([inputs, copy], ignore_index=True)


@pytest.fixture(scope="module")
def index_inputs(demo):
    """The demo's SVI (tract) and ADI (block group) inputs, through the real client, two states."""
    _, root, manifest = demo
    state = manifest["state_fips"]
    release = manifest["index_inputs"]["svi"]["releases"][0]
    vintage = manifest["index_inputs"]["adi_computed"]["vintages"][0]
    with CensusReplayServer(root / "census_api") as server:
        client = CensusClient(base_url=server.base_url)
        svi = get_acs("tract", sorted({v[:-1] for v in svi_variables(release)}), release, state,
                      client=client, output="wide")
        adi = get_acs("block group", sorted({v[:-1] for v in adi_variables(vintage)}), vintage, state,
                      client=client, output="wide")
        adi = adi.merge(group_quarters_inputs(vintage, state, client), on="GEOID", how="left")
    return (_two_states(svi), release), (_two_states(adi), vintage)


def _same_rows(got: DataFrame, local: pd.DataFrame) -> None:
    got = got.toPandas().sort_values("GEOID", ignore_index=True)
    local = local.sort_values("GEOID", ignore_index=True)
    pd.testing.assert_frame_equal(got.astype(local.dtypes.to_dict()), local, check_dtype=False)


@pytest.mark.parametrize("reference", ["state", "nation"])
def test_svi_on_spark_matches_the_local_path(index_inputs, spark, reference):
    (inputs, release), _ = index_inputs
    local = compute_svi(inputs, release=release, reference=reference, states=("98", "99"))
    _same_rows(compute_svi_spark(spark.createDataFrame(inputs), release=release, reference=reference,
                                 states=("98", "99")), local)


@pytest.mark.parametrize("reference", ["state", "nation"])
def test_adi_on_spark_matches_the_local_path(index_inputs, spark, reference):
    _, (inputs, vintage) = index_inputs
    with warnings.catch_warnings():  # the demo's states are small reference areas
        warnings.simplefilter("ignore", UserWarning)
        local = compute_adi(inputs, vintage=vintage, reference=reference, states=("98", "99"))
    _same_rows(compute_adi_spark(spark.createDataFrame(inputs), vintage=vintage, reference=reference,
                                 states=("98", "99")), local)
