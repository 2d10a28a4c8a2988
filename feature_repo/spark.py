"""Training frames on the Spark profile that stay in Spark, for frames larger than one machine.

`feature_repo.retrieval.training_frame` works on every profile and returns pandas: on the
Spark profile Feast's point-in-time joins run in Spark and the result is collected to the
driver. `spark_training_frame` (a Spark DataFrame) and `write_training_frame` (parquet written
by the executors) collect nothing: they make the same two hops with the same per-row code
(`feature_repo.retrieval`'s functions, run batch by batch with ``mapInPandas``) and Feast's
Spark point-in-time join for both hops, so their values are the pandas frame's.

Examples
--------
>>> store = feature_store(Workspace("ws"), profile="spark")  # doctest: +SKIP
>>> write_training_frame(spark.read.parquet("events"), "frame.parquet", store=store,
...                      workspace=Workspace("ws"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
    get_spark_session_or_start_new_with_repoconfig,
)
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.types import Float64
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.retrieval import (
    GEOGRAPHY_FEATURES,
    GEOGRAPHY_VIEW,
    ViewPlan,
    _address_reason,
    _check_events,
    _finish,
    _keys,
    plan_views,
)
from ingestion.errors import InputError
from ingestion.pseudonym import RAW_SCHEME, lookup_keys, patient_key_secret, pseudonymize_ids, scheme_of
from ingestion.workspace import Workspace

__all__ = ["spark_session", "spark_training_frame", "write_training_frame"]

# Spark starts its Python workers with PYSPARK_PYTHON, else the "python3" on PATH: default to
# this interpreter, which has the packages the workers run (on a cluster: the executors' Python).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

ROW = "_sdoh_row"  # the events' order, kept through Spark's joins
KEY = "_sdoh_key"  # the patient key the published timeline holds
SEP = "___"  # per-view working columns: <view>___geoid, <view>___vintage, <view>___<feature>


def spark_session(store: FeatureStore) -> SparkSession:
    """The session of the store's Spark offline store (started from the profile's spark_conf).

    Raises
    ------
    InputError
        If the store is not on the Spark profile, or its definitions were applied under
        another profile (their sources are not Spark sources).

    Examples
    --------
    >>> spark = spark_session(feature_store(Workspace("ws"), profile="spark"))  # doctest: +SKIP
    """
    if store.config.offline_store.type != "spark":
        raise InputError(f"the store's offline store is {store.config.offline_store.type!r}, not "
                         "spark: open it with profile='spark' (SDOH_PROFILE=spark)")
    view = store.get_feature_view(GEOGRAPHY_VIEW)
    if not isinstance(view.batch_source, SparkSource):
        raise InputError("the definitions were applied under another profile: run `sdoh apply` "
                         "with SDOH_PROFILE=spark")
    return get_spark_session_or_start_new_with_repoconfig(store.config.offline_store)


def _utc(times: pd.Series) -> pd.Series:
    """Spark hands timestamps to pandas as naive UTC clock time (the session runs in UTC)."""
    times = pd.to_datetime(times)
    return times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")


def _events(events: pd.DataFrame | DataFrame, spark: SparkSession) -> DataFrame:
    """The events as a Spark DataFrame with a row number, checked as the pandas path checks them."""
    if isinstance(events, pd.DataFrame):
        checked = _check_events(events)
        return spark.createDataFrame(checked.assign(**{ROW: np.arange(len(checked))}))
    missing = {"patient_id", "event_timestamp"} - set(events.columns)
    if missing:
        raise InputError(f"events lack columns {sorted(missing)}; need patient_id and event_timestamp")
    out = (events.withColumn("patient_id", F.col("patient_id").cast("string"))
           .withColumn("event_timestamp", F.col("event_timestamp").cast("timestamp"))
           .withColumn(ROW, F.monotonically_increasing_id()))
    if not out.where(F.col("event_timestamp").isNull()).isEmpty():
        raise InputError("events have an empty or unparseable event_timestamp")
    return out


def _with_keys(events: DataFrame, workspace: Workspace) -> DataFrame:
    """Add the timeline's patient key: the id, or its keyed hash (the secret checked here)."""
    if scheme_of(workspace) == RAW_SCHEME:
        return events.withColumn(KEY, F.col("patient_id"))
    lookup_keys(pd.Series([], dtype="string"), workspace)  # refuses a missing or wrong secret
    secret = patient_key_secret()
    schema = T.StructType([*events.schema.fields, T.StructField(KEY, T.StringType())])

    def hash_ids(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield batch.assign(**{KEY: pseudonymize_ids(batch["patient_id"], secret=secret)})

    return events.mapInPandas(hash_ids, schema)


def _geography(store: FeatureStore, events: DataFrame) -> DataFrame:
    """Hop one: the patient's address period as of each event (Feast's join on Spark)."""
    entity = events.select(ROW, F.col(KEY).alias("patient_id"), "event_timestamp")
    refs = [f"{GEOGRAPHY_VIEW}:{f}" for f in GEOGRAPHY_FEATURES]
    geo = store.get_historical_features(entity_df=entity, features=refs).to_spark_df()
    return events.join(geo.drop("patient_id", "event_timestamp"), ROW, "left")


def _add_lookup_keys(rows: DataFrame, plans: list[ViewPlan]) -> DataFrame:
    """Per view, the GEOID and vintage each row reads and the reason of rows that cannot read."""
    fields = [T.StructField(f"{p.name}{SEP}{c}", kind) for p in plans
              for c, kind in (("geoid", T.StringType()), ("vintage", T.DoubleType()),
                              ("row_reason", T.StringType()))]

    def add(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            at = _utc(batch["event_timestamp"])
            reason = _address_reason(batch, at)
            for plan in plans:
                keys = _keys(plan, batch, at, reason).set_axis(["geoid", "vintage", "row_reason"], axis=1)
                batch = batch.join(keys.add_prefix(f"{plan.name}{SEP}"))
            yield batch

    return rows.mapInPandas(add, T.StructType([*rows.schema.fields, *fields]))


def _fetch(store: FeatureStore, plan: ViewPlan, keyed: DataFrame) -> DataFrame | None:
    """Hop two: Feast's join once per distinct (GEOID, vintage), at the vintage's release."""
    geoid, vintage = F.col(f"{plan.name}{SEP}geoid"), F.col(f"{plan.name}{SEP}vintage")
    lookup = (keyed.where(geoid.isNotNull())
              .select(geoid.alias(plan.key), vintage.cast("long").alias("vintage")).distinct())
    if lookup.isEmpty():
        return None
    released = plan.calendar.drop_duplicates("vintage")[["vintage", "release_ts"]]
    calendar = keyed.sparkSession.createDataFrame(
        released.astype({"vintage": "int64"}).rename(columns={"release_ts": "event_timestamp"}))
    entity = lookup.join(F.broadcast(calendar), "vintage")
    fetched = store.get_historical_features(entity_df=entity, features=plan.refs).to_spark_df()
    return fetched.select(
        F.col(plan.key).alias(f"{plan.name}{SEP}geoid"),
        F.col("vintage").cast("double").alias(f"{plan.name}{SEP}vintage"),
        *[F.col(f).alias(f"{plan.name}{SEP}{f}") for f in plan.features])


def _join_features(store: FeatureStore, plan: ViewPlan, keyed: DataFrame, rows: DataFrame) -> DataFrame:
    """``rows`` with the view's features next to them (null where nothing was read).

    The lookups come from ``keyed`` (lineage cut), not from ``rows``, which holds the views
    joined so far: their plans name Feast's ``entity_dataframe`` view, which Feast redefines.
    """
    fetched = _fetch(store, plan, keyed)
    if fetched is None:
        kinds = {f.name: f.dtype for f in store.get_feature_view(plan.name).features}
        return rows.select("*", *[
            F.lit(None).cast("double" if kinds[f] == Float64 else "string").alias(f"{plan.name}{SEP}{f}")
            for f in plan.features])
    return rows.join(fetched, [f"{plan.name}{SEP}geoid", f"{plan.name}{SEP}vintage"], "left")


def _finish_all(rows: DataFrame, plans: list[ViewPlan], event_columns: list[str]) -> DataFrame:
    """The frame's columns: the events, then per view `retrieval._finish`'s columns."""
    fields = [rows.schema[c] for c in [*event_columns, ROW]]
    for plan in plans:
        fields += [T.StructField(f"{plan.name}__vintage", T.LongType()),
                   T.StructField(f"{plan.name}__geoid", T.StringType())]
        fields += [T.StructField(f"{plan.name}__{f}", rows.schema[f"{plan.name}{SEP}{f}"].dataType)
                   for f in plan.features]

    def finish(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            parts = [batch[[*event_columns, ROW]]]
            for plan in plans:
                keys = pd.DataFrame({plan.key: batch[f"{plan.name}{SEP}geoid"],
                                     "vintage": batch[f"{plan.name}{SEP}vintage"],
                                     "row_reason": batch[f"{plan.name}{SEP}row_reason"]})
                fetched = batch[[f"{plan.name}{SEP}{f}" for f in plan.features]]
                parts.append(_finish(plan, fetched.set_axis(list(plan.features), axis=1), keys))
            yield pd.concat(parts, axis=1)

    return rows.mapInPandas(finish, T.StructType(fields))


def spark_training_frame(
    events: pd.DataFrame | DataFrame,
    *,
    store: FeatureStore,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
) -> DataFrame:
    """`feature_repo.retrieval.training_frame` as a Spark DataFrame, nothing collected.

    The events keyed for the second hop are computed once, when this is called (Spark keeps
    them on its executors); the rest runs when the frame is used.

    Parameters
    ----------
    events : pandas.DataFrame or pyspark.sql.DataFrame
        Rows of ``patient_id`` and ``event_timestamp`` (text is parsed as UTC; other columns
        are kept).
    store : feast.FeatureStore
        A store on the Spark profile, definitions applied under it.
    workspace : Workspace
        Where the published datasets live.
    feature_service : str
        ``model_inputs_v1`` or ``equity_audit_v1``.

    Returns
    -------
    pyspark.sql.DataFrame
        The columns of `training_frame`, sorted in the events' order; timestamps are Spark
        timestamps (shown as UTC by the profile's session).

    Raises
    ------
    InputError
        If the store is not on the Spark profile, or events lack a column or have an
        unparseable timestamp.

    Examples
    --------
    >>> frame = spark_training_frame(events, store=store, workspace=ws)  # doctest: +SKIP
    >>> frame.write.parquet("frame.parquet")  # doctest: +SKIP
    """
    spark = spark_session(store)
    rows = _events(events, spark)
    event_columns = [c for c in rows.columns if c != ROW]
    plans = plan_views(store, workspace, feature_service)
    keyed = _add_lookup_keys(_geography(store, _with_keys(rows, workspace)), plans)
    # Computed once, since every view reads it; the checkpoint also cuts the lineage through
    # Feast's `entity_dataframe` view, which Feast's next query replaces (a "recursive view").
    joined = keyed = keyed.localCheckpoint(eager=True)
    for plan in plans:
        joined = _join_features(store, plan, keyed, joined)
    return _finish_all(joined, plans, event_columns).orderBy(ROW).drop(ROW)


def write_training_frame(
    events: pd.DataFrame | DataFrame,
    path: str | Path,
    *,
    store: FeatureStore,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
    mode: str = "error",
) -> str:
    """Write the training frame as parquet from the executors (a folder of part files).

    Parameters
    ----------
    events, store, workspace, feature_service
        As for `spark_training_frame`.
    path : str or Path
        Output folder, on storage every executor can write (e.g. ``s3a://``, ``hdfs://``).
    mode : str
        Spark's save mode: "error" (default), "overwrite", "append" or "ignore".

    Returns
    -------
    str
        The folder written; its part files hold the rows in the events' order.

    Raises
    ------
    InputError
        As for `spark_training_frame`.

    Examples
    --------
    >>> write_training_frame(events, "outputs/frame.parquet", store=store, workspace=ws)  # doctest: +SKIP
    'outputs/frame.parquet'
    """
    frame = spark_training_frame(events, store=store, workspace=workspace,
                                 feature_service=feature_service)
    frame.write.mode(mode).parquet(str(path))
    return str(path)
