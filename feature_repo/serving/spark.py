"""Training frames on the Spark profile that stay in Spark, for frames larger than one machine.

`feature_repo.serving.retrieval.training_frame` works on every profile and returns pandas: on the
Spark profile Feast's point-in-time joins run in Spark and the result is collected to the
driver. `spark_training_frame` (a Spark DataFrame) and `write_training_frame` (parquet written
by the workers) collect nothing: they make the same two hops with the same per-row code
(`feature_repo.serving.lookup_rules`, run batch by batch with ``mapInPandas``) and Feast's
Spark point-in-time join for both hops, so their values are the pandas frame's. Hop two asks
Feast once per distinct (GEOID, vintage); when those areas' features are few enough to send to
every executor (`BROADCAST_CELLS`), they are broadcast, so the wide rows are never shuffled or
sorted, and `write_training_frame` builds and writes them in the Python workers.

Examples
--------
Not run as doctests: they need a Spark session (pyspark and Java; ~10 s to start), which
tests/test_spark.py runs.

>>> store = feature_store(Workspace("ws"), profile="spark")  # doctest: +SKIP
>>> write_training_frame(spark.read.parquet("events"), "frame.parquet", store=store,
...                      workspace=Workspace("ws"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
    get_spark_session_or_start_new_with_repoconfig,
)
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.types import Float64
from pyspark import TaskContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from feature_repo.serving.lookup_rules import (
    GEOGRAPHY_VIEW,
    ViewPlan,
    address_reasons,
    check_events,
    finish,
    geography_refs,
    read_keys,
    require_event_columns,
)
from feature_repo.serving.retrieval import frame_schema, plan_views, screening_plan
from ingestion.core import known_warnings
from ingestion.core.errors import InputError
from ingestion.core.settings import default_worker_python
from ingestion.core.workspace import Workspace, private_dir
from ingestion.geo.pseudonym import RAW_SCHEME, lookup_keys, patient_key_secret, pseudonymize_ids, scheme_of

__all__ = ["spark_session", "spark_training_frame", "write_training_frame"]

ROW = "_sdoh_row"  # the events' order, kept through Spark's joins
KEY = "_sdoh_key"  # the patient key the published timeline holds
RAW_ID = "_sdoh_patient_id"  # the caller's id while Feast's join needs the key as patient_id
KNOWN = "_sdoh_known"  # whether the published timeline holds the patient key at all
SEP = "___"  # per-view working columns: <view>___geoid, <view>___vintage, <view>___<feature>
# Features of at most this many (area, vintage) x feature cells are broadcast (~8 bytes each).
BROADCAST_CELLS = 20_000_000
PARTS_PER_CORE = 4


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
    with known_warnings.ignored():  # Feast flags its Spark source as alpha on every read
        view = store.get_feature_view(GEOGRAPHY_VIEW)
    if not isinstance(view.batch_source, SparkSource):
        raise InputError("the definitions were applied under another profile: run `sdoh apply` "
                         "with SDOH_PROFILE=spark")
    default_worker_python(os.environ)
    return get_spark_session_or_start_new_with_repoconfig(store.config.offline_store)


def _utc(times: pd.Series) -> pd.Series:
    """Spark hands timestamps to pandas as naive UTC clock time (the session runs in UTC)."""
    times = pd.to_datetime(times)
    return times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")


def _events(events: pd.DataFrame | DataFrame, spark: SparkSession) -> DataFrame:
    """The events as a Spark DataFrame with a row number, checked as the pandas path checks them."""
    if isinstance(events, pd.DataFrame):
        checked = check_events(events)
        return spark.createDataFrame(checked.assign(**{ROW: np.arange(len(checked))}))
    require_event_columns(events.columns)
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
    """Hop one: the patient's address period as of each event (Feast's join on Spark).

    Feast keeps every column of its entity rows, so the events ride along (no join back).
    """
    entity = events.withColumnRenamed("patient_id", RAW_ID).withColumnRenamed(KEY, "patient_id")
    with known_warnings.ignored():  # Feast flags its Spark store as alpha on every use
        geo = store.get_historical_features(entity_df=entity, features=geography_refs()).to_spark_df()
    return geo.withColumnRenamed("patient_id", KEY).withColumnRenamed(RAW_ID, "patient_id")


def _known(rows: DataFrame, workspace: Workspace) -> DataFrame:
    """Flag rows whose patient key the published timeline holds (others are ``unknown_patient``)."""
    ids = (rows.sparkSession.read.option("recursiveFileLookup", "true")
           .parquet(str(workspace.published_dir(GEOGRAPHY_VIEW)))
           .select(F.col("patient_id").alias(KNOWN)).distinct())
    flagged = rows.join(ids, rows[KEY] == ids[KNOWN], "left")
    return flagged.withColumn(KNOWN, F.col(KNOWN).isNotNull())


def _add_lookup_keys(rows: DataFrame, plans: list[ViewPlan]) -> DataFrame:
    """Per view, the GEOID and vintage each row reads and the reason of rows that cannot read."""
    fields = [T.StructField(f"{p.name}{SEP}{c}", kind) for p in plans
              for c, kind in (("geoid", T.StringType()), ("vintage", T.DoubleType()),
                              ("row_reason", T.StringType()))]

    def add(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            at = _utc(batch["event_timestamp"])
            reason = address_reasons(batch, at, known=batch[KNOWN])
            for plan in plans:
                keys = read_keys(plan, batch, at, reason).set_axis(["geoid", "vintage", "row_reason"], axis=1)
                batch = batch.join(keys.add_prefix(f"{plan.name}{SEP}"))
            yield batch

    return rows.mapInPandas(add, T.StructType([*rows.schema.fields, *fields]))


@dataclass(frozen=True)
class Lookups:
    """The distinct (GEOID, vintage) every view reads, from one pass over the rows."""

    keys: DataFrame  # view, geoid, vintage (long)
    counts: dict[str, int]

    @classmethod
    def of(cls, keyed: DataFrame, plans: list[ViewPlan]) -> Lookups:
        """The lookups of ``keyed``'s rows (kept on the executors)."""
        per_view = F.array(*[F.struct(F.lit(p.name).alias("view"),
                                      F.col(f"{p.name}{SEP}geoid").alias("geoid"),
                                      F.col(f"{p.name}{SEP}vintage").cast("long").alias("vintage"))
                             for p in plans])
        keys = (keyed.select(F.inline(per_view)).where(F.col("geoid").isNotNull()).distinct()
                .localCheckpoint(eager=True))
        return cls(keys, {row["view"]: row["count"] for row in keys.groupBy("view").count().collect()})

    def of_view(self, plan: ViewPlan) -> DataFrame:
        """A view's keys, in its entity's columns."""
        return self.keys.where(F.col("view") == plan.name).select(F.col("geoid").alias(plan.key), "vintage")

    def broadcastable(self, plan: ViewPlan) -> bool:
        """Whether the view's features for these keys are few enough to send to every executor."""
        return self.counts.get(plan.name, 0) * len(plan.features) <= BROADCAST_CELLS


def _fetch(store: FeatureStore, plan: ViewPlan, lookup: DataFrame) -> DataFrame:
    """Hop two: Feast's join once per distinct (GEOID, vintage), at the vintage's release."""
    released = plan.calendar.drop_duplicates("vintage")[["vintage", "release_ts"]]
    calendar = lookup.sparkSession.createDataFrame(
        released.astype({"vintage": "int64"}).rename(columns={"release_ts": "event_timestamp"}))
    entity = lookup.join(F.broadcast(calendar), "vintage")
    with known_warnings.ignored():  # Feast flags its Spark store as alpha on every use
        fetched = store.get_historical_features(entity_df=entity, features=plan.refs).to_spark_df()
    return fetched.select(
        F.col(plan.key).alias(f"{plan.name}{SEP}geoid"),
        F.col("vintage").cast("double").alias(f"{plan.name}{SEP}vintage"),
        *[F.col(f).alias(f"{plan.name}{SEP}{f}") for f in plan.features])


def _join_features(store: FeatureStore, plan: ViewPlan, lookups: Lookups,
                   rows: DataFrame) -> tuple[DataFrame, bool]:
    """``rows`` with the view's features next to them (null where nothing was read).

    Returns the rows and whether their order was kept: the features of a few areas are
    broadcast to every executor (no shuffle of the wide rows, whose order stays the events');
    beyond `BROADCAST_CELLS` they are joined by a shuffle. The lookups are checkpointed (lineage
    cut), not taken from ``rows``: the plans of the views joined so far name Feast's
    ``entity_dataframe`` view, which Feast redefines on every query.
    """
    if not lookups.counts.get(plan.name):
        kinds = {f.name: f.dtype for f in store.get_feature_view(plan.name).features}
        return rows.select("*", *[
            F.lit(None).cast("double" if kinds[f] == Float64 else "string").alias(f"{plan.name}{SEP}{f}")
            for f in plan.features]), True
    small = lookups.broadcastable(plan)
    fetched = _fetch(store, plan, lookups.of_view(plan))
    on = [f"{plan.name}{SEP}geoid", f"{plan.name}{SEP}vintage"]
    return rows.join(F.broadcast(fetched) if small else fetched, on, "left"), small


def _batch_keys(batch: pd.DataFrame, plan: ViewPlan) -> pd.DataFrame:
    """A batch's lookup keys for a view, in `lookup_rules.read_keys`'s columns."""
    return pd.DataFrame({plan.key: batch[f"{plan.name}{SEP}geoid"],
                         "vintage": batch[f"{plan.name}{SEP}vintage"],
                         "row_reason": batch[f"{plan.name}{SEP}row_reason"]})


def _finish_all(rows: DataFrame, plans: list[ViewPlan], event_columns: list[str]) -> DataFrame:
    """The frame's columns: the events, then per view `lookup_rules.finish`'s columns."""
    fields = [rows.schema[c] for c in [*event_columns, ROW]]
    for plan in plans:
        fields += [T.StructField(f"{plan.name}__vintage", T.LongType()),
                   T.StructField(f"{plan.name}__geoid", T.StringType())]
        fields += [T.StructField(f"{plan.name}__{f}", rows.schema[f"{plan.name}{SEP}{f}"].dataType)
                   for f in plan.features]

    def finish_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            parts = [batch[[*event_columns, ROW]]]
            for plan in plans:
                fetched = batch[[f"{plan.name}{SEP}{f}" for f in plan.features]]
                parts.append(finish(plan, fetched.set_axis(list(plan.features), axis=1),
                                     _batch_keys(batch, plan)))
            yield pd.concat(parts, axis=1)

    return rows.mapInPandas(finish_batches, T.StructType(fields))


def _keyed(store: FeatureStore, workspace: Workspace, rows: DataFrame, plans: list[ViewPlan]) -> DataFrame:
    """The events with their address period and every view's lookup keys, in the events' order.

    Sorted while the rows are narrow, and computed once since every view reads it; the
    checkpoint also cuts the lineage through Feast's `entity_dataframe` view, which Feast's
    next query replaces (a "recursive view").
    """
    # Feast reads its entity rows twice (time range, then join): they are computed once.
    entity = _with_keys(rows, workspace).localCheckpoint(eager=True)
    keyed = _add_lookup_keys(_known(_geography(store, entity), workspace), plans)
    # Checkpointed first: range partitioning samples its input, which would compute it twice.
    keyed = keyed.localCheckpoint(eager=True)
    # As many parts as can run at once, times a few (Spark's own sort may leave fewer parts
    # than cores for the wide work that follows).
    parts = PARTS_PER_CORE * keyed.sparkSession.sparkContext.defaultParallelism
    return keyed.repartitionByRange(parts, ROW).sortWithinPartitions(ROW).localCheckpoint(eager=True)


def _joined_frame(store: FeatureStore, keyed: DataFrame, lookups: Lookups, plans: list[ViewPlan],
                  event_columns: list[str]) -> DataFrame:
    """The frame by Spark joins, in the events' order."""
    joined, in_order = keyed, True
    for plan in plans:
        joined, kept = _join_features(store, plan, lookups, joined)
        in_order &= kept
    frame = _finish_all(joined, plans, event_columns)
    return (frame if in_order else frame.orderBy(ROW)).drop(ROW)


def spark_training_frame(
    events: pd.DataFrame | DataFrame,
    *,
    store: FeatureStore,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
) -> DataFrame:
    """`feature_repo.serving.retrieval.training_frame` as a Spark DataFrame, nothing collected.

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
        The columns of `training_frame`, in the events' order; timestamps are Spark
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
    rows = _events(events, spark_session(store))
    plans = _area_plans(store, workspace, feature_service)
    keyed = _keyed(store, workspace, rows, plans)
    return _joined_frame(store, keyed, Lookups.of(keyed, plans), plans, _event_columns(rows))


def _area_plans(store: FeatureStore, workspace: Workspace, feature_service: str) -> list:
    """The service's area views; screened needs are not joined by the executors yet: refused."""
    if screening_plan(store, feature_service):
        raise InputError(f"{feature_service} reads screened needs, which the Spark profile does not "
                         "join yet: write this frame on the embedded or production profile "
                         "(SDOH_PROFILE=embedded), or read a service without screened_needs")
    return plan_views(store, workspace, feature_service)


def _event_columns(rows: DataFrame) -> list[str]:
    return [c for c in rows.columns if c != ROW]


def _small_features(store: FeatureStore, plans: list[ViewPlan],
                    lookups: Lookups) -> dict[str, pd.DataFrame] | None:
    """Per view, the features of every (GEOID, vintage) the rows read, indexed by both.

    None as soon as one view's are too many to broadcast (`BROADCAST_CELLS`).
    """
    if not all(lookups.broadcastable(plan) for plan in plans):
        return None
    tables = {}
    for plan in plans:
        on = [f"{plan.name}{SEP}geoid", f"{plan.name}{SEP}vintage"]
        table = (_fetch(store, plan, lookups.of_view(plan)).toPandas() if lookups.counts.get(plan.name)
                 else pd.DataFrame(columns=on))
        tables[plan.name] = table.set_index(on).rename(columns=lambda c: c.split(SEP, 1)[1])
    return tables


def _assemble(batch: pd.DataFrame, plans: list[ViewPlan], tables: dict[str, pd.DataFrame],
              event_columns: list[str]) -> pd.DataFrame:
    """A batch's rows of the frame: each view's features looked up in its table, finished."""
    parts = [batch[event_columns]]
    for plan in plans:
        keys = _batch_keys(batch, plan)
        read = pd.MultiIndex.from_arrays([keys[plan.key], keys["vintage"]])
        parts.append(finish(plan, tables[plan.name].reindex(read).set_axis(batch.index), keys))
    return pd.concat(parts, axis=1)


def _write_parts(keyed: DataFrame, plans: list[ViewPlan], tables: dict[str, pd.DataFrame],
                 event_columns: list[str], schema: pa.Schema, folder: Path) -> None:
    """Each partition's rows of the frame written by its Python worker to a part file.

    The JVM never holds the wide rows (its row-by-row parquet writer took most of the time).
    A task's file is named by its attempt; the files of attempts the job did not keep go.
    """
    shared = keyed.sparkSession.sparkContext.broadcast(tables)

    def write(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        task = TaskContext.get()
        part = folder / f"part-{task.partitionId():05d}-{task.attemptNumber()}.parquet"
        with pq.ParquetWriter(part, schema) as writer:
            for batch in batches:
                frame = _assemble(batch, plans, shared.value, event_columns)
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
        yield pd.DataFrame({"part": [part.name]})

    kept = {row.part for row in keyed.mapInPandas(write, "part string").collect()}
    for part in folder.glob("part-*.parquet"):
        if part.name not in kept:
            part.unlink()
    shared.unpersist()


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

    On a local or shared-mount path, when the areas the events read are few enough to
    broadcast (`BROADCAST_CELLS`), Spark's Python workers build and write the wide rows;
    otherwise (many areas, or a URI such as ``s3a://``) Spark joins and writes
    `spark_training_frame`. Same rows either way. On a local path the frame is written beside
    ``path`` and moved in place when complete.

    Parameters
    ----------
    events, store, workspace, feature_service
        As for `spark_training_frame`.
    path : str or Path
        Output folder, on storage every executor can write (e.g. a shared mount, ``s3a://``,
        ``hdfs://``).
    mode : str
        "error" (default: refuse an existing ``path``) or "overwrite".

    Returns
    -------
    str
        The folder written; its part files, in name order, hold the rows in the events' order.

    Raises
    ------
    InputError
        As for `spark_training_frame`, or ``path`` exists and ``mode`` is "error".

    Examples
    --------
    >>> write_training_frame(events, "outputs/frame.parquet", store=store, workspace=ws)  # doctest: +SKIP
    'outputs/frame.parquet'
    """
    if mode not in ("error", "overwrite"):
        raise InputError(f"mode {mode!r}: choose 'error' or 'overwrite'")
    local = "://" not in str(path)
    if local and mode == "error" and Path(path).exists():
        raise InputError(f"{path} exists: choose another path or pass mode='overwrite'")
    rows = _events(events, spark_session(store))
    plans = _area_plans(store, workspace, feature_service)
    keyed = _keyed(store, workspace, rows, plans)
    lookups = Lookups.of(keyed, plans)
    if not local:
        _joined_frame(store, keyed, lookups, plans, _event_columns(rows)).write.mode(mode).parquet(str(path))
        return str(path)
    folder = Path(path)
    # The frame holds patient rows: written inside a private (0700) folder, so nothing the JVM
    # or the workers create is readable by others at any moment, then closed to 0600/0700.
    holder = folder.with_name(f".{folder.name}.partial")
    _remove(holder)
    partial = private_dir(holder) / folder.name
    try:
        tables = _small_features(store, plans, lookups)
        if tables is None:
            _joined_frame(store, keyed, lookups, plans, _event_columns(rows)).write.parquet(str(partial))
        else:
            partial.mkdir(mode=0o700)
            event_fields = to_arrow_schema(rows.select(_event_columns(rows)).schema, timezone="UTC")
            _write_parts(keyed, plans, tables, _event_columns(rows),
                         frame_schema(store, plans, event_fields), partial)
            (partial / "_SUCCESS").touch()  # as Spark marks a complete output
        _private_tree(partial)
        _replace(partial, folder)
    finally:
        _remove(holder)
    return str(path)


def _private_tree(folder: Path) -> None:
    """Close a folder written by Spark: folders 0700, files 0600."""
    folder.chmod(0o700)
    for parent, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(parent, name), 0o700)
        for name in files:
            os.chmod(os.path.join(parent, name), 0o600)


def _remove(path: Path) -> None:
    """Delete a file or folder, if there."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _replace(new: Path, path: Path) -> None:
    """Put the folder ``new`` at ``path``; the old one goes only once the new one is in place."""
    old = path.with_name(f".{path.name}.old")
    _remove(old)
    if path.exists():
        path.rename(old)
    new.rename(path)
    _remove(old)
