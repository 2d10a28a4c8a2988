"""The HTTP feature server: Feast's own app plus patient and location lookups and a health check.

Feast's ``feast.feature_server.get_app`` serves ``/get-online-features`` for the feature
services (and its other endpoints). This adds:

``POST /patients/features``
    ``{"patient_ids": [...], "feature_service": "model_inputs_v1", "at": null}``: the two
    hops of `feature_repo.serving.online.OnlineLookup.patients`, every missing value with its reason.
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

Locked down by `ServerSettings`: with a token, every route but ``/health`` (Feast's
``/get-online-features`` and ``/docs`` included) needs ``Authorization: Bearer <token>`` (401
otherwise); a non-loopback host without a token is refused unless explicitly opted out. Feast's
write and admin routes (``/push``, ``/write-to-online-store``, ``/materialize``,
``/materialize-incremental``, ``/chat``, ``/ws/chat``, ``/static``) are removed unless enabled,
and then need their own admin token. Bodies over the limit get 413 while being read, strings
that are not valid Unicode 400 naming the field, and any other failure a JSON 500 without
a traceback.

Examples
--------
>>> import urllib.request
>>> app = create_app(store, ws)
>>> with running(app) as url:
...     urllib.request.urlopen(url + "/health").status
200

Serving until stopped, on every interface with a token (not run here: it blocks):

>>> serve(store, ws, settings=ServerSettings(host="0.0.0.0", token=token))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import geopandas as gpd
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from feast import FeatureService, FeatureStore
from feast.errors import FeastError
from feast.feature_server import get_app
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.infra.registry.base_registry import BaseRegistry
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match

from feature_repo.serving.online import OnlineLookup
from feature_repo.serving.store import online_problems
from ingestion.core.errors import OnlineStoreUnavailable, ServerSecurityError
from ingestion.core.workspace import Workspace
from sdoh_sources import SdohError

__all__ = ["MAX_BODY_BYTES", "MAX_IDS", "ServerSettings", "create_app", "is_loopback", "load_token",
           "log_exposure", "running", "serve"]

log = logging.getLogger(__name__)
MAX_IDS = 1000
Ids = Annotated[list[str], Field(min_length=1, max_length=MAX_IDS)]

MAX_BODY_BYTES = 1024 * 1024
MIN_TOKEN_CHARS = 16
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token: safe in a header, no spaces
_MAKE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# Feast's routes that only read; every other route of its app writes, administers or chats.
FEAST_READ_ROUTES = frozenset({
    "/get-online-features", "/search", "/retrieve-online-documents", "/v1/vector_stores",
    "/v1/vector_stores/{vector_store_id}", "/v1/vector_stores/{vector_store_id}/search", "/health",
    "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
OPEN_PATHS = frozenset({"/health"})  # for load balancers' probes: says ok/unavailable, no data


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``), reachable from this machine only.

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("db.example")
    (True, True, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name other than localhost may resolve anywhere
        return False


def _check_token(token: str | None, what: str) -> None:
    if token is not None and (len(token) < MIN_TOKEN_CHARS or not _TOKEN.fullmatch(token)):
        raise ServerSecurityError(
            f"the {what} is not usable: it must be at least {MIN_TOKEN_CHARS} characters of "
            f"A-Z a-z 0-9 - . _ ~ + / (no spaces); make one with {_MAKE_TOKEN}")


@dataclass(frozen=True)
class ServerSettings:
    """How the feature server is exposed: address, tokens, write endpoints, limits.

    Checked when built: a non-loopback host without a token, write endpoints without their own
    token, or a short token raise `ServerSecurityError`. Tokens never appear in the repr.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        Interface to listen on.
    token : str, optional
        Bearer token every route but ``/health`` requires (``/docs`` and ``/openapi.json``
        included). Required unless ``host`` is loopback or ``allow_unauthenticated``.
    admin_token : str, optional
        Bearer token of Feast's write and admin routes; must differ from ``token``.
    enable_write_endpoints : bool, default False
        Keep Feast's ``/push``, ``/write-to-online-store``, ``/materialize``,
        ``/materialize-incremental`` and chat routes (otherwise removed: 404). Needs ``admin_token``.
    allow_unauthenticated : bool, default False
        Serve a non-loopback host without a token (behind an authenticating proxy); warned about.
    max_body_bytes : int, default 1 MiB
        Largest request body; larger ones get 413 while being read.
    service_cache_seconds : float, default 30
        How long the list of registered feature services is trusted before it is read again.

    Raises
    ------
    ServerSecurityError
        If the settings would expose patient data or a token is unusable.

    Examples
    --------
    >>> settings = ServerSettings(host="0.0.0.0", token="t" * 32)
    >>> "t" * 32 in repr(settings)
    False
    >>> ServerSettings(host="0.0.0.0")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ingestion.core.errors.ServerSecurityError: refusing to serve on 0.0.0.0 without authentication
    """

    host: str = "127.0.0.1"
    token: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    enable_write_endpoints: bool = False
    allow_unauthenticated: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    service_cache_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.service_cache_seconds < 0:
            raise ValueError(f"max_body_bytes must be >= 1 and service_cache_seconds >= 0, got "
                             f"{self.max_body_bytes} and {self.service_cache_seconds}")
        _check_token(self.token, "server token")
        _check_token(self.admin_token, "admin token")
        if self.token is None and not self.allow_unauthenticated and not is_loopback(self.host):
            raise ServerSecurityError(
                f"refusing to serve on {self.host} without authentication: anyone who can reach it "
                "could read patients' features. Set SDOH_SERVER_TOKEN (or --token-file FILE, mode "
                "0600), or pass --allow-unauthenticated if a proxy in front authenticates callers")
        if self.enable_write_endpoints and self.admin_token is None:
            raise ServerSecurityError(
                "write endpoints need their own token: set SDOH_SERVER_ADMIN_TOKEN (or "
                "--admin-token-file FILE), or leave --enable-write-endpoints off")
        if self.admin_token is not None and self.admin_token == self.token:
            raise ServerSecurityError("the admin token equals the server token: the read token "
                                      f"would open the write endpoints; make another with {_MAKE_TOKEN}")


def load_token(path: str | os.PathLike | None, *, environ: Mapping[str, str], variable: str) -> str | None:
    """A bearer token from a file (explicit, wins) or an environment variable; None if neither.

    The file must not be readable by group or others (as ssh keys), and not empty.

    Parameters
    ----------
    path : path-like, optional
        File holding the token (surrounding whitespace ignored).
    environ : mapping of str to str
        Where ``variable`` is read (``os.environ`` at the CLI).
    variable : str
        The environment variable's name, e.g. ``SDOH_SERVER_TOKEN``.

    Returns
    -------
    str or None

    Raises
    ------
    ServerSecurityError
        If the file is missing, unreadable, empty or readable by others.

    Examples
    --------
    >>> load_token(None, environ={"SDOH_SERVER_TOKEN": "t" * 32}, variable="SDOH_SERVER_TOKEN") == "t" * 32
    True
    """
    if path is None:
        return environ.get(variable) or None
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ServerSecurityError(
                    f"{path} is open to group or others (mode {stat.S_IMODE(mode):04o}), so others "
                    f"on this machine could read the token: run chmod 600 {path}")
            token = file.read().decode("utf-8", "replace").strip()
    except OSError as exc:
        raise ServerSecurityError(f"cannot read the token file {path}: {exc.strerror}; "
                                  "check the path and its permissions") from exc
    if not token:
        raise ServerSecurityError(f"the token file {path} is empty: write a token into it ({_MAKE_TOKEN})")
    return token


def log_exposure(settings: ServerSettings) -> None:
    """Log once, at start, who can call the server (the tokens themselves never).

    Examples
    --------
    >>> log_exposure(ServerSettings())  # logs "serving on 127.0.0.1 without authentication: ..."
    """
    if settings.token is None and is_loopback(settings.host):
        log.info("serving on %s without authentication: loopback, only this machine can call it "
                 "(set SDOH_SERVER_TOKEN to require a bearer token)", settings.host)
    elif settings.token is None:
        log.warning("UNAUTHENTICATED feature server on %s: anyone who can reach this address can "
                    "read patients' features (--allow-unauthenticated); put an authenticating "
                    "proxy in front or set SDOH_SERVER_TOKEN", settings.host)
    else:
        log.info("serving on %s: every route but /health requires the bearer token", settings.host)
    if settings.enable_write_endpoints:
        log.warning("Feast's write and admin endpoints are enabled for the admin token: /push, "
                    "/write-to-online-store, /materialize, /materialize-incremental")


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
    """One `OnlineLookup` per feature service, and the registered names, read at most every ``ttl`` s.

    An unknown name is answered from the cached names, without registry work; the names are
    listed again once ``ttl`` seconds have passed, and a service whose definition changed then
    gets a new lookup. If the registry cannot be reached then, the names listed before are kept
    (with a warning) for another ``ttl``; with none listed before, the failure is raised.

    Parameters
    ----------
    store : feast.FeatureStore
        The workspace's store.
    workspace : Workspace
        Where the published datasets live.
    boundaries : mapping of int to geopandas.GeoDataFrame, optional
        Block groups per boundary vintage.
    registry : feast BaseRegistry, optional
        Where the services are listed; default ``store.registry``.
    ttl : float, default 30
        Seconds the listed names are trusted.
    clock : callable, default time.monotonic
        Seconds, for the age of the listing.

    Examples
    --------
    >>> lookups = Lookups(store, ws, None, ttl=30)
    >>> lookups.get("nope_v1") is None
    True
    """

    def __init__(self, store: FeatureStore, workspace: Workspace,
                 boundaries: Mapping[int, gpd.GeoDataFrame] | None, *, registry: BaseRegistry | None = None,
                 ttl: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.store, self.workspace, self.boundaries = store, workspace, boundaries
        self.registry = registry if registry is not None else store.registry
        self.ttl, self.clock = ttl, clock
        self.services: dict[str, FeatureService] = {}
        self.by_service: dict[str, OnlineLookup] = {}
        self._listed_at = -math.inf
        self._lock = threading.Lock()

    def _names(self) -> dict[str, FeatureService]:
        """The registered services, listed again only when the listing is older than ``ttl``."""
        if self.clock() - self._listed_at < self.ttl:
            return self.services
        with self._lock:  # one thread lists; the others wait for its answer
            now = self.clock()
            if now - self._listed_at < self.ttl:
                return self.services
            try:
                listed = {s.name: s for s in self.registry.list_feature_services(self.store.project,
                                                                                 allow_cache=False)}
            except Exception as exc:  # noqa: BLE001 - an outage must not cost every request a retry
                if self._listed_at == -math.inf:
                    raise
                log.warning("cannot list the feature services (%s): keeping the %d listed before, "
                            "trying again in %g s", type(exc).__name__, len(self.services), self.ttl)
                self._listed_at = now
                return self.services
            for name, service in self.services.items():
                if listed.get(name) != service:
                    self.by_service.pop(name, None)
            self.services, self._listed_at = listed, now
        return self.services

    def get(self, service: str) -> OnlineLookup | None:
        """The lookup of a registered service, or None if it is unknown."""
        if service not in self._names():
            return None
        lookup = self.by_service.get(service)
        if lookup is None:
            lookup = self.by_service.setdefault(service, OnlineLookup(
                self.store, self.workspace, feature_service=service, boundaries=self.boundaries))
        return lookup

    def unknown(self, service: str) -> JSONResponse:
        """The 404 for a service that is not registered (names from the cached listing)."""
        return _error(404, f"unknown feature service {service!r}; choose one of {sorted(self._names())}")


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


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # cheap test before parsing a body again
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(value: Any, path: str = "") -> str | None:
    """The first field (``patient_ids[0]``, ``entities.tract_geoid[1]``) holding a lone surrogate."""
    if isinstance(value, str):
        return path or "the body" if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):  # never echo the key: it cannot be encoded
                return f"a key of {path or 'the body'}"
            if found := _lone_surrogate(item, f"{path}.{key}" if path else key):
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if found := _lone_surrogate(item, f"{path}[{i}]"):
                return found
    return None


def _bad_unicode(body: bytes) -> JSONResponse | None:
    """400 for a body that is not UTF-8 or holds a lone surrogate (``"\\ud800"``), else None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(400, f"the body is not valid UTF-8 (byte {exc.start}): send JSON encoded as UTF-8")
    if not _SURROGATE_ESCAPE.search(text):
        return None
    try:
        found = _lone_surrogate(json.loads(text))
    except ValueError:
        return None  # the endpoint reports malformed JSON
    if found is None:
        return None
    return _error(400, f"{found} is not valid Unicode (a lone surrogate such as \\ud800): send "
                  "well-formed text", {"field": found})


class _Guard:
    """ASGI middleware in front of every route: bearer tokens, body-size limit, bad Unicode.

    Routes in ``admin_routes`` need the admin token, ``/health`` none, every other path (unknown
    ones included, so nothing is learned without a token) the server token when one is set.
    """

    def __init__(self, app, *, settings: ServerSettings, admin_routes: tuple[BaseRoute, ...]):
        self.app, self.settings, self.admin_routes = app, settings, admin_routes
        self.tokens = {name: token.encode() for name, token in
                       (("server", settings.token), ("admin", settings.admin_token)) if token}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is None and scope["type"] == "http":
            refusal, receive = await self._read_body(scope, receive)
        if refusal is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":  # closed before accept: the client sees 403
            return await send({"type": "websocket.close", "code": 1008})
        return await refusal(scope, receive, send)

    def _refusal(self, scope) -> JSONResponse | None:
        """401/403 unless the request carries the token its route needs."""
        admin = any(route.matches(scope)[0] is not Match.NONE for route in self.admin_routes)
        needed = "admin" if admin else None if scope["path"] in OPEN_PATHS else "server"
        if needed not in self.tokens:
            return None
        given = _bearer(scope)
        if given is not None and hmac.compare_digest(given, self.tokens[needed]):
            return None
        if given is not None and admin and hmac.compare_digest(given, self.tokens.get("server", b"")):
            return _error(403, "the server token does not open write endpoints: send the admin token")
        challenge = 'Bearer realm="sdoh"' + ("" if given is None else ', error="invalid_token"')
        response = _error(401, f"{'missing' if given is None else 'wrong'} bearer token: send "
                          f"'Authorization: Bearer <{needed} token>'")
        response.headers["WWW-Authenticate"] = challenge
        return response

    async def _read_body(self, scope, receive):
        """(413 or 400 response, None), or (None, a receive that replays the body read here)."""
        limit = self.settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = _error(413, f"the request body is larger than {limit:,} bytes: send fewer ids "
                           "per request (or raise --max-body-bytes)")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_large, receive
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left; let the app see it
                return None, _replay([message], receive)
            size += len(message.get("body", b""))
            if size > limit:
                return too_large, receive
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = _bad_unicode(body) if body else None
        return refusal, _replay([{"type": "http.request", "body": body, "more_body": False}], receive)


def _bearer(scope) -> bytes | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
    return None


def _replay(messages: list[dict], receive):
    """A receive that hands out ``messages`` first, then waits on the client's own ``receive``."""
    async def replayed():
        return messages.pop(0) if messages else await receive()
    return replayed


def _feast_error(_: Request, exc: FeastError) -> JSONResponse:
    return _error(exc.http_status_code(), str(exc))


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Any unhandled failure: a short JSON 500 (the traceback goes to the server log only)."""
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _lock_down(app: FastAPI, settings: ServerSettings) -> None:
    """Remove (or guard with the admin token) Feast's non-read routes; add the guard and handlers."""
    writes = tuple(r for r in app.router.routes if getattr(r, "path", None) not in FEAST_READ_ROUTES)
    if not settings.enable_write_endpoints:
        app.router.routes = [r for r in app.router.routes if r not in writes]
        writes = ()
    log.debug("Feast routes %s: %s", "for the admin token" if writes else "removed",
              sorted({getattr(r, "path", "?") for r in writes}))
    app.add_middleware(_Guard, settings=settings, admin_routes=writes)
    app.add_exception_handler(FeastError, _feast_error)
    app.add_exception_handler(Exception, _internal_error)


def create_app(store: FeatureStore, workspace: Workspace, *,
               boundaries: Mapping[int, gpd.GeoDataFrame] | None = None,
               settings: ServerSettings | None = None, registry: BaseRegistry | None = None) -> FastAPI:
    """Feast's feature server app with the patient and location endpoints and a real health check.

    Parameters
    ----------
    store : feast.FeatureStore
        The workspace's store, materialized.
    workspace : Workspace
        Where the published datasets live.
    boundaries : mapping of int to geopandas.GeoDataFrame, optional
        Block groups per boundary vintage, for lookups by coordinates.
    settings : ServerSettings, optional
        Tokens, write endpoints and limits; default loopback without a token.
    registry : feast BaseRegistry, optional
        Where feature service names are listed (cached); default ``store.registry``.

    Returns
    -------
    fastapi.FastAPI

    Examples
    --------
    >>> app = create_app(store, ws)  # serve it with uvicorn.run(app, host="127.0.0.1", port=6566)
    >>> isinstance(app, FastAPI)
    True
    """
    app = get_app(store)
    # Feast's /health only reads the cached registry; ours also reaches the online store.
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != "/health"]
    app.add_exception_handler(RequestValidationError, _bad_request)
    settings = settings or ServerSettings()
    _lock_down(app, settings)
    for error in _UNAVAILABLE:  # Feast's own endpoints too
        app.add_exception_handler(error, _unavailable)
    lookups = Lookups(store, workspace, boundaries, registry=registry, ttl=settings.service_cache_seconds)

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


def serve(store: FeatureStore, workspace: Workspace, *, settings: ServerSettings | None = None,
          port: int = 6566, boundaries: Mapping[int, gpd.GeoDataFrame] | None = None,
          access_log: bool = False) -> None:
    """Run the feature server with uvicorn until interrupted (one process, no worker restarts).

    Parameters
    ----------
    store : feast.FeatureStore
        The workspace's store, materialized.
    workspace : Workspace
        Where the published datasets live.
    settings : ServerSettings, optional
        Host, tokens, write endpoints, limits; default loopback without a token.
    port : int, default 6566
        Port to listen on.
    boundaries : mapping of int to geopandas.GeoDataFrame, optional
        Block groups per boundary vintage, for lookups by coordinates.
    access_log : bool, default False
        Log every request.

    Examples
    --------
    >>> serve(store, ws, port=6566)  # blocks until stopped  # doctest: +SKIP
    """
    import uvicorn

    settings = settings or ServerSettings()
    log_exposure(settings)
    uvicorn.run(create_app(store, workspace, boundaries=boundaries, settings=settings),
                host=settings.host, port=port, access_log=access_log, log_level="info")


@contextlib.contextmanager
def running(app: FastAPI, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free port; yields its base URL.

    For tests and benchmarks: the server stops when the block ends.

    Examples
    --------
    >>> import urllib.request
    >>> with running(create_app(store, ws)) as url:
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
