"""The HTTP feature server: Feast's own app plus patient and location lookups and a health check.

Feast's ``feast.feature_server.get_app`` serves ``/get-online-features`` for the feature
services (and its other endpoints). This adds:

``POST /patients/features``
    ``{"patient_ids": [...], "feature_service": "model_inputs_v1", "at": null}``: the two
    hops of `feature_repo.online.OnlineLookup.patients`, every missing value with its reason.
``POST /locations/features``
    ``{"locations": ["99001000100", [39.1, -75.5]], "boundary_year": null, ...}``.
``GET /health``
    200 when the registry and the online store answer and every materialized view still has
    the rows `feature_repo.materialize` verified, else 503 with what failed (``views`` names
    each view that is empty or stale).

When the online store does not answer in time (``SDOH_REDIS_TIMEOUT_S``) or lost its rows,
lookups answer a JSON 503 ``{"error": "...", "detail": null}``, never a record of nulls.

Bad requests get a JSON 4xx: ``{"error": "...", "detail": ...}`` (malformed JSON 400, unknown
feature service 404, empty or more than 1,000 ids 422).

Examples
--------
>>> app = create_app(feature_store(ws), ws)  # doctest: +SKIP
>>> serve(feature_store(ws), ws, host="127.0.0.1", port=6566)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import geopandas as gpd
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from feast import FeatureStore
from feast.feature_server import get_app
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from feature_repo.online import OnlineLookup
from feature_repo.store import online_problems
from ingestion.errors import OnlineStoreUnavailable
from ingestion.workspace import Workspace
from sdoh_sources import SdohError

__all__ = ["MAX_IDS", "create_app", "running", "serve"]

log = logging.getLogger(__name__)
MAX_IDS = 1000
Ids = Annotated[list[str], Field(min_length=1, max_length=MAX_IDS)]


class PatientsRequest(BaseModel):
    """Body of ``POST /patients/features``."""

    patient_ids: Ids
    feature_service: str = "model_inputs_v1"
    at: dt.datetime | None = None


class LocationsRequest(BaseModel):
    """Body of ``POST /locations/features``: GEOIDs or [latitude, longitude] pairs."""

    locations: Annotated[list[str | tuple[float, float]], Field(min_length=1, max_length=MAX_IDS)]
    feature_service: str = "model_inputs_v1"
    boundary_year: int | None = None
    at: dt.datetime | None = None


def _error(status: int, error: str, detail: Any = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "detail": detail})


def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(400, "the body is not valid JSON", [e.get("msg") for e in errors])
    detail = [{"field": ".".join(str(p) for p in e["loc"][1:]), "problem": e["msg"]} for e in errors]
    return _error(422, f"invalid request: send at least 1 and at most {MAX_IDS} ids or locations "
                  "(see detail)", detail)


class Lookups:
    """One `OnlineLookup` per feature service, built on first use."""

    def __init__(self, store: FeatureStore, workspace: Workspace,
                 boundaries: Mapping[int, gpd.GeoDataFrame] | None):
        self.store, self.workspace, self.boundaries = store, workspace, boundaries
        self.by_service: dict[str, OnlineLookup] = {}

    def get(self, service: str) -> OnlineLookup | None:
        """The lookup of a registered service, or None if it is unknown."""
        if service not in self.by_service:
            known = {s.name for s in self.store.list_feature_services()}
            if service not in known:
                return None
            self.by_service[service] = OnlineLookup(self.store, self.workspace, feature_service=service,
                                                    boundaries=self.boundaries)
        return self.by_service[service]

    def unknown(self, service: str) -> JSONResponse:
        """The 404 for a service that is not registered."""
        known = sorted(s.name for s in self.store.list_feature_services())
        return _error(404, f"unknown feature service {service!r}; choose one of {known}")


def _healthy(store: FeatureStore) -> JSONResponse:
    """Registry and online store reachability: 200, or 503 naming what failed."""
    checks = {}
    try:
        store.registry.list_projects(allow_cache=False)
        checks["registry"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is what the check reports
        checks["registry"] = f"error: {type(exc).__name__}"
    try:
        _ping_online_store(store)
        checks["online_store"] = "ok"
        problems = online_problems(store)
        if problems:
            checks["views"] = problems
    except Exception as exc:  # noqa: BLE001
        checks["online_store"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(status_code=200 if ok else 503,
                        content={"status": "ok" if ok else "unavailable", **checks})


def _ping_online_store(store: FeatureStore) -> None:
    """Round trip to the online store: Redis PING, or a read-only query on the SQLite file."""
    kind = store.config.online_store.type
    if kind == "redis":
        store._get_provider().online_store._get_client(store.config.online_store).ping()
    elif kind == "sqlite":
        path = SqliteOnlineStore._get_db_path(store.config)
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    else:
        raise RuntimeError(f"no health check for online store {kind!r}")


def create_app(store: FeatureStore, workspace: Workspace, *,
               boundaries: Mapping[int, gpd.GeoDataFrame] | None = None) -> FastAPI:
    """Feast's feature server app with the patient and location endpoints and a real health check.

    Parameters
    ----------
    store : feast.FeatureStore
        The workspace's store, materialized.
    workspace : Workspace
        Where the published datasets live.
    boundaries : mapping of int to geopandas.GeoDataFrame, optional
        Block groups per boundary vintage, for lookups by coordinates.

    Returns
    -------
    fastapi.FastAPI

    Examples
    --------
    >>> import uvicorn  # doctest: +SKIP
    >>> uvicorn.run(create_app(store, ws), host="127.0.0.1", port=6566)  # doctest: +SKIP
    """
    app = get_app(store)
    # Feast's /health only reads the cached registry; ours also reaches the online store.
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != "/health"]
    app.add_exception_handler(RequestValidationError, _bad_request)
    for error in _UNAVAILABLE:  # Feast's own endpoints too
        app.add_exception_handler(error, _unavailable)
    lookups = Lookups(store, workspace, boundaries)

    @app.get("/health")
    async def health() -> Response:
        return await run_in_threadpool(_healthy, store)

    @app.post("/patients/features")
    def patients(body: PatientsRequest) -> Response:
        lookup = lookups.get(body.feature_service)
        if lookup is None:
            return lookups.unknown(body.feature_service)
        return _answer(lambda: lookup.patients(body.patient_ids, at=body.at))

    @app.post("/locations/features")
    def locations(body: LocationsRequest) -> Response:
        lookup = lookups.get(body.feature_service)
        if lookup is None:
            return lookups.unknown(body.feature_service)
        return _answer(lambda: lookup.locations(body.locations, boundary_year=body.boundary_year,
                                                at=body.at))

    return app


def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("online store unavailable: %s", exc)
    if not isinstance(exc, OnlineStoreUnavailable):
        exc = OnlineStoreUnavailable(f"the online store did not answer: {type(exc).__name__}; "
                                     "retry shortly")
    return _error(503, str(exc))


# Redis's own errors reach here from Feast's endpoints, which do not wrap them.
_UNAVAILABLE = (OnlineStoreUnavailable, redis.ConnectionError, redis.TimeoutError)


def _answer(run) -> Response:
    """The records as JSON, the online store's outage as a 503, or the project's error as a 422."""
    try:
        records = run()
    except OnlineStoreUnavailable as exc:
        return _unavailable(None, exc)
    except SdohError as exc:
        return _error(422, str(exc))
    return Response(json.dumps({"results": records}, default=str), media_type="application/json")


def serve(store: FeatureStore, workspace: Workspace, *, host: str = "127.0.0.1", port: int = 6566,
          boundaries: Mapping[int, gpd.GeoDataFrame] | None = None, access_log: bool = False) -> None:
    """Run the feature server with uvicorn until interrupted (one process, no worker restarts).

    Examples
    --------
    >>> serve(feature_store(ws), ws, port=6566)  # doctest: +SKIP
    """
    import uvicorn

    uvicorn.run(create_app(store, workspace, boundaries=boundaries), host=host, port=port,
                access_log=access_log, log_level="info")


@contextlib.contextmanager
def running(app: FastAPI, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free port; yields its base URL.

    For tests and benchmarks: the server stops when the block ends.

    Examples
    --------
    >>> with running(create_app(store, ws)) as url:  # doctest: +SKIP
    ...     urllib.request.urlopen(url + "/health").status
    200
    """
    import uvicorn

    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, access_log=False,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="sdoh-feature-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the feature server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
