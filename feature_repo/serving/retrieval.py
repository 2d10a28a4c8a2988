"""Point-in-time correct training frames and online lookups, through the patient's geography.

Both paths make the same two hops, by the rules of `feature_repo.serving.lookup_rules`. First,
the patient's address period as of the event time
(Feast point-in-time join on the geography timeline; an ended period counts as no address).
Second, for every area feature view: the latest vintage released on or before the event
(from the published data's own release dates), the GEOID of that vintage's boundary year, and
a Feast lookup keyed by (GEOID, vintage). Every missing value gets a typed reason.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.types import Float64, String
from tqdm import tqdm

from feature_repo.definitions.metadata import SCREENING_PARTS
from feature_repo.serving.lookup_rules import (
    GEOGRAPHY_VIEW,
    ViewPlan,
    address_reasons,
    check_events,
    finish,
    geography_refs,
    read_keys,
    screening_columns,
    screening_lookbacks,
)
from ingestion.core import known_warnings
from ingestion.core.atomic import write_atomic
from ingestion.core.datasets import published_calendar, screened_needs_spec
from ingestion.core.workspace import Workspace
from ingestion.geo.pseudonym import lookup_keys

# Events per chunk of `write_training_frame`: ~4.5 GiB peak for model_inputs_v1 (614 columns).
CHUNK_EVENTS = 200_000
ARROW_TYPES = {Float64: pa.float64(), String: pa.string()}
SCREENING_ARROW = {"state": pa.string(), "instrument": pa.string(),
                   "screened_at": pa.timestamp("us", tz="UTC"), "answer_age_days": pa.float64()}


def plan_views(store: FeatureStore, workspace: Workspace, feature_service: str) -> list[ViewPlan]:
    """What a feature service reads, view by view; every value brings its missing reason."""
    service = store.get_feature_service(feature_service)
    plans = []
    for projection in service.feature_view_projections:
        if projection.name == screened_needs_spec().name:
            continue  # keyed by patient, read by `screening_plan`
        view = store.get_feature_view(projection.name)
        names = [f.name for f in projection.features]
        reasons = [f"{n}_missing" for n in names if not n.endswith("_missing")
                   and f"{n}_missing" in {f.name for f in view.features}]
        features = tuple(dict.fromkeys([*names, *reasons]))
        strings = frozenset(f.name for f in view.features if f.dtype == String)
        plans.append(ViewPlan(projection.name, view.tags["geography_level"], features,
                              published_calendar(projection.name, workspace), strings))
    return plans


def screening_plan(store: FeatureStore, feature_service: str) -> dict[str, float]:
    """The look-back (days) of each screened-needs domain the service reads; empty if none.

    Examples
    --------
    >>> screening_plan(store, "model_inputs_v1")  # the small store publishes no screenings
    {}
    """
    name = screened_needs_spec().name
    service = store.get_feature_service(feature_service)
    projection = next((p for p in service.feature_view_projections if p.name == name), None)
    if projection is None:
        return {}
    return screening_lookbacks(f.name for f in projection.features)


def _screening_refs(lookbacks: dict[str, float]) -> list[str]:
    name = screened_needs_spec().name
    return [f"{name}:{d}_{part}" for d in lookbacks for part in SCREENING_PARTS]


def _screening(store: FeatureStore, keyed: pd.DataFrame, at: pd.Series,
               lookbacks: dict[str, float]) -> pd.DataFrame:
    """Each event's screened needs: the state row in force (Feast's join), then rule 5."""
    stored = _historical(store, keyed, _screening_refs(lookbacks))
    return screening_columns(stored, at, lookbacks, view=screened_needs_spec().name)


def timeline_ids(workspace: Workspace) -> frozenset[str]:
    """Every patient key the published address timeline holds (cached until its files change).

    Examples
    --------
    >>> sorted(timeline_ids(ws))
    ['A', 'B', 'C', 'E']
    """
    pattern = workspace.published_glob(GEOGRAPHY_VIEW)
    files = tuple((path, os.stat(path).st_mtime_ns) for path in sorted(glob.glob(pattern, recursive=True)))
    return _ids_in(pattern, files)


@lru_cache(maxsize=4)
def _ids_in(pattern: str, files: tuple) -> frozenset[str]:
    if not files:
        return frozenset()
    with duckdb.connect() as con:
        rows = con.execute("SELECT DISTINCT patient_id FROM read_parquet(?)", [pattern]).fetchall()
    return frozenset(str(r[0]) for r in rows)


def _historical(store: FeatureStore, entity_df: pd.DataFrame, refs: list[str]) -> pd.DataFrame:
    """Feast's point-in-time join, returned in the entity rows' order (Feast does not keep it)."""
    if entity_df.empty:
        return pd.DataFrame(index=entity_df.index)
    frame = entity_df.assign(_row=entity_df.index)
    with known_warnings.ignored():  # ibis's deprecated DuckDB call on every query
        # to_arrow avoids to_df's extra full copy; one reindex puts rows back in order.
        table = store.get_historical_features(entity_df=frame, features=refs).to_arrow()
    return table.to_pandas().set_index("_row").reindex(entity_df.index)


def _area_features(store: FeatureStore, plan: ViewPlan, keys: pd.DataFrame) -> pd.DataFrame:
    """Feast's join once per distinct (GEOID, vintage), spread back to every row that needs it.

    Each distinct key is asked at its vintage's release instant: the key pins the vintage, so
    the answer is the one any later event would get, and Feast joins far fewer rows.
    """
    lookup = keys.loc[keys[plan.key].notna(), [plan.key, "vintage"]].astype({"vintage": "int64"})
    distinct = lookup.drop_duplicates(ignore_index=True).copy()
    released = plan.calendar.drop_duplicates("vintage").set_index("vintage")["release_ts"]
    distinct["event_timestamp"] = distinct["vintage"].map(released)
    fetched = _historical(store, distinct, plan.refs)
    position = pd.MultiIndex.from_frame(distinct[[plan.key, "vintage"]]).get_indexer(
        pd.MultiIndex.from_frame(lookup))
    fetched = fetched.take(position).set_axis(lookup.index)
    return fetched.reindex(keys.index)


def training_frame(
    events: pd.DataFrame,
    *,
    store: FeatureStore,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
) -> pd.DataFrame:
    """SDOH features as of each event, through the geography the patient had then.

    Parameters
    ----------
    events : pandas.DataFrame
        Rows of ``patient_id`` and ``event_timestamp`` (other columns are kept).
    store : feast.FeatureStore
        The store of ``workspace`` (see `feature_store`).
    workspace : Workspace
        Where the published datasets live (their release dates fix the vintage in force).
    feature_service : str
        ``model_inputs_v1`` or ``equity_audit_v1``.

    Returns
    -------
    pandas.DataFrame
        The events, in their order, with ``<view>__<feature>`` columns, the GEOID and vintage
        read per view (``<view>__geoid``, ``<view>__vintage``) and a typed reason in every
        ``*_missing`` column where a value is missing.

    Raises
    ------
    InputError
        If events lack a column or have an unparseable timestamp.

    Examples
    --------
    >>> events = pd.DataFrame({"patient_id": ["A", "B"], "event_timestamp": ["2022-06-01", "2022-06-01"]})
    >>> frame = training_frame(events, store=store, workspace=ws)
    >>> frame["acs_tract__geoid"].tolist(), frame["acs_tract__pct_below_poverty"].tolist()
    (['99001000100', None], [6.0, nan])
    >>> frame["acs_tract__pct_below_poverty_missing"].tolist()  # B's address is a PO box
    [None, 'po_box']
    """
    return _frame(check_events(events), store, workspace, plan_views(store, workspace, feature_service),
                  screening_plan(store, feature_service))


def _frame(events: pd.DataFrame, store: FeatureStore, workspace: Workspace,
           plans: list[ViewPlan], screening: dict[str, float]) -> pd.DataFrame:
    """`training_frame` of checked events."""
    at = events["event_timestamp"]
    keyed = events[["patient_id", "event_timestamp"]].assign(  # the ids the timeline holds
        patient_id=lookup_keys(events["patient_id"], workspace))
    geo = _historical(store, keyed, geography_refs())
    address = address_reasons(geo, at, known=keyed["patient_id"].isin(timeline_ids(workspace)))
    parts = [events]
    for plan in plans:
        keys = read_keys(plan, geo, at, address)
        parts.append(finish(plan, _area_features(store, plan, keys), keys))
    if screening:
        parts.append(_screening(store, keyed, at, screening))
    return pd.concat(parts, axis=1, copy=False)


def frame_schema(store: FeatureStore, plans: list[ViewPlan], event_fields: pa.Schema,
                 screening: dict[str, float] | None = None) -> pa.Schema:
    """The frame's parquet schema, fixed before any chunk (a chunk may hold a column all null)."""
    fields = list(event_fields)
    for plan in plans:
        kinds = {f.name: f.dtype for f in store.get_feature_view(plan.name).features}
        fields += [pa.field(f"{plan.name}__vintage", pa.int64()),
                   pa.field(f"{plan.name}__geoid", pa.string())]
        fields += [pa.field(f"{plan.name}__{f}", ARROW_TYPES[kinds[f]]) for f in plan.features]
    fields += [pa.field(f"{screened_needs_spec().name}__{d}_{part}", kind)
               for d in screening or {} for part, kind in SCREENING_ARROW.items()]
    return pa.schema(fields)


def write_training_frame(
    events: pd.DataFrame,
    path: str | Path,
    *,
    store: FeatureStore,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
    chunk_events: int = CHUNK_EVENTS,
    progress: bool = False,
) -> Path:
    """Write `training_frame` to parquet in chunks of events, for frames larger than memory.

    Memory holds one chunk's frame at a time, not the whole frame (5 million events of
    ``model_inputs_v1`` are ~25 GiB in pandas). Works on every profile; on the Spark profile
    `feature_repo.write_training_frame` has the executors write instead
    (`feature_repo.serving.spark.write_training_frame`). The frame is written beside ``path``
    and moved in place when complete: an interrupted or failed run leaves ``path`` as it was.

    Parameters
    ----------
    events, store, workspace, feature_service
        As for `training_frame`.
    path : str or Path
        Where to write (a local path; replaced if it exists).
    chunk_events : int
        Events per chunk; the rows keep the events' order.
    progress : bool
        Show a bar over events written.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        As for `training_frame`; nothing is written.

    Examples
    --------
    >>> import tempfile
    >>> events = pd.DataFrame({"patient_id": ["A", "B"], "event_timestamp": ["2022-06-01", "2022-06-01"]})
    >>> path = write_training_frame(events, Path(tempfile.mkdtemp()) / "frame.parquet", store=store,
    ...                             workspace=ws, chunk_events=1)
    >>> pd.read_parquet(path)["acs_tract__pct_below_poverty_missing"].tolist()
    [None, 'po_box']
    """
    path = Path(path)
    events = check_events(events)
    plans = plan_views(store, workspace, feature_service)
    screening = screening_plan(store, feature_service)
    write_atomic(path, lambda handle: _write_chunks(events, handle, store, workspace, plans, screening,
                                                     chunk_events, progress))
    return path


def _write_chunks(events: pd.DataFrame, sink: BinaryIO, store: FeatureStore, workspace: Workspace,
                  plans: list[ViewPlan], screening: dict[str, float], chunk_events: int,
                  progress: bool) -> None:
    schema = frame_schema(store, plans, pa.Schema.from_pandas(events, preserve_index=False), screening)
    with pq.ParquetWriter(sink, schema) as writer, tqdm(
            total=len(events), desc="training frame", unit="event", disable=not progress) as bar:
        for start in range(0, len(events), chunk_events):
            chunk = _frame(events.iloc[start:start + chunk_events], store, workspace, plans, screening)
            writer.write_table(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))
            bar.update(len(chunk))


def feast_online_features(
    patient_ids: list[str],
    *,
    store: FeatureStore,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
    at: dt.datetime | None = None,
) -> pd.DataFrame:
    """`feature_repo.online_features` through Feast's ``get_online_features``, one call per view.

    The reference the fast lookup (`feature_repo.serving.online.OnlineLookup`) is tested and
    benchmarked against: the same two hops and reasons on Feast's own read path, which
    rebuilds the plan and decodes through Feast on every call (hundreds of milliseconds).

    Parameters
    ----------
    patient_ids : list of str
        Patients to look up.
    store, workspace, feature_service
        As for `training_frame`.
    at : datetime, optional
        "Now" for choosing the vintage in force and whether the address period has ended.

    Returns
    -------
    pandas.DataFrame
        One row per patient, columns as in `training_frame`.

    Examples
    --------
    >>> row = feast_online_features(["A"], store=store, workspace=ws).iloc[0]
    >>> row["acs_tract__geoid"], row["acs_tract__pct_below_poverty_missing"]
    ('99001000100', 'geography_not_in_vintage')
    """
    now = pd.Timestamp(at or dt.datetime.now(dt.UTC)).tz_convert("UTC")
    ids = pd.DataFrame({"patient_id": [str(p) for p in patient_ids]})
    at_series = pd.Series(now, index=ids.index)
    keyed = lookup_keys(ids["patient_id"], workspace)
    geo = pd.DataFrame(store.get_online_features(
        features=geography_refs(), entity_rows=ids.assign(patient_id=keyed).to_dict("records"),
    ).to_dict())
    address = address_reasons(geo, at_series, known=keyed.isin(timeline_ids(workspace)))
    parts = [ids]
    for plan in plan_views(store, workspace, feature_service):
        keys = read_keys(plan, geo, at_series, address)
        lookup = keys.loc[keys[plan.key].notna(), [plan.key, "vintage"]].astype({"vintage": "int64"})
        fetched = pd.DataFrame(index=keys.index)
        if not lookup.empty:
            result = store.get_online_features(features=plan.refs, entity_rows=lookup.to_dict("records"))
            fetched = pd.DataFrame(result.to_dict(), index=lookup.index).reindex(keys.index)
        parts.append(finish(plan, fetched, keys))
    screening = screening_plan(store, feature_service)
    if screening:
        stored = pd.DataFrame(store.get_online_features(
            features=_screening_refs(screening),
            entity_rows=ids.assign(patient_id=keyed).to_dict("records")).to_dict())
        parts.append(screening_columns(stored, at_series, screening, view=screened_needs_spec().name))
    return pd.concat(parts, axis=1, copy=False)
