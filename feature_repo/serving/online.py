"""Online lookups in milliseconds: by patient (two hops) or by location, every value with its reason.

`OnlineLookup` reads the registry, the feature service and each view's release calendar once,
then answers each call with one online-store read per hop and per view: hop 1 reads the
patients' current address period (one read for all patients), hop 2 reads each area view
once for the distinct (GEOID, vintage) keys of all of them. Reads go through the online store's
own ``online_read`` (Feast's code for SQLite, Redis and the others), with the feature views
kept from the first call, so no call deserializes the registry or builds a pandas frame.

The rules are `feature_repo.serving.lookup_rules`'s, applied record by record: the vintage in
force "now" (released on or before it), the GEOID of that vintage's boundary year, and a typed
missing reason for every missing value. `feature_repo.serving.retrieval.feast_online_features`
makes the same lookup on Feast's own read path (tests/test_online.py checks the two agree).

Examples
--------
>>> lookup = OnlineLookup(store, ws)
>>> lookup.patients(["A"])[0]["acs_tract__pct_below_poverty_missing"]
'geography_not_in_vintage'
>>> lookup.locations(["99001000301"])[0]["acs_tract__pct_below_poverty"]
21.0
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from feature_repo.serving.lookup_rules import (
    GEOGRAPHY_FEATURES,
    GEOGRAPHY_VIEW,
    ViewPlan,
    address_reason,
    area_read,
    geoid_missing_column,
    geoid_source,
    missing_reason,
    period_ended,
    screening_columns,
    screening_lookbacks,
)
from feature_repo.serving.online_sqlite import SqliteSource, plan_source
from ingestion.core.datasets import BOUNDARY_VINTAGES, GEOID_LENGTH, published_calendar, screened_needs_spec
from ingestion.core.errors import InputError
from ingestion.core.settings import Settings
from ingestion.core.workspace import Workspace
from ingestion.geo.pseudonym import lookup_keys

if TYPE_CHECKING:
    import geopandas as gpd
    from feast import FeatureStore

__all__ = ["OnlineLookup", "online_features", "online_features_at", "workspace_boundaries",
           "workspace_online_features"]

# Levels a location reaches, finest first; a state is its county's first two digits.
LEVELS = ("block_group", "tract", "county", "state")
LEVEL_OF_LENGTH = {GEOID_LENGTH[level]: level for level in LEVELS}
Location = str | tuple[float, float]


@dataclass(frozen=True)
class AreaView:
    """An area view of the feature service, ready to read: the Feast view and its `ViewPlan`."""

    view: Any  # what the lookup's reader reads: a Feast FeatureView or a PlannedView
    plan: ViewPlan

    @property
    def name(self) -> str:
        """The view's name."""
        return self.view.name


def _area_view(view: Any, names: list[str], known: Sequence[str], level: str,
               workspace: Workspace) -> AreaView:
    reasons = [f"{n}_missing" for n in names if not n.endswith("_missing") and f"{n}_missing" in known]
    calendar = published_calendar(view.name, workspace)
    if calendar is None:
        raise InputError(f"view {view.name} is registered but {workspace.root} does not publish "
                         "it: run `sdoh apply` again")
    return AreaView(view, ViewPlan(view.name, level, tuple(dict.fromkeys([*names, *reasons])), calendar))


class OnlineLookup:
    """Current SDOH features from the online store, by patient or by location.

    Build one per process (it caches the feature service's views and release calendars) and
    call `refresh` after `sdoh apply` or a new publication.

    Parameters
    ----------
    store : feast.FeatureStore or SqliteSource
        The workspace's store, materialized; or its SQLite online store read without Feast
        (`feature_repo.serving.online_sqlite.plan_source`).
    workspace : Workspace
        Where the published datasets (release calendars) live.
    feature_service : str, default "model_inputs_v1"
        The feature service to read.
    boundaries : mapping of int to geopandas.GeoDataFrame, optional
        Block-group polygons per boundary vintage (`ingestion.geo.boundaries.load_boundary_set`),
        needed only for lookups by coordinates.

    Raises
    ------
    feast.errors.FeatureServiceNotFoundException
        If the feature service is not registered.

    Examples
    --------
    >>> lookup = OnlineLookup(store, ws)
    >>> lookup.patients(["A", "B"])  # doctest: +ELLIPSIS
    [{'patient_id': 'A', 'acs_tract__vintage': 2021, 'acs_tract__geoid': '99001000100', ...}, ...]
    """

    def __init__(self, store: FeatureStore | SqliteSource, workspace: Workspace, *,
                 feature_service: str = "model_inputs_v1",
                 boundaries: Mapping[int, gpd.GeoDataFrame] | None = None):
        self.store = store
        self.workspace = workspace
        self.feature_service = feature_service
        self.boundaries = boundaries
        self.refresh()

    def refresh(self) -> None:
        """Read the registry (or the plan recorded from it) and the release calendars again."""
        if isinstance(self.store, SqliteSource):
            listed, self.geography = self.store.views(self.feature_service)
            self.reader, self.require_online = self.store, self.store.require_online
        else:  # Feast loads here, for a FeatureStore only: `sdoh online` reads SQLite without it
            from feature_repo.serving.feast_reads import feast_views, reader_for
            from feature_repo.serving.store import require_online

            listed, self.geography = feast_views(self.store, self.feature_service)
            self.reader = reader_for(self.store)
            self.require_online = functools.partial(require_online, self.store)
        screened = screened_needs_spec().name
        self.views = [_area_view(view, names, known, level, self.workspace)
                      for view, names, known, level in listed if view.name != screened]
        self.screening = next(((view, names) for view, names, _, _ in listed if view.name == screened),
                              None)

    def patients(self, patient_ids: Sequence[str], *, at: dt.datetime | None = None) -> list[dict]:
        """Each patient's features through their current address: two hops, one read each.

        Parameters
        ----------
        patient_ids : sequence of str
            The caller's patient ids (pseudonymized here when the timeline is).
        at : datetime, optional
            "Now": picks the vintage in force and ends address periods; default the clock.

        Returns
        -------
        list of dict
            One record per id, in order: ``patient_id``, then per view ``<view>__vintage``,
            ``<view>__geoid`` and ``<view>__<feature>``; each missing value has its reason in
            ``<view>__<measure>_missing``.

        An id the online store holds no address period for is ``unknown_patient`` (the
        timeline never held it), unless the store lost its rows: that raises instead.

        Raises
        ------
        InputError
            If the patient geography is not registered.
        ingestion.core.errors.OnlineStoreUnavailable
            If the online store does not answer, or lost rows `feature_repo.materialize`
            verified (it is checked whenever a read finds no row).

        Examples
        --------
        >>> records = OnlineLookup(store, ws).patients(["B"])
        >>> records[0]["acs_tract__pct_below_poverty_missing"]
        'po_box'
        """
        if self.geography is None:
            raise InputError(f"{GEOGRAPHY_VIEW} is not registered: run `sdoh link` and `sdoh apply`")
        now = _utc(at)
        ids = [str(p) for p in patient_ids]
        keys = lookup_keys(pd.Series(ids, dtype=object), self.workspace).tolist()
        [geos] = self.reader.read([(self.geography, [(k,) for k in keys], GEOGRAPHY_FEATURES)])
        if any(geo is None for geo in geos):
            self.require_online([self.geography])  # unknown ids, not a wiped store
        reasons = [_address(geo, now) for geo in geos]
        records = self._hop2([{"patient_id": p} for p in ids], geos, reasons, now)
        return self._screened(records, keys, now) if self.screening else records

    def _screened(self, records: list[dict], keys: list[str], now: dt.datetime) -> list[dict]:
        """Each patient's screened needs now: the latest state row, then rule 5 per domain."""
        view, names = self.screening
        [rows] = self.reader.read([(view, [(k,) for k in keys], names)])
        stored = pd.DataFrame([row or {} for row in rows], columns=names, index=range(len(keys)))
        columns = screening_columns(stored, pd.Series(pd.Timestamp(now), index=stored.index),
                                    screening_lookbacks(names), view=view.name)
        for record, values in zip(records, columns.to_dict("records"), strict=True):
            record.update({k: (None if pd.isna(v) else v) for k, v in values.items()})
        return records

    def locations(self, locations: Sequence[Location], *, boundary_year: int | None = None,
                  at: dt.datetime | None = None) -> list[dict]:
        """Features of places: GEOIDs (block group, tract, county, state) or (lat, lon) pairs.

        Parameters
        ----------
        locations : sequence of str or (float, float)
            GEOIDs (12, 11, 5 or 2 digits) or (latitude, longitude) in degrees.
        boundary_year : int, optional
            The boundary vintage of the GEOIDs given (2010 or 2020); a view whose vintage in
            force is on other boundaries then says ``geoid_of_other_boundary_vintage``.
            Default: the GEOIDs are taken as valid on every boundary vintage.
        at : datetime, optional
            As for `patients`.

        Returns
        -------
        list of dict
            One record per location, in order: ``location`` (as given, coordinates as
            ``"lat,lon"``) and the columns of `patients`. A view finer than a GEOID says
            ``location_coarser_than_level``; coordinates outside the boundaries say
            ``outside_boundaries``.

        Raises
        ------
        InputError
            If a GEOID is malformed, a coordinate pair is not two numbers, coordinates are
            given without ``boundaries``, or ``boundary_year`` is not 2010 or 2020.

        Examples
        --------
        >>> [r["acs_tract__pct_below_poverty_missing"] for r in OnlineLookup(store, ws).locations(
        ...     ["99001000100", "99001000301"])]
        ['geography_not_in_vintage', None]
        """
        if boundary_year is not None and boundary_year not in BOUNDARY_VINTAGES:
            raise InputError(f"boundary_year must be one of {BOUNDARY_VINTAGES}, got {boundary_year!r}")
        now = _utc(at)
        geos: list[dict | None] = [None] * len(locations)
        points = {}
        for i, location in enumerate(locations):
            if isinstance(location, str):
                geos[i] = _geoid_geography(location, boundary_year)
            else:
                points[i] = _point(location)
        for i, geo in self._link(points).items():
            geos[i] = geo
        records = [{"location": _label(location)} for location in locations]
        reasons = [geo.get("link_missing") if geo.get("link_method") == "none" else None for geo in geos]
        return self._hop2(records, geos, reasons, now)

    def _link(self, points: dict[int, tuple[float, float]]) -> dict[int, dict]:
        """Coordinates to GEOIDs on every loaded boundary vintage, as patients are linked."""
        if not points:
            return {}
        if not self.boundaries:
            raise InputError("lookups by coordinates need block-group boundaries: pass "
                             "boundaries=load_boundary_set({2010: ..., 2020: ...}) or "
                             "`sdoh serve --boundaries YEAR FILE`")
        history = pd.DataFrame({"patient_id": [str(i) for i in points], "valid_from": "2000-01-01",
                                "latitude": [p[0] for p in points.values()],
                                "longitude": [p[1] for p in points.values()]})
        from ingestion.geo.linking import link_addresses  # the geometry stack, for coordinates only

        linked = link_addresses(history, self.boundaries).astype(object)
        linked = linked.where(linked.notna(), None)
        return {int(row["patient_id"]): row for row in linked.to_dict("records")}

    def _hop2(self, records: list[dict], geos: list[dict | None], reasons: list[str | None],
              now: dt.datetime) -> list[dict]:
        """Per area view: the vintage in force and each row's GEOID; one read for all views."""
        rows, reads = [], []
        for view in self.views:
            force = view.plan.in_force_at(now)
            found = [_read(geo or {}, view.plan.level, force, reason) for geo, reason in
                     zip(geos, reasons, strict=True)]
            distinct = sorted({g for g, _ in found if g is not None})
            rows.append((view, force, found, distinct))
            reads.append((view.view, [(g, force[0]) for g in distinct] if force else [], view.plan.features))
        read = self.reader.read(reads)
        missed = [view.view for (view, *_), values in zip(rows, read, strict=True) if None in values]
        if missed:  # geography_not_in_vintage, unless the store lost its rows
            self.require_online(missed)
        for (view, force, found, distinct), values in zip(rows, read, strict=True):
            by_geoid = dict(zip(distinct, values, strict=True))
            for record, (geoid, reason) in zip(records, found, strict=True):
                _fill(record, view.plan, force, geoid, reason, by_geoid.get(geoid))
        return records

    def frame(self, records: list[dict]) -> pd.DataFrame:
        """Records of `patients` or `locations` as a DataFrame (vintages as nullable ints)."""
        frame = pd.DataFrame.from_records(records)
        for view in self.views:
            frame[f"{view.name}__vintage"] = frame[f"{view.name}__vintage"].astype("Int64")
        return frame


def _fill(record: dict, plan: ViewPlan, force: tuple[int, int] | None, geoid: str | None,
          reason: str | None, values: dict | None) -> None:
    """Write one view's columns into ``record``; a missing value gets its reason (`missing_reason`)."""
    record[f"{plan.name}__vintage"] = force[0] if geoid is not None else None
    record[f"{plan.name}__geoid"] = geoid
    got = values or {}
    measures = plan.measures_of
    for feature in plan.features:
        value = got.get(feature)
        if feature.endswith("_missing"):
            value = missing_reason(read=geoid is not None, stored=value, row_reason=reason,
                                   value_missing=feature in measures and got.get(measures[feature]) is None)
        record[f"{plan.name}__{feature}"] = value


def _utc(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        raise InputError(f"at={at.isoformat()} has no time zone; pass an aware datetime (UTC)")
    return at.astimezone(dt.UTC)


def _address(geo: dict | None, now: dt.datetime) -> str | None:
    """`address_reason` of one patient's online row (None: the store holds no row for the id).

    An id without any row is one the timeline does not hold (materialization verified the
    store holds every one).
    """
    row = geo or {}
    return address_reason(known=geo is not None, found=row.get("link_method") is not None,
                          ended=period_ended(row.get("valid_to"), now), link_missing=row.get("link_missing"))


def _read(geo: dict, level: str, force: tuple[int, int] | None,
          address: str | None) -> tuple[str | None, str | None]:
    """The GEOID a row reads at ``level`` in the vintage in force, or None and why (`area_read`)."""
    geoid = None
    if force is not None:
        column, prefix = geoid_source(level, force[1])
        geoid = geo.get(column)
        geoid = geoid[:prefix] if geoid and prefix else geoid
    read, reason = area_read(address, released=force is not None, geoid_found=bool(geoid), level=level,
                             geoid_missing=force and geo.get(geoid_missing_column(level, force[1])))
    return (geoid, None) if read else (None, reason)


def _geoid_geography(geoid: str, boundary_year: int | None) -> dict:
    """A GEOID given as a location, as a timeline row: every coarser level is its prefix."""
    if not re.fullmatch(r"\d+", geoid) or len(geoid) not in LEVEL_OF_LENGTH:
        raise InputError(f"location {geoid!r} is not a GEOID: give 12 digits (block group), 11 "
                         "(tract), 5 (county) or 2 (state), or a (latitude, longitude) pair")
    given = LEVELS.index(LEVEL_OF_LENGTH[len(geoid)])
    geo: dict[str, Any] = {"link_method": "geoid"}
    for year in BOUNDARY_VINTAGES:
        for i, level in enumerate(LEVELS):
            if boundary_year is not None and year != boundary_year:
                geo[geoid_missing_column(level, year)] = "geoid_of_other_boundary_vintage"
            elif i < given:
                geo[geoid_missing_column(level, year)] = "location_coarser_than_level"
            else:  # a state location stands in the county column its level reads the prefix of
                geo.setdefault(geoid_source(level, year)[0], geoid[:GEOID_LENGTH[level]])
    return geo


def _point(location: Any) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in location)
    except (TypeError, ValueError):
        raise InputError(f"location {location!r} is neither a GEOID string nor a "
                         "(latitude, longitude) pair") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(f"location ({lat}, {lon}) is not a latitude in [-90, 90] and a "
                         "longitude in [-180, 180]; pass (latitude, longitude)")
    return lat, lon


def _label(location: Location) -> str:
    return location if isinstance(location, str) else ",".join(str(float(v)) for v in location)


def workspace_boundaries(workspace: Workspace) -> dict[int, gpd.GeoDataFrame] | None:
    """The block-group boundaries the workspace's patients were linked with, if known.

    Read from the demo region's manifest (``raw/demo_region/manifest.json``); None elsewhere,
    where the boundary files are passed explicitly (``sdoh serve --boundaries YEAR FILE``).

    Examples
    --------
    >>> workspace_boundaries(ws) is None  # not a demo workspace; a demo's gives {2010: ..., 2020: ...}
    True
    """
    manifest = workspace.root / "raw" / "demo_region" / "manifest.json"
    if not manifest.exists():
        return None
    from ingestion.geo.boundaries import load_boundary_set  # the geometry stack, for coordinates only

    tiger = json.loads(manifest.read_text())["tiger"]
    return load_boundary_set({int(year): manifest.parent / entry["path"] for year, entry in tiger.items()})


def online_features(
    patient_ids: Sequence[str],
    *,
    store: FeatureStore | SqliteSource,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
    at: dt.datetime | None = None,
) -> pd.DataFrame:
    """Current SDOH features for patients, through their current address (two hops).

    A one-off call; a service that answers many should keep one `OnlineLookup`.

    Parameters
    ----------
    patient_ids : sequence of str
        Patients to look up.
    store, workspace, feature_service
        As for `feature_repo.training_frame`.
    at : datetime, optional
        "Now" for choosing the vintage in force and whether the address period has ended.

    Returns
    -------
    pandas.DataFrame
        One row per patient, columns as in `feature_repo.training_frame`.

    Examples
    --------
    >>> online_features(["A"], store=store, workspace=ws)[["patient_id", "acs_tract__geoid"]]
      patient_id acs_tract__geoid
    0          A      99001000100
    """
    lookup = OnlineLookup(store, workspace, feature_service=feature_service)
    return lookup.frame(lookup.patients(patient_ids, at=at))


def workspace_online_features(
    patient_ids: Sequence[str],
    *,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
    profile: str | None = None,
    settings: Settings | None = None,
    at: dt.datetime | None = None,
) -> pd.DataFrame:
    """`online_features` for a workspace, read without importing Feast when it can be.

    On the embedded profile, with the plan recorded from the registry still current
    (`feature_repo.serving.online_sqlite.plan_source`), the SQLite online store is read
    directly: the same lookup (`OnlineLookup`), answers and errors, without Feast's ~4 s import.
    Otherwise, and whenever a read finds keys missing (is it the store that lost them?),
    through Feast.

    Parameters
    ----------
    patient_ids : sequence of str
        Patients to look up.
    workspace : Workspace
        The workspace, applied and materialized.
    feature_service : str
        As for `online_features`.
    profile : str, optional
        As for `feature_repo.serving.store.feature_store`.
    settings : Settings, optional
        As for `feature_repo.serving.store.feature_store`.
    at : datetime, optional
        As for `online_features`.

    Returns
    -------
    pandas.DataFrame
        As `online_features`.

    Examples
    --------
    >>> workspace_online_features(["A"], workspace=ws)[["patient_id", "acs_tract__geoid"]]
      patient_id acs_tract__geoid
    0          A      99001000100
    """
    store_args = {"profile": profile, "settings": settings}
    source = plan_source(workspace, feature_service, **store_args,
                         on_missing_rows=functools.partial(_require_online, workspace, store_args))
    if source is None:
        from feature_repo.serving.store import feature_store  # Feast: the plan may be stale

        source = feature_store(workspace, **store_args)
    return online_features(patient_ids, store=source, workspace=workspace, feature_service=feature_service,
                           at=at)


def _require_online(workspace: Workspace, store_args: Mapping[str, Any], views: Sequence[Any]) -> None:
    """`feature_repo.serving.store.require_online` for views read without Feast."""
    from feature_repo.serving.store import feature_store, require_online

    store = feature_store(workspace, **store_args)
    require_online(store, [store.get_feature_view(view.name) for view in views])


def online_features_at(
    location: Location | Sequence[Location],
    *,
    store: FeatureStore,
    workspace: Workspace,
    feature_service: str = "model_inputs_v1",
    boundaries: Mapping[int, gpd.GeoDataFrame] | None = None,
    boundary_year: int | None = None,
    at: dt.datetime | None = None,
) -> pd.DataFrame:
    """Current SDOH features of places, for services that have no patient record.

    Parameters
    ----------
    location : str, (float, float), or a sequence of them
        GEOIDs (block group 12 digits, tract 11, county 5, state 2) or (latitude, longitude).
    store, workspace, feature_service
        As for `feature_repo.training_frame`.
    boundaries : mapping of int to geopandas.GeoDataFrame, optional
        Block groups per boundary vintage, for coordinates; default the workspace's
        (`workspace_boundaries`).
    boundary_year : int, optional
        Boundary vintage of the GEOIDs given (see `OnlineLookup.locations`).
    at : datetime, optional
        "Now" for the vintage in force.

    Returns
    -------
    pandas.DataFrame
        One row per location: ``location``, then ``<view>__vintage``, ``<view>__geoid`` and
        ``<view>__<feature>``, every missing value with its reason.

    Raises
    ------
    InputError
        If a location is malformed or coordinates come without boundaries.

    Examples
    --------
    >>> online_features_at("99001000301", store=store, workspace=ws)["acs_tract__pct_below_poverty"]
    0    21.0
    Name: acs_tract__pct_below_poverty, dtype: float64
    """
    many = not isinstance(location, str) and not _is_pair(location)
    locations = list(location) if many else [location]
    if boundaries is None and any(not isinstance(x, str) for x in locations):
        boundaries = workspace_boundaries(workspace)
    lookup = OnlineLookup(store, workspace, feature_service=feature_service, boundaries=boundaries)
    return lookup.frame(lookup.locations(locations, boundary_year=boundary_year, at=at))


def _is_pair(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(v, (int, float)) for v in value)

